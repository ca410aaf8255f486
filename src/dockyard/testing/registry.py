"""The CNCF distribution registry (Debian's ``docker-registry``) as a test peer.

Each instance gets its own config, storage and log in a temp dir and listens on a
free port of 127.0.0.1 over plain HTTP, optionally behind htpasswd basic auth::

    with DistributionRegistry(htpasswd=("alice", "secret")) as registry:
        push_oci_layout(layout, f"{registry.address}/app:1", creds=("alice", "secret"))
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

BINARY = "docker-registry"
START_TIMEOUT = 10.0
BCRYPT_COST = 4


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_htpasswd_line(user: str, password: str) -> str:
    """``user:$2...`` for an htpasswd file, with whatever bcrypt implementation is here:
    the htpasswd tool (apache2-utils), the bcrypt package, or glibc's crypt(3).

    The cost is the minimum (4): the registry checks the hash on every request, and at
    the usual cost 10-12 that adds 50-250 ms to each one. Fine for a throwaway test user."""
    tool = shutil.which("htpasswd")
    if tool:
        out = subprocess.run([tool, "-Bbn", "-C", str(BCRYPT_COST), user, password], check=True,
                             capture_output=True, text=True)
        return out.stdout.strip()
    try:
        import bcrypt

        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()}"
    except ImportError:
        pass
    with warnings.catch_warnings():  # crypt is deprecated (gone in 3.13) but here in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << BCRYPT_COST))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("no bcrypt implementation: install apache2-utils or python3-bcrypt")
    return f"{user}:{hashed}"


class DistributionRegistry:
    """A private ``docker-registry`` process; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, htpasswd: tuple[str, str] | None = None, *, binary: str | None = None,
                 port: int | None = None) -> None:
        self.htpasswd = htpasswd
        self.binary = binary or shutil.which(BINARY) or f"/usr/bin/{BINARY}"
        self.port = port or 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # --- what tests use ---

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as a reference's domain."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def storage(self) -> Path:
        """The filesystem driver's root directory (``docker/registry/v2/...`` below it)."""
        assert self.dir is not None, "registry not started"
        return self.dir / "storage"

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo's ``--creds``, if auth is on."""
        return f"{self.htpasswd[0]}:{self.htpasswd[1]}" if self.htpasswd else None

    def logs(self) -> str:
        if self.dir is None or not (self.dir / "registry.log").exists():
            return ""
        return (self.dir / "registry.log").read_text(errors="replace")

    # --- lifecycle ---

    def start(self) -> DistributionRegistry:
        if self.proc is not None:
            return self
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"{self.binary} not found: apt-get install docker-registry")
        self.dir = Path(tempfile.mkdtemp(prefix="dockyard-distribution-"))
        atexit.register(self.stop)  # no orphan registry if a test run ends early
        fixed_port = bool(self.port)
        try:
            for _attempt in range(5):  # a free port can be taken before the registry binds it
                if not fixed_port:
                    self.port = free_port()
                self._launch()
                if self._wait_ready():
                    return self
                if fixed_port or "address already in use" not in self.logs():
                    break
            raise RuntimeError(f"docker-registry did not start on {self.address}:\n{self.logs()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the registry (by its PID) and remove its config, storage and log."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> DistributionRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ---

    def _config(self) -> dict:
        assert self.dir is not None
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                # no background purge of uploads while a test is looking at them
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.address, "secret": secrets.token_hex(16),
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.htpasswd:
            path = self.dir / "htpasswd"
            path.write_text(bcrypt_htpasswd_line(*self.htpasswd) + "\n")
            config["auth"] = {"htpasswd": {"realm": "dockyard-test", "path": str(path)}}
        return config

    def _launch(self) -> None:
        assert self.dir is not None
        self.storage.mkdir(exist_ok=True)
        config = self.dir / "config.yml"
        config.write_text(json.dumps(self._config(), indent=2))  # JSON is YAML
        with open(self.dir / "registry.log", "wb") as log:
            # A clean env: REGISTRY_* variables would override our config.
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
            self.proc = subprocess.Popen([self.binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def _wait_ready(self) -> bool:
        """Poll ``GET /v2/`` until it answers (200, or 401 with auth on) and our process
        says it listens (so a stranger that grabbed the port cannot pass for it)."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401) and f"listening on {self.address}" in self.logs():
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False
