"""Short syntax -> long syntax, defaults, absolute paths: the canonical model.

Follows compose-go v2 step by step (transform.Canonical, SetDefaultValues,
ResolveRelativePaths, Normalize, the environment resolution) and then shapes the
result as Docker Compose v2 marshals its Go structs: keys in struct order, empty
values left out, durations as Go durations ("1m30s"), byte sizes as strings of bytes.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import sys
from typing import Any, Callable, Mapping

from dockyard.compose.errors import ComposeError, Path, PathError, format_path
from dockyard.compose.merge import matches

Tree = dict[str, Any]
Lookup = Callable[[str], "str | None"]


# --------------------------------------------------------------------------- short syntaxes

def parse_volume(spec: str) -> dict[str, Any]:
    """format.ParseVolume: `[SOURCE:]TARGET[:MODE]` -> a long-syntax mount."""
    volume: dict[str, Any] = {}
    if not spec:
        raise ComposeError("invalid empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec, "volume": {}}
    parts: list[str] = []
    buffer = ""
    depth = 0
    i = 0
    while i < len(spec):
        ch = spec[i]
        if ch == "$" and spec[i + 1:i + 2] == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        if ch == ":" and depth == 0 and not (len(buffer) == 1 and buffer.isalpha()):
            if not buffer:
                raise ComposeError(f"invalid spec: {spec}: empty section between colons")
            parts.append(buffer)
            buffer = ""
        else:
            buffer += ch
        i += 1
    if not buffer:
        raise ComposeError(f"invalid spec: {spec}: empty section between colons")
    parts.append(buffer)
    if len(parts) > 3:
        raise ComposeError(f"invalid spec: {spec}: too many colons")
    if len(parts) == 1:
        volume["target"] = parts[0]
    else:
        volume["source"], volume["target"] = parts[0], parts[1]
    bind: dict[str, Any] = {}
    if len(parts) == 3:
        for option in parts[2].split(","):
            if option == "ro":
                volume["read_only"] = True
            elif option == "rw":
                volume["read_only"] = False
            elif option == "nocopy":
                volume["volume"] = {"nocopy": True}
            elif option in ("rprivate", "private", "rshared", "shared", "rslave", "slave"):
                bind["propagation"] = option
            elif option in ("z", "Z"):
                bind["selinux"] = option
    source = volume.get("source", "")
    if source[:1] in (".", "/", "~") or source.startswith("\\\\"):
        volume = {"type": "bind", **volume}
        bind["create_host_path"] = True
        volume["bind"] = bind
    else:
        volume = {"type": "volume", **volume}
        volume.setdefault("volume", {})
        if bind:
            volume["bind"] = bind
    if volume.get("read_only") is False:
        del volume["read_only"]
    if volume.get("target"):
        volume["target"] = posixpath.normpath(volume["target"])
    return volume


def _split_port_part(text: str) -> tuple[int, int]:
    if "-" in text:
        low, high = text.split("-", 1)
        start, end = int(low), int(high)
    else:
        start = end = int(text)
    if end < start:
        raise ValueError(text)
    return start, end


def parse_ports(spec: str) -> list[dict[str, Any]]:
    """types.ParsePortConfig (docker's nat.ParsePortSpecs): one entry per container port."""
    raw = spec
    protocol = "tcp"
    if "/" in spec:
        spec, protocol = spec.rsplit("/", 1)
    host_ip = ""
    if spec.startswith("["):
        end = spec.index("]")
        host_ip, spec = spec[1:end], spec[end + 2:]
        parts = spec.split(":")
        published, container = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    else:
        parts = spec.split(":")
        if len(parts) == 1:
            published, container = "", parts[0]
        elif len(parts) == 2:
            published, container = parts
        elif len(parts) == 3:
            host_ip, published, container = parts
        else:  # an IPv6 host address without brackets
            host_ip, published, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    try:
        start, end = _split_port_part(container)
        pub_range = _split_port_part(published) if published else None
    except ValueError:
        raise ComposeError(f"invalid port spec {raw!r}") from None
    count = end - start + 1
    if pub_range and (pub_range[1] - pub_range[0] + 1) != count and count != 1:
        raise ComposeError(f"invalid ranges specified for container and host ports: {raw}")
    out = []
    for i in range(count):
        entry: dict[str, Any] = {"mode": "ingress"}
        if host_ip:
            entry["host_ip"] = host_ip
        entry["target"] = start + i
        if pub_range:
            if count == 1 and pub_range[0] != pub_range[1]:
                entry["published"] = f"{pub_range[0]}-{pub_range[1]}"
            else:
                entry["published"] = str(pub_range[0] + i)
        entry["protocol"] = protocol
        out.append(entry)
    return out


# --------------------------------------------------------------------------- canonical

def _ports(value: Any, path: Path) -> Any:
    if not isinstance(value, list):
        raise ComposeError(f"{format_path(path)}: invalid type for port")
    out: list[Any] = []
    for entry in value:
        if isinstance(entry, (int, str)) and not isinstance(entry, bool):
            out.extend(parse_ports(str(entry)))
        elif isinstance(entry, dict):
            out.append(entry)
        else:
            raise ComposeError(f"{format_path(path)}: invalid type for port")
    return out


def _volume_mount(value: Any, path: Path) -> Any:
    if isinstance(value, str):
        return parse_volume(value)
    return value


def _depends_on(value: Any, path: Path) -> Any:
    if isinstance(value, list):
        return {str(k): {"condition": "service_started", "required": True} for k in value}
    if isinstance(value, dict):
        for name, dep in value.items():
            if not isinstance(dep, dict):
                raise ComposeError(f"{format_path(path)}.{name}: unsupported value")
            dep.setdefault("condition", "service_started")
            dep.setdefault("required", True)
    return value


def _env_file(value: Any, path: Path) -> Any:
    items = [value] if isinstance(value, str) else list(value or [])
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"path": item, "required": True})
        elif isinstance(item, dict):
            item.setdefault("required", True)
            out.append(item)
    return out


