"""Content-addressed store: immutable blobs by digest.

Layout under ``<root>/content``::

    blobs/<algorithm>/<hex>     committed blobs, never modified
    ingest/<algorithm>-<hex>    a write in progress of a known digest (invisible to readers)
    ingest/tmp-<random>         a write whose digest is known only at its end (import), or a
                                second concurrent write of a digest
    locks/<algorithm>-<hex>     flock files that let two ingests of one digest share work
    locks/ingest                held shared while an ingest file is created (see store/owned.py)

A blob becomes visible only by ``rename`` after its size and digest were checked
and its data fsynced, so a kill -9 at any point leaves no partial blob visible.

Every ingest file is flocked by its writer. One a dead writer left is a leftover: reclaimed
by ``reclaim_ingest``, or, when it is named by its digest, resumed by the next ingest of that
digest that asks for it (``ingest(..., resume=True)``: pull, which then asks the registry for
the rest only).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from dockyard import digest as digests
from dockyard.atomicfile import fsync_dir
from dockyard.errors import NotFoundError, SizeMismatchError
from dockyard.store.owned import Leftover, TempArea

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO, Iterator

# A dead writer's partial download, named by its digest, is kept this long for a later pull
# to resume; reclaim at a pull's start spares younger ones (prune removes them all).
RESUMABLE_SECONDS = 24 * 3600
_RESUME_CHUNK = 1 << 20


class Writer:
    """A blob being written: hashes and counts while it writes, commits atomically.

    With ``resume`` a partial left by a dead writer of the same digest is taken over: its
    bytes are hashed again and ``count`` says how many there are (write the rest).
    """

    def __init__(self, store: "ContentStore", expected: str | None, size: int | None,
                 resume: bool = False) -> None:
        self._store = store
        self._verifier = digests.Verifier(expected, size)
        self._done = False
        fd = None
        if expected is not None:
            name = expected.replace(":", "-", 1)
            fd = store.ingest_area.open_named(name)  # None: a live writer has that digest
            path = os.path.join(store.ingest_dir, name)
        if fd is None:
            fd, path = store.ingest_area.create_file("tmp-")
        self._fd = fd
        self._path = path
        try:
            if resume:
                self._take_over()
            else:
                os.ftruncate(fd, 0)
        except BaseException:
            self.abort()
            raise

    def _take_over(self) -> None:
        """Hash what a dead writer left; start over if it cannot be the blob's beginning."""
        try:
            while chunk := os.read(self._fd, _RESUME_CHUNK):
                self._verifier.update(chunk)
        except SizeMismatchError:  # longer than the blob: not a prefix of it
            self._verifier = digests.Verifier(self._verifier.expected, self._verifier.expected_size)
            os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_END)

    @property
    def count(self) -> int:
        return self._verifier.count

    @property
    def path(self) -> str:
        return self._path

    def write(self, data: bytes) -> int:
        self._verifier.update(data)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        return len(data)

    def commit(self) -> str:
        """Verify size and digest, fsync and rename into place. Returns the digest."""
        try:
            actual = self._verifier.check()
            os.fsync(self._fd)
            target = self._store.file(actual)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            os.fchmod(self._fd, 0o444)
            # rename is atomic; a concurrent writer of the same digest wrote the same bytes.
            os.rename(self._path, target)
            fsync_dir(parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        os.close(self._fd)  # after the rename: until then the lock says the file is ours
        return actual

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        with contextlib.suppress(OSError):
            os.close(self._fd)

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
        self.ingest_area = TempArea(self.ingest_dir, os.path.join(self.locks_dir, "ingest"), "partial download")

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

    def ingest(self, expected: str | None = None, size: int | None = None, resume: bool = False) -> Writer:
        """A writer for a blob; with ``resume``, one that continues a dead writer's partial
        of ``expected`` (its ``count`` says from where)."""
        return Writer(self, expected, size, resume)

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

    def leftovers(self) -> list[Leftover]:
        """Ingest files of writers that died (a kill -9 mid-download), none removed."""
        return self.ingest_area.leftovers()

    def reclaim_ingest(self, keep_resumable: bool = False) -> list[Leftover]:
        """Remove ingest files of writers that died; returns what went. ``keep_resumable``
        (a pull's start) spares partials named by their digest younger than
        RESUMABLE_SECONDS: a later pull of that blob resumes them."""
        keep = None
        if keep_resumable:
            cutoff = time.time() - RESUMABLE_SECONDS

            def keep(item: Leftover) -> bool:
                return not os.path.basename(item.path).startswith("tmp-") and item.mtime >= cutoff
        return self.ingest_area.reclaim(keep)
