"""Registry settings: defaults < YAML file < distribution's REGISTRY_* < DOCKYARD_REGISTRY_* < flags.

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

The environment variables of CNCF distribution's ``registry:2`` image are read too, so a
container of this server is configured like Docker's ``registry`` image::

    REGISTRY_HTTP_ADDR                            addr (":5000" listens on all addresses)
    REGISTRY_HTTP_TLS_CERTIFICATE, _KEY           tls.cert, tls.key
    REGISTRY_STORAGE                              storage: filesystem, s3 or s3aws
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY     root
    REGISTRY_STORAGE_S3_BUCKET, _REGION, _REGIONENDPOINT, _ACCESSKEY, _SECRETKEY, _ROOTDIRECTORY
                                                  s3.bucket, region, endpoint, access_key, secret_key, prefix
    REGISTRY_STORAGE_DELETE_ENABLED               delete (also REGISTRY_STORAGE_DELETE='{enabled: true}')
    REGISTRY_STORAGE_MAINTENANCE_READONLY         read_only ('{"enabled": true}' or a boolean)
    REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED read_only
    REGISTRY_AUTH_HTPASSWD_PATH, _REALM           auth.htpasswd, auth.realm
    REGISTRY_AUTH_TOKEN_REALM, _SERVICE, _ISSUER, _ROOTCERTBUNDLE
                                                  auth.token.realm, service, issuer, certificate
    REGISTRY_LOG_ACCESSLOG_DISABLED               access_log (negated)

Other REGISTRY_* variables are listed in ``Settings.ignored_env`` (``serve`` warns about
them), except the few in ``HARMLESS`` and Kubernetes' service links. distribution's own
config file format (REGISTRY_CONFIGURATION_PATH) is not read. Unlike distribution, delete
stays on unless turned off.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dockyard.errors import DockyardError

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_ROOT = "/var/lib/dockyard-registry"
ENV = "DOCKYARD_REGISTRY_"

# distribution's REGISTRY_<SECTION>_<KEY> variables that map one-to-one onto a setting.
DISTRIBUTION: dict[str, str] = {
    "REGISTRY_HTTP_ADDR": "addr",
    "REGISTRY_HTTP_TLS_CERTIFICATE": "tls_cert",
    "REGISTRY_HTTP_TLS_KEY": "tls_key",
    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "root",
    "REGISTRY_AUTH_HTPASSWD_PATH": "htpasswd",
    "REGISTRY_AUTH_HTPASSWD_REALM": "realm",
}
# Booleans; distribution also takes the whole section as a map ({enabled: true}).
DISTRIBUTION_FLAGS: dict[str, str] = {
    "REGISTRY_STORAGE_DELETE": "delete",
    "REGISTRY_STORAGE_DELETE_ENABLED": "delete",
    "REGISTRY_STORAGE_MAINTENANCE_READONLY": "read_only",
    "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "read_only",
}
DISTRIBUTION_S3: dict[str, str] = {
    "REGISTRY_STORAGE_S3_BUCKET": "bucket",
    "REGISTRY_STORAGE_S3_REGION": "region",
    "REGISTRY_STORAGE_S3_REGIONENDPOINT": "endpoint",
    "REGISTRY_STORAGE_S3_ACCESSKEY": "access_key",
    "REGISTRY_STORAGE_S3_SECRETKEY": "secret_key",
    "REGISTRY_STORAGE_S3_ROOTDIRECTORY": "prefix",
}
DISTRIBUTION_TOKEN: dict[str, str] = {
    "REGISTRY_AUTH_TOKEN_REALM": "realm",
    "REGISTRY_AUTH_TOKEN_SERVICE": "service",
    "REGISTRY_AUTH_TOKEN_ISSUER": "issuer",
    "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": "certificate",
}
# Set by many deployments yet safe to ignore here, so not worth a warning: the upload-state
# signing secret (our upload state lives in storage), log verbosity and format, the blob
# descriptor cache (an optimisation; we keep our own index) and the config schema version.
# REGISTRY_AUTH_FILE is not distribution's: podman and skopeo users export it for their logins.
HARMLESS = frozenset({"REGISTRY_HTTP_SECRET", "REGISTRY_LOG_LEVEL", "REGISTRY_LOGLEVEL", "REGISTRY_LOG_FORMATTER",
                      "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "REGISTRY_VERSION", "REGISTRY_AUTH_FILE"})
# Nor are the variables Kubernetes injects for a Service named "registry"
# (REGISTRY_SERVICE_HOST, REGISTRY_PORT_5000_TCP_ADDR...).
K8S_SERVICE_LINK = re.compile(r"REGISTRY_(SERVICE_(HOST|PORT)(_.*)?|PORT(_\d+_(TCP|UDP|SCTP)(_.*)?)?)")


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
    ignored_env: list[str] = field(default_factory=list)  # REGISTRY_* variables we do not support

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


def _enabled(value: str, what: str) -> bool:
    """A boolean, or distribution's map form of a section such as ``{"enabled": true}``."""
    if value.strip().startswith("{"):
        import yaml

        try:
            data = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise DockyardError(f"invalid {what}: {e}") from None
        if not isinstance(data, dict):
            raise DockyardError(f"invalid {what}: expected a map like {{\"enabled\": true}}")
        return _bool(data.get("enabled", False), what)
    return _bool(value, what)


