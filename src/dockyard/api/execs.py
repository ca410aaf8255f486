"""Exec routes: create, start (hijacked like attach, or detached), resize, inspect.

Exec records live in the service's memory, as dockerd's do: per container, dropped once the
container is gone. The process runs through the engine's exec (so exec_start and exec_die are
recorded as for the CLI; exec_create when the API creates it) in a small helper process, not
the worker pool: an exec lasts as long as its process, a shell for hours, and a runtime forked
from the service would hold every descriptor it has open (see ``ExecRun.begin``). Its stdio
are pipes pumped into multiplexed frames, or, with a TTY, a terminal of the container's own
whose master the runtime hands to a console socket (as the CLI's ``exec -t`` does).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dockyard.api import http
from dockyard.api.hijack import Hijacked, HijackedResponse, hijack, stream_type
from dockyard.containers import frames
from dockyard.errors import ConflictError, DockyardError, NotFoundError

routes = http.Routes()

DRAIN_AFTER_EXIT = 2.0      # seconds to wait for the last output once the process is gone
PRUNE_EVERY = 10.0          # seconds between looks for the records of removed containers
MAX_DONE_PER_CONTAINER = 256


@dataclass
class ExecRecord:
    id: str
    container_id: str
    command: list[str]
    env: list[str]
    user: str
    workdir: str
    privileged: bool
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    detach_keys: str
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    master: int = -1                          # the terminal's master while it runs (-t)
    size: tuple[int, int] | None = None       # a resize that came before the master
    created: float = field(default_factory=time.time)

    def inspect(self) -> dict[str, Any]:
        return {
            "CanRemove": False, "ContainerID": self.container_id, "DetachKeys": self.detach_keys,
            "ExitCode": self.exit_code, "ID": self.id, "OpenStderr": self.stderr, "OpenStdin": self.stdin,
            "OpenStdout": self.stdout,
            "ProcessConfig": {"arguments": self.command[1:], "entrypoint": self.command[0] if self.command else "",
                              "privileged": self.privileged, "tty": self.tty, "user": self.user},
            "Running": self.running, "Pid": self.pid,
        }


class Execs:
    """The service's exec records."""

    def __init__(self) -> None:
        self.by_id: dict[str, ExecRecord] = {}
        self.last_prune = time.monotonic()

    def get(self, exec_id: str) -> ExecRecord:
        record = self.by_id.get(exec_id)
        if record is None:
            raise NotFoundError(f"No such exec instance: {exec_id}")
        return record

    def add(self, record: ExecRecord) -> None:
        self.by_id[record.id] = record
        done = [r for r in self.by_id.values() if r.container_id == record.container_id and r.exit_code is not None]
        if len(done) > MAX_DONE_PER_CONTAINER:   # bounded: a client that execs forever
            for old in sorted(done, key=lambda r: r.created)[:len(done) - MAX_DONE_PER_CONTAINER]:
                del self.by_id[old.id]

    async def prune(self, request: web.Request) -> None:
        """Drop the records of containers that were removed (dockerd drops them with it)."""
        if time.monotonic() - self.last_prune < PRUNE_EVERY or not self.by_id:
            return
        self.last_prune = time.monotonic()
        cids = sorted({r.container_id for r in self.by_id.values()})
        gone = await http.call(request, lambda engine: [c for c in cids if engine.containers.store.get(c) is None])
        for exec_id in [i for i, r in self.by_id.items() if r.container_id in gone and not r.running]:
            del self.by_id[exec_id]


EXECS_KEY: web.AppKey[Execs] = web.AppKey("execs", Execs)


def setup(app: web.Application) -> None:
    app[EXECS_KEY] = Execs()


def execs(request: web.Request) -> Execs:
    return request.app[EXECS_KEY]


