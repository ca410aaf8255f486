"""Shared fixtures for the container suites (imported by test_containers_*.py; holds no tests).

One private dockyard root per test module with the busybox image imported, a CLI runner
bound to it, and a clean-up that removes every container, shim, mount, cgroup and file
the module created, even when tests fail; leftovers of crashed sessions (their owner PID
is gone) are removed first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

PREFIX = "dockyard-ctest-"
CGROUP_PREFIX = "dockyard-ctest-"


def _mount_points_below(prefix: str) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:  # shims and CLIs carry the root in their environment (DOCKYARD_ROOT), runtimes in argv
            if text.encode() in (entry / "cmdline").read_bytes() or text.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _remove_cgroups(name: str) -> None:
    base = Path("/sys/fs/cgroup")
    for hierarchy in [base] + [p for p in base.iterdir() if p.is_dir()]:
        parent = hierarchy / name
        if not parent.is_dir():
            continue
        for d in sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [parent]:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    try:
                        for pid in (d / "cgroup.procs").read_text().split():
                            os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
                    time.sleep(0.02)


def _destroy(base: Path, cgroup: str) -> None:
    """Everything under ``base`` and in ``cgroup``: processes (by PID), mounts, files, and
    the root's host-wide network parts (bridges, firewall rules)."""
    if (base / "root" / "dockyard.db").exists():
        from dockyard import config
        from dockyard.engine import Engine

        engine = Engine(config.load(base / "root", base / "run"))
        try:
            engine.networks.reset()
        except Exception as e:  # noqa: BLE001 - go on removing the rest
            print(f"network reset of {base} failed: {e}", file=sys.stderr)
        finally:
            engine.close()
    for pid in _processes_mentioning(str(base)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _remove_cgroups(cgroup)
    for point in _mount_points_below(str(base) + "/"):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(base, ignore_errors=True)


def clean_stale() -> None:
    """Roots and cgroups of sessions that crashed: their owner PID (in the name) is gone."""
    for path in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = path.name[len(PREFIX):].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _destroy(path, CGROUP_PREFIX + owner)
    base = Path("/sys/fs/cgroup")
    for hierarchy in [base] + [p for p in base.iterdir() if p.is_dir()]:
        for entry in hierarchy.glob(CGROUP_PREFIX + "*"):
            owner = entry.name[len(CGROUP_PREFIX):]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                _remove_cgroups(entry.name)


class Dockyard:
    """A private root with busybox, and ``cli(...)`` to run ``dockyard`` in it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root, self.runroot = base / "root", base / "run"
        self.cgroup = CGROUP_PREFIX + str(os.getpid())
        self.env = {**os.environ, "DOCKYARD_ROOT": str(self.root), "DOCKYARD_RUNROOT": str(self.runroot),
                    "DOCKER_CONFIG": str(base / "docker-config"), "DOCKYARD_CGROUP_PARENT": self.cgroup,
                    "DOCKYARD_EARLY_EXIT_WINDOW": "0"}
        self.runtime = "pyrunc"

    def cli(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**self.env, "DOCKYARD_RUNTIME": self.runtime, **(env or {})}
        result = subprocess.run([sys.executable, "-m", "dockyard", *map(str, args)], input=input, text=True,
                                capture_output=True, timeout=timeout, env=full,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(map(str, args))} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dockyard", *map(str, args)],
                                env={**self.env, "DOCKYARD_RUNTIME": self.runtime}, **kwargs)

    def engine(self):  # noqa: ANN201
        from dockyard import config
        from dockyard.engine import Engine

        return Engine(config.load(self.root, self.runroot))

    def remove_all(self) -> None:
        engine = self.engine()
        try:
            os.environ["DOCKYARD_CGROUP_PARENT"] = self.cgroup
            engine.containers.reset()
            for v in engine.volumes.list():
                engine.volumes.remove(v.name, force=True)
            engine.networks.prune()   # user networks a test made; the default bridge stays
        finally:
            os.environ.pop("DOCKYARD_CGROUP_PARENT", None)
            engine.close()


@pytest.fixture(scope="module")
def dockyard_env(busybox_tar: Path) -> Iterator[Dockyard]:
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    clean_stale()
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    dy = Dockyard(base)
    try:
        engine = dy.engine()
        engine.images.import_(str(busybox_tar), "busybox", ['CMD ["sh"]'])
        engine.close()
        yield dy
    finally:
        try:
            dy.remove_all()
        finally:
            _destroy(base, dy.cgroup)


@pytest.fixture
def dy(dockyard_env: Dockyard) -> Iterator[Dockyard]:
    """The module's root, emptied of containers and volumes after each test."""
    dockyard_env.runtime = "pyrunc"
    try:
        yield dockyard_env
    finally:
        dockyard_env.remove_all()


@pytest.fixture(params=["pyrunc", "crun"])
def rt(request: pytest.FixtureRequest, dy: Dockyard, cgroup_parent: str) -> Dockyard:  # noqa: F811
    """``dy`` once with each runtime (crun needs the hugetlb fix ``cgroup_parent`` mounts)."""
    if request.param != "pyrunc" and shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    dy.runtime = request.param
    return dy


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for the late reaper does not count)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")
