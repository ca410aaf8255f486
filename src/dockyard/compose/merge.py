"""The compose-spec merge rules (several -f files, extends, include), as compose-go applies them.

apply_include and apply_extends take the loader (model._Loader: read, load_file, lookup,
fail, environment, positions) to load the files they name.

Mappings merge recursively; sequences append; some paths have their own rule (command,
entrypoint and healthcheck.test are replaced; environment, labels, dns, tmpfs ... become
`KEY=value` sequences and append; depends_on and networks merge as mappings whatever
their syntax; logging merges only for the same driver). After a merge, sequences whose
entries have an identity (ports, volumes by target, secrets/configs by target, environment
by key ...) keep one entry per identity: the later value at the first one's place.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable

from dockyard.compose.errors import ComposeError, Path, PathError, format_path

Tree = dict[str, Any]


def go_path(path: Path) -> tuple[str, ...]:
    return tuple("[]" if isinstance(p, int) else p for p in path)


def matches(path: Path | tuple[str, ...], pattern: str) -> bool:
    """compose-go tree.Path matching: `*` matches any one part (a key or a sequence item)."""
    parts = pattern.split(".")
    gp = go_path(tuple(path))
    if len(parts) != len(gp):
        return False
    return all(want == "*" or want == have for want, have in zip(parts, gp))


# --------------------------------------------------------------------------- conversions

def _go_str(value: Any) -> str:
    """fmt.Sprint of a YAML scalar."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e21 else repr(value)
    return str(value)


def to_sequence(value: Any) -> list[Any]:
    """A mapping becomes sorted `KEY=value` strings (KEY alone for null), as convertIntoSequence."""
    if isinstance(value, dict):
        seq: list[Any] = []
        for key, item in value.items():
            if item is None:
                seq.append(key)
            elif isinstance(item, list):
                seq.extend(f"{key}={_go_str(v)}" for v in item)
            else:
                seq.append(f"{key}={_go_str(item)}")
        return sorted(seq)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return [value]
    return []


def to_mapping(value: Any, default: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(item): (dict(default) if default is not None else None) for item in value}
    return {}


# --------------------------------------------------------------------------- merge

def _override(base: Any, other: Any, path: Path) -> Any:
    return other


def _merge_to_sequence(base: Any, other: Any, path: Path) -> Any:
    return to_sequence(base) + to_sequence(other)


def _merge_extra_hosts(base: Any, other: Any, path: Path) -> Any:
    right = to_sequence(base)
    left = [v for v in to_sequence(other) if v not in right]
    return right + left


def _merge_build(base: Any, other: Any, path: Path) -> Any:
    def as_build(value: Any) -> dict[str, Any]:
        return {"context": value} if isinstance(value, str) else (value or {})
    return _merge_mappings(as_build(base), as_build(other), path)


_DEPENDS_DEFAULT = {"condition": "service_started", "required": True}


def _merge_depends_on(base: Any, other: Any, path: Path) -> Any:
    return _merge_mappings(to_mapping(base, _DEPENDS_DEFAULT), to_mapping(other, _DEPENDS_DEFAULT), path)


def _merge_networks(base: Any, other: Any, path: Path) -> Any:
    return _merge_mappings(to_mapping(base, None), to_mapping(other, None), path)


def _merge_logging(base: Any, other: Any, path: Path) -> Any:
    if not isinstance(base, dict) or not isinstance(other, dict):
        return other
    if "driver" not in other or "driver" not in base or other["driver"] == base["driver"]:
        return _merge_mappings(base, other, path)
    return other


def _merge_ulimit(base: Any, other: Any, path: Path) -> Any:
    if isinstance(base, dict) and isinstance(other, dict):
        return _merge_mappings(base, other, path)
    return other


def _merge_ipam_config(base: Any, other: Any, path: Path) -> Any:
    if not isinstance(base, list) or not isinstance(other, list):
        return other
    out: list[dict[str, Any]] = []
    for original in base:
        for override in other:
            if override.get("subnet") != original.get("subnet"):
                if not any(c.get("subnet") == override.get("subnet") for c in out):
                    out.append(override)
                    continue
            merged = _merge_mappings(dict(original), override, path)
            for i, c in enumerate(out):
                if c.get("subnet") == merged.get("subnet"):
                    out[i] = merged
                    break
            else:
                out.append(merged)
    return out


