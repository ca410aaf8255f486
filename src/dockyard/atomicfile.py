"""Atomic file replacement: temp file beside the target, fsync, rename, fsync the directory.

A crash or kill -9 at any point leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it replaces ``path``, on an error it vanishes."""
    import tempfile  # here: the stores import fsync_dir on every command's path

    target = os.fspath(path)
    parent = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(target)}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(parent)
