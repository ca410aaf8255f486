"""One service of the canonical model -> Docker's container-create body (top-level Config keys,
``HostConfig``, ``NetworkingConfig``), as Docker Compose v2 builds it for dockerd
(pkg/compose/create.go: getCreateConfigs, buildContainerVolumes, defaultNetworkSettings).

The body then goes through ``dockyard.containers.request.normalise``, the engine's own checks,
as the API service's does. A service key the engine cannot honour is an error naming it
(``services.web.gpus is not supported by dockyard``), never silently dropped. Keys Docker
Compose itself leaves to other verbs (build, depends_on, profiles, scale, ...) pass here.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

from dockyard.errors import DockyardError
from dockyard.records import field, record


class UnsupportedError(DockyardError):
    """A service setting the engine cannot honour."""


# Keys that shape the project, not the container: handled by project.py, folded in by the loader
# (env_file, label_file, extends), or for other verbs (develop: watch; attach: up's log output).
# platform: the host's own is the only one the engine runs, as Docker Compose on a local engine.
# Any other key (annotations, post_start, gpus, ...) is refused by name when it is set.
PROJECT_KEYS = frozenset(("build", "depends_on", "profiles", "scale", "pull_policy", "pull_refresh_after",
                          "container_name", "env_file", "label_file", "extends", "develop", "platform", "attach"))
CONTAINER_KEYS = frozenset((
    "image", "command", "entrypoint", "environment", "ports", "expose", "volumes", "networks", "network_mode",
    "working_dir", "user", "hostname", "domainname", "labels", "cap_add", "cap_drop", "privileged", "read_only",
    "tmpfs", "ulimits", "init", "stop_signal", "stop_grace_period", "extra_hosts", "dns", "dns_search", "dns_opt",
    "logging", "healthcheck", "restart", "mem_limit", "mem_reservation", "memswap_limit", "mem_swappiness",
    "cpus", "cpu_shares", "cpu_quota", "cpu_period", "cpuset", "pids_limit", "shm_size", "secrets", "configs",
    "deploy", "tty", "stdin_open", "sysctls", "ipc", "pid", "security_opt", "group_add", "oom_score_adj",
    "oom_kill_disable", "cgroup_parent", "devices", "volumes_from", "runtime", "mac_address", "userns_mode",
    "uts", "cgroup", "device_cgroup_rules", "blkio_config", "links"))
# deploy keys of swarm that Docker Compose ignores for a local engine
DEPLOY_IGNORED = frozenset(("mode", "replicas", "labels", "update_config", "rollback_config", "placement",
                            "endpoint_mode"))


@record
class CreatePlan:
    """What creating one container takes: the create body and the networks to connect after."""

    body: dict[str, Any]
    name: str
    # (real network name, aliases, ipv4 address) of the service's networks beyond the first
    connect: list[tuple[str, list[str], str]] = field(default_factory=list)
    # (target, content, mode) to copy into the created container (secrets/configs not from files)
    files: list[tuple[str, bytes, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _unsupported(service_name: str, key: str, what: str = "") -> UnsupportedError:
    return UnsupportedError(f"services.{service_name}.{key}{what} is not supported by dockyard")


def check_supported(service_name: str, service: Mapping[str, Any]) -> None:
    """Refuse a service key the engine cannot honour (before anything is created)."""
    for key, value in service.items():
        if key.startswith("x-") or key in PROJECT_KEYS:
            continue
        if key not in CONTAINER_KEYS:
            if value in (None, [], {}, "", False):
                continue
            raise _unsupported(service_name, key)
    deploy = service.get("deploy") or {}
    for key, value in deploy.items():
        if key in DEPLOY_IGNORED or value in (None, {}, []):
            continue
        if key == "resources":
            for part, res in (value or {}).items():
                for rkey, rval in (res or {}).items():
                    if rval in (None, [], {}, 0, "", "0"):
                        continue
                    if (part, rkey) not in (("limits", "cpus"), ("limits", "memory"), ("limits", "pids"),
                                            ("reservations", "memory")):
                        raise _unsupported(service_name, f"deploy.resources.{part}.{rkey}")
            continue
        if key != "restart_policy":
            raise _unsupported(service_name, f"deploy.{key}")


# ------------------------------------------------------------------ values

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?\s*$", re.IGNORECASE)


def to_bytes(value: Any, where: str) -> int:
    """A compose byte value (``512m``, ``1gb``, ``"536870912"`` or an int) in bytes."""
    if value is None:
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = _BYTES.match(str(value))
    if not match:
        raise UnsupportedError(f"{where}: invalid size {value!r}")
    power = " kmgtp".index(match[2].lower() or " ")
    return int(float(match[1]) * (1024 ** power))


def to_ns(value: Any, where: str) -> int:
    """A Go duration string (``1m30s``) or a number of seconds, in nanoseconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1_000_000_000)
    from dockyard.containers.health import HealthError, parse_duration

    try:
        return parse_duration(str(value))
    except HealthError as e:
        raise UnsupportedError(f"{where}: {e.message}") from None


