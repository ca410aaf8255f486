"""A pull killed with -9 leaves its partial download named by the blob's digest; the next pull
hashes what is there and asks for the rest with a Range request, as containerd does.

Against CNCF distribution (it honours Range on blob GETs): its access log says what each GET
sent (status and bytes written), so the tests show that the resumed pull downloaded only the
rest. FakeRegistry (test_pull_push.py) plays a server that ignores Range.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard import config, reference
from dockyard.engine import Engine
from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, write_oci_layout
from tests.integration.test_pull_push import FakeRegistry, build_image

pytestmark = pytest.mark.integration

LAYER_SIZE = 96 << 20  # big enough that a kill lands mid-transfer on loopback


@pytest.fixture(scope="module")
def big_layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int, str]:
    """An OCI layout with one uncompressed random layer: (layout, layer digest, size, manifest digest)."""
    import json

    base = tmp_path_factory.mktemp("resume")
    tar = random_layer_tar(base / "layer.tar", LAYER_SIZE, seed=7)
    layout = base / "oci"
    top = write_oci_layout(layout, [ImageSpec([tar], compression="")])
    manifest = json.loads((layout / "blobs" / "sha256" / top[7:]).read_text())
    desc = manifest["layers"][0]
    tar.unlink()
    return layout, desc["digest"], desc["size"], top


@pytest.fixture
def pushed(distribution, big_layout, repo_name) -> tuple[str, str, int, str]:
    layout, layer, size, top = big_layout
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(layout, f"{name}:latest")
    return name, layer, size, top


def blob_gets(registry, name: str, layer: str, at_least: int = 0) -> list[tuple[int, int]]:  # noqa: ANN001
    """(status, bytes written) of each GET of ``layer`` in ``name``'s repository, from the
    registry's access log; waits (a little) for ``at_least`` of them: a response's line is
    written when it ends, a killed client's a moment after the kill."""
    repo = name.split("/", 1)[1]
    pattern = rf'"GET /v2/{re.escape(repo)}/blobs/{re.escape(layer)} HTTP/1.1" (\d+) (\d+)'
    deadline = time.monotonic() + 10
    while True:
        gets = [(int(s), int(n)) for s, n in re.findall(pattern, registry.new_logs())]
        if len(gets) >= at_least or time.monotonic() > deadline:
            return gets
        time.sleep(0.05)


def partial_of(root: Path, digest: str) -> Path:
    return root / "content" / "ingest" / digest.replace(":", "-")


def kill_mid_download(root: Path, name: str, layer: str, size: int) -> int:
    """Start ``dockyard pull``, SIGKILL it once its partial of ``layer`` holds a few MiB;
    returns how many bytes the partial kept (0 if the pull won the race)."""
    partial = partial_of(root, layer)
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "pull", name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if partial.stat().st_size >= 4 << 20:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        kept = partial.stat().st_size
    except FileNotFoundError:
        return 0
    return kept if 0 < kept < size else 0


def test_pull_resumes_what_a_killed_pull_downloaded(distribution, pushed, dockyard_root, run_cli) -> None:
    name, layer, size, top = pushed
    for attempt in range(1, 4):
        kept = kill_mid_download(dockyard_root, name, layer, size)
        if kept:
            break
        run_cli("rmi", "-f", name)  # the pull finished first: try again from nothing
    assert kept, "no kill landed mid-transfer in three tries"
    before = len(blob_gets(distribution, name, layer, at_least=attempt))  # the killed GETs

    result = run_cli("pull", name, check=True)
    assert f"Digest: {top}" in result.stdout
    gets = blob_gets(distribution, name, layer, at_least=before + 1)[before:]
    assert gets == [(206, size - kept)], gets  # only the rest went over the wire
    e = Engine(config.load())
    try:
        assert e.images.get(name).manifest_digest == top
        assert e.content.size(layer) == size
    finally:
        e.close()
    assert not partial_of(dockyard_root, layer).exists()
    assert run_cli("system", "check").returncode == 0


def test_a_wrong_partial_is_discarded_and_the_blob_fetched_whole(distribution, pushed, dockyard_root,
                                                                 run_cli) -> None:
    name, layer, size, top = pushed
    partial = partial_of(dockyard_root, layer)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"not the blob's first bytes" * 1000)  # left by no live process

    result = run_cli("pull", name, check=True)
    assert f"Digest: {top}" in result.stdout
    assert blob_gets(distribution, name, layer, at_least=2) == [(206, size - 26_000), (200, size)]
    assert not partial.exists()
    assert run_cli("system", "check").returncode == 0


