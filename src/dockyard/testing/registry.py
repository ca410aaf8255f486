"""Registries as test peers, each a private process on a free port of 127.0.0.1 with its
own config, storage and log in a temp dir (lifecycle: ``dockyard.testing.servers``).

- ``DistributionRegistry``: the CNCF distribution registry (Debian's ``docker-registry``),
  plain HTTP, optionally behind htpasswd basic auth::

      with DistributionRegistry(htpasswd=("alice", "secret")) as registry:
          push_oci_layout(layout, f"{registry.address}/app:1", creds=("alice", "secret"))

- ``DockyardRegistry``: ``python -m dockyard.registry serve`` with a config you pass.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from dockyard.testing.servers import ServerProcess, free_port, http_status

__all__ = ["DistributionRegistry", "DockyardRegistry", "bcrypt_htpasswd_line", "free_port"]

BINARY = "docker-registry"
BCRYPT_COST = 4


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


class DistributionRegistry(ServerProcess):
    """A private ``docker-registry`` process."""

    name = "docker-registry"
    dir_prefix = "dockyard-distribution-"
    log_name = "registry.log"
    start_timeout = 10.0

    def __init__(self, htpasswd: tuple[str, str] | None = None, *, binary: str | None = None,
                 port: int | None = None) -> None:
        super().__init__(port)
        self.htpasswd = htpasswd
        self.binary = binary or shutil.which(BINARY) or f"/usr/bin/{BINARY}"

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

    def check(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"{self.binary} not found: apt-get install docker-registry")

    def configure(self) -> None:
        assert self.dir is not None
        self.storage.mkdir(exist_ok=True)
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
        (self.dir / "config.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML

    def command(self) -> list[str]:
        assert self.dir is not None
        return [self.binary, "serve", str(self.dir / "config.yml")]

    def env(self) -> dict[str, str]:
        # A clean env: REGISTRY_* variables would override our config.
        assert self.dir is not None
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}

    def ready(self) -> bool:
        # GET /v2/ answers (200, or 401 with auth on) and our process says it listens,
        # so a stranger that grabbed the port cannot pass for it.
        return http_status(self.port, "/v2/") in (200, 401) and f"listening on {self.address}" in self.new_logs()


class DockyardRegistry(ServerProcess):
    """``python -m dockyard.registry serve`` in a temp dir; ``config`` is merged into its YAML."""

    name = "dockyard registry"
    dir_prefix = "dockyard-registry-"
    log_name = "registry.log"

    def __init__(self, config: dict[str, Any] | None = None, *, root: Path | None = None,
                 tls: tuple[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.config = dict(config or {})
        self.tls = tls
        self.extra_env = env or {}
        self._root = root

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def root(self) -> Path:
        assert self.dir is not None
        return self._root or self.dir / "root"

    def configure(self) -> None:
        assert self.dir is not None
        config = {"addr": self.address, "root": str(self.root), "fsync": False, **self.config}
        if self.tls:
            config["tls"] = {"cert": self.tls[0], "key": self.tls[1]}
        (self.dir / "config.yml").write_text(json.dumps(config))  # JSON is YAML

    def command(self) -> list[str]:
        assert self.dir is not None
        return [sys.executable, "-m", "dockyard.registry", "serve", "--config", str(self.dir / "config.yml")]

    def env(self) -> dict[str, str]:
        # Neither our variables nor distribution's (which the server also reads) may override the config.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_REGISTRY_", "REGISTRY_"))}
        env.update(self.extra_env)
        return env

    def ready(self) -> bool:
        return f"listening on {self.address}" in self.new_logs()
