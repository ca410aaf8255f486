"""``exec``: a process in a running container, through its runtime's exec verb."""

from __future__ import annotations

import os

from dockyard.containers import DEVNULL
from dockyard.errors import DockyardError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any
    from dockyard.containers.manager import Containers
    from dockyard.containers.store import ContainerRecord


class ExecError(DockyardError):
    exit_code = 126


def _fd(stream: Any, default: int, opened: "list[int]") -> int:
    if stream is None:
        return default
    if stream == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        opened.append(fd)
        return fd
    if isinstance(stream, int):
        return stream
    return stream.fileno()


def _user(containers: "Containers", record: "ContainerRecord",
          user: str | None) -> "tuple[str, list[int], str]":
    """``name[:group]`` -> (``uid:gid``, supplementary gids, home) from the container's /etc/passwd and
    /etc/group plus its ``--group-add``, as Docker's exec computes them (runtimes want numbers).
    No user is root (numbers: the runtimes would otherwise keep the container's own user)."""
    from dockyard.runtime.spec import resolve_user

    resolved = resolve_user(os.path.join(containers.container_dir(record.id), "rootfs"), user or "0",
                            record.host_config.get("GroupAdd") or None)
    return f"{resolved['uid']}:{resolved['gid']}", resolved["additionalGids"], resolved["home"]


def console_socket(containers: "Containers", container_id: str, tag: str) -> "tuple[str, Any]":
    """(path, listening unix socket) in the container's shim directory, for the runtime to hand
    an exec's terminal master to (``console_socket`` of ``run_exec``): the CLI's ``exec -t``
    and the API's exec start share it. The caller closes the socket and unlinks the path."""
    import socket

    path = os.path.join(containers.shim_dir(container_id), f"exec-{tag}.sock")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    return path, listener


def receive_master(conn: Any) -> int:
    """The terminal master the runtime sent on an accepted console connection; -1 if none came.
    (BlockingIOError from a non-blocking connection the message has not reached yet.)"""
    import socket

    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    for extra in fds[1:]:
        os.close(extra)
    return fds[0] if fds else -1


def exec_action(command: "list[str]") -> str:
    """Docker's exec events name the command ("exec_start: sh -c ls": the first word, then the
    rest joined, one space after it even with no arguments)."""
    return command[0] + " " + " ".join(command[1:]) if command else ""


def run_exec(containers: "Containers", record: "ContainerRecord", command: list[str], *, env: list[str],
             user: str | None, workdir: str | None, detach: bool, stdin: Any, stdout: Any, stderr: Any,
             console_socket: str | None = None, exec_id: str | None = None) -> int:
    """The process's exit code (0 for ``detach``). ``console_socket``: run it on a terminal
    of the container's own, whose master the runtime sends to that socket. ``exec_id``: an
    exec created earlier (the API's exec create recorded its exec_create event)."""
    from dockyard.runtime.adapter import OCIRuntimeError

    uid_gid, gids, home = _user(containers, record, user or record.container_config.get("User") or None)
    # HOME is the exec user's unless the image or the exec sets it (the runtime's rule at start)
    if not any(item.startswith("HOME=") for item in [*(record.container_config.get("Env") or []), *env]):
        env = [f"HOME={home}", *env]
    if workdir and not workdir.startswith("/"):
        raise ExecError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path", 125)
    opened: "list[int]" = []
    action = exec_action(command)
    if exec_id is None:
        exec_id = os.urandom(32).hex()
        containers.event("exec_create: " + action, record, execID=exec_id)
    if detach:   # Docker keeps a detached exec's output to itself: it never reaches the caller's terminal
        stdout = DEVNULL if stdout is None else stdout
        stderr = DEVNULL if stderr is None else stderr
    try:
        stdio = (_fd(stdin, 0, opened), _fd(stdout, 1, opened), _fd(stderr, 2, opened))
        containers.event("exec_start: " + action, record, execID=exec_id)
        options = {"env": env, "cwd": workdir, "user": uid_gid, "console_socket": console_socket,
                   "additional_gids": gids}
        if detach:
            return _exec_detached(containers, record, command, stdio, exec_id, options)
        code = containers.runtime_of(record).exec(record.id, command, stdio=stdio, **options)
        containers.event("exec_die", record, execID=exec_id, exitCode=str(code))
        return code
    except OCIRuntimeError as e:
        raise ExecError(f"OCI runtime exec failed: {e.detail or e.message}", e.exit_code) from None
    finally:
        for fd in opened:
            os.close(fd)


PR_SET_CHILD_SUBREAPER = 36
# Set by the CLI's fast path in the process it forked at once for ``exec -d`` (the caller waits
# on this pipe, then leaves; see fastpath._exec): that process starts the exec itself.
EARLY_WAITER_ANSWER: "int | None" = None


