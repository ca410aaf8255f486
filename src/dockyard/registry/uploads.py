"""Blob upload sessions: staged in the driver under ``uploads/``, hashed while written,
verified on the final PUT, then moved to ``blobs/<alg>/<xx>/<hex>``.

Sessions live in this process's memory (the open writer and the running hash
cannot be handed to another process): a session started on one replica must be
finished on it, as with distribution's in-progress S3 multipart uploads. A server
that dies mid-upload loses only the sessions in flight; their staged bytes are
swept at the next start (filesystem) or by an S3 lifecycle rule (aborted
multipart uploads).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

from dockyard import digest as digests
from dockyard.registry.errors import APIError
from dockyard.registry.index import Index
from dockyard.registry.storage import CHUNK, PathNotFound, StorageDriver, Writer

UPLOADS = "uploads"
SESSION_TTL = 3600.0  # an upload idle this long is abandoned


def blob_path(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}"


@dataclass
class Upload:
    id: str
    repo: str
    writer: Writer
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    offset: int = 0
    started: float = field(default_factory=time.time)
    touched: float = field(default_factory=time.time)
    broken: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def path(self) -> str:
        return f"{UPLOADS}/{self.id}"

    @property
    def range(self) -> str:
        """The ``Range`` header: bytes received so far (``0-0`` when none, as distribution)."""
        return f"0-{max(self.offset - 1, 0)}"


class UploadManager:
    def __init__(self, driver: StorageDriver, index: Index) -> None:
        self.driver = driver
        self.index = index
        self.sessions: dict[str, Upload] = {}

    async def start(self, repo: str) -> Upload:
        upload_id = str(uuid.uuid4())
        writer = await self.driver.writer(f"{UPLOADS}/{upload_id}")
        up = Upload(upload_id, repo, writer)
        self.sessions[upload_id] = up
        return up

    def get(self, repo: str, upload_id: str, allow_broken: bool = False) -> Upload:
        up = self.sessions.get(upload_id)
        if up is None or up.repo != repo:
            raise APIError("BLOB_UPLOAD_UNKNOWN", {"uuid": upload_id})
        if up.broken and not allow_broken:
            raise APIError("BLOB_UPLOAD_INVALID", {"uuid": upload_id}, message="upload was interrupted; start again")
        up.touched = time.time()
        return up

    async def append(self, up: Upload, body: AsyncIterator[bytes]) -> int:
        """Stream ``body`` into the session, hashing as it goes; returns the bytes added.

        Pipelined: while one 1 MiB chunk is hashed and written in worker threads
        (both release the GIL), the event loop reads the next one from the socket."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future | None = None
        buf = bytearray()
        added = 0

        async def sink(chunk: bytes) -> None:
            nonlocal added
            await asyncio.gather(loop.run_in_executor(None, up.hasher.update, chunk), up.writer.write(chunk))
            up.offset += len(chunk)
            added += len(chunk)

        try:
            async for data in body:
                buf += data
                if len(buf) >= CHUNK:
                    chunk = bytes(buf)
                    buf.clear()
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(sink(chunk))
            if pending is not None:
                await pending
                pending = None
            if buf:
                await sink(bytes(buf))
        except BaseException:
            # A half-written chunk leaves hash and data out of step: the session is unusable.
            up.broken = True
            if pending is not None:
                pending.cancel()
            raise
        return added

    async def finish(self, up: Upload, expected: str) -> int:
        """Verify the content against ``expected`` and move it into place; returns its size."""
        self.sessions.pop(up.id, None)
        try:
            await up.writer.commit()
            actual = f"sha256:{up.hasher.hexdigest()}"
            if digests.algorithm_of(expected) != "sha256":
                actual = await self._rehash(up.path, digests.algorithm_of(expected))
            if actual != expected:
                raise APIError("DIGEST_INVALID", {"expected": expected, "actual": actual})
            # Note the blob in the index first: GC keeps blobs used after its mark began,
            # so a blob that appears under it is never swept.
            await self.index.link_blob(up.repo, expected, up.offset)
            dest = blob_path(expected)
            existing = await self.driver.stat(dest)
            if existing is not None and existing.size == up.offset:
                await self.driver.delete(up.path)  # concurrent push of the same blob: keep one
            else:
                await self.driver.move(up.path, dest)
            return up.offset
        except BaseException:
            await self._discard(up)
            raise

    async def cancel(self, up: Upload) -> None:
        self.sessions.pop(up.id, None)
        await self._discard(up)

    async def _discard(self, up: Upload) -> None:
        await up.writer.cancel()
        try:
            await self.driver.delete(up.path)
        except (PathNotFound, FileNotFoundError):
            pass

    async def _rehash(self, path: str, algorithm: str) -> str:
        h = digests.new_hasher(algorithm)
        loop = asyncio.get_running_loop()
        async for chunk in self.driver.reader(path):
            await loop.run_in_executor(None, h.update, chunk)
        return f"{algorithm}:{h.hexdigest()}"

    async def expire(self, ttl: float = SESSION_TTL) -> int:
        """Cancel sessions idle for ``ttl`` seconds; returns how many."""
        now = time.time()
        stale = [up for up in self.sessions.values() if now - up.touched > ttl and not up.lock.locked()]
        for up in stale:
            await self.cancel(up)
        return len(stale)

    async def close(self) -> None:
        for up in list(self.sessions.values()):
            await self.cancel(up)
