"""The content store: verified, atomic, concurrent-safe blob ingest."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard import digest as digests
from dockyard.errors import DigestMismatchError, InvalidDigestError, NotFoundError, SizeMismatchError
from dockyard.store.content import ContentStore


def test_ingest_commits_verified_blob(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = b"hello world" * 1000
    expected = digests.of_bytes(data)
    with store.ingest(expected, len(data)) as w:
        w.write(data[:5000])
        w.write(data[5000:])
        assert w.commit() == expected
    assert store.has(expected)
    assert store.size(expected) == len(data)
    with store.open(expected) as f:
        assert f.read() == data
    assert os.listdir(store.ingest_dir) == []


def test_sha512_blobs(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = b"x" * 100
    expected = "sha512:" + hashlib.sha512(data).hexdigest()
    assert store.write_bytes(data, expected) == expected
    assert store.read_bytes(expected) == data
    assert expected in set(store.list())


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    wrong = digests.of_bytes(b"other")
    with pytest.raises(DigestMismatchError):
        with store.ingest(wrong, 5) as w:
            w.write(b"hello")
            w.commit()
    assert not store.has(wrong)
    assert os.listdir(store.ingest_dir) == []


def test_truncated_and_oversized_are_refused(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = b"abcdef"
    d = digests.of_bytes(data)
    with pytest.raises(SizeMismatchError, match="truncated"):
        with store.ingest(d, 10) as w:
            w.write(data)
            w.commit()
    with pytest.raises(SizeMismatchError, match="larger"):
        with store.ingest(d, 3) as w:
            w.write(data)
    assert not store.has(d)
    assert os.listdir(store.ingest_dir) == []


def test_invalid_digest_rejected(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    for bad in ("sha256:abc", "md5:" + "0" * 32, "nocolon", "sha256:" + "G" * 64):
        with pytest.raises(InvalidDigestError):
            store.has(bad)


def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with pytest.raises(NotFoundError):
        store.open(digests.of_bytes(b"nothing"))


def test_concurrent_ingests_of_one_digest(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(1 << 20)
    d = digests.of_bytes(data)
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            with store.ingest(d, len(data)) as w:
                for i in range(0, len(data), 65536):
                    w.write(data[i:i + 65536])
                w.commit()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=ingest) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read_bytes(d) == data
    assert os.listdir(store.ingest_dir) == []


def test_kill_mid_ingest_leaves_no_visible_blob(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream leaves only an ingest temp file."""
    script = (
        "import sys, time\n"
        "from dockyard.store.content import ContentStore\n"
        f"s = ContentStore({str(tmp_path)!r})\n"
        "w = s.ingest('sha256:' + 'a' * 64, 1 << 30)\n"
        "w.write(b'x' * 65536)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = ContentStore(tmp_path)
    assert list(store.list()) == []
    assert len(os.listdir(store.ingest_dir)) == 1
    assert [os.path.basename(item.path) for item in store.reclaim_ingest()] == ["sha256-" + "a" * 64]
    assert os.listdir(store.ingest_dir) == []


def test_lock_serialises_two_processes(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    d = digests.of_bytes(b"shared")
    order: list[str] = []

    def holder(name: str) -> None:
        with store.lock(d):
            order.append(name + "-in")
            time.sleep(0.1)
            order.append(name + "-out")

    a = threading.Thread(target=holder, args=("a",))
    b = threading.Thread(target=holder, args=("b",))
    a.start()
    time.sleep(0.02)
    b.start()
    a.join()
    b.join()
    assert order == ["a-in", "a-out", "b-in", "b-out"]


# --------------------------------------------------------------------------- leftovers, resume


def _killed_writer(root: Path, digest: str | None, size: int | None, written: int) -> None:
    """A process that ingests ``written`` bytes of a blob, then dies by SIGKILL."""
    from tests.unit.test_owned import die_holding

    die_holding("from dockyard.store.content import ContentStore\n"
                f"w = ContentStore({str(root)!r}).ingest({digest!r}, {size})\n"
                f"w.write(bytes(range(256)) * {written // 256})\n")


def test_ingest_resumes_a_dead_writers_partial(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    d = digests.of_bytes(data)
    _killed_writer(tmp_path, d, len(data), 300 * 256)
    store = ContentStore(tmp_path)
    assert os.listdir(store.ingest_dir) == ["sha256-" + d[7:]]  # named by its digest: findable
    with store.ingest(d, len(data), resume=True) as w:
        assert w.count == 300 * 256  # the dead writer's bytes, hashed again
        w.write(data[w.count:])
        assert w.commit() == d
    assert store.read_bytes(d) == data
    assert os.listdir(store.ingest_dir) == []


def test_ingest_without_resume_starts_over(tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    d = digests.of_bytes(data)
    _killed_writer(tmp_path, d, len(data), 256)
    store = ContentStore(tmp_path)
    with store.ingest(d, len(data)) as w:
        assert w.count == 0
        w.write(data)
        w.commit()
    assert store.read_bytes(d) == data


def test_resume_of_an_oversized_partial_starts_over(tmp_path: Path) -> None:
    data = b"y" * 1000
    d = digests.of_bytes(data)
    _killed_writer(tmp_path, d, 1 << 20, 4096)  # a partial longer than the blob
    store = ContentStore(tmp_path)
    with store.ingest(d, len(data), resume=True) as w:
        assert w.count == 0
        w.write(data)
        assert w.commit() == d


def test_a_live_writers_file_is_neither_resumed_nor_reclaimed(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(10_000)
    d = digests.of_bytes(data)
    first = store.ingest(d, len(data), resume=True)
    first.write(data[:5000])
    try:
        assert store.leftovers() == [] and store.reclaim_ingest() == []
        # A second writer of the same digest (no per-digest lock taken) writes beside it.
        with store.ingest(d, len(data), resume=True) as second:
            assert second.count == 0 and second.path != first.path
            second.write(data)
            second.commit()
        first.write(data[5000:])
        assert first.commit() == d  # same bytes: the rename replaces the blob with itself
    finally:
        first.abort()
    assert store.read_bytes(d) == data
    assert os.listdir(store.ingest_dir) == []


def test_reclaim_at_a_pulls_start_keeps_resumable_partials(tmp_path: Path) -> None:
    d = digests.of_bytes(b"blob")
    _killed_writer(tmp_path, d, 1 << 20, 512)
    _killed_writer(tmp_path, None, None, 256)  # digest unknown (import): a tmp- file
    store = ContentStore(tmp_path)
    assert sorted(item.size for item in store.leftovers()) == [256, 512]
    removed = store.reclaim_ingest(keep_resumable=True)
    assert [os.path.basename(item.path)[:4] for item in removed] == ["tmp-"]
    assert os.listdir(store.ingest_dir) == ["sha256-" + d[7:]]
    assert [item.size for item in store.reclaim_ingest()] == [512]  # prune takes it too
    assert os.listdir(store.ingest_dir) == []
