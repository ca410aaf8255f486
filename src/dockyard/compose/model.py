"""Load a compose project (Contract 1) and render it as `docker compose config` prints it.

The pipeline is compose-go's: for each file, parse -> interpolate -> include -> extends
-> merge onto the files before it -> validate -> canonical syntax; then defaults,
absolute paths, Normalize, profiles, consistency checks, environment resolution.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from dockyard.compose import files as cfiles
from dockyard.compose.errors import ComposeError, Path, PathError, Positions, format_path
from dockyard.compose.interpolate import interpolate
from dockyard.compose.merge import apply_extends, apply_include, apply_resets, enforce_unicity, merge
from dockyard.compose import normalize as norm

__all__ = ["ComposeError", "LoadOptions", "Project", "load", "render", "service_order",
           "list_volumes", "list_images", "list_profiles"]


@dataclass
class LoadOptions:
    """What `dockyard compose`'s global flags say: -f, -p, --env-file, --profile, --project-directory."""

    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    env_files: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    working_dir: str | None = None          # --project-directory
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    resolve_paths: bool = True
    services_requested: list[str] = field(default_factory=list)
    stdin: Any = None                        # read for `-f -` (default sys.stdin)
    cwd: str | None = None                   # where discovery starts (default os.getcwd())
    validation_cache: str | None = None      # a directory remembering valid files (schema.validate)


@dataclass
class Project:
    """A loaded project: `model` is what `docker compose config --format json` prints (with a
    literal `$` unescaped); `services` its enabled services, `disabled` those left out by profiles."""

    name: str
    working_dir: str
    files: list[str]
    model: dict[str, Any]
    services: dict[str, Any]
    disabled: dict[str, Any]
    environment: dict[str, str]
    profiles: list[str] = field(default_factory=list)   # every profile named in the files
    positions: Positions | None = None   # file:line of each node, for errors found later (a port clash)


