"""``GET /system/df``: what ``dockyard system df`` counts (``system.usage``), in dockerd's shape,
so ``docker system df`` and ``docker system df -v`` print it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import http

routes = http.Routes()


def _image(engine: Any, summary: Any) -> dict[str, Any]:
    from dockyard.api.images import _summary   # the /images/json shape, with SharedSize and Containers

    return _summary(engine, summary)


def _container(engine: Any, usage: Any, published: dict[str, list[Any]], now: float,
               image_sizes: dict[str, int]) -> dict[str, Any]:
    from dockyard.api.containers import _list_entry   # the /containers/json shape

    out = _list_entry(engine, usage.record, published, False, now)
    # the writable layer system.usage measured (what df counts), and with the image's layers
    out["SizeRw"] = usage.size
    out["SizeRootFs"] = usage.size + image_sizes.get(usage.record.image_id, 0)
    return out


def _volume(usage: Any) -> dict[str, Any]:
    return {**usage.volume.inspect(), "UsageData": {"RefCount": usage.links, "Size": usage.size}}


def _build_cache(engine: Any) -> list[dict[str, Any]]:
    from dockyard.build.cache import BuildCache
    from dockyard.timefmt import rfc3339_nano_utc

    return [{"ID": entry.key.partition(":")[2][:25], "Parent": "", "Type": "regular", "Description": "",
             "InUse": False, "Shared": entry.shared, "Size": entry.size,
             "CreatedAt": rfc3339_nano_utc(entry.created), "LastUsedAt": rfc3339_nano_utc(entry.last_used),
             "UsageCount": 0} for entry in BuildCache(engine).entries()]


def disk_usage(engine: Any) -> dict[str, Any]:
    import time

    from dockyard.network.store import NetworkStore
    from dockyard.system.usage import usage as system_usage

    usage = system_usage(engine)
    now = time.time()
    published = NetworkStore(engine.db).all_ports() if usage.containers else {}
    cache = _build_cache(engine)
    image_sizes = {image.id: image.size for image in usage.images.images}
    return {
        # the CLI counts leftovers (image data nothing uses) with the images; so does this
        "LayersSize": usage.images.layers_size + usage.leftovers.size,
        "Images": [_image(engine, s) for s in usage.images.images],
        "Containers": [_container(engine, c, published, now, image_sizes) for c in usage.containers],
        "Volumes": [_volume(v) for v in usage.volumes],
        "BuildCache": cache,
        "BuilderSize": sum(c["Size"] for c in cache),
    }


@routes.get("/system/df")
async def system_df(request: web.Request) -> web.Response:
    return http.json_response(await http.call(request, disk_usage))
