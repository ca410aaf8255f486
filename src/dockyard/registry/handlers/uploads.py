"""``/v2/<name>/blobs/uploads/[<uuid>]``: POST (monolithic, session, mount), PATCH,
PUT, GET (status) and DELETE (cancel)."""

from __future__ import annotations

import re

from aiohttp import web

from dockyard.registry import auth
from dockyard.registry.errors import APIError
from dockyard.registry.handlers.common import empty, registry
from dockyard.registry.names import NAME_RE, check_digest
from dockyard.registry.uploads import SharedUpload, Upload, blob_path, range_error

_CONTENT_RANGE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _session_headers(name: str, up: Upload | SharedUpload) -> dict[str, str]:
    return {"Location": f"/v2/{name}/blobs/uploads/{up.id}", "Range": up.range, "Docker-Upload-UUID": up.id}


def _created(name: str, digest: str) -> web.Response:
    return empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


async def start_upload(request: web.Request, name: str) -> web.StreamResponse:
    reg = registry(request)
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount:
        check_digest(mount)
        if source and NAME_RE.match(source) and await reg.index.blob_linked(source, mount) \
                and await reg.auth.allowed(request.headers, [auth.repository(source, "pull")]):
            await reg.index.link_blob(name, mount)  # marks it in use first (see gc.py) ...
            if await reg.driver.stat(blob_path(mount)) is not None:  # ... then checks it is still there
                return _created(name, mount)
            await reg.index.unlink_blob(name, mount)
        # Cannot mount (unknown blob, or no read access to the source): a plain session.
        up = await reg.uploads.start(name)
        return empty(202, _session_headers(name, up))

    digest = request.query.get("digest")
    if digest is None:
        up = await reg.uploads.start(name)
        return empty(202, _session_headers(name, up))
    check_digest(digest)
    declared = request.headers.get("Content-Length")
    # Monolithic: the whole blob in this request.
    await reg.uploads.monolithic(name, request.content.iter_any(), digest,
                                 int(declared) if declared is not None and declared.isdigit() else None)
    return _created(name, digest)


def _check_range(request: web.Request, up: Upload | SharedUpload) -> None:
    """A chunk must start where the upload stands (416 otherwise)."""
    header = request.headers.get("Content-Range")
    if not header:
        return
    m = _CONTENT_RANGE.match(header.strip())
    if not m:
        raise APIError("BLOB_UPLOAD_INVALID", {"Content-Range": header}, message="malformed Content-Range")
    start, end = int(m.group(1)), int(m.group(2))
    if start != up.offset or end < start:
        raise range_error(up, header)


async def patch_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    reg = registry(request)
    up = await reg.uploads.get(name, upload_id)
    async with up.lock:
        _check_range(request, up)
        declared = request.headers.get("Content-Length")
        expect = int(declared) if request.headers.get("Content-Range") and declared and declared.isdigit() else None
        await reg.uploads.append(up, request.content.iter_any(), expect)
    return empty(202, _session_headers(name, up))


async def put_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    reg = registry(request)
    up = await reg.uploads.get(name, upload_id)
    digest = request.query.get("digest")
    if not digest:
        raise APIError("DIGEST_INVALID", message="the final PUT needs ?digest=")
    check_digest(digest)
    async with up.lock:
        _check_range(request, up)
        try:
            await reg.uploads.append(up, request.content.iter_any())
        except APIError as e:
            if e.status != 416:  # 416: another request moved a shared session on; it stays
                await reg.uploads.cancel(up)
            raise
        except BaseException:
            await reg.uploads.cancel(up)
            raise
        await reg.uploads.finish(up, digest)
    return _created(name, digest)


async def get_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    up = await registry(request).uploads.get(name, upload_id)
    return empty(204, _session_headers(name, up))


async def delete_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    reg = registry(request)
    up = await reg.uploads.get(name, upload_id, allow_broken=True)
    await reg.uploads.cancel(up)
    return empty(204)