def _nano_cpus(value: Any) -> int:
    if value in (None, "", 0):
        return 0
    return int(round(float(value) * 1e9))


def restart_policy(service: Mapping[str, Any]) -> dict[str, Any]:
    """Docker Compose v2's getRestartPolicy: ``restart``, then deploy.restart_policy over it."""
    policy = {"Name": "no", "MaximumRetryCount": 0}
    names = {"none": "no", "no": "no", "on-failure": "on-failure", "unless-stopped": "unless-stopped",
             "any": "always", "always": "always"}
    if service.get("restart"):
        name, _, count = str(service["restart"]).partition(":")
        policy = {"Name": names.get(name, name), "MaximumRetryCount": int(count) if count.isdigit() else 0}
    deploy_policy = (service.get("deploy") or {}).get("restart_policy")
    if deploy_policy:
        condition = deploy_policy.get("condition") or "any"
        policy = {"Name": names.get(condition, condition),
                  "MaximumRetryCount": int(deploy_policy.get("max_attempts") or 0)}
    return policy


def healthcheck(service_name: str, health: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Docker's Config.Healthcheck (durations in ns); ``disable`` -> Test ["NONE"]."""
    if not health:
        return None
    if health.get("disable"):
        return {"Test": ["NONE"]}
    where = f"services.{service_name}.healthcheck"
    test = health.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    out: dict[str, Any] = {}
    if test:
        out["Test"] = list(test)
    for key, docker_key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if health.get(key):
            out[docker_key] = to_ns(health[key], f"{where}.{key}")
    if health.get("start_interval"):
        raise _unsupported(service_name, "healthcheck.start_interval")
    if health.get("retries") is not None:
        out["Retries"] = int(health["retries"])
    return out or None


def environment(service: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """``K=V`` items; a variable without a value is taken from ``environ`` when set there."""
    out = []
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            if key in environ:
                out.append(f"{key}={environ[key]}")
            continue
        out.append(f"{key}={value}")
    return out


def _port_key(port: Mapping[str, Any]) -> str:
    return f"{port['target']}/{port.get('protocol') or 'tcp'}"


def ports(service: Mapping[str, Any], publish: bool = True) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """(ExposedPorts, PortBindings) of ``expose`` and ``ports``."""
    exposed: dict[str, Any] = {}
    for item in service.get("expose") or []:
        item = str(item)
        port, _, proto = item.partition("/")
        first, _, last = port.partition("-")
        for n in range(int(first), int(last or first) + 1):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in service.get("ports") or []:
        key = _port_key(port)
        exposed[key] = {}
        if publish:
            bindings.setdefault(key, []).append({"HostIp": port.get("host_ip") or "",
                                                 "HostPort": str(port.get("published") or "")})
    return exposed, bindings


def _bind_string(vol: Mapping[str, Any]) -> str:
    """Docker Compose v2's ServiceVolumeConfig.String: ``src:dst:ro|rw[,z|Z]``."""
    mode = "ro" if vol.get("read_only") else "rw"
    selinux = (vol.get("bind") or {}).get("selinux")
    return f"{vol['source']}:{vol['target']}:{mode}" + (f",{selinux}" if selinux in ("z", "Z") else "")


def volumes(service_name: str, service: Mapping[str, Any], model: Mapping[str, Any],
            working_dir: str, inherit: Mapping[str, str] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """(Binds, Mounts): a bind that may create its host path as a Binds string (Docker Compose
    v2 does so: Mounts cannot create it), other binds, named and anonymous volumes and tmpfs as
    Mounts, then secrets and configs from files as read-only binds. ``inherit``: target ->
    anonymous volume of the container this one replaces, mounted again where nothing else is
    (Docker Compose v2's buildContainerMountOptions: data in an anonymous volume survives a
    recreate)."""
    inherit = {os.path.normpath(k): v for k, v in (inherit or {}).items()}
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    targets: set[str] = set()
    top_volumes = model.get("volumes") or {}
    for i, vol in enumerate(service.get("volumes") or []):
        kind = vol.get("type") or "volume"
        target = vol.get("target") or ""
        targets.add(os.path.normpath(target) if target else target)
        where = f"volumes[{i}]"
        if kind == "bind":
            bind = vol.get("bind") or {}
            source = vol.get("source") or ""
            if source and not os.path.isabs(source):
                source = os.path.normpath(os.path.join(working_dir, source))
            if bind.get("recursive") not in (None, "", "enabled"):
                raise _unsupported(service_name, f"{where}.bind.recursive")
            # Docker Compose v2's requireMountAPI: no bind options at all, or create_host_path
            # (the short syntax sets it), go as a Binds string, which creates a missing host path
            create = vol.get("bind") is None or bool(bind.get("create_host_path"))
            if create and not bind.get("propagation"):
                binds.append(_bind_string({**vol, "source": source}))
                continue
            mount: dict[str, Any] = {"Type": "bind", "Source": source, "Target": target,
                                     "ReadOnly": bool(vol.get("read_only"))}
            if bind.get("propagation"):
                mount["BindOptions"] = {"Propagation": bind["propagation"]}
            mounts.append(mount)
        elif kind == "volume":
            source = vol.get("source") or ""
            name = source or inherit.get(os.path.normpath(target), "")
            if source:
                top = top_volumes.get(source)
                if top is None:
                    raise UnsupportedError(f"service \"{service_name}\" refers to undefined volume {source}: "
                                           "invalid compose project")
                name = top.get("name") or source
            options = vol.get("volume") or {}
            if options.get("subpath"):
                raise _unsupported(service_name, f"{where}.volume.subpath")
            if source and not any(options.values()):
                # a named volume without options: a Binds string, as Docker Compose v2.40 sends it
                binds.append(f"{name}:{target}:{'ro' if vol.get('read_only') else 'rw'}")
                continue
            mount = {"Type": "volume", "Source": name, "Target": target, "ReadOnly": bool(vol.get("read_only"))}
            if options.get("nocopy"):
                mount["VolumeOptions"] = {"NoCopy": True}
            mounts.append(mount)
        elif kind == "tmpfs":
            options = vol.get("tmpfs") or {}
            mount = {"Type": "tmpfs", "Target": target, "ReadOnly": bool(vol.get("read_only"))}
            tmpfs_opts = {}
            if options.get("size"):
                tmpfs_opts["SizeBytes"] = to_bytes(options["size"], f"services.{service_name}.{where}.tmpfs.size")
            if options.get("mode"):
                tmpfs_opts["Mode"] = int(str(options["mode"]), 8) if isinstance(options["mode"], str) \
                    else int(options["mode"])
            if tmpfs_opts:
                mount["TmpfsOptions"] = tmpfs_opts
            mounts.append(mount)
        else:
            raise _unsupported(service_name, f"{where}.type", f" {kind!r}")
    for kind, i, target, defined in _file_refs(service_name, service, model):
        if os.path.normpath(target) in targets:
            continue   # Docker Compose v2: a volume at the same target wins
        if defined.get("file"):
            mounts.append({"Type": "bind", "Source": defined["file"], "Target": target, "ReadOnly": True})
            targets.add(os.path.normpath(target))
    for target, name in sorted(inherit.items()):   # the image's VOLUMEs
        if target not in targets:
            mounts.append({"Type": "volume", "Source": name, "Target": target, "ReadOnly": False})
    return binds, mounts


def _file_refs(service_name: str, service: Mapping[str, Any],
               model: Mapping[str, Any]) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(kind, index, target in the container, top-level definition) of the service's secrets
    and configs; targets as Docker Compose v2 places them (/run/secrets/<name>, /<name>)."""
    out = []
    for kind, base in (("secrets", "/run/secrets/"), ("configs", "/")):
        top = model.get(kind) or {}
        for i, ref in enumerate(service.get(kind) or []):
            if isinstance(ref, str):
                ref = {"source": ref}
            source = ref.get("source") or ""
            target = ref.get("target") or ""
            if not target:
                target = base + source
            elif not target.startswith("/"):
                target = base + target
            defined = top.get(source)
            if defined is None:
                raise UnsupportedError(f"service \"{service_name}\" refers to undefined {kind[:-1]} {source}: "
                                       "invalid compose project")
            if defined.get("external"):
                raise UnsupportedError(f"unsupported external {kind[:-1]} {defined.get('name') or source}")
            if not (defined.get("file") or "environment" in defined or "content" in defined):
                raise UnsupportedError(f"{kind[:-1]} {source} is empty: file, environment or content is needed")
            out.append((kind, i, target, dict(defined, _ref=ref)))
    return out


def injected_files(service_name: str, service: Mapping[str, Any], model: Mapping[str, Any],
                   environ: Mapping[str, str]) -> list[tuple[str, bytes, int]]:
    """(target, content, mode) of the secrets and configs from ``environment`` or ``content``:
    Docker Compose v2 copies these into the created container (injectSecrets/injectConfigs);
    file sources are bind mounts (``volumes``)."""
    taken = {os.path.normpath(v.get("target") or "") for v in service.get("volumes") or []}
    out = []
    for kind, _, target, defined in _file_refs(service_name, service, model):
        if defined.get("file") or os.path.normpath(target) in taken:
            continue
        if "environment" in defined:
            variable = defined["environment"]
            if variable not in environ:
                raise UnsupportedError(f"environment variable {variable!r} required by {kind[:-1]} "
                                       f"{defined.get('name') or target!r} is not set")
            data = environ[variable].encode()
        else:
            data = str(defined.get("content") or "").encode()
        mode = defined["_ref"].get("mode")
        mode = int(str(mode), 8) if isinstance(mode, str) else (int(mode) if mode is not None else 0o444)
        out.append((target, data, mode))
    return out


def networks_by_priority(service: Mapping[str, Any]) -> list[str]:
    """compose-go's NetworksByPriority: highest priority first, then by name."""
    nets = service.get("networks") or {}
    return sorted(nets, key=lambda k: (-int(((nets[k] or {}).get("priority")) or 0), k))


def _endpoint(service_name: str, container_name: str, conf: Mapping[str, Any] | None,
              use_aliases: bool) -> tuple[list[str], str]:
    conf = conf or {}
    for key in ("ipv6_address", "link_local_ips", "driver_opts", "gw_priority"):
        if conf.get(key):
            raise _unsupported(service_name, f"networks.{key}")
    aliases = [container_name]
    if use_aliases:
        aliases += [service_name] + [a for a in conf.get("aliases") or [] if a not in (service_name, container_name)]
    return aliases, conf.get("ipv4_address") or ""


def _dns_names(aliases: list[str], warnings: list[str]) -> list[str]:
    """The aliases the engine's DNS takes (RFC 1123 names and underscores); the others are left
    out with a warning: dockerd takes any alias, so an odd name would otherwise fail the whole
    ``up`` (the container's own name still resolves: the engine answers it)."""
    from dockyard.errors import DockyardError
    from dockyard.network.ipam import check_dns_name

    out = []
    for alias in aliases:
        try:
            out.append(check_dns_name(alias))
        except DockyardError:
            warnings.append(f"network alias {alias!r} is not a DNS name the engine answers: left out")
    return out


def build(project_name: str, model: Mapping[str, Any], service_name: str, service: Mapping[str, Any], *,
          container_name: str, labels: Mapping[str, str], environ: Mapping[str, str], working_dir: str = "",
          image: str | None = None, use_aliases: bool = True, publish: bool = True,
          service_container: Callable[[str], str] | None = None,
          inherit: Mapping[str, str] | None = None, links: list[str] | None = None) -> CreatePlan:
    """The create plan of one container of ``service``. ``service_container(name)``: the ID of a
    container of another service (``network_mode: service:name``); ``inherit``: target ->
    anonymous volume of the container replaced; ``links``: HostConfig.Links (``name:alias``)."""
    check_supported(service_name, service)
    where = f"services.{service_name}"
    config: dict[str, Any] = {
        "Image": image or service.get("image") or f"{project_name}-{service_name}",
        "Labels": dict(labels),
        "AttachStdout": True, "AttachStderr": True,
        "Tty": bool(service.get("tty")), "OpenStdin": bool(service.get("stdin_open")),
    }
    if service.get("command") is not None:
        config["Cmd"] = list(service["command"])
    if service.get("entrypoint") is not None:
        config["Entrypoint"] = list(service["entrypoint"])
    for key, docker_key in (("hostname", "Hostname"), ("domainname", "Domainname"), ("user", "User"),
                            ("working_dir", "WorkingDir"), ("stop_signal", "StopSignal"),
                            ("mac_address", "MacAddress")):
        if service.get(key):
            config[docker_key] = str(service[key])
    env = environment(service, environ)
    if env:
        config["Env"] = env
    health = healthcheck(service_name, service.get("healthcheck"))
    if health:
        config["Healthcheck"] = health
    if service.get("stop_grace_period"):
        config["StopTimeout"] = to_ns(service["stop_grace_period"], f"{where}.stop_grace_period") // 1_000_000_000
    exposed, bindings = ports(service, publish)
    if exposed:
        config["ExposedPorts"] = exposed

    binds, mounts = volumes(service_name, service, model, working_dir, inherit)
    host: dict[str, Any] = {
        "Binds": binds or None, "Mounts": mounts or None, "PortBindings": bindings,
        "RestartPolicy": restart_policy(service),
        "CapAdd": _caps(service.get("cap_add")), "CapDrop": _caps(service.get("cap_drop")),
        "Privileged": bool(service.get("privileged")), "ReadonlyRootfs": bool(service.get("read_only")),
        "Init": True if service.get("init") else None,
        "Dns": _list(service.get("dns")), "DnsSearch": _list(service.get("dns_search")),
        "DnsOptions": _list(service.get("dns_opt")),
        "ExtraHosts": [_extra_host(h) for h in _list(service.get("extra_hosts"))] or None,
        "SecurityOpt": list(service.get("security_opt") or []) or None,
        "GroupAdd": [str(g) for g in service.get("group_add") or []] or None,
        "Sysctls": {str(k): str(v) for k, v in (service.get("sysctls") or {}).items()} or None,
        "IpcMode": service.get("ipc") or "", "PidMode": service.get("pid") or "",
        "UsernsMode": service.get("userns_mode") or "", "UTSMode": service.get("uts") or "",
        "CgroupnsMode": service.get("cgroup") or "", "CgroupParent": service.get("cgroup_parent") or "",
        "OomScoreAdj": int(service.get("oom_score_adj") or 0),
        "OomKillDisable": bool(service.get("oom_kill_disable")),
        "VolumesFrom": list(service.get("volumes_from") or []) or None,
        "Runtime": service.get("runtime") or "",
        "DeviceCgroupRules": list(service.get("device_cgroup_rules") or []) or None,
        "Links": list(links or []) or None,
    }
    if isinstance(service.get("extra_hosts"), dict):
        host["ExtraHosts"] = [f"{k}:{v}" for k, v in service["extra_hosts"].items()]
    tmpfs: dict[str, str] = {}
    for item in _list(service.get("tmpfs")):
        path, _, opts = item.partition(":")
        tmpfs[path] = opts
    host["Tmpfs"] = tmpfs or None
    if service.get("ulimits"):
        host["Ulimits"] = [_ulimit(name, value) for name, value in service["ulimits"].items()]
    if service.get("logging"):
        logging = service["logging"]
        host["LogConfig"] = {"Type": logging.get("driver") or "json-file",
                             "Config": {str(k): str(v) for k, v in (logging.get("options") or {}).items()}}
    _resources(service_name, service, host)
    for item in service.get("devices") or []:
        host.setdefault("Devices", []).append(_device(item))

    networking: dict[str, Any] | None = None
    connect: list[tuple[str, list[str], str]] = []
    warnings: list[str] = []
    mode = service.get("network_mode") or ""
    if mode.startswith("service:"):
        if service_container is None:
            raise UnsupportedError(f"{where}.network_mode: service {mode[8:]} has no container")
        host["NetworkMode"] = "container:" + service_container(mode[8:])
    elif mode:
        if mode not in ("none", "host", "bridge") and not mode.startswith("container:"):
            raise _unsupported(service_name, "network_mode", f" {mode!r}")
        host["NetworkMode"] = mode
    elif not (model.get("networks") or {}):
        host["NetworkMode"] = "none"
    else:
        keys = networks_by_priority(service) or ["default"]
        nets = service.get("networks") or {}
        top = model.get("networks") or {}

        def real(key: str) -> str:
            if key not in top:
                raise UnsupportedError(f"service \"{service_name}\" refers to undefined network {key}: "
                                       "invalid compose project")
            return (top[key] or {}).get("name") or f"{project_name}_{key}"

        aliases, ip = _endpoint(service_name, container_name, nets.get(keys[0]), use_aliases)
        endpoint: dict[str, Any] = {"Aliases": _dns_names(aliases, warnings)}
        if ip:
            endpoint["IPAMConfig"] = {"IPv4Address": ip}
        if (nets.get(keys[0]) or {}).get("mac_address"):
            endpoint["MacAddress"] = nets[keys[0]]["mac_address"]
        host["NetworkMode"] = real(keys[0])
        networking = {"EndpointsConfig": {real(keys[0]): endpoint}}
        for key in keys[1:]:
            aliases, ip = _endpoint(service_name, container_name, nets.get(key), use_aliases)
            connect.append((real(key), _dns_names(aliases, []), ip))
    body = {**config, "HostConfig": host}
    if networking:
        body["NetworkingConfig"] = networking
    return CreatePlan(body=body, name=container_name, connect=connect,
                      files=injected_files(service_name, service, model, environ), warnings=warnings)


def _caps(value: Any) -> list[str] | None:
    """Capabilities as Docker Compose v2 sends them: ``CAP_`` prefixed (``ALL`` as it is)."""
    out = [c if c.upper() == "ALL" or c.upper().startswith("CAP_") else "CAP_" + c for c in _list(value)]
    return out or None


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _extra_host(item: str) -> str:
    """``host=ip`` (Compose v2.24+) or ``host:ip`` -> Docker's ``host:ip``."""
    if "=" in item:
        name, _, ip = item.partition("=")
        return f"{name}:{ip}"
    return item


def _ulimit(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        single = int(value.get("single") or 0)
        soft = int(value.get("soft") or single)
        hard = int(value.get("hard") or single)
        return {"Name": name, "Soft": soft, "Hard": hard}
    return {"Name": name, "Soft": int(value), "Hard": int(value)}


def _device(item: Any) -> dict[str, str]:
    if isinstance(item, dict):
        source, target, perms = item.get("source") or "", item.get("target") or "", item.get("permissions") or ""
    else:
        parts = str(item).split(":")
        source = parts[0]
        target = parts[1] if len(parts) > 1 else source
        perms = parts[2] if len(parts) > 2 else ""
    return {"PathOnHost": source, "PathInContainer": target or source, "CgroupPermissions": perms or "rwm"}


def _resources(service_name: str, service: Mapping[str, Any], host: dict[str, Any]) -> None:
    """Docker Compose v2's getDeployResources: the service's own keys, deploy.resources over them."""
    where = f"services.{service_name}"
    host["Memory"] = to_bytes(service.get("mem_limit"), f"{where}.mem_limit")
    host["MemoryReservation"] = to_bytes(service.get("mem_reservation"), f"{where}.mem_reservation")
    swap = service.get("memswap_limit")
    host["MemorySwap"] = -1 if swap in (-1, "-1") else to_bytes(swap, f"{where}.memswap_limit")
    if service.get("mem_swappiness") not in (None, ""):
        host["MemorySwappiness"] = int(service["mem_swappiness"])
    host["NanoCpus"] = _nano_cpus(service.get("cpus"))
    host["CpuShares"] = int(service.get("cpu_shares") or 0)
    host["CpuQuota"] = int(service.get("cpu_quota") or 0)
    host["CpuPeriod"] = int(service.get("cpu_period") or 0)
    host["CpusetCpus"] = str(service.get("cpuset") or "")
    host["ShmSize"] = to_bytes(service.get("shm_size"), f"{where}.shm_size")
    if service.get("pids_limit"):
        host["PidsLimit"] = int(service["pids_limit"])
    blkio = service.get("blkio_config") or {}
    if blkio.get("weight"):
        host["BlkioWeight"] = int(blkio["weight"])
    for key, docker_key, rate in (("weight_device", "BlkioWeightDevice", "weight"),
                                  ("device_read_bps", "BlkioDeviceReadBps", "rate"),
                                  ("device_write_bps", "BlkioDeviceWriteBps", "rate"),
                                  ("device_read_iops", "BlkioDeviceReadIOps", "rate"),
                                  ("device_write_iops", "BlkioDeviceWriteIOps", "rate")):
        if blkio.get(key):
            host[docker_key] = [{"Path": d["path"], ("Weight" if rate == "weight" else "Rate"):
                                 to_bytes(d[rate], f"{where}.blkio_config.{key}")} for d in blkio[key]]
    resources = (service.get("deploy") or {}).get("resources") or {}
    limits = resources.get("limits") or {}
    if limits.get("memory"):
        host["Memory"] = to_bytes(limits["memory"], f"{where}.deploy.resources.limits.memory")
    if limits.get("cpus"):
        host["NanoCpus"] = _nano_cpus(limits["cpus"])
    if limits.get("pids"):
        host["PidsLimit"] = int(limits["pids"])
    reservations = resources.get("reservations") or {}
    if reservations.get("memory"):
        host["MemoryReservation"] = to_bytes(reservations["memory"], f"{where}.deploy.resources.reservations.memory")