def _pull(reg: FakeRegistry, repo: str):  # noqa: ANN202
    from dockyard.distribution.pull import pull

    e = Engine(config.load())
    try:
        return pull(e, reference.parse(f"{reg.address}/{repo}"))
    finally:
        e.close()


def test_server_ignoring_range_means_starting_over(dockyard_root) -> None:
    from aiohttp import web

    image = build_image([{"data.bin": os.urandom(1 << 20)}], compression="")
    layer = image.layer_digests[0]
    data = image.blobs[layer]
    partial = partial_of(dockyard_root, layer)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data[:300_000])

    async def full_body(request, kind, info):  # a server that does not do ranges
        if kind == "blobs" and info["ref"] == layer and request.method == "GET":
            return web.Response(body=data, headers={"Docker-Content-Digest": layer})
        return None

    with FakeRegistry() as reg:
        reg.add_image("app", "latest", image)
        reg.hook = full_body
        assert _pull(reg, "app").manifest_digest == image.digest
        gets = [h for m, p, h in reg.requests if m == "GET" and p.endswith(f"/blobs/{layer}")]
    assert [h.get("Range") for h in gets] == ["bytes=300000-"]  # asked once, got it all, kept it all
    assert not partial.exists()


def test_a_complete_partial_needs_no_request(dockyard_root) -> None:
    image = build_image([{"data.bin": os.urandom(1 << 20)}], compression="")
    layer = image.layer_digests[0]
    partial = partial_of(dockyard_root, layer)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(image.blobs[layer])  # killed between its last write and its commit
    with FakeRegistry() as reg:
        reg.add_image("app", "latest", image)
        assert _pull(reg, "app").manifest_digest == image.digest
        assert reg.count("GET", f"/blobs/{layer}") == 0
    assert not partial.exists()


def test_pull_fetches_the_blob_of_a_layer_already_unpacked_from_another(dockyard_root, run_cli) -> None:
    """Found by the fault-injection run: ``import`` of a base tar, then a pull of an image on the
    same tar compressed otherwise. The layer is not unpacked again, but the image's own blob
    must be fetched, or ``save`` (and a push to a registry that lacks it) cannot find it."""
    import io

    from tests.integration.test_pull_push import layer_tar

    files = {"etc/os-release": b"ID=base\n", "bin/tool": os.urandom(50_000)}
    image = build_image([files, {"app": b"app"}])  # gzip by Python's gzip module
    e = Engine(config.load())
    try:
        e.images.import_(io.BytesIO(layer_tar(files)), "base:1")  # gzip level 1: another blob
    finally:
        e.close()
    with FakeRegistry() as reg:
        reg.add_image("app", "latest", image)
        pulled = run_cli("pull", f"{reg.address}/app", check=True)
        assert reg.count("GET", f"/blobs/{image.layer_digests[0]}") == 1
    assert f"{image.layer_digests[0][7:19]}: Already exists" in pulled.stdout
    assert (dockyard_root / "content" / "blobs" / "sha256" / image.layer_digests[0][7:]).exists()
    assert run_cli("system", "check").returncode == 0
    assert run_cli("save", "-o", str(dockyard_root.parent / "app.tar"), f"{reg.address}/app").returncode == 0


def test_a_pull_first_reclaims_what_dead_processes_left(dockyard_root) -> None:
    """Leftovers of killed commands go at the next pull's start, but for partial downloads
    named by their digest: a later pull of that blob resumes them (for a day)."""
    image = build_image([{"f": b"x"}])
    (dockyard_root / "content" / "ingest").mkdir(parents=True)
    dead = {
        "content/ingest/tmp-0a1b": b"an import's gzip, digest unknown",
        "layers/tmp/0123abcd/diff/half": b"an unpack",
        "tmp/load-4567/blob": b"a load's staging",
    }
    for path, data in dead.items():
        (dockyard_root / path).parent.mkdir(parents=True, exist_ok=True)
        (dockyard_root / path).write_bytes(data)
    resumable = partial_of(dockyard_root, "sha256:" + "5" * 64)
    resumable.write_bytes(b"the start of another image's layer")
    stale = partial_of(dockyard_root, "sha256:" + "6" * 64)
    stale.write_bytes(b"two days old")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    with FakeRegistry() as reg:
        reg.add_image("app", "latest", image)
        _pull(reg, "app")
    assert os.listdir(dockyard_root / "content" / "ingest") == [resumable.name]
    assert os.listdir(dockyard_root / "layers" / "tmp") == []
    assert os.listdir(dockyard_root / "tmp") == []
