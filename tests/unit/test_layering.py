"""Lower layers never import from the CLI: the engine, stores, registry and runtime are
shared with the coming Engine API service, which must not depend on CLI code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dockyard"


def cli_imports(source: str) -> list[str]:
    """Modules of ``dockyard.cli`` that ``source`` imports, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "dockyard.cli" or a.name.startswith("dockyard.cli.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dockyard" and any(a.name == "cli" for a in node.names):
                found.append("dockyard.cli")
            elif node.module == "dockyard.cli" or node.module.startswith("dockyard.cli."):
                found.append(node.module)
    return found


def test_detector_sees_a_function_level_import() -> None:
    assert cli_imports("def f():\n    from dockyard.cli.formatting import rfc3339\n") == ["dockyard.cli.formatting"]
    assert cli_imports("from dockyard import cli\n") == ["dockyard.cli"]
    assert cli_imports("from dockyard.timefmt import rfc3339\n") == []


def test_no_layer_below_the_cli_imports_it() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli" or path.name == "__main__.py":  # the fronts themselves
            continue
        offenders += [f"{rel}: {m}" for m in cli_imports(path.read_text())]
    assert not offenders, "move what these need below the CLI:\n" + "\n".join(offenders)
