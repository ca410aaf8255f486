"""The CLI's shell: help, lazy imports, errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


def test_help_lists_commands() -> None:
    result = run("-m", "dockyard", "--help")
    assert result.returncode == 0
    for name in ("pull", "push", "images", "rmi", "save", "load", "import", "login", "system"):
        assert f"  {name} " in result.stdout


def test_subcommand_help() -> None:
    for args in (["pull", "--help"], ["image", "ls", "--help"], ["system", "df", "--help"]):
        result = run("-m", "dockyard", *args)
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def _imports(*args: str) -> dict[str, int]:
    """Module name -> self import time (us) for one interpreter run."""
    result = run("-X", "importtime", *args)
    times = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line[len("import time:"):].split("|")
            times[name.strip()] = int(self_us)
    return times


def test_help_imports_stay_light() -> None:
    """`dockyard --help` adds under 100 ms of imports to a bare interpreter's, and none of
    the heavy modules. (The bare start-up is subtracted: site hooks such as certifi's .pth
    cost the same for every Python program here.)"""
    bare = _imports("-c", "pass")
    ours = _imports("-m", "dockyard", "--help")
    added = {name: t for name, t in ours.items() if name not in bare}
    total_us = sum(added.values())
    assert total_us < 100_000, f"imports took {total_us / 1000:.0f} ms: {sorted(added.items(), key=lambda x: -x[1])[:5]}"
    assert "dockyard.cli.main" in added
    assert not set(added) & {"aiohttp", "rich", "sqlite3", "zstandard", "yaml"}


def test_unknown_command_exits_1_as_docker() -> None:
    result = run("-m", "dockyard", "frobnicate")
    assert result.returncode == 1
    assert result.stderr == "dockyard: 'frobnicate' is not a dockyard command.\nSee 'dockyard --help'\n"
    assert "Traceback" not in result.stderr
