"""Spawning a shim before it knows its container, so that ``run`` can start it first thing:
its interpreter start-up then overlaps the CLI's own (opening the engine and the state DB,
creating the container). Imports only os, sys and subprocess, which ``run`` needs anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys

# -I ignores PYTHON* variables (PYTHONDONTWRITEBYTECODE would make every shim compile its
# modules again) and -S skips site: the package's parent goes on sys.path by hand.
SHIM_MAIN = "import sys; sys.path.insert(0, {path!r}); from dockyard.containers.shim import main; main()"


class SpawnedShim:
    """A shim process not yet told which container to run (``spawn_shim``)."""

    def __init__(self, process: subprocess.Popen, ready: int) -> None:
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
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    try:
        process = subprocess.Popen([sys.executable, "-I", "-S", "-c", SHIM_MAIN.format(path=package_parent),
                                    str(write_fd)], pass_fds=(write_fd,), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   cwd="/")
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return SpawnedShim(process, read_fd)
