"""The one interface the engine drives an OCI runtime through: the runtime CLI's verbs.

Two implementations stand behind it:

- ``dockyard.runtime.oci.OCIRuntime`` runs a runc-compatible command (crun, runc, or
  pyrunc's own CLI) for each verb;
- ``dockyard.runtime.pyrunc.inprocess.PyruncRuntime`` does pyrunc's verbs in this process
  or in a forked child of it: no interpreter start-up per verb.

The containers layer (the manager, the shim, exec) only ever holds a ``Runtime`` from
``open_runtime``; it never names a runtime or imports one. This module imports nothing
beyond ``os``: the shim and ``run``/``exec`` load it on their hot path.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError
from dockyard.runtime import RUNTIMES

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

DEFAULT_RUNTIME = RUNTIMES[0]


class OCIRuntimeError(DockyardError):
    """The runtime refused or failed; ``exit_code`` follows Docker's 125/126/127.
    ``detail``: the runtime's own words ("" when it said nothing we could read, e.g. its
    error went to the container's stderr); ``status``: its exit status, if it ran."""

    exit_code = 125

    def __init__(self, message: str, exit_code: int | None = None, detail: str = "", status: int = 0) -> None:
        super().__init__(message, exit_code)
        self.detail = detail
        self.status = status


class RuntimeState:
    """What the runtime's ``state`` verb reports of one container."""

    __slots__ = ("id", "status", "pid", "bundle", "raw")

    def __init__(self, id: str, status: str, pid: int, bundle: str, raw: "dict[str, Any]") -> None:
        self.id = id
        self.status = status      # created | running | paused | stopped
        self.pid = pid
        self.bundle = bundle
        self.raw = raw

    def __repr__(self) -> str:
        return f"RuntimeState(id={self.id!r}, status={self.status!r}, pid={self.pid})"


class Runtime:
    """An OCI runtime with its state directory (``--root``). Every verb raises
    OCIRuntimeError when the runtime refuses or fails."""

    name = ""

    def __init__(self, root: str) -> None:
        self.root = root

    def create(self, container_id: str, bundle: str, *, stdio: "tuple[int, int, int]", pid_file: str | None = None,
               console_socket: str | None = None) -> None:
        """Create the container (its init waits for ``start``). The init inherits ``stdio``,
        the runtime's own error output included: on failure the message may only be in
        what the container's stderr received."""
        raise NotImplementedError

    def start(self, container_id: str) -> None:
        raise NotImplementedError

    def state(self, container_id: str) -> RuntimeState:
        raise NotImplementedError

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        raise NotImplementedError

    def delete(self, container_id: str, force: bool = False) -> None:
        raise NotImplementedError

    def start_delete(self, container_id: str) -> "Callable[[], None]":
        """``delete --force`` begun; the returned call waits for its end. Here it is done
        at once; a runtime that can overlap it with the caller's own clean-up does so."""
        try:
            self.delete(container_id, force=True)
        except OCIRuntimeError:
            pass
        return _done

    def pause(self, container_id: str) -> None:
        raise NotImplementedError

    def resume(self, container_id: str) -> None:
        raise NotImplementedError

    def exec(self, container_id: str, args: "Sequence[str]", *, stdio: "tuple[int, int, int]", env: "Sequence[str]" = (),
             cwd: str | None = None, user: str | None = None, detach: bool = False,
             console_socket: str | None = None, additional_gids: "Sequence[int] | None" = None) -> int:
        """Run a process in the running container with ``stdio``; its exit code (0 with
        ``detach``). ``env`` adds to the container's own environment. With
        ``console_socket`` the process gets a terminal whose master goes to that socket.
        ``additional_gids`` replaces the container process's supplementary groups."""
        raise NotImplementedError

    def ps(self, container_id: str) -> "list[int]":
        """Host PIDs of the container's processes."""
        raise NotImplementedError

    def update(self, container_id: str, resources: "dict[str, Any]") -> None:
        """Apply new OCI ``linux.resources`` to the running container (``update --resources``)."""
        raise NotImplementedError

    def exists(self, container_id: str) -> bool:
        """Whether the runtime holds state for this ID (cheap: no command is run)."""
        return os.path.exists(os.path.join(self.root, container_id))


def _done() -> None:
    return None


def open_runtime(name: str, root: str) -> Runtime:
    """The runtime called ``name`` with its state under ``root``."""
    if name not in RUNTIMES:
        raise OCIRuntimeError(f"unknown or invalid runtime name: {name}")
    if name == "pyrunc":
        from dockyard.runtime.pyrunc.inprocess import PyruncRuntime

        return PyruncRuntime(root)
    from dockyard.runtime.oci import OCIRuntime

    return OCIRuntime(name, root=root)


def preload(name: str = DEFAULT_RUNTIME) -> "Callable[[], None]":
    """Load what launching a container with ``name`` needs and let the runtime warm up
    (the shim does this while the CLI is still preparing the bundle). The returned call
    ends the warm-up."""
    if name != "pyrunc":
        return _done
    from dockyard.runtime.pyrunc import inprocess

    return inprocess.preload()


def load(name: str = DEFAULT_RUNTIME) -> None:
    """Import what launching a container with ``name`` needs, without the warm-up."""
    if name == "pyrunc":
        from dockyard.runtime.pyrunc import inprocess

        inprocess.load()


def preload_exec(name: str) -> None:
    """Load what an exec through runtime ``name`` runs, before a process forks copies of itself
    to run it (the detached exec's waiter): loaded once, not in each copy."""
    if name == "pyrunc":
        import dockyard.runtime.pyrunc.cli  # noqa: F401
        import dockyard.runtime.pyrunc.execute  # noqa: F401
