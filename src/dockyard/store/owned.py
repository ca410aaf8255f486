"""Temporary objects owned by a live process, and the lease that protects new content.

A temp object (a partial download, a half-unpacked layer, a staging dir) is flocked by the
process that made it for as long as that process uses it. The kernel drops the lock when the
process dies, however it dies, so a reclaimer tells a dead owner's leftover from a live one with
a non-blocking lock attempt, never by its age.

Each ``TempArea`` is one directory of such objects plus a creation lock: a creator holds it
shared from creating an object until it has locked it; a reclaimer holds it exclusive while it
tries the objects' locks, so an object is never caught in that gap and taken for dead.

``image_lease`` covers what is not a temp object but is not referenced yet either: blobs and
layers a pull, import or load has committed before the image that uses them is recorded. Those
operations hold the lease shared; a collector of unreferenced blobs and layers runs only when
it can take it exclusive (``collecting``), that is while no such operation is alive.

Imports stay light (os, fcntl, contextlib): content.py and layers.py load this on `run`'s path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Callable, Iterator


class Leftover:
    """A temp object whose owner is gone: where it is and what it holds."""

    __slots__ = ("path", "size", "mtime", "kind")

    def __init__(self, path: str, size: int, mtime: float, kind: str = "") -> None:
        self.path = path
        self.size = size
        self.mtime = mtime
        self.kind = kind  # what it was, in words ("partial download", "half-unpacked layer"...)

    def __repr__(self) -> str:
        return f"Leftover({self.path!r}, {self.size}, kind={self.kind!r})"


class TempArea:
    """A directory of temp objects, each flocked by its live owner."""

    def __init__(self, directory: str, lock_path: str, kind: str = "temporary file") -> None:
        self.directory = directory
        self.lock_path = lock_path
        self.kind = kind
        os.makedirs(directory, exist_ok=True)
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)

    @contextlib.contextmanager
    def creating(self) -> Iterator[None]:
        """Held (shared) from creating an object until its lock is taken."""
        with _flocked(self.lock_path, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def new_dir(self, prefix: str = "") -> Iterator[str]:
        """A fresh directory, locked while the block runs; removed at its end unless it was
        renamed away (committed) meanwhile."""
        with self.creating():
            path = os.path.join(self.directory, prefix + os.urandom(16).hex())
            os.mkdir(path, 0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            try:
                if os.path.lexists(path):
                    remove_tree(path)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def new_file(self, prefix: str = "") -> Iterator[str]:
        """A fresh empty file, locked while the block runs, removed at its end."""
        fd, path = self.create_file(prefix)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def create_file(self, prefix: str = "") -> tuple[int, str]:
        """(fd, path) of a fresh empty file open for reading and writing, locked by the fd:
        the caller owns both and closes the fd when the file is committed or removed."""
        with self.creating():
            while True:
                path = os.path.join(self.directory, prefix + os.urandom(16).hex())
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                except FileExistsError:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX)
                return fd, path

    def open_named(self, name: str) -> int | None:
        """An fd holding the lock of the file ``name`` (created empty if missing), or None
        while a live owner holds it. A file found there is a dead owner's: its bytes are kept
        for the caller to reuse or truncate."""
        path = os.path.join(self.directory, name)
        with self.creating():
            while True:
                fd = lock_or_close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
                if fd is None:
                    return None
                # The file may have been renamed away (committed) or removed between our
                # open and our lock: then the lock is on an inode that is no longer ``name``.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
                except FileNotFoundError:
                    same = False
                if same:
                    return fd
                os.close(fd)

    def held(self, name: str) -> bool:
        """Is the object ``name`` here and held by a live owner?"""
        path = os.path.join(self.directory, name)
        if not os.path.lexists(path):
            return False
        fd = try_lock(path)
        if fd is None:
            return True
        os.close(fd)
        return False

    # ---- finding and removing what dead owners left

    def leftovers(self) -> list[Leftover]:
        """The objects of dead owners (nothing is removed)."""
        found = []
        for path, fd in self._lock_dead():
            try:
                found.append(self._describe(path))
            finally:
                if fd is not None:
                    os.close(fd)
        return found

    def reclaim(self, keep: Callable[[Leftover], bool] | None = None) -> list[Leftover]:
        """Remove the objects of dead owners (but those ``keep`` spares); returns what went."""
        removed = []
        for path, fd in self._lock_dead():
            try:
                item = self._describe(path)
                if keep is not None and keep(item):
                    continue
                remove_tree(path)
                removed.append(item)
            except FileNotFoundError:
                continue
            finally:
                if fd is not None:
                    os.close(fd)
        return removed

    def _lock_dead(self) -> list[tuple[str, int | None]]:
        """(path, fd holding its lock) of every object no live process holds; fd None for
        strays (symlinks, sockets...) that no owner of ours could have made."""
        held: list[tuple[str, int | None]] = []
        try:
            with _flocked(self.lock_path, fcntl.LOCK_EX):
                for entry in os.scandir(self.directory):
                    if entry.path == self.lock_path:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                        held.append((entry.path, None))
                        continue
                    fd = try_lock(entry.path)
                    if fd is not None:
                        held.append((entry.path, fd))
        except BaseException:
            for _, fd in held:
                if fd is not None:
                    os.close(fd)
            raise
        return held

    def _describe(self, path: str) -> Leftover:
        st = os.lstat(path)
        size = tree_size(path) if stat.S_ISDIR(st.st_mode) else st.st_size
        return Leftover(path, size, st.st_mtime, self.kind)


def try_lock(path: str) -> int | None:
    """An fd holding the exclusive lock of ``path`` (a file or a directory) that nobody else
    holds, or None if a live owner holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    return lock_or_close(fd)


