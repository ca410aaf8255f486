"""The storage driver seam: a flat namespace of ``/``-separated paths holding bytes.

Every driver passes one conformance suite (tests/unit/test_registry_storage.py).
Paths are relative (``blobs/sha256/ab...``); ``list`` is recursive and sorted by
byte order, like an S3 listing, so ``start_after``/``limit`` page through it.
Writers stream (bounded memory) and make their content visible atomically on
``commit``: a reader never sees half an object.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator

CHUNK = 1 << 20


class PathNotFound(Exception):
    """The path does not exist in the driver."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class Stat:
    path: str
    size: int
    mtime: float  # seconds since the epoch of the last write
    is_dir: bool = False


class Writer(abc.ABC):
    """A stream of bytes into one path; invisible until ``commit``."""

    size: int = 0

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make the content visible at the path, atomically (replacing what was there)."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Throw the content away; the path keeps what it had."""


class StorageDriver(abc.ABC):
    name: str = "?"

    @abc.abstractmethod
    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Chunks of the object from ``offset``; raises PathNotFound on first iteration."""

    @abc.abstractmethod
    async def writer(self, path: str) -> Writer: ...

    @abc.abstractmethod
    async def stat(self, path: str) -> Stat | None:
        """The object at ``path``, a directory-like prefix (``is_dir``) or None."""

    @abc.abstractmethod
    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None) -> list[str]:
        """Paths of every object under ``prefix`` (a directory), sorted, after ``start_after``."""

    @abc.abstractmethod
    async def move(self, src: str, dst: str) -> None:
        """Rename an object (replacing ``dst``); PathNotFound if ``src`` is missing."""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Remove an object or everything under a prefix; PathNotFound if nothing was there."""

    def local_path(self, path: str) -> str | None:
        """A filesystem path the blob GET reads directly, when the driver has one."""
        return None

    async def close(self) -> None:
        return None

    # --- conveniences over the primitives (small objects only) ---

    async def get(self, path: str, limit: int = 16 << 20) -> bytes:
        parts, total = [], 0
        async for chunk in self.reader(path):
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{path} is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def put(self, path: str, data: bytes) -> None:
        w = await self.writer(path)
        try:
            if data:
                await w.write(data)
            await w.commit()
        except BaseException:
            await w.cancel()
            raise


def open_driver(settings) -> StorageDriver:
    """The driver the settings name (``filesystem`` or ``s3``)."""
    if settings.storage == "s3":
        from dockyard.registry.storage.s3 import S3Driver

        return S3Driver(**settings.s3)
    from dockyard.registry.storage.filesystem import FilesystemDriver

    return FilesystemDriver(settings.root / "data", fsync=settings.fsync)
