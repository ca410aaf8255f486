"""``/v2/``, ``/v2/_catalog``, ``/v2/<name>/tags/list``, ``/v2/<name>/referrers/<digest>``."""

from __future__ import annotations

from aiohttp import web

from dockyard.oci.mediatypes import OCI_INDEX
from dockyard.registry.errors import APIError
from dockyard.registry.handlers.common import json_response, next_link, page_size, registry
from dockyard.registry.names import check_digest


async def base(request: web.Request) -> web.StreamResponse:
    return json_response({})


async def catalog(request: web.Request) -> web.StreamResponse:
    reg = registry(request)
    n, last = page_size(request), request.query.get("last") or None
    repos = await reg.index.catalog(None if n is None else n + 1, last)
    headers = {}
    if n is not None and len(repos) > n:
        repos = repos[:n]
        headers["Link"] = next_link("/v2/_catalog", n, repos[-1])
    return json_response({"repositories": repos}, headers=headers)


async def tags(request: web.Request, name: str) -> web.StreamResponse:
    reg = registry(request)
    if not await reg.index.repo_exists(name):
        raise APIError("NAME_UNKNOWN", {"name": name})
    n, last = page_size(request), request.query.get("last") or None
    found = await reg.index.tags(name, None if n is None else n + 1, last)
    headers = {}
    if n is not None and len(found) > n:
        found = found[:n]
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, found[-1])
    return json_response({"name": name, "tags": found}, headers=headers)


async def referrers(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    reg = registry(request)
    check_digest(digest)
    records = await reg.index.referrers(name, digest)
    headers = {}
    wanted = request.query.get("artifactType")
    if wanted:
        records = [r for r in records if r.artifact_type == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [r.descriptor() for r in records]}
    return json_response(index, headers=headers, content_type=OCI_INDEX)
