"""Shared fixtures for the runtime suites (imported by test_runtime_*.py; holds no tests).

One busybox rootfs per session, one private ``--root`` state dir per runtime, unique
container IDs, and every container's cgroup under one per-session parent that is
removed at the end (as are parents left by sessions that crashed). crun needs a v1
hugetlb hierarchy on this hybrid host: mounted for the session if missing, and
unmounted again only if we mounted it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.runtime import spec as specs
from dockyard.runtime.oci import RUNTIMES, OCIRuntime

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "dockyard-test-rt-"
CGROUP_PARENT = f"{CGROUP_PREFIX}{os.getpid()}"
HUGETLB = CGROUP_ROOT / "hugetlb"
_ids = itertools.count()


def _hierarchies() -> list[Path]:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]


def _remove_cgroup_tree(path: Path) -> None:
    """rmdir deepest first; kill whatever still lives in it (our containers only)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        _rmdir_cgroup(child)
    _rmdir_cgroup(path)


def _rmdir_cgroup(path: Path) -> None:
    for _ in range(200):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            try:
                for pid in (path / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
            except OSError:
                pass
            import time

            time.sleep(0.01)


def _clean_stale_cgroups() -> None:
    """Parents of earlier sessions whose pytest process is gone."""
    for hierarchy in _hierarchies():
        for entry in hierarchy.glob(CGROUP_PREFIX + "*"):
            pid = entry.name[len(CGROUP_PREFIX):]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _remove_cgroup_tree(entry)


def _is_v1_hugetlb_mounted() -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup" and "hugetlb" in fields[sep + 3].split(","):
            return True
    return False


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("the runtime suites need root")
    _clean_stale_cgroups()
    mounted = False
    needs_fix = not (CGROUP_ROOT / "cgroup.controllers").exists() and not _is_v1_hugetlb_mounted()
    if needs_fix and shutil.which("crun"):
        created_dir = not HUGETLB.exists()
        HUGETLB.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB)], check=True)
        mounted = True
    try:
        yield CGROUP_PARENT
    finally:
        for hierarchy in _hierarchies():
            _remove_cgroup_tree(hierarchy / CGROUP_PARENT)
        if mounted:
            # Other engines' and other roots' containers may live in this hierarchy now (it is
            # host-wide): remove only empty cgroups, kill nothing, and keep the mount while any
            # cgroup is still in use.
            for child in sorted((p for p in HUGETLB.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                reverse=True):
                try:
                    child.rmdir()
                except OSError:
                    pass
            if any(p.is_dir() for p in HUGETLB.iterdir()):
                print(f"{HUGETLB} stays mounted: cgroups in it are in use", file=sys.stderr)
            elif subprocess.run(["umount", str(HUGETLB)], check=False).returncode == 0 and created_dir:
                try:
                    HUGETLB.rmdir()
                except OSError:
                    pass


@pytest.fixture(scope="session")
def busybox_rootfs(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs every bundle of the session shares, plus two broken programs."""
    root = tmp_path_factory.mktemp("runtime-rootfs") / "rootfs"
    root.mkdir()
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(root, filter="fully_trusted")
    (root / "notexec").write_text("#!/bin/sh\necho never\n")
    (root / "notexec").chmod(0o644)
    (root / "badformat").write_bytes(b"\x00\x01 not a program\n")
    (root / "badformat").chmod(0o755)
    (root / "mnt").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def runtime_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OCIRuntime]]:
    """One OCIRuntime per installed runtime, each with a private state dir; leftovers are
    force-deleted at the end."""
    base = tmp_path_factory.mktemp("runtime-state")
    runtimes = {}
    for name in RUNTIMES:
        if name == "pyrunc" or shutil.which(name):
            runtimes[name] = OCIRuntime(name, root=base / name)
    try:
        yield runtimes
    finally:
        for rt in runtimes.values():
            root = Path(rt.root)
            if root.is_dir():
                for entry in root.iterdir():
                    if entry.is_dir() and not entry.name.startswith("."):
                        subprocess.run(rt.argv("delete", "--force", entry.name), capture_output=True,
                                       env=rt._env, timeout=30)


def get_runtime(runtime_roots: dict[str, OCIRuntime], name: str) -> OCIRuntime:
    if name not in runtime_roots:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return runtime_roots[name]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, runtime_roots: dict[str, OCIRuntime], cgroup_parent: str) -> OCIRuntime:
    return get_runtime(runtime_roots, request.param)


class Bundles:
    """Writes bundles (config.json pointing at the shared rootfs) with unique IDs."""

    def __init__(self, base: Path, rootfs: Path, cgroup_parent: str) -> None:
        self.base, self.rootfs, self.cgroup_parent = base, rootfs, cgroup_parent

    def make(self, runtime_name: str, command: list[str], *, spec_edit: Callable[[dict[str, Any]], None] | None = None,
             **options: Any) -> tuple[str, Path]:
        cid = f"dy-{runtime_name}-{os.getpid()}-{next(_ids)}"
        options.setdefault("hostname", "parity")
        run_options = specs.RunOptions(command=command, cgroups_path=f"/{self.cgroup_parent}/{cid}", **options)
        spec = specs.build({"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}, self.rootfs, run_options, cid)
        if spec_edit is not None:
            spec_edit(spec)
        bundle = self.base / cid
        specs.write_bundle(bundle, spec)
        return cid, bundle


@pytest.fixture(scope="session")
def bundles(busybox_rootfs: Path, cgroup_parent: str, tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return Bundles(tmp_path_factory.mktemp("bundles"), busybox_rootfs, cgroup_parent)


def run_in(runtime: OCIRuntime, bundles: Bundles, command: list[str], timeout: float = 60,
           **options: Any) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` in a fresh container of ``runtime`` in the foreground; the result."""
    cid, bundle = bundles.make(runtime.name, command, **options)
    try:
        return runtime.run(cid, bundle, timeout=timeout)
    finally:
        subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True, env=runtime._env)
