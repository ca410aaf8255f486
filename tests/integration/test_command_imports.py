"""Start-up is cheap by construction: every everyday command, given plain arguments, runs
without the heavy modules (click's ~25 ms, rich, aiohttp, yaml, asyncio, the registry client,
the tar and compression code). Each command's imports are listed by the interpreter itself
(``-X importtime``), minus what a bare interpreter imports here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures

HEAVY = {"click", "rich", "aiohttp", "yaml", "asyncio", "zstandard", "tarfile", "pyroute2", "dataclasses",
         "dockyard.distribution", "dockyard.registry", "dockyard.build", "dockyard.store.archive"}

# command -> what it needs first (a container "imp1" running, a volume "impv")
COMMANDS = [
    ["ps", "-a"], ["ps", "--format", "{{.Names}}"], ["logs", "imp1"], ["inspect", "imp1"],
    ["inspect", "-f", "{{.State.Pid}}", "imp1"], ["container", "inspect", "imp1"], ["image", "inspect", "busybox"],
    ["inspect", "busybox"], ["volume", "ls"], ["volume", "inspect", "impv"], ["network", "ls"],
    ["network", "inspect", "none"], ["top", "imp1"], ["port", "imp1"], ["tag", "busybox", "imptag:1"],
    ["rmi", "imptag:1"], ["stop", "-t", "0", "nosuch"], ["rm", "nosuch"], ["exec", "imp1", "true"],
    ["--version"], ["create", "--name", "impc", "--network", "none", "busybox", "true"], ["version"], ["events", "--since", "1m", "--until", "0s"], ["info"], ["system", "info"], ["images"], ["image", "ls", "-q"], ["history", "busybox"], ["stats", "--no-stream", "imp1"],
]


def _modules(dy: Dockyard, *argv: str) -> set[str]:  # noqa: F811
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                            env=dy.env, stdin=subprocess.DEVNULL, timeout=60)
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or any(m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def prepared(dy: Dockyard) -> Dockyard:  # noqa: F811
    dy.cli("run", "-d", "--name", "imp1", "--network", "none", "busybox", "sleep", "60", check=True)
    dy.cli("volume", "create", "impv", check=True)
    dy.cli("tag", "busybox", "imptag:1", check=True)
    return dy


def test_every_everyday_command_stays_off_heavy_modules(prepared: Dockyard) -> None:
    bare = _modules(prepared, "-c", "pass")
    offenders = {}
    for args in COMMANDS:
        heavy = _heavy(_modules(prepared, "-m", "dockyard", *args) - bare)
        if heavy:
            offenders[" ".join(args)] = heavy
    assert not offenders, offenders


def test_the_guard_sees_click_when_a_command_needs_it(prepared: Dockyard) -> None:
    """The guard can fail: a command that takes the click path shows click in its list."""
    modules = _modules(prepared, "-m", "dockyard", "volume", "ls", "--help")
    assert "click" in modules


def test_images_loads_neither_re_nor_json(dy: Dockyard, busybox_tar: Path) -> None:  # noqa: F811
    """``images`` (the table and ``-q``) in a root with several images, tags on several
    registries, digest-free dangling ones and no settings.json: no re (with its enum, ~5 ms)
    and no json. The fallbacks (filters, --format) may load them; these two must not."""
    names = ["impimg-a:v1", "impimg-a:latest", "registry.example.com:5000/team/impimg-b:1.0", "localhost/impimg_c"]
    made: list[str] = []
    try:
        for i in range(2):   # untagged: dangling rows
            made.append(dy.cli("import", "-c", f"LABEL imp={i}", str(busybox_tar), check=True).stdout.strip())
        for name in names:
            dy.cli("tag", "busybox", name, check=True)
        assert "registry.example.com:5000/team/impimg-b" in dy.cli("images", check=True).stdout
        bare = _modules(dy, "-c", "pass")
        # the installed launcher too (make writes its own: pip's imports re to tidy argv[0])
        launcher = str(Path(sys.executable).with_name("dockyard"))
        for args in (["-m", "dockyard", "images"], ["-m", "dockyard", "images", "-q"], ["-m", "dockyard", "image", "ls"],
                     [launcher, "images"]):
            loaded = _modules(dy, *args) - bare
            assert not loaded & {"re", "json", "enum"}, (args, sorted(loaded & {"re", "json", "enum"}))
        # the guard can fail: a reference filter takes the regex path
        assert "re" in _modules(dy, "-m", "dockyard", "images", "--filter", "reference=impimg-*")
    finally:
        dy.cli("rmi", *names, *made)
