"""Spawning a shim before it knows its container, so that ``run`` can start it first thing:
its interpreter start-up then overlaps the CLI's own (opening the engine and the state DB,
creating the container). Imports only os and sys: ``subprocess`` alone would cost ``run``
~5 ms of start-up, so the shim is started with ``posix_spawn``.
"""

from __future__ import annotations

import os
import sys

# -I ignores PYTHON* variables (PYTHONDONTWRITEBYTECODE would make every shim compile its
# modules again) and -S skips site: the package's parent goes on sys.path by hand.
# posix_spawn cannot change directory or close inherited descriptors: the shim does both
# first (it must not keep the CLI's working directory busy, nor a caller's pipes open).
SHIM_MAIN = ("import os, sys; os.chdir('/'); ready = int(sys.argv[1]); os.closerange(3, ready); "
             "os.closerange(ready + 1, os.sysconf('SC_OPEN_MAX')); sys.path.insert(0, {path!r}); "
             "from dockyard.containers.shim import main; main()")


class ShimProcess:
    """The spawned shim process: its PID and the write end of its stdin (where its orders go)."""

    def __init__(self, pid: int, stdin_fd: int) -> None:
        self.pid = pid
        self.stdin = os.fdopen(stdin_fd, "wb")
        self.returncode: int | None = None

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
                break
            except InterruptedError:
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class SpawnedShim:
    """A shim process not yet told which container to run (``spawn_shim``)."""

    def __init__(self, process: ShimProcess, ready: int) -> None:
        self.process = process
        self.ready = ready    # read end of its ready pipe

    def cancel(self) -> None:
        try:
            self.process.stdin.close()  # EOF: the shim leaves without doing anything
        except OSError:
            pass
        os.close(self.ready)
        self.process.wait()


def spawn_shim() -> SpawnedShim:
    """Start a shim that waits for its orders on stdin."""
    read_fd, write_fd = os.pipe()
    orders_r, orders_w = os.pipe()
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    argv = [sys.executable, "-I", "-S", "-c", SHIM_MAIN.format(path=package_parent), str(write_fd)]
    actions = [(os.POSIX_SPAWN_DUP2, orders_r, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    try:
        os.set_inheritable(write_fd, True)
        pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    except BaseException:
        os.close(read_fd)
        os.close(orders_w)
        raise
    finally:
        os.close(write_fd)
        os.close(orders_r)
    return SpawnedShim(ShimProcess(pid, orders_w), read_fd)
