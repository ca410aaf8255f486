"""create / start / run / kill / delete: the container's life, runc-style.

``create`` forks the container's init after unshare(CLONE_NEWPID), so the init is PID 1
of its namespace. The init sets up namespaces, mounts and the root, reports "ready"
through a pipe, then blocks opening ``exec.fifo`` for writing; ``start`` opens it for
reading, which releases the init into the final steps and execve. The init keeps the
fifo open (close-on-exec) so ``start`` learns whether execve worked: EOF means it did,
an error record means it did not.

Records on both channels: ``R`` ready, ``E<code> <message>`` failure.
"""

from __future__ import annotations

import os

from dockyard.runtime.pyrunc import fastjson, warmup
from dockyard.runtime.pyrunc.cgroups import Cgroup
from dockyard.runtime.pyrunc.state import Container, SetupError, StateError, process_alive, starttime_of, timestamp

# linux, mounts and process (ctypes, ~4 ms to import) are imported by the functions that
# create a container: start, kill and delete do without them.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SIGKILL = 9


class Options:
    """Per-invocation options of create/run."""

    def __init__(self, bundle: str = ".", pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0) -> None:
        self.bundle = os.path.realpath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.cache_dir: str | None = None  # compiled seccomp filters, under the state root


# ------------------------------------------------------------------ create / run

def create(root: str, container_id: str, options: Options) -> int:
    _launch(root, container_id, options, wait_for_start=True)
    return 0


def run(root: str, container_id: str, options: Options, detach: bool = False) -> int:
    container, pid, sync_r, cgroup = _launch(root, container_id, options, wait_for_start=False)
    failure = _read_records(sync_r)  # EOF once execve succeeded (the pipe is close-on-exec)
    os.close(sync_r)
    if failure is not None:
        _reap(pid)
        _destroy(container, cgroup)
        raise SetupError(failure[1], failure[0])
    if detach:
        return 0
    _forward_signals(pid)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
    _destroy(container, cgroup)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _launch(root: str, container_id: str, options: Options,
            wait_for_start: bool) -> "tuple[Container, int, int, Cgroup]":
    # What the init needs too: loaded here, while the cgroup lock warms up, not after the fork.
    from dockyard.runtime.pyrunc import mounts, process  # noqa: F401

    with open(options.bundle + "/config.json", "rb") as f:
        raw = f.read()
    spec = fastjson.loads(raw)
    container = Container(root, container_id)
    os.makedirs(root, 0o711, exist_ok=True)
    options.cache_dir = root + "/.seccomp"  # not a container ID: "." is refused there
    try:
        os.mkdir(container.dir, 0o711)
    except FileExistsError:
        raise StateError(f"container `{container_id}` already exists") from None
    pid = 0
    cgroup = None
    try:
        with open(container.dir + "/config.json", "wb") as f:
            f.write(raw)
        linux_spec = spec.get("linux") or {}
        cgroup_path = linux_spec.get("cgroupsPath") or "/pyrunc/" + container_id
        if ":" in cgroup_path:
            raise SetupError(f"systemd cgroup paths are not supported: {cgroup_path}")
        # Compiled (or read from the cache) here, before the cgroup: creating it waits for
        # the cgroup lock, and this work fills the wait instead of delaying the init.
        seccomp_program = process.prepare_seccomp(linux_spec.get("seccomp"), options.cache_dir)
        cgroup = Cgroup(cgroup_path)
        cgroup.create()
        cgroup.apply(linux_spec.get("resources") or {})
        if wait_for_start:
            os.mkfifo(container.fifo, 0o600)
        fifo_fd = os.open(container.fifo, os.O_PATH | os.O_CLOEXEC) if wait_for_start else -1
        go_r, go_w = os.pipe()
        sync_r, sync_w = os.pipe()
        _enter_pid_namespace(linux_spec.get("namespaces") or [])
        warmup.stop()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(sync_r)
            _init(spec, options, go_r, sync_w, fifo_fd, seccomp_program)  # never returns
        os.close(go_r)
        os.close(sync_w)
        if fifo_fd >= 0:
            os.close(fifo_fd)
        cgroup.add(pid)
        os.write(go_w, b"g")
        os.close(go_w)
        record = _read_record(sync_r)
        if record is None or record[0] != 0:
            code, message = record or (1, "container init exited during set-up")
            raise SetupError(message, code)
        container.save({
            "id": container_id, "pid": pid, "starttime": starttime_of(pid), "bundle": options.bundle,
            "rootfs": _rootfs(spec, options.bundle), "created": timestamp(), "cgroup": cgroup.path,
            "annotations": spec.get("annotations") or {},
        })
        if options.pid_file:
            _write_pid_file(options.pid_file, pid)
        if wait_for_start:
            os.close(sync_r)
        return container, pid, sync_r, cgroup
    except BaseException:
        if pid:
            _kill_and_wait(pid)
            _reap(pid)
        if cgroup is not None:
            try:
                cgroup.destroy()
            except OSError:
                pass
        _remove_dir(container.dir)
        raise


