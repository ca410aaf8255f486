"""Docker's container-create request (Config, HostConfig, NetworkingConfig, as API 1.41 sends
them) checked and filled in as ``dockyard create`` hands them to the engine.

Two front ends build such a body: the Engine API service receives it from its clients, and
compose builds it from a service (as Docker Compose v2 builds it for dockerd). ``normalise``
refuses what the engine cannot honour, naming the field, and fills Docker's defaults.
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import DockyardError


class RequestError(DockyardError):
    """A field of the create request the engine refuses: the API's 400."""

    http_status = 400


# Docker's container.Config (API 1.41); anything else at the top level is ignored, as dockerd does.
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
               "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
               "StopTimeout", "Shell")
# HostConfig fields the engine honours (what `dockyard create`'s flags fill: cli/ops.build_create
# and containers/runflags.parse). ConsoleSize (the client's terminal) is kept for inspect, as
# dockerd keeps it; the terminal gets its size from the client's resize after start.
HOST_SUPPORTED = frozenset((
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumesFrom", "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd",
    "IpcMode", "Links", "OomScoreAdj", "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt",
    "Tmpfs", "UTSMode", "UsernsMode", "ShmSize", "Sysctls", "Runtime", "ConsoleSize", "Isolation", "CpuShares",
    "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpusetCpus",
    "CpusetMems", "Devices", "DeviceCgroupRules", "MemoryReservation", "MemorySwap", "MemorySwappiness",
    "OomKillDisable", "PidsLimit", "Ulimits", "Mounts", "MaskedPaths", "ReadonlyPaths", "Init"))
ENDPOINT_SUPPORTED = frozenset(("Aliases", "IPAMConfig", "MacAddress"))


def _empty(value: Any) -> bool:
    """A zero value: Go clients send every field, set or not."""
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {} \
        or value == [0, 0]


def _strslice(value: Any, field: str) -> list[str] | None:
    """Go's strslice.StrSlice: a JSON string is a one-element list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RequestError(f"invalid {field}: expected a string or a list of strings")


def _mount(m: Any) -> dict[str, Any]:
    """A mount.Mount of the API as the engine's mount record (containers/mounts.py)."""
    import os

    if not isinstance(m, dict):
        raise RequestError("invalid HostConfig.Mounts entry: expected an object")
    kind = m.get("Type") or ""
    target = m.get("Target") or ""
    source = m.get("Source") or ""
    read_only = bool(m.get("ReadOnly"))
    if not target:
        raise RequestError(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise RequestError(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' "
                               "mount path must be absolute")
    if m.get("Consistency") not in (None, "", "default", "consistent", "cached", "delegated"):
        raise RequestError(f"HostConfig.Mounts: Consistency {m['Consistency']!r} is not supported")
    for opts, allowed in (("BindOptions", ("Propagation",)), ("VolumeOptions", ("NoCopy",)),
                          ("TmpfsOptions", ("SizeBytes", "Mode"))):
        for key, value in (m.get(opts) or {}).items():
            if key not in allowed and not _empty(value):
                raise RequestError(f"HostConfig.Mounts: {opts}.{key} is not supported by dockyard")
    if kind == "bind":
        if not source:
            raise RequestError('invalid mount config for type "bind": field Source must not be empty')
        if not os.path.exists(source):
            raise RequestError(f'invalid mount config for type "bind": bind source path does not exist: '
                                   f"{source}")
        return {"Type": "bind", "Source": source, "Destination": target, "Mode": "", "RW": not read_only,
                "Propagation": (m.get("BindOptions") or {}).get("Propagation") or "rprivate", "CreateSource": False}
    if kind == "volume":
        return {"Type": "volume", "Name": source, "Source": "", "Destination": target, "Driver": "local",
                "Mode": "z", "RW": not read_only, "Propagation": "",
                "NoCopy": bool((m.get("VolumeOptions") or {}).get("NoCopy"))}
    if kind == "tmpfs":
        if source:
            raise RequestError('invalid mount config for type "tmpfs": field Source must be empty')
        options = ["nosuid", "nodev"]
        tmpfs = m.get("TmpfsOptions") or {}
        if tmpfs.get("SizeBytes"):
            options.append(f"size={int(tmpfs['SizeBytes'])}")
        if tmpfs.get("Mode"):
            options.append(f"mode={int(tmpfs['Mode']):o}")
        return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": not read_only,
                "Propagation": "", "TmpfsOptions": options}
    raise RequestError(f"mount type {kind!r} is not supported by dockyard (bind, volume, tmpfs)")