def _device(value: Any, path: Path) -> Any:
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) > 3:
        raise ComposeError(f"confusing device mapping, please use long syntax: {value}")
    source = parts[0]
    target = parts[1] if len(parts) > 1 and parts[1] else source
    return {"source": source, "target": target, "permissions": parts[2] if len(parts) == 3 else "rwm"}


def _string_or_list(value: Any, path: Path) -> Any:
    return [value] if isinstance(value, str) else value


def _slice_to_map(value: Any, path: Path) -> Any:
    if isinstance(value, list):
        return {str(k): None for k in value}
    return value


def _file_mount(value: Any, path: Path) -> Any:
    return {"source": value} if isinstance(value, str) else value


def _build(value: Any, path: Path) -> Any:
    if isinstance(value, str):
        return {"context": value}
    if isinstance(value, dict):
        return _walk_mapping(value, path, CANONICAL)
    return value


def _extends(value: Any, path: Path) -> Any:
    return {"service": value} if isinstance(value, str) else value


def _key_value(value: Any, path: Path) -> Any:
    if isinstance(value, list):
        out = {}
        for item in value:
            key, sep, val = str(item).partition("=")
            if not sep:
                raise ComposeError(f"{format_path(path)}: invalid value {item}, expected key=value")
            out[key] = val
        return out
    return value


def _maybe_external(value: Any, path: Path) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        external = value.get("external")
        if isinstance(external, dict):
            value["external"] = True
            if "name" in external:
                print(f"WARN[0000] {format_path(path)}: external.name is deprecated. Please set name and external: true",
                      file=sys.stderr)   # as v2 (compose-go transformMaybeExternal)
                if "name" in value and value["name"] != external["name"]:
                    raise ComposeError(f"{format_path(path)}: name and external.name conflict; only use name")
                value.setdefault("name", external["name"])
    return value


def _service(value: Any, path: Path) -> Any:
    if isinstance(value, dict):
        return _walk_mapping(value, path, CANONICAL)
    return value


CANONICAL: list[tuple[str, Callable[[Any, Path], Any]]] = [
    ("services.*", _service),
    ("services.*.build.secrets.*", _file_mount),
    ("services.*.build.additional_contexts", _key_value),
    ("services.*.depends_on", _depends_on),
    ("services.*.env_file", _env_file),
    ("services.*.label_file", _string_or_list),
    ("services.*.extends", _extends),
    ("services.*.networks", _slice_to_map),
    ("services.*.models", _slice_to_map),
    ("services.*.volumes.*", _volume_mount),
    ("services.*.dns", _string_or_list),
    ("services.*.devices.*", _device),
    ("services.*.secrets.*", _file_mount),
    ("services.*.configs.*", _file_mount),
    ("services.*.ports", _ports),
    ("services.*.build", _build),
    ("volumes.*", _maybe_external),
    ("networks.*", _maybe_external),
    ("secrets.*", _maybe_external),
    ("configs.*", _maybe_external),
]


