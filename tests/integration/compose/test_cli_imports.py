"""``dockyard compose`` starts light: the commands load the compose file with yaml alone
(jsonschema only the first time a file is seen: the loader remembers valid files under the
root), and none of them loads the API server's, the registry client's or the TUI's modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NEVER = {"rich", "aiohttp", "asyncio", "zstandard", "pyroute2", "dockyard.distribution", "dockyard.registry",
         "dockyard.build", "dockyard.api"}


def _modules(cwd: Path, *argv: str) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard", *argv], cwd=cwd,
                            capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def _among(modules: set[str], names: set[str]) -> list[str]:
    return sorted(m for m in modules if m in names or any(m.startswith(n + ".") for n in names))


def test_compose_commands_stay_off_heavy_modules(dockyard_root: Path, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    first = _modules(tmp_path, "compose", "config", "-q")
    assert "yaml" in first and "jsonschema" in first   # the guard sees what a command loads
    for argv in (["compose", "ps"], ["compose", "ps", "-a", "--format", "json"], ["compose", "logs"],
                 ["compose", "config", "--services"], ["compose", "ls"], ["compose", "version"],
                 ["compose", "-p", "other", "ps"]):
        modules = _modules(tmp_path, *argv)
        assert _among(modules, NEVER | {"jsonschema"}) == [], argv
    assert "yaml" not in _modules(tmp_path, "compose", "ls")