def _running(engine: Any, typed: str) -> Any:
    """The container, which must be running (dockerd's 409s otherwise)."""
    record = engine.containers.get(typed)
    if record.status == "paused":
        raise ConflictError(f"Container {record.id} is paused, unpause the container before exec")
    if record.status != "running":
        raise ConflictError(f"Container {record.id} is not running")
    return record


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise http.bad_request(f"{key} must be a list of strings")
    return value


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    typed = request.match_info["id"]
    body = await http.json_body(request)
    if not isinstance(body, dict):
        raise http.bad_request("the body must be a JSON object")
    command = _strings(body, "Cmd")
    if not command:
        raise http.bad_request("No exec command specified")
    keys = body.get("DetachKeys") or ""
    if keys:
        from dockyard.containers.attach import parse_detach_keys

        try:
            parse_detach_keys(keys)
        except DockyardError as e:
            raise http.bad_request(e.message) from None
    the_execs = execs(request)
    await the_execs.prune(request)
    exec_id = os.urandom(32).hex()

    def created(engine: Any) -> Any:
        from dockyard.containers.execute import exec_action

        container = _running(engine, typed)
        engine.containers.event("exec_create: " + exec_action(command), container, execID=exec_id)
        return container

    container = await http.call(request, created)
    the_execs.add(ExecRecord(
        id=exec_id, container_id=container.id, command=command, env=_strings(body, "Env"),
        user=body.get("User") or "", workdir=body.get("WorkingDir") or "", privileged=bool(body.get("Privileged")),
        tty=bool(body.get("Tty")), stdin=bool(body.get("AttachStdin")), stdout=bool(body.get("AttachStdout")),
        stderr=bool(body.get("AttachStderr")), detach_keys=keys))
    return http.json_response({"Id": exec_id}, status=201)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    return http.json_response(execs(request).get(request.match_info["id"]).inspect())


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    record = execs(request).get(request.match_info["id"])
    height = http.query_int(request, "h", 0) or 0
    width = http.query_int(request, "w", 0) or 0
    if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
        raise http.bad_request(f"invalid terminal size {height}x{width}")
    record.size = (height, width)
    if record.master >= 0:
        _set_size(record.master, height, width)
    return web.Response(status=200)


def _set_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    record = execs(request).get(request.match_info["id"])
    body = await http.json_body(request, required=False)
    if not isinstance(body, dict):
        raise http.bad_request("the body must be a JSON object")
    if record.running:
        raise ConflictError(f"Error: Exec command {record.id} is already running")
    if record.started:
        raise ConflictError(f"Error: Exec command {record.id} has already run")
    record.started = record.running = True   # before the await: a second start is refused
    try:
        await http.call(request, lambda engine: _running(engine, record.container_id))
    except BaseException:
        record.started = record.running = False
        raise
    tty = bool(body.get("Tty", record.tty))
    record.tty = tty
    if body.get("Detach"):
        run = ExecRun(request.app, record, None)
        await run.begin()
        asyncio.get_running_loop().create_task(run.finish_detached())
        return web.Response(status=200)
    conn = hijack(request, stream_type(request, tty))
    run = ExecRun(request.app, record, conn)
    try:
        await run.attached()
    except (OSError, asyncio.CancelledError):   # the client gone, or no console socket
        pass
    finally:
        conn.close()
    return HijackedResponse()


# The helper: the engine's exec (events, user, workdir, the runtime) on fds 0-2, its outcome
# as JSON on the status fd. A string run with -c: no module of its own, ~30 ms to start.
_RUNNER = """
import json, os, sys
from dockyard import config
from dockyard.engine import Engine
from dockyard.errors import DockyardError
orders = json.loads(sys.argv[1])
status = os.fdopen(int(os.environ.pop("DOCKYARD_STATUS_FD")), "w")
engine = Engine(config.load(orders["root"], orders["runroot"]))
try:
    code = engine.containers.exec(orders["container"], orders["command"], env=orders["env"], user=orders["user"],
                                  workdir=orders["workdir"], stdin=0, stdout=1, stderr=2,
                                  console_socket=orders["console"], exec_id=orders["id"])
    status.write(json.dumps({"code": code}))
except DockyardError as e:   # dockerd's 126 for an exec that could not start, whatever the reason
    status.write(json.dumps({"code": 126, "error": e.message}))
finally:
    status.close()
    engine.close()
"""


