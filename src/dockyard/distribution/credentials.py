"""Registry credentials in Docker's ``config.json``, so ``docker login`` and ``dockyard login`` share them.

The file lives at ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``)::

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}, ...}, ...other keys kept...}

Docker Hub's entry is keyed ``https://index.docker.io/v1/``; other registries by
``host[:port]``. Keys written with a scheme or a path (``https://host/v1/``) match too,
as Docker's ``ConvertToHostname`` lets them. Credential helpers (``credsStore``,
``credHelpers``) are not supported: their entries are left untouched.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import config
from dockyard.atomicfile import atomic_write
from dockyard.errors import DockyardError

# Docker Hub's key in config.json, kept from the v1 API days.
INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def config_path() -> Path:
    return config.docker_config_dir() / "config.json"


def to_hostname(server: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000`` (Docker's ConvertToHostname)."""
    for prefix in ("http://", "https://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
            break
    return server.split("/", 1)[0]


def server_key(server: str) -> str:
    """The config.json key for a registry host, domain or URL: Hub's is the v1 index URL."""
    host = to_hostname(server) if server else ""
    if not host or host in _HUB_HOSTS:
        return INDEX_SERVER
    return host


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise DockyardError(f"cannot read {path}: {e.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise DockyardError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise DockyardError(f"{path} is not a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Temp file + fsync + rename: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_write(path, mode=0o600) as f:
        f.write((json.dumps(data, indent="\t") + "\n").encode())


def _matching_keys(auths: dict[str, Any], key: str) -> list[str]:
    """Keys of ``auths`` that name the same registry as ``key``, the exact one first."""
    found = [key] if key in auths else []
    for other in auths:
        if other != key and server_key(other) == key:
            found.append(other)
    return found


def _decode(entry: dict[str, Any], key: str) -> Credentials | None:
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    encoded = entry.get("auth")
    if not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise DockyardError(f"invalid auth entry for {key} in {config_path()}") from None
    if not sep:
        raise DockyardError(f"invalid auth entry for {key} in {config_path()}: expected user:password")
    return Credentials(user, password)


def get(server: str) -> Credentials | None:
    """Stored credentials for a registry (host, domain or URL), or None."""
    auths = _read(config_path()).get("auths") or {}
    key = server_key(server)
    for k in _matching_keys(auths, key):
        entry = auths.get(k)
        if isinstance(entry, dict):
            creds = _decode(entry, k)
            if creds is not None:
                return creds
    return None


def store(server: str, creds: Credentials) -> str:
    """Save credentials (replacing any for the same registry); returns the key used."""
    path = config_path()
    data = _read(path)
    auths = data.setdefault("auths", {})
    key = server_key(server)
    for k in _matching_keys(auths, key):
        del auths[k]
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[key] = {"auth": token}
    _write(path, data)
    return key


def erase(server: str) -> bool:
    """Forget the credentials of a registry; False if there were none."""
    path = config_path()
    data = _read(path)
    auths = data.get("auths") or {}
    keys = _matching_keys(auths, server_key(server))
    if not keys:
        return False
    for k in keys:
        del auths[k]
    _write(path, data)
    return True