def _at(path: Path, exc: ComposeError) -> PathError:
    if isinstance(exc, PathError):
        return exc
    where = format_path(path)
    return PathError(path, exc.message if exc.message.startswith(where) else f"{where}: {exc.message}")


def _walk(value: Any, path: Path, table: list[tuple[str, Callable[[Any, Path], Any]]]) -> Any:
    for pattern, func in table:
        if matches(path, pattern):
            try:
                return func(value, path)
            except ComposeError as exc:
                raise _at(path, exc) from None
    if isinstance(value, dict):
        return _walk_mapping(value, path, table)
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _walk(item, path + (i,), table)
    return value


def _walk_mapping(value: dict[str, Any], path: Path, table: list[tuple[str, Callable[[Any, Path], Any]]]) -> Any:
    for key in list(value):
        value[key] = _walk(value[key], path + (key,), table)
    return value


def canonical(tree: Tree) -> Tree:
    """transform.Canonical: every short syntax rewritten to its long form."""
    return _walk_mapping(tree, (), CANONICAL)


def omit_empty(tree: Tree) -> Tree:
    """loader.OmitEmpty: empty entries of `dns` are dropped (an unset variable made them)."""
    for service in (tree.get("services") or {}).values():
        if isinstance(service, dict) and isinstance(service.get("dns"), list):
            service["dns"] = [d for d in service["dns"] if d not in (None, "")]
    return tree


# --------------------------------------------------------------------------- defaults, paths

def set_defaults(tree: Tree) -> Tree:
    for service in (tree.get("services") or {}).values():
        if not isinstance(service, dict):
            continue
        build = service.get("build")
        if isinstance(build, dict):
            build.setdefault("context", ".")
        for secret in service.get("secrets") or []:
            if isinstance(secret, dict):
                secret.setdefault("target", f"/run/secrets/{secret.get('source')}")
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "tcp")
                port.setdefault("mode", "ingress")
    return tree


def _abs(path: str, base: str) -> str:
    path = os.path.expanduser(path)
    if not path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def _is_remote(context: str) -> bool:
    return bool(re.match(r"^(https?://|git@|git://|github\.com/|[a-z][a-z0-9+.-]*://)", context)) or context.endswith(".git")


def resolve_paths(tree: Tree, base: str) -> Tree:
    """paths.ResolveRelativePaths: every file path of the model made absolute against base."""
    for service in (tree.get("services") or {}).values():
        if not isinstance(service, dict):
            continue
        build = service.get("build")
        if isinstance(build, dict):
            context = build.get("context")
            if isinstance(context, str) and not _is_remote(context):
                build["context"] = _abs(context, base)
            contexts = build.get("additional_contexts")
            if isinstance(contexts, dict):
                for key, value in contexts.items():
                    if isinstance(value, str) and not _is_remote(value) and "://" not in value and not value.startswith(
                        ("docker-image:", "target:", "service:")
                    ):
                        contexts[key] = _abs(value, base)
        for env_file in service.get("env_file") or []:
            if isinstance(env_file, dict) and isinstance(env_file.get("path"), str):
                env_file["path"] = _abs(env_file["path"], base)
        if isinstance(service.get("label_file"), list):
            service["label_file"] = [_abs(p, base) for p in service["label_file"]]
        develop = service.get("develop")
        for trigger in (develop.get("watch") or []) if isinstance(develop, dict) else []:
            if isinstance(trigger, dict) and isinstance(trigger.get("path"), str):
                trigger["path"] = _abs(trigger["path"], base)
        extends = service.get("extends")
        if isinstance(extends, dict) and isinstance(extends.get("file"), str):
            extends["file"] = _abs(extends["file"], base)
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and volume.get("type") == "bind":
                if "source" not in volume:
                    raise ComposeError('invalid mount config for type "bind": field Source must not be empty')
                volume["source"] = _abs(volume["source"], base)
    for kind in ("configs", "secrets"):
        for item in (tree.get(kind) or {}).values():
            if isinstance(item, dict) and isinstance(item.get("file"), str):
                item["file"] = _abs(item["file"], base)
    for volume in (tree.get("volumes") or {}).values():
        if isinstance(volume, dict) and volume.get("driver") == "local":
            opts = volume.get("driver_opts") or {}
            if opts.get("o") == "bind" and isinstance(opts.get("device"), str):
                opts["device"] = _abs(opts["device"], base)
    return tree