def _from_distribution(s: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    """Read distribution's REGISTRY_* variables: s3 and token settings go into ``s`` at once,
    the rest is returned to be applied below DOCKYARD_REGISTRY_* and flags."""
    out: dict[str, Any] = {}
    token: dict[str, str] = {}
    for name in sorted(k for k in env if k.startswith("REGISTRY_")):  # sorted: READONLY_ENABLED beats READONLY
        value = env[name]
        if name in DISTRIBUTION:
            out[DISTRIBUTION[name]] = value
        elif name in DISTRIBUTION_FLAGS:
            out[DISTRIBUTION_FLAGS[name]] = _enabled(value, name)
        elif name in DISTRIBUTION_S3:
            s.s3[DISTRIBUTION_S3[name]] = value
        elif name in DISTRIBUTION_TOKEN:
            token[DISTRIBUTION_TOKEN[name]] = value
        elif name == "REGISTRY_STORAGE":
            driver = {"filesystem": "filesystem", "s3": "s3", "s3aws": "s3"}.get(value.strip().lower())
            if driver is None:
                raise DockyardError(f"REGISTRY_STORAGE={value!r}: this registry supports filesystem and s3")
            out["storage"] = driver
        elif name == "REGISTRY_LOG_ACCESSLOG_DISABLED":
            out["access_log"] = not _bool(value, name)
        elif name not in HARMLESS and not K8S_SERVICE_LINK.fullmatch(name):
            s.ignored_env.append(name)
    if token:  # completes a token section from the YAML file, if any
        fields = {**(asdict(s.token) if s.token else {}), **token}
        for name, key in DISTRIBUTION_TOKEN.items():
            if not fields.get(key):
                raise DockyardError(f"token auth from REGISTRY_AUTH_TOKEN_* also needs {name}")
        s.token = TokenSettings(**fields)
    return out


def load(config_file: str | None = None, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Settings from a YAML file, then distribution's ``REGISTRY_*`` variables, then
    ``DOCKYARD_REGISTRY_*`` variables, then flags (None = unset)."""
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
    from_distribution = _from_distribution(s, env)
    from_env: dict[str, Any] = {}
    for key in ("addr", "root", "storage", "read_only", "delete", "fsync", "htpasswd", "tls_cert", "tls_key",
                "anonymous_read", "realm"):
        if ENV + key.upper() in env:
            from_env[key] = env[ENV + key.upper()]
    for key in ("bucket", "endpoint", "region", "access_key", "secret_key", "prefix"):
        if ENV + "S3_" + key.upper() in env:
            s.s3[key] = env[ENV + "S3_" + key.upper()]
    for source in (from_distribution, from_env, {k: v for k, v in flags.items() if v is not None}):
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
        raise DockyardError("s3 storage needs a bucket "
                            "(s3.bucket, DOCKYARD_REGISTRY_S3_BUCKET or REGISTRY_STORAGE_S3_BUCKET)")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise DockyardError("TLS needs both a certificate and a key")
    return s
