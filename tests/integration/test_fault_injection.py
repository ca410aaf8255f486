"""Kill -9 ``pull``, ``push``, ``import``, ``run`` and ``rm`` at random moments, 50 times, then
run them again to completion: the images must be right, ``system check`` must find no
inconsistency, and after ``system prune -f`` no leftover either.

The moment of each kill is drawn between the command's start and its usual duration (timed
once, uninterrupted, at the start), so kills land in interpreter start-up, mid-transfer,
mid-unpack and mid-commit. The seed is printed; ``DOCKYARD_FAULT_SEED=<n>`` replays a run
(``DOCKYARD_FAULT_KILLS`` changes the count).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout
from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, dockyard_env, dy)

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("DOCKYARD_FAULT_KILLS", "50"))
OPS = ("pull", "push", "import", "run", "rm")


def many_files_tar(out: Path, count: int, seed: int, extra: Path | None = None) -> Path:
    """A tar of ``count`` small files in nested dirs (slow to unpack), plus ``extra``'s members."""
    rng = random.Random(seed)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(count):
            data = rng.randbytes(rng.randint(200, 3000))
            info = tarfile.TarInfo(f"files/{i % 40}/{i}.bin")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            with tarfile.open(extra) as more:
                for member in more:
                    tar.addfile(member, more.extractfile(member))
    return out


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path, distribution) -> dict:  # noqa: ANN001
    """The pushed multi-layer image and the tarball to import."""
    base = tmp_path_factory.mktemp("faults")
    files = many_files_tar(base / "files.tar", 3000, seed=1)
    big1 = random_layer_tar(base / "big1.tar", 16 << 20, seed=11)
    big2 = random_layer_tar(base / "big2.tar", 12 << 20, seed=12, name="other.bin")
    layout = base / "oci"
    top = write_oci_layout(layout, [ImageSpec([busybox_tar, files, big1, big2],
                                              compression=["gzip", "gzip", "", "zstd"], cmd=["sh"])])
    name = f"{distribution.address}/faults/app:1"
    push_oci_layout(layout, name)
    manifest = json.loads((layout / "blobs" / "sha256" / top[7:]).read_text())
    rootfs = many_files_tar(base / "rootfs.tar", 2000, seed=2, extra=random_layer_tar(base / "r.tar", 8 << 20, 3))
    return {"name": name, "digest": top, "id": manifest["config"]["digest"], "rootfs": rootfs,
            "rootfs_diff_id": "sha256:" + hashlib.sha256(rootfs.read_bytes()).hexdigest(),
            "registry": distribution.address}


class Faults:
    """The commands, each run once in full or killed at a random moment."""

    def __init__(self, dy: Dockyard, material: dict, rng: random.Random) -> None:
        self.dy, self.m, self.rng = dy, material, rng
        self.duration: dict[str, float] = {}
        self.pushes = 0
        self.log: list[str] = []
        self.left = {"partial download": 0, "unfinished unpack": 0}  # kills that left one

    def args(self, op: str) -> list[str]:
        if op == "pull":
            return ["pull", self.m["name"]]
        if op == "push":
            return ["push", f"{self.m['registry']}/faults/pushed-{self.pushes}:1"]
        if op == "import":
            return ["import", str(self.m["rootfs"]), f"{self.m['registry']}/faults/pushed-0:1"]
        if op == "run":
            return self.rng.choice([["run", "--rm", "busybox", "true"], ["run", "-d", "busybox", "sleep", "30"],
                                    ["run", "busybox", "sh", "-c", "echo hi > /f"]])
        return ["rm", "-f", self.victim()]

    def victim(self) -> str:
        """A container for rm to remove: a running one, mostly (the longest path)."""
        out = self.dy.cli("run", "-d", "busybox", "sleep", "30", check=True).stdout
        return out.strip()

    def prepare(self, op: str) -> None:
        if op == "pull" and self.rng.random() < 0.8:
            self.dy.cli("rmi", "-f", self.m["name"])  # so that the pull has work to do
        if op == "push":
            self.ensure_imported()
            self.pushes += 1  # a new repository each time: mounts and uploads, not only HEADs
            self.dy.cli("tag", f"{self.m['registry']}/faults/pushed-0:1",
                        f"{self.m['registry']}/faults/pushed-{self.pushes}:1", check=True)

    def ensure_imported(self) -> None:
        tag = f"{self.m['registry']}/faults/pushed-0:1"
        if self.dy.cli("image", "inspect", tag).returncode != 0:
            self.dy.cli("import", str(self.m["rootfs"]), tag, check=True)

    def complete(self, op: str) -> subprocess.CompletedProcess:
        self.prepare(op)
        args = self.args(op)
        started = time.monotonic()
        result = self.dy.cli(*args, timeout=300)
        assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
        self.duration[op] = time.monotonic() - started
        return result

    def kill(self, i: int, op: str) -> None:
        """Start ``op`` and SIGKILL it: at a random moment, or (pull, import) at a random
        moment once it is mid-transfer or mid-unpack, so that those are sure to be hit."""
        self.prepare(op)
        args = self.args(op)
        moment = self.rng.choice(["random", "transfer", "unpack"]) if op in ("pull", "import") else "random"
        delay = self.rng.uniform(0, self.duration[op] * 1.1) if moment == "random" else self.rng.uniform(0, 0.1)
        before = self.areas()
        proc = self.dy.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            if moment != "random":
                deadline = time.monotonic() + 60
                while proc.poll() is None and not self.busy(moment, before) and time.monotonic() < deadline:
                    time.sleep(0.002)
            proc.wait(delay)
            outcome = f"finished ({proc.returncode}) before the kill"
        except subprocess.TimeoutExpired:
            outcome = "killed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        after = self.areas()
        if outcome == "killed":
            self.left["partial download"] += any(n not in before["content/ingest"] or after["content/ingest"][n] >
                                                 before["content/ingest"][n] for n in after["content/ingest"])
            self.left["unfinished unpack"] += bool(set(after["layers/tmp"]) - set(before["layers/tmp"]))
        shown = {area: len(entries) for area, entries in after.items()}
        self.log.append(f"{i:2} {op:6} {moment:8} +{delay:.3f}s: {outcome}, leaving {shown}: {' '.join(args)}")

    def areas(self) -> dict[str, dict[str, int]]:
        """name -> size of each entry of the temp areas."""
        out: dict[str, dict[str, int]] = {}
        for area in ("content/ingest", "layers/tmp", "tmp"):
            out[area] = {}
            path = self.dy.root / area
            for entry in (os.scandir(path) if path.is_dir() else []):
                try:
                    out[area][entry.name] = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass
        return out

    def busy(self, moment: str, before: dict[str, dict[str, int]]) -> bool:
        now = self.areas()
        if moment == "transfer":
            return any(size > before["content/ingest"].get(name, 0) for name, size in now["content/ingest"].items())
        return bool(set(now["layers/tmp"]) - set(before["layers/tmp"]))