SPECIALS: list[tuple[str, Callable[[Any, Any, Path], Any]]] = [
    ("networks.*.ipam.config", _merge_ipam_config),
    ("networks.*.labels", _merge_to_sequence),
    ("volumes.*.labels", _merge_to_sequence),
    ("services.*.annotations", _merge_to_sequence),
    ("services.*.build", _merge_build),
    ("services.*.build.args", _merge_to_sequence),
    ("services.*.build.additional_contexts", _merge_to_sequence),
    ("services.*.build.extra_hosts", _merge_extra_hosts),
    ("services.*.build.labels", _merge_to_sequence),
    ("services.*.command", _override),
    ("services.*.depends_on", _merge_depends_on),
    ("services.*.deploy.labels", _merge_to_sequence),
    ("services.*.dns", _merge_to_sequence),
    ("services.*.dns_opt", _merge_to_sequence),
    ("services.*.dns_search", _merge_to_sequence),
    ("services.*.entrypoint", _override),
    ("services.*.env_file", _merge_to_sequence),
    ("services.*.label_file", _merge_to_sequence),
    ("services.*.environment", _merge_to_sequence),
    ("services.*.extra_hosts", _merge_extra_hosts),
    ("services.*.healthcheck.test", _override),
    ("services.*.labels", _merge_to_sequence),
    ("services.*.volumes.*.volume.labels", _merge_to_sequence),
    ("services.*.logging", _merge_logging),
    ("services.*.models", _merge_networks),
    ("services.*.networks", _merge_networks),
    ("services.*.sysctls", _merge_to_sequence),
    ("services.*.tmpfs", _merge_to_sequence),
    ("services.*.ulimits.*", _merge_ulimit),
]


def merge_yaml(base: Any, other: Any, path: Path) -> Any:
    """compose-go's MergeYaml: other (the later file) merged over base."""
    for pattern, merger in SPECIALS:
        if matches(path, pattern):
            return merger(base, other, path)
    if other is None:
        return base
    if isinstance(base, dict):
        if not isinstance(other, dict):
            raise PathError(path, f"cannot override {format_path(path)}")
        return _merge_mappings(base, other, path)
    if isinstance(base, list):
        if not isinstance(other, list):
            raise PathError(path, f"cannot override {format_path(path)}")
        return base + other
    return other


def _merge_mappings(base: dict[str, Any], other: dict[str, Any], path: Path) -> dict[str, Any]:
    for key, value in other.items():
        if key not in base:
            base[key] = value
            continue
        base[key] = merge_yaml(base[key], value, path + (key,))
    return base


def merge(base: Tree, other: Tree) -> Tree:
    return _merge_mappings(base, other, ())


def apply_resets(tree: Tree, paths: list[Path]) -> None:
    """Remove the paths a later file tagged !reset or !override from what it merges onto."""
    for path in paths:
        node: Any = tree
        for part in path[:-1]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                node = None
                break
        if node is None or not path:
            continue
        last = path[-1]
        if isinstance(node, dict):
            node.pop(last, None)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            del node[last]


# --------------------------------------------------------------------------- unicity

def _key_value_index(value: Any, path: Path) -> str:
    if not isinstance(value, str):
        raise PathError(path, f"{format_path(path)}: unexpected type {type(value).__name__}")
    return value.split("=", 1)[0]


def _volume_index(value: Any, path: Path) -> str:
    if isinstance(value, dict):
        target = value.get("target")
        if not isinstance(target, str):
            raise PathError(path, f"service volume {format_path(path)} is missing a mount target")
        return target
    if isinstance(value, str):
        from dockyard.compose.normalize import parse_volume

        return parse_volume(value).get("target", "")
    return ""


def _device_index(value: Any, path: Path) -> str:
    if isinstance(value, dict):
        return str(value.get("target"))
    if isinstance(value, str):
        parts = value.split(":")
        return parts[0] if len(parts) == 1 else parts[1]
    return ""


def _expose_index(value: Any, path: Path) -> str:
    return str(value)


