"""Paths and settings: where data lives and which registries may use plain HTTP."""

from __future__ import annotations

import os

from dockyard.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_RUNROOT = "/run/dockyard"


# Paths are plain strings here and in the modules every `run`/`exec` loads: importing
# pathlib (fnmatch, urllib.parse, ipaddress behind it) costs those commands ~5-20 ms.

@record
class Settings:
    root: str
    runroot: str
    # Registries (host[:port] or CIDR) reached over plain HTTP, beyond the loopback defaults.
    insecure_registries: list[str] = field(default_factory=list)
    # How many layers one pull downloads at once (Docker's max-concurrent-downloads).
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    debug: bool = False
    # The default bridge network (Docker's daemon.json words): its gateway and prefix
    # ("172.26.0.1/16"; "" = 172.17.0.1/16, or the next free pool if the host uses that),
    # its Linux bridge, and whether its containers resolve each other by name (beyond Docker).
    bip: str = ""
    bridge_name: str = "dockyard0"
    bridge_dns: bool = True

    @property
    def settings_file(self) -> str:
        return os.path.join(self.root, "settings.json")


def load(root: str | os.PathLike | None = None, runroot: str | os.PathLike | None = None) -> Settings:
    """Settings from arguments, then environment, then ``<root>/settings.json``."""
    root_path = os.fspath(root or os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT)
    runroot_path = os.fspath(runroot or os.environ.get("DOCKYARD_RUNROOT") or DEFAULT_RUNROOT)
    settings = Settings(root=root_path, runroot=runroot_path)
    try:
        with open(settings.settings_file) as f:
            text = f.read()
        import json  # here: a root without settings.json (most) does not load json (and its re)

        data = json.loads(text)
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as e:
        from dockyard.errors import DockyardError

        raise DockyardError(f"cannot read {settings.settings_file}: {e}") from None
    settings.insecure_registries = list(data.get("insecure-registries", []))
    settings.max_concurrent_downloads = int(data.get("max-concurrent-downloads", 3))
    settings.max_concurrent_uploads = int(data.get("max-concurrent-uploads", 5))
    settings.bip = str(data.get("bip", ""))
    settings.bridge_name = str(data.get("bridge", "dockyard0"))
    settings.bridge_dns = bool(data.get("bridge-dns", True))
    extra = os.environ.get("DOCKYARD_INSECURE_REGISTRIES", "")
    settings.insecure_registries += [r.strip() for r in extra.split(",") if r.strip()]
    return settings


def is_insecure_registry(host: str, configured: list[str]) -> bool:
    """True when ``host`` (``name[:port]``) is reached over plain HTTP.

    Like Docker: localhost and 127.0.0.0/8 by default, plus each configured entry,
    which is either an exact ``host[:port]`` or a CIDR range.
    """
    hostname = _hostname(host)
    if hostname == "localhost":
        return True
    address = None
    try:
        import ipaddress  # here: only registry access asks

        address = ipaddress.ip_address(hostname)
    except ValueError:
        pass
    if address is not None and address.is_loopback:
        return True
    for entry in configured:
        if entry == host or entry == hostname:
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def docker_config_dir() -> "Path":
    """Where docker keeps config.json (DOCKER_CONFIG or ~/.docker): we share it."""
    from pathlib import Path  # here: only registry access asks

    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return Path(env)
    return Path.home() / ".docker"
