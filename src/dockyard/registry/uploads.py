"""Blob upload sessions: staged in the driver under ``uploads/``, verified on the final
PUT, then moved to ``blobs/<alg>/<xx>/<hex>``. Two managers, one interface:

- ``UploadManager`` (filesystem): sessions live in this process's memory with their open
  writer and running hash, so the digest is known without reading anything back. A
  server that dies mid-upload loses only the sessions in flight; their staged bytes are
  swept at the next start.
- ``SharedUploads`` (S3, several replicas on one bucket): a session is nothing but
  objects in the bucket, so any replica takes any request of it (round-robin load
  balancing, a replica killed mid-upload). See that class for the layout.
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
from dockyard.registry.storage import CHUNK, PathNotFound, Stat, StorageDriver, Writer
from dockyard.registry.storage.s3 import PathExists, S3Driver  # no boto3 at import: the driver loads it

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


def range_error(up: "Upload | SharedUpload", header: str | None) -> APIError:
    """416 with where the session stands, as the spec asks, so the client can resume."""
    return APIError("RANGE_INVALID", {"Content-Range": header, "offset": up.offset}, status=416,
                    headers={"Range": up.range, "Location": f"/v2/{up.repo}/blobs/uploads/{up.id}",
                             "Docker-Upload-UUID": up.id})


async def _pipeline(body: AsyncIterator[bytes], sink) -> None:
    """Feed ``body`` to ``sink`` in CHUNK pieces, pipelined: while one chunk is hashed and
    written in worker threads (both release the GIL), the loop reads the next one."""
    pending: asyncio.Future | None = None
    buf = bytearray()
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
        if pending is not None:
            pending.cancel()
        raise


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

    async def get(self, repo: str, upload_id: str, allow_broken: bool = False) -> Upload:
        up = self.sessions.get(upload_id)
        if up is None or up.repo != repo:
            raise APIError("BLOB_UPLOAD_UNKNOWN", {"uuid": upload_id})
        if up.broken and not allow_broken:
            raise APIError("BLOB_UPLOAD_INVALID", {"uuid": upload_id}, message="upload was interrupted; start again")
        up.touched = time.time()
        return up

    async def append(self, up: Upload, body: AsyncIterator[bytes], expect: int | None = None) -> int:
        """Stream ``body`` into the session, hashing as it goes; returns the bytes added.
        ``expect``: the chunk's declared length (SIZE_INVALID, and the session is broken,
        if it differs)."""
        loop = asyncio.get_running_loop()
        added = 0

        async def sink(chunk: bytes) -> None:
            nonlocal added
            await asyncio.gather(loop.run_in_executor(None, up.hasher.update, chunk), up.writer.write(chunk))
            up.offset += len(chunk)
            added += len(chunk)

        try:
            await _pipeline(body, sink)
        except BaseException:
            # A half-written chunk leaves hash and data out of step: the session is unusable.
            up.broken = True
            raise
        if expect is not None and expect != added:
            up.broken = True
            raise APIError("SIZE_INVALID", {"declared": expect, "received": added})
        return added

    async def monolithic(self, repo: str, body: AsyncIterator[bytes], expected: str, declared: int | None) -> int:
        """A whole blob in one request (POST ?digest=): a session of one append."""
        up = await self.start(repo)
        async with up.lock:
            try:
                await self.append(up, body)
            except BaseException:
                await self.cancel(up)
                raise
            if declared is not None and declared != up.offset:
                await self.cancel(up)
                raise APIError("SIZE_INVALID", {"declared": declared, "received": up.offset})
            return await self.finish(up, expected)

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


# --- sessions in the bucket ----------------------------------------------------------------

@dataclass
class SharedUpload:
    """A session as read from the bucket by one request (nothing is kept between requests)."""

    id: str
    repo: str
    started: float
    touched: float
    parts: list[tuple[int, int]] = field(default_factory=list)  # (start, size), contiguous from 0
    sums: dict[int, str] = field(default_factory=dict)  # start -> sha256 digest of that part
    broken: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # per request: the bucket arbitrates

    @property
    def offset(self) -> int:
        return self.parts[-1][0] + self.parts[-1][1] if self.parts else 0

    @property
    def range(self) -> str:
        return f"0-{max(self.offset - 1, 0)}"


def _part_name(start: int) -> str:
    return f"{start:020d}"


class SharedUploads:
    """Upload sessions as objects under ``uploads/<id>/`` in the bucket:

    - ``info/<repo, '/' as %2F>``: empty; created by POST, its key names the repository;
    - ``parts/<start, 20 digits>``: the bytes of one PATCH (or of the final PUT's body),
      created with S3's atomic create (``If-None-Match: *``). Two requests that append at
      one offset both stream their body, only one creates the object; the other answers
      416 with the new offset. The session's offset is the end of the chain of parts
      from 0, so one LIST tells any replica where the upload stands.
    - ``sums/<start>-<sha256 hex>``: empty; the hash of that part, written after it.

    The final PUT verifies the digest over the whole blob. A session of one part (how
    skopeo, containerd and docker push: POST, one streamed PATCH, PUT) has its hash in
    ``sums/`` and the part is copied into place server-side: nothing is read back. With
    several parts (a chunked upload, or one resumed on another replica) the PUT reads
    the parts back once, hashing them and writing the blob as it goes, and commits the
    blob only if the digest matches (hashlib's state cannot be saved portably, and a
    re-read of the bucket costs less than a pure-Python SHA-256 that could be). Measured
    on moto, 64 MiB: the final PUT takes 2.1 s for one part (the server-side copy), 3.1 s
    for 8 parts of 8 MiB (read back, hashed, written). S3's 5 MiB minimum part size never
    applies: parts are objects of their own, of any size.

    A replica killed mid-PATCH leaves at most an unfinished multipart upload (never a
    part): the client's retry lands on another replica at the same offset. Sessions idle
    for SESSION_TTL, and stale multipart uploads, are removed by ``expire``, which every
    replica runs (deleting is idempotent).
    """

    def __init__(self, driver: S3Driver, index: Index) -> None:
        # S3's own verbs: exclusive writes, listings with sizes, multipart clean-up.
        self.driver = driver
        self.index = index

    async def start(self, repo: str) -> SharedUpload:
        upload_id = str(uuid.uuid4())
        await self.driver.put(f"{UPLOADS}/{upload_id}/info/{repo.replace('/', '%2F')}", b"")
        now = time.time()
        return SharedUpload(upload_id, repo, now, now)

    async def _load(self, upload_id: str) -> SharedUpload | None:
        base = f"{UPLOADS}/{upload_id}"
        stats: list[Stat] = await self.driver.list_stats(base)
        repo, started, touched = None, 0.0, 0.0
        sizes: dict[int, int] = {}
        sums: dict[int, str] = {}
        for st in stats:
            kind, _, name = st.path[len(base) + 1:].partition("/")
            touched = max(touched, st.mtime)
            if kind == "info":
                repo, started = name.replace("%2F", "/"), st.mtime
            elif kind == "parts" and name.isdigit():
                sizes[int(name)] = st.size
            elif kind == "sums":
                start, _, hexdigest = name.partition("-")
                if start.isdigit():
                    sums[int(start)] = f"sha256:{hexdigest}"
        if repo is None:
            return None
        up = SharedUpload(upload_id, repo, started, touched, sums=sums)
        offset = 0
        while sizes.get(offset):  # the chain from 0; nothing else can exist (parts start at the offset)
            up.parts.append((offset, sizes[offset]))
            offset += sizes[offset]
        return up

    async def get(self, repo: str, upload_id: str, allow_broken: bool = False) -> SharedUpload:
        up = await self._load(upload_id) if _valid_id(upload_id) else None
        if up is None or up.repo != repo:
            raise APIError("BLOB_UPLOAD_UNKNOWN", {"uuid": upload_id})
        return up

    async def append(self, up: SharedUpload, body: AsyncIterator[bytes], expect: int | None = None) -> int:
        """Write ``body`` as the part at the session's offset; 416 if another request
        wrote that part first. Returns the bytes added (an empty body adds no part)."""
        start = up.offset
        path = f"{UPLOADS}/{up.id}/parts/{_part_name(start)}"
        writer = await self.driver.writer(path, exclusive=True)
        hasher = hashlib.sha256()
        loop = asyncio.get_running_loop()
        size = 0

        async def sink(chunk: bytes) -> None:
            nonlocal size
            await asyncio.gather(loop.run_in_executor(None, hasher.update, chunk), writer.write(chunk))
            size += len(chunk)

        try:
            await _pipeline(body, sink)
            if expect is not None and expect != size:
                raise APIError("SIZE_INVALID", {"declared": expect, "received": size})
            if size == 0:
                await writer.cancel()
                return 0
            await writer.commit()
        except PathExists:
            fresh = await self._load(up.id)
            raise range_error(fresh or up, None) from None
        except BaseException:
            await writer.cancel()
            raise
        up.parts.append((start, size))
        up.sums[start] = f"sha256:{hasher.hexdigest()}"
        try:
            await self.driver.put(f"{UPLOADS}/{up.id}/sums/{_part_name(start)}-{hasher.hexdigest()}", b"")
        except Exception:  # noqa: BLE001 - without it the PUT reads the part back: slower, still right
            pass
        return size

    async def monolithic(self, repo: str, body: AsyncIterator[bytes], expected: str, declared: int | None) -> int:
        """A whole blob in one request (POST ?digest=): no session objects at all. The body
        streams to the blob's own path, hashed on the way, and is committed (atomically, as
        any writer) only when digest and length match."""
        algorithm = digests.algorithm_of(expected)
        writer = await self.driver.writer(blob_path(expected))
        h = digests.new_hasher(algorithm)
        loop = asyncio.get_running_loop()
        size = 0

        async def sink(chunk: bytes) -> None:
            nonlocal size
            await asyncio.gather(loop.run_in_executor(None, h.update, chunk), writer.write(chunk))
            size += len(chunk)

        try:
            await _pipeline(body, sink)
            if declared is not None and declared != size:
                raise APIError("SIZE_INVALID", {"declared": declared, "received": size})
            actual = f"{algorithm}:{h.hexdigest()}"
            if actual != expected:
                raise APIError("DIGEST_INVALID", {"expected": expected, "actual": actual})
            await self.index.link_blob(repo, expected, size)  # before the blob lands (see gc.py)
            await writer.commit()
        except BaseException:
            await writer.cancel()
            raise
        return size

    async def finish(self, up: SharedUpload, expected: str) -> int:
        """Verify the parts against ``expected`` and put the blob in place; returns its size."""
        size, dest, algorithm = up.offset, blob_path(expected), digests.algorithm_of(expected)
        single = len(up.parts) == 1 and algorithm == "sha256" and 0 in up.sums
        if single or size == 0:
            actual = up.sums[0] if size else f"{algorithm}:{digests.new_hasher(algorithm).hexdigest()}"
            if actual != expected:
                await self.cancel(up)
                raise APIError("DIGEST_INVALID", {"expected": expected, "actual": actual})
            await self.index.link_blob(up.repo, expected, size)  # before the blob lands (see gc.py)
            existing = await self.driver.stat(dest)
            if existing is None or existing.size != size:
                if size:
                    await self.driver.move(f"{UPLOADS}/{up.id}/parts/{_part_name(0)}", dest)
                else:
                    await self.driver.put(dest, b"")
        else:
            await self._assemble(up, expected, dest)
        await self._delete_session(up.id)
        return size

    async def _assemble(self, up: SharedUpload, expected: str, dest: str) -> None:
        """Read the parts back in order, hashing, and write the blob; commit it only if the
        digest matches (a blob already there is only verified, not written again)."""
        existing = await self.driver.stat(dest)
        writer = None if existing is not None and existing.size == up.offset else await self.driver.writer(dest)
        h = digests.new_hasher(digests.algorithm_of(expected))
        loop = asyncio.get_running_loop()
        try:
            for start, _size in up.parts:
                async for chunk in self.driver.reader(f"{UPLOADS}/{up.id}/parts/{_part_name(start)}"):
                    if writer is None:
                        await loop.run_in_executor(None, h.update, chunk)
                    else:
                        await asyncio.gather(loop.run_in_executor(None, h.update, chunk), writer.write(chunk))
            actual = f"{digests.algorithm_of(expected)}:{h.hexdigest()}"
            if actual != expected:
                raise APIError("DIGEST_INVALID", {"expected": expected, "actual": actual})
            await self.index.link_blob(up.repo, expected, up.offset)
            if writer is not None:
                await writer.commit()
        except BaseException:
            if writer is not None:
                await writer.cancel()
            await self.cancel(up)
            raise

    async def cancel(self, up: SharedUpload) -> None:
        await self._delete_session(up.id)

    async def _delete_session(self, upload_id: str) -> None:
        try:
            await self.driver.delete(f"{UPLOADS}/{upload_id}")
        except PathNotFound:
            pass

    async def expire(self, ttl: float = SESSION_TTL) -> int:
        """Remove sessions idle for ``ttl`` seconds and multipart uploads older than that
        (a replica killed mid-write); returns how many sessions. Safe on every replica."""
        now = time.time()
        touched: dict[str, float] = {}
        for st in await self.driver.list_stats(UPLOADS):
            session = st.path.split("/")[1]
            touched[session] = max(touched.get(session, 0.0), st.mtime)
        stale = [s for s, t in touched.items() if now - t > ttl]
        for session in stale:
            await self._delete_session(session)
        await self.driver.abort_multipart_uploads(UPLOADS, now - ttl)
        return len(stale)

    async def close(self) -> None:
        return None  # sessions outlive this replica: another one may finish them


def _valid_id(upload_id: str) -> bool:
    try:
        uuid.UUID(upload_id)
        return True
    except ValueError:
        return False
