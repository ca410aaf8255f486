"""What every handler needs: the registry state, URL helpers, pagination."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from dockyard.registry.core import Registry
from dockyard.registry.errors import APIError

# aiohttp 3.9+ types app state by AppKey; Debian bookworm's 3.8 (what the registry image
# installs) takes a plain string key.
REGISTRY_KEY: Any = web.AppKey("registry", Registry) if hasattr(web, "AppKey") else "dockyard.registry"
MAX_PAGE = 10000  # the largest page a listing returns when asked for more


def registry(request: web.Request) -> Registry:
    return request.app[REGISTRY_KEY]


def page_size(request: web.Request) -> int | None:
    raw = request.query.get("n")
    if raw is None or raw == "":
        return None
    try:
        n = int(raw)
    except ValueError:
        raise APIError("PAGINATION_NUMBER_INVALID", {"n": raw}, message="n must be a non-negative integer") from None
    if n < 0:
        raise APIError("PAGINATION_NUMBER_INVALID", {"n": raw}, message="n must be a non-negative integer")
    return min(n, MAX_PAGE)


def next_link(path: str, n: int, last: str, extra: dict[str, str] | None = None) -> str:
    query = f"n={n}&last={quote(last, safe='')}"
    for key, value in (extra or {}).items():
        query += f"&{key}={quote(value, safe='')}"
    return f'<{path}?{query}>; rel="next"'


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> web.Response:
    import json

    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers,
                        content_type=content_type)


def empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    headers.setdefault("Content-Length", "0")
    return web.Response(status=status, headers=headers)
