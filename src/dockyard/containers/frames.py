"""The attach socket's framing, shared by the shim and its clients: Docker's stream
multiplexing header ``[stream, 0, 0, 0, size (u32 big-endian)]`` then ``size`` bytes.

Streams: 0 stdin (client -> shim), 1 stdout, 2 stderr, 3 exit (JSON: StatusCode, Error),
4 control (client -> shim, JSON: resize / signal / close-stdin).
A client first sends one JSON line saying which streams it wants.
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, EXIT, CONTROL = 0, 1, 2, 3, 4
_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size


def pack(stream: int, data: bytes) -> bytes:
    return _HEADER.pack(stream, len(data)) + data


class Reader:
    """Incremental frame parser: feed bytes, get (stream, payload) pairs."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> "list[tuple[int, bytes]]":
        self._buf += data
        out = []
        while len(self._buf) >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER_SIZE + size:
                break
            out.append((stream, self._buf[HEADER_SIZE:HEADER_SIZE + size]))
            self._buf = self._buf[HEADER_SIZE + size:]
        return out