# --------------------------------------------------------------------------- Normalize

def _resolve_mapping(value: Any, lookup: Lookup, null_if_unset: bool) -> dict[str, Any]:
    """A list or mapping of KEY[=VALUE] -> mapping; a KEY without value is looked up."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for entry in value or []:
            key, sep, val = str(entry).partition("=")
            items.append((key, val if sep else None))
    for key, val in items:
        if val is None:
            found = lookup(key)
            if found is not None:
                out[key] = found
            elif null_if_unset:
                out[key] = None
        else:
            out[key] = _go_scalar(val)
    return out


def _go_scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_STARTED = "service_started"


def normalize(tree: Tree, project_name: str, lookup: Lookup) -> Tree:
    """loader.Normalize: the implicit default network, depends_on from links and shared
    namespaces, build defaults, resolved environment, names of project resources."""
    tree["name"] = project_name
    _normalize_networks(tree)
    for service in (tree.get("services") or {}).values():
        if service.get("pull_policy") == "if_not_present":
            service["pull_policy"] = "missing"
        build = service.get("build")
        if isinstance(build, dict):
            build.setdefault("context", ".")
            if build.get("dockerfile") is None and build.get("dockerfile_inline") is None:
                build["dockerfile"] = "Dockerfile"
            if "args" in build:
                build["args"] = _resolve_mapping(build["args"], lookup, False)
        if "environment" in service:
            service["environment"] = _resolve_mapping(service["environment"], lookup, True)
        depends = service.get("depends_on") or {}
        for link in service.get("links") or []:
            name = link.split(":")[0] if len(link.split(":")) == 2 else link
            depends.setdefault(name, {"condition": _STARTED, "restart": True, "required": True})
        for namespace in ("network_mode", "ipc", "pid", "uts", "cgroup"):
            ref = service.get(namespace)
            if isinstance(ref, str) and ref.startswith("service:"):
                depends.setdefault(ref[len("service:"):], {"condition": _STARTED, "restart": True, "required": True})
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and volume.get("target"):
                volume["target"] = posixpath.normpath(volume["target"])
        for ref in service.get("volumes_from") or []:
            if not ref.startswith("container:"):
                depends.setdefault(ref.split(":")[0], {"condition": _STARTED, "restart": False, "required": True})
        if depends:
            service["depends_on"] = depends
    for kind in ("networks", "volumes", "configs", "secrets"):
        for key, item in list((tree.get(kind) or {}).items()):
            if item is None:
                item = tree[kind][key] = {}
            if item.get("name"):
                continue
            item["name"] = key if item.get("external") else f"{project_name}_{key}"
    return tree


def _normalize_networks(tree: Tree) -> None:
    networks = tree.get("networks") or {}
    uses_default = False
    for service in (tree.get("services") or {}).values():
        if "provider" in service or "network_mode" in service:
            continue
        nets = service.get("networks")
        if not nets:
            service["networks"] = {"default": None}
            uses_default = True
        elif "default" in nets:
            uses_default = True
    if uses_default:
        networks.setdefault("default", None)
        if networks["default"] is None:
            networks["default"] = {}
    if networks:
        tree["networks"] = networks


# --------------------------------------------------------------------------- environment

def resolve_environment(service: dict[str, Any], lookup: Lookup) -> None:
    """Fold env_file(s) under environment (environment wins), as WithServicesEnvironmentResolved."""
    env_files = service.pop("env_file", None)
    if not env_files and "environment" not in service:
        return
    from dockyard.compose.files import read_env_file

    merged: dict[str, Any] = {}
    for env_file in env_files or []:
        path = env_file["path"]
        if not os.path.exists(path):
            if env_file.get("required", True):
                raise ComposeError(f"env file {path} not found: stat {path}: no such file or directory")
            continue
        values = read_env_file(path, lookup)
        for key, value in values.items():
            if value is not None:  # a bare KEY not set in the environment is left out
                merged[key] = value
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            found = lookup(key)
            merged[key] = found if found is not None else merged.get(key)
        else:
            merged[key] = value
    if merged:
        service["environment"] = merged
    else:
        service.pop("environment", None)


def resolve_labels(service: dict[str, Any], lookup: Lookup | None = None) -> None:
    """labels list -> mapping, label_file(s) read under them (labels win)."""
    label_files = service.pop("label_file", None) or []
    labels = service.get("labels")
    out: dict[str, str] = {}
    if label_files:
        from dockyard.compose.files import read_env_file

        for path in label_files:
            for key, value in read_env_file(path, lookup).items():
                out[key] = "" if value is None else value
    if isinstance(labels, list):
        for entry in labels:
            key, _, value = str(entry).partition("=")
            out[key] = value
    elif isinstance(labels, dict):
        out.update({k: ("" if v is None else _go_scalar(v)) for k, v in labels.items()})
    if out or labels is not None:
        service["labels"] = out


# --------------------------------------------------------------------------- Go-shaped output

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


def parse_duration(value: Any) -> int:
    """A compose duration ("1m30s", "1.5h", 90 seconds as a number) -> nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 10**9)
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text in ("0", ""):
        return 0
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ComposeError(f'time: invalid duration "{value}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * int(round(total))


def format_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size, size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = rest / 10**9
    sec_text = f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{sign}{minutes}m{sec_text}"
    return sign + sec_text


def _trim(value: float, size: int) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
               "t": 1024**4, "tb": 1024**4, "p": 1024**5, "pb": 1024**5}


