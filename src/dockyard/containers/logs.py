"""Docker's json-file log driver: one ``{"log","stream","time"}`` object per line, rotated by
``max-size``/``max-file``; and the reader behind ``logs [-f] [--tail] [-t] [--since]``.

The writer runs in the shim, so this module imports only the standard library's cheapest
parts.
"""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator

MAX_LINE = 16 * 1024  # Docker splits longer lines into 16 KiB records


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds in UTC, as Docker writes ``time``."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_size(text: str) -> int:
    """``10m``, ``1g``, ``512k``, ``100`` -> bytes (Docker's RAMInBytes, base 1024)."""
    value = text.strip().lower()
    units = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
    if value.endswith("b") and len(value) > 1 and value[-2] in units:
        value = value[:-1]
    multiplier = units.get(value[-1:], None)
    number = value[:-1] if multiplier is not None else value
    try:
        result = int(float(number) * (multiplier or 1))
    except ValueError:
        raise ValueError(f"invalid size: {text!r}") from None
    if result < 0:
        raise ValueError(f"invalid size: {text!r}")
    return result


class LogWriter:
    """Appends records to ``path``; rotates to ``path.1`` .. ``path.<max_files-1>``."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Record ``data`` of ``stream``: one record per complete line (kept with its newline)."""
        buf = self._partial.get(stream, b"") + data
        lines = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(buf) >= MAX_LINE:
                    lines.append(buf[:MAX_LINE])
                    buf = buf[MAX_LINE:]
                    continue
                break
            lines.append(buf[:nl + 1])
            buf = buf[nl + 1:]
        self._partial[stream] = buf
        if lines:
            self._emit(stream, lines)

    def flush(self) -> None:
        """Write out partial lines (the container exited without a final newline)."""
        for stream, buf in list(self._partial.items()):
            if buf:
                self._partial[stream] = b""
                self._emit(stream, [buf])

    def _emit(self, stream: str, lines: "list[bytes]") -> None:
        now = timestamp()
        out = "".join(json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": now},
                                 ensure_ascii=False) + "\n" for line in lines).encode()
        if self.max_size and self._size + len(out) > self.max_size and self._size > 0:
            self._rotate()
        os.write(self._fd, out)
        self._size += len(out)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files > 1:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                try:
                    os.replace(src, f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


# ------------------------------------------------------------------ reading


def files(path: str) -> "list[str]":
    """Rotated files oldest first, then the current one."""
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an RFC 3339 time, a Unix timestamp, or a duration back from now (``10m``)."""
    now = time.time() if now is None else now
    value = text.strip()
    from dockyard.timefmt import parse_duration

    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    from dockyard.timefmt import parse_timestamp

    moment = parse_timestamp(value if "T" in value else value + "T00:00:00Z")
    if moment is None:
        raise ValueError(f"invalid value for \"since\": {text!r}")
    return moment


def _record_time(record: "dict[str, str]") -> float:
    t = record.get("time", "")
    try:
        base = time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        frac = t[19:].rstrip("Z")
        return base + (float(frac) if frac.startswith(".") else 0.0)
    except ValueError:
        return 0.0


def read(path: str, tail: int | None = None, since: float | None = None, follow: bool = False,
         alive: "Callable[[], bool] | None" = None, poll: float = 0.05) -> "Iterator[dict[str, str]]":
    """Records of the log, oldest first; with ``follow`` keep reading until ``alive()`` is false."""
    records: list[dict[str, str]] = []
    for name in files(path):
        with open(name, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    records.append(json.loads(line))
    if since is not None:
        records = [r for r in records if _record_time(r) >= since]
    if tail is not None and tail >= 0:
        records = records[-tail:] if tail else []
    yield from records
    if not follow:
        return
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    try:
        f.seek(0, os.SEEK_END)
        inode = os.fstat(f.fileno()).st_ino
        pending = b""
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line:
                        yield json.loads(line)
                continue
            try:
                if os.stat(path).st_ino != inode:  # rotated: continue in the new file
                    f.close()
                    f = open(path, "rb")
                    inode = os.fstat(f.fileno()).st_ino
                    continue
            except FileNotFoundError:
                return
            if alive is not None and not alive():
                rest = f.read()
                for line in (pending + rest).split(b"\n"):
                    if line:
                        yield json.loads(line)
                return
            time.sleep(poll)
    finally:
        f.close()
