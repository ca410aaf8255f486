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
    """RFC 3339 with nanoseconds in UTC, as Docker writes ``time`` (Go's RFC3339Nano: trailing
    zeros of the fraction dropped)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + ("." + f"{frac:09d}").rstrip("0") + "Z" if frac else text + "Z"


# Docker's json-file escapes a line as its jsonlog writer does: ", \, \n and \r by backslash,
# other control characters and <, >, & as \u00XX, U+2028/U+2029 and undecodable bytes as \uXXXX.
_ESCAPES = {c: "\\u%04x" % c for c in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                 ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028",
                 0x2029: "\\u2029", 0xFFFD: "\\ufffd"})


def encode_record(line: bytes, stream: str, time_text: str) -> bytes:
    """One json-file record, byte for byte as Docker writes it (so sizes, and with them the
    rotation points, are Docker's)."""
    text = line.decode("utf-8", "replace").translate(_ESCAPES)
    return f'{{"log":"{text}","stream":"{stream}","time":"{time_text}"}}\n'.encode()


def rotation(config: "dict[str, str]") -> "tuple[int, int]":
    """(max-size in bytes or 0, max-file) of a json-file LogConfig.Config; ValueError with the
    words Docker's driver fails to start with. max-size is go-units' FromHumanSize, decimal:
    ``1k`` is 1000 bytes there."""
    max_size = 0
    if "max-size" in config:
        max_size = human_size(config["max-size"])
        if max_size <= 0:
            raise ValueError("max-size must be a positive number")
    max_files = 1
    if "max-file" in config:
        text = config["max-file"]
        try:
            max_files = int(text)
        except ValueError:
            raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
        if max_files < 1:
            raise ValueError("max-file cannot be less than 1")
    return max_size, max_files


LOG_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")


def check_options(config: "dict[str, str]") -> None:
    """The json-file driver's check at create: only the options it knows."""
    for key in config:
        if key not in LOG_OPTS:
            raise ValueError(f"unknown log opt '{key}' for json-file log driver")


def human_size(text: str) -> int:
    """go-units' FromHumanSize: ``1k``/``1kb`` = 1000, ``1KiB`` = 1024, fractions allowed."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtpKMGTP]?)(i?)[bB]?", text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    base = 1024 if m[3] else 1000
    return int(float(m[1]) * base ** " kmgtp".index(m[2].lower() or " "))


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
        for line in lines:
            record = encode_record(line, stream, now)
            # Docker's rule: a file that reached max-size is rotated before the next record,
            # so a file ends a little past max-size, never before it.
            if self.max_size and self._size >= self.max_size:
                self._rotate()
            os.write(self._fd, record)
            self._size += len(record)

    def _rotate(self) -> None:
        """``path`` -> ``path.1`` -> ... -> ``path.<max_files-1>``, the oldest dropped; with
        ``max_files`` 1 the current file is replaced by an empty one. Renamed or unlinked, never
        truncated: a ``logs -f`` reading the old file finishes it, then follows the new one."""
        os.close(self._fd)
        if self.max_files > 1:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                try:
                    os.replace(src, f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
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
        try:
            f = open(name, "rb")
        except FileNotFoundError:   # rotated away meanwhile
            continue
        with f:
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
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None   # rotated away, its successor not made yet
            if current is not None and current != inode:
                # Rotated: what was written to the old file before it went, then the new file.
                for line in (pending + f.read()).split(b"\n"):
                    if line:
                        yield json.loads(line)
                pending = b""
                f.close()
                f = open(path, "rb")
                inode = os.fstat(f.fileno()).st_ino
                continue
            if alive is not None and not alive():
                rest = f.read()
                for line in (pending + rest).split(b"\n"):
                    if line:
                        yield json.loads(line)
                return
            time.sleep(poll)
    finally:
        f.close()