def _host_defaults() -> dict[str, Any]:
    """The HostConfig `dockyard create IMAGE` stores with no flag given."""
    from dockyard.containers import runflags

    host: dict[str, Any] = {
        "Binds": None, "NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False, "CapAdd": None, "CapDrop": None, "Privileged": False, "ReadonlyRootfs": False,
        "Tmpfs": None, "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "PidsLimit": None,
        "Ulimits": None, "Init": None, "Runtime": None, "Mounts": None,
        "LogConfig": {"Type": "json-file", "Config": {}}, "PortBindings": {}, "PublishAllPorts": False,
        "Links": None, "ExtraHosts": None, "Dns": [], "DnsSearch": [], "DnsOptions": [],
    }
    host.update(runflags.parse({}))
    return host


def normalise(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, list[str]]:
    """The create body as `dockyard create` hands it to the engine: (Config, HostConfig,
    NetworkingConfig or None, warnings). A HostConfig or NetworkingConfig field the engine cannot
    honour is a 400 naming it; a field at its zero value is not set."""
    import os

    from dockyard.containers import mounts as mounts_mod
    from dockyard.containers import runflags

    config = {k: body[k] for k in CONFIG_KEYS if k in body}
    image = config.get("Image")
    if not image or not isinstance(image, str):
        raise RequestError("Config.Image is required")
    if config.get("NetworkDisabled"):
        raise RequestError("Config.NetworkDisabled is not supported by dockyard: use HostConfig.NetworkMode none")
    for key in ("Cmd", "Entrypoint", "Shell"):
        if key in config:
            config[key] = _strslice(config[key], f"Config.{key}")
    if config.get("Env") is not None and not (isinstance(config["Env"], list)
                                              and all(isinstance(e, str) for e in config["Env"])):
        raise RequestError("invalid Config.Env: expected a list of strings")
    config["Labels"] = config.get("Labels") or {}
    for key in ("StopSignal", "StopTimeout", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped"):
        if key in config and _empty(config[key]) and not (key == "StopTimeout" and config[key] == 0):
            del config[key]
    exposed = config.pop("ExposedPorts", None) or {}
    if exposed:
        config["ExposedPorts"] = {(k if "/" in k else k + "/tcp"): {} for k in exposed}
    anonymous = list((config.pop("Volumes", None) or {}))   # the CLI's `-v /path`: anonymous volumes
    mac = config.pop("MacAddress", None) or ""

    given = body.get("HostConfig") or {}
    if not isinstance(given, dict):
        raise RequestError("invalid HostConfig: expected an object")
    for key, value in given.items():
        if key == "VolumeDriver" and value in ("", "local"):
            continue
        if key not in HOST_SUPPORTED and not _empty(value):
            raise RequestError(f"HostConfig.{key} is not supported by dockyard")
    host = _host_defaults()
    for key, value in given.items():
        if key in HOST_SUPPORTED and not _empty(value):
            host[key] = value
    for key in ("AutoRemove", "Privileged", "ReadonlyRootfs", "PublishAllPorts", "OomKillDisable"):
        host[key] = bool(given.get(key))
    if given.get("MemorySwappiness") == 0:
        host["MemorySwappiness"] = 0   # 0 is a value here, not "unset"
    if host.get("MemorySwappiness") == -1:
        host["MemorySwappiness"] = None
    if given.get("OomScoreAdj"):
        host["OomScoreAdj"] = given["OomScoreAdj"]
    log = dict(host.get("LogConfig") or {})
    host["LogConfig"] = {"Type": log.get("Type") or "json-file", "Config": log.get("Config") or {}}
    policy = dict(host.get("RestartPolicy") or {})
    host["RestartPolicy"] = {"Name": policy.get("Name") or "no",
                             "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    host["Init"] = True if given.get("Init") else None
    host["Runtime"] = given.get("Runtime") or os.environ.get("DOCKYARD_RUNTIME") or None
    if given.get("CgroupParent"):
        from dockyard.containers.runflags import cgroup_parent

        host["CgroupParent"] = cgroup_parent(given["CgroupParent"])
    taken = set()
    for bind in host.get("Binds") or []:
        try:
            taken.add(os.path.normpath(mounts_mod.parse_volume(bind)["Destination"]))
        except DockyardError:
            pass   # refused just below, with Docker's message
    taken |= {os.path.normpath(m.get("Target") or "/") for m in host.get("Mounts") or [] if isinstance(m, dict)}
    taken |= {os.path.normpath(t) for t in host.get("Tmpfs") or {}}
    # Config.Volumes names a bind's target too (docker-py sends both): only the rest are anonymous
    binds = list(host.get("Binds") or []) + [v for v in anonymous if os.path.normpath(v) not in taken]
    try:
        for bind in binds:
            source = bind.split(":")[0] if bind.count(":") >= 1 and not bind.startswith("/") else ""
            if source.startswith("."):   # the CLI's cwd means nothing here: dockerd takes it for a volume name
                raise RequestError(f'create {source}: "{source}" includes invalid characters for a local volume '
                                       'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                                       "a host directory, use absolute path")
            mounts_mod.parse_volume(bind)   # Docker's message for a bad one
    except DockyardError as e:
        raise RequestError(e.message) from None
    host["Binds"] = binds or None
    if host.get("Mounts"):
        host["Mounts"] = [_mount(m) for m in host["Mounts"]]
    security = list(host.get("SecurityOpt") or [])
    if "systempaths=unconfined" in security:   # as the docker CLI turns it into HostConfig fields
        security.remove("systempaths=unconfined")
        host["MaskedPaths"], host["ReadonlyPaths"] = [], []
        host["SecurityOpt"] = security
    for key in ("MaskedPaths", "ReadonlyPaths"):
        if given.get(key) is None and host.get(key) is None:
            host.pop(key, None)   # not set: the runtime's defaults
        elif given.get(key) == [] and key in given:
            host[key] = []
    warnings: list[str] = []
    if host.get("BlkioWeight") and not runflags._blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        host["BlkioWeight"] = 0
    if host.get("OomKillDisable") and not host.get("Memory"):
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result "
                        "in the system running out of resources.")

    networking = body.get("NetworkingConfig") or {}
    endpoints: dict[str, Any] = {}
    for net, settings in ((networking.get("EndpointsConfig") or {}) if isinstance(networking, dict) else {}).items():
        endpoint: dict[str, Any] = {}
        for key, value in (settings or {}).items():
            if _empty(value) or key == "IPAddress":
                continue
            if key == "Links":   # Docker Compose v2 sends a service's links per endpoint: the engine's are HostConfig's
                host["Links"] = list(host.get("Links") or []) + [link for link in value
                                                                 if link not in (host.get("Links") or [])]
                continue
            if key not in ENDPOINT_SUPPORTED:
                raise RequestError(f"NetworkingConfig.EndpointsConfig.{net}.{key} is not supported by dockyard")
            endpoint[key] = value
        ipam = endpoint.get("IPAMConfig") or {}
        address = (settings or {}).get("IPAddress")
        if address and not ipam.get("IPv4Address"):
            # Docker Compose v2 sends ipv4_address as IPAddress beside IPAMConfig.IPv4Address;
            # alone, it is the address asked for (as dockerd 25+ reads it)
            ipam = {**ipam, "IPv4Address": address}
        elif address and address != ipam.get("IPv4Address"):
            raise RequestError(f"NetworkingConfig.EndpointsConfig.{net}: IPAddress {address} and "
                               f"IPAMConfig.IPv4Address {ipam['IPv4Address']} differ")
        for key, value in ipam.items():
            if key != "IPv4Address" and not _empty(value):
                raise RequestError(f"NetworkingConfig.EndpointsConfig.{net}.IPAMConfig.{key} is not supported "
                                   "by dockyard")
        if ipam.get("IPv4Address"):
            endpoint["IPAMConfig"] = {"IPv4Address": ipam["IPv4Address"]}
        else:
            endpoint.pop("IPAMConfig", None)
        if endpoint:
            endpoints[net] = endpoint
    if mac:
        from dockyard.network import ipam as ipams

        mode = host["NetworkMode"]
        key = next(iter(endpoints), "bridge" if mode == "default" else mode)
        try:
            endpoints.setdefault(key, {})["MacAddress"] = ipams.check_mac(mac)
        except DockyardError as e:
            raise RequestError(e.message) from None
    if len(endpoints) > 1:
        raise RequestError("Container cannot be connected to network endpoints: " + ", ".join(endpoints))
    return config, host, ({"EndpointsConfig": endpoints} if endpoints else None), warnings
