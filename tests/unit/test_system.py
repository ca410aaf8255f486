"""``image prune``, ``system prune``, ``system df`` and ``system check`` over leftovers of dead
processes and a damaged store, as a user sees them (the CLI in a subprocess)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard import config, digest as digests
from dockyard.engine import Engine
from tests.unit.test_archive import make_tar, member

CLI = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def engine(dockyard_root: Path) -> Iterator[Engine]:
    e = Engine(config.load())
    try:
        yield e
    finally:
        e.close()


def layer(seed: int, size: int = 20_000) -> bytes:
    return make_tar(member("etc", tarfile.DIRTYPE), member("etc/data", data=bytes([seed]) * size),
                    member("link", tarfile.SYMTYPE, linkname="etc/data"))


def image(engine: Engine, seed: int, tag: str | None = "app:1"):  # noqa: ANN201
    return engine.images.import_(io.BytesIO(layer(seed)), tag)


def dead_leftovers(root: Path) -> dict[str, int]:
    """What a kill -9 leaves in each temp area (an unlocked file or dir: its owner is gone),
    as relative path -> bytes."""
    partial = root / "content" / "ingest" / ("sha256-" + "ab" * 32)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"p" * 1000)
    unpack = root / "layers" / "tmp" / ("cd" * 16) / "diff"
    unpack.mkdir(parents=True)
    (unpack / "half").write_bytes(b"u" * 2000)
    staging = root / "tmp" / "load-0123"
    staging.mkdir(parents=True)
    (staging / "blob").write_bytes(b"s" * 3000)
    return {str(partial.relative_to(root)): 1000, str(unpack.parent.relative_to(root)): 2000,
            str(staging.relative_to(root)): 3000}


def deleted_leftovers(stdout: str) -> list[str]:
    section = stdout.split("Deleted Leftovers:\n", 1)[1].split("\n\n", 1)[0]
    return sorted(section.splitlines())


def reclaimed(stdout: str) -> str:
    return re.search(r"^Total reclaimed space: (.*)$", stdout, re.M).group(1)


# --------------------------------------------------------------------------- image prune


def test_image_prune_removes_what_dead_processes_left(engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    kept = image(engine, 1)
    unused = engine.layers.unpack(io.BytesIO(layer(2)), "", None, None)  # a pull killed before its image
    orphan = engine.content.write_bytes(b"an orphan config")
    expected = dead_leftovers(dockyard_root)
    live = engine.content.ingest(digests.of_bytes(b"live"), 4)  # a pull in progress in this process
    live.write(b"li")
    try:
        result = run_cli("image", "prune", "-f", check=True)
    finally:
        live.abort()
    assert deleted_leftovers(result.stdout) == sorted(
        [f"partial download: {expected_path}" for expected_path in expected if "ingest" in expected_path]
        + [f"unfinished layer unpack or removal: {p}" for p in expected if p.startswith("layers")]
        + [f"staging of an import or load: {p}" for p in expected if p.startswith("tmp")]
        + [f"unused layer: layers/{unused.chain_id[7:]}/diff", f"unreferenced blob: content/blobs/sha256/{orphan[7:]}"])
    assert reclaimed(result.stdout) == "26.02kB"  # 6000 + 20000 (the layer) + 16 (the blob)
    for path in expected:
        assert not (dockyard_root / path).exists()
    assert not engine.layers.has(unused.chain_id) and not engine.content.has(orphan)
    assert engine.images.get("app:1").id == kept.id  # a tagged image is not prune's to take
    assert run_cli("system", "check").returncode == 0


def test_prune_leaves_unreferenced_content_to_a_running_pull(engine: Engine, dockyard_root: Path,
                                                             run_cli: CLI) -> None:
    orphan = engine.content.write_bytes(b"a config a running pull just wrote")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom dockyard.store.owned import image_lease\n"
         f"with image_lease({str(dockyard_root)!r}):\n    print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        busy = run_cli("image", "prune", "-f", check=True)
        assert engine.content.has(orphan)
        assert "a pull, import or load is running" in busy.stderr
        check = run_cli("system", "check")
        assert "note: unreferenced blobs and layers were not looked at" in check.stdout
        assert check.returncode == 0
    finally:
        holder.kill()
        holder.wait()
    done = run_cli("image", "prune", "-f", check=True)
    assert deleted_leftovers(done.stdout) == [f"unreferenced blob: content/blobs/sha256/{orphan[7:]}"]
    assert not engine.content.has(orphan)


def test_image_prune_until_spares_recent_leftovers(engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    paths = dead_leftovers(dockyard_root)
    old = dockyard_root / next(iter(paths))
    os.utime(old, (1_000_000_000, 1_000_000_000))
    result = run_cli("image", "prune", "-f", "--filter", "until=1h", check=True)
    assert deleted_leftovers(result.stdout) == [f"partial download: {next(iter(paths))}"]
    assert all((dockyard_root / p).exists() for p in list(paths)[1:])


# --------------------------------------------------------------------------- system prune


def test_system_prune_asks_then_removes_containers_volumes_images_and_leftovers(
        engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    image(engine, 1)
    dangling = image(engine, 3, tag=None)
    container = engine.containers.create({"Image": "app:1", "Cmd": ["true"]}, {})
    volume = engine.volumes.create()  # anonymous, used by nothing
    named = engine.volumes.create("keep")
    dead_leftovers(dockyard_root)
    orphan = dockyard_root / "containers" / ("e" * 64)  # rm killed after it dropped the row
    (orphan / "upper").mkdir(parents=True)
    (orphan / "upper" / "f").write_bytes(b"x" * 10)

    no = run_cli("system", "prune", "--volumes", input="n\n")
    assert no.returncode == 0
    assert no.stdout == (
        "WARNING! This will remove:\n"
        "  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all dangling images\n"
        "  - all dangling build cache\n"
        "  - leftovers of interrupted commands and image data no image uses\n"
        "\n"
        "Are you sure you want to continue? [y/N] ")
    assert engine.containers.store.get(container.id) is not None and engine.content.has(dangling.id)

    yes = run_cli("system", "prune", "--volumes", input="y\n", check=True)
    out = yes.stdout.split("[y/N] ", 1)[1]
    assert out.startswith(f"Deleted Containers:\n{container.id}\n\nDeleted Volumes:\n{volume.name}\n\n"
                          f"Deleted Images:\ndeleted: {dangling.id}\n")
    assert len(deleted_leftovers(out)) == 4
    assert f"container directory without a record: containers/{'e' * 64}" in deleted_leftovers(out)
    assert not orphan.exists()
    assert out.endswith("\n\nTotal reclaimed space: " + reclaimed(out) + "\n")
    assert engine.containers.store.get(container.id) is None
    assert engine.volumes.find(volume.name) is None and engine.volumes.find(named.name) is not None
    assert engine.images.get("app:1") is not None and not engine.image_store.exists(dangling.id)
    assert run_cli("system", "check").returncode == 0

    nothing = run_cli("system", "prune", "-f", "-a", check=True)  # -a: the unused tagged image too
    assert "untagged: app:1" in nothing.stdout and engine.images.find("app:1") is None


def test_system_prune_filters(engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    dangling = image(engine, 3, tag=None)
    dead_leftovers(dockyard_root)
    refused = run_cli("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert refused.returncode == 1
    assert refused.stderr == 'Error: The "until" filter is not supported with "--volumes"\n'
    asked = run_cli("system", "prune", "--filter", "label=team=a", input="n\n")
    assert "\n\n  Items to be pruned will be filtered with:\n  - label=team=a\n\nAre you sure" in asked.stdout
    labelled = run_cli("system", "prune", "-f", "--filter", "label=team=a", check=True)
    assert labelled.stdout == "Total reclaimed space: 0B\n"  # leftovers and this image carry no label
    assert engine.image_store.exists(dangling.id)
    young = run_cli("system", "prune", "-f", "--filter", "until=1h", check=True)
    assert young.stdout == "Total reclaimed space: 0B\n"  # everything here is younger than an hour


# --------------------------------------------------------------------------- system df


def test_system_df_counts_leftovers_containers_and_volumes(engine: Engine, dockyard_root: Path,
                                                           run_cli: CLI) -> None:
    image(engine, 1)
    engine.containers.create({"Image": "app:1", "Cmd": ["true"]}, {})
    volume = engine.volumes.create("data")
    (Path(volume.mountpoint) / "f").write_bytes(b"v" * 5000)
    before = run_cli("system", "df", check=True).stdout
    dead_leftovers(dockyard_root)
    after = run_cli("system", "df", check=True).stdout
    rows = {line.split("  ")[0]: line.split() for line in after.splitlines()[1:]}
    assert rows["Images"][1:3] == ["1", "1"]
    # 20000 bytes of layer + 6000 of leftovers; the layer is in use, the leftovers are reclaimable
    assert rows["Images"][3:] == ["26kB", "6kB", "(23%)"]
    assert re.search(r"^Images\s+1\s+1\s+20kB\s+0B \(0%\)$", before, re.M)
    assert rows["Containers"][1:] == ["1", "0", "0B", "0B"]
    assert after.splitlines()[3].split()[2:] == ["1", "0", "5kB", "5kB", "(100%)"]  # Local Volumes
    verbose = run_cli("system", "df", "-v", check=True).stdout
    assert "Leftovers of interrupted commands and unused image data: 6kB\n" in verbose
    assert re.search(r"^partial download\s+content/ingest/sha256-abab\S+\s+1kB$", verbose, re.M)
    assert re.search(r"^data\s+0\s+5kB$", verbose, re.M)
    assert re.search(r'^[0-9a-f]{12}\s+app:1\s+"true"\s+0\s+0B\s+', verbose, re.M)


# --------------------------------------------------------------------------- system check


def test_check_of_a_sound_store(engine: Engine, run_cli: CLI) -> None:
    image(engine, 1)
    image(engine, 2, "other:1")
    result = run_cli("system", "check")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "Checked 6 blobs, 2 layers, 2 images, 0 containers, 0 volumes: no problems found\n"


def test_check_finds_a_corrupt_blob_and_repair_drops_what_needed_it(engine: Engine, run_cli: CLI) -> None:
    img = image(engine, 1)
    config = engine.content.file(img.id)
    os.chmod(config, 0o644)
    Path(config).write_bytes(b"{}")
    found = run_cli("system", "check")
    assert found.returncode == 1
    assert f"error: blob {img.id}: its content hashes to {digests.of_bytes(b'{}')}\n" in found.stdout
    assert f"error: image {img.id}: its manifest and its config list different numbers of layers\n" in found.stdout
    assert found.stdout.endswith("2 errors, 0 leftovers (0B); `dockyard system check --repair` fixes what it "
                                 "safely can\n")
    repaired = run_cli("system", "check", "--repair")
    lines = repaired.stdout.splitlines()
    assert f"error: blob {img.id}: its content hashes to {digests.of_bytes(b'{}')} (removed)" in lines
    assert f"error: image {img.id}: its config blob {img.id} is missing (dropped its row and its names)" in lines
    # what only that image used is an orphan now, and goes too
    assert any(line.startswith("leftover: layer sha256:") and line.endswith("(removed)") for line in lines)
    assert repaired.returncode == 0
    assert run_cli("system", "check").returncode == 0
    assert engine.images.find("app:1") is None


def test_check_compares_unpacked_layers_with_their_tar(engine: Engine, run_cli: CLI) -> None:
    img = image(engine, 1)
    diff = Path(engine.layers.diff_dir(img.layers[0]))
    (diff / "etc" / "data").write_bytes(b"\x01" * 19_999 + b"\x02")
    (diff / "stray").write_text("not from the tar")
    (diff / "link").unlink()
    result = run_cli("system", "check", "--repair")
    chain = img.layers[0]
    hint = "(remove the images that use it, then pull them again)"
    assert result.stdout.splitlines()[:3] == [
        f"error: layer {chain}: stray is not in the layer's tar {hint}",
        f"error: layer {chain}: etc/data differs from the tar's content {hint}",
        f"error: layer {chain}: link is missing {hint}",
    ]
    assert result.returncode == 1  # not repairable without losing the image


def test_check_repairs_rows_pointing_at_nothing_and_removes_orphans(
        engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    img = image(engine, 1)
    container = engine.containers.create({"Image": "app:1", "Cmd": ["true"]}, {})
    volume = engine.volumes.create("data")
    os.rename(engine.layers.diff_dir(img.layers[0]), dockyard_root / "moved-away")
    os.rmdir(volume.mountpoint)
    orphan_dir = dockyard_root / "containers" / ("e" * 64)
    (orphan_dir / "upper").mkdir(parents=True)  # rm killed after it deleted the row
    (orphan_dir / "upper" / "f").write_bytes(b"x" * 10)
    dead_leftovers(dockyard_root)
    result = run_cli("system", "check", "--repair")
    lines = result.stdout.splitlines()
    assert f"error: layer {img.layers[0]}: its directory is missing (dropped its row)" in lines
    assert f"error: image {img.id}: its layer {img.layers[0]} is missing (dropped its row and its names)" in lines
    assert (f"error: container {container.id[:12]}: its image's layer {img.layers[0]} is missing "
            "(remove the container)") in lines
    assert "error: volume data: its directory is missing (made again, empty)" in lines
    assert f"leftover: containers/{'e' * 64}: container directory without a record (removed)" in lines
    assert ("leftover: content/ingest/sha256-" + "ab" * 32 + ": partial download, left by a process that is gone "
            "(removed)") in lines
    assert lines[-1].endswith("; repaired 10, 1 remains")
    assert result.returncode == 1
    assert not orphan_dir.exists() and Path(volume.mountpoint).is_dir()
    engine.containers.remove(container.id)
    assert run_cli("system", "check").returncode == 0


def test_a_loads_staging_dir_is_spared_while_it_runs_and_reclaimed_once_killed(
        engine: Engine, dockyard_root: Path, run_cli: CLI) -> None:
    image(engine, 1)
    saved = io.BytesIO()
    engine.images.save(["app:1"], saved)
    data = saved.getvalue()
    load = subprocess.Popen([sys.executable, "-m", "dockyard", "load"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        load.stdin.write(data[: len(data) // 2])  # and then nothing more: a load in progress
        load.stdin.flush()
        deadline = time.monotonic() + 30
        while not list((dockyard_root / "tmp").glob("load-*")):
            assert time.monotonic() < deadline and load.poll() is None
            time.sleep(0.01)
        staging = next((dockyard_root / "tmp").glob("load-*"))
        assert "Deleted Leftovers" not in run_cli("image", "prune", "-f", check=True).stdout
        assert staging.exists()  # its owner is alive
    finally:
        load.kill()
        load.wait()
    result = run_cli("image", "prune", "-f", check=True)
    assert deleted_leftovers(result.stdout) == [f"staging of an import or load: tmp/{staging.name}"]
    assert not staging.exists()


def test_rmi_force_leaves_a_stopped_containers_layers(engine: Engine, run_cli: CLI) -> None:
    """Found by system check: rmi -f of an image a stopped container uses took the layers
    of the container's rootfs with it."""
    img = image(engine, 1)
    container = engine.containers.create({"Image": "app:1", "Cmd": ["true"]}, {})
    assert run_cli("rmi", "-f", "app:1").stdout == f"Untagged: app:1\nDeleted: {img.id}\n"
    assert engine.layers.has(img.layers[0])
    assert run_cli("system", "check").returncode == 0
    engine.containers.remove(container.id)
    pruned = run_cli("image", "prune", "-f", check=True)
    assert f"unused layer: layers/{img.layers[0][7:]}/diff" in deleted_leftovers(pruned.stdout)
    assert run_cli("system", "check").returncode == 0