class _Loader:
    """Loads files into one tree with one interpolation environment (include makes its own)."""

    def __init__(self, environment: dict[str, str], positions: Positions, cache_dir: str | None = None) -> None:
        self.environment = environment
        self.positions = positions
        self.cache_dir = cache_dir

    def lookup(self, name: str) -> str | None:
        return self.environment.get(name)

    def fail(self, path: Path, message: str) -> ComposeError:
        return self.positions.error(path, message)

    # ---------------------------------------------------------------- one file
    def read(self, filename: str, text: str | None = None) -> cfiles.YamlDoc:
        if text is None:
            try:
                with open(filename, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise ComposeError(f"open {filename}: {exc.strerror.lower() if exc.strerror else exc}") from None
        doc = cfiles.load_yaml(text, filename)
        self.positions.add(filename, doc.marks)
        return doc

    def load_file(self, doc: cfiles.YamlDoc, tree: dict[str, Any], workdir: str, *, validate: bool = True,
                  chain: tuple[str, ...] = ()) -> dict[str, Any]:
        try:
            return self._load_file(doc, tree, workdir, validate=validate, chain=chain)
        except PathError as exc:
            raise self.fail(exc.path, exc.message) from None

    def _load_file(self, doc: cfiles.YamlDoc, tree: dict[str, Any], workdir: str, *, validate: bool,
                   chain: tuple[str, ...]) -> dict[str, Any]:
        positions = Positions()
        positions.add(doc.filename, doc.marks)
        data = interpolate(doc.data, self.lookup, fail=lambda p, m: positions.error(p, m))
        if "include" in data:
            apply_include(self, data, workdir, chain + (doc.filename,))
        apply_extends(self, data, doc, workdir)
        apply_resets(tree, doc.resets + doc.overrides)
        tree = merge(tree, data)
        tree = enforce_unicity(tree)
        if validate:
            from dockyard.compose import schema

            schema.validate(tree, self.fail, self.cache_dir)
        if "version" in tree:
            tree.pop("version")
            print(f"WARN[0000] {doc.filename}: the attribute `version` is obsolete, it will be ignored, "
                  "please remove it to avoid potential confusion", file=sys.stderr)
        tree = norm.canonical(tree)
        tree = norm.omit_empty(tree)
        return enforce_unicity(tree)


# --------------------------------------------------------------------------- load

def _environment(opts: LoadOptions, directories: list[str], cwd: str) -> dict[str, str]:
    """OS environment over the .env file(s): the interpolation environment.

    --env-file files when given; else the first `.env` of directories (Docker Compose v2
    looks in the working directory, then in the project directory).
    """
    environ = dict(opts.environ)
    env_files = [norm._abs(f, cwd) for f in opts.env_files]
    if not env_files:
        for directory in directories:
            default = os.path.join(directory, ".env")
            if os.path.isfile(default):
                env_files = [default]
                break
    merged: dict[str, str] = {}
    for env_file in env_files:
        lookup = lambda k: environ.get(k, merged.get(k))  # noqa: E731
        for key, value in cfiles.read_env_file(env_file, lookup).items():
            if value is not None:
                merged[key] = value
    merged.update(environ)
    return merged


def load(opts: LoadOptions) -> Project:
    """Find, read, interpolate, merge, validate and normalize the project's compose files.

    Raises ComposeError (exit 1) with `file:line: path ...` where the node is known.
    """
    cwd = opts.cwd or os.getcwd()
    start = os.path.abspath(opts.working_dir) if opts.working_dir else cwd
    # COMPOSE_FILE and the other COMPOSE_* settings may come from the working dir's .env
    early = _environment(opts, [start], cwd)
    filenames = cfiles.resolve_files(list(opts.files), early, cwd, start)
    first = filenames[0]
    project_dir = os.path.abspath(opts.working_dir) if opts.working_dir else (
        cwd if first == cfiles.STDIN else os.path.dirname(first))
    environment = _environment(opts, [start, project_dir], cwd)
    positions = Positions()
    loader = _Loader(environment, positions, opts.validation_cache)

    docs = []
    for filename in filenames:
        if filename == cfiles.STDIN:
            stream = opts.stdin or sys.stdin
            docs.append(loader.read(os.path.join(project_dir, "-"), stream.read()))
        else:
            docs.append(loader.read(filename))

    name = _project_name(opts, environment, docs, project_dir, loader)
    environment["COMPOSE_PROJECT_NAME"] = name

    try:
        return _load(opts, loader, docs, name, project_dir, environment)
    except PathError as exc:
        raise loader.fail(exc.path, exc.message) from None


def _load(opts: LoadOptions, loader: _Loader, docs: list[cfiles.YamlDoc], name: str, project_dir: str,
          environment: dict[str, str]) -> Project:
    tree: dict[str, Any] = {}
    for doc in docs:
        tree = loader.load_file(doc, tree, project_dir)
    if not tree:
        raise ComposeError("empty compose file")
    tree = norm.set_defaults(tree)
    if opts.resolve_paths:
        tree = norm.resolve_paths(tree, project_dir)
    tree.pop("include", None)
    tree = norm.normalize(tree, name, environment.get)
    tree.setdefault("services", {})

    all_profiles = sorted({p for s in tree["services"].values() for p in (s.get("profiles") or [])})
    profiles = list(opts.profiles) or [p for p in environment.get("COMPOSE_PROFILES", "").split(",") if p]
    enabled, disabled = _split_profiles(tree["services"], profiles, opts.services_requested)
    _check_consistency(tree, enabled, loader)
    for service in enabled.values():
        norm.resolve_environment(service, environment.get)
        norm.resolve_labels(service, environment.get)
    for service in disabled.values():
        norm.resolve_labels(service, environment.get)
    model = _project_model(tree, enabled)
    disabled = {n: _service_sorted(norm.shape(s, ("services", n))) for n, s in sorted(disabled.items())}
    return Project(
        name=name,
        working_dir=project_dir,
        files=[d.filename for d in docs],
        model=model,
        services=model["services"],
        disabled=disabled,
        environment=environment,
        profiles=all_profiles,
        positions=loader.positions,
    )


def _project_name(opts: LoadOptions, environment: dict[str, str], docs: list[cfiles.YamlDoc],
                  project_dir: str, loader: _Loader) -> str:
    if opts.project_name:
        return cfiles.check_project_name(opts.project_name)
    if environment.get("COMPOSE_PROJECT_NAME"):
        return cfiles.check_project_name(environment["COMPOSE_PROJECT_NAME"])
    from_file = ""
    for doc in docs:
        value = doc.data.get("name")
        if isinstance(value, str) and value:
            from_file = interpolate({"name": value}, environment.get, fail=loader.fail)["name"]
    name = cfiles.normalize_project_name(from_file)
    if not name:
        name = cfiles.normalize_project_name(os.path.basename(project_dir.rstrip("/")))
    if not name:
        raise ComposeError("project name must not be empty")
    return name


def _split_profiles(services: dict[str, Any], profiles: list[str],
                    requested: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    active = set(profiles)

    def on(service: dict[str, Any]) -> bool:
        wanted = service.get("profiles") or []
        return not wanted or "*" in active or bool(active.intersection(wanted))

    names = {n for n, s in services.items() if on(s)}
    pending = [n for n in requested if n in services]
    while pending:
        n = pending.pop()
        if n in names and n not in requested:
            continue
        names.add(n)
        pending.extend(d for d in (services[n].get("depends_on") or {}) if d in services and d not in names)
    for n in requested:
        if n not in services:
            raise ComposeError(f"no such service: {n}")
    enabled = {n: s for n, s in services.items() if n in names}
    disabled = {n: s for n, s in services.items() if n not in names}
    return enabled, disabled


def _check_consistency(tree: dict[str, Any], services: dict[str, Any], loader: _Loader) -> None:
    """compose-go's checkConsistency, over the enabled services."""
    def fail(name: str, message: str, *where: Any) -> ComposeError:
        return loader.fail(("services", name) + where, message)

    defined = {kind: tree.get(kind) or {} for kind in ("networks", "volumes", "secrets", "configs", "models")}
    for name, service in services.items():
        if not service.get("image") and "build" not in service and "provider" not in service:
            raise fail(name, f'service "{name}" has neither an image nor a build context specified')
        build = service.get("build") or {}
        if build.get("dockerfile_inline") and build.get("dockerfile") not in (None, "Dockerfile"):
            raise fail(name, f'service "{name}" declares mutualy exclusive dockerfile and dockerfile_inline', "build")
        if service.get("network_mode") and service.get("networks"):
            raise fail(name, f"service {name} declares mutually exclusive `network_mode` and `networks`", "network_mode")
        for net in service.get("networks") or {}:
            if net not in defined["networks"]:
                raise fail(name, f'service "{name}" refers to undefined network {net}', "networks")
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise fail(name, 'healthcheck.test must start either by "CMD", "CMD-SHELL" or "NONE"', "healthcheck")
        for dep, spec in (service.get("depends_on") or {}).items():
            if dep not in services and (spec or {}).get("required", True):
                raise fail(name, f'service "{name}" depends on undefined service "{dep}"', "depends_on")
        mode = service.get("network_mode") or ""
        if mode.startswith("service:") and mode[len("service:"):] not in services:
            other = mode[len("service:"):]
            raise fail(name, f"service \"{other}\" not found for network_mode 'service:{other}'", "network_mode")
        for volume in service.get("volumes") or []:
            if volume.get("type") == "volume" and volume.get("source") and volume["source"] not in defined["volumes"]:
                raise fail(name, f'service "{name}" refers to undefined volume {volume["source"]}', "volumes")
        for ref in build.get("secrets") or []:
            if ref.get("source") not in defined["secrets"]:
                raise fail(name, f'service "{name}" refers to undefined build secret {ref.get("source")}', "build")
        for kind in ("configs", "secrets"):
            for ref in service.get(kind) or []:
                if ref.get("source") not in defined[kind]:
                    raise fail(name, f'service "{name}" refers to undefined {kind[:-1]} {ref.get("source")}', kind)
        for model in service.get("models") or {}:
            if model not in defined["models"]:
                raise fail(name, f'service "{name}" refers to undefined model {model}', "models")
        _check_resources(name, service, fail)
    for name, secret in defined["secrets"].items():
        if secret and not secret.get("external") and not secret.get("file") and not secret.get("environment"):
            raise loader.fail(("secrets", name), f'secret "{name}" must declare either `file` or `environment`')
    cycle = _find_cycle(services)
    if cycle:
        path = ("services", cycle[0], "depends_on")
        raise loader.fail(path, f"{format_path(path)}: dependency cycle detected: " + " -> ".join(cycle))


def _check_resources(name: str, service: dict[str, Any], fail: Any) -> None:
    deploy = service.get("deploy")
    scale = service.get("scale")
    if scale is not None and deploy is not None:
        if deploy.get("replicas") is not None and deploy["replicas"] != scale:
            raise fail(name, f"services.{name}: can't set distinct values on 'scale' and 'deploy.replicas'", "scale")
        deploy["replicas"] = scale
    if scale is not None and scale < 0:
        raise fail(name, f"services.{name}.scale: must be greater than or equal to 0", "scale")
    if deploy and deploy.get("replicas") is not None and deploy["replicas"] < 0:
        raise fail(name, f"services.{name}.deploy.replicas: must be greater than or equal to 0", "deploy")
    resources = (deploy or {}).get("resources") or {}
    limits, reservations = resources.get("limits"), resources.get("reservations")
    pairs = [
        ("cpus", limits, "cpus", "deploy.resources.limits.cpus", float),
        ("mem_limit", limits, "memory", "deploy.resources.limits.memory", norm.parse_bytes),
        ("mem_reservation", reservations, "memory", "deploy.resources.reservations.memory", norm.parse_bytes),
        ("pids_limit", limits, "pids", "deploy.resources.limits.pids", int),
    ]
    for key, block, sub, label, conv in pairs:
        if service.get(key) and deploy is not None and block is not None:
            if conv(block.get(sub) or 0) != conv(service[key]):
                raise fail(name, f"services.{name}: can't set distinct values on '{key}' and '{label}'", key)
    replicas = scale if scale is not None else (deploy or {}).get("replicas")
    if (replicas or 1) > 1 and service.get("container_name"):
        attr = "scale" if scale is not None else "deploy.replicas"
        raise fail(name, f"services.{attr}: can't set container_name and {name} as container name must be unique",
                   "container_name")
    mounts: dict[str, str] = {}
    tmpfs_list = service.get("tmpfs") or []
    for i, tmpfs in enumerate([tmpfs_list] if isinstance(tmpfs_list, str) else tmpfs_list):
        where = f"services.{name}.tmpfs[{i}]"
        target = str(tmpfs).split(":", 1)[0]
        if target in mounts:
            raise fail(name, f"{where}: target {target} already mounted as {mounts[target]}", "tmpfs", i)
        mounts[target] = where
    for i, volume in enumerate(service.get("volumes") or []):
        where = f"services.{name}.volumes[{i}]"
        target = volume.get("target")
        if target in mounts:
            raise fail(name, f"{where}: target {target} already mounted as {mounts[target]}", "volumes", i)
        mounts[target] = where


def _find_cycle(services: dict[str, Any]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(services[name].get("depends_on") or {}):
            if dep not in services:
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(services):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _project_model(tree: dict[str, Any], services: dict[str, Any]) -> dict[str, Any]:
    """The model Docker Compose v2 prints: enabled services, the resources they use."""
    used_networks: set[str] = set()
    used_volumes: set[str] = set()
    used: dict[str, set[str]] = {"secrets": set(), "configs": set(), "models": set()}
    for service in services.values():
        used["models"].update(service.get("models") or {})
        used_networks.update(service.get("networks") or {})
        for volume in service.get("volumes") or []:
            if volume.get("type") == "volume" and volume.get("source"):
                used_volumes.add(volume["source"])
        for kind in ("secrets", "configs"):
            used[kind].update(r.get("source") for r in service.get(kind) or [])
        for ref in (service.get("build") or {}).get("secrets") or []:
            used["secrets"].add(ref.get("source"))
    model: dict[str, Any] = {"name": tree["name"], "services": {n: services[n] for n in sorted(services)}}
    for kind, keep in (("networks", used_networks), ("volumes", used_volumes),
                       ("secrets", used["secrets"]), ("configs", used["configs"]), ("models", used["models"])):
        items = {k: v for k, v in sorted((tree.get(kind) or {}).items()) if k in keep}
        if items:
            model[kind] = items
    for key in sorted(tree):
        if str(key).startswith("x-"):
            model[key] = tree[key]
    shaped = norm.shape(model)
    for service in shaped["services"].values():
        service.setdefault("command", None)
        service.setdefault("entrypoint", None)
        if "deploy" in service:   # Go structs, not pointers: JSON always has them, in struct order
            deploy = service["deploy"]
            deploy.setdefault("resources", {})
            deploy.setdefault("placement", {})
            rank = {k: i for i, k in enumerate(norm.ORDERS["services.*.deploy"])}
            service["deploy"] = {k: deploy[k] for k in sorted(deploy, key=lambda k: (rank.get(k, 99), k))}
    for name, network in (shaped.get("networks") or {}).items():
        network.setdefault("ipam", {})  # a Go struct, not a pointer: JSON always has it
        rank = {k: i for i, k in enumerate(norm.ORDERS["networks.*"])}
        shaped["networks"][name] = {k: network[k] for k in sorted(network, key=lambda k: (rank.get(k, 99), k))}
    shaped["services"] = {n: _service_sorted(s) for n, s in shaped["services"].items()}
    return shaped


def _service_sorted(service: dict[str, Any]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(norm.SERVICE_ORDER)}
    return {k: service[k] for k in sorted(service, key=lambda k: (k.startswith("x-"), rank.get(k, len(rank)), k))}


# --------------------------------------------------------------------------- render

def _escape(value: Any) -> Any:
    """`config` output is itself a compose file: a literal $ is written $$."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def _yaml_view(model: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(model)
    for service in view["services"].values():
        for key in ("command", "entrypoint"):
            if service.get(key) is None:
                service.pop(key, None)
        for trigger in (service.get("develop") or {}).get("watch") or []:
            if trigger.get("exec") == {"command": None}:   # JSON's always-present struct, omitted in YAML
                del trigger["exec"]
        deploy = service.get("deploy")
        if deploy:
            for key in ("resources", "placement"):
                if deploy.get(key) == {}:
                    del deploy[key]
    for network in (view.get("networks") or {}).values():
        if network.get("ipam") == {}:
            del network["ipam"]
    order = ["name", "services", "networks", "volumes", "secrets", "configs", "models"]
    out = {k: view[k] for k in order if k in view}
    out.update({k: v for k, v in view.items() if k not in out})
    return out


def _json_view(model: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(model)
    view.pop("models", None)   # v2 (2.40) prints top-level models in YAML only
    for name, service in view["services"].items():
        view["services"][name] = {k: v for k, v in service.items() if not k.startswith("x-")}
    return {k: view[k] for k in sorted(view)}


def render(project: Project, fmt: str = "yaml") -> str:
    """`compose config` output, as Docker Compose v2 prints it."""
    if fmt == "json":
        import json

        text = json.dumps(_escape(_json_view(project.model)), indent=2, ensure_ascii=False) + "\n"
        # Go's encoding/json escapes these for HTML; outside strings they never occur in JSON
        return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    if fmt != "yaml":
        raise ComposeError(f"unsupported format {fmt!r}")
    return dump_yaml(_escape(_yaml_view(project.model)))


_YAML11_WORDS = ("y", "n", "yes", "no", "on", "off")


def dump_yaml(data: Any) -> str:
    """YAML as Go's yaml.v3 writes it: 2-space indent, indented sequences, double quotes."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
            return super().increase_indent(flow, False)

    def represent_str(dumper: Any, value: str) -> Any:
        # yaml.v3: a string another type would claim is double-quoted; otherwise plain when
        # the emitter allows it, else single-quoted, else double-quoted
        if "\n" in value:
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
        implicit = dumper.resolve(yaml.ScalarNode, value, (True, False))
        if implicit != "tag:yaml.org,2002:str" or value == "" or value.lower() in _YAML11_WORDS:
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
        analysis = dumper.analyze_scalar(value)
        if analysis.allow_block_plain:
            return dumper.represent_scalar("tag:yaml.org,2002:str", value)
        style = "'" if analysis.allow_single_quoted else '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, indent=2,
                     allow_unicode=True, width=1 << 30)


# --------------------------------------------------------------------------- config --services etc.

def service_order(project: Project) -> list[str]:
    """Services in dependency order (dependencies first), ties by name, as `config --services`."""
    services = project.services
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done or name not in services:
            return
        for dep in sorted(services[name].get("depends_on") or {}):
            visit(dep)
        done.append(name)

    for name in sorted(services):
        visit(name)
    return done


def list_volumes(project: Project) -> list[str]:
    return sorted(project.model.get("volumes") or {})


def list_images(project: Project) -> list[str]:
    out = []
    for name in sorted(project.services):
        image = project.services[name].get("image") or f"{project.name}-{name}"
        out.append(image)
    return out


def list_profiles(project: Project) -> list[str]:
    return list(project.profiles)
