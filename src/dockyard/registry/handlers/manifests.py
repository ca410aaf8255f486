"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT, DELETE by tag or digest."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard import digest as digests
from dockyard.oci.mediatypes import MAX_MANIFEST_SIZE
from dockyard.registry import manifests
from dockyard.registry.errors import APIError
from dockyard.registry.handlers.common import empty, registry
from dockyard.registry.index import ManifestRecord
from dockyard.registry.names import check_reference
from dockyard.registry.uploads import blob_path


async def _resolve(request: web.Request, name: str, reference: str) -> tuple[str, ManifestRecord]:
    reg = registry(request)
    tag, digest = check_reference(reference)
    if tag is not None:
        digest = await reg.index.resolve(name, tag)
    record = await reg.index.get_manifest(name, digest) if digest else None
    if record is None:
        if not await reg.index.repo_exists(name):
            raise APIError("NAME_UNKNOWN", {"name": name})
        raise APIError("MANIFEST_UNKNOWN", {"reference": reference})
    return digest, record


def _headers(record: ManifestRecord) -> dict[str, str]:
    return {"Docker-Content-Digest": record.digest, "Content-Type": record.media_type,
            "Content-Length": str(record.size), "ETag": f'"{record.digest}"'}


async def head_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    _, record = await _resolve(request, name, reference)
    return web.Response(status=200, headers=_headers(record))


async def get_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    # Content negotiation: we answer with the type the manifest was stored as (as
    # distribution does, except for schema1 conversion, which is long dead).
    digest, record = await _resolve(request, name, reference)
    body = await registry(request).manifest_bytes(digest)
    if body is None:
        raise APIError("MANIFEST_UNKNOWN", {"reference": reference})
    headers = _headers(record)
    del headers["Content-Length"]
    return web.Response(status=200, body=body, headers=headers)


async def _read_body(request: web.Request) -> bytes:
    declared = request.content_length
    if declared is not None and declared > MAX_MANIFEST_SIZE:
        raise APIError("MANIFEST_INVALID", {"size": declared, "limit": MAX_MANIFEST_SIZE},
                       message="manifest too large", status=413)
    parts, total = [], 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > MAX_MANIFEST_SIZE:
            raise APIError("MANIFEST_INVALID", {"limit": MAX_MANIFEST_SIZE}, message="manifest too large", status=413)
        parts.append(chunk)
    return b"".join(parts)


async def put_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    reg = registry(request)
    tag, ref_digest = check_reference(reference, writing=True)
    body = await _read_body(request)
    parsed = manifests.parse(body, request.headers.get("Content-Type"))
    algorithm = digests.algorithm_of(ref_digest) if ref_digest else "sha256"
    digest = digests.of_bytes(body, algorithm)
    if ref_digest and digest != ref_digest:
        raise APIError("DIGEST_INVALID", {"expected": ref_digest, "actual": digest})
    # Fail fast on a missing reference before writing content (put_manifest checks
    # again, atomically with the write).
    # Concurrently: on S3 each check is a request (a 30-layer manifest made 30 in a row).
    linked = await asyncio.gather(*(reg.index.blob_linked(name, blob) for blob in parsed.blobs))
    for blob, ok in zip(parsed.blobs, linked):
        if not ok:
            raise APIError("MANIFEST_BLOB_UNKNOWN", {"digest": blob})
    children = await asyncio.gather(*(reg.index.get_manifest(name, child) for child in parsed.manifests))
    for child, found in zip(parsed.manifests, children):
        if found is None:
            raise APIError("MANIFEST_BLOB_UNKNOWN", {"digest": child})

    path = blob_path(digest)
    # In use from now on (before the content is written or found), so an online GC
    # between here and the index write below cannot sweep it.
    await reg.index.touch_blobs([digest])
    if await reg.driver.stat(path) is None:
        await reg.driver.put(path, body)
    record = ManifestRecord(digest, parsed.media_type, len(body), parsed.artifact_type, parsed.subject,
                            parsed.annotations, parsed.blobs + parsed.manifests)
    # put_manifest also marks every referenced blob as in use (see gc.py).
    await reg.index.put_manifest(name, record, tag, parsed.blobs, parsed.manifests)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if parsed.subject:
        headers["OCI-Subject"] = parsed.subject
    return empty(201, headers)


async def delete_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    reg = registry(request)
    tag, digest = check_reference(reference)
    if tag is not None:
        if not await reg.index.delete_tag(name, tag):
            raise APIError("MANIFEST_UNKNOWN", {"reference": reference})
    elif not await reg.index.delete_manifest(name, digest):
        raise APIError("MANIFEST_UNKNOWN", {"reference": reference})
    return empty(202)
