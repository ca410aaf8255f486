"""pyrunc behind the engine's runtime interface, without its command line.

Verbs that change no namespace of the caller (start, state, kill, pause, resume, delete,
ps) run right here; create and exec, which enter the container's PID namespace, run
pyrunc's CLI ``main`` in a forked child (``forked.py``). Either way no interpreter starts:
for the shim and ``exec`` that is most of a verb's cost. The observable behaviour is the
CLI's (``OCIRuntime("pyrunc")`` drives the same code through ``python -m``), which the
runtime parity suite checks against crun.
"""

from __future__ import annotations

import os

from dockyard.runtime.adapter import OCIRuntimeError, Runtime, RuntimeState
from dockyard.runtime.exitcodes import runtime_exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Sequence

PREFIX = "pyrunc: "


class PyruncRuntime(Runtime):
    name = "pyrunc"

    # ------------------------------------------------------------------ forked verbs

    def create(self, container_id: str, bundle: str, *, stdio: "tuple[int, int, int]", pid_file: str | None = None,
               console_socket: str | None = None) -> None:
        args = ["create", "--bundle", bundle]
        if pid_file:
            args += ["--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        code, text = self._forked([*args, container_id], stdio)
        if code != 0:
            raise _error("create", code, text)

    def exec(self, container_id: str, args: "Sequence[str]", *, stdio: "tuple[int, int, int]",
             env: "Sequence[str]" = (), cwd: str | None = None, user: str | None = None, detach: bool = False,
             console_socket: str | None = None, additional_gids: "Sequence[int] | None" = None) -> int:
        argv = ["exec"]
        for item in env:
            argv += ["--env", item]
        if cwd:
            argv += ["--cwd", cwd]
        if user:
            argv += ["--user", user]
        for gid in additional_gids or ():
            argv += ["--additional-gids", str(gid)]
        if detach:
            argv.append("--detach")
        if console_socket:
            argv += ["--tty", "--console-socket", console_socket]
        # Loaded before the fork: once, here, not in the child (measured ~2 ms).
        from dockyard.runtime.pyrunc import execute  # noqa: F401
        code, text = self._forked([*argv, container_id, *args], stdio, forward_signals=True)
        if PREFIX in text:
            raise _error("exec", code, text)
        return code

    def _forked(self, args: "list[str]", stdio: "tuple[int, int, int]",
                forward_signals: bool = False) -> "tuple[int, str]":
        """(exit code, pyrunc's error text) of pyrunc's ``main(args)`` in a forked child."""
        from dockyard.runtime.pyrunc import forked

        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = forked.spawn(["--root", self.root, *args], stdio, err_w, close=(err_r,))
        finally:
            os.close(err_w)
        restore = _forward_signals_to(pid) if forward_signals else None
        try:
            status = _wait(pid)
        finally:
            if restore is not None:
                restore()
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        os.set_blocking(err_r, False)
        try:
            text = os.read(err_r, 65536).decode(errors="replace")
        except BlockingIOError:
            text = ""
        finally:
            os.close(err_r)
        return code, text

    # ------------------------------------------------------------------ in-process verbs

    def start(self, container_id: str) -> None:
        from dockyard.runtime.pyrunc import container

        self._call("start", container.start, container_id)

    def state(self, container_id: str) -> RuntimeState:
        from dockyard.runtime.pyrunc.state import Container

        raw = self._call("state", lambda root, cid: Container(root, cid).oci_state(), container_id)
        return RuntimeState(raw["id"], raw["status"], int(raw.get("pid") or 0), raw.get("bundle", ""), raw)

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        from dockyard.runtime.pyrunc import container

        self._call("kill", lambda root, cid: container.kill(root, cid, int(signal), all_processes), container_id)

    def delete(self, container_id: str, force: bool = False) -> None:
        from dockyard.runtime.pyrunc import container

        self._call("delete", lambda root, cid: container.delete(root, cid, force=force), container_id)

    def start_delete(self, container_id: str) -> "Callable[[], None]":
        """The delete in a forked child, so that the caller's own clean-up (unmounting the
        rootfs) overlaps the cgroup's removal; the call returned waits for the child."""
        from dockyard.runtime.pyrunc import forked

        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = forked.spawn(["--root", self.root, "delete", "--force", container_id], (devnull,) * 3)
        finally:
            os.close(devnull)
        def wait() -> None:
            _wait(pid, missing_ok=True)

        return wait

    def pause(self, container_id: str) -> None:
        from dockyard.runtime.pyrunc import container

        self._call("pause", container.pause, container_id)

    def resume(self, container_id: str) -> None:
        from dockyard.runtime.pyrunc import container

        self._call("resume", container.resume, container_id)

    def ps(self, container_id: str) -> "list[int]":
        from dockyard.runtime.pyrunc.cgroups import Cgroup
        from dockyard.runtime.pyrunc.state import Container

        return self._call("ps", lambda root, cid: Cgroup(Container(root, cid).state["cgroup"]).pids(), container_id)

    def update(self, container_id: str, resources: "dict") -> None:
        from dockyard.runtime.pyrunc.cgroups import Cgroup
        from dockyard.runtime.pyrunc.state import Container, StateError

        def apply(root: str, cid: str) -> None:
            container = Container(root, cid)
            if container.status() == "stopped":
                raise StateError(f"cannot update container `{cid}`: it is stopped")
            Cgroup(container.state["cgroup"]).apply(resources)

        self._call("update", apply, container_id)

    def _call(self, verb: str, fn: "Callable[[str, str], object]", container_id: str):  # noqa: ANN202
        from dockyard.runtime.pyrunc.state import SetupError, StateError

        try:
            return fn(self.root, container_id)
        except SetupError as e:
            code, detail = e.code, str(e)
        except StateError as e:
            code, detail = 1, str(e)
        except OSError as e:
            code, detail = 1, f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}"
        raise OCIRuntimeError(f"pyrunc {verb} failed: {detail}", exit_code=runtime_exit_code(code, detail),
                              detail=detail, status=code)


