"""A container's network attachment: the seam the networks work plugs into.

``bundle.prepare`` calls ``attach`` before it writes the spec: the attachment says which
network namespace the runtime puts the container in (a new one, the host's, or a named
one by path, created before the runtime's ``create``) and what goes into the container's
/etc/hosts and /etc/resolv.conf. Undoing it (a driver's detach) belongs on the
container's exit: the shim starts a small command for it (DESIGN.md), so that the shim
itself stays free of netlink code; ``none`` and ``host`` leave nothing to undo.

Until networks exist only the modes that need no driver are here: ``none`` (and the
``default`` that stands for it today: a namespace of its own with loopback only) and
``host``. Naming ``bridge`` or any other network is an error rather than a silent
``none``.
"""

from __future__ import annotations

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Docker's network modes that need no driver. ``default`` is Docker's name for "the
# daemon's default network"; ours is ``none`` until the default bridge exists.
MODES = ("default", "none", "host")
LOCALHOST_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class NetworkNotFound(DockyardError):
    exit_code = 125


class Attachment:
    """What one container's network looks like from inside."""

    __slots__ = ("namespace", "hosts", "resolv_conf", "host_files")

    def __init__(self, namespace: str, hosts: "list[tuple[str, str]]", resolv_conf: str,
                 host_files: bool = False) -> None:
        self.namespace = namespace      # "none": a new netns; "host": the host's; else a netns path
        self.hosts = hosts              # /etc/hosts entries after localhost: (address, names)
        self.resolv_conf = resolv_conf
        self.host_files = host_files    # the host's own /etc/hosts, as Docker gives --network host


def check_mode(mode: str) -> str:
    """The mode, if a container may be created with it."""
    if mode not in MODES:
        raise NetworkNotFound(f"network {mode} not found")
    return mode


def attach(host_config: "dict[str, Any]", hostname: str) -> Attachment:
    mode = check_mode(host_config.get("NetworkMode") or "default")
    resolv = _read("/etc/resolv.conf")
    if mode == "host":
        return Attachment("host", [], resolv, host_files=True)
    return Attachment("none", [("127.0.0.1", hostname)], resolv)


def hosts_file(attachment: Attachment) -> str:
    if attachment.host_files:
        return _read("/etc/hosts")
    return LOCALHOST_HOSTS + "".join(f"{address}\t{names}\n" for address, names in attachment.hosts)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
