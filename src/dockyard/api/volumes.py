"""Volume routes: list, inspect, create, delete, prune, through ``engine.volumes`` as
``dockyard volume ...`` uses it; dockerd's statuses and words (``get X: no such volume``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import http
from dockyard.errors import NotFoundError

routes = http.Routes()

LIST_FILTERS = ("name", "dangling", "label", "driver")
PRUNE_FILTERS = ("label", "all")


def _get(engine: Any, name: str) -> Any:
    volume = engine.volumes.find(name)
    if volume is None:
        raise http.ApiError(404, f"get {name}: no such volume")
    return volume


def _check(filters: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for key in filters:
        if key not in allowed:
            raise http.bad_request(f"Invalid filter '{key}'")


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    _check(filters, LIST_FILTERS)

    def listing(engine: Any) -> list[dict[str, Any]]:
        return [v.inspect() for v in engine.volumes.list(filters)]

    return http.json_response({"Volumes": await http.call(request, listing), "Warnings": []})


@routes.get("/volumes/{name}")
async def inspect_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return http.json_response(await http.call(request, lambda engine: _get(engine, name).inspect()))


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.Response:
    from dockyard.volumes import VALID_NAME

    body = await http.json_body(request, required=False)
    if not isinstance(body, dict):
        raise http.bad_request("invalid JSON body: expected an object")
    name = body.get("Name") or None
    driver = body.get("Driver") or "local"
    # The engine's own checks, answered with dockerd's statuses: a bad name is a bad
    # parameter (400), an unknown driver a missing plugin (404).
    if driver != "local":
        raise http.ApiError(404, f"create {name or ''}: error looking up volume plugin {driver}: "
                                 f"plugin \"{driver}\" not found")
    if name is not None and not VALID_NAME.match(name):
        raise http.bad_request(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                               'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                               'directory, use absolute path')
    labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    options = {str(k): str(v) for k, v in (body.get("DriverOpts") or {}).items()}

    def create(engine: Any) -> dict[str, Any]:
        return engine.volumes.create(name, driver=driver, labels=labels, options=options).inspect()

    return http.json_response(await http.call(request, create), status=201)


@routes.delete("/volumes/{name}")
async def remove_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = http.query_bool(request, "force")

    def remove(engine: Any) -> None:
        try:
            engine.volumes.remove(name, force=force)   # in use: ConflictError, dockerd's words, 409
        except NotFoundError:
            raise http.ApiError(404, f"get {name}: no such volume") from None

    await http.call(request, remove)
    return http.no_content()


@routes.post("/volumes/prune")
async def prune(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    _check(filters, PRUNE_FILTERS)
    # API 1.42's "all" filter: named volumes too; without it only anonymous ones. A request at an
    # older version gets the older meaning, every unused volume, as dockerd 23+ answers it.
    all_ = any(v.lower() in ("1", "true") for v in filters.pop("all", [])) or http.api_version(request) < (1, 42)

    def run(engine: Any) -> tuple[list[str], int]:
        return engine.volumes.prune(all=all_, filters=filters)

    removed, freed = await http.call(request, run)
    return http.json_response({"VolumesDeleted": removed, "SpaceReclaimed": freed})