def _mount_index(default: str) -> Callable[[Any, Path], str]:
    def index(value: Any, path: Path) -> str:
        if isinstance(value, str):
            return f"{default}/{value}"
        if isinstance(value, dict):
            if "target" in value:
                return str(value["target"])
            return f"{default}/{value.get('source')}"
        raise PathError(path, f"{format_path(path)}: unsupported value {value!r}")
    return index


def _port_index(value: Any, path: Path) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        if "target" not in value:
            raise PathError(path, f"service ports {format_path(path)} is missing a target port")
        host = value.get("host_ip", "0.0.0.0")
        return f"{host}:{value.get('published')}:{value['target']}/{value.get('protocol', 'tcp')}"
    return str(value)


def _env_file_index(value: Any, path: Path) -> str:
    if isinstance(value, dict):
        if "path" not in value:
            raise PathError(path, f"environment path attribute {format_path(path)} is missing")
        return str(value["path"])
    return str(value)


UNIQUE: list[tuple[str, Callable[[Any, Path], str]]] = [
    ("networks.*.labels", _key_value_index),
    ("networks.*.ipam.options", _key_value_index),
    ("services.*.annotations", _key_value_index),
    ("services.*.build.args", _key_value_index),
    ("services.*.build.additional_contexts", _key_value_index),
    ("services.*.build.platform", _key_value_index),
    ("services.*.build.tags", _key_value_index),
    ("services.*.build.labels", _key_value_index),
    ("services.*.cap_add", _key_value_index),
    ("services.*.cap_drop", _key_value_index),
    ("services.*.configs", _mount_index("")),
    ("services.*.deploy.labels", _key_value_index),
    ("services.*.dns", _key_value_index),
    ("services.*.dns_opt", _key_value_index),
    ("services.*.dns_search", _key_value_index),
    ("services.*.environment", _key_value_index),
    ("services.*.env_file", _env_file_index),
    ("services.*.expose", _expose_index),
    ("services.*.labels", _key_value_index),
    ("services.*.links", _key_value_index),
    ("services.*.networks.*.aliases", _key_value_index),
    ("services.*.networks.*.link_local_ips", _key_value_index),
    ("services.*.ports", _port_index),
    ("services.*.profiles", _key_value_index),
    ("services.*.secrets", _mount_index("/run/secrets")),
    ("services.*.sysctls", _key_value_index),
    ("services.*.tmpfs", _key_value_index),
    ("services.*.volumes", _volume_index),
    ("services.*.devices", _device_index),
]


def enforce_unicity(value: Any, path: Path = ()) -> Any:
    if isinstance(value, dict):
        for key in list(value):
            value[key] = enforce_unicity(value[key], path + (key,))
        return value
    if isinstance(value, list):
        for pattern, indexer in UNIQUE:
            if matches(path, pattern):
                seq: list[Any] = []
                keys: dict[str, int] = {}
                for i, entry in enumerate(value):
                    key = indexer(entry, path + (i,))
                    if key in keys:
                        seq[keys[key]] = entry
                    else:
                        keys[key] = len(seq)
                        seq.append(entry)
                return seq
    return value


def deep_copy(value: Any) -> Any:
    return copy.deepcopy(value)


def _abs(path: str, base: str) -> str:
    from dockyard.compose.normalize import _abs as absolute

    return absolute(path, base)


def read_env_file(path: str, lookup: Any) -> dict[str, Any]:
    from dockyard.compose.files import read_env_file as read

    return read(path, lookup)


# --------------------------------------------------------------------------- include

