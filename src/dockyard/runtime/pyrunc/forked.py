"""pyrunc's CLI run in a forked child of the caller (the shim, ``exec``): the child starts
with everything already imported, so a verb costs a fork, not an interpreter start-up."""

from __future__ import annotations

import os
import sys


def spawn(argv: "list[str]", stdio: "tuple[int, int, int]", err_w: int = -1, close: "tuple[int, ...]" = ()) -> int:
    """Fork a child that puts ``stdio`` on 0, 1 and 2, writes pyrunc's error messages to
    ``err_w`` (else to its stderr), runs pyrunc's ``main(argv)`` and exits with its code;
    the child's PID. ``close``: descriptors the child has no business holding."""
    from dockyard.runtime.pyrunc.cli import main

    sys.stdout.flush()   # or the child would write our buffered output a second time
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in close:
            os.close(fd)
        for i, fd in enumerate(stdio):
            if fd != i:
                os.dup2(fd, i)
        if err_w >= 0:
            sys.stderr = open(err_w, "w", closefd=False)
        code = main(argv)
        sys.stderr.flush()
    except BaseException as e:  # noqa: BLE001 - the child must never return into the caller's code
        try:
            os.write(err_w if err_w >= 0 else 2, f"pyrunc: {type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
    os._exit(code)
