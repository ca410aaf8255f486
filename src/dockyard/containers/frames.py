"""The attach socket's framing, shared by the shim and its clients: Docker's stream
multiplexing header ``[stream, 0, 0, 0, size (u32 big-endian)]`` then ``size`` bytes.

Streams: 0 stdin (client -> shim), 1 stdout, 2 stderr, 3 exit (JSON: StatusCode, Error),
4 control (client -> shim, JSON: resize / signal / close-stdin).
A client first sends one JSON line saying which streams it wants.
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, EXIT, CONTROL = 0, 1, 2, 3, 4
STREAMS = (STDIN, STDOUT, STDERR, EXIT, CONTROL)
_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 1 << 20   # no sender of ours writes more at once (reads are 64 KiB)


def pack(stream: int, data: bytes) -> bytes:
    return _HEADER.pack(stream, len(data)) + data


class FrameError(ValueError):
    """Bytes that are not a frame of this protocol: the peer is not one of ours."""


class Reader:
    """Incremental frame parser: feed bytes, get (stream, payload) pairs. Raises FrameError
    for an unknown stream or a frame larger than any sender of ours writes, so that what
    it buffers stays bounded."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> "list[tuple[int, bytes]]":
        self._buf += data
        out = []
        while len(self._buf) >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(self._buf)
            if stream not in STREAMS or size > MAX_PAYLOAD or self._buf[1:4] != b"\0\0\0":
                raise FrameError(f"not a frame: stream {stream}, {size} bytes")
            if len(self._buf) < HEADER_SIZE + size:
                break
            out.append((stream, self._buf[HEADER_SIZE:HEADER_SIZE + size]))
            self._buf = self._buf[HEADER_SIZE + size:]
        return out