class ExecRun:
    """One exec's process and the pumping of its stdio."""

    def __init__(self, app: web.Application, record: ExecRecord, conn: Hijacked | None) -> None:
        self.app = app
        self.record = record
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self.ours: list[int] = []           # our ends: stdin's write end, stdout's and stderr's read ends
        self.theirs: list[int] = []         # the process's ends, closed once it is gone
        self.console: socket.socket | None = None
        self.console_path = ""
        self.stdin_w = -1
        self.outputs: dict[int, int] = {}   # read fd -> frames.STDOUT | frames.STDERR

    # ---- the process
    def _stdio(self) -> tuple[int, int, int]:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.theirs.append(devnull)
        record = self.record
        if self.conn is None or record.tty:
            return devnull, devnull, devnull
        stdio = [devnull, devnull, devnull]
        if record.stdin:
            r, w = os.pipe2(os.O_CLOEXEC)
            stdio[0], self.stdin_w = r, w
            self.theirs.append(r)
            self.ours.append(w)
        for index, stream, wanted in ((1, frames.STDOUT, record.stdout), (2, frames.STDERR, record.stderr)):
            if wanted:
                r, w = os.pipe2(os.O_CLOEXEC)
                stdio[index] = w
                self.theirs.append(w)
                self.ours.append(r)
                os.set_blocking(r, False)
                self.outputs[r] = stream
        return stdio[0], stdio[1], stdio[2]

    async def begin(self) -> None:
        """Start the process: through the engine's exec in a helper process of its own, not a
        thread of ours. A runtime (pyrunc) forks to exec and its forked half waits as long as
        the process runs; forked from the service, it would hold a copy of every descriptor
        the service has open then: other execs' pipes (their processes would never see EOF)
        and clients' sockets. The helper holds only this exec's stdio."""
        import json
        import sys

        record = self.record
        stdio = self._stdio()
        settings = self.app[http.SETTINGS_KEY]
        orders = {"root": settings.root, "runroot": settings.runroot, "container": record.container_id,
                  "command": record.command, "id": record.id, "user": record.user or None,
                  "workdir": record.workdir or None, "console": self.console_path or None,
                  "env": (["TERM=xterm"] if record.tty else []) + record.env}   # dockerd's exec -t environment
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _RUNNER, json.dumps(orders), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                pass_fds=(status_w,), close_fds=True, env={**os.environ, "DOCKYARD_STATUS_FD": str(status_w)})
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        self.loop.create_task(self._reap(process, status_r))

    async def _reap(self, process: Any, status_r: int) -> None:
        import json

        code = 126
        try:
            await process.wait()
            os.set_blocking(status_r, False)
            try:
                data = os.read(status_r, 65536)
            except BlockingIOError:
                data = b""
            report = json.loads(data) if data else {"error": f"exec failed: its helper exited {process.returncode}"}
            code = int(report.get("code", 126))
            self._error = report.get("error") or ""
        except Exception as e:  # noqa: BLE001 - the exec ends in any case
            self._error = f"exec failed: {e}"
        finally:
            os.close(status_r)
            self._done(code)

    _error = ""

    async def open_console(self) -> None:
        """The engine's console socket for this exec's terminal (in the container's shim directory)."""
        from dockyard.containers.execute import console_socket

        workers: http.Workers = self.app[http.WORKERS_KEY]
        record = self.record
        self.console_path, self.console = await workers.run(
            lambda: console_socket(workers.engine().containers, record.container_id, record.id[:12]))
        self.console.setblocking(False)

    def _done(self, code: int) -> None:
        for fd in self.theirs:
            try:
                os.close(fd)
            except OSError:
                pass
        self.theirs = []
        self.record.exit_code = code
        self.record.running = False
        if not self.exited.done():
            self.exited.set_result(code)

    async def finish_detached(self) -> None:
        await self.exited
        self._close_ours()

    def _close_ours(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None
            try:
                os.unlink(self.console_path)
            except OSError:
                pass
        for fd in self.ours:
            try:
                self.loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
            try:
                os.close(fd)
            except OSError:
                pass
        self.ours = []
        if self.record.master >= 0:
            try:
                self.loop.remove_reader(self.record.master)
            except (ValueError, OSError):
                pass
            os.close(self.record.master)
            self.record.master = -1

    # ---- attached
    async def attached(self) -> None:
        assert self.conn is not None
        conn = self.conn
        try:
            try:
                if self.record.tty:
                    await self.open_console()
            except OSError as e:
                self._error = f"exec failed: no console socket for its terminal: {e}"
                self._done(126)
            else:
                await self.begin()
                if self.record.tty:
                    await self._pump_terminal(conn)
                else:
                    await self._pump_pipes(conn)
            if self._error:
                message = (self._error + "\r\n").encode()
                await conn.write(message if self.record.tty else frames.pack(frames.STDOUT, message))
        finally:
            if self.record.master >= 0 and not self.exited.done():
                # detached from a terminal (ctrl-p ctrl-q, or the client went): the process runs
                # on, as in dockerd; what it writes meanwhile is read and dropped
                self.loop.create_task(self._linger([self.record.master]))
            elif self.outputs and not self.exited.done():
                # the client went: stdin ends (EOF), and, as dockerd does, what the process still
                # writes is read and dropped until it ends. Closing our read ends instead killed
                # a `cat` that had not yet started with SIGPIPE (busybox cat's first splice to a
                # pipe without a reader), where dockerd's cat sees EOF and exits 0.
                self._close_stdin()
                self.loop.create_task(self._linger([fd for fd in self.outputs if fd in self.ours]))
            else:
                self._close_ours()   # its thread records its end

    async def _linger(self, fds: "list[int]") -> None:
        """Read and drop what the process writes on ``fds`` until it ends, then close ours."""
        def drop(fd: int) -> None:
            try:
                if os.read(fd, 65536):
                    return
            except BlockingIOError:
                return
            except OSError:
                pass
            self.loop.remove_reader(fd)

        for fd in fds:
            self.loop.remove_reader(fd)
            self.loop.add_reader(fd, drop, fd)
        try:
            await self.exited
        finally:
            self._close_ours()

    async def _pump_pipes(self, conn: Hijacked) -> None:
        output: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        open_outputs = set(self.outputs)

        def readable(fd: int) -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.loop.remove_reader(fd)
                open_outputs.discard(fd)
            output.put_nowait((fd, data))

        for fd in self.outputs:
            self.loop.add_reader(fd, readable, fd)
        feeder = asyncio.ensure_future(self._feed_stdin(conn))
        deadline: float | None = None
        try:
            while True:
                if not open_outputs and self.exited.done() and output.empty():
                    break
                if self.exited.done() and deadline is None:
                    deadline = self.loop.time() + DRAIN_AFTER_EXIT
                timeout = None if deadline is None else max(deadline - self.loop.time(), 0)
                if deadline is not None and timeout == 0 and output.empty():
                    break
                getter = asyncio.ensure_future(output.get())
                waits = {getter, asyncio.ensure_future(conn.lost.wait())}
                if not self.exited.done():
                    waits.add(asyncio.ensure_future(asyncio.shield(self.exited)))
                done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if conn.lost.is_set():
                    return
                if getter in done:
                    fd, data = getter.result()
                    if data:
                        await conn.write(frames.pack(self.outputs[fd], data))
        finally:
            feeder.cancel()

    async def _feed_stdin(self, conn: Hijacked) -> None:
        from dockyard.containers.attach import EscapeScanner, parse_detach_keys

        scanner = EscapeScanner(parse_detach_keys(self.record.detach_keys or None))
        while True:
            data = await conn.read()
            if not data:
                self._close_stdin()
                return
            if self.stdin_w < 0:
                continue
            data, escaped = scanner.feed(data)
            if data:
                await self._write_fd(self.stdin_w, data)
            if escaped:
                conn.close()
                return

    def _close_stdin(self) -> None:
        if self.stdin_w >= 0:
            self.ours.remove(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = -1

    async def _write_fd(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        os.set_blocking(fd, False)
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
            except BlockingIOError:
                await asyncio.sleep(0.01)
            except OSError:
                return

    async def _pump_terminal(self, conn: Hijacked) -> None:
        master = await self._receive_master()
        if master < 0:
            await self.exited
            return
        self.record.master = master
        if self.record.size:
            _set_size(master, *self.record.size)
        os.set_blocking(master, False)
        output: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                return
            except OSError:   # EIO: the last process holding the terminal is gone
                data = b""
            if not data:
                self.loop.remove_reader(master)
            output.put_nowait(data)

        self.loop.add_reader(master, readable)
        feeder = asyncio.ensure_future(self._feed_terminal(conn, master))
        deadline: float | None = None
        try:
            while True:
                if self.exited.done() and deadline is None:
                    deadline = self.loop.time() + DRAIN_AFTER_EXIT
                timeout = None if deadline is None else max(deadline - self.loop.time(), 0)
                if deadline is not None and timeout == 0:
                    break
                getter = asyncio.ensure_future(output.get())
                waits = {getter, asyncio.ensure_future(conn.lost.wait())}
                if not self.exited.done():
                    waits.add(asyncio.ensure_future(asyncio.shield(self.exited)))
                done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if conn.lost.is_set():
                    return
                if getter in done:
                    data = getter.result()
                    if not data:
                        await self.exited
                        return
                    await conn.write(data)
        finally:
            feeder.cancel()

    async def _feed_terminal(self, conn: Hijacked, master: int) -> None:
        from dockyard.containers.attach import EscapeScanner, parse_detach_keys

        scanner = EscapeScanner(parse_detach_keys(self.record.detach_keys or None)) if self.record.stdin else None
        while True:
            data = await conn.read()
            if not data:
                return
            if scanner is None:
                continue
            data, escaped = scanner.feed(data)
            if data:
                await self._write_fd(master, data)
            if escaped:
                conn.close()
                return

    async def _receive_master(self) -> int:
        """The terminal's master from the runtime, through the console socket."""
        assert self.console is not None
        accept = asyncio.ensure_future(self.loop.sock_accept(self.console))
        done, _ = await asyncio.wait({accept, asyncio.ensure_future(asyncio.shield(self.exited))},
                                     return_when=asyncio.FIRST_COMPLETED)
        if accept not in done:
            accept.cancel()
            return -1
        sock, _ = accept.result()
        from dockyard.containers.execute import receive_master

        try:
            sock.setblocking(False)
            for _ in range(500):
                try:
                    return receive_master(sock)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            return -1
        finally:
            sock.close()
