"""HTTP hijack: after answering ``101 UPGRADED`` (or ``200 OK`` to a client that did not ask to
upgrade), the connection carries raw bytes both ways, as dockerd's attach and exec start do.

aiohttp has no hijack of its own, so the transport is handed to a ``Hijacked`` protocol of
ours: it keeps a half-closed connection open (``docker run -i`` closes its write side at the
end of its stdin and still reads the output), applies backpressure both ways, and tells
aiohttp's protocol when the connection is gone so that the server's bookkeeping stays right.
Closing shuts the socket down first: a process forked meanwhile (a runtime's exec) may hold a
copy of the descriptor, and the client must see the end all the same.

The first bytes of the stream wait until the client has read the answer's head (on a unix socket,
whose send queue says so): docker-py reads the head through a buffered reader and the stream from
the raw socket under it, so stream bytes that arrived with the head were lost (an attach's log
replay, seen in 2 of 12 runs on a busy machine).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
import time
from typing import Any

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def stream_type(request: "web.Request", tty: bool) -> str:
    """The Content-Type of an attach, exec or logs stream: dockerd names the framing (multiplexed
    without a TTY) from API 1.42 on; older clients are answered raw-stream whatever the framing."""
    from dockyard.api.http import api_version

    return MULTIPLEXED_STREAM if not tty and api_version(request) >= (1, 42) else RAW_STREAM
_READ_HIGH = 1 << 20   # bytes queued from the client before we stop reading from it
_HEAD_READ_WAIT = 0.5  # seconds the first stream bytes wait for the client to read the head


class Hijacked(asyncio.Protocol):
    """The client's side of a hijacked connection."""

    def __init__(self, transport: asyncio.Transport, previous: Any) -> None:
        self.transport = transport
        self._previous = previous              # aiohttp's protocol: told of connection_lost
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.lost = asyncio.Event()            # the connection is gone (closed by either side)
        self.eof = False                       # the client closed its write side
        self.head_sent = False                 # the head went out; the stream's first bytes wait for its reading

    # ---- asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        self._chunks.put_nowait(data)
        self._queued += len(data)
        if self._queued > _READ_HIGH and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._chunks.put_nowait(b"")
        return True   # keep the write side open: the output goes on

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof:
            self.eof = True
            self._chunks.put_nowait(b"")
        self.lost.set()
        self._can_write.set()
        previous, self._previous = self._previous, None
        if previous is not None:
            try:
                previous.connection_lost(exc)
            except Exception:  # noqa: BLE001 - aiohttp's clean-up must not break ours
                pass

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ---- our side
    async def read(self) -> bytes:
        """The client's next bytes; b"" once it closed its write side (or went)."""
        if self.eof and self._chunks.empty():
            return b""
        data = await self._chunks.get()
        self._queued -= len(data)
        if self._reading_paused and self._queued < _READ_HIGH // 2 and not self.lost.is_set():
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send to the client; ConnectionResetError once it is gone."""
        if self.lost.is_set() or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        if self.head_sent:
            self.head_sent = False
            await self._head_read()
        self.transport.write(data)
        await self._can_write.wait()
        if self.lost.is_set():
            raise ConnectionResetError("the client went away")

    def close(self) -> None:
        shutdown(self.transport)

    async def _head_read(self) -> None:
        """Wait (briefly) until nothing we sent is still queued for the client: it read the head.
        Only a unix socket tells (its send queue counts what the peer has not read); on TCP the
        queue empties when the peer's kernel acknowledges, which says nothing, so no wait."""
        sock = self.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return
        deadline = time.monotonic() + _HEAD_READ_WAIT
        while not self.lost.is_set() and time.monotonic() < deadline:
            try:
                queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            except OSError:
                return
            if queued == 0:
                return
            await asyncio.sleep(0.001)


def shutdown(transport: asyncio.BaseTransport | None) -> None:
    """Shut the socket down (whoever else holds a copy of it), then close it."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None and not transport.is_closing():
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    transport.close()


class HijackedResponse(web.StreamResponse):
    """What a hijacking handler returns: the answer went out already, so aiohttp writes nothing."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:   # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def wants_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


def hijack(request: web.Request, content_type: str) -> Hijacked:
    """Answer the request with Docker's hijack head and take the connection over."""
    transport = request.transport
    protocol = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away")
    if wants_upgrade(request):
        head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    else:   # an old client: 200 and then the same raw stream
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
    hijacked = Hijacked(transport, protocol)   # type: ignore[arg-type]
    tail = getattr(protocol, "_message_tail", b"")   # bytes the client sent right behind the request
    if tail:
        protocol._message_tail = b""   # type: ignore[attr-defined]
        hijacked.data_received(tail)
    transport.set_protocol(hijacked)
    transport.write(head.encode())
    hijacked.head_sent = True
    return hijacked
