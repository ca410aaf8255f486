"""The aiohttp application: routing, auth enforcement, errors, headers, access log.

Routing is a small table of regular expressions over the path below ``/v2/``
rather than aiohttp's router, because a repository name spans several path
segments and because every route must be authorized (with the scope the route
implies) before its handler runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.registry import auth
from dockyard.registry.core import Registry
from dockyard.registry.errors import APIError
from dockyard.registry.handlers import blobs, listing, manifests, uploads
from dockyard.registry.handlers.common import REGISTRY_KEY, json_response
from dockyard.registry.names import check_name

log = logging.getLogger("dockyard.registry")

Handler = Callable[..., Awaitable[web.StreamResponse]]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    # The actions each method needs on the repository (None: registry-level route).
    actions: dict[str, tuple[str, ...]]
    deletes: bool = False  # DELETE here removes content (refused when delete is off)


def _route(pattern: str, methods: dict[str, Handler], actions: dict[str, tuple[str, ...]],
           deletes: bool = False) -> Route:
    return Route(re.compile(pattern), methods, actions, deletes)


_PULL, _PUSH, _DELETE = ("pull",), ("pull", "push"), ("delete",)

ROUTES: list[Route] = [
    _route(r"^$", {"GET": listing.base, "HEAD": listing.base}, {}),
    _route(r"^_catalog$", {"GET": listing.catalog}, {}),
    _route(r"^(?P<name>.+)/tags/list$", {"GET": listing.tags}, {"GET": _PULL}),
    _route(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$",
           {"GET": manifests.get_manifest, "HEAD": manifests.head_manifest, "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest},
           {"GET": _PULL, "HEAD": _PULL, "PUT": _PUSH, "DELETE": _DELETE}, deletes=True),
    _route(r"^(?P<name>.+)/blobs/uploads/?$", {"POST": uploads.start_upload}, {"POST": _PUSH}),
    _route(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)$",
           {"PATCH": uploads.patch_upload, "PUT": uploads.put_upload, "GET": uploads.get_upload,
            "DELETE": uploads.delete_upload},
           {"PATCH": _PUSH, "PUT": _PUSH, "GET": _PUSH, "DELETE": _PUSH}),
    _route(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$",
           {"GET": blobs.get_blob, "HEAD": blobs.head_blob, "DELETE": blobs.delete_blob},
           {"GET": _PULL, "HEAD": _PULL, "DELETE": _DELETE}, deletes=True),
    _route(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$", {"GET": listing.referrers}, {"GET": _PULL}),
]

HEALTH_PATHS = frozenset({"/healthz", "/v2/_health"})


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    if not path.startswith("/v2/"):
        return None
    rest = path[4:]
    for route in ROUTES:
        m = route.pattern.match(rest)
        if m:
            return route, m.groupdict()
    return None


def access_for(route: Route, method: str, params: dict[str, str]) -> list[auth.Access]:
    name = params.get("name")
    if name is None:
        return [auth.CATALOG] if route.pattern.pattern == r"^_catalog$" else []
    return [auth.repository(name, *route.actions.get(method, _PULL))]


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path in HEALTH_PATHS:
        # Unauthenticated on purpose: load balancers probe it; it reveals nothing.
        return json_response({"status": "ok"})
    found = match(path)
    if found is None:
        raise APIError("NOT_FOUND", {"path": path})
    route, params = found
    method = "GET" if request.method == "HEAD" and "HEAD" not in route.methods else request.method
    handler = route.methods.get(method)
    reg = request.app[REGISTRY_KEY]
    # Authenticate before anything else: an anonymous client learns nothing, not even
    # whether a name is valid or a method exists.
    await reg.auth.check(request.headers, access_for(route, method, params))
    if handler is None:
        raise APIError("UNSUPPORTED", {"method": request.method}, message=f"{request.method} is not allowed here",
                       headers={"Allow": ", ".join(sorted(route.methods))})
    if "name" in params:
        check_name(params["name"])
    if reg.settings.read_only and request.method in WRITE_METHODS:
        raise APIError("UNSUPPORTED", message="the registry is in read-only mode")
    if request.method == "DELETE" and route.deletes and not reg.settings.delete:
        raise APIError("UNSUPPORTED", message="deletion is disabled on this registry")
    return await handler(request, **params)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as e:
        return _error_response(request, e)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionError):  # the client went away: nothing to answer
        raise
    except Exception:  # noqa: BLE001 - a bug: log it, answer 500 in the spec's format
        log.error("%s %s failed:\n%s", request.method, request.path, traceback.format_exc())
        return _error_response(request, APIError("UNKNOWN", message="internal server error"))


def _error_response(request: web.Request, e: APIError) -> web.Response:
    body = b"" if request.method == "HEAD" else e.body()
    headers = dict(e.headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(e.body()))
    return web.Response(status=e.status, body=body or None, headers=headers,
                        content_type="application/json")


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


class AccessLogger(AbstractAccessLogger):
    """One line per request: remote, method, path, status, bytes sent, milliseconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        # content_length is the body alone (body_length counts the header bytes too).
        if request.method == "HEAD":
            sent = 0
        elif response.content_length is not None:
            sent = response.content_length
        else:
            sent = response.body_length
        self.logger.info('%s "%s %s" %d %d %.1fms', request.remote, request.method, request.path_qs,
                         response.status, sent, time_taken * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_app(registry: Registry) -> web.Application:
    # client_max_size only bounds request.read()/post(); bodies here are all streamed.
    app = web.Application(middlewares=[errors], client_max_size=1 << 20)
    app[REGISTRY_KEY] = registry
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.on_response_prepare.append(_common_headers)

    async def on_startup(app: web.Application) -> None:
        await registry.start()
        app["expiry"] = asyncio.get_running_loop().create_task(_expire_uploads(registry))

    async def on_cleanup(app: web.Application) -> None:
        app["expiry"].cancel()
        await registry.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def _expire_uploads(registry: Registry) -> None:
    while True:
        await asyncio.sleep(300)
        try:
            await registry.uploads.expire()
        except Exception:  # noqa: BLE001 - keep the sweeper alive
            log.exception("expiring uploads failed")


def setup_logging(access_log: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("dockyard.registry", "aiohttp.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if not access_log:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
