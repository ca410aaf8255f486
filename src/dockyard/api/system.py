"""System routes: ``/_ping``, ``/version``, ``/info`` (events, df and auth join them)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import http

routes = http.Routes()

_PING_HEADERS = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
                 "Pragma": "no-cache"}


@routes.get("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers=_PING_HEADERS)


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.Response:
    return web.Response(headers={**_PING_HEADERS, "Content-Type": "text/plain; charset=utf-8",
                                 "Content-Length": "0"})


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    from dockyard.containers.manager import DEFAULT_RUNTIME
    from dockyard.system.version import version_info

    info = await http.call(request, lambda engine: version_info(DEFAULT_RUNTIME))
    return http.json_response(info["Server"])


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    from dockyard.system.info import info as system_info

    facts = await http.call(request, system_info)
    facts.pop("ClientInfo", None)   # the CLI's half; the daemon does not send it
    return http.json_response(facts)
