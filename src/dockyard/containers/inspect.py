"""``inspect`` of a container in Docker's JSON shape (types.ContainerJSON)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dockyard.containers.store import PAUSED, RESTARTING, ContainerRecord

if TYPE_CHECKING:
    from dockyard.containers.manager import Containers

ZERO_TIME = "0001-01-01T00:00:00Z"


def _time(epoch: float | None) -> str:
    from dockyard.timefmt import rfc3339_nano_utc

    return rfc3339_nano_utc(epoch) if epoch else ZERO_TIME


def inspect_container(containers: "Containers", r: ContainerRecord) -> dict[str, Any]:
    host = dict(r.host_config)
    mounts = [{k: v for k, v in m.items() if k not in ("NoCopy", "TmpfsOptions", "CreateSource", "Anonymous")}
              for m in r.config.get("Mounts") or []]
    for m in mounts:
        if m["Type"] != "volume":
            m.pop("Name", None)
            m.pop("Driver", None)
    running = r.status in ("running", "paused", "restarting")
    net = containers.engine.networks.container_settings(r)
    primary = net["Primary"]
    cdir = containers.container_dir(r.id)
    result = {
        "Id": r.id,
        "Created": _time(r.created),
        "Path": r.config.get("Path", ""),
        "Args": r.config.get("Args", []),
        "State": {
            "Status": r.status,
            "Running": running and r.status != RESTARTING,
            "Paused": r.status == PAUSED,
            "Restarting": r.status == RESTARTING,
            "OOMKilled": r.oom_killed,
            "Dead": r.status == "dead",
            "Pid": r.pid if running else 0,
            "ExitCode": r.exit_code,
            "Error": r.error,
            "StartedAt": _time(r.started_at),
            "FinishedAt": _time(r.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
        "HostnamePath": os.path.join(cdir, "hostname"),
        "HostsPath": os.path.join(cdir, "hosts"),
        "LogPath": str(containers.log_path(r.id)),
        "Name": "/" + r.name,
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host,
        "GraphDriver": {"Data": {"MergedDir": os.path.join(cdir, "rootfs"), "UpperDir": os.path.join(cdir, "upper"),
                                 "WorkDir": os.path.join(cdir, "work")}, "Name": "overlay2"},
        "Mounts": mounts,
        "Config": r.container_config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": r.id if net["SandboxKey"] else "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": net["Ports"],
            "SandboxKey": net["SandboxKey"] or (f"/proc/{r.pid}/ns/net" if running and r.pid else ""),
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            # Docker fills these top-level fields from the default bridge's endpoint only.
            "EndpointID": primary.get("EndpointID", ""), "Gateway": primary.get("Gateway", ""),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": primary.get("IPAddress", ""),
            "IPPrefixLen": primary.get("IPPrefixLen", 0), "IPv6Gateway": "", "MacAddress": primary.get("MacAddress", ""),
            "Networks": net["Networks"],
        },
    }
    return result
