"""``/containers/{id}/archive`` for ``docker cp`` both ways: HEAD (the path's stat in the
``X-Docker-Container-Path-Stat`` header), GET (a tar of the path, streamed) and PUT (a tar
body unpacked into a directory, streamed and bounded only by the disk).

The walks are ``containers/copy.py``'s, the CLI's own: every path is resolved inside the
container's root through descriptors, so no symlink in the container (or in the tar) leads
out of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

from aiohttp import web

from dockyard.api import http
from dockyard.api.containers import WorkerStream, stream

routes = http.Routes()


def _path(request: web.Request) -> str:
    path = request.query.get("path") or ""
    if not path:
        raise http.bad_request("bad parameter: pathcannot be empty")   # dockerd's words, missing space and all
    return path


def _stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()


def _stat(engine: Any, cid: str, path: str) -> dict[str, Any]:
    from dockyard.containers import copy

    containers = engine.containers
    return copy.stat_path(containers, containers.get(cid), path)


@routes.head("/containers/{id}/archive")
async def head_archive(request: web.Request) -> web.Response:
    path = _path(request)
    stat = await http.call(request, _stat, request.match_info["id"], path)
    return web.Response(headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


@routes.get("/containers/{id}/archive")
async def get_archive(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    cid = request.match_info["id"]
    stat = await http.call(request, _stat, cid, path)   # errors before any byte of the tar
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                           "X-Docker-Container-Path-Stat": _stat_header(stat)})

    def produce(engine: Any, out: WorkerStream) -> None:
        from dockyard.containers import copy

        containers = engine.containers
        copy.archive_path(containers, containers.get(cid), path, out)

    return await stream(request, response, produce)


class _BodyReader:
    """The request body as a blocking ``read`` for a worker thread: each read waits for the
    event loop to hand over the next bytes, so at most one chunk is in memory."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content, self.loop = request.content, loop
        self.stop = threading.Event()

    def read(self, size: int) -> bytes:
        if self.stop.is_set():
            raise BrokenPipeError("the request ended")
        future = asyncio.run_coroutine_threadsafe(self.content.read(min(size, 1 << 20)), self.loop)
        while True:
            try:
                return future.result(timeout=1.0)
            except TimeoutError:
                if self.stop.is_set():
                    future.cancel()
                    raise BrokenPipeError("the request ended") from None


@routes.put("/containers/{id}/archive")
async def put_archive(request: web.Request) -> web.Response:
    path = _path(request)
    cid = request.match_info["id"]
    no_overwrite = http.query_bool(request, "noOverwriteDirNonDir")
    copy_uid_gid = http.query_bool(request, "copyUIDGID")
    body = _BodyReader(request, asyncio.get_running_loop())

    def work(engine: Any) -> None:
        from dockyard.containers import copy

        containers = engine.containers
        copy.extract_to(containers, containers.get(cid), path, body, no_overwrite, copy_uid_gid)

    try:
        await http.call(request, work)
    finally:
        body.stop.set()
    return web.Response(status=200)