def findings(dy: Dockyard, repair: bool = False) -> tuple[int, list[str]]:
    result = dy.cli("system", "check", *(["--repair"] if repair else []), timeout=300)
    return result.returncode, result.stdout.splitlines()


def test_kill_9_at_random_points_leaves_a_consistent_reclaimable_store(dy: Dockyard, material: dict) -> None:
    seed = int(os.environ.get("DOCKYARD_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"fault injection seed: {seed} (DOCKYARD_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    faults = Faults(dy, material, rng)
    for op in OPS:
        faults.complete(op)  # times each command, uninterrupted
    schedule = [OPS[i % len(OPS)] for i in range(KILLS)]
    rng.shuffle(schedule)
    for i, op in enumerate(schedule):
        faults.kill(i, op)
    story = f"seed {seed}:\n" + "\n".join(faults.log)
    print(story)
    assert faults.left["partial download"] and faults.left["unfinished unpack"], f"{faults.left}\n{story}"
    code, lines = findings(dy)  # right after the kills: leftovers, but nothing inconsistent
    assert [line for line in lines if line.startswith("error:")] == [], f"{story}\n" + "\n".join(lines)

    # Everything again, to completion.
    pulled = faults.complete("pull")
    assert f"Digest: {material['digest']}" in pulled.stdout, story
    image = json.loads(dy.cli("image", "inspect", material["name"], check=True).stdout)[0]
    assert image["Id"] == material["id"], story
    faults.complete("import")
    imported = json.loads(dy.cli("image", "inspect", f"{material['registry']}/faults/pushed-0:1",
                                 check=True).stdout)[0]
    assert imported["RootFS"]["Layers"] == [material["rootfs_diff_id"]], story
    pushed = faults.complete("push").stdout
    remote = skopeo("inspect", "--raw", "--tls-verify=false",
                    f"docker://{material['registry']}/faults/pushed-{faults.pushes}:1").stdout
    assert "sha256:" + hashlib.sha256(remote.encode()).hexdigest() in pushed, story
    assert dy.cli("run", "--rm", material["name"], "cat", "/etc/hostname").returncode == 0, story
    ids = dy.cli("ps", "-aq", check=True).stdout.split()
    if ids:
        dy.cli("rm", "-f", *ids, check=True, timeout=120)

    code, lines = findings(dy)
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [], f"{story}\n" + "\n".join(lines)
    prune = dy.cli("system", "prune", "-f", check=True, timeout=300)
    code, lines = findings(dy)
    assert code == 0 and lines[-1].endswith("no problems found"), f"{story}\n{prune.stdout}\n" + "\n".join(lines)
    for area in ("content/ingest", "layers/tmp", "tmp"):
        path = dy.root / area
        assert not path.exists() or os.listdir(path) == [], f"{story}\n{area}: {os.listdir(path)}"
    # and the images are still whole after the prune
    assert dy.cli("run", "--rm", material["name"], "cat", "/etc/hostname").returncode == 0, story