def parse_bytes(value: Any) -> int:
    """docker/go-units RAMInBytes: "512m" -> 536870912."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?[bB]?)\s*", str(value))
    if not match:
        raise ComposeError(f"invalid size: '{value}'")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


SERVICE_ORDER = (
    "profiles annotations attach build develop blkio_config cap_add cap_drop cgroup_parent cgroup cpu_count "
    "cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpus cpuset cpu_shares command configs "
    "container_name credential_spec depends_on deploy device_cgroup_rules devices dns dns_opt dns_search "
    "dockerfile domainname entrypoint provider environment env_file expose extends external_links extra_hosts "
    "group_add gpus hostname healthcheck image init ipc isolation labels label_file links logging log_driver "
    "log_opt mem_limit mem_reservation memswap_limit mem_swappiness mac_address models net network_mode "
    "networks oom_kill_disable oom_score_adj pid pids_limit platform ports privileged pull_policy "
    "pull_refresh_after read_only restart runtime scale secrets security_opt shm_size stdin_open "
    "stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits use_api_socket user userns_mode uts "
    "volume_driver volumes volumes_from working_dir pre_start post_start pre_stop"
).split()

ORDERS: dict[str, list[str]] = {
    "services.*": SERVICE_ORDER,
    "services.*.build": ("context dockerfile dockerfile_inline entitlements args provenance sbom ssh labels "
                         "cache_from cache_to no_cache no_cache_filter additional_contexts pull extra_hosts "
                         "isolation network target secrets shm_size tags ulimits platforms privileged").split(),
    "services.*.healthcheck": "test timeout interval retries start_period start_interval disable".split(),
    "services.*.ports.*": "name mode host_ip target published protocol app_protocol".split(),
    "services.*.volumes.*": "type source target read_only consistency bind volume tmpfs image".split(),
    "services.*.volumes.*.bind": "selinux propagation create_host_path recursive".split(),
    "services.*.volumes.*.volume": "labels nocopy subpath".split(),
    "services.*.volumes.*.tmpfs": "size mode".split(),
    "services.*.depends_on.*": "condition restart required".split(),
    "services.*.networks.*": ("aliases driver_opts gw_priority interface_name ipv4_address ipv6_address "
                              "link_local_ips mac_address priority").split(),
    "services.*.deploy": ("mode replicas labels update_config rollback_config resources restart_policy "
                          "placement endpoint_mode").split(),
    "services.*.deploy.resources": "limits reservations".split(),
    "services.*.deploy.resources.*": "cpus memory pids devices generic_resources".split(),
    "services.*.deploy.update_config": "parallelism delay failure_action monitor max_failure_ratio order".split(),
    "services.*.deploy.rollback_config": "parallelism delay failure_action monitor max_failure_ratio order".split(),
    "services.*.devices.*": "source target permissions".split(),
    "services.*.deploy.restart_policy": "condition delay max_attempts window".split(),
    "services.*.logging": "driver options".split(),
    "services.*.secrets.*": "source target uid gid mode".split(),
    "services.*.configs.*": "source target uid gid mode".split(),
    "services.*.ulimits.*": "single soft hard".split(),
    "services.*.extends": "file service".split(),
    "services.*.build.secrets.*": "source target uid gid mode".split(),
    "services.*.build.ulimits.*": "single soft hard".split(),
    "services.*.develop.watch.*": "path action target exec include ignore initial_sync".split(),
    "services.*.develop.watch.*.exec": "command user privileged working_dir environment".split(),
    "networks.*": ("name driver driver_opts ipam external internal attachable labels enable_ipv4 "
                   "enable_ipv6").split(),
    "networks.*.ipam": "driver config options".split(),
    "networks.*.ipam.config.*": "subnet gateway ip_range aux_addresses".split(),
    "volumes.*": "name driver driver_opts external labels".split(),
    "models.*": "name model context_size runtime_flags".split(),
    "services.*.models.*": "endpoint_var model_var".split(),
    "secrets.*": "name file environment content external labels driver driver_opts template_driver".split(),
    "configs.*": "name file environment content external labels driver driver_opts template_driver".split(),
}

_DURATIONS = ("services.*.healthcheck.timeout", "services.*.healthcheck.interval",
              "services.*.healthcheck.start_period", "services.*.healthcheck.start_interval",
              "services.*.stop_grace_period", "services.*.deploy.restart_policy.delay",
              "services.*.deploy.restart_policy.window", "services.*.deploy.update_config.delay",
              "services.*.deploy.update_config.monitor", "services.*.deploy.rollback_config.delay",
              "services.*.deploy.rollback_config.monitor")
_BYTES = ("services.*.mem_limit", "services.*.mem_reservation", "services.*.memswap_limit",
          "services.*.shm_size", "services.*.build.shm_size", "services.*.volumes.*.tmpfs.size",
          "services.*.deploy.resources.limits.memory", "services.*.deploy.resources.reservations.memory")
_STRING_MAPS = ("services.*.sysctls", "secrets.*.labels", "configs.*.labels", "services.*.logging.options", "services.*.build.labels",
                "services.*.deploy.labels", "networks.*.labels", "volumes.*.labels", "networks.*.driver_opts",
                "volumes.*.driver_opts", "services.*.annotations", "services.*.storage_opt")


def _string_map(path: Path, value: Any) -> Any:
    if any(matches(path, p) for p in _STRING_MAPS) and isinstance(value, (dict, list)):
        if isinstance(value, list):
            value = {k: v for k, _, v in (str(e).partition("=") for e in value)}
        return {k: ("" if v is None else _go_scalar(v)) for k, v in value.items()}
    return value


def _sorted_deep(value: Any) -> Any:
    """Extension values are Go maps: printed with sorted keys."""
    if isinstance(value, dict):
        return {k: _sorted_deep(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


def _service_value(path: Path, value: Any) -> Any:
    """Convert one service attribute to the type Docker Compose v2 prints."""
    if any(matches(path, p) for p in _DURATIONS):
        return format_duration(parse_duration(value))
    if any(matches(path, p) for p in _BYTES):
        return str(parse_bytes(value))
    if matches(path, "services.*.healthcheck.test") and isinstance(value, str):
        return ["CMD-SHELL", value]
    if matches(path, "services.*.command") or matches(path, "services.*.entrypoint"):
        if isinstance(value, str):
            return shlex.split(value)
        return None if value is None else [_go_scalar(v) for v in value]
    if matches(path, "services.*.ports.*.published") and value is not None:
        return _go_scalar(value)
    if matches(path, "services.*.expose"):
        return [_go_scalar(v) for v in value]
    if matches(path, "services.*.extra_hosts") or matches(path, "services.*.build.extra_hosts"):
        if isinstance(value, dict):
            out = []
            for host, ips in value.items():
                for ip in ips if isinstance(ips, list) else [ips]:
                    out.append(f"{host}={ip}")
        else:
            out = []
            for entry in value:
                entry = str(entry)
                host, sep, ip = entry.partition("=")
                if not sep:
                    host, _, ip = entry.partition(":")
                out.append(f"{host}={ip}")
        return sorted(out, key=lambda e: e.partition("=")[0])
    if matches(path, "services.*.develop.watch.*") and isinstance(value, dict):
        # types.Trigger: its Exec struct is always marshalled in JSON ({"command": null})
        exec_ = dict(value.get("exec") or {})
        exec_.setdefault("command", None)
        return {**value, "exec": exec_}
    if matches(path, "services.*.develop.watch.*.exec.command") and isinstance(value, str):
        return shlex.split(value)
    if (matches(path, "services.*.develop.watch.*.include") or matches(path, "services.*.develop.watch.*.ignore")) \
            and isinstance(value, str):
        return [value]
    if (matches(path, "services.*.secrets.*.mode") or matches(path, "services.*.configs.*.mode")
            or matches(path, "services.*.build.secrets.*.mode")) and isinstance(value, int):
        return f"0{value:o}"
    if matches(path, "services.*.tmpfs") or matches(path, "services.*.dns_search") or matches(
        path, "services.*.build.cache_from"
    ) or matches(path, "services.*.build.tags"):
        return [value] if isinstance(value, str) else value
    if (matches(path, "services.*.cpus") or matches(path, "services.*.deploy.resources.*.cpus")) and isinstance(
        value, str
    ):
        return float(value)
    return value


_JSON_EMPTY_STRUCTS = {
    "services.*.deploy": ("resources", "placement"),
    "networks.*": ("ipam",),
}


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == 0 and not isinstance(value, bool) or value == [] or value == {}


_KEEP_NULL = ("services.*.networks.*", "services.*.environment.*", "services.*.models.*")
# Go pointers (*bool, *int): false and 0 are printed when set
_KEEP_ZERO = ("services.*.attach", "services.*.init", "services.*.scale", "services.*.deploy.replicas",
              "services.*.healthcheck.retries", "networks.*.enable_ipv4", "networks.*.enable_ipv6",
              "services.*.deploy.restart_policy.max_attempts", "services.*.deploy.update_config.parallelism",
              "services.*.deploy.rollback_config.parallelism")
_KEEP_EMPTY = ("services.*.develop.watch.*.exec", "services.*.develop.watch.*.exec.command",
               "services.*.command", "services.*.entrypoint", "services.*.volumes.*.volume", "services.*.volumes.*.bind", "services.*.depends_on.*.required",
               "services.*.environment.*", "services.*.labels.*", "services.*.build.args.*",
               "services.*.logging.options.*", "services.*.sysctls.*", "x-*")


def shape(value: Any, path: Path = ()) -> Any:
    """The Go-struct view: convert types, order keys, drop empty values (omitempty)."""
    if path and path[0] == "services" and len(path) >= 3:
        try:
            value = _service_value(path, value)
        except ComposeError as exc:
            raise _at(path, exc) from None
    value = _string_map(path, value)
    if isinstance(value, dict):
        pattern_order = None
        for pattern, order in ORDERS.items():
            if matches(path, pattern):
                pattern_order = order
                break
        items = {}
        for key, item in value.items():
            if str(key).startswith("x-"):
                items[key] = _sorted_deep(item)
                continue
            child = path + (key,)
            shaped = shape(item, child)
            # top-level sections and their entries stay even when empty (`networks: {n: {}}`)
            if _is_empty(shaped) and len(child) > 2 and not any(
                matches(child, p) for p in _KEEP_NULL + _KEEP_EMPTY + _KEEP_ZERO
            ):
                continue
            items[key] = shaped
        if pattern_order is not None:
            rank = {k: i for i, k in enumerate(pattern_order)}
            keys = sorted(items, key=lambda k: (str(k).startswith("x-"), rank.get(k, len(rank)), str(k)))
        elif len(path) in (0,):
            keys = list(items)
        else:
            keys = sorted(items, key=str)
        return {k: items[k] for k in keys}
    if isinstance(value, list):
        return [shape(item, path + (i,)) for i, item in enumerate(value)]
    return value


def as_string_mapping(value: Mapping[str, Any]) -> dict[str, str]:
    return {k: _go_scalar(v) for k, v in value.items()}


__all__ = ["canonical", "set_defaults", "resolve_paths", "normalize", "resolve_environment", "resolve_labels",
           "shape", "parse_volume", "parse_ports", "parse_duration", "format_duration", "parse_bytes",
           "omit_empty"]
