"""What every route of the API shares: registration under the versioned and unversioned paths,
Docker's error bodies and status codes, query parsing, and the engine each worker thread uses.

Engine calls block (sqlite, files, the runtime), so handlers run them in a thread pool through
``call``; each pool thread has its own ``Engine`` (sqlite connections are per thread).
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from aiohttp import web

from dockyard import config
from dockyard.engine import Engine
from dockyard.errors import ConflictError, DockyardError, InvalidReferenceError, NotFoundError

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VERSION_PREFIX = r"/v{api_version:[0-9]+\.[0-9]+}"
SETTINGS_KEY: web.AppKey["config.Settings"] = web.AppKey("settings", config.Settings)
WORKERS_KEY: web.AppKey["Workers"] = web.AppKey("workers", object)  # type: ignore[arg-type]


class ApiError(Exception):
    """An answer other than success: Docker's status code and ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def status_for(error: DockyardError) -> int:
    """The HTTP status dockerd answers for an engine error of this kind."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, InvalidReferenceError):
        return 400
    return getattr(error, "http_status", None) or 500


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", no charset: Go's docker client compares the header whole before
    # it decodes an error body. Compact, with a trailing newline: Go's json.Encoder's bytes (and a
    # 200-container list is 10% smaller and quicker to write).
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode() + b"\n", status=status,
                        headers={"Content-Type": "application/json"})


def no_content(status: int = 204) -> web.Response:
    return web.Response(status=status)


class Routes:
    """A module's routes, each served at ``/PATH`` and at ``/v1.NN/PATH`` as dockerd does."""

    def __init__(self) -> None:
        self.table: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append((method, path, handler))
            return handler
        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)

    def head(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("HEAD", path)

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.table:
            for full in (path, VERSION_PREFIX + path):
                if method == "GET":   # a HEAD is served only where a module registers one
                    app.router.add_get(full, handler, allow_head=False)
                else:
                    app.router.add_route(method, full, handler)


class Workers:
    """The thread pool engine calls run in, and each thread's own Engine."""

    def __init__(self, settings: config.Settings, size: int = 32) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="api")
        self._local = threading.local()
        self._engines: list[Engine] = []
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = Engine(self.settings)
            with self._lock:
                self._engines.append(engine)
        return engine

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for engine in self._engines:
                try:
                    engine.close()
                except Exception:
                    pass


def workers(request: web.Request) -> Workers:
    return request.app[WORKERS_KEY]


async def call(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(engine, *args)`` on a worker thread with that thread's engine."""
    pool = workers(request)
    return await pool.run(lambda: fn(pool.engine(), *args))


# ---------------------------------------------------------------- query and body parsing

_TRUE = {"1", "true", "True", "yes"}
_FALSE = {"0", "false", "False", "no", ""}


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: 1/true/True/yes and 0/false/False/no/empty."""
    value = request.query.get(name)
    if value is None:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f"invalid value for {name}: {value!r}: expected a boolean")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}: expected an integer") from None


def query_filters(request: web.Request, name: str = "filters") -> dict[str, list[str]]:
    """The ``filters`` parameter: JSON ``{"key": ["v", ...]}`` or the legacy ``{"key": {"v": true}}``."""
    text = request.query.get(name)
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise bad_request(f"invalid filter: {text!r} is not JSON") from None
    if not isinstance(raw, dict):
        raise bad_request("invalid filter: expected a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            filters[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(v) for v in values]
        elif isinstance(values, str):
            filters[key] = [values]
        else:
            raise bad_request(f"invalid filter {key!r}")
    return filters


MAX_JSON_BODY = 16 * 1024 * 1024   # a create body with every field is a few KiB


async def json_body(request: web.Request, required: bool = True) -> Any:
    """The request's JSON body (bounded); ``{}`` for an empty one unless ``required``."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise ApiError(413, f"request body larger than {MAX_JSON_BODY} bytes")
    data = await request.content.read(MAX_JSON_BODY + 1)
    if len(data) > MAX_JSON_BODY:
        raise ApiError(413, f"request body larger than {MAX_JSON_BODY} bytes")
    if not data.strip():
        if required:
            raise bad_request("request body is empty: expected JSON")
        return {}
    try:
        return json.loads(data)
    except ValueError as e:
        raise bad_request(f"invalid JSON body: {e}") from None


def api_version(request: web.Request) -> tuple[int, int]:
    """The version the client asked for in the path (the newest we serve when it gave none)."""
    from dockyard.system.version import API_VERSION

    text = request.match_info.get("api_version") or API_VERSION
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def split_csv(values: Iterable[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]
