"""Container routes of the Engine API (all but the streams: start, attach, wait, logs, resize
and exec live in ``streams``/``execs``).

Each handler parses the request, calls ``engine.containers`` on a worker thread (``http.call``)
and answers in dockerd's shape and status codes. ``create`` receives Docker's Config, HostConfig
and NetworkingConfig already built by the client; ``containers.request.normalise`` turns them into what
``dockyard create`` hands the engine. Bodies that stream (export, stats) are produced on a worker
and written from the loop (``WorkerStream``), so a slow or vanished client holds no event loop
and leaks no thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from typing import Any, Callable

from aiohttp import web

from dockyard.api import http
from dockyard.errors import ConflictError, DockyardError, NotFoundError

routes = http.Routes()

CHUNK = 256 * 1024


# ---------------------------------------------------------------- streaming from a worker

class ClientGone(BrokenPipeError):
    """The client went away (or the handler ended): the producer must stop."""


class WorkerStream(io.RawIOBase):
    """A binary file for a producer on a worker thread: each chunk is written to ``response``
    on the event loop and waited for (back-pressure), the response prepared at the first one.
    Once ``stop`` is set (client gone, handler ended) every write raises ``ClientGone``."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 loop: asyncio.AbstractEventLoop, chunk: int = CHUNK) -> None:
        super().__init__()
        self.request, self.response, self.loop, self.chunk = request, response, loop, chunk
        self.stop = threading.Event()
        self._buf = bytearray()
        self.started = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.stop.is_set():
            raise ClientGone("the client went away")
        self._buf += data
        if len(self._buf) >= self.chunk:
            self._send()
        return len(data)

    def flush(self) -> None:
        if self._buf or not self.started:
            self._send()

    def _send(self) -> None:
        data, self._buf = bytes(self._buf), bytearray()
        future = asyncio.run_coroutine_threadsafe(self._write(data), self.loop)
        while True:
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                if self.stop.is_set():   # a client that stopped reading, then the handler ended
                    future.cancel()
                    raise ClientGone("the client went away") from None
            except (ConnectionError, asyncio.CancelledError, RuntimeError) as e:
                self.stop.set()
                raise ClientGone("the client went away") from e

    async def _write(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            await self.response.prepare(self.request)
        if data:
            await self.response.write(data)


async def stream(request: web.Request, response: web.StreamResponse,
                 produce: Callable[..., None], *args: Any) -> web.StreamResponse:
    """Run ``produce(engine, out, *args)`` on a worker, ``out`` a ``WorkerStream``. An error
    before the first byte is answered as usual (Docker's JSON error); after it, the stream ends."""
    out = WorkerStream(request, response, asyncio.get_running_loop())

    def work(engine: Any) -> None:
        try:
            produce(engine, out, *args)
            out.flush()
        except ClientGone:
            pass
        except BaseException:
            if not out.started:
                raise
            out.stop.set()   # mid-stream: nothing left to say but the end

    try:
        await http.call(request, work)
    finally:
        out.stop.set()
    if not out.started:   # the producer never wrote (an empty body)
        await response.prepare(request)
    try:
        await response.write_eof()
    except ConnectionError:
        pass
    return response


# ---------------------------------------------------------------- helpers

def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _status_map(error: DockyardError, default: int = 400) -> http.ApiError | DockyardError:
    """An engine refusal without an HTTP status of its own is the client's error (400) here,
    as dockerd answers invalid parameters."""
    if isinstance(error, (NotFoundError, ConflictError)) or getattr(error, "http_status", None):
        return error
    return http.ApiError(default, error.message)


async def _call400(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await http.call(request, fn, *args)
    except DockyardError as e:
        raise _status_map(e) from None


# ---------------------------------------------------------------- the create body
# ---------------------------------------------------------------- the create body

# The body's checks and defaults are the engine's (containers/request.py), shared with compose.
from dockyard.containers.request import _empty, normalise  # noqa: E402


def check_image(engine: Any, image: str, platform: str | None) -> None:
    """dockerd's 404 for a missing image, in the words the docker CLI answers by pulling."""
    from dockyard import reference

    found = engine.image_store.find(image)
    try:
        named = reference.parse(image).familiar()
    except DockyardError:
        named = image
    if found is None:
        raise NotFoundError(f"No such image: {named}")
    if platform:
        from dockyard.oci import platform as platforms

        try:
            wanted = platforms.parse(platform)
            if wanted.os not in ("linux", "windows", "darwin", "freebsd") or \
                    wanted.architecture not in set(platforms._ARCH.values()) | {"mips64le", "riscv64"}:
                raise DockyardError(platform)   # the CLI's own check (cli/ops._platform)
        except DockyardError:
            raise http.bad_request(f'"{platform}": unknown operating system or architecture: '
                                   "invalid argument") from None
        conf = engine.image_store.config(found)
        actual = {"os": conf.get("os") or "linux", "architecture": conf.get("architecture") or "",
                  "variant": conf.get("variant") or ""}
        if not wanted.matches(actual):
            raise NotFoundError(f"image with reference {image} was found but does not match the specified "
                                f"platform: wanted {platform}, actual: {actual['os']}/{actual['architecture']}")


def update_request(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """container.UpdateConfig (Resources + RestartPolicy) as ``engine.containers.update`` takes
    it: the set resources, and a policy only when one is named."""
    from dockyard.containers.update import RESOURCE_KEYS

    resources: dict[str, Any] = {}
    for key, value in body.items():
        if key == "RestartPolicy":
            continue
        if key in RESOURCE_KEYS:
            if value is not None and not (value == 0 and key != "PidsLimit") and value != "":
                resources[key] = value
        elif not _empty(value):
            raise http.bad_request(f"{key} cannot be updated by dockyard (it updates "
                                   f"{', '.join(RESOURCE_KEYS)} and RestartPolicy)")
    policy = body.get("RestartPolicy") or {}
    if not isinstance(policy, dict):
        raise http.bad_request("invalid RestartPolicy: expected an object")
    restart = ({"Name": policy["Name"], "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
               if policy.get("Name") else None)
    return resources, restart


# ---------------------------------------------------------------- create

@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await http.json_body(request)
    if not isinstance(body, dict):
        raise http.bad_request("invalid JSON body: expected an object")
    name = request.query.get("name") or None
    platform = request.query.get("platform") or None
    config, host, networking, warnings = normalise(body)

    def work(engine: Any) -> Any:
        check_image(engine, config["Image"], platform)
        return engine.containers.create(config, host, name, networking)

    record = await _call400(request, work)
    return http.json_response({"Id": record.id, "Warnings": warnings}, status=201)


# ---------------------------------------------------------------- list, inspect

ENDPOINT_KEYS = ("IPAMConfig", "Links", "Aliases", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen",
                 "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts")


def _list_entry(engine: Any, r: Any, published: dict[str, list[Any]], size: bool, now: float,
                snapshot: Any = None) -> dict[str, Any]:
    from dockyard.containers.summary import ps_command, status_text
    from dockyard.containers.store import ACTIVE

    ports: list[dict[str, Any]] = []
    bound = set()
    live = r.status in ACTIVE
    for p in sorted(published.get(r.id, []) if live else [], key=lambda p: (p.container_port, p.proto, p.host_ip)):
        ports.append({"IP": p.host_ip or "0.0.0.0", "PrivatePort": int(p.container_port),
                      "PublicPort": int(p.host_port), "Type": p.proto})
        bound.add(f"{p.container_port}/{p.proto}")
    for key in sorted(r.container_config.get("ExposedPorts") or {}, key=lambda k: (int(k.partition("/")[0]), k)):
        if key not in bound:
            port, _, proto = key.partition("/")
            ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    networks = {}
    for net_name, ep in engine.networks.container_networks(r, snapshot).items():
        # API 1.41's EndpointSettings, in its order (no DNSNames yet)
        networks[net_name] = {key: ep.get(key) for key in ENDPOINT_KEYS}
    mounts = []
    for m in r.config.get("Mounts") or []:
        entry = {"Type": m["Type"]}
        if m["Type"] == "volume":
            entry["Name"] = m.get("Name", "")
        entry.update(Source=m.get("Source", ""), Destination=m["Destination"])
        if m["Type"] == "volume":
            entry["Driver"] = m.get("Driver") or "local"
        entry.update(Mode=m.get("Mode", ""), RW=bool(m.get("RW", True)), Propagation=m.get("Propagation", ""))
        mounts.append(entry)
    out: dict[str, Any] = {
        "Id": r.id, "Names": ["/" + r.name], "Image": r.image, "ImageID": r.image_id,
        "Command": ps_command(r.config.get("Path", ""), r.config.get("Args") or []),
        "Created": int(r.created), "Ports": ports,
    }
    if size:
        from dockyard.containers.inspect import container_sizes

        sizes = container_sizes(engine.containers, r)
        if sizes["SizeRw"]:
            out["SizeRw"] = sizes["SizeRw"]   # omitempty, as dockerd
        out["SizeRootFs"] = sizes["SizeRootFs"]
    out.update({
        "Labels": r.container_config.get("Labels") or {}, "State": r.status, "Status": status_text(r, now),
        "HostConfig": {"NetworkMode": r.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": networks}, "Mounts": mounts,
    })
    return out


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    all_ = http.query_bool(request, "all")
    size = http.query_bool(request, "size")
    limit = http.query_int(request, "limit", -1)
    filters = http.query_filters(request)
    for key in ("before", "since"):   # the legacy parameters, as filters
        if request.query.get(key):
            filters.setdefault(key, []).append(request.query[key])

    def work(engine: Any) -> list[dict[str, Any]]:
        from dockyard.network.store import NetworkStore

        records = engine.containers.list(all=all_, filters=filters, last=limit if limit and limit > 0 else -1)
        if not records:
            return []
        published = NetworkStore(engine.db).all_ports()
        snapshot = engine.networks.snapshot()
        now = time.time()
        return [_list_entry(engine, r, published, size, now, snapshot) for r in records]

    try:
        entries = await http.call(request, work)
    except NotFoundError as e:   # a before/since filter naming no container
        raise http.ApiError(404, e.message) from None
    except DockyardError as e:
        raise _status_map(e) from None
    return http.json_response(entries)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    size = http.query_bool(request, "size")
    result = await http.call(request, lambda engine: engine.containers.inspect(_id(request), size=size))
    return http.json_response(result)


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    ps_args = [a for a in (request.query.get("ps_args") or "").split(" ") if a]
    titles, processes = await http.call(request, lambda engine: engine.containers.top(_id(request), ps_args))
    return http.json_response({"Processes": [list(p) for p in processes], "Titles": list(titles)})


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    kinds = {"C": 0, "A": 1, "D": 2}
    found = await http.call(request, lambda engine: engine.containers.diff(_id(request)))
    return http.json_response([{"Path": path, "Kind": kinds[kind]} for kind, path in found] or None)


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    cid = _id(request)
    await http.call(request, lambda engine: engine.containers.get(cid))   # a 404 before any byte
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})

    def produce(engine: Any, out: WorkerStream) -> None:
        engine.containers.export(cid, out)

    return await stream(request, response, produce)


# ---------------------------------------------------------------- stats

def _stats_json(record: Any, now: dict[str, Any] | None, before: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's types.StatsJSON of a sample (``now``) and the one before (``before``); zeros for
    a container that is not running. system_cpu_usage is the wall clock times the CPUs (what
    /proc/stat's total adds up to), so the docker CLI's CPU % is CPU time over wall time."""
    from dockyard.containers.inspect import ZERO_TIME, nano_time

    def cpu(sample: dict[str, Any] | None) -> dict[str, Any]:
        if not sample:
            return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                    "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        return {"cpu_usage": {"total_usage": sample["cpu_ns"], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "system_cpu_usage": int(sample["wall"] * 1e9) * sample["online_cpus"],
                "online_cpus": sample["online_cpus"],
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}

    out: dict[str, Any] = {
        "read": nano_time(now["wall"]) if now else ZERO_TIME,
        "preread": nano_time(before["wall"]) if now and before and before.get("read") else ZERO_TIME,
        "pids_stats": {"current": now["pids"]} if now else {},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": now.get("blk_read", 0)},
            {"major": 0, "minor": 0, "op": "write", "value": now.get("blk_write", 0)}] if now else None,
            "io_serviced_recursive": None, "io_queue_recursive": None, "io_service_time_recursive": None,
            "io_wait_time_recursive": None, "io_merged_recursive": None, "io_time_recursive": None,
            "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu(now), "precpu_stats": cpu(before if now else None),
        "memory_stats": {"usage": now["memory_usage"], "stats": {}, "limit": now["memory_limit"]} if now else {},
        "name": "/" + record.name, "id": record.id,
    }
    if now:
        out["networks"] = {"eth0": {"rx_bytes": now.get("net_rx", 0), "rx_packets": 0, "rx_errors": 0,
                                    "rx_dropped": 0, "tx_bytes": now.get("net_tx", 0), "tx_packets": 0,
                                    "tx_errors": 0, "tx_dropped": 0}}
    return out


def _sample(engine: Any, cid: str) -> tuple[Any, dict[str, Any] | None]:
    record = engine.containers.get(cid)
    if record.status not in ("running", "paused"):
        return record, None
    return record, engine.containers.stats(record)


def _start_sample(record: Any, now: dict[str, Any]) -> dict[str, Any]:
    """The sample the first one is measured against: nothing used when the container started
    (podman's first figure; docker's would need a second of waiting)."""
    return {**now, "cpu_ns": 0, "wall": record.started_at or now["wall"], "read": False}


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    cid = _id(request)
    streaming = http.query_bool(request, "stream", True)
    one_shot = http.query_bool(request, "one-shot")
    record, first = await http.call(request, _sample, cid)
    if not streaming:
        before = None if one_shot or first is None else _start_sample(record, first)
        return http.json_response(_stats_json(record, first, before))
    # A sample a second: each read on a worker, the waits on the loop, so a stream pins no
    # thread (`docker stats` opens one per container).
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    now, before = first, (_start_sample(record, first) if first else None)
    try:
        while True:
            await response.write(json.dumps(_stats_json(record, now, before)).encode() + b"\n")
            await asyncio.sleep(1.0)
            if now:
                before = {**now, "read": True}
            try:
                record, now = await http.call(request, _sample, cid)
            except NotFoundError:
                break   # removed: the stream ends, as dockerd's does
    except ConnectionError:
        return response   # the client went away
    await response.write_eof()
    return response


# ---------------------------------------------------------------- lifecycle verbs

@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    cid = _id(request)
    timeout = http.query_int(request, "t")
    signal = request.query.get("signal") or None

    def work(engine: Any) -> bool:
        from dockyard.containers.store import ACTIVE

        if engine.containers.get(cid).status not in ACTIVE:
            return False
        engine.containers.stop(cid, timeout, signal)
        return True

    stopped = await _call400(request, work)
    return http.no_content(204 if stopped else 304)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    cid = _id(request)
    timeout = http.query_int(request, "t")
    await _call400(request, lambda engine: engine.containers.restart(cid, timeout))
    return http.no_content()


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    cid = _id(request)
    signal = request.query.get("signal") or "SIGKILL"
    await _call400(request, lambda engine: engine.containers.kill(cid, signal))
    return http.no_content()


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    cid = _id(request)
    new_name = request.query.get("name") or ""
    try:
        await _call400(request, lambda engine: engine.containers.rename(cid, new_name))
    except http.ApiError as e:
        if e.message.startswith("Invalid container name"):   # dockerd's words name it with its slash
            raise http.bad_request("Error when allocating new name: Invalid container name "
                                   f"(/{new_name.lstrip('/')}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") from None
        raise
    return http.no_content()


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    await _call400(request, lambda engine: engine.containers.pause(_id(request)))
    return http.no_content()


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    try:
        await _call400(request, lambda engine: engine.containers.unpause(_id(request)))
    except ConflictError as e:
        raise http.ApiError(500, e.message) from None   # dockerd's status for "is not paused"
    return http.no_content()


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    body = await http.json_body(request, required=False)
    if not isinstance(body, dict):
        raise http.bad_request("invalid JSON body: expected an object")
    resources, policy = update_request(body)
    cid = _id(request)
    warnings = await _call400(request, lambda engine: engine.containers.update(cid, resources, policy))
    return http.json_response({"Warnings": warnings or []})


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    force = http.query_bool(request, "force")
    volumes = http.query_bool(request, "v")
    if http.query_bool(request, "link"):
        raise http.bad_request("removing a link (link=1) is not supported: dockyard keeps --link aliases for the "
                               "container's life")
    cid = _id(request)
    await _call400(request, lambda engine: engine.containers.remove(cid, force=force, volumes=volumes))
    return http.no_content()


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise http.bad_request(f"Invalid filter '{key}'")
    removed, freed = await _call400(request, lambda engine: engine.containers.prune(filters))
    return http.json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": freed})
