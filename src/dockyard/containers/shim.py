"""The per-container monitor (our conmon): one small process per container.

Started detached (own session) by the CLI with ``python -S``; it is the container's
subreaper, so the container's init becomes its child when the runtime's ``create``
exits, and its exit is learnt through wait() the moment it happens (this machine's init
reaps orphans late, so polling PIDs would lie). It:

- drives the runtime's create/start/kill/delete through the runtime interface
  (``dockyard.runtime.adapter``), whatever the runtime,
- holds the container's stdio (pipes, or the pty master with ``-t``) and writes the
  json-file log,
- serves attach clients over a unix socket (``frames`` protocol), delivers signals,
- records start, exit code, finish time and OOM in the state DB,
- applies the restart policy, and does ``--rm`` removal,
- runs the container's health check, if it has one, in a monitor process it forks per run
  (``containers/health.py``; nothing is loaded or forked for a container without one).

Reports to the CLI on the ready pipe: ``C<pid>`` created, ``S`` started, ``E<code> <message>``.
Imports: the standard library's cheap parts and the runtime's modules; sqlite3 only in the
forked children that write the state DB.

A shim never leaves a running container unsupervised: a request it cannot serve drops
that client and nothing else, and should the shim itself fail, it kills the container
before it goes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time

from dockyard import events
from dockyard.containers import frames
from dockyard.containers.logs import LogWriter
from dockyard.proc import starttime_of
from dockyard.runtime import RUNTIMES, adapter
from dockyard.runtime.cgroupfs import CgroupPaths
from dockyard.runtime.exitcodes import runtime_exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NAME = 15
DRAIN_AFTER_EXIT = 2.0       # seconds to wait for the last output after the init died
ATTACH_FIRST_TIMEOUT = 30.0
MAX_HELLO = 64 * 1024        # a client's first line; anything longer is not one of ours


class LaunchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.hello = b""
        self.wants: "dict[str, Any] | None" = None
        self.reader = frames.Reader()


class Shim:
    def __init__(self, cfg: "dict[str, Any]", ready_fd: int) -> None:
        self.cfg = cfg
        self.id: str = cfg["id"]
        self.ready_fd = ready_fd
        self.sel = selectors.DefaultSelector()
        self.clients: "dict[socket.socket, Client]" = {}
        self.outputs: "dict[int, str]" = {}       # fd -> "stdout" | "stderr"
        self.stdin_fd = -1
        self.pid = 0
        self.exit_status: "int | None" = None
        self.terminating = False
        self.last_exit: "dict[str, Any] | None" = None
        self._sql_pending: "list[int]" = []
        self._conn = None
        self._log_failed = False
        self.rt = adapter.open_runtime(cfg["runtime"], cfg["runtime_root"])
        self.log = LogWriter(cfg["log_path"], int(cfg.get("log_max_size") or 0), int(cfg.get("log_max_files") or 1))

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        from dockyard import linux

        linux.prctl(PR_SET_CHILD_SUBREAPER, 1)
        # What ps and top show for it (a forked shim would show the CLI's name).
        name = linux.ctypes.create_string_buffer(b"dockyard-shim")
        linux.prctl(PR_SET_NAME, linux.ctypes.addressof(name))
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGUSR1, lambda *_: None)   # "look at the DB again" (stop while restarting)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        path = self.cfg["socket"]
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.reserved = [s for s in map(_reserve, (self.cfg.get("network") or {}).get("reserve") or []) if s]

    def _on_term(self, *_: "Any") -> None:
        self.terminating = True
        if self.pid and self.exit_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def db(self, method: str, *args: "Any", fetch: bool = False, **kwargs: "Any") -> "Any":
        """Call a ``ContainerStore`` method in a forked child, in order: the long-lived shim
        never loads sqlite3 (2 MiB of its RSS). Writes return at once; ``fetch`` waits for
        the method's (JSON) result."""
        self.wait_sql()
        if self.exit_status is not None or self._conn is not None:
            # The container is gone and the shim soon: no RSS left to save, so no fork.
            if self._conn is None:
                self._conn = _store(self.cfg["root"])
            return getattr(self._conn, method)(*args, **kwargs)
        r, w = os.pipe2(os.O_CLOEXEC) if fetch else (-1, -1)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                result = getattr(_store(self.cfg["root"]), method)(*args, **kwargs)
                if fetch:
                    os.write(w, json.dumps(result).encode())
            except BaseException:  # noqa: BLE001 - the child must never return
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        if not fetch:
            self._sql_pending.append(pid)
            return None
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        self._waitpid(pid)
        return json.loads(data) if data else None

    def wait_sql(self) -> None:
        while self._sql_pending:
            self._waitpid(self._sql_pending.pop(0))

    def _waitpid(self, pid: int) -> None:
        while True:
            try:
                os.waitpid(pid, 0)
                return
            except ChildProcessError:
                return
            except InterruptedError:
                continue

    def update(self, **columns: "Any") -> None:
        self.db("update", self.id, **columns)

    def event(self, action: str, **extra: str) -> None:
        """A container event in the engine's log (Docker's attributes: labels, image, name)."""
        attrs = {**(self.cfg.get("event_attrs") or {}), **extra}
        try:  # renamed while it runs (the manager leaves the new name beside the socket)
            with open(os.path.join(os.path.dirname(self.cfg["socket"]), "name")) as f:
                attrs["name"] = f.read()
        except OSError:
            pass
        events.record(self.cfg["root"], "container", action, self.id, attrs)

    def start_events(self) -> None:
        """Docker's order: network connect, volume mount, container start."""
        self.prestart_events()
        self.event("start")

    def prestart_events(self) -> None:
        """Network connect and volume mount, once per start: also before a start that fails
        (Docker says them before it runs the runtime's create)."""
        self.network_events("connect")
        if not self._mounted:
            for m in self.cfg.get("event_volumes") or ():
                events.record(self.cfg["root"], "volume", "mount", m["name"],
                              {k: v for k, v in m.items() if k != "name"})
        self._mounted = True

    _mounted = False
    _connected = False

    def network_events(self, action: str) -> None:
        """``network connect`` (before each start) or ``disconnect`` (after each end, a restart's
        too) of every network the container is on (host and none included), each once."""
        if self._connected == (action == "connect"):
            return
        self._connected = action == "connect"
        for net_id, name, driver in (self.cfg.get("network") or {}).get("events") or ():
            events.record(self.cfg["root"], "network", action, net_id, {"container": self.id, "name": name,
                                                                         "type": driver})

    def unmount_events(self) -> None:
        """Once per start, after the network's teardown (Docker's order)."""
        if not self._mounted:
            return
        self._mounted = False
        for m in self.cfg.get("event_volumes") or ():
            events.record(self.cfg["root"], "volume", "unmount", m["name"], {"container": self.id, "driver": m["driver"]})

    def report(self, text: str) -> None:
        if self.ready_fd >= 0:
            try:
                os.write(self.ready_fd, text.encode() + b"\n")
            except OSError:
                pass

    def close_ready(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1

    # ------------------------------------------------------------------ runtime

    def _delete_runtime_state(self) -> None:
        try:
            self.rt.delete(self.id, force=True)
        except adapter.OCIRuntimeError:
            pass  # best effort: nothing of the runtime's may be left to delete

    def _kill(self, sig: int) -> None:
        """Deliver ``sig`` to the container through its runtime, if it still runs."""
        if not self.pid or self.exit_status is not None:
            return
        try:
            self.rt.kill(self.id, sig)
        except adapter.OCIRuntimeError as e:
            _note(f"kill {sig}: {e}")   # it exited meanwhile, most likely

    def launch(self, attach_first: bool) -> int:
        """Create and start the container with fresh stdio; its PID. Raises LaunchError."""
        cfg = self.cfg
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        mine: "list[int]" = []   # container-side ends, closed once the runtime has passed them on
        console = None
        console_path = None
        if cfg.get("terminal"):
            console_path = os.path.join(os.path.dirname(cfg["socket"]), "console.sock")
            try:
                os.unlink(console_path)
            except FileNotFoundError:
                pass
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(console_path)
            console.listen(1)
            stdio = (devnull, devnull, devnull)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            in_fd = devnull
            if cfg.get("open_stdin"):
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                self.stdin_fd = in_w
                in_fd = in_r
                mine.append(in_r)
            mine += [out_w, err_w]
            stdio = (in_fd, out_w, err_w)
            self._add_output(out_r, "stdout")
            self._add_output(err_r, "stderr")
        try:
            os.unlink(cfg["pid_file"])
        except FileNotFoundError:
            pass
        failure = None
        try:
            self.rt.create(self.id, cfg["bundle"], stdio=stdio, pid_file=cfg["pid_file"], console_socket=console_path)
        except adapter.OCIRuntimeError as e:
            failure = e
        for fd in mine:
            os.close(fd)
        os.close(devnull)
        if failure is not None:
            if console is not None:
                console.close()
            self._drain_outputs_now()
            # A runtime run as a command wrote its error where the container's stderr goes.
            message = _last_line(failure.detail) or _last_line(self._early_stderr) or str(failure)
            self._delete_runtime_state()
            raise LaunchError(failure.exit_code if failure.detail else runtime_exit_code(failure.status, message),
                              message)
        with open(cfg["pid_file"]) as f:
            self.pid = int(f.read().strip())
        if console is not None:
            conn, _ = console.accept()
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            conn.close()
            console.close()
            master = fds[0]
            os.set_blocking(master, False)
            self._add_output(master, "stdout")
            self.stdin_fd = master
            size = cfg.get("tty_size")
            if size:
                _resize(master, *size)
        self.report(f"C{self.pid}")
        if attach_first:
            self._accept_first()
        try:
            self.rt.start(self.id)
        except adapter.OCIRuntimeError as e:
            self._delete_runtime_state()
            raise LaunchError(e.exit_code, _last_line(e.detail) or str(e)) from None
        return self.pid

    _early_stderr = ""

    def _drain_outputs_now(self) -> None:
        for fd, stream in list(self.outputs.items()):
            try:
                os.set_blocking(fd, False)
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if stream == "stderr":
                self._early_stderr = data.decode(errors="replace")
            self._remove_output(fd)

    def _accept_first(self) -> None:
        """Wait for the first attach client so that it sees the container's first byte."""
        deadline = time.monotonic() + ATTACH_FIRST_TIMEOUT
        while time.monotonic() < deadline:
            for key, _ in self.sel.select(0.1):
                if key.data == "listen":
                    self._accept()
                elif isinstance(key.data, Client):
                    self._client_readable(key.data)
                elif key.data == "wake":
                    _drain(self.wake_r)
            if any(c.wants is not None for c in self.clients.values()):
                return

    # ------------------------------------------------------------------ stdio and clients

    def _add_output(self, fd: int, stream: str) -> None:
        os.set_blocking(fd, False)
        self.outputs[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, "output")

    def _remove_output(self, fd: int) -> None:
        if fd in self.outputs:
            del self.outputs[fd]
            self.sel.unregister(fd)
            if fd == self.stdin_fd:
                self.stdin_fd = -1
            os.close(fd)

    def _output_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:   # EIO: the pty's other side is gone
            data = b""
        if not data:
            self._remove_output(fd)
            return
        stream = self.outputs[fd]
        try:
            self.log.write(stream, data)
        except OSError as e:  # a full disk: attached clients still get the output
            if not self._log_failed:
                self._log_failed = True
                _note(f"writing the log failed, output is not logged until it works again: {e}")
        frame = frames.pack(frames.STDOUT if stream == "stdout" else frames.STDERR, data)
        for client in list(self.clients.values()):
            if client.wants and client.wants.get(stream):
                self._send(client, frame)

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError as e:  # BlockingIOError: another wake took it; EMFILE: try again later
            if not isinstance(e, BlockingIOError):
                _note(f"accept: {e}")
            return
        sock.setblocking(False)
        client = Client(sock)
        self.clients[sock] = client
        self.sel.register(sock, selectors.EVENT_READ, client)
        if self.last_exit is not None and self.pid == 0:
            self._send(client, frames.pack(frames.EXIT, json.dumps(self.last_exit).encode()))

    def _send(self, client: Client, data: bytes) -> None:
        try:
            client.sock.setblocking(True)
            client.sock.settimeout(10)
            client.sock.sendall(data)
            client.sock.setblocking(False)
        except OSError:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        if client.sock in self.clients:
            del self.clients[client.sock]
            self.sel.unregister(client.sock)
            client.sock.close()

    def _client_readable(self, client: Client) -> None:
        """Serve what a client sent. Whatever it is, the worst it can do is get itself
        dropped: the container and every other client carry on."""
        try:
            self._serve_client(client)
        except Exception as e:  # noqa: BLE001 - a bad request must not take the shim down
            _note(f"dropped a client after a bad request: {type(e).__name__}: {e}")
            self._drop(client)

    def _serve_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        if client.wants is None:
            client.hello += data
            if b"\n" not in client.hello:
                if len(client.hello) > MAX_HELLO:
                    raise ValueError(f"no hello line in {len(client.hello)} bytes")
                return
            line, _, data = client.hello.partition(b"\n")
            wants = json.loads(line)
            if not isinstance(wants, dict):
                raise ValueError(f"the hello is a {type(wants).__name__}, not an object")
            client.wants = wants
            self._signal_request(wants.get("signal"))
        for stream, payload in client.reader.feed(data):
            if stream == frames.STDIN:
                self._write_stdin(payload)
            elif stream == frames.CONTROL:
                message = json.loads(payload)
                if not isinstance(message, dict):
                    raise ValueError(f"a control message is a {type(message).__name__}, not an object")
                self._control(message)

    def _signal_request(self, value: "Any") -> None:
        """A signal a client asked for: only a number a process can be sent gets through."""
        if value is None or value == 0:
            return
        from dockyard.runtime import signals

        if type(value) is not int or not signals.valid(value):
            raise ValueError(f"invalid signal {value!r}")
        self._kill(value)

    def _write_stdin(self, payload: bytes) -> None:
        if self.stdin_fd < 0:
            return
        if not payload:  # EOF from the client: the container sees EOF too (not on a tty)
            if self.stdin_fd not in self.outputs:
                os.close(self.stdin_fd)
                self.stdin_fd = -1
            return
        try:
            os.set_blocking(self.stdin_fd, True)
            os.write(self.stdin_fd, payload)
            if self.stdin_fd in self.outputs:
                os.set_blocking(self.stdin_fd, False)
        except OSError:
            pass

    def _offer_removal(self) -> bool:
        """Send the exit frame saying the record is the client's to delete; True once a client
        confirms it did (within 2 s, or until every client has gone)."""
        if not self.clients:
            return False
        # No wait for our own pending writes (the "running" update, in a child that has yet
        # to load sqlite3): once the client deletes the row, a late UPDATE matches nothing.
        offer = frames.pack(frames.EXIT, json.dumps({**(self.last_exit or {}), "RemoveRecord": True}).encode())
        for client in list(self.clients.values()):
            self._send(client, offer)
        self._removal_confirmed = False
        deadline = time.monotonic() + 2.0
        while self.clients and not self._removal_confirmed and time.monotonic() < deadline:
            for key, _ in self.sel.select(max(deadline - time.monotonic(), 0)):
                if isinstance(key.data, Client):
                    self._client_readable(key.data)
                elif key.data == "wake":
                    _drain(self.wake_r)
                    self._reap()
        return self._removal_confirmed

    _removal_confirmed = False

    def _control(self, message: "dict[str, Any]") -> None:
        if message.get("removed") is True:
            self._removal_confirmed = True
        if "resize" in message:
            size = message["resize"]
            if (not isinstance(size, list) or len(size) != 2
                    or not all(type(n) is int and 0 <= n <= 0xFFFF for n in size)):
                raise ValueError(f"invalid terminal size {size!r}")
            if self.stdin_fd in self.outputs:
                _resize(self.stdin_fd, *size)
        self._signal_request(message.get("signal"))

    # ------------------------------------------------------------------ the loop

    def serve_until_exit(self) -> int:
        """Pump stdio and clients until the init exited and its output is drained."""
        drain_deadline = None
        while True:
            if self.exit_status is not None:
                if not self.outputs:
                    break
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT
                elif time.monotonic() > drain_deadline:
                    for fd in list(self.outputs):
                        self._remove_output(fd)
                    break
            timeout = 0.2 if self.exit_status is not None else None
            for key, _ in self.sel.select(timeout):
                if key.data == "wake":
                    _drain(self.wake_r)
                    self._reap()
                elif key.data == "listen":
                    self._accept()
                elif key.data == "output":
                    if key.fd in self.outputs:
                        self._output_readable(key.fd)
                elif isinstance(key.data, Client):
                    self._client_readable(key.data)
            self._reap()
        self.log.flush()
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1
        assert self.exit_status is not None
        return self.exit_status

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self._sql_pending:
                self._sql_pending.remove(pid)
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.exit_status = 128 - code if code < 0 else code

    # ------------------------------------------------------------------ life

    def run(self) -> None:
        self.setup()
        first = True
        delay = 0.1
        while True:
            self.exit_status = None
            try:
                self.launch(attach_first=first and bool(self.cfg.get("attach_first")))
            except LaunchError as e:
                # Docker: connect and mount, then disconnect and unmount (no start), all before
                # `run --rm`, told of the failure below, destroys the container
                self.prestart_events()
                self.network_events("disconnect")
                self.unmount_events()
                self.update(status="exited", pid=0, exit_code=e.code, error=e.message, finished_at=time.time())
                self.report(f"E{e.code} {e.message}")
                self.close_ready()
                self.last_exit = {"StatusCode": e.code, "Error": e.message}
                self._notify_exit()
                self.finish(remove=bool(self.cfg.get("rm")) and not first)
                return
            started = time.time()
            self.update(status="running", pid=self.pid, started_at=started, error="", exit_code=0,
                        shim_pid=os.getpid(), shim_start=starttime_of(os.getpid()))
            self.start_events()
            monitor = self._start_health(started) if self.cfg.get("health") else None
            if first:
                self.report(f"S{started}")
                self.close_ready()
            first = False
            code = self.serve_until_exit()
            if monitor is not None:
                monitor.stop()
            oom = CgroupPaths(self.cfg["cgroup"]).oom_killed() if self.cfg.get("cgroup") else False
            if oom:
                self.event("oom")
            self.event("die", exitCode=str(code))
            # --rm: the runtime's state goes after run --rm has been told (finish), here
            # and then; otherwise begun now, overlapping the rest of the clean-up.
            deleting = None if self.cfg.get("rm") else self.rt.start_delete(self.id)
            self.pid = 0
            restart, count = self._should_restart(code)
            if restart and deleting is not None:
                deleting()
                deleting = None
            if restart:
                self.network_events("disconnect")   # Docker: die, disconnect, unmount; connect again at the start
                self.unmount_events()
                self.update(status="restarting", exit_code=code, finished_at=time.time(), oom_killed=int(oom),
                            restart_count=count + 1)
            elif not self.cfg.get("rm"):  # --rm deletes the record in finish()
                self.update(status="exited", exit_code=code, finished_at=time.time(), oom_killed=int(oom))
            self.last_exit = {"StatusCode": code, "Error": ""}
            if not restart:
                self.finish(remove=bool(self.cfg.get("rm")), deleting=deleting)
                return
            self._notify_exit()
            delay = 0.1 if time.time() - started >= 10 else min(delay * 2, 60.0) if count else 0.1
            if not self._sleep_unless_stopped(delay):
                self.update(status="exited")
                self.finish(remove=bool(self.cfg.get("rm")))
                return

    def _start_health(self, started: float) -> "Any":
        """The health check's monitor (containers/health.py) for this run; None if it failed
        to start (the container runs on without)."""
        from dockyard.containers import health

        try:
            return health.Monitor.start(self.cfg, self.rt, started)
        except OSError as e:
            _note(f"health check monitor not started: {e}")
            return None

    def _should_restart(self, code: int) -> "tuple[bool, int]":
        """(whether the restart policy restarts it now, the restarts so far)."""
        if self.terminating:
            return False, 0
        policy = _updated_policy(self.cfg) or self.cfg.get("restart") or {}   # `dockyard update --restart`
        name = policy.get("Name") or "no"
        if name == "no":
            return False, 0
        row = self.db("restart_state", self.id, fetch=True)
        if row is None or row[0]:
            return False, 0
        if name in ("always", "unless-stopped"):
            return True, row[1]
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return code != 0 and (limit == 0 or row[1] < limit), row[1]
        return False, row[1]

    def _sleep_unless_stopped(self, delay: float) -> bool:
        """Back off before a restart; False if someone stopped the container meanwhile."""
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            row = self.db("restart_state", self.id, fetch=True)
            if row is None or row[0] or self.terminating:
                return False
            if remaining <= 0:
                return True
            for key, _ in self.sel.select(min(remaining, 0.2)):
                if key.data == "wake":
                    _drain(self.wake_r)
                elif key.data == "listen":
                    self._accept()
                elif isinstance(key.data, Client):
                    self._client_readable(key.data)
            self._reap()

    def _notify_exit(self) -> None:
        self.wait_sql()  # whoever hears of the exit must find it recorded
        frame = frames.pack(frames.EXIT, json.dumps(self.last_exit).encode())
        for client in list(self.clients.values()):
            self._send(client, frame)
            self._drop(client)

    def _teardown_network(self) -> None:
        """Unplug the container's network (veths, namespace, published ports): the shim is
        about to go, so loading the network code here costs no lasting memory."""
        self.network_events("disconnect")
        if self.cfg["network"].get("events_only"):   # host or none: nothing to unplug
            return
        try:
            from dockyard.network import attach

            info = {k: v for k, v in self.cfg["network"].items() if k != "events"}   # said just above
            attach.teardown(self.cfg["root"], self.cfg["runroot"], self.id, info)
        except Exception as e:  # noqa: BLE001 - the next command reclaims what is left
            _note(f"network teardown: {e}")

    def finish(self, remove: bool, deleting: "Callable[[], None] | None" = None) -> None:
        """The container is done for good: unmount, maybe remove, tell clients, go.
        ``deleting``: waits for the runtime's delete begun earlier (``start_delete``),
        called before anyone hears of the end (with ``remove``, before the shim goes)."""
        try:
            self.log.close()
        except OSError:
            pass
        _unmount(os.path.join(self.cfg["container_dir"], "rootfs"))
        if self.cfg.get("network"):
            self._teardown_network()
        self.unmount_events()
        if remove:
            _rmtree(self.cfg["container_dir"])
        elif deleting is not None:
            deleting()  # a later `start` must find the runtime's state gone
        if remove:
            volumes = self.cfg.get("anonymous_volumes") or []
            self.event("destroy")
            # An attached `run --rm` deletes the record itself (its DB is open, ours is not):
            # offer it, and do it here only if no client took it.
            if volumes or not self._offer_removal():
                if volumes:
                    from dockyard.containers import cleanup

                    cleanup.remove_container_files(self.cfg["root"], self.id, self.cfg["container_dir"], volumes)
                self.db("delete", self.id)
            # This ID is never started again: the runtime's state and cgroup go now, after
            # `run --rm` was told and went on.
            if deleting is not None:
                deleting()
            else:
                self._delete_runtime_state()
        self._notify_exit()
        try:
            self.listener.close()
            os.unlink(self.cfg["socket"])
        except OSError:
            pass
        _rmtree(os.path.dirname(self.cfg["socket"]))


# ------------------------------------------------------------------ helpers

def _store(root: str) -> "Any":
    """The container records of the state DB under ``root`` (opened here: the shim's
    children, or the shim itself once its container is gone)."""
    from dockyard.containers.store import ContainerStore
    from dockyard.store import db

    return ContainerStore(db.connect(root))


def _reserve(port: "list[Any]") -> "socket.socket | None":
    """Hold a published host port ([proto, host ip, port]) bound for the container's life."""
    proto, host_ip, number = port
    if proto not in ("tcp", "udp"):
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip or "0.0.0.0", int(number)))
        if proto == "tcp":
            sock.listen(1)   # a listening socket keeps the port even from SO_REUSEADDR binders
        return sock
    except OSError as e:
        sock.close()
        _note(f"cannot hold published port {proto} {host_ip or '0.0.0.0'}:{number}: {e}")
        return None


