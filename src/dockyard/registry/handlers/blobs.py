"""``/v2/<name>/blobs/<digest>``: GET (with Range), HEAD, DELETE."""

from __future__ import annotations

import re
import socket

from aiohttp import web

from dockyard.registry.errors import APIError
from dockyard.registry.handlers.common import empty, registry
from dockyard.registry.names import check_digest
from dockyard.registry.storage import CHUNK
from dockyard.registry.uploads import blob_path

SEND_BUFFER = 4 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _headers(digest: str, size: int) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes", "ETag": f'"{digest}"', "Content-Length": str(size)}


async def _locate(request: web.Request, name: str, digest: str):
    reg = registry(request)
    check_digest(digest)
    if request.method == "HEAD":
        # A HEAD is how a pusher decides to skip an upload: mark the blob in use first,
        # so an online GC that has not yet swept it keeps it (and one that has, 404s here).
        await reg.index.touch_blobs([digest])
    if not await reg.index.blob_linked(name, digest):
        raise APIError("BLOB_UNKNOWN", {"digest": digest})
    stat = await reg.driver.stat(blob_path(digest))
    if stat is None or stat.is_dir:
        raise APIError("BLOB_UNKNOWN", {"digest": digest})
    return reg, stat


async def head_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    _, stat = await _locate(request, name, digest)
    return web.Response(status=200, headers=_headers(digest, stat.size))


async def get_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    reg, stat = await _locate(request, name, digest)
    headers = _headers(digest, stat.size)
    local = reg.driver.local_path(blob_path(digest))
    if local is not None:
        # sendfile(2): the bytes never pass through Python (Range handled by aiohttp).
        del headers["Content-Length"]
        _widen_send_buffer(request)
        return web.FileResponse(local, chunk_size=CHUNK, headers=headers)
    return await _stream(request, reg, digest, stat.size, headers)


def _widen_send_buffer(request: web.Request) -> None:
    """A bigger socket send buffer: fewer sendfile() calls and event-loop wake-ups per blob."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass


async def _stream(request: web.Request, reg, digest: str, size: int, headers: dict[str, str]) -> web.StreamResponse:
    """A blob from a driver without local files (S3), with single-range support."""
    start, end, status = 0, size - 1, 200
    header = request.headers.get("Range")
    if header:
        m = _RANGE.match(header.strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(size - int(m.group(2)), 0)
            if start >= size or start > end:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(request)
    remaining = length
    reader = reg.driver.reader(blob_path(digest), start)
    try:
        async for chunk in reader:
            if remaining <= 0:
                break
            chunk = chunk[:remaining]
            remaining -= len(chunk)
            await resp.write(chunk)
    finally:
        await reader.aclose()
    await resp.write_eof()
    return resp


async def delete_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    reg = registry(request)
    check_digest(digest)
    if not await reg.index.unlink_blob(name, digest):
        raise APIError("BLOB_UNKNOWN", {"digest": digest})
    # The bytes stay until GC: another repository may link the same blob.
    return empty(202, {"Docker-Content-Digest": digest})