def _enter_pid_namespace(namespaces: "list[dict[str, Any]]") -> None:
    """The next fork lands in this namespace, as its PID 1 when the namespace is new."""
    from dockyard import linux

    for ns in namespaces:
        if ns.get("type") != "pid":
            continue
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, linux.CLONE_NEWPID)
            finally:
                os.close(fd)
        else:
            linux.unshare(linux.CLONE_NEWPID)


def _rootfs(spec: "dict[str, Any]", bundle: str) -> str:
    path = spec["root"]["path"]
    return path if path.startswith("/") else bundle + "/" + path


# ------------------------------------------------------------------ the init

def _init(spec: "dict[str, Any]", options: Options, go_r: int, sync_w: int, fifo_fd: int,
          seccomp_program: "bytes | None") -> None:
    """The container's PID 1 until execve; reports through ``sync_w`` then the fifo."""
    from dockyard import linux
    from dockyard.runtime.pyrunc import mounts, process

    report_fd = sync_w
    try:
        # Until execve, /proc/<pid>/exe is the host's python: keep container processes
        # from opening it (CVE-2019-5736); execve makes the process dumpable again.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        os.read(go_r, 1)  # the parent has put us in the cgroup: a new cgroup ns roots there
        os.close(go_r)
        linux_spec = spec.get("linux") or {}
        new = _join_namespaces(linux_spec.get("namespaces") or [])
        if new & linux.CLONE_NEWUTS:
            if spec.get("hostname"):
                linux.sethostname(spec["hostname"])
            if spec.get("domainname"):
                linux.setdomainname(spec["domainname"])
        proc = spec["process"]
        console = _connect_console(options.console_socket) if proc.get("terminal") else None
        mounts.prepare_rootfs(spec, options.bundle)
        if console is not None:
            open_terminal(console)
        mounts.finish_rootfs(spec)
        if console is None:
            os.setsid()
        process.set_rlimits(proc.get("rlimits") or [])
        cwd = proc.get("cwd") or "/"
        _ensure_cwd(cwd)
        os.chdir(cwd)
        args = proc.get("args") or []
        if not args:
            raise SetupError("process.args must not be empty")
        path = process.find_executable(args[0], proc.get("env") or [])
        process.mark_cloexec(3 + options.preserve_fds)
        os.write(sync_w, b"R")
        if fifo_fd >= 0:
            fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start`
            os.write(fd, b"0")
            report_fd = fd
        process.finalize(proc, seccomp_program, path)
    except SetupError as e:
        _report(report_fd, e.code, str(e))
        os._exit(e.code)
    except BaseException as e:  # noqa: BLE001 - everything must reach the caller, then exit
        _report(report_fd, 1, _describe(e))
        os._exit(1)
    os._exit(1)


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f" ({e.filename})" if e.filename and str(e.filename) not in (e.strerror or "") else ""
        return f"{e.strerror}{where}"
    return f"{type(e).__name__}: {e}"


def _join_namespaces(namespaces: "list[dict[str, Any]]") -> int:
    """setns into the namespaces given by path, unshare the new ones; returns the new flags."""
    from dockyard import linux

    new = 0
    for ns in namespaces:
        kind = ns.get("type")
        if kind == "pid":
            continue
        if kind not in linux.NAMESPACES:
            raise SetupError(f"unknown namespace type {kind!r}")
        if kind == "user":
            raise SetupError("user namespaces are not supported by pyrunc yet")
        flag = linux.NAMESPACES[kind][0]
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, flag)
            finally:
                os.close(fd)
        else:
            new |= flag
    if not new & linux.CLONE_NEWNS:
        raise SetupError("pyrunc needs a mount namespace")
    linux.unshare(new)
    return new


def _ensure_cwd(cwd: str) -> None:
    """A missing cwd is created (runc and crun do); one that is not a directory fails."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        raise SetupError(f"chdir `{cwd}`: {e.strerror}", 126) from None
    if not os.path.isdir(cwd):
        raise SetupError(f"chdir `{cwd}`: Not a directory", 126)


def _connect_console(path: str | None):
    if not path:
        raise SetupError("terminal is set but no --console-socket was given")
    import fcntl  # noqa: F401 - imported before pivot_root, used by open_terminal
    import socket
    import struct  # noqa: F401

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def open_terminal(sock, bind_console: bool = True) -> None:
    """A pty from the container's own devpts: slave on 0-2 as controlling terminal of a new
    session, master to the console socket (SCM_RIGHTS); for the init (``bind_console``),
    /dev/console bound to the slave."""
    import fcntl
    import socket
    import struct

    from dockyard import linux

    master = os.open("/dev/pts/ptmx" if os.path.exists("/dev/pts/ptmx") else "/dev/ptmx",
                     os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    number = struct.unpack("I", fcntl.ioctl(master, 0x80045430, b"\0\0\0\0"))[0]  # TIOCGPTN
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    if bind_console:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        linux.mount(slave_path, "/dev/console", None, linux.MS_BIND)
    socket.send_fds(sock, [slave_path.encode()], [master])
    sock.close()
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, 0x540E, 0)  # TIOCSCTTY
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _report(fd: int, code: int, message: str) -> None:
    try:
        os.write(fd, f"E{code} {message}".encode())
    except OSError:
        pass


def _read_record(fd: int) -> "tuple[int, str] | None":
    """(0, "") for ready, (code, message) for a failure, None for EOF."""
    first = os.read(fd, 1)
    if not first:
        return None
    if first == b"R":
        return 0, ""
    data = first + _read_all(fd)
    return _parse_failure(data)


def _read_records(fd: int) -> "tuple[int, str] | None":
    data = _read_all(fd)
    return _parse_failure(data) if data else None


def _parse_failure(data: bytes) -> "tuple[int, str]":
    text = data.decode(errors="replace")
    if text.startswith("E"):
        code, _, message = text[1:].partition(" ")
        return (int(code) if code.isdigit() else 1), message
    return 1, f"unexpected message from the container init: {text!r}"


def _read_all(fd: int) -> bytes:
    parts = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def _write_pid_file(path: str, pid: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _forward_signals(pid: int) -> None:
    import _signal

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
                _signal.SIGUSR2, _signal.SIGWINCH):
        _signal.signal(sig, forward)


# ------------------------------------------------------------------ start / kill / delete

def start(root: str, container_id: str) -> int:
    import select

    container = Container(root, container_id)
    status = container.status()
    if status != "created":
        raise StateError(f"cannot start container `{container_id}`: it is {status}, not created")
    fd = os.open(container.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        state = container.state
        while not poller.poll(50):
            if not process_alive(state["pid"], state.get("starttime")):
                raise StateError(f"container `{container_id}` init died before start")
        os.set_blocking(fd, True)
        data = _read_all(fd)
    finally:
        os.close(fd)
        try:
            os.unlink(container.fifo)
        except FileNotFoundError:
            pass
    if data[:1] != b"0":
        raise StateError(f"container `{container_id}` init did not start")
    if len(data) > 1:
        code, message = _parse_failure(data[1:])
        raise SetupError(message, code)
    return 0


def kill(root: str, container_id: str, signal: int, all_processes: bool = False) -> int:
    container = Container(root, container_id)
    if not container.alive():
        raise StateError(f"container `{container_id}` is not running")
    pids = Cgroup(container.state["cgroup"]).pids() if all_processes else [container.state["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            pass
    return 0


def pause(root: str, container_id: str) -> int:
    return _freeze(root, container_id, True)


def resume(root: str, container_id: str) -> int:
    return _freeze(root, container_id, False)


def _freeze(root: str, container_id: str, frozen: bool) -> int:
    """Freeze a running container's cgroup, or thaw a paused one."""
    container = Container(root, container_id)
    status = container.status()
    needed = "running" if frozen else "paused"
    if status != needed:
        raise StateError(f"container `{container_id}` is {status}, not {needed}")
    Cgroup(container.state["cgroup"]).freeze(frozen)
    return 0


def delete(root: str, container_id: str, force: bool = False) -> int:
    container = Container(root, container_id)
    if not container.exists():
        if force:
            _remove_dir(container.dir)
            return 0
        raise StateError(f"container `{container_id}` does not exist")
    status = container.status()
    if status in ("running", "paused") and not force:
        raise StateError(f"cannot delete container `{container_id}` that is not stopped: {status}")
    _destroy(container)
    return 0


def _destroy(container: Container, cgroup: "Cgroup | None" = None) -> None:
    state = container.state
    cgroup = cgroup or Cgroup(state["cgroup"])
    if process_alive(state["pid"], state.get("starttime")):
        cgroup.thaw()  # a frozen process does not die of SIGKILL until it is thawed
        _kill_and_wait(state["pid"])
    cgroup.destroy()
    _remove_dir(container.dir)


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    import time

    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.002)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _remove_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(f"{path}/{name}")
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