def lock_or_close(fd: int) -> int | None:
    """``fd`` once it holds its file's exclusive lock, or None (and ``fd`` closed) if
    another open file description holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _flocked(path: str, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the description releases the lock


def tree_size(path: str) -> int:
    from dockyard.fsutil import tree_size as size

    return size(path)


def remove_tree(path: str) -> None:
    """Remove a file or a directory tree; gets through read-only dirs (made writable on the
    way) and tolerates a concurrent remover."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    try:
        os.rmdir(path)   # an empty directory (a build's work dir, often): no shutil needed
        return
    except OSError:
        pass
    import shutil  # here: removal is rare on the run path

    def onerror(func, failed: str, exc_info) -> None:  # noqa: ANN001
        exc = exc_info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if not isinstance(exc, PermissionError):
            raise exc
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
            st = os.lstat(failed)
        except OSError:
            raise exc from None  # not ours to fix: report what rmtree hit
        if stat.S_ISDIR(st.st_mode):
            os.chmod(failed, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
            shutil.rmtree(failed, onerror=onerror)
        else:
            func(failed)

    shutil.rmtree(path, onerror=onerror)


# ---- directories made just before their record -------------------------------------------


def _record_dirs_lock(root: str | os.PathLike) -> str:
    locks = os.path.join(root, "locks")
    os.makedirs(locks, exist_ok=True)
    return os.path.join(locks, "record-dirs")


@contextlib.contextmanager
def recording_dir(root: str | os.PathLike, path: str, exist_ok: bool = False) -> Iterator[None]:
    """Make ``path`` (a container's or volume's directory) and hold it flocked while the
    block writes its record: a collector of directories without a record
    (``unrecorded_dirs``) then never takes a create in progress for a dead one's leftover.
    The creation lock (shared here) closes the gap between the mkdir and the flock."""
    with _flocked(_record_dirs_lock(root), fcntl.LOCK_SH):
        os.makedirs(path, exist_ok=exist_ok)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def unrecorded_dirs(root: str | os.PathLike, base: str, recorded: Callable[[str], bool]) -> list[str]:
    """Directories under ``base`` whose name ``recorded`` does not know and that no live
    create holds (see ``recording_dir``); nothing is removed."""
    out = []
    try:
        names = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return out
    with _flocked(_record_dirs_lock(root), fcntl.LOCK_EX):
        for name in names:
            path = os.path.join(base, name)
            fd = try_lock(path)
            if fd is None:
                continue  # being created (or gone)
            try:
                if not recorded(name):  # asked under the lock: a create that finished wrote it
                    out.append(path)
            finally:
                os.close(fd)
    return out


def scratch(root: str | os.PathLike) -> TempArea:
    """``<root>/tmp``: what import (a downloaded tarball) and load (the unpacked archive) stage."""
    return TempArea(os.path.join(root, "tmp"), os.path.join(root, "locks", "tmp"), "staging of an import or load")


# ---- the image lease ------------------------------------------------------------------------


def _lease_path(root: str | os.PathLike) -> str:
    locks = os.path.join(root, "locks")
    os.makedirs(locks, exist_ok=True)
    return os.path.join(locks, "images")


@contextlib.contextmanager
def image_lease(root: str | os.PathLike) -> Iterator[None]:
    """Held (shared) by an operation that adds blobs or layers before recording the image
    that uses them (pull, import, load): a collector leaves unreferenced content alone
    meanwhile. Never held across a fork: the child would keep it."""
    with _flocked(_lease_path(root), fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def collecting(root: str | os.PathLike) -> Iterator[bool]:
    """Yields True while holding the lease exclusive (no pull, import or load is alive, and
    none starts until the block ends), False at once if one is alive."""
    fd = os.open(_lease_path(root), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
