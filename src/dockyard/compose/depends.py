"""The dependency graph of a project's services: ``depends_on`` plus the implicit edges
(``network_mode: service:x``, ``volumes_from: x``, ``links``), in start order."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from dockyard.errors import DockyardError


class DependencyError(DockyardError):
    """A cycle, or a dependency on a service that is not in the project."""


def dependencies(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {condition, required, restart} of the services ``service`` needs first."""
    out: dict[str, dict[str, Any]] = {}
    for name, dep in (service.get("depends_on") or {}).items():
        dep = dict(dep or {})
        dep.setdefault("condition", "service_started")
        dep.setdefault("required", True)
        out[name] = dep
    mode = service.get("network_mode") or ""
    if mode.startswith("service:"):
        out.setdefault(mode[8:], {"condition": "service_started", "required": True})
    for item in service.get("links") or []:   # compose-go: a link is a dependency too
        out.setdefault(str(item).split(":")[0], {"condition": "service_started", "required": True})
    for item in service.get("volumes_from") or []:
        name = str(item).split(":")[0]
        if not name.startswith("container"):
            out.setdefault(name, {"condition": "service_started", "required": True})
    return out


def start_order(services: Mapping[str, Mapping[str, Any]], wanted: Iterable[str] | None = None,
                with_deps: bool = True) -> list[str]:
    """The services to bring up, dependencies first (a stable order: by name among equals).
    ``wanted``: only these (and, with ``with_deps``, what they depend on, transitively)."""
    names = sorted(services) if wanted is None else list(dict.fromkeys(wanted))
    for name in names:
        if name not in services:
            raise DependencyError(f"no such service: {name}")
    selected: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in selected:
            continue
        selected.add(name)
        if not with_deps:
            continue
        for dep, spec in dependencies(services[name]).items():
            if dep not in services:
                if spec.get("required", True):
                    raise DependencyError(f"service {name!r} depends on undefined service {dep!r}")
                continue
            stack.append(dep)
    order: list[str] = []
    state: dict[str, int] = {}   # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise DependencyError("dependency cycle detected: " + " -> ".join(cycle))
        state[name] = 1
        for dep in sorted(dependencies(services[name])):
            if dep in services and (dep in selected or not with_deps):
                if dep in selected:
                    visit(dep, path + [name])
        state[name] = 2
        order.append(name)

    for name in sorted(selected):
        visit(name, [])
    return order


def check_cycles(services: Mapping[str, Mapping[str, Any]]) -> None:
    start_order(services)


def dependents(services: Mapping[str, Mapping[str, Any]], name: str) -> list[str]:
    """The services that depend on ``name`` directly."""
    return sorted(s for s, conf in services.items() if name in dependencies(conf))