def apply_include(loader: Any, data: dict[str, Any], workdir: str, chain: tuple[str, ...]) -> None:
    """`include`: load each listed project (own project directory and .env) and import its
    resources; a service defined both here and there is an error, as in v2."""
    includes = data.pop("include") or []
    if not isinstance(includes, list):
        raise ComposeError("`include` must be a list")
    for entry in includes:
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        paths = entry.get("path")
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        paths = [_abs(p, workdir) for p in paths]
        if not paths:
            continue
        if paths[0] in chain:
            raise ComposeError("include cycle detected:\n" + "\n include ".join(chain + (paths[0],)))
        project_dir = entry.get("project_directory")
        project_dir = _abs(project_dir, workdir) if project_dir else os.path.dirname(paths[0])
        env_files = entry.get("env_file")
        env_files = [env_files] if isinstance(env_files, str) else list(env_files or [])
        if not env_files:
            default = os.path.join(project_dir, ".env")
            env_files = [default] if os.path.isfile(default) else []
        else:
            env_files = [_abs(f, workdir) for f in env_files if f != "/dev/null"]
        environment = dict(loader.environment)
        for env_file in env_files:
            for key, value in read_env_file(env_file, environment.get).items():
                if value is not None and key not in loader.environment:
                    environment[key] = value
        sub = type(loader)(environment, loader.positions, loader.cache_dir)
        imported: dict[str, Any] = {}
        for path in paths:
            imported = sub.load_file(sub.read(path), imported, project_dir, chain=chain)
        from dockyard.compose import normalize

        imported = normalize.set_defaults(imported)
        imported = normalize.resolve_paths(imported, project_dir)
        for kind in ("services", "volumes", "networks", "secrets", "configs", "models"):
            source = imported.get(kind)
            if not source:
                continue
            target = data.get(kind) or {}
            data[kind] = target
            for name, item in source.items():
                if name not in target:
                    target[name] = item
                elif kind == "services":
                    raise ComposeError(f"services.{name} conflicts with imported resource")
                else:
                    target[name] = merge_yaml(item, target[name], (kind, name))


# --------------------------------------------------------------------------- extends

def apply_extends(loader: Any, data: dict[str, Any], doc: Any, workdir: str) -> None:
    """`extends` (same file or `file:`, chained): the base service merged under each service."""
    services = data.get("services")
    if not isinstance(services, dict):
        return
    for name in list(services):
        services[name] = _extend(loader, name, services, doc.filename, workdir, (), doc)


def _extend(loader: Any, name: str, services: dict[str, Any], filename: str, workdir: str,
            seen: tuple[tuple[str, str], ...], doc: Any) -> Any:
    service = services.get(name)
    if not isinstance(service, dict) or "extends" not in service:
        return service
    extends = service["extends"]
    if isinstance(extends, str):
        ref, file = extends, None
    else:
        ref, file = extends.get("service"), extends.get("file")
        if not ref:
            raise ComposeError(f"extends.{name}.service is required")
    if (filename, name) in seen:
        chain = "\n".join(f"  extends {s} in {f}" for f, s in seen + ((filename, name),))
        raise ComposeError(f"Circular reference:\n{chain}")
    seen = seen + ((filename, name),)
    base_services = services
    base_file, base_dir = filename, workdir
    if file is not None:
        base_file = _abs(file, workdir)
        base_dir = os.path.dirname(base_file)
        other = loader.read(base_file)
        loaded = _interpolate(other.data, loader.lookup, fail=loader.fail)
        base_services = loaded.get("services")
        if not isinstance(base_services, dict) or ref not in base_services:
            raise ComposeError(
                f'cannot extend service "{name}" in {filename}: service "{ref}" not found in {file}'
            )
        base = _extend(loader, ref, base_services, base_file, base_dir, seen, other)
        from dockyard.compose import normalize

        base = copy.deepcopy(base)
        holder = normalize.canonical({"services": {ref: base}})
        holder = normalize.resolve_paths(holder, base_dir)
        base = holder["services"][ref]
    else:
        if ref not in services:
            raise ComposeError(f'cannot extend service "{name}" in {filename}: service "{ref}" not found')
        base = copy.deepcopy(_extend(loader, ref, services, filename, workdir, seen, doc))
    if base is None:
        return service
    if doc is not None:
        resets = [p[2:] for p in doc.resets + doc.overrides if p[:2] == ("services", name) and len(p) > 2]
        apply_resets(base, resets)
    merged = merge_yaml(base, service, ("services", "x"))
    merged.pop("extends", None)
    services[name] = merged
    return merged



def _interpolate(data: Any, lookup: Any, *, fail: Any) -> Any:
    from dockyard.compose.interpolate import interpolate

    return interpolate(data, lookup, fail=fail)
