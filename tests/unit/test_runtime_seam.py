"""The containers layer reaches runtimes only through the runtime interface: it imports no
runtime's code and names none but the default's constant (issue 9: it named pyrunc 44
times, and pause wrote into pyrunc's private cgroup object under crun and runc)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dockyard"
LAYERS = ("containers", "cli")
RUNTIME_INTERNALS = ("dockyard.runtime.pyrunc", "dockyard.runtime.oci")


def _imports(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _code_strings(source: str) -> list[str]:
    """String literals that are not docstrings or comments (an approximation: strings that
    are statements of their own are docstrings)."""
    docstrings = {id(n.value) for n in ast.walk(ast.parse(source))
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    strings = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            strings.append(node.value)
    return strings


def test_layers_import_no_runtime_internals() -> None:
    found = []
    for layer in LAYERS:
        for path in (PACKAGE / layer).rglob("*.py"):
            found += [f"{path.relative_to(PACKAGE)}: {m}" for m in _imports(path.read_text())
                      if m.startswith(RUNTIME_INTERNALS)]
    assert not found, "go through dockyard.runtime.adapter:\n" + "\n".join(found)


def test_layers_name_no_runtime_but_the_default() -> None:
    found = []
    for layer in LAYERS:
        for path in (PACKAGE / layer).rglob("*.py"):
            source = path.read_text()
            for text in _code_strings(source):
                if text in ("pyrunc", "crun", "runc"):
                    found.append(f"{path.relative_to(PACKAGE)}: {text!r}")
    assert found == ["containers/manager.py: 'pyrunc'"], found  # DEFAULT_RUNTIME, once


def test_the_default_is_the_adapters() -> None:
    from dockyard.containers import manager
    from dockyard.runtime import adapter

    assert manager.DEFAULT_RUNTIME == adapter.DEFAULT_RUNTIME
