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
    try:
        stdio = (_fd(stdin, 0, opened), _fd(stdout, 1, opened), _fd(stderr, 2, opened))
        containers.event("exec_start: " + action, record, execID=exec_id)
        code = containers.runtime_of(record).exec(record.id, command, stdio=stdio, env=env, cwd=workdir,
                                                  user=uid_gid, detach=detach, console_socket=console_socket,
                                                  additional_gids=gids)
        if not detach:
            containers.event("exec_die", record, execID=exec_id, exitCode=str(code))
        return code
    except OCIRuntimeError as e:
        raise ExecError(f"OCI runtime exec failed: {e.detail or e.message}", e.exit_code) from None
    finally:
        for fd in opened:
            os.close(fd)
