"""The state directory ``<root>/<id>/``: state.json, the bundle's config at create time,
and exec.fifo while the container waits for ``start``."""

from __future__ import annotations

import os
import time

from dockyard.proc import process_alive, starttime_of  # noqa: F401 - pyrunc's names for them
from dockyard.runtime.pyrunc import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/pyrunc"  # cli.DEFAULT_ROOT repeats it (cli imports nothing of ours up front)
OCI_VERSION = "1.0.2"
LOG_PATH: "str | None" = None  # the global --log option: where warnings go (stderr when unset)


def warn(message: str) -> None:
    """A warning: the operation goes on. Written as "pyrunc warning: ..." (never "pyrunc: ",
    which callers read as the runtime's failure) to --log's file, else to stderr."""
    line = f"pyrunc warning: {message}\n"
    try:
        if LOG_PATH and LOG_PATH not in ("/dev/stderr", "-"):
            with open(LOG_PATH, "a") as f:
                f.write(line)
        else:
            import sys

            sys.stderr.write(line)
            sys.stderr.flush()
    except OSError:
        pass


class StateError(Exception):
    """A container that does not exist, or is not in the state a command needs."""


class SetupError(Exception):
    """A failure setting up the container process, with the exit code to report.

    (Used by process.py and container.py; it lives here, with StateError, so that the
    verbs that need neither ctypes nor process.py can still name it.)"""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Container:
    def __init__(self, root: str, container_id: str) -> None:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise StateError(f"invalid container id {container_id!r}")
        self.id = container_id
        self.dir = f"{root}/{container_id}"
        self.fifo = self.dir + "/exec.fifo"
        self._state: "dict[str, Any] | None" = None

    # ------------------------------------------------------------------ files

    def exists(self) -> bool:
        return os.path.exists(self.dir + "/state.json")

    @property
    def state(self) -> "dict[str, Any]":
        if self._state is None:
            try:
                with open(self.dir + "/state.json", "rb") as f:
                    self._state = fastjson.loads(f.read())
            except FileNotFoundError:
                raise StateError(f"container `{self.id}` does not exist") from None
        return self._state

    def save(self, state: "dict[str, Any]") -> None:
        tmp = self.dir + "/.state.json.tmp"
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(state))
        os.rename(tmp, self.dir + "/state.json")
        self._state = state

    def config(self) -> "dict[str, Any]":
        with open(self.dir + "/config.json", "rb") as f:
            return fastjson.loads(f.read())

    # ------------------------------------------------------------------ status

    def alive(self) -> bool:
        state = self.state
        return process_alive(state["pid"], state.get("starttime"))

    def status(self) -> str:
        state = self.state
        if not process_alive(state["pid"], state.get("starttime")):
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        from dockyard.runtime.pyrunc.cgroups import Cgroup

        return "paused" if Cgroup(state["cgroup"]).frozen() else "running"

    def oci_state(self) -> "dict[str, Any]":
        s = self.state
        status = self.status()
        result = {"ociVersion": OCI_VERSION, "id": self.id, "pid": s["pid"] if status != "stopped" else 0,
                  "status": status, "bundle": s["bundle"], "rootfs": s["rootfs"], "created": s["created"],
                  "owner": ""}
        if s.get("annotations"):
            result["annotations"] = s["annotations"]
        return result


def timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%09dZ" % int((now % 1) * 1e9)


def list_ids(root: str) -> "list[str]":
    try:
        return sorted(e for e in os.listdir(root) if os.path.exists(f"{root}/{e}/state.json"))
    except FileNotFoundError:
        return []
