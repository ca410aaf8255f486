"""Spawning a shim before it knows its container, so that ``run`` can start it first thing:
its set-up then overlaps the CLI's own (opening the engine and the state DB, creating the
container). Imports only os and sys (``subprocess`` alone would cost ``run`` ~5 ms).
"""

from __future__ import annotations

import os
import sys


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

    def wake(self) -> None:
        """Tell a spare its orders are near: it warms the runtime up now (a spare that did so
        from its fork on would spend the whole wait on it). One space: JSON allows it first."""
        try:
            self.process.stdin.write(b" ")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass

    def cancel(self) -> None:
        try:
            self.process.stdin.close()  # EOF: the shim leaves without doing anything
        except OSError:
            pass
        os.close(self.ready)
        self.process.wait()


# -I ignores PYTHON* variables (PYTHONDONTWRITEBYTECODE would make every shim compile its
# modules again) and -S skips site: the package's parent goes on sys.path by hand.
# posix_spawn cannot change directory or close inherited descriptors: the shim does both
# first (it must not keep the CLI's working directory busy, nor a caller's pipes open).
SHIM_MAIN = ("import os, sys; os.chdir('/'); ready = int(sys.argv[1]); os.closerange(3, ready); "
             "os.closerange(ready + 1, os.sysconf('SC_OPEN_MAX')); sys.path.insert(0, {path!r}); "
             "from dockyard.containers.shim import main; main()")


# Shims forked ahead (fork_spares) for the starts a command is about to make; spawn_shim hands
# them out first. list.pop is atomic, so the threads of engine.at_once may share them.
_spares: "list[SpawnedShim]" = []


def fork_spares(count: int) -> None:
    """Fork ``count`` shims now, while this process has not loaded SQLite, for the container
    starts to come (kube play starts a dozen at once: forks cost ~1 ms where a fresh
    interpreter costs ~30 ms of CPU each). The shim's modules are loaded here first, once,
    not in each spare; a spare waits idle until ``spawn_shim`` hands it out. ``cancel_spares``
    releases those left unused."""
    if "sqlite3" in sys.modules:
        return
    from dockyard.containers import shim  # noqa: F401 - what every spare runs
    from dockyard.runtime import adapter

    adapter.load()
    for _ in range(count):
        _spares.append(_fork(spare=True))


def cancel_spares() -> None:
    while _spares:
        _spares.pop().cancel()


def spawn_shim() -> SpawnedShim:
    """Start a shim that waits for its orders on stdin: a spare forked ahead, or forked from
    this process while that is safe (see ``_fork``), else a fresh interpreter."""
    try:
        spare = _spares.pop()
    except IndexError:
        pass
    else:
        spare.wake()
        return spare
    if "sqlite3" not in sys.modules:
        return _fork()
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


def _fork(spare: bool = False) -> SpawnedShim:
    """The shim as a fork of this process, which has loaded little yet (``run``'s fast path
    calls this first thing): a new interpreter's start-up and the shim's first imports
    (~30 ms) would otherwise be the longest step of ``run``, and the shim's memory is what a
    fresh one would hold. Not once SQLite is loaded: a connection must not cross a fork
    (the child's SQLite would see the parent's locks as its own: "locking protocol")."""
    read_fd, write_fd = os.pipe()
    orders_r, orders_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _become_shim(read_fd, write_fd, orders_r, orders_w, spare)   # never returns
    os.close(write_fd)
    os.close(orders_r)
    return SpawnedShim(ShimProcess(pid, orders_w), read_fd)


def _become_shim(read_fd: int, write_fd: int, orders_r: int, orders_w: int, spare: bool) -> None:
    code = 1
    try:
        os.setsid()   # its own session: a ^C at the CLI's terminal is not for the shim
        os.close(read_fd)
        os.close(orders_w)
        os.dup2(orders_r, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        # Nothing of the CLI's stays open in the shim (a caller's pipes would never see EOF),
        # nor its working directory busy.
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/")
        import signal

        # As a fresh interpreter would have them (SIGPIPE stays ignored: a client that went
        # away must be an EPIPE, not the shim's death).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        sys.argv = ["dockyard-shim", str(write_fd), *(["--spare"] if spare else [])]
        from dockyard.containers.shim import main

        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - the shim must never return into the CLI's code
        code = 1
    finally:
        os._exit(code)
