"""``system prune`` and ``system check --repair`` on what a killed ``rm`` leaves: a container
dir without its row, its rootfs possibly still mounted. The mount is undone first, and
nothing is ever removed through a mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture
def bind_source(tmp_path: Path) -> Path:
    source = tmp_path / "precious"
    source.mkdir()
    (source / "keep").write_text("must survive")
    return source


@pytest.mark.parametrize("command", [["system", "prune", "-f"], ["system", "check", "--repair"]])
def test_rowless_container_dir_is_unmounted_then_removed(command, dockyard_root, run_cli, bind_source) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    orphan = dockyard_root / "containers" / ("d" * 64)
    rootfs = orphan / "rootfs"
    rootfs.mkdir(parents=True)
    (orphan / "upper").mkdir()
    (orphan / "upper" / "f").write_text("x")
    subprocess.run(["mount", "--bind", str(bind_source), str(rootfs)], check=True)
    try:
        result = run_cli(*command, check=command[1] == "prune")
        assert f"containers/{'d' * 64}" in result.stdout
        assert not mounted(rootfs) and not orphan.exists()
        assert (bind_source / "keep").read_text() == "must survive"
    finally:
        if mounted(rootfs):
            subprocess.run(["umount", "-l", str(rootfs)], check=False)


def test_a_dir_with_a_mount_that_will_not_go_stays(dockyard_root, run_cli, bind_source) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    orphan = dockyard_root / "containers" / ("c" * 64)
    deeper = orphan / "upper" / "mnt"  # not the rootfs: prune does not unmount it, so it must not go
    deeper.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(bind_source), str(deeper)], check=True)
    try:
        run_cli("system", "prune", "-f", check=True)
        assert (bind_source / "keep").read_text() == "must survive"
        assert orphan.exists()
        check = run_cli("system", "check")
        assert f"leftover: containers/{'c' * 64}: container directory without a record" in check.stdout
    finally:
        subprocess.run(["umount", "-l", str(deeper)], check=False)