def _note(text: str) -> None:
    """A line in shim.log (the shim's stderr) for whoever looks into a failure."""
    try:
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _rmtree(path: str) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` without importing shutil (~7 ms here):
    symlinks are removed, never followed."""
    try:
        walk = list(os.walk(path, topdown=False))
    except OSError:
        return
    for top, dirs, files in walk:
        for name in files:
            try:
                os.unlink(os.path.join(top, name))
            except OSError:
                pass
        for name in dirs:
            full = os.path.join(top, name)
            try:
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    os.rmdir(full)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass

def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    if 'msg="' in line:  # runc's logrus format
        line = line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    name, sep, rest = line.partition(": ")
    if sep and name in RUNTIMES:  # "crun: ...": the runtime naming itself
        line = rest
    return line


def _resize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))
    except OSError:
        pass


def _updated_policy(cfg: "dict[str, Any]") -> "dict[str, Any] | None":
    """The restart policy ``dockyard update --restart`` left beside the attach socket, if any."""
    try:
        with open(os.path.join(os.path.dirname(cfg["socket"]), "restart.json")) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def _unmount(path: str) -> None:
    from dockyard import linux

    for flags in (0, linux.MNT_DETACH):
        try:
            linux.umount(path, flags)
            return
        except OSError as e:
            if e.errno in (22, 2):  # EINVAL: not a mount point; ENOENT
                return


def main() -> None:
    """``shim READY_FD``: orders (the config JSON) come on stdin; EOF without them means
    the container was never created, and the shim leaves quietly."""
    ready_fd = int(sys.argv[1])
    data = b""
    if sys.argv[2:3] == ["--spare"]:
        # forked ahead (spawn.fork_spares): idle until handed out, which its first byte says
        data = sys.stdin.buffer.read(1)
        if not data:
            return
    # Load what a launch needs and let the runtime warm up (for pyrunc: the cgroup lock,
    # see warmup.py) while the CLI is still preparing the container, not after the orders.
    warmed = adapter.preload()
    try:
        data += sys.stdin.buffer.read()
    finally:
        warmed()  # the orders are here: not a moment's wait for the warm-up
    if not data.strip():
        return
    cfg = json.loads(data)
    log = os.open(os.path.join(os.path.dirname(cfg["socket"]), "shim.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    shim = None
    try:
        shim = Shim(cfg, ready_fd)
        shim.run()
    except BaseException as e:  # noqa: BLE001 - leave a trace for `inspect`, then go
        import traceback

        traceback.print_exc()
        _give_up(shim, cfg, ready_fd, e)
        raise SystemExit(1)


def _give_up(shim: "Shim | None", cfg: "dict[str, Any]", ready_fd: int, error: BaseException) -> None:
    """The shim cannot go on: no container may run on unsupervised, so it is killed, then
    recorded as exited with what went wrong."""
    message = f"shim failed: {type(error).__name__}: {error}"
    if shim is not None and shim.pid and shim.exit_status is None:
        try:
            os.kill(shim.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        message += "; the container was killed"
    if shim is not None:
        shim._delete_runtime_state()   # kills whatever else is left in its cgroup
    if cfg.get("network"):
        try:
            from dockyard.network import attach

            attach.teardown(cfg["root"], cfg["runroot"], cfg["id"], cfg["network"])
        except Exception:  # noqa: BLE001 - the next command reclaims it
            pass
    if shim is not None:
        shim.report(f"E125 {message}")   # if the CLI still waits for the launch's report
    else:
        try:
            os.write(ready_fd, f"E125 {message}\n".encode())
        except OSError:
            pass
    try:
        _store(cfg["root"]).update(cfg["id"], status="exited", pid=0, exit_code=137 if "killed" in message else 125,
                                   error=message, finished_at=time.time())
    except Exception:  # noqa: BLE001 - the trace is in shim.log
        pass
    if shim is not None:
        shim.last_exit = {"StatusCode": 137, "Error": message}
        try:
            shim._notify_exit()
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    main()