def _exec_detached(containers: "Containers", record: "ContainerRecord", command: "list[str]",
                   stdio: "tuple[int, int, int]", exec_id: str, options: "dict[str, Any]") -> int:
    """``exec -d``: the process is started from a waiter that says ``exec_die`` when it ends.
    The waiter is a child subreaper: the runtime's own process exits once the process runs,
    and the process falls to the waiter, which alone can then learn its exit code. Once the
    process runs, the waiter answers its caller and becomes a bare interpreter that only waits
    (``_WAIT``: ~9 MB for as long as the process runs, not the CLI's ~30).

    Forked early by the CLI (EARLY_WAITER_ANSWER), this process is the waiter and costs the
    command nothing. Otherwise it forks one, twice (it then belongs to no caller: no zombie in a
    long-lived one), which answers (started, or the runtime's error) over a pipe."""
    import json

    runtime = containers.runtime_of(record)
    done = {"root": str(containers.engine.root), "id": record.id, "exec_id": exec_id,
            "attrs": containers.event_attrs(record),
            "name_file": os.path.join(os.path.dirname(containers.socket_path(record.id)), "name")}
    if EARLY_WAITER_ANSWER is not None:
        from dockyard import linux

        linux.prctl(PR_SET_CHILD_SUBREAPER, 1)
        runtime.exec(record.id, command, stdio=stdio, detach=True, **options)   # errors: the CLI's as ever
        _wait_in_background(EARLY_WAITER_ANSWER, {"code": 0}, done)
    from dockyard.runtime import adapter

    adapter.preload_exec(runtime.name)   # what its exec runs, loaded once here rather than in a forked copy
    r, w = os.pipe2(os.O_CLOEXEC)
    first = os.fork()
    if first == 0:
        try:
            os.close(r)
            if os.fork() == 0:
                _forked_waiter(runtime, command, stdio, w, options, done)
        finally:
            os._exit(0)
    os.close(w)
    try:
        while True:
            try:
                os.waitpid(first, 0)
                break
            except InterruptedError:
                continue
        answer = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(r)
    reply = json.loads(answer) if answer else {"code": 126, "message": "exec failed: the process was not started"}
    if reply.get("code"):
        raise ExecError(reply["message"], reply["code"])
    return 0


def _forked_waiter(runtime: "Any", command: "list[str]", stdio: "tuple[int, int, int]", answer: int,
                   options: "dict[str, Any]", done: "dict[str, Any]") -> None:
    """The forked waiter: start the process, answer, wait (see _exec_detached); never returns."""
    from dockyard import linux
    from dockyard.runtime.adapter import OCIRuntimeError

    try:
        linux.prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            runtime.exec(done["id"], command, stdio=stdio, detach=True, **options)
        except OCIRuntimeError as e:
            reply = {"code": e.exit_code, "message": f"OCI runtime exec failed: {e.detail or e.message}"}
        except Exception as e:  # noqa: BLE001 - the caller says what went wrong
            reply = {"code": getattr(e, "exit_code", 126) or 126, "message": getattr(e, "message", "") or str(e)}
        else:
            reply = {"code": 0}
        _wait_in_background(answer, reply, done)
    finally:
        os._exit(0)


def _wait_in_background(answer: int, reply: "dict[str, Any]", done: "dict[str, Any]") -> None:
    """Answer the caller, then (the process running) let go of everything of the caller's (its
    terminal or pipes, the state DB, locks) and become ``_WAIT``; never returns."""
    import json
    import sys

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.write(answer, json.dumps(reply).encode())
    os.close(answer)
    if reply["code"]:
        os._exit(0)
    try:
        os.setsid()   # no terminal: the user's ^C or hang-up later is not for it
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in range(3):   # the process has its own copies of its stdio
        os.dup2(null, fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    import dockyard

    done["path"] = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _WAIT, json.dumps(done)])
    finally:
        os._exit(0)


# The waiter once the process runs: a bare interpreter (-I -S, the package put on sys.path by
# hand, as the shim's) that reaps its one child, the exec'd process, then records its end.
_WAIT = """
import json, os, sys
done = json.loads(sys.argv[1])
code = None
while True:
    try:
        _, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
if code is not None:
    sys.path.insert(0, done["path"])
    from dockyard import events
    attrs = dict(done["attrs"])
    try:
        with open(done["name_file"]) as f:   # renamed meanwhile: the new name beside the shim's socket
            attrs["name"] = f.read()
    except OSError:
        pass
    events.record(done["root"], "container", "exec_die", done["id"],
                  {**attrs, "execID": done["exec_id"], "exitCode": str(code)})
"""
