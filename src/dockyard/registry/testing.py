"""Test and benchmark helpers: a dockyard registry process and a moto S3 server, each
on a free port of 127.0.0.1, stopped by PID and cleaned up even when a test fails."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DockyardRegistry:
    """``python -m dockyard.registry serve`` in a temp dir; ``config`` is merged into its YAML."""

    def __init__(self, config: dict[str, Any] | None = None, *, root: Path | None = None,
                 tls: tuple[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        self.config = dict(config or {})
        self.tls = tls
        self.extra_env = env or {}
        self.dir: Path | None = None
        self._own_dir = root is None
        self._root = root
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def root(self) -> Path:
        assert self.dir is not None
        return self._root or self.dir / "root"

    def logs(self) -> str:
        path = self.dir / "registry.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self) -> "DockyardRegistry":
        self.dir = Path(tempfile.mkdtemp(prefix="dockyard-registry-"))
        atexit.register(self.stop)
        try:
            for _attempt in range(5):
                self.port = free_port()
                self._launch()
                if self._wait_ready():
                    return self
                if "address already in use" not in self.logs().lower():
                    break
            raise RuntimeError(f"dockyard registry did not start:\n{self.logs()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        assert self.dir is not None
        config = {"addr": self.address, "root": str(self.root), "fsync": False, **self.config}
        if self.tls:
            config["tls"] = {"cert": self.tls[0], "key": self.tls[1]}
        path = self.dir / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_REGISTRY_")}
        env.update(self.extra_env)
        self._log_start = len(self.logs())  # a restart appends: wait for the new "listening" line
        with open(self.dir / "registry.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry", "serve", "--config", str(path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if f"listening on {self.address}" in self.logs()[self._log_start:]:
                return True
            time.sleep(0.05)
        _terminate(self.proc)
        self.proc = None
        return False

    def restart(self) -> None:
        _terminate(self.proc)
        self._launch()
        if not self._wait_ready():
            raise RuntimeError(f"dockyard registry did not restart:\n{self.logs()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (``restart`` brings it back on the same root)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _terminate(proc)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> "DockyardRegistry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoS3:
    """moto's S3 server on loopback (``python -m moto.server``)."""

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoS3":
        atexit.register(self.stop)
        self.port = free_port()
        self.logfile = tempfile.TemporaryFile()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def s3_config(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        return {"bucket": bucket, "endpoint": self.endpoint, "region": "us-east-1", "access_key": "test",
                "secret_key": "test", "prefix": prefix, "create_bucket": True}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _terminate(proc)
        if self.logfile is not None:
            self.logfile.close()
            self.logfile = None
        atexit.unregister(self.stop)

    def __enter__(self) -> "MotoS3":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Client:
    """A tiny synchronous HTTP client for API tests (http.client; keeps no state)."""

    def __init__(self, url: str, auth: str | None = None, cafile: str | None = None) -> None:
        self.url = url
        self.auth = auth  # a full Authorization header value
        self.https = url.startswith("https://")
        self.hostport = url.split("://", 1)[1]
        self.ctx = ssl.create_default_context(cafile=cafile) if self.https else None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> "Response":
        headers = dict(headers or {})
        if self.auth and "Authorization" not in headers:
            headers["Authorization"] = self.auth
        if self.https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.hostport, timeout=60, context=self.ctx)
        else:
            conn = http.client.HTTPConnection(self.hostport, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"
