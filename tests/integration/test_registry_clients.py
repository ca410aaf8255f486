"""Real clients against dockyard's registry on loopback: skopeo, curl, podman, dockyard's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout
from dockyard.testing.registry import DockyardRegistry
from tests.conftest import require


@pytest.fixture(scope="module")
def reg() -> Iterator[DockyardRegistry]:
    with DockyardRegistry() as r:
        yield r


@pytest.fixture(scope="module")
def multi_layout(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Path:
    d = tmp_path_factory.mktemp("multi")
    layers = [random_layer_tar(d / f"l{i}.tar", 512 << 10, seed=i) for i in range(3)]
    layout = d / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar, *layers], cmd=["sh"])])
    write_oci_layout(layout, [ImageSpec([busybox_tar], platform="linux/amd64"),
                              ImageSpec([busybox_tar], platform="linux/arm64")], tag="multi")
    write_oci_layout(layout, [ImageSpec([busybox_tar], flavour="docker", cmd=["sh"])], tag="docker")
    return layout


def test_skopeo_roundtrip(reg: DockyardRegistry, multi_layout: Path, tmp_path: Path) -> None:
    require("skopeo")
    for tag in ("latest", "multi", "docker"):
        push_oci_layout(multi_layout, f"{reg.address}/skopeo/app:{tag}", tag=tag)
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{reg.address}/skopeo/app").stdout)
    assert sorted(tags["Tags"]) == ["docker", "latest", "multi"]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg.address}/skopeo/app:latest").stdout)
    assert len(info["Layers"]) == 4
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.address}/skopeo/app:multi").stdout)
    assert len(raw["manifests"]) == 2
    # pull back, everything, digests preserved
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false",
           f"docker://{reg.address}/skopeo/app:multi", f"oci:{tmp_path / 'back'}:multi")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    original = json.loads((multi_layout / "index.json").read_text())
    want = [m["digest"] for m in original["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "multi"]
    assert [m["digest"] for m in index["manifests"]] == want
    # registry to registry
    skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{reg.address}/skopeo/app:latest", f"docker://{reg.address}/skopeo/copy:latest")
    skopeo("delete", "--tls-verify=false", f"docker://{reg.address}/skopeo/copy:latest")
    gone = skopeo("inspect", "--tls-verify=false", f"docker://{reg.address}/skopeo/copy:latest", check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr.lower()


def test_curl_catalog_and_tags(reg: DockyardRegistry, busybox_layout: Path) -> None:
    require("curl", "skopeo")
    push_oci_layout(busybox_layout, f"{reg.address}/nginx:1.25")
    push_oci_layout(busybox_layout, f"{reg.address}/nginx:latest")
    out = subprocess.run(["curl", "-sf", f"{reg.url}/v2/_catalog"], capture_output=True, text=True, check=True)
    assert "nginx" in json.loads(out.stdout)["repositories"]
    out = subprocess.run(["curl", "-sf", f"{reg.url}/v2/nginx/tags/list"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"name": "nginx", "tags": ["1.25", "latest"]}


def test_dockyard_client(reg: DockyardRegistry, busybox_layout: Path, run_cli) -> None:
    push_oci_layout(busybox_layout, f"{reg.address}/own/busybox:1")
    run_cli("pull", f"{reg.address}/own/busybox:1", check=True)
    run_cli("tag", f"{reg.address}/own/busybox:1", f"{reg.address}/own/again:2", check=True)
    run_cli("push", f"{reg.address}/own/again:2", check=True)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg.address}/own/again:2").stdout)
    assert info["RepoTags"] == ["2"]


@pytest.fixture
def podman_env(tmp_path: Path) -> Iterator[list[str]]:
    require("podman")
    if os.geteuid() != 0:
        pytest.skip("podman with vfs storage as root")
    # crun refuses this machine's hybrid cgroup layout unless hugetlb is on cgroup v1 (shared/MACHINE.md).
    # push/pull run no container, but podman checks the layout at start-up.
    hugetlb = Path("/sys/fs/cgroup/hugetlb")
    mounted = False
    if Path("/sys/fs/cgroup/unified").is_dir() and not os.path.ismount(hugetlb):
        hugetlb.mkdir(exist_ok=True)
        mounted = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(hugetlb)]).returncode == 0
    short = Path(tempfile.mkdtemp(prefix="dy-pm-", dir="/tmp"))  # podman wants a runroot < 50 chars
    base = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(short),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    try:
        yield base
    finally:
        subprocess.run([*base, "system", "reset", "--force"], capture_output=True)
        shutil.rmtree(tmp_path / "root", ignore_errors=True)
        shutil.rmtree(short, ignore_errors=True)
        if mounted:
            subprocess.run(["umount", str(hugetlb)], check=False)


def test_podman_push_pull(reg: DockyardRegistry, busybox_layout: Path, podman_env: list[str]) -> None:
    env = {**os.environ, "REGISTRIES_CONFIG_PATH": "/dev/null", "CONTAINERS_REGISTRIES_CONF": "/dev/null"}

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*podman_env, *args], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        return r

    podman("pull", f"oci:{busybox_layout}:latest")
    image = podman("images", "-q").stdout.split()[0]
    podman("push", "--tls-verify=false", image, f"docker://{reg.address}/podman/busybox:1")
    podman("rmi", "-a", "-f")
    podman("pull", "--tls-verify=false", f"{reg.address}/podman/busybox:1")
    assert f"{reg.address}/podman/busybox" in podman("images", "--format", "{{.Repository}}").stdout
