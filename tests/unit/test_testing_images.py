"""Test images: the busybox rootfs, random layers and OCI layouts, checked by real clients
(skopeo, umoci) rather than by our own reader."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest

from dockyard.oci import mediatypes as mt
from dockyard.testing import images
from dockyard.testing.images import (ImageSpec, busybox_rootfs_tar, random_layer_tar, skopeo,
                                     write_oci_layout)
from tests.conftest import require

MiB = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def blob_json(layout: Path, digest: str) -> dict:
    return json.loads(blob(layout, digest))


# --- busybox rootfs --------------------------------------------------------------------

def test_busybox_tar_is_reproducible(busybox_tar: Path, tmp_path: Path) -> None:
    again = busybox_rootfs_tar(tmp_path / "again.tar")
    assert sha256_file(again) == sha256_file(busybox_tar)


def test_busybox_tar_contents(busybox_tar: Path) -> None:
    with tarfile.open(busybox_tar) as tar:
        members = tar.getmembers()
    by_name = {m.name: m for m in members}
    names = [m.name for m in members]
    assert names == sorted(names) and len(names) == len(set(names))
    assert by_name["bin/busybox"].isfile() and by_name["bin/busybox"].mode == 0o755
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "busybox"
    assert by_name["usr/bin/["].linkname == "../../bin/busybox"
    assert by_name["sbin/ifconfig"].linkname == "../bin/busybox"
    assert by_name["tmp"].isdir() and by_name["tmp"].mode == 0o1777
    for d in ("proc", "sys", "dev", "root", "etc", "usr/bin", "usr/sbin", "sbin"):
        assert by_name[d].isdir(), d
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == images.MTIME for m in members)
    assert "bin/busybox" not in [m.name for m in members if m.issym()]
    # every applet busybox knows has its link
    applets = subprocess.run([str(images.find_busybox()), "--list-full"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert set(applets) - {"bin/busybox"} <= set(by_name)


def test_busybox_tar_has_users(busybox_tar: Path) -> None:
    with tarfile.open(busybox_tar) as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        group = tar.extractfile("etc/group").read().decode()  # type: ignore[union-attr]
    assert passwd.startswith("root:x:0:0:") and "\nnobody:x:65534:65534:" in passwd
    assert group.startswith("root:x:0:") and "nobody:x:65534:" in group


def test_busybox_rootfs_runs(busybox_tar: Path, tmp_path: Path) -> None:
    # The links resolve and the binary is static: bin/sh runs straight from the unpacked tree.
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(tmp_path, filter="tar")
    out = subprocess.run([str(tmp_path / "bin/sh"), "-c", "echo hello from $0"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().startswith("hello from")


# --- random layers ---------------------------------------------------------------------

def test_random_layer_is_deterministic_and_sized(tmp_path: Path) -> None:
    a = random_layer_tar(tmp_path / "a.tar", 3 * MiB + 5, seed=1)
    b = random_layer_tar(tmp_path / "b.tar", 3 * MiB + 5, seed=1)
    c = random_layer_tar(tmp_path / "c.tar", 3 * MiB + 5, seed=2)
    assert sha256_file(a) == sha256_file(b) != sha256_file(c)
    with tarfile.open(a) as tar:
        (member,) = tar.getmembers()
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert member.name == "data.bin" and member.size == len(data) == 3 * MiB + 5
    assert len(zlib.compress(data[:MiB])) > MiB  # incompressible


def test_random_layer_name_and_empty(tmp_path: Path) -> None:
    path = random_layer_tar(tmp_path / "e.tar", 0, seed=0, name="empty.bin")
    with tarfile.open(path) as tar:
        assert [(m.name, m.size) for m in tar.getmembers()] == [("empty.bin", 0)]


def test_random_layer_and_layout_memory_is_bounded(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        tar = random_layer_tar(tmp_path / "big.tar", 48 * MiB, seed=3)
        write_oci_layout(tmp_path / "oci", [ImageSpec([tar], compression="gzip")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MiB, f"peak {peak / MiB:.1f} MiB"


# --- OCI layouts: structure ------------------------------------------------------------

@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_layout_structure(busybox_tar: Path, tmp_path: Path, compression: str) -> None:
    layer2 = random_layer_tar(tmp_path / "r.tar", MiB, seed=9)
    layout = tmp_path / "oci"
    spec = ImageSpec([busybox_tar, layer2], compression=compression, platform="linux/arm64/v8",
                     cmd=["sh"], entrypoint=["/bin/env"], env=["A=1"], working_dir="/tmp", user="nobody",
                     labels={"x": "y"})
    digest = write_oci_layout(layout, [spec], tag="v1")

    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == digest and entry["mediaType"] == mt.OCI_MANIFEST
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert hashlib.sha256(blob(layout, digest)).hexdigest() == digest[7:]

    manifest = blob_json(layout, digest)
    expected_type = {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}[compression]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [expected_type] * 2
    for layer in manifest["layers"]:
        data = blob(layout, layer["digest"])
        assert len(data) == layer["size"] and hashlib.sha256(data).hexdigest() == layer["digest"][7:]
    config = blob_json(layout, manifest["config"]["digest"])
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_file(busybox_tar), sha256_file(layer2)]}
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")
    assert config["config"] == {"Env": ["A=1"], "Entrypoint": ["/bin/env"], "Cmd": ["sh"], "WorkingDir": "/tmp",
                                "User": "nobody", "Labels": {"x": "y"}}
    first = blob(layout, manifest["layers"][0]["digest"])
    if compression == "gzip":
        assert gzip.decompress(first) == busybox_tar.read_bytes()
    if compression == "zstd":
        import zstandard

        assert zstandard.ZstdDecompressor().decompressobj().decompress(first) == busybox_tar.read_bytes()
    if compression == "":
        assert manifest["layers"][0]["digest"] == sha256_file(busybox_tar)
    assert not [p for p in (layout / "blobs" / "sha256").iterdir() if p.name.startswith(".tmp")]


def test_layout_is_reproducible(busybox_tar: Path, tmp_path: Path) -> None:
    for compression in ("gzip", "zstd"):
        spec = ImageSpec([busybox_tar], compression=compression, cmd=["sh"])
        first = write_oci_layout(tmp_path / f"{compression}-1", [spec])
        assert write_oci_layout(tmp_path / f"{compression}-2", [spec]) == first


def test_layout_keeps_other_tags_and_replaces_same_tag(busybox_tar: Path, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    one = write_oci_layout(layout, [ImageSpec([busybox_tar], cmd=["one"])], tag="one")
    write_oci_layout(layout, [ImageSpec([busybox_tar], cmd=["old"])], tag="two")
    two = write_oci_layout(layout, [ImageSpec([busybox_tar], cmd=["two"])], tag="two")
    index = json.loads((layout / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert tags == {"one": one, "two": two}


def test_multi_platform_oci_index(busybox_tar: Path, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    digest = write_oci_layout(layout, [ImageSpec([busybox_tar], platform="linux/amd64"),
                                       ImageSpec([busybox_tar], platform="linux/arm/v7")], tag="multi")
    index = blob_json(layout, digest)
    assert index["mediaType"] == mt.OCI_INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm", "os": "linux", "variant": "v7"}]
    assert all(m["mediaType"] == mt.OCI_MANIFEST for m in index["manifests"])
    # the shared layer is stored once
    layer_digests = {blob_json(layout, m["digest"])["layers"][0]["digest"] for m in index["manifests"]}
    assert len(layer_digests) == 1


def test_docker_flavour(busybox_tar: Path, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    single = write_oci_layout(layout, [ImageSpec([busybox_tar], flavour="docker")], tag="single")
    manifest = blob_json(layout, single)
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert manifest["layers"][0]["mediaType"] == mt.DOCKER_LAYER_GZIP
    multi = write_oci_layout(layout, [ImageSpec([busybox_tar], flavour="docker", platform="linux/amd64"),
                                      ImageSpec([busybox_tar], flavour="docker", platform="linux/arm64")],
                             tag="multi")
    index = blob_json(layout, multi)
    assert index["mediaType"] == mt.DOCKER_MANIFEST_LIST
    assert {m["mediaType"] for m in index["manifests"]} == {mt.DOCKER_MANIFEST}


def test_bad_specs(busybox_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zstd"):
        write_oci_layout(tmp_path / "a", [ImageSpec([busybox_tar], compression="zstd", flavour="docker")])
    with pytest.raises(ValueError, match="one manifest flavour"):
        write_oci_layout(tmp_path / "b", [ImageSpec([busybox_tar]), ImageSpec([busybox_tar], flavour="docker")])
    with pytest.raises(ValueError, match="one entry per layer"):
        write_oci_layout(tmp_path / "c", [ImageSpec([busybox_tar], compression=["gzip", "zstd"])])
    with pytest.raises(ValueError, match="unknown compression"):
        write_oci_layout(tmp_path / "d", [ImageSpec([busybox_tar], compression="bzip2")])
    with pytest.raises(ValueError, match="at least one"):
        write_oci_layout(tmp_path / "e", [])


# --- OCI layouts: read by real clients -------------------------------------------------

@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_skopeo_reads_layout(busybox_tar: Path, tmp_path: Path, compression: str) -> None:
    require("skopeo")
    layout = tmp_path / "oci"
    digest = write_oci_layout(layout, [ImageSpec([busybox_tar], compression=compression, cmd=["sh"])])
    manifest = blob_json(layout, digest)
    info = json.loads(skopeo("inspect", f"oci:{layout}:latest").stdout)
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert info["Os"] == "linux"
    config = json.loads(skopeo("inspect", "--config", f"oci:{layout}:latest").stdout)
    assert config["config"]["Cmd"] == ["sh"]
    assert skopeo("inspect", "--raw", f"oci:{layout}:latest").stdout.encode() == blob(layout, digest)
    # a full copy makes skopeo read and verify every blob against its digest
    skopeo("copy", "--preserve-digests", f"oci:{layout}:latest", f"dir:{tmp_path / 'copy'}")
    assert (tmp_path / "copy" / manifest["layers"][0]["digest"][7:]).read_bytes() == \
        blob(layout, manifest["layers"][0]["digest"])


def test_skopeo_reads_multi_platform_layout(busybox_tar: Path, tmp_path: Path) -> None:
    require("skopeo")
    layout = tmp_path / "oci"
    digest = write_oci_layout(layout, [ImageSpec([busybox_tar], platform="linux/amd64"),
                                       ImageSpec([busybox_tar], platform="linux/arm64/v8")], tag="multi")
    raw = skopeo("inspect", "--raw", f"oci:{layout}:multi").stdout
    assert hashlib.sha256(raw.encode()).hexdigest() == digest[7:]
    arm = json.loads(skopeo("--override-arch", "arm64", "inspect", f"oci:{layout}:multi").stdout)
    assert arm["Architecture"] == "arm64"
    skopeo("copy", "--all", "--preserve-digests", f"oci:{layout}:multi", f"dir:{tmp_path / 'copy'}")
    assert hashlib.sha256((tmp_path / "copy" / "manifest.json").read_bytes()).hexdigest() == digest[7:]


def test_skopeo_reads_docker_flavour_through_dir_view(busybox_tar: Path, tmp_path: Path) -> None:
    require("skopeo")
    layout = tmp_path / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar], flavour="docker", platform="linux/amd64"),
                              ImageSpec([busybox_tar], flavour="docker", platform="linux/arm64")], tag="multi")
    view = tmp_path / "view"
    view.mkdir()
    images._dir_transport_view(layout, images._tagged_descriptor(layout, "multi"), view)
    info = json.loads(skopeo("--override-arch", "arm64", "inspect", f"dir:{view}").stdout)
    assert info["Architecture"] == "arm64"
    skopeo("copy", "--all", "--preserve-digests", f"dir:{view}", f"dir:{tmp_path / 'copy'}")


@pytest.mark.parametrize("compression", ["", "gzip"])  # umoci 0.4.7 does not know zstd layers
def test_umoci_unpacks_layout(busybox_tar: Path, tmp_path: Path, compression: str) -> None:
    require("umoci")
    layout = tmp_path / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar], compression=compression, cmd=["sh"])])
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "bin" / "sh").is_symlink() and (rootfs / "bin" / "sh").readlink() == Path("busybox")
    runtime_config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert runtime_config["process"]["args"] == ["sh"]


# --- the skopeo helper -----------------------------------------------------------------

def test_skopeo_uses_a_private_blob_info_cache(busybox_layout: Path, tmp_path: Path) -> None:
    require("skopeo")
    out = skopeo("--debug", "copy", f"oci:{busybox_layout}:latest", f"dir:{tmp_path / 'copy'}").stderr
    cache_lines = [line for line in out.splitlines() if "blob info cache" in line.lower()]
    assert cache_lines, out
    assert all("dockyard-skopeo-" in line and "/var/lib/containers" not in line for line in cache_lines)


def test_skopeo_error_carries_stderr(tmp_path: Path) -> None:
    require("skopeo")
    with pytest.raises(images.SkopeoError, match="no such file|does not exist|not found"):
        skopeo("inspect", f"oci:{tmp_path / 'missing'}:latest")


# --- the shared fixtures (tests/conftest.py) -------------------------------------------

def test_dockyard_root_fixture(dockyard_root: Path) -> None:
    import os

    assert os.environ["DOCKYARD_ROOT"] == str(dockyard_root)
    runroot, docker_config = Path(os.environ["DOCKYARD_RUNROOT"]), Path(os.environ["DOCKER_CONFIG"])
    for d in (dockyard_root, runroot, docker_config):
        assert d.is_dir() and not any(d.iterdir())
    assert runroot.parent == dockyard_root.parent == docker_config.parent
    assert not str(dockyard_root).startswith("/var/lib/dockyard")


def test_run_cli_fixture(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "Usage" in result.stdout
    with pytest.raises(AssertionError, match="exited"):
        run_cli("no-such-command", check=True)


def test_cleanup_detaches_mounts_first(tmp_path: Path) -> None:
    import os

    from tests.conftest import _unmount_below

    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    point = tmp_path / "a b" / "mnt"
    point.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(point)], check=True)
    try:
        _unmount_below(tmp_path)
        assert not os.path.ismount(point)
    finally:
        if os.path.ismount(point):
            subprocess.run(["umount", "-l", str(point)], check=False)
