"""``save`` and ``load``: round trips between roots, skopeo as the oracle for both tar
formats (docker-archive and OCI layout in one file), and bad archives that must leave
nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pty
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from dockyard.testing.images import skopeo

pytestmark = pytest.mark.integration


# ---- helpers --------------------------------------------------------------------------------

def inspect(run_cli, name: str) -> dict:
    return json.loads(run_cli("image", "inspect", name, check=True).stdout)[0]


def dockyard(*args: str, stdin=None, root: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with bytes in and out (``run_cli`` is text-only)."""
    env = dict(os.environ)
    if root is not None:
        env["DOCKYARD_ROOT"] = str(root)
    return subprocess.run([sys.executable, "-m", "dockyard", *map(str, args)], stdin=stdin,
                          capture_output=True, env=env, timeout=300)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def write_tar(out: Path, entries: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(out, "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def tar_dir(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    return out


def store_is_empty(root: Path) -> bool:
    blobs = root / "content" / "blobs" / "sha256"
    layers = [n for n in os.listdir(root / "layers") if n not in ("tmp", "locks")] if (root / "layers").exists() else []
    staging = list((root / "tmp").iterdir()) if (root / "tmp").exists() else []
    return (not blobs.exists() or not os.listdir(blobs)) and not layers and not staging


def file_list(root: Path) -> list[tuple[str, int, int]]:
    """(path, mode, size) of everything in an unpacked layer."""
    out = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out.append((str(path.relative_to(root)), st.st_mode, st.st_size if path.is_file() else 0))
    return out


@pytest.fixture
def busybox(run_cli, busybox_tar: Path) -> str:
    return run_cli("import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", busybox_tar, "busybox", check=True).stdout.strip()


@pytest.fixture
def saved(run_cli, busybox: str, tmp_path: Path) -> Path:
    run_cli("tag", "busybox", "127.0.0.1:5000/tools/bb:v1", check=True)
    out = tmp_path / "saved.tar"
    result = run_cli("save", "-o", out, "busybox", "127.0.0.1:5000/tools/bb:v1", check=True)
    assert result.stdout == "" and result.stderr == ""
    return out


# ---- save -------------------------------------------------------------------------------------

def test_save_writes_docker_archive_and_oci_layout(run_cli, busybox: str, saved: Path) -> None:
    info = inspect(run_cli, "busybox")
    diff_id = info["RootFS"]["Layers"][0]
    entries = members(saved)
    assert {"manifest.json", "index.json", "oci-layout", "repositories",
            f"blobs/sha256/{busybox[7:]}", f"blobs/sha256/{diff_id[7:]}"} <= set(entries)

    manifest = json.loads(read_member(saved, "manifest.json"))
    assert manifest == [{
        "Config": f"blobs/sha256/{busybox[7:]}",
        "RepoTags": ["busybox:latest", "127.0.0.1:5000/tools/bb:v1"],
        "Layers": [f"blobs/sha256/{diff_id[7:]}"],
    }]
    # The layer entry is the uncompressed tar: its bytes hash to the diff ID.
    assert "sha256:" + hashlib.sha256(read_member(saved, f"blobs/sha256/{diff_id[7:]}")).hexdigest() == diff_id
    index = json.loads(read_member(saved, "index.json"))
    names = {m["annotations"]["org.opencontainers.image.ref.name"]: m["annotations"]["io.containerd.image.name"]
             for m in index["manifests"]}
    assert names == {"latest": "docker.io/library/busybox:latest", "v1": "127.0.0.1:5000/tools/bb:v1"}
    oci_manifest = json.loads(read_member(saved, f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"))
    assert oci_manifest["config"]["digest"] == busybox
    assert [layer["digest"] for layer in oci_manifest["layers"]] == [diff_id]
    assert json.loads(read_member(saved, "repositories")) == {
        "busybox": {"latest": diff_id[7:]}, "127.0.0.1:5000/tools/bb": {"v1": diff_id[7:]}}


def test_save_to_stdout_is_the_same_bytes(run_cli, saved: Path, dockyard_root: Path) -> None:
    result = dockyard("save", "busybox", "127.0.0.1:5000/tools/bb:v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == saved.read_bytes()  # saves are reproducible


def test_save_refuses_a_terminal(run_cli, busybox: str) -> None:
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard", "save", "busybox"], stdout=secondary,
                                stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 1
    assert result.stderr == b"Error: cowardly refusing to save to a terminal. Use the -o flag or redirect\n"


def test_save_unknown_image_writes_nothing(run_cli, busybox: str, tmp_path: Path) -> None:
    result = run_cli("save", "-o", tmp_path / "x.tar", "busybox", "nope")
    assert (result.returncode, result.stderr) == (1, "Error: No such image: nope\n")
    assert list(tmp_path.iterdir()) == []


def test_save_of_a_repository_saves_all_its_tags(run_cli, busybox: str, tmp_path: Path) -> None:
    run_cli("tag", "busybox", "busybox:v2", check=True)
    run_cli("tag", "busybox", "other", check=True)
    run_cli("save", "-o", tmp_path / "repo.tar", "busybox", check=True)
    [item] = json.loads(read_member(tmp_path / "repo.tar", "manifest.json"))
    assert sorted(item["RepoTags"]) == ["busybox:latest", "busybox:v2"]
    run_cli("save", "-o", tmp_path / "id.tar", busybox[7:19], check=True)
    [item] = json.loads(read_member(tmp_path / "id.tar", "manifest.json"))
    assert item["RepoTags"] is None


# ---- round trips --------------------------------------------------------------------------------

def test_round_trip_into_a_fresh_root(run_cli, busybox: str, saved: Path, tmp_path: Path, dockyard_root: Path) -> None:
    before = inspect(run_cli, "busybox")
    fresh = tmp_path / "fresh-root"
    result = dockyard("load", "-i", saved, root=fresh)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "Loaded image: busybox:latest\nLoaded image: 127.0.0.1:5000/tools/bb:v1\n"

    after = json.loads(dockyard("image", "inspect", "busybox", root=fresh).stdout)[0]
    assert after["Id"] == before["Id"] == busybox
    assert sorted(after["RepoTags"]) == sorted(["busybox:latest", "127.0.0.1:5000/tools/bb:v1"])
    assert after["RootFS"] == before["RootFS"]
    assert after["Config"] == before["Config"] and after["Size"] == before["Size"]
    layer = before["RootFS"]["Layers"][0][7:]
    assert file_list(fresh / "layers" / layer / "diff") == file_list(dockyard_root / "layers" / layer / "diff")

    # and it saves back to the very same tar
    again = dockyard("save", "busybox", "127.0.0.1:5000/tools/bb:v1", root=fresh)
    assert again.stdout == saved.read_bytes()


def test_load_from_stdin_twice_is_idempotent(run_cli, saved: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    for _ in range(2):
        with open(saved, "rb") as f:
            result = dockyard("load", stdin=f, root=fresh)
        assert result.returncode == 0, result.stderr
    assert len(dockyard("images", "-q", root=fresh).stdout.split()) == 1


def test_load_of_a_compressed_archive(run_cli, saved: Path, tmp_path: Path) -> None:
    packed = tmp_path / "saved.tar.gz"
    packed.write_bytes(gzip.compress(saved.read_bytes()))
    result = dockyard("load", "-q", "-i", packed, root=tmp_path / "fresh")
    assert result.returncode == 0, result.stderr
    assert b"Loaded image: busybox:latest" in result.stdout


def test_skopeo_reads_our_save(run_cli, busybox: str, saved: Path, tmp_path: Path) -> None:
    diff_id = inspect(run_cli, "busybox")["RootFS"]["Layers"][0]
    seen = json.loads(skopeo("inspect", f"docker-archive:{saved}").stdout)
    assert seen["Layers"] == [diff_id]
    assert seen["Env"] == ["A=1"]
    seen = json.loads(skopeo("inspect", f"docker-archive:{saved}:127.0.0.1:5000/tools/bb:v1").stdout)
    assert seen["Layers"] == [diff_id]
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{saved}:latest").stdout)
    assert config["rootfs"]["diff_ids"] == [diff_id]

    skopeo("copy", f"docker-archive:{saved}", f"oci:{tmp_path / 'oci'}:bb")
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    manifest = json.loads((tmp_path / "oci" / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert len(manifest["layers"]) == 1


def test_load_skopeo_docker_archive_keeps_the_config_digest(run_cli, busybox_layout: Path, tmp_path: Path) -> None:
    index = json.loads((busybox_layout / "index.json").read_text())
    manifest = json.loads((busybox_layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    archive = tmp_path / "from-skopeo.tar"
    skopeo("copy", f"oci:{busybox_layout}:latest", f"docker-archive:{archive}:sk/busybox:t1")
    result = run_cli("load", "-i", archive, check=True)
    assert result.stdout == "Loaded image: sk/busybox:t1\n"
    info = inspect(run_cli, "sk/busybox:t1")
    assert info["Id"] == manifest["config"]["digest"]
    assert info["Config"]["Cmd"] == ["sh"]


def test_load_skopeo_oci_archive(run_cli, busybox_layout: Path, tmp_path: Path) -> None:
    index = json.loads((busybox_layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((busybox_layout / "blobs" / "sha256" / manifest_digest[7:]).read_text())
    archive = tmp_path / "oci.tar"
    skopeo("copy", "--preserve-digests", f"oci:{busybox_layout}:latest", f"oci-archive:{archive}:sk/bb:oci")
    assert run_cli("load", "-i", archive, check=True).stdout == "Loaded image: sk/bb:oci\n"
    info = inspect(run_cli, "sk/bb:oci")
    assert info["Id"] == manifest["config"]["digest"]


def test_load_oci_layout_tar_without_a_name(run_cli, busybox_layout: Path, tmp_path: Path, dockyard_root: Path) -> None:
    index = json.loads((busybox_layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((busybox_layout / "blobs" / "sha256" / manifest_digest[7:]).read_text())
    archive = tar_dir(busybox_layout, tmp_path / "layout.tar")
    result = run_cli("load", "-i", archive, check=True)
    # ref.name "latest" is a bare tag, no image name: Docker loads it untagged.
    assert result.stdout == f"Loaded image ID: {manifest['config']['digest']}\n"
    from dockyard import config
    from dockyard.engine import Engine

    engine = Engine(config.load(dockyard_root))
    try:
        image = engine.image_store.lookup(manifest["config"]["digest"])
        assert image.manifest_digest == manifest_digest  # the layout's manifest, kept as is
    finally:
        engine.close()


def test_load_docker_archive_with_compressed_layers(run_cli, busybox: str, saved: Path, tmp_path: Path) -> None:
    """docker-archives from other tools may hold gzip or zstd layer files."""
    import zstandard

    diff_id = inspect(run_cli, "busybox")["RootFS"]["Layers"][0]
    layer = read_member(saved, f"blobs/sha256/{diff_id[7:]}")
    config_bytes = read_member(saved, f"blobs/sha256/{busybox[7:]}")
    for name, packed in (("gz", gzip.compress(layer)), ("zst", zstandard.ZstdCompressor().compress(layer))):
        archive = write_tar(tmp_path / f"{name}.tar", [
            ("config.json", config_bytes),
            (f"layer.tar.{name}", packed),
            ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [f"packed:{name}"],
                                           "Layers": [f"layer.tar.{name}"]}]).encode()),
        ])
        result = dockyard("load", "-i", archive, root=tmp_path / f"root-{name}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == f"Loaded image: packed:{name}\n"
        info = json.loads(dockyard("image", "inspect", f"packed:{name}", root=tmp_path / f"root-{name}").stdout)[0]
        assert info["Id"] == busybox and info["RootFS"]["Layers"] == [diff_id]


def test_load_retags_and_says_so(run_cli, busybox: str, busybox_tar: Path, saved: Path) -> None:
    other = run_cli("import", busybox_tar, "busybox", check=True).stdout.strip()
    result = run_cli("load", "-i", saved, check=True)
    assert result.stdout.splitlines()[0] == (
        f"The image busybox:latest already exists, renaming the old one with ID {other} to empty string")
    assert inspect(run_cli, "busybox")["Id"] == busybox


def test_load_with_a_tty_stdin_and_missing_file(run_cli, tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard", "load"], stdin=secondary,
                                capture_output=True, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert (result.returncode, result.stderr) == (1, b"Error: requested load from stdin, but stdin is empty\n")
    missing = run_cli("load", "-i", tmp_path / "nope.tar")
    assert (missing.returncode, missing.stderr) == (1, f"Error: open {tmp_path / 'nope.tar'}: no such file or directory\n")


# ---- bad archives: one line, exit 1, nothing committed ----------------------------------------

def _saved_parts(saved: Path) -> dict[str, bytes]:
    with tarfile.open(saved) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _missing_layer(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    layer = json.loads(parts["manifest.json"])[0]["Layers"][0]
    return [(n, d) for n, d in parts.items() if n != layer]


def _tampered_layer(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    layer = json.loads(parts["manifest.json"])[0]["Layers"][0]
    data = bytearray(parts[layer])
    data[600] ^= 0xFF  # inside the first file's data: still a tar, not the same one
    return [(n, bytes(data) if n == layer else d) for n, d in parts.items()]


def _renamed_layer_with_wrong_diff_id(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """The layer under a neutral name (no digest in the path) whose bytes differ from the diff ID."""
    item = json.loads(parts["manifest.json"])[0]
    layer = item["Layers"][0]
    item["Layers"] = ["layer.tar"]
    data = bytearray(parts[layer])
    data[600] ^= 0xFF
    rest = [(n, d) for n, d in parts.items() if n not in (layer, "manifest.json", "index.json")]
    return rest + [("layer.tar", bytes(data)), ("manifest.json", json.dumps([item]).encode())]


def _traversal(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [("../evil", b"x")] + list(parts.items())


def _absolute(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return list(parts.items()) + [("/etc/evil", b"x")]


def _traversal_in_manifest(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    item = json.loads(parts["manifest.json"])[0]
    item["Layers"] = ["../../etc/passwd"]
    return [(n, d) for n, d in parts.items() if n not in ("manifest.json",)] + [
        ("manifest.json", json.dumps([item]).encode())]


def _no_manifest(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(n, d) for n, d in parts.items() if n not in ("manifest.json", "index.json")]


def _bad_json(parts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(n, d) for n, d in parts.items() if n != "manifest.json"] + [("manifest.json", b"[{")]


CASES: dict[str, tuple[Callable, str]] = {
    "missing blob": (_missing_layer, "is missing"),
    "digest mismatch": (_tampered_layer, "has digest"),
    "diff ID mismatch": (_renamed_layer_with_wrong_diff_id, "has diff ID"),
    "traversal entry": (_traversal, "outside the archive"),
    "absolute entry": (_absolute, "outside the archive"),
    "traversal in manifest.json": (_traversal_in_manifest, "outside the archive"),
    "no manifest": (_no_manifest, "neither manifest.json"),
    "bad manifest.json": (_bad_json, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_archives_commit_nothing(run_cli, saved: Path, tmp_path: Path, case: str) -> None:
    build, message = CASES[case]
    archive = write_tar(tmp_path / "bad.tar", build(_saved_parts(saved)))
    fresh = tmp_path / "fresh"
    result = dockyard("load", "-i", archive, root=fresh)
    _assert_one_line_error(result, message)
    assert dockyard("images", "-q", root=fresh).stdout == b""
    assert store_is_empty(fresh)


def test_bad_oci_layout_blob_commits_nothing(run_cli, busybox_layout: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    import shutil

    shutil.copytree(busybox_layout, layout)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[-20] ^= 0xFF
    layer.chmod(0o644)
    layer.write_bytes(bytes(data))
    fresh = tmp_path / "fresh"
    result = dockyard("load", "-i", tar_dir(layout, tmp_path / "bad-layout.tar"), root=fresh)
    _assert_one_line_error(result, "has digest")
    assert store_is_empty(fresh)


@pytest.mark.parametrize("cut", ["header", "data"])
def test_truncated_archives_commit_nothing(run_cli, saved: Path, tmp_path: Path, cut: str) -> None:
    data = saved.read_bytes()
    layer_offset = data.index(b"bin/busybox")  # inside the (big) layer entry
    end = layer_offset + 100_000 if cut == "data" else 512 * 3 + 100  # mid-way through a header block
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(data[:end])
    fresh = tmp_path / "fresh"
    result = dockyard("load", "-i", truncated, root=fresh)
    _assert_one_line_error(result, "invalid archive")
    assert store_is_empty(fresh)


def test_not_an_archive_and_empty_input(run_cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(5000))
    _assert_one_line_error(dockyard("load", "-i", junk, root=tmp_path / "r1"), "invalid archive")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    _assert_one_line_error(dockyard("load", "-i", empty, root=tmp_path / "r2"), "the input is empty")


def _assert_one_line_error(result: subprocess.CompletedProcess[bytes], message: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.startswith("Error: ") and len(stderr.splitlines()) == 1, stderr
    assert message in stderr, stderr
    assert result.stdout == b""
