"""The client side of the attach socket: stream a container's output to our stdout/stderr,
our stdin to it (``-i``), terminal size and signals (``--sig-proxy``) to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading

from dockyard.containers import frames

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any


def terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return None
    return size.lines, size.columns


def stream(sock: socket.socket, *, stdin: bool = False, tty: bool = False, sig_proxy: bool = True,
           out_fd: int = 1, err_fd: int = 2) -> dict[str, Any] | None:
    """Pump until the shim sends the exit frame (returned) or goes away (None)."""
    lock = threading.Lock()

    def send(stream_id: int, payload: bytes) -> None:
        with lock:
            try:
                sock.sendall(frames.pack(stream_id, payload))
            except OSError:
                pass

    restore = None
    if tty and os.isatty(0):
        import termios
        import tty as ttys

        saved = termios.tcgetattr(0)
        ttys.setraw(0)
        restore = lambda: termios.tcsetattr(0, termios.TCSADRAIN, saved)  # noqa: E731
        size = terminal_size()
        if size:
            send(frames.CONTROL, json.dumps({"resize": list(size)}).encode())
        if hasattr(signal, "SIGWINCH"):
            signal.signal(signal.SIGWINCH, lambda *_: send(frames.CONTROL, json.dumps(
                {"resize": list(terminal_size() or (24, 80))}).encode()))
    previous = {}
    if sig_proxy and not tty:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            try:
                previous[sig] = signal.signal(sig, lambda n, _f: send(frames.CONTROL, json.dumps({"signal": n}).encode()))
            except ValueError:  # not the main thread
                break
    if stdin:
        def pump() -> None:
            while True:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                send(frames.STDIN, data)
                if not data:
                    return

        threading.Thread(target=pump, daemon=True).start()
    reader = frames.Reader()
    sock.settimeout(None)
    try:
        while True:
            try:
                data = sock.recv(65536)
            except InterruptedError:
                continue
            except OSError:
                return None
            if not data:
                return None
            for stream_id, payload in reader.feed(data):
                if stream_id == frames.STDOUT:
                    _write_all(out_fd, payload)
                elif stream_id == frames.STDERR:
                    _write_all(err_fd, payload)
                elif stream_id == frames.EXIT:
                    return json.loads(payload)
    finally:
        if restore is not None:
            restore()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def confirm_removal(sock: socket.socket) -> None:
    """Tell the shim that we deleted the container's record (``run --rm``)."""
    try:
        sock.sendall(frames.pack(frames.CONTROL, json.dumps({"removed": True}).encode()))
    except OSError:
        pass
    sock.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[n:]
