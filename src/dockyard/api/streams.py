"""The container routes that stream: start, attach (hijacked, and the websocket), wait, logs,
resize.

The docker CLI's ``docker run`` creates, attaches (to a container not yet started), waits
(``next-exit``, or ``removed`` with ``--rm``) and only then starts. So the service keeps, in its
memory (the ``Hub``), the attaches and waits that are pending per container; a start with any
pending asks the shim to hold the container until a first client is connected
(``attach_first``), connects them, and only then lets it run: no output is lost, no exit missed.

Nothing here pins a worker thread while it waits: shim connections are asyncio streams, and
what the shim does not tell (a container started or removed by another front end) one poller
task reads from the state DB for every waited container at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from dockyard.api import http
from dockyard.api.hijack import Hijacked, HijackedResponse, hijack, shutdown, stream_type
from dockyard.containers import frames
from dockyard.errors import ConflictError, DockyardError

routes = http.Routes()
log = logging.getLogger("dockyard.api")

POLL_SECONDS = 0.1          # the poller's period while anything waits
LOG_POLL_SECONDS = 0.1      # a followed log's file is looked at this often
DISCONNECT_POLL = 0.25
ACTIVE = ("running", "paused", "restarting")
# A shim between two runs of a restarting container greets a new client with the last exit
# frame: the watch connects only while the container runs, so that frame is news.
WATCHABLE = ("running", "paused")
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


# ---------------------------------------------------------------- the hub: pending attaches, waits, watches

@dataclass
class Waiter:
    condition: str                 # not-running | next-exit | removed | inactive (logs -f: exited or gone)
    future: "asyncio.Future[tuple[int, str]]"
    baseline: float | None = None  # finished_at when the wait began (next-exit)
    # next-exit after a failed start (no exit, for dockerd): only an exit of a run that began
    # after this started_at counts
    started_before: float | None = None
    failed_start: bool = False


@dataclass
class State:
    status: str
    exit_code: int
    error: str
    finished_at: float | None
    started_at: float | None = None


class Hub:
    """The service's memory of who waits for which container."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.waiters: dict[str, list[Waiter]] = {}
        self.pending: dict[str, list["AttachSession"]] = {}
        self.watches: dict[str, "asyncio.Task[None]"] = {}
        self.starting: set[str] = set()          # cids whose start route connects the pending
        self.last_exit: dict[str, int] = {}
        self._poller: "asyncio.Task[None] | None" = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def workers(self) -> http.Workers:
        return self.app[http.WORKERS_KEY]

    async def engine(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self.workers
        return await pool.run(lambda: fn(pool.engine(), *args))

    def spawn(self, coro: Any) -> "asyncio.Task[Any]":
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- waits
    def wait(self, cid: str, condition: str, state: State) -> "asyncio.Future[tuple[int, str]]":
        """A future of (exit code, error) resolved when ``condition`` holds."""
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        if condition in ("not-running", "inactive") and state.status not in ACTIVE:
            future.set_result((state.exit_code, state.error))
            return future
        self.waiters.setdefault(cid, []).append(Waiter(condition, future, state.finished_at))
        if state.status in WATCHABLE:
            self.ensure_watch(cid)
        self._ensure_poller()
        return future

    def has_waiters(self, cid: str) -> bool:
        return any(not w.future.done() for w in self.waiters.get(cid, ()))

    def _resolve(self, cid: str, conditions: tuple[str, ...], code: int, error: str = "") -> None:
        left = []
        for waiter in self.waiters.get(cid, ()):
            if waiter.future.done():
                continue
            if waiter.condition in conditions:
                waiter.future.set_result((code, error))
            else:
                left.append(waiter)
        if left:
            self.waiters[cid] = left
        else:
            self.waiters.pop(cid, None)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = self.spawn(self._poll())

    async def _poll(self) -> None:
        while True:
            for cid in [c for c, ws in self.waiters.items() if all(w.future.done() for w in ws)]:
                self.waiters.pop(cid, None)   # cancelled waits (clients gone)
            for cid in [c for c in self.watches if c not in self.waiters and c not in self.starting]:
                self.watches.pop(cid).cancel()   # nobody waits for its exit any more
            cids = sorted(set(self.waiters) | {c for c, s in self.pending.items() if s})
            if not cids:
                return
            try:
                states = await self.engine(_states, cids)
            except Exception:  # noqa: BLE001 - try again next period
                states = {}
            for cid, state in states.items():
                try:
                    self._check(cid, state)
                except Exception as e:  # noqa: BLE001 - one container's trouble must not stop every wait
                    log.warning("streams: checking %s failed: %s: %s", cid[:12], type(e).__name__, e)
            await asyncio.sleep(POLL_SECONDS)

    def _check(self, cid: str, state: State | None) -> None:
        if state is None:   # removed: every wait is over, every pending attach too
            self._resolve(cid, ("not-running", "next-exit", "removed", "inactive"), self.last_exit.pop(cid, 0))
            for session in self.pending.pop(cid, []):
                session.abandon()
            return
        if state.status not in ACTIVE:
            self.last_exit[cid] = state.exit_code
            self._resolve(cid, ("not-running", "inactive"), state.exit_code)
        waiters = self.waiters.get(cid, ()) if cid not in self.starting else ()   # a failed start is no exit

        def exited(w: Waiter) -> bool:
            return (w.condition == "next-exit" and not w.future.done() and w.baseline != state.finished_at
                    and not (w.failed_start and state.started_at == w.started_before))

        if any(exited(w) for w in waiters):
            self.last_exit[cid] = state.exit_code
            for w in [w for w in waiters if exited(w)]:
                w.future.set_result((state.exit_code, ""))
        if state.status in WATCHABLE and self.has_waiters(cid):
            self.ensure_watch(cid)
        if state.status in ("running", "paused") and self.pending.get(cid) and cid not in self.starting:
            # started by another front end: connect what waited, late rather than never
            self.spawn(self.connect_pending(cid))

    # ---- the watch: one shim connection per waited container, for its exit frame
    def ensure_watch(self, cid: str) -> None:
        if cid not in self.watches or self.watches[cid].done():
            self.watches[cid] = self.spawn(self._watch(cid))

    async def connect_watch(self, cid: str, hello: asyncio.Event) -> None:
        """Connect the watch now, before the shim lets the container run (the start route), so
        that even a container that is over at once is seen to exit. It says hello (which
        releases a shim held with ``attach_first``) once ``hello`` is set: after the attaches."""
        connected = asyncio.get_running_loop().create_future()
        previous = self.watches.get(cid)
        if previous is not None:
            previous.cancel()
        task = self.watches[cid] = self.spawn(self._watch(cid, connected, hello))
        # a task cancelled before its first step never runs its finally: wait for either
        await asyncio.wait({connected, task}, return_when=asyncio.FIRST_COMPLETED)

    async def _watch(self, cid: str, connected: "asyncio.Future[None] | None" = None,
                     hello: asyncio.Event | None = None) -> None:
        writer = None
        try:
            path = await self.engine(lambda engine: engine.containers.socket_path(cid))
            try:
                reader, writer = await asyncio.open_unix_connection(path)
            except OSError:
                return   # no shim: the poller reads what became of it
            finally:
                if connected is not None and not connected.done():
                    connected.set_result(None)
            # the shim sends its exit frame to every client, greeted or not; the hello only
            # counts for attach_first
            if hello is not None:
                await hello.wait()
            try:
                writer.write(b"{}\n")
                await writer.drain()
            except OSError:
                return
            frame = await _read_exit_frame(reader)
            if frame is None:
                return
            code = int(frame.get("StatusCode") or 0)
            self.last_exit[cid] = code
            self._resolve(cid, ("not-running", "next-exit", "inactive"), code)
            if frame.get("RemoveRecord"):
                # run --rm's handshake (the CLI's too): we delete the record, the shim the rest
                from dockyard.containers.attach import REMOVAL_CONFIRMATION

                await self.engine(lambda engine: engine.containers.forget(cid))
                try:
                    writer.write(REMOVAL_CONFIRMATION)
                    await writer.drain()
                except OSError:
                    pass
                self._resolve(cid, ("removed",), code)
                self.last_exit.pop(cid, None)
        finally:
            if connected is not None and not connected.done():
                connected.set_result(None)
            if writer is not None:
                shutdown(writer.transport)
            if self.watches.get(cid) is asyncio.current_task():
                del self.watches[cid]
            if self.waiters.get(cid):
                self._ensure_poller()

    # ---- pending attaches
    def add_pending(self, cid: str, session: "AttachSession") -> None:
        self.pending.setdefault(cid, []).append(session)
        self._ensure_poller()

    def drop_pending(self, cid: str, session: "AttachSession") -> None:
        sessions = self.pending.get(cid)
        if sessions and session in sessions:
            sessions.remove(session)
        if not sessions:
            self.pending.pop(cid, None)

    async def connect_pending(self, cid: str) -> None:
        sessions = self.pending.pop(cid, [])
        try:
            for session in sessions:
                await session.connect()
        finally:
            for session in sessions:
                session.abandon()   # no-op for the connected: none is left waiting for ever

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for sessions in self.pending.values():
            for session in sessions:
                session.abandon()


HUB_KEY: web.AppKey[Hub] = web.AppKey("streams_hub", Hub)


def setup(app: web.Application) -> None:
    app[HUB_KEY] = Hub(app)

    async def close(app: web.Application) -> None:
        await app[HUB_KEY].close()

    app.on_shutdown.append(close)


def hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


def _states(engine: Any, cids: list[str]) -> dict[str, State | None]:
    """What the state DB says of each container (a dead shim reconciled): None when removed."""
    containers = engine.containers
    out: dict[str, State | None] = {}
    for cid in cids:
        record = containers.store.get(cid)
        if record is not None:
            try:
                record = containers._reconcile(record)
            except DockyardError:
                record = None
        out[cid] = None if record is None else _state(record)
    return out


def _state(record: Any) -> State:
    return State(record.status, record.exit_code, record.error or "", record.finished_at, record.started_at)


async def _read_exit_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    parser = frames.Reader()
    while True:
        try:
            data = await reader.read(65536)
        except OSError:
            return None
        if not data:
            return None
        try:
            for stream, payload in parser.feed(data):
                if stream == frames.EXIT:
                    return json.loads(payload)
        except ValueError:
            return None


async def until_disconnected(request: web.Request) -> None:
    """Returns once the client of a (not hijacked) request went away."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(DISCONNECT_POLL)


# ---------------------------------------------------------------- attach

class AttachSession:
    """One hijacked attach: the client's connection and, once the container runs, its shim's."""

    def __init__(self, hub: Hub, cid: str, conn: Hijacked, *, tty: bool, stdin: bool, stdout: bool,
                 stderr: bool, detach_keys: bytes) -> None:
        self.hub = hub
        self.cid = cid
        self.conn = conn
        self.tty = tty
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.detach_keys = detach_keys
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()    # connected to the shim, or given up
        self.detached = asyncio.Event()

    async def connect(self) -> bool:
        """Connect to the shim and say which streams we want."""
        if self.conn.lost.is_set():
            self.ready.set()
            return False
        try:
            path = await self.hub.engine(lambda engine: engine.containers.socket_path(self.cid))
            self.reader, self.writer = await asyncio.open_unix_connection(path)
            hello = {"stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr}
            self.writer.write(json.dumps(hello).encode() + b"\n")
            await self.writer.drain()
        except OSError:
            self.reader = self.writer = None
        self.ready.set()
        return self.writer is not None

    def abandon(self) -> None:
        self.ready.set()

    async def pump(self) -> None:
        """Both ways until the container exits, the client goes or types the detach keys."""
        assert self.reader is not None and self.writer is not None
        client = asyncio.ensure_future(self._from_client())
        done: set[asyncio.Future[Any]] = set()
        tasks = {asyncio.ensure_future(self._from_shim()), client,
                 asyncio.ensure_future(self.conn.lost.wait()), asyncio.ensure_future(self.detached.wait())}
        try:
            while True:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                tasks -= done
                # the client's write side ending (its stdin's EOF) leaves the output going
                if done == {client} and not client.exception() and client.result() == "eof":
                    continue
                break
        finally:
            for task in tasks:
                task.cancel()
            for task in done:
                if not task.cancelled():
                    task.exception()   # retrieved: a client gone mid-write is no error of ours
            shutdown(self.writer.transport)

    async def _from_shim(self) -> str:
        assert self.reader is not None
        parser = frames.Reader()
        while True:
            data = await self.reader.read(65536)
            if not data:
                return "gone"
            out = bytearray()
            for stream, payload in parser.feed(data):
                if stream in (frames.STDOUT, frames.STDERR):
                    out += payload if self.tty else frames.pack(stream, payload)
                elif stream == frames.EXIT:
                    if out:
                        await self.conn.write(bytes(out))
                    return "exit"
            if out:
                await self.conn.write(bytes(out))

    async def _from_client(self) -> str:
        from dockyard.containers.attach import EscapeScanner

        assert self.writer is not None
        scanner = EscapeScanner(self.detach_keys) if self.detach_keys and self.stdin else None
        while True:
            data = await self.conn.read()
            if not data:
                if self.stdin and not self.conn.lost.is_set():
                    await self._send_stdin(b"")   # the container's stdin ends too (StdinOnce)
                return "eof"
            if not self.stdin:
                continue
            if scanner is not None:
                data, escaped = scanner.feed(data)
                if escaped:
                    if data:
                        await self._send_stdin(data)
                    self.detached.set()
                    return "detached"
            if data:
                await self._send_stdin(data)

    async def _send_stdin(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(frames.pack(frames.STDIN, data))
        await self.writer.drain()


def _detach_keys(request: web.Request) -> bytes:
    from dockyard.containers.attach import parse_detach_keys

    spec = request.query.get("detachKeys")
    try:
        return parse_detach_keys(spec or None)
    except DockyardError as e:
        raise http.bad_request(e.message) from None


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    typed = request.match_info["id"]
    record = await http.call(request, lambda engine: engine.containers.get(typed))
    keys = _detach_keys(request)
    stream = http.query_bool(request, "stream")
    logs = http.query_bool(request, "logs")
    want_stdin = http.query_bool(request, "stdin") and bool(record.container_config.get("OpenStdin"))
    want_stdout = http.query_bool(request, "stdout")
    want_stderr = http.query_bool(request, "stderr")
    tty = bool(record.container_config.get("Tty"))
    the_hub = hub(request)
    conn = hijack(request, stream_type(request, tty))
    session = AttachSession(the_hub, record.id, conn, tty=tty, stdin=want_stdin, stdout=want_stdout,
                            stderr=want_stderr, detach_keys=keys)
    held = stream and record.status not in ("running", "paused")
    if held:   # before the client hears 101: its start may come at once
        the_hub.add_pending(record.id, session)
    try:
        if logs:
            await _replay_logs(request, record.id, conn, tty, want_stdout, want_stderr)
        if stream:
            await _attach_session(request, the_hub, session, record, held)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        the_hub.drop_pending(record.id, session)
        conn.close()
    return HijackedResponse()


async def _attach_session(request: web.Request, the_hub: Hub, session: AttachSession, record: Any,
                          held: bool) -> None:
    if not held:
        await http.call(request, lambda engine: engine.containers.event("attach", record))
        if not await session.connect():
            return
    else:   # held until the container starts (docker run attaches before it starts)
        lost = asyncio.ensure_future(session.conn.lost.wait())
        ready = asyncio.ensure_future(session.ready.wait())
        try:
            await asyncio.wait({lost, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            ready.cancel()
            the_hub.drop_pending(record.id, session)
        if session.writer is None:
            return
    await session.pump()


async def _replay_logs(request: web.Request, cid: str, conn: Hijacked, tty: bool, stdout: bool,
                       stderr: bool) -> None:
    records = await http.call(request, lambda engine: list(engine.containers.logs(cid)))
    out = bytearray()
    for record in records:
        chunk = _log_chunk(record, tty, stdout, stderr, False)
        if chunk:
            out += chunk
    if out:
        await conn.write(bytes(out))


@routes.get("/containers/{id}/attach/ws")
async def attach_ws(request: web.Request) -> web.StreamResponse:
    """The websocket attach: output as binary messages (never multiplexed), input from any message."""
    typed = request.match_info["id"]
    record = await http.call(request, lambda engine: engine.containers.get(typed))
    keys = _detach_keys(request)
    want_stdin = http.query_bool(request, "stdin") and bool(record.container_config.get("OpenStdin"))
    ws = web.WebSocketResponse()
    bridge = _WebSocketConn(ws)
    the_hub = hub(request)
    stream = http.query_bool(request, "stream")
    # output never multiplexed here: the websocket's messages keep the writes apart
    session = AttachSession(the_hub, record.id, bridge, tty=True, stdin=want_stdin,  # type: ignore[arg-type]
                            stdout=http.query_bool(request, "stdout", True),
                            stderr=http.query_bool(request, "stderr", True), detach_keys=keys)
    held = stream and record.status not in ("running", "paused")
    if held:
        the_hub.add_pending(record.id, session)
    try:
        await ws.prepare(request)
        if http.query_bool(request, "logs"):
            await _replay_logs(request, record.id, bridge, True, True, True)   # type: ignore[arg-type]
        if stream:
            bridge.start()
            await _attach_session(request, the_hub, session, record, held)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        the_hub.drop_pending(record.id, session)
        bridge.stop()
        await ws.close()
    return ws


class _WebSocketConn:
    """A websocket that looks like a ``Hijacked`` to an ``AttachSession``."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.lost = asyncio.Event()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._receive())

    async def _receive(self) -> None:
        from aiohttp import WSMsgType

        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._chunks.put(message.data.encode())
                elif message.type == WSMsgType.BINARY:
                    await self._chunks.put(message.data)
        finally:
            self.lost.set()
            await self._chunks.put(b"")

    async def read(self) -> bytes:
        return await self._chunks.get()

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the client went away")
        await self.ws.send_bytes(data)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


# ---------------------------------------------------------------- start

def go_errno_text(message: str) -> str:
    """Errno texts as Go writes them (lower case): the docker CLI reads a failed start's exit
    code (127, 126) from "no such file or directory" and "permission denied" in the message."""
    return message.replace("No such file or directory", "no such file or directory").replace(
        "Permission denied", "permission denied")


def _start_status(error: DockyardError) -> int:
    """dockerd: a command that cannot be found or run is the caller's error (400), else 500."""
    return 400 if getattr(error, "exit_code", 125) in (126, 127) else 500


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    typed = request.match_info["id"]
    the_hub = hub(request)
    record = await http.call(request, lambda engine: engine.containers.get(typed))
    cid = record.id
    if record.status in ("running", "restarting"):
        return http.no_content(304)
    if record.status == "paused":   # dockerd's conflict (the engine's words)
        raise ConflictError("cannot start a paused container, try unpause instead")
    pending = bool(the_hub.pending.get(cid))
    hold = pending or the_hub.has_waiters(cid)
    the_hub.starting.add(cid)
    try:
        try:
            handle = await http.call(request, lambda engine: engine.containers.start(
                cid, attach_first=hold, attach_event=pending))
            if handle is None:
                return http.no_content(304)
            await http.call(request, lambda engine: handle.wait_created())
            if hold:
                # the watch connected first, silent; then the attaches say hello (the shim lets
                # the container run at the first), then the watch (enough when only waits wait)
                hello = asyncio.Event()
                try:
                    await the_hub.connect_watch(cid, hello)
                    await the_hub.connect_pending(cid)
                finally:
                    hello.set()

            def started(engine: Any) -> None:
                handle.wait_started()
                engine.containers.mark_running(handle)

            await http.call(request, started)
        except DockyardError as e:
            await _failed_start(request, the_hub, record)
            raise http.ApiError(_start_status(e), go_errno_text(e.message)) from None
    finally:
        the_hub.starting.discard(cid)
    return http.no_content(204)


async def _failed_start(request: web.Request, the_hub: Hub, record: Any) -> None:
    """A start that failed: what waited for it hears so; an --rm container goes, as in dockerd."""
    for session in the_hub.pending.pop(record.id, []):
        session.abandon()
    if record.host_config.get("AutoRemove"):
        try:
            await http.call(request, lambda engine: engine.containers.remove(record.id, force=True))
        except DockyardError:
            pass
    else:   # dockerd: a container that never ran has not exited; next-exit waits on
        for waiter in the_hub.waiters.get(record.id, ()):
            if waiter.condition == "next-exit":
                waiter.failed_start, waiter.started_before = True, record.started_at
    the_hub._ensure_poller()


# ---------------------------------------------------------------- wait

@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    typed = request.match_info["id"]
    condition = request.query.get("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise http.bad_request(f"invalid condition: {condition!r}")
    record = await http.call(request, lambda engine: engine.containers.get(typed))
    future = hub(request).wait(record.id, condition, _state(record))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)   # the docker CLI starts the container once it has these
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({future, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not future.done():
        future.cancel()   # the client went: the poller forgets the wait
        return response
    code, _error = future.result()
    try:
        await response.write(json.dumps({"Error": None, "StatusCode": code}).encode() + b"\n")
        await response.write_eof()
    except ConnectionError:
        pass
    return response


# ---------------------------------------------------------------- logs

def _fixed_time(text: str) -> str:
    """Docker's logs -t: RFC 3339 with exactly nine digits of fraction."""
    body = text.rstrip("Z")
    whole, _, frac = body.partition(".")
    return f"{whole}.{(frac + '000000000')[:9]}Z"


def _log_chunk(record: dict[str, str], tty: bool, stdout: bool, stderr: bool, timestamps: bool) -> bytes:
    stream = record.get("stream") or "stdout"
    if (stream == "stderr" and not stderr) or (stream != "stderr" and not stdout):
        return b""
    text = record.get("log", "")
    if timestamps:
        text = _fixed_time(record.get("time", "")) + " " + text
    data = text.encode()
    if tty:
        return data
    return frames.pack(frames.STDERR if stream == "stderr" else frames.STDOUT, data)


def _time_param(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if not value or value == "0":
        return None
    try:
        return float(value)
    except ValueError:
        from dockyard.containers.logs import parse_since

        try:
            return parse_since(value)
        except ValueError as e:
            raise http.bad_request(str(e)) from None


class LogCursor:
    """A followed log: the current file held open (so a container removed right after its exit,
    as docker-py's run does, still gives its last lines), read from where we left off."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: Any = None
        self.pending = b""

    def read_all(self) -> list[dict[str, str]]:
        from dockyard.containers.logs import files

        out: list[dict[str, str]] = []
        for name in files(self.path):
            try:
                f = open(name, "rb")
            except FileNotFoundError:
                continue
            data = f.read()
            if name == self.path:
                self.close()
                self.file = f
                data = self._keep_tail(data)
            else:
                f.close()
            out += _parse_lines(data)
        return out

    def _keep_tail(self, data: bytes) -> bytes:
        data = self.pending + data
        head, sep, self.pending = data.rpartition(b"\n")
        return head + sep

    def changed(self) -> bool:
        """Whether there is more to read (or the file was rotated): two stats, no read."""
        if self.file is None:
            return os.path.exists(self.path)
        try:
            if os.stat(self.path).st_ino != os.fstat(self.file.fileno()).st_ino:
                return True
        except FileNotFoundError:
            pass
        return os.fstat(self.file.fileno()).st_size > self.file.tell()

    def read_new(self) -> list[dict[str, str]]:
        data = b""
        if self.file is not None:
            data = self.file.read()
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None   # removed (the open file still has its lines) or between rotations
        if current is not None and (self.file is None or current != os.fstat(self.file.fileno()).st_ino):
            try:   # rotated: the rest of the old file (read above), then the new one
                fresh = open(self.path, "rb")
            except FileNotFoundError:
                fresh = None
            if fresh is not None:
                data = self._keep_tail(data)
                self.close()
                self.file = fresh
                return _parse_lines(data) + _parse_lines(self._keep_tail(fresh.read()))
        return _parse_lines(self._keep_tail(data))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _parse_lines(data: bytes) -> list[dict[str, str]]:
    out = []
    for line in data.split(b"\n"):
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _select(records: list[dict[str, str]], since: float | None, until: float | None,
            tail: int | None) -> list[dict[str, str]]:
    from dockyard.containers.logs import _record_time

    if since is not None:
        records = [r for r in records if _record_time(r) >= since]
    if until is not None:
        records = [r for r in records if _record_time(r) <= until]
    if tail is not None and tail >= 0:
        records = records[-tail:] if tail else []
    return records


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    typed = request.match_info["id"]
    follow = http.query_bool(request, "follow")
    stdout = http.query_bool(request, "stdout")
    stderr = http.query_bool(request, "stderr")
    timestamps = http.query_bool(request, "timestamps")
    since = _time_param(request, "since")
    until = _time_param(request, "until")
    tail_text = request.query.get("tail") or "all"
    tail = None if tail_text == "all" else http.query_int(request, "tail")
    if not (stdout or stderr):
        raise http.bad_request("Bad parameters: you must choose at least one stream")

    def opening(engine: Any) -> tuple[Any, LogCursor, list[dict[str, str]]]:
        containers = engine.containers
        record = containers.get(typed)
        if ((record.host_config.get("LogConfig") or {}).get("Type") or "json-file") == "none":
            raise DockyardError("configured logging driver does not support reading")
        cursor = LogCursor(containers.log_path(record.id))
        return record, cursor, cursor.read_all()

    record, cursor, records = await http.call(request, opening)
    try:
        return await _stream_logs(request, record, cursor, records, follow=follow, stdout=stdout, stderr=stderr,
                                  timestamps=timestamps, since=since, until=until, tail=tail)
    finally:
        cursor.close()


async def _stream_logs(request: web.Request, record: Any, cursor: LogCursor, records: list[dict[str, str]], *,
                       follow: bool, stdout: bool, stderr: bool, timestamps: bool, since: float | None,
                       until: float | None, tail: int | None) -> web.StreamResponse:
    tty = bool(record.container_config.get("Tty"))
    response = web.StreamResponse(headers={"Content-Type": stream_type(request, tty)})
    await response.prepare(request)

    async def send(batch: list[dict[str, str]]) -> bool:
        out = b"".join(_log_chunk(r, tty, stdout, stderr, timestamps) for r in batch)
        if out:
            try:
                await response.write(out)
            except ConnectionError:
                return False
        return True

    if not await send(_select(records, since, until, tail)):
        return response
    if follow and record.status in ACTIVE and (until is None or until > _now()):
        the_hub = hub(request)
        over = the_hub.wait(record.id, "inactive", _state(record))
        try:
            while True:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                finished = over.done()
                if cursor.changed() or finished:
                    fresh = await http.call(request, lambda engine: cursor.read_new())
                    if not await send(_select(fresh, since, until, None)):
                        break
                if finished or (until is not None and until <= _now()):
                    break
                await asyncio.wait({over}, timeout=LOG_POLL_SECONDS)
        finally:
            if not over.done():
                over.cancel()
    try:
        await response.write_eof()
    except ConnectionError:
        pass
    return response


def _now() -> float:
    import time

    return time.time()


# ---------------------------------------------------------------- resize

def _size(request: web.Request) -> tuple[int, int]:
    height = http.query_int(request, "h", 0) or 0
    width = http.query_int(request, "w", 0) or 0
    if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
        raise http.bad_request(f"invalid terminal size {height}x{width}")
    return height, width


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.StreamResponse:
    typed = request.match_info["id"]
    height, width = _size(request)
    record = await http.call(request, lambda engine: engine.containers.get(typed))
    if record.status not in ("running", "paused"):
        raise ConflictError(f"Container {record.id} is not running")
    path = await http.call(request, lambda engine: engine.containers.socket_path(record.id))
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except OSError:
        raise ConflictError(f"Container {record.id} is not running") from None
    try:
        writer.write(b"{}\n" + frames.pack(frames.CONTROL, json.dumps({"resize": [height, width]}).encode()))
        await writer.drain()
    except OSError:
        pass
    finally:
        shutdown(writer.transport)
    return web.Response(status=200)
