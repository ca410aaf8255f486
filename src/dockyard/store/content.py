"""Content-addressed store: immutable blobs by digest.

Layout under ``<root>/content``::

    blobs/<algorithm>/<hex>     committed blobs, never modified
    ingest/<random>             writes in progress (invisible to readers)
    locks/<algorithm>-<hex>     flock files that let two ingests of one digest share work

A blob becomes visible only by ``rename`` after its size and digest were checked
and its data fsynced, so a kill -9 at any point leaves no partial blob visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from dockyard import digest as digests
from dockyard.atomicfile import fsync_dir
from dockyard.errors import NotFoundError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO, Iterator

# Temp files older than this are from dead writers and may be removed.
STALE_INGEST_SECONDS = 24 * 3600


class Writer:
    """A blob being written: hashes and counts while it writes, commits atomically."""

    def __init__(self, store: "ContentStore", expected: str | None, size: int | None) -> None:
        self._store = store
        self._verifier = digests.Verifier(expected, size)
        import tempfile  # here: only writers need it (and shutil, bz2, lzma behind it)

        fd, name = tempfile.mkstemp(dir=store.ingest_dir, prefix="ingest-")
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._path = name
        self._done = False

    @property
    def count(self) -> int:
        return self._verifier.count

    def write(self, data: bytes) -> int:
        self._verifier.update(data)
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
        return len(data)

    def commit(self) -> str:
        """Verify size and digest, fsync and rename into place. Returns the digest."""
        try:
            actual = self._verifier.check()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store.file(actual)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            os.chmod(self._path, 0o444)
            # rename is atomic; a concurrent writer of the same digest wrote the same bytes.
            os.rename(self._path, target)
            fsync_dir(parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return actual

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Leaving the block without commit() discards the data.
        self.abort()


class ContentStore:
    # Paths are strings here: this store opens on `run`'s path, which does not load pathlib
    # (see config.py); ``path`` gives callers a Path.
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.path.join(root, "content")
        self.blobs_dir = os.path.join(self.root, "blobs")
        self.ingest_dir = os.path.join(self.root, "ingest")
        self.locks_dir = os.path.join(self.root, "locks")
        for d in (self.blobs_dir, self.ingest_dir, self.locks_dir):
            os.makedirs(d, exist_ok=True)

    def file(self, digest: str) -> str:
        """The blob's file (whether or not it exists)."""
        algorithm, _, encoded = digests.validate(digest).partition(":")
        return os.path.join(self.blobs_dir, algorithm, encoded)

    def path(self, digest: str) -> "Path":
        from pathlib import Path

        return Path(self.file(digest))

    def has(self, digest: str) -> bool:
        return os.path.exists(self.file(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.file(digest)).st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found in the content store") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.file(digest), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found in the content store") from None

    def read_bytes(self, digest: str, limit: int | None = None) -> bytes:
        """Read a small blob whole (manifests, configs), refusing ones above ``limit``."""
        with self.open(digest) as f:
            if limit is not None:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    from dockyard.errors import ManifestError

                    raise ManifestError(f"blob {digest} is {size} bytes, over the {limit} byte limit")
            return f.read()

    def ingest(self, expected: str | None = None, size: int | None = None) -> Writer:
        return Writer(self, expected, size)

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store a small blob; returns its digest (sha256 unless ``expected`` says otherwise)."""
        if expected is None:
            expected = digests.of_bytes(data)
        if self.has(expected):
            return expected
        with self.ingest(expected, len(data)) as w:
            w.write(data)
            return w.commit()

    def delete(self, digest: str) -> bool:
        try:
            os.unlink(self.file(digest))
            return True
        except FileNotFoundError:
            return False

    def list(self) -> Iterator[str]:
        for algorithm_dir in os.scandir(self.blobs_dir):
            if algorithm_dir.name not in digests.ALGORITHMS:
                continue
            for entry in os.scandir(algorithm_dir.path):
                yield f"{algorithm_dir.name}:{entry.name}"

    @contextlib.contextmanager
    def lock(self, digest: str) -> Iterator[None]:
        """Exclusive per-digest lock across processes: the second ingest of a digest
        waits for the first, then finds the blob present and skips its download."""
        algorithm, _, encoded = digests.validate(digest).partition(":")
        path = os.path.join(self.locks_dir, f"{algorithm}-{encoded}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clean_ingest(self, older_than: float = STALE_INGEST_SECONDS) -> int:
        """Remove temp files left by writers that died; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self.ingest_dir):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed
