"""``inspect`` of a container in Docker's JSON shape (types.ContainerJSON).

Scripts grep and template this output, so every key Docker 20.10 prints is here, in Docker's
order, with Docker's empty values (``""``, ``0``, ``[]``, ``null``) where dockyard has nothing
to say; values are dockyard's own (its runtime, cgroup parent, paths)."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing costs `inspect` ~3 ms of start-up
if TYPE_CHECKING:
    from typing import Any

from dockyard.containers.store import PAUSED, RESTARTING, ContainerRecord

if TYPE_CHECKING:
    from dockyard.containers.manager import Containers

ZERO_TIME = "0001-01-01T00:00:00Z"
_OMIT = object()   # Go's `json:",omitempty"`: the key is left out while the value is empty

# Docker 20.10's HostConfig in its field order (api/types/container/host_config.go), each with
# the value a container has when `docker run` leaves it unset. A stored value wins; a new run
# flag stores its field under Docker's name and shows up here in Docker's place.
HOST_CONFIG_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Binds", None), ("ContainerIDFile", ""), ("LogConfig", {"Type": "json-file", "Config": {}}),
    ("NetworkMode", "default"), ("PortBindings", {}), ("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0}),
    ("AutoRemove", False), ("VolumeDriver", ""), ("VolumesFrom", None), ("CapAdd", None), ("CapDrop", None),
    ("CgroupnsMode", "private"),   # dockyard always gives a container its own cgroup namespace
    ("Dns", []), ("DnsOptions", []), ("DnsSearch", []), ("ExtraHosts", None), ("GroupAdd", None),
    ("IpcMode", "private"), ("Cgroup", ""), ("Links", None), ("OomScoreAdj", 0), ("PidMode", ""),
    ("Privileged", False), ("PublishAllPorts", False), ("ReadonlyRootfs", False), ("SecurityOpt", None),
    ("StorageOpt", _OMIT), ("Tmpfs", _OMIT), ("UTSMode", ""), ("UsernsMode", ""),
    ("ShmSize", 67108864),         # /dev/shm is 64 MiB (runtime/spec.py), as Docker's default
    ("Sysctls", _OMIT), ("Runtime", _OMIT), ("ConsoleSize", [0, 0]), ("Isolation", ""),
    # Resources
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", []), ("BlkioDeviceReadBps", None), ("BlkioDeviceWriteBps", None),
    ("BlkioDeviceReadIOps", None), ("BlkioDeviceWriteIOps", None), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""), ("CpusetMems", ""),
    ("Devices", []), ("DeviceCgroupRules", None), ("DeviceRequests", None), ("KernelMemory", 0),
    ("KernelMemoryTCP", 0), ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", None),
    ("OomKillDisable", False), ("PidsLimit", None), ("Ulimits", None), ("CpuCount", 0), ("CpuPercent", 0),
    ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0),
    # after Resources
    ("Mounts", _OMIT), ("MaskedPaths", None), ("ReadonlyPaths", None), ("Init", _OMIT),
)
_HOST_KEYS = frozenset(k for k, _ in HOST_CONFIG_DEFAULTS)

# Docker's container.Config in its field order; _OMIT marks the omitempty ones.
CONFIG_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", _OMIT), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
    ("Env", None), ("Cmd", None), ("Healthcheck", _OMIT), ("ArgsEscaped", _OMIT), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", _OMIT), ("MacAddress", _OMIT), ("OnBuild", None),
    ("Labels", {}), ("StopSignal", _OMIT), ("StopTimeout", _OMIT), ("Shell", _OMIT),
)
_CONFIG_KEYS = frozenset(k for k, _ in CONFIG_DEFAULTS)
_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def nano_time(epoch: float | None) -> str:
    """Go's JSON of a UTC time.Time: nanoseconds, trailing zeros dropped; the zero time for none."""
    if not epoch:
        return ZERO_TIME
    import time

    seconds = int(epoch)
    nanos = round((epoch - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        text += ("." + "%09d" % nanos).rstrip("0")
    return text + "Z"


def _ordered(stored: dict[str, Any], defaults: tuple[tuple[str, Any], ...], known: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in defaults:
        value = stored.get(key, default)
        if value is _OMIT or (default is _OMIT and _empty(key, value)):
            continue
        out[key] = value
    out.update((k, v) for k, v in stored.items() if k not in known)  # fields Docker 20.10 lacks, kept last
    return out


def _empty(key: str, value: Any) -> bool:
    """What omitempty leaves out: a nil pointer (Init, StopTimeout print when false or 0),
    an empty string, slice or map, a false bool."""
    if value is None:
        return True
    if key in ("Init", "StopTimeout"):
        return False
    return value is False or (isinstance(value, (str, list, dict)) and not value)


def ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: ``1m`` -> 1048576 (binary units, an optional ``b``/``ib``)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"invalid size: {text!r}")
    power = " kmgtp".index(m[2].lower() or " ")
    return int(float(m[1]) * 1024 ** power)


def mount_spec(m: dict[str, Any]) -> dict[str, Any]:
    """A ``--mount`` as Docker keeps it in HostConfig.Mounts (mount.Mount, empty fields left out)."""
    spec: dict[str, Any] = {"Type": m["Type"]}
    source = m.get("Name", "") if m["Type"] == "volume" else m.get("Source", "")
    if source:
        spec["Source"] = source
    spec["Target"] = m["Destination"]
    if not m.get("RW", True):
        spec["ReadOnly"] = True
    if m["Type"] == "bind" and m.get("Propagation") not in (None, "", "rprivate"):
        spec["BindOptions"] = {"Propagation": m["Propagation"]}
    if m["Type"] == "volume" and m.get("NoCopy"):
        spec["VolumeOptions"] = {"NoCopy": True}
    if m["Type"] == "tmpfs":
        tmpfs: dict[str, int] = {}
        for option in m.get("TmpfsOptions") or []:
            key, _, value = option.partition("=")
            try:
                if key == "size":
                    tmpfs["SizeBytes"] = ram_in_bytes(value)
                elif key == "mode":
                    tmpfs["Mode"] = int(value, 8)
            except ValueError:
                continue
        if tmpfs:
            spec["TmpfsOptions"] = tmpfs
    return spec


def split_binds(binds: list[str] | None) -> tuple[list[str] | None, dict[str, dict]]:
    """Docker's CLI keeps ``-v /path`` (no source: an anonymous volume) out of HostConfig.Binds,
    in Config.Volumes; the binds and named volumes stay."""
    if not binds:
        return binds, {}
    from dockyard.containers.mounts import parse_volume
    from dockyard.errors import DockyardError

    kept, anonymous = [], {}
    for bind in binds:
        try:
            m = parse_volume(bind)
        except DockyardError:  # shown as stored
            m = {"Type": "bind"}
        if m["Type"] == "volume" and not m.get("Name"):
            anonymous[m["Destination"]] = {}
        else:
            kept.append(bind)
    return kept or None, anonymous


def host_config(stored: dict[str, Any]) -> dict[str, Any]:
    host = dict(stored)
    host["Binds"] = split_binds(host.get("Binds"))[0]
    if host.get("Privileged") and not any(o.startswith("label=") for o in host.get("SecurityOpt") or []):
        host["SecurityOpt"] = [*(host.get("SecurityOpt") or []), "label=disable"]  # what Docker's create adds
    if host.get("Mounts"):
        host["Mounts"] = [mount_spec(m) if "Destination" in m else m for m in host["Mounts"]]
    if "MaskedPaths" not in host:
        from dockyard.runtime.spec import MASKED_PATHS, READONLY_PATHS

        # what the runtime spec masks: nothing for a privileged container (Docker shows null then)
        privileged = bool(host.get("Privileged"))
        host["MaskedPaths"] = None if privileged else list(MASKED_PATHS)
        host.setdefault("ReadonlyPaths", None if privileged else list(READONLY_PATHS))
    return _ordered(host, HOST_CONFIG_DEFAULTS, _HOST_KEYS)


def container_config(r: ContainerRecord, image_env: list[str] | None) -> dict[str, Any]:
    conf = dict(r.container_config)
    conf.pop("NetworkingConfig", None)
    if not conf.get("Hostname"):  # what the container's /etc/hostname holds (containers/bundle.py)
        mode = r.host_config.get("NetworkMode") or "default"
        conf["Hostname"] = os.uname().nodename if mode == "host" else r.id[:12]
    env = conf.get("Env")
    if env and _DEFAULT_PATH in env and image_env is not None and _DEFAULT_PATH not in image_env:
        # records created before the engine stopped writing PATH into Config.Env
        env = [e for e in env if e != _DEFAULT_PATH]
    conf["Env"] = env or None
    anonymous = split_binds(r.host_config.get("Binds"))[1]
    if anonymous:
        conf["Volumes"] = {**(conf.get("Volumes") or {}), **anonymous}
    if conf.get("Labels") is None:
        conf["Labels"] = {}
    return _ordered(conf, CONFIG_DEFAULTS, _CONFIG_KEYS)


def _graph_driver(containers: "Containers", r: ContainerRecord, cdir: str) -> dict[str, Any]:
    data: dict[str, str] = {}
    chain = r.config.get("ImageChain")
    if chain:
        from dockyard.errors import DockyardError

        try:
            data["LowerDir"] = ":".join(containers.engine.layers.lowerdirs(chain))
        except DockyardError:
            pass
    data.update(MergedDir=os.path.join(cdir, "rootfs"), UpperDir=os.path.join(cdir, "upper"),
                WorkDir=os.path.join(cdir, "work"))
    return {"Data": data, "Name": "overlay2"}


def _image_env(containers: "Containers", r: ContainerRecord) -> list[str] | None:
    if _DEFAULT_PATH not in (r.container_config.get("Env") or []):
        return None   # nothing to check: no image lookup on the common path
    from dockyard.errors import DockyardError

    try:
        image = containers.engine.image_store.get(r.image_id)
        return list((containers.engine.image_store.config(image).get("config") or {}).get("Env") or [])
    except DockyardError:  # the image is gone: leave Env as stored
        return None


def inspect_container(containers: "Containers", r: ContainerRecord, size: bool = False) -> dict[str, Any]:
    tmpfs_flags = {os.path.normpath(d) for d in r.host_config.get("Tmpfs") or {}}   # Docker lists only --mount's
    anonymous = {os.path.normpath(d) for d in split_binds(r.host_config.get("Binds"))[1]}
    mounts = [{k: v for k, v in m.items() if k not in ("NoCopy", "TmpfsOptions", "CreateSource", "Anonymous")}
              for m in r.config.get("Mounts") or []
              if not (m["Type"] == "tmpfs" and os.path.normpath(m["Destination"]) in tmpfs_flags)]
    for m in mounts:
        if m["Type"] != "volume":
            m.pop("Name", None)
            m.pop("Driver", None)
        elif os.path.normpath(m["Destination"]) in anonymous:
            m["Mode"] = ""   # `-v /path`: Docker's anonymous volume has no mode
    running = r.status in ("running", "paused", "restarting")
    net = containers.engine.networks.container_settings(r)
    primary = net["Primary"]
    cdir = containers.container_dir(r.id)
    result: dict[str, Any] = {
        "Id": r.id,
        "Created": nano_time(r.created),
        "Path": r.config.get("Path", ""),
        "Args": r.config.get("Args", []),
        "State": {
            "Status": r.status,
            "Running": running and r.status != RESTARTING,
            "Paused": r.status == PAUSED,
            "Restarting": r.status == RESTARTING,
            "OOMKilled": bool(r.oom_killed),
            "Dead": r.status == "dead",
            "Pid": r.pid if running else 0,
            "ExitCode": r.exit_code,
            "Error": r.error or "",
            "StartedAt": nano_time(r.started_at),
            "FinishedAt": nano_time(r.finished_at),
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
        "HostConfig": host_config(r.host_config),
        "GraphDriver": _graph_driver(containers, r, cdir),
    }
    pod = (r.container_config.get("Labels") or {}).get("io.dockyard.pod")   # pods/service.py's POD_LABEL
    if pod:   # podman's top-level "Pod" (after the image), only for a container in a pod: Docker has none
        items = list(result.items())
        at = [k for k, _ in items].index("Image") + 1
        result = dict(items[:at] + [("Pod", pod)] + items[at:])
    if size:
        result.update(container_sizes(containers, r))
    result.update({
        "Mounts": mounts,
        "Config": container_config(r, _image_env(containers, r)),
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
    })
    if r.container_config.get("Healthcheck"):   # Docker's State.Health, once a check has run
        from dockyard.containers import health

        state = health.state_of(r.container_config, cdir, running and r.status != RESTARTING)
        if state is not None:
            result["State"]["Health"] = state
    return result


def container_sizes(containers: "Containers", r: ContainerRecord) -> dict[str, int]:
    """Docker's SizeRw (the writable layer's files) and SizeRootFs (those plus the image's)."""
    from dockyard.errors import DockyardError
    from dockyard.fsutil import tree_size

    rw = tree_size(os.path.join(containers.container_dir(r.id), "upper"))
    try:
        image_size = containers.engine.image_store.get(r.image_id).size
    except DockyardError:  # the image is gone: its layers count nothing
        image_size = 0
    return {"SizeRw": rw, "SizeRootFs": rw + image_size}
