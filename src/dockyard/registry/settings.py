"""Registry settings: defaults < YAML file < environment (DOCKYARD_REGISTRY_*) < flags.

The YAML file::

    addr: 0.0.0.0:5000
    root: /var/lib/dockyard-registry      # filesystem storage and the index
    storage: filesystem                   # or s3
    s3: {bucket: b, endpoint: http://127.0.0.1:9000, region: us-east-1,
         access_key: k, secret_key: s, prefix: registry}
    read_only: false
    delete: true
    fsync: true
    tls: {cert: /etc/cert.pem, key: /etc/key.pem}
    auth:
      htpasswd: /etc/registry/htpasswd
      realm: dockyard
      anonymous_read: false
      token: {realm: https://auth/token, service: registry, issuer: auth, certificate: /etc/issuer.pem}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dockyard.errors import DockyardError

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_ROOT = "/var/lib/dockyard-registry"
ENV = "DOCKYARD_REGISTRY_"


@dataclass
class TokenSettings:
    realm: str
    service: str
    issuer: str
    certificate: str  # PEM certificate(s) or public key(s) of the issuer


@dataclass
class Settings:
    addr: str = DEFAULT_ADDR
    root: Path = Path(DEFAULT_ROOT)
    storage: str = "filesystem"
    s3: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False
    delete: bool = True
    fsync: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    htpasswd: str | None = None
    realm: str = "dockyard-registry"
    anonymous_read: bool = False
    token: TokenSettings | None = None
    access_log: bool = True

    @property
    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.addr.rpartition(":")
        if not sep or not port.isdigit():
            raise DockyardError(f"invalid listen address {self.addr!r}: expected HOST:PORT")
        return host.strip("[]") or "0.0.0.0", int(port)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise DockyardError(f"invalid boolean {value!r} for {what}")


def _from_mapping(s: Settings, data: Mapping[str, Any], source: str) -> None:
    known = {"addr", "root", "storage", "s3", "read_only", "delete", "fsync", "tls", "auth", "access_log"}
    unknown = set(data) - known
    if unknown:
        raise DockyardError(f"{source}: unknown settings {', '.join(sorted(unknown))}")
    if "addr" in data:
        s.addr = str(data["addr"])
    if "root" in data:
        s.root = Path(data["root"])
    if "storage" in data:
        s.storage = str(data["storage"])
    if "s3" in data:
        s.s3 = dict(data["s3"] or {})
    for key in ("read_only", "delete", "fsync", "access_log"):
        if key in data:
            setattr(s, key, _bool(data[key], f"{source}: {key}"))
    tls = data.get("tls") or {}
    s.tls_cert, s.tls_key = tls.get("cert", s.tls_cert), tls.get("key", s.tls_key)
    auth = data.get("auth") or {}
    s.htpasswd = auth.get("htpasswd", s.htpasswd)
    s.realm = auth.get("realm", s.realm)
    if "anonymous_read" in auth:
        s.anonymous_read = _bool(auth["anonymous_read"], f"{source}: auth.anonymous_read")
    if auth.get("token"):
        t = auth["token"]
        try:
            s.token = TokenSettings(realm=t["realm"], service=t["service"], issuer=t["issuer"],
                                    certificate=t["certificate"])
        except KeyError as e:
            raise DockyardError(f"{source}: auth.token needs {e.args[0]}") from None


def load(config_file: str | None = None, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Settings from a YAML file, then ``DOCKYARD_REGISTRY_*`` variables, then flags (None = unset)."""
    env = os.environ if env is None else env
    s = Settings()
    config_file = config_file or env.get(ENV + "CONFIG")
    if config_file:
        import yaml

        try:
            data = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise DockyardError(f"cannot read registry config {config_file}: {e}") from None
        if not isinstance(data, dict):
            raise DockyardError(f"{config_file}: expected a mapping at the top level")
        _from_mapping(s, data, config_file)
    from_env: dict[str, Any] = {}
    for key in ("addr", "root", "storage", "read_only", "delete", "fsync", "htpasswd", "tls_cert", "tls_key",
                "anonymous_read", "realm"):
        if ENV + key.upper() in env:
            from_env[key] = env[ENV + key.upper()]
    for key in ("bucket", "endpoint", "region", "access_key", "secret_key", "prefix"):
        if ENV + "S3_" + key.upper() in env:
            s.s3[key] = env[ENV + "S3_" + key.upper()]
    for source in (from_env, {k: v for k, v in flags.items() if v is not None}):
        for key, value in source.items():
            if key in ("read_only", "delete", "fsync", "anonymous_read", "access_log"):
                value = _bool(value, key)
            elif key == "root":
                value = Path(value)
            setattr(s, key, value)
    s.host_port  # validate early
    if s.storage not in ("filesystem", "s3"):
        raise DockyardError(f"unknown storage driver {s.storage!r}: use filesystem or s3")
    if s.storage == "s3" and not s.s3.get("bucket"):
        raise DockyardError("s3 storage needs a bucket (s3.bucket or DOCKYARD_REGISTRY_S3_BUCKET)")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise DockyardError("TLS needs both a certificate and a key")
    return s
