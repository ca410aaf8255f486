"""The default tables of ``images`` (and ``ps``) are laid out without the Go-template engine
(cli/gotemplate.py and cli/formatting.py, ~2 ms of ``images``' start-up) and print exactly what the same table spelled
out as a ``--format`` template prints through it; ``images`` does not build the option tables
of ``run``/``create`` (fastpath.SPECS) either."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dockyard.cli.imageviews import IMAGE_TABLE, IMAGE_TABLE_DIGESTS
from dockyard.cli.ops import PS_TABLE
from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures


def _modules(dy: Dockyard, *args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard", *args], capture_output=True,
                            text=True, env=dy.env, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def _same_twice(dy: Dockyard, first: list[str], second: list[str]) -> tuple[str, str]:
    """Both outputs, retried when the clock moved a CREATED cell between the two commands."""
    for _ in range(3):
        a = dy.cli(*first, check=True).stdout
        b = dy.cli(*second, check=True).stdout
        if a == b:
            break
    return a, b


@pytest.fixture
def listed(dy: Dockyard) -> Dockyard:
    dy.cli("tag", "busybox", "localhost:5000/team/app:v1", check=True)
    dy.cli("tag", "busybox", "other", check=True)
    dy.cli("create", "--name", "l1", "--network", "none", "-l", "a=b", "--expose", "80", "busybox",
           "sh", "-c", "echo 'a b'", check=True)
    dy.cli("run", "--name", "l2", "--network", "none", "busybox", "true", check=True)
    return dy


@pytest.mark.parametrize("args", [["images"], ["images", "--digests"], ["images", "--format", "table"],
                                  ["image", "ls", "--no-trunc"]])
def test_images_default_tables_load_no_template_engine(listed: Dockyard, args: list[str]) -> None:
    modules = _modules(listed, *args)
    assert "dockyard.cli.gotemplate" not in modules and "dockyard.cli.formatting" not in modules


def test_the_guard_sees_the_engine_for_a_template(listed: Dockyard) -> None:
    assert "dockyard.cli.gotemplate" in _modules(listed, "images", "--format", "{{.ID}}")


@pytest.mark.parametrize("args, template", [
    (["images"], IMAGE_TABLE), (["images", "--digests"], IMAGE_TABLE_DIGESTS), (["images", "--no-trunc"], IMAGE_TABLE),
    (["ps", "-a"], PS_TABLE), (["ps", "-a", "--no-trunc"], PS_TABLE),
])
def test_default_tables_as_the_template_prints_them(listed: Dockyard, args: list[str], template: str) -> None:
    ours, through_template = _same_twice(listed, args, [*args, "--format", template])
    assert ours == through_template
    assert ours.count("\n") == (4 if args[0] == "images" else 3)


def test_images_leaves_the_run_option_tables_unbuilt(listed: Dockyard) -> None:
    code = ("import sys; from dockyard.cli import fastpath; call = fastpath.parse(sys.argv[1:]); "
            "assert 'SPECS' not in vars(fastpath), 'built'; call(); assert 'SPECS' not in vars(fastpath)")
    result = subprocess.run([sys.executable, "-c", code, "images"], capture_output=True, text=True, env=listed.env,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("REPOSITORY")
    result = subprocess.run([sys.executable, "-c", "from dockyard.cli import fastpath; "
                             "assert fastpath.parse(['ps', '-a']) is not None; assert 'SPECS' in vars(fastpath)"],
                            capture_output=True, text=True, env=listed.env, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
