"""The client side of the attach socket: stream a container's output to our stdout/stderr,
our stdin to it (``-i``), terminal size and signals (``--sig-proxy``) to it."""

from __future__ import annotations

import json
import os
import signal
import _socket   # socket.py's enum and selectors set-up is not needed here (see Containers.connect)
import _thread

from dockyard.containers import frames

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from socket import socket
    from typing import Any


DEFAULT_DETACH_KEYS = b"\x10\x11"   # ctrl-p,ctrl-q, as Docker
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's ``--detach-keys``: comma-separated ``ctrl-<a-z @ [ \\ ] ^ _>`` or single
    characters, e.g. ``ctrl-p,ctrl-q`` (the default) or ``ctrl-x,x``."""
    from dockyard.errors import DockyardError

    if spec is None:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for key in spec.split(","):
        lowered = key.lower()
        if lowered.startswith("ctrl-") and len(key) == 6:
            char = lowered[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
                continue
            if char in _CTRL_SPECIALS:
                keys.append(_CTRL_SPECIALS[char])
                continue
        elif len(key) == 1 and key.isascii():
            keys.append(ord(key))
            continue
        raise DockyardError(f"Invalid detach keys ({spec}) provided", exit_code=125)
    return bytes(keys)


class _EscapeScanner:
    """Finds the detach sequence in what the user types. Bytes that might begin it are held
    back until it is clear they do not (then they go on to the container, as Docker does)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence is complete)."""
        out = bytearray()
        for byte in data:
            self.held += bytes([byte])
            while self.held and not self.keys.startswith(self.held):
                out.append(self.held[0])   # cannot begin the sequence: pass it on
                self.held = self.held[1:]
            if self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False


EscapeScanner = _EscapeScanner   # the API's attach and exec scan their clients' input for the keys too


def terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return None
    return size.lines, size.columns


def stream(sock: "socket", *, stdin: bool = False, tty: bool = False, sig_proxy: bool = True,
           out_fd: int = 1, err_fd: int = 2, detach_keys: bytes = DEFAULT_DETACH_KEYS) -> dict[str, Any] | None:
    """Pump until the shim sends the exit frame (returned) or goes away (None). Typing
    ``detach_keys`` on stdin leaves the container running: ``{"Detached": True}``."""
    lock = _thread.allocate_lock()
    detached: list[bool] = []   # made true by the stdin pump when the user typed the detach keys

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
        scanner = _EscapeScanner(detach_keys) if detach_keys else None

        def pump() -> None:
            while True:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if scanner is not None and data:
                    data, escaped = scanner.feed(data)
                    if escaped:
                        if data:
                            send(frames.STDIN, data)
                        detached.append(True)
                        try:
                            sock.shutdown(_socket.SHUT_RDWR)  # wakes the reader below
                        except OSError:
                            pass
                        return
                    if not data:
                        continue
                send(frames.STDIN, data)
                if not data:
                    return

        import threading  # only with stdin: run and attach without -i never load it

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
                return {"Detached": True} if detached else None
            if not data:
                return {"Detached": True} if detached else None
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


# ``run --rm``'s handshake: the shim's exit frame says ``RemoveRecord``; the client deletes the
# record (``Containers.forget``), then sends this.
REMOVAL_CONFIRMATION = frames.pack(frames.CONTROL, b'{"removed": true}')


def confirm_removal(sock: "socket") -> None:
    """Tell the shim that we deleted the container's record (``run --rm``)."""
    try:
        sock.sendall(REMOVAL_CONFIRMATION)
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
