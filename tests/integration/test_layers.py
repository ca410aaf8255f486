"""The layer store on a real kernel: unpack once per chain, concurrency, crashes, overlay mounts."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zstandard

from dockyard.errors import ConflictError, DigestMismatchError, NotFoundError
from dockyard.store import archive
from dockyard.store.owned import remove_tree
from tests.unit.test_archive import make_tar, member
from dockyard.store.db import connect, transaction
from dockyard.store.layers import LayerInfo, LayerStore, chain_id

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted xattrs, overlay mounts)"),
]


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class CountingStream:
    """A blob stream that records how much was read from it, optionally slowly."""

    def __init__(self, data: bytes, delay: float = 0.0, piece: int = 64 << 10) -> None:
        self._f = io.BytesIO(data)
        self._delay = delay
        self._piece = piece
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        if self._delay:
            time.sleep(self._delay)
        data = self._f.read(self._piece if n < 0 else min(n, self._piece))
        self.bytes_read += len(data)
        return data


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def store(root: Path):
    conn = connect(root)
    yield LayerStore(root, conn)
    conn.close()


def layer_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "layers").iterdir() if p.name not in ("tmp", "locks"))


def tmp_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root / "layers" / "tmp"))


BASE = make_tar(member("bin", tarfile.DIRTYPE), member("bin/sh", data=b"#!shell", mode=0o755), member("etc/os", data=b"base"))
APP_A = make_tar(member("app/a", data=b"a"))
APP_B = make_tar(member("app/b", data=b"b"))


def add_image(store: LayerStore, image_id: str, chains: list[str]) -> None:
    with transaction(store._conn) as conn:
        conn.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            (image_id, "sha256:" + "0" * 64, "application/vnd.oci.image.manifest.v1+json", None, 0, time.time()),
        )
        for position, cid in enumerate(chains):
            conn.execute("INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?)", (image_id, position, cid))


def remove_image(store: LayerStore, image_id: str) -> None:
    with transaction(store._conn) as conn:
        conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


# --------------------------------------------------------------------------- chain IDs


def test_chain_id_follows_the_oci_definition() -> None:
    a, b = sha256(b"a"), sha256(b"b")
    assert chain_id(None, a) == a
    assert chain_id(a, b) == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


# --------------------------------------------------------------------------- unpack


@pytest.mark.parametrize("kind", ["gzip", "zstd", ""])
def test_unpack_each_compression(store: LayerStore, root: Path, kind: str) -> None:
    blob = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress, "": bytes}[kind](BASE)
    info = store.unpack(io.BytesIO(blob), None, sha256(BASE), None)
    assert info == LayerInfo(chain_id=sha256(BASE), diff_id=sha256(BASE), parent=None, size=len(b"#!shell") + 4)
    assert store.has(info.chain_id)
    assert store.get(info.chain_id) == info
    assert (store.path(info.chain_id) / "bin" / "sh").read_bytes() == b"#!shell"
    assert store.path(info.chain_id) == root / "layers" / sha256(BASE).split(":")[1] / "diff"


def test_unpack_same_layer_twice_is_one_dir_and_reads_nothing(store: LayerStore, root: Path) -> None:
    first = store.unpack(io.BytesIO(BASE), "", sha256(BASE), None)
    stream = CountingStream(BASE)
    second = store.unpack(stream, "", sha256(BASE), None)
    assert first == second
    assert stream.bytes_read == 0
    assert layer_dirs(root) == [sha256(BASE).split(":")[1]]


def test_two_images_sharing_a_base_share_its_dir(store: LayerStore, root: Path) -> None:
    base = store.unpack(io.BytesIO(BASE), None, sha256(BASE), None)
    a = store.unpack(io.BytesIO(APP_A), None, sha256(APP_A), base.chain_id)
    base_again = store.unpack(io.BytesIO(BASE), None, sha256(BASE), None)
    b = store.unpack(io.BytesIO(APP_B), None, sha256(APP_B), base_again.chain_id)
    assert len(layer_dirs(root)) == 3
    assert a.parent == b.parent == base.chain_id
    assert store.lowerdirs(a.chain_id) == [store.diff_dir(a.chain_id), store.diff_dir(base.chain_id)]
    assert store.path(a.chain_id) == Path(store.diff_dir(a.chain_id))
    assert store.children(base.chain_id) == sorted([a.chain_id, b.chain_id])
    assert store.total_size() == base.size + a.size + b.size


def test_import_computes_the_diff_id(store: LayerStore) -> None:
    info = store.unpack(io.BytesIO(gzip.compress(BASE)), None, None, None)
    assert info.diff_id == sha256(BASE) and info.chain_id == sha256(BASE)
    # importing it again reuses the layer
    assert store.unpack(io.BytesIO(BASE), None, None, None) == info


def test_diff_id_mismatch_leaves_no_layer(store: LayerStore, root: Path) -> None:
    wrong = sha256(b"not this")
    with pytest.raises(DigestMismatchError):
        store.unpack(io.BytesIO(BASE), None, wrong, None)
    assert not store.has(wrong)
    assert layer_dirs(root) == []
    assert tmp_entries(root) == []


def test_missing_parent_is_refused_before_reading(store: LayerStore) -> None:
    stream = CountingStream(APP_A)
    with pytest.raises(NotFoundError):
        store.unpack(stream, None, sha256(APP_A), sha256(b"no such parent"))
    assert stream.bytes_read == 0


def test_get_of_unknown_layer(store: LayerStore) -> None:
    with pytest.raises(NotFoundError):
        store.get(sha256(b"nothing"))
    assert not store.has(sha256(b"nothing"))


def test_concurrent_unpacks_of_one_chain_unpack_once(store: LayerStore, root: Path) -> None:
    data = make_tar(member("big", data=os.urandom(2 << 20)))
    streams = [CountingStream(data, delay=0.005), CountingStream(data, delay=0.005)]
    results: list[LayerInfo | BaseException] = [None, None]  # type: ignore[list-item]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = store.unpack(streams[i], "", sha256(data), None)
        except BaseException as e:  # surfaced by the asserts below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] and isinstance(results[0], LayerInfo)
    assert sorted(s.bytes_read for s in streams) == [0, len(data)]  # one read it all, the other nothing
    assert layer_dirs(root) == [sha256(data).split(":")[1]]
    assert tmp_entries(root) == []


def test_concurrent_imports_of_one_layer_keep_one(store: LayerStore, root: Path) -> None:
    data = make_tar(member("f", data=os.urandom(1 << 20)))
    results: list[LayerInfo] = []

    def run() -> None:
        results.append(store.unpack(CountingStream(data, delay=0.002), None, None, None))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert layer_dirs(root) == [sha256(data).split(":")[1]]
    assert tmp_entries(root) == []


# --------------------------------------------------------------------------- crashes and temp dirs

_CHILD = """
import sys
from pathlib import Path
from dockyard.store.db import connect
from dockyard.store.layers import LayerStore
root = Path(sys.argv[1])
LayerStore(root, connect(root)).unpack(sys.stdin.buffer, "", sys.argv[2], None)
"""


def test_kill_9_mid_unpack_leaves_only_a_temp_dir(store: LayerStore, root: Path) -> None:
    data = make_tar(member("a", data=b"a" * 1000), member("big", data=os.urandom(8 << 20)))
    diff_id = sha256(data)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), diff_id], stdin=subprocess.PIPE)
    try:
        child.stdin.write(data[: 4 << 20])  # half of the stream, then the writer "hangs"
        child.stdin.flush()
        deadline = time.monotonic() + 30
        while not list((root / "layers" / "tmp").glob("*/diff/big")):
            assert time.monotonic() < deadline, "the child never started unpacking"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdin.close()
    assert not store.has(diff_id)
    assert layer_dirs(root) == []
    assert len(tmp_entries(root)) == 1
    assert len(store.reclaim()) == 1
    assert tmp_entries(root) == []
    # and the layer unpacks fine afterwards
    assert store.unpack(io.BytesIO(data), "", diff_id, None).chain_id == diff_id


def test_reclaim_leaves_live_unpacks_alone(store: LayerStore, root: Path) -> None:
    data = make_tar(member("f", data=os.urandom(1 << 20)))
    gate = threading.Event()

    class Gated(CountingStream):
        def read(self, n: int = -1) -> bytes:
            if self.bytes_read >= 512 << 10:
                gate.wait()
            return super().read(n)

    result: list[LayerInfo] = []
    t = threading.Thread(target=lambda: result.append(store.unpack(Gated(data), "", sha256(data), None)))
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not tmp_entries(root):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len(store.reclaim()) == 0
        assert len(tmp_entries(root)) == 1
    finally:
        gate.set()
        t.join()
    assert result and store.has(sha256(data))


def test_orphan_final_dir_without_row_is_ignored_and_cleaned(store: LayerStore, root: Path) -> None:
    # A kill between the rename into place and the insert of the row.
    diff_id = sha256(BASE)
    orphan = root / "layers" / diff_id.split(":")[1] / "diff"
    orphan.mkdir(parents=True)
    (orphan / "junk").write_text("half")
    assert not store.has(diff_id)
    assert len(store.reclaim()) == 1
    assert layer_dirs(root) == []
    # ...and unpack replaces one too, if it finds one first.
    orphan.mkdir(parents=True)
    info = store.unpack(io.BytesIO(BASE), "", diff_id, None)
    assert not (store.path(info.chain_id) / "junk").exists()


def test_rmtree_gets_through_read_only_dirs_without_root() -> None:
    # pytest's tmp_path is not traversable by other users; use a dir of our own.
    base = Path(tempfile.mkdtemp(prefix="dockyard-rmtree-"))
    try:
        os.chmod(base, 0o755)
        os.chown(base, 65534, 65534)
        top = base / "tree"
        pid = os.fork()
        if pid == 0:  # child: an unprivileged user removing its own read-only tree
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                (top / "ro" / "deeper").mkdir(parents=True)
                os.chmod(top, 0o500)
                (top / "ro" / "deeper" / "f").write_text("x")
                (top / "ro" / "g").write_text("y")
                os.chmod(top / "ro" / "deeper", 0o555)
                os.chmod(top / "ro", 0o500)
                remove_tree(str(top))
                code = 0 if not top.exists() else 2
            except BaseException as e:
                print(f"child failed: {e!r}", file=sys.stderr)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(base)


# --------------------------------------------------------------------------- usage, delete


def test_unused_and_delete(store: LayerStore, root: Path) -> None:
    base = store.unpack(io.BytesIO(BASE), None, sha256(BASE), None)
    a = store.unpack(io.BytesIO(APP_A), None, sha256(APP_A), base.chain_id)
    b = store.unpack(io.BytesIO(APP_B), None, sha256(APP_B), base.chain_id)
    add_image(store, "sha256:" + "1" * 64, [base.chain_id, a.chain_id])
    assert store.unused() == [b.chain_id]
    assert store.unused(older_than=3600) == []  # just unpacked: maybe a pull in progress
    with pytest.raises(ConflictError, match="used by image"):
        store.delete(a.chain_id)
    with pytest.raises(ConflictError):
        store.delete(base.chain_id)
    assert store.delete(b.chain_id) is True
    assert store.delete(b.chain_id) is False
    remove_image(store, "sha256:" + "1" * 64)
    add_image(store, "sha256:" + "2" * 64, [a.chain_id])  # lists only the top: base is still needed
    assert store.unused() == []
    with pytest.raises(ConflictError, match="parent of"):
        store.delete(base.chain_id)
    remove_image(store, "sha256:" + "2" * 64)
    assert store.unused() == [a.chain_id, base.chain_id]  # children first
    for cid in store.unused():
        assert store.delete(cid)
    assert layer_dirs(root) == [] and tmp_entries(root) == []
    assert store.total_size() == 0


def test_record_blob_and_blobs_for(store: LayerStore) -> None:
    diff_id = sha256(BASE)
    store.record_blob(diff_id, sha256(b"gz"), "application/vnd.oci.image.layer.v1.tar+gzip", 10)
    store.record_blob(diff_id, sha256(b"zst"), "application/vnd.oci.image.layer.v1.tar+zstd", 8)
    store.record_blob(diff_id, sha256(b"gz"), "application/vnd.oci.image.layer.v1.tar+gzip", 10)  # idempotent
    assert sorted(store.blobs_for(diff_id)) == sorted(
        [
            (sha256(b"gz"), "application/vnd.oci.image.layer.v1.tar+gzip", 10),
            (sha256(b"zst"), "application/vnd.oci.image.layer.v1.tar+zstd", 8),
        ]
    )
    assert store.blobs_for(sha256(b"other")) == []


# --------------------------------------------------------------------------- archive.py with root: owners, devices, whiteouts


def test_preserves_owner_and_devices(dest: Path) -> None:
    info, data = member("owned", data=b"x", uid=1000, gid=1000, mode=0o6755)
    tar = make_tar(
        (info, data),
        member("chr", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666, uid=1000, gid=1000),
        member("blk", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660),
        member("sym", tarfile.SYMTYPE, linkname="owned", uid=1000, gid=1000),
    )
    archive.extract(io.BytesIO(tar), dest)
    st_owned = (dest / "owned").stat()
    assert (st_owned.st_uid, st_owned.st_gid) == (1000, 1000)
    assert stat.S_IMODE(st_owned.st_mode) == 0o6755  # setuid survives the chown
    st_chr = (dest / "chr").lstat()
    assert stat.S_ISCHR(st_chr.st_mode) and os.major(st_chr.st_rdev) == 1 and os.minor(st_chr.st_rdev) == 3
    assert (st_chr.st_uid, stat.S_IMODE(st_chr.st_mode)) == (1000, 0o666)
    st_blk = (dest / "blk").lstat()
    assert stat.S_ISBLK(st_blk.st_mode) and os.major(st_blk.st_rdev) == 7
    assert (dest / "sym").lstat().st_uid == 1000


def test_whiteouts_become_overlay_whiteouts(dest: Path) -> None:
    tar = make_tar(
        member("gone", data=b"replaced by whiteout"),
        member(".wh.gone"),
        member("sub/.wh.file"),
        member("opq", tarfile.DIRTYPE),
        member("opq/.wh..wh..opq"),
        member("opq/kept", data=b"k"),
        member(".wh..wh.plnk", tarfile.DIRTYPE),
    )
    result = archive.extract(io.BytesIO(tar), dest)
    for name in ("gone", "sub/file"):
        st_wo = (dest / name).lstat()
        assert stat.S_ISCHR(st_wo.st_mode) and st_wo.st_rdev == 0
    assert not (dest / ".wh.gone").exists() and not (dest / "sub/.wh.file").exists()
    assert os.getxattr(dest / "opq", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "opq")) == ["kept"]
    assert not (dest / ".wh..wh.plnk").exists()
    assert result.warnings


def test_pack_converts_whiteouts_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "opq").mkdir(parents=True)
    (src / "opq" / "new").write_bytes(b"n")
    os.setxattr(src / "opq", "trusted.overlay.opaque", b"y")
    os.mknod(src / "deleted", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(src / "opq" / "new", "security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\0" * 12)
    out = io.BytesIO()
    diff_id = archive.pack(src, out)
    assert diff_id == sha256(out.getvalue())
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == [".wh.deleted", "null", "opq", "opq/.wh..wh..opq", "opq/new"]
    assert members["null"].ischr() and members["null"].devminor == 3
    assert "SCHILY.xattr.trusted.overlay.opaque" not in members["opq"].pax_headers
    # ...and back again: the same overlay view.
    again = tmp_path / "again"
    result = archive.extract(io.BytesIO(out.getvalue()), again)
    assert result.diff_id == diff_id
    assert stat.S_ISCHR((again / "deleted").lstat().st_mode)
    assert os.getxattr(again / "opq", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(again / "opq" / "new", "security.capability") == os.getxattr(src / "opq" / "new", "security.capability")


# --------------------------------------------------------------------------- overlay


def test_whiteouts_work_in_a_real_overlay_mount(store: LayerStore, tmp_path: Path) -> None:
    lower = make_tar(
        member("deleted", data=b"old"),
        member("kept", data=b"kept"),
        member("dir", tarfile.DIRTYPE),
        member("dir/x", data=b"x"),
        member("dir/y", data=b"y"),
        member("other", tarfile.DIRTYPE),
        member("other/stays", data=b"s"),
    )
    upper = make_tar(
        member(".wh.deleted"),
        member("dir", tarfile.DIRTYPE),
        member("dir/.wh..wh..opq"),
        member("dir/z", data=b"z"),
        member("other/.wh.stays"),
    )
    base = store.unpack(io.BytesIO(lower), None, sha256(lower), None)
    top = store.unpack(io.BytesIO(upper), None, sha256(upper), base.chain_id)
    top_dir = store.path(top.chain_id)
    assert stat.S_ISCHR((top_dir / "deleted").lstat().st_mode)
    assert os.getxattr(top_dir / "dir", "trusted.overlay.opaque") == b"y"

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lowerdir = ":".join(str(p) for p in store.lowerdirs(top.chain_id))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lowerdir}", str(mnt)], check=True)
    try:
        assert not (mnt / "deleted").exists()
        assert (mnt / "kept").read_bytes() == b"kept"
        assert sorted(os.listdir(mnt / "dir")) == ["z"]
        assert os.listdir(mnt / "other") == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