def _error(verb: str, code: int, text: str) -> OCIRuntimeError:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[-1] if lines else ""
    if detail.startswith(PREFIX):
        detail = detail[len(PREFIX):]
    message = detail or f"exit status {code}"
    return OCIRuntimeError(f"pyrunc {verb} failed: {message}", exit_code=runtime_exit_code(code, message),
                           detail=detail, status=code)


def _wait(pid: int, missing_ok: bool = False) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:  # reaped by someone else (a shim's reaper): status lost
            if missing_ok:
                return 0
            raise


def _forward_signals_to(pid: int) -> "Callable[[], None] | None":
    """Pass ^C, TERM and HUP on to the child while it runs (only the main thread can)."""
    import signal

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    try:
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: nothing to forward from
        return None

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def preload() -> "Callable[[], None]":
    """Import what ``create`` runs, and start the cgroup lock warm-up (see warmup.py)."""
    load()
    from dockyard.runtime.pyrunc import warmup

    warmup.start()
    return lambda: warmup.stop(wait=False)


def load() -> None:
    """Import what ``create`` runs (~25 ms here): a process that forks several shims loads
    it once, before the forks, rather than in each of them."""
    import dockyard.runtime.pyrunc.cli  # noqa: F401
    import dockyard.runtime.pyrunc.container  # noqa: F401
    import dockyard.runtime.pyrunc.forked  # noqa: F401
    import dockyard.linux  # noqa: F401
    import dockyard.runtime.pyrunc.mounts  # noqa: F401 - container.py loads these lazily
    import dockyard.runtime.pyrunc.process  # noqa: F401
    import dockyard.runtime.pyrunc.seccomp  # noqa: F401 - process.py loads it lazily
