"""``exec``: a process in a running container, through its runtime's exec verb.

pyrunc is run in a forked child of this process (its ``main``), which saves an
interpreter start-up per exec; crun and runc through the OCI runtime adapter.
"""

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


def _fd(stream: Any, default: int) -> int:
    if stream is None:
        return default
    if stream == DEVNULL:
        return os.open(os.devnull, os.O_RDWR)
    if isinstance(stream, int):
        return stream
    return stream.fileno()


def _user(containers: "Containers", record: "ContainerRecord", user: str | None) -> str | None:
    """``name[:group]`` -> ``uid:gid`` from the container's /etc/passwd (runtimes want numbers)."""
    if not user:
        return None
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return f"{name}:{group or 0}"
    from dockyard.runtime.spec import resolve_user

    resolved = resolve_user(os.path.join(containers.container_dir(record.id), "rootfs"), user)
    return f"{resolved['uid']}:{resolved['gid']}"


def run_exec(containers: "Containers", record: "ContainerRecord", command: list[str], *, env: list[str],
             user: str | None, workdir: str | None, detach: bool, stdin: Any, stdout: Any, stderr: Any,
             console_socket: str | None = None) -> int:
    """The process's exit code (0 for ``detach``). ``console_socket``: run it on a terminal
    of the container's own, whose master the runtime sends to that socket."""
    runtime_name = record.host_config.get("Runtime") or "pyrunc"
    uid_gid = _user(containers, record, user or record.container_config.get("User") or None)
    if workdir and not workdir.startswith("/"):
        raise ExecError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path", 125)
    if runtime_name != "pyrunc":
        from dockyard.runtime.oci import OCIRuntimeError

        rt = containers.runtime(runtime_name)
        try:
            result = rt.exec(record.id, command, env=env, cwd=workdir, user=uid_gid, detach=detach, stdin=stdin,
                             stdout=stdout, stderr=stderr, timeout=None, console_socket=console_socket)
        except OCIRuntimeError as e:
            raise ExecError(f"OCI runtime exec failed: {e.message}", e.exit_code) from None
        return result.returncode
    args = ["--root", str(containers.runtime_root("pyrunc")), "exec"]
    for item in env:
        args += ["--env", item]
    if workdir:
        args += ["--cwd", workdir]
    if uid_gid:
        args += ["--user", uid_gid]
    if detach:
        args.append("--detach")
    if console_socket:
        args += ["--tty", "--console-socket", console_socket]
    args += [record.id, *command]
    fds = (_fd(stdin, 0), _fd(stdout, 1), _fd(stderr, 2))
    # Imported before the fork (measured ~2 ms faster than importing in the child).
    from dockyard.runtime.pyrunc import execute as _pyrunc_execute  # noqa: F401
    from dockyard.runtime.pyrunc import forked

    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = forked.spawn(args, fds, err_w, close=(err_r,))
    os.close(err_w)
    import signal

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    text = os.read(err_r, 65536).decode(errors="replace") if _readable(err_r) else ""
    os.close(err_r)
    if "pyrunc: " in text:
        from dockyard.runtime.exitcodes import runtime_exit_code

        message = text.strip().splitlines()[-1].replace("pyrunc: ", "", 1)
        raise ExecError(f"OCI runtime exec failed: {message}", runtime_exit_code(code, message))
    return code


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])
