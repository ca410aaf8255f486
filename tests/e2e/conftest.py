"""The labs' fixtures: one dockyard root for the e2e session, holding the labs' images.

The images are built once (examples/images.py: the base imported, then four `dockyard build`s;
about a minute cold, the debootstrap tarball cached in /var/cache/dockyard-test). Each test
runs the labs' scripts against that root and removes what it ran, even when it fails; the
root, its bridges and rules go at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard.testing.registry import free_port
from tests.conftest import _reset_networks, _unmount_below
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - mounts crun's hugetlb fix

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT / "examples"
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
ARTIFACTS = Path(os.environ.get("DOCKYARD_TEST_ARTIFACTS") or PROJECT / "artifacts")


def _needs_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the labs need root")
    missing = [t for t in ("debootstrap", "curl", "busybox") if shutil.which(t) is None
               and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make deps`")


@pytest.fixture(scope="session")
def lab_env(cgroup_parent: str) -> Iterator[dict[str, str]]:  # noqa: F811
    """The environment of a lab run: a private root with the labs' images built in it
    (``cgroup_parent``: crun needs the hugetlb hierarchy on this hybrid host, shared/MACHINE.md)."""
    _needs_root_and_tools()
    base = Path(tempfile.mkdtemp(prefix="dockyard-e2e-"))
    root, runroot, docker_config = base / "root", base / "run", base / "docker-config"
    for d in (root, runroot, docker_config):
        d.mkdir()
    env = {**os.environ, "DOCKYARD_ROOT": str(root), "DOCKYARD_RUNROOT": str(runroot),
           "DOCKER_CONFIG": str(docker_config), "DOCKYARD": DOCKYARD, "LAB_DIR": str(base / "lab"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("DOCKYARD_RUNTIME", None)
    try:
        built = subprocess.run([sys.executable, str(EXAMPLES / "images.py"), "--progress", "plain"], env=env,
                               capture_output=True, text=True, timeout=1800)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        yield env
    finally:
        _reset_networks(root, runroot)
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def lab(lab_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``lab("wordpress/lab.sh", "ip", runtime="crun", HTTP_PORT="8080")`` runs a lab script;
    ``lab.dockyard(...)`` runs a dockyard command in the lab's root. Both return the
    CompletedProcess (text). Every lab the test ran is taken down afterwards."""
    ran: set[str] = set()

    def environment(runtime: str | None, extra: dict[str, str]) -> dict[str, str]:
        env = {**lab_env, **extra}
        if runtime:
            env["DOCKYARD_RUNTIME"] = runtime
        return env

    def run(script: str, *args: str, runtime: str | None = None, timeout: float = 300,
            **extra: str) -> subprocess.CompletedProcess[str]:
        ran.add(script)
        return subprocess.run([str(EXAMPLES / script), *args], env=environment(runtime, extra), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def dockyard(*args: str, runtime: str | None = None, timeout: float = 120,
                 **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKYARD, *args], env=environment(runtime, extra), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    run.dockyard = dockyard  # type: ignore[attr-defined]
    run.env = lab_env  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for script in sorted(ran):
            subprocess.run([str(EXAMPLES / script), "down"], env=lab_env, capture_output=True, timeout=120)


@pytest.fixture
def http_port() -> str:
    return str(free_port())
