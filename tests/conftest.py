"""Shared fixtures: a private dockyard root per test, test images, a distribution registry,
and a runner for the CLI. Everything a fixture creates is removed even when the test fails."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from dockyard.testing.images import ImageSpec, busybox_rootfs_tar, write_oci_layout
from dockyard.testing.registry import DistributionRegistry

if TYPE_CHECKING:
    from dockyard.testing.dockerd import PrivateDockerd
    from dockyard.testing.apiservice import DockyardService

TESTS = Path(__file__).resolve().parent


# --- markers: tests/unit -> unit, tests/integration -> integration, tests/e2e -> e2e -------

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            kind = Path(item.fspath).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if kind in ("unit", "integration", "e2e") and item.get_closest_marker(kind) is None:
            item.add_marker(getattr(pytest.mark, kind))


# --- tools -----------------------------------------------------------------------------

APT_HINT = "run `make deps` (apt-get install busybox-static skopeo docker-registry umoci)"


def require(*tools: str) -> None:
    """Skip the calling test or fixture, saying why, if a system tool is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: {APT_HINT}")


# --- a private dockyard root per test --------------------------------------------------

def _unmount_below(path: Path) -> None:
    """Detach every mount under ``path`` (deepest first) so that removing the tree
    cannot reach through a leftover overlay or bind mount into other data."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(path.resolve()) + "/"
    points = []
    for line in lines:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])  # "\040" is a space
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)


@pytest.fixture
def dockyard_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty data root (``DOCKYARD_ROOT``) with its run root (``DOCKYARD_RUNROOT``)
    and docker config dir (``DOCKER_CONFIG``) beside it; all removed after the test."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-test-"))
    root, runroot, docker_config = base / "root", base / "run", base / "docker-config"
    for d in (root, runroot, docker_config):
        d.mkdir()
    monkeypatch.setenv("DOCKYARD_ROOT", str(root))
    monkeypatch.setenv("DOCKYARD_RUNROOT", str(runroot))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    try:
        yield root
    finally:
        _reset_networks(root, runroot)
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


def _reset_networks(root: Path, runroot: Path) -> None:
    """A test root's containers (their processes would outlive the root, holding veths and
    namespaces), bridges, firewall rules and DNS responder are host-wide: remove them with
    the root (its containers' namespaces are mounts below it, unmounted next)."""
    if not (root / "dockyard.db").exists():
        return
    from dockyard import config
    from dockyard.engine import Engine

    engine = Engine(config.load(root, runroot))
    try:
        try:
            engine.containers.reset()
        finally:
            engine.networks.reset()
    except Exception as e:  # noqa: BLE001 - teardown goes on; the next run tolerates leftovers
        print(f"network reset of {root} failed: {e}", file=sys.stderr)
    finally:
        engine.close()


@pytest.fixture
def run_cli(dockyard_root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("pull", "127.0.0.1:5000/x")`` runs ``python -m dockyard ...`` in a subprocess
    with the test's environment (its private root) and returns the CompletedProcess
    (text stdout/stderr). ``check=True`` raises on a non-zero exit; ``input`` feeds stdin."""

    def run(*args: str, check: bool = False, input: str | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run([sys.executable, "-m", "dockyard", *map(str, args)], input=input,
                                capture_output=True, text=True, timeout=timeout, env=full_env,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(map(str, args))} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    return run


# --- test images -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uncompressed busybox rootfs tarball, built once per session."""
    if not (Path("/bin/busybox").exists() or Path("/usr/bin/busybox").exists()):
        pytest.skip(f"busybox-static not installed: {APT_HINT}")
    return busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture(scope="session")
def busybox_layout(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with the busybox image (gzip layer, ``Cmd ["sh"]``) tagged ``latest``."""
    layout = tmp_path_factory.mktemp("busybox-layout") / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar], cmd=["sh"])])
    return layout


# --- registries ------------------------------------------------------------------------

def _start_registry(htpasswd: tuple[str, str] | None) -> Iterator[DistributionRegistry]:
    require("docker-registry")
    registry = DistributionRegistry(htpasswd=htpasswd)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def distribution() -> Iterator[DistributionRegistry]:
    """One CNCF distribution registry (no auth) for the session: use ``repo_name`` per test."""
    yield from _start_registry(None)


@pytest.fixture(scope="session")
def distribution_auth() -> Iterator[DistributionRegistry]:
    """A CNCF distribution registry with basic auth; credentials in ``.htpasswd`` / ``.creds``."""
    yield from _start_registry(("dockyard", "test-password"))


_repo_counter = itertools.count()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name no other test in this session uses, e.g. ``test/push-gzip-7``."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-") or "test"
    return f"test/{stem}-{next(_repo_counter)}"


@pytest.fixture(scope="module")
def docker(busybox_tar: Path) -> Iterator["PrivateDockerd"]:
    """A private dockerd 20.10 (Debian's docker.io: no bridge, no iptables) holding the same busybox
    the dockyard tests use, for the side-by-side tests of one module; skipped without it."""
    from dockyard.testing import dockerd

    if not dockerd.available():
        pytest.skip("needs root and Debian's docker.io (/usr/bin/docker, /usr/sbin/dockerd) to compare with")
    with dockerd.PrivateDockerd() as d:
        d.cli("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox")
        yield d


@pytest.fixture
def api(dockyard_root: Path, busybox_tar: Path) -> Iterator["DockyardService"]:
    """``dockyard system service`` on a private socket over the test's root, which holds
    busybox:latest (imported with CMD sh). ``api.docker("ps")`` runs Debian's docker CLI through it;
    ``api.url`` is its DOCKER_HOST."""
    from dockyard.testing.apiservice import DockyardService

    if not os.path.exists("/usr/bin/docker"):
        pytest.skip("needs Debian's docker CLI (docker.io) as the API's client")
    subprocess.run([sys.executable, "-m", "dockyard", "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox"],
                   check=True, capture_output=True)
    with DockyardService() as service:
        yield service
