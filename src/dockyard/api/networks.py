"""Network routes: list, inspect, create, delete, connect, disconnect, prune, through
``engine.networks`` as ``dockyard network ...`` uses it.

Statuses and words are dockerd's (20.10): a missing network is 404 ``network X not found``, a
predefined one or one with endpoints cannot be removed (403), a name in use is 409.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import http
from dockyard.errors import DockyardError, NotFoundError

routes = http.Routes()

# The IPAM config keys dockyard's bridges honour; any other (AuxiliaryAddresses, a second
# subnet, IPv6) is refused rather than dropped.
_IPAM_KEYS = {"Subnet", "Gateway", "IPRange"}


def _not_found(typed: str) -> http.ApiError:
    return http.ApiError(404, f"network {typed} not found")


def _network(engine: Any, typed: str) -> Any:
    try:
        return engine.networks.get(typed)
    except NotFoundError:
        raise _not_found(typed) from None


def _listed(engine: Any, net: Any) -> dict[str, Any]:
    # dockerd's list leaves Containers empty; only inspect fills it.
    return {**engine.networks.inspect(net), "Containers": {}}


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    from dockyard.network.service import LIST_FILTERS

    filters = http.query_filters(request)
    for key in filters:
        if key not in LIST_FILTERS or key == "until":   # until is prune's, as in dockerd
            raise http.bad_request(f"Invalid filter '{key}'")

    def listing(engine: Any) -> list[dict[str, Any]]:
        return [_listed(engine, net) for net in engine.networks.list(filters)]

    return http.json_response(await http.call(request, listing))


@routes.get("/networks/{id}")
async def inspect_network(request: web.Request) -> web.Response:
    typed = request.match_info["id"]
    scope = request.query.get("scope", "")
    if scope not in ("", "local"):
        raise _not_found(typed)   # every dockyard network is local-scoped, as dockerd answers
    http.query_bool(request, "verbose")   # verbose adds swarm services only: nothing here

    def inspect(engine: Any) -> dict[str, Any]:
        return engine.networks.inspect(_network(engine, typed))

    return http.json_response(await http.call(request, inspect))


def _create_args(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise http.bad_request("invalid JSON body: expected an object")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise http.bad_request("network name must be given")
    if body.get("EnableIPv6"):
        raise http.bad_request("IPv6 networks are not supported")
    ipam = body.get("IPAM") or {}
    if (ipam.get("Driver") or "default") != "default":
        raise http.bad_request(f"IPAM driver {ipam['Driver']!r} is not supported (only \"default\")")
    if ipam.get("Options"):
        raise http.bad_request("IPAM options are not supported")
    configs = ipam.get("Config") or []
    if len(configs) > 1:
        raise http.bad_request("one IPAM config (Subnet, Gateway, IPRange) per network is supported")
    config = configs[0] if configs else {}
    unknown = sorted(k for k, v in config.items() if v and k not in _IPAM_KEYS)
    if unknown:
        raise http.bad_request(f"IPAM config {', '.join(unknown)} is not supported")
    if ":" in (config.get("Subnet") or ""):
        raise http.bad_request("IPv6 networks are not supported")
    return {"name": name, "driver": body.get("Driver") or "bridge", "subnet": config.get("Subnet") or "",
            "gateway": config.get("Gateway") or "", "ip_range": config.get("IPRange") or "",
            "internal": bool(body.get("Internal")), "labels": dict(body.get("Labels") or {}),
            "options": dict(body.get("Options") or {})}


def _create_status(error: DockyardError) -> int:
    """dockerd's status for a refused create: an unknown driver is a missing plugin (404), a
    predefined name or an overlapping pool is forbidden (403), the rest a bad parameter."""
    text = error.message
    if text.startswith("plugin "):
        return 404
    if "pre-defined" in text or "only one instance" in text or "Pool overlaps" in text:
        return 403
    status = http.status_for(error)
    return 400 if status == 500 else status


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.Response:
    args = _create_args(await http.json_body(request))
    # Attachable and CheckDuplicate change nothing here: a local bridge is always attachable by
    # containers, and a name is always unique (dockerd's CheckDuplicate behaviour, 409).

    def create(engine: Any) -> str:
        from dockyard.errors import ConflictError

        try:
            return engine.networks.create(**args).id
        except ConflictError:
            raise
        except DockyardError as e:
            raise http.ApiError(_create_status(e), e.message) from None

    return http.json_response({"Id": await http.call(request, create), "Warning": ""}, status=201)


@routes.delete("/networks/{id}")
async def remove_network(request: web.Request) -> web.Response:
    typed = request.match_info["id"]

    def remove(engine: Any) -> None:
        from dockyard.network.service import NetworkError

        net = _network(engine, typed)
        try:
            engine.networks.remove(net.id)
        except NetworkError as e:   # predefined, or containers still on it
            raise http.ApiError(403, e.message) from None

    await http.call(request, remove)
    return http.no_content()


def _container_of(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise http.bad_request("a container must be given (Container)")
    return body["Container"]


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    typed = request.match_info["id"]
    body = await http.json_body(request)
    container = _container_of(body)
    endpoint = body.get("EndpointConfig") or {}
    if not isinstance(endpoint, dict):
        raise http.bad_request("invalid EndpointConfig: expected an object")
    # What the engine's connect takes (the CLI's --alias and --ip); anything else given is
    # refused by name rather than dropped (empty fields, as clients send them, are fine).
    unsupported = sorted(k for k, v in endpoint.items() if v and k not in ("Aliases", "IPAMConfig"))
    ipam = endpoint.get("IPAMConfig") or {}
    unsupported += sorted(f"IPAMConfig.{k}" for k, v in ipam.items() if v and k != "IPv4Address")
    if unsupported:
        raise http.bad_request(f"EndpointConfig {', '.join(unsupported)} is not supported by dockyard")
    aliases = [str(a) for a in endpoint.get("Aliases") or []]
    ip = ipam.get("IPv4Address") or ""

    def run(engine: Any) -> None:
        from dockyard.network.service import NetworkError

        net = _network(engine, typed)
        engine.containers.get(container)   # 404 "No such container" before any network error
        try:
            engine.networks.connect(net.id, container, aliases=aliases, ip=ip)
        except NetworkError as e:   # already connected, a shared namespace, a non-bridge network
            raise http.ApiError(403, e.message) from None

    await http.call(request, run)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    typed = request.match_info["id"]
    body = await http.json_body(request)
    container = _container_of(body)
    force = bool(body.get("Force"))

    def run(engine: Any) -> None:
        net = _network(engine, typed)
        engine.containers.get(container)
        engine.networks.disconnect(net.id, container, force=force)

    await http.call(request, run)
    return web.Response(status=200)


@routes.post("/networks/prune")
async def prune(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    for key in filters:
        if key not in ("until", "label"):
            raise http.bad_request(f"Invalid filter '{key}'")

    def run(engine: Any) -> list[str]:
        return engine.networks.prune(filters)

    return http.json_response({"NetworksDeleted": await http.call(request, run)})
