"""The engine's event log: Docker's event messages, one JSON line each, under ``<root>/events``.

Every command and every shim appends to it; ``dockyard events`` reads it. There is no daemon to
hold a ring buffer, so the log is a file:

- one ``os.write`` of one whole line on an ``O_APPEND`` fd: Linux appends it atomically, so
  concurrent writers (several CLIs, shims) never interleave;
- bounded: past ``MAX_BYTES`` the writer that notices renames ``events.jsonl`` to
  ``events.1.jsonl`` under a lock (the older rotated file is dropped); readers read the rotated
  file first. A writer still holding the renamed file writes its one line there, which readers
  of history still see;
- never fails its caller: an event that cannot be written is dropped with one note on stderr.

Stdlib only and cheap to import: ``record`` runs on the ``run`` path and in the shim.
"""

from __future__ import annotations

import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator, Mapping, Sequence

MAX_BYTES = 4 * 1024 * 1024
CURRENT = "events.jsonl"
ROTATED = "events.1.jsonl"
LOCK = "rotate.lock"

# Docker's filter keys for events (daemon/events/filter.go); an unknown key is an error there.
FILTER_KEYS = ("config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
               "scope", "secret", "service", "type", "volume")

_warned = False


def events_dir(root: str) -> str:
    return os.path.join(root, "events")


def record(root: str, type: str, action: str, actor_id: str, attributes: "Mapping[str, str] | None" = None,
           scope: str = "local") -> None:
    """Append one event (Docker's message shape) to the log under ``root``; never raises."""
    try:
        now = time.time_ns()
        message: dict = {}
        attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
        # Docker fills the deprecated fields for container and image events only.
        if type in ("container", "image"):
            message["status"] = action
            message["id"] = actor_id
            if type == "container":
                message["from"] = attrs.get("image", "")
        message.update({"Type": type, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                        "scope": scope, "time": now // 1_000_000_000, "timeNano": now})
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        _append(root, line)
    except Exception as e:  # noqa: BLE001 - an event must never fail the command that emits it
        _note(f"event {type} {action} not recorded: {e}")


def _note(text: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    try:
        sys.stderr.write(f"dockyard: {text}\n")
    except Exception:  # noqa: BLE001 - stderr may be closed (a detached shim)
        pass


def _append(root: str, line: bytes) -> None:
    directory = events_dir(root)
    path = os.path.join(directory, CURRENT)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, line)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        _rotate(directory)


def _rotate(directory: str) -> None:
    import fcntl

    lock = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(directory, CURRENT)
        try:
            if os.stat(path).st_size <= MAX_BYTES:
                return  # another writer rotated it while we waited
        except FileNotFoundError:
            return
        os.replace(path, os.path.join(directory, ROTATED))
    finally:
        os.close(lock)


# --- reading --------------------------------------------------------------------------------

def _lines(fd: int, pending: bytearray) -> "list[bytes]":
    """The complete lines readable from ``fd`` now; a partial last line stays in ``pending``."""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
    if b"\n" not in pending:
        return []
    cut = pending.rindex(b"\n") + 1
    lines = bytes(pending[:cut]).splitlines()
    del pending[:cut]
    return lines


def _time_of(line: bytes) -> "int | None":
    """``timeNano`` of a line ``record`` wrote (its last field), without decoding the line."""
    at = line.rfind(b'"timeNano":')
    if at < 0 or not line.endswith(b"}"):
        return None
    try:
        return int(line[at + 11:-1])
    except ValueError:
        return None


def _decode(line: bytes) -> "dict | None":
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _open(path: str) -> "int | None":
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def read(root: str, since: int | None = None, until: int | None = None,
         filters: "Mapping[str, Sequence[str]] | None" = None, follow: bool = False,
         interval: float = 0.15, stop: "Callable[[], bool] | None" = None,
         history: bool = True, idle: bool = False) -> "Iterator[dict]":
    """Events with ``since <= timeNano <= until`` (nanoseconds; None: unbounded) that pass
    ``filters``, oldest first. With ``follow`` it then waits for new ones (polling every
    ``interval`` seconds) until ``until`` has passed or ``stop()`` is true. Without
    ``history`` only events logged from now on (``docker events`` with no time given).
    With ``idle`` it yields None where it would sleep, and the caller waits (the API
    service's followers wait on its event loop, not in a thread each)."""
    directory = events_dir(root)
    current = os.path.join(directory, CURRENT)
    match = Matcher(filters or {})

    def wanted(line: bytes) -> "dict | None":
        """The event on ``line`` if it is in the window and passes the filters. The time is
        read off the line's end first: most of a long log is outside a window, undecoded."""
        t = _time_of(line)
        if t is not None and ((since is not None and t < since) or (until is not None and t > until)):
            return None
        message = _decode(line)
        if message is None:
            return None
        t = message.get("timeNano") or 0
        if (since is not None and t < since) or (until is not None and t > until):
            return None
        return message if match(message) else None

    fd = _open(current)  # first, so that a rotation while we read the older file loses nothing
    if fd is not None and not history:
        os.lseek(fd, 0, os.SEEK_END)  # now, not at the first next(): "from now on" means the call
    return _iterate(fd, directory, current, wanted, history, follow, until, interval, stop, idle)


def _iterate(fd: "int | None", directory: str, current: str, wanted: "Callable[[bytes], dict | None]",
             history: bool, follow: bool, until: int | None, interval: float,
             stop: "Callable[[], bool] | None", idle: bool = False) -> "Iterator[dict]":
    try:
        old = _open(os.path.join(directory, ROTATED)) if history else None
        if old is not None:
            try:
                if fd is None or os.fstat(old).st_ino != os.fstat(fd).st_ino:
                    for line in _lines(old, bytearray()):
                        message = wanted(line)
                        if message is not None:
                            yield message
            finally:
                os.close(old)
        pending = bytearray()
        while True:
            if fd is not None:
                for line in _lines(fd, pending):
                    message = wanted(line)
                    if message is not None:
                        yield message
            if not follow or (stop is not None and stop()):
                return
            if until is not None and time.time_ns() > until:
                return
            if idle:
                yield None  # type: ignore[misc]
            else:
                time.sleep(interval)
            fd = _reopen_if_rotated(fd, current, pending)
    finally:
        if fd is not None:
            os.close(fd)


def _reopen_if_rotated(fd: "int | None", current: str, pending: bytearray) -> "int | None":
    """After a rotation ``current`` names a new file: keep reading the old fd to its end first
    (the caller's next read), then switch. Returns the fd to read next."""
    try:
        ino = os.stat(current).st_ino
    except FileNotFoundError:
        return fd
    if fd is None:
        return _open(current)
    if os.fstat(fd).st_ino == ino:
        return fd
    # Rotated: drain what the old file still has into ``pending`` (complete lines only matter).
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
    os.close(fd)
    return _open(current)


def go_message(message: dict) -> dict:
    """What Go's encoding/json writes of an ``events.Message`` (``docker events --format json``,
    the API's ``/events``): its fields in order, empty ``status``/``id``/``from`` left out, the
    attributes (a map) sorted."""
    actor = message.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    out: dict = {k: message[k] for k in ("status", "id", "from") if message.get(k)}
    out["Type"] = message.get("Type", "")
    out["Action"] = message.get("Action", "")
    out["Actor"] = {"ID": actor.get("ID", ""), "Attributes": {k: attrs[k] for k in sorted(attrs)}}
    out["scope"] = message.get("scope", "local")
    out["time"] = message.get("time", 0)
    out["timeNano"] = message.get("timeNano", 0)
    return out


# --- filters (Docker's semantics: values of one key ORed, different keys ANDed) ----------------

class Matcher:
    def __init__(self, filters: "Mapping[str, Sequence[str]]") -> None:
        self.f = {k: list(v) for k, v in filters.items() if v}

    def _exact(self, key: str, value: str) -> bool:
        values = self.f.get(key)
        return values is None or value in values

    def _fuzzy(self, key: str, value: str) -> bool:
        values = self.f.get(key)
        return values is None or any(value == v or (value and value.startswith(v)) for v in values)

    def _name(self, message: dict, key: str) -> bool:
        actor = message.get("Actor") or {}
        return self._fuzzy(key, actor.get("ID", "")) or self._fuzzy(key, (actor.get("Attributes") or {}).get("name", ""))

    def __call__(self, message: dict) -> bool:
        actor = message.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        action = message.get("Action", "")
        if "event" in self.f:
            # Docker: "health_status", "exec_create", "exec_start" match their "X: detail" forms.
            if any(v in ("health_status", "exec_create", "exec_start") for v in self.f["event"]):
                if not self._fuzzy("event", action):
                    return False
            elif not self._exact("event", action):
                return False
        if not self._exact("type", message.get("Type", "")) or not self._exact("scope", message.get("scope", "")):
            return False
        for key in ("daemon", "container", "volume", "network", "plugin", "node", "service", "secret", "config"):
            if key in self.f and not self._name(message, key):
                return False
        if "image" in self.f and not self._image(message, actor.get("ID", ""), attrs):
            return False
        return self._labels(attrs)

    def _image(self, message: dict, actor_id: str, attrs: dict) -> bool:
        name = attrs.get("name" if message.get("Type") == "image" else "image", "")
        candidates = (actor_id, name, _strip_tag(actor_id), _strip_tag(name))
        return any(self._exact("image", c) for c in candidates)

    def _labels(self, attrs: dict) -> bool:
        # Docker's MatchKVList: every label filter must hold (label filters are ANDed).
        for value in self.f.get("label", ()):
            key, eq, want = value.partition("=")
            if key not in attrs or (eq and attrs[key] != want):
                return False
        return True


def _strip_tag(name: str) -> str:
    """``busybox:latest`` -> ``busybox`` (a registry port or a digest is not a tag)."""
    if "@" in name:
        return name.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def validate_filters(filters: "Mapping[str, Sequence[str]]") -> None:
    from dockyard.errors import DockyardError

    for key in filters:
        if key not in FILTER_KEYS:
            raise DockyardError(f"Invalid filter '{key}'")


# --- time values: Docker's --since/--until (api/types/time.GetTimestamp) ----------------------

def parse_time(value: str, now_ns: int | None = None) -> int:
    """``--since``/``--until``: a Go duration back from now (``10m``), a Unix timestamp
    (``1700000000`` or ``1700000000.5``), or an RFC 3339 date/time (``2026-12-04``,
    ``2026-12-04T20:31``, ``2026-12-04T20:31:02.5Z``; no zone = local time). -> nanoseconds."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    text = value.strip()
    from dockyard.timefmt import parse_duration

    if text != "0":
        try:
            return now_ns - int(parse_duration(text) * 1_000_000_000)
        except ValueError:
            pass
    if "-" not in text or text.startswith("-"):
        seconds, dot, frac = text.partition(".")
        if seconds.lstrip("-").isdigit() and (not dot or frac.isdigit()):
            return int(seconds) * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)
        raise ValueError(f'failed to parse value as time or duration: "{value}"')
    return _parse_rfc3339(text, value)


def _parse_rfc3339(text: str, original: str) -> int:
    import re
    from datetime import datetime

    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
                     r"([zZ]|[+-]\d{2}:\d{2})?", text)
    if not m:
        raise ValueError(f"parsing time {original!r}: not an RFC 3339 time")
    date, hh, mm, ss, frac, zone = m.groups()
    stamp = f"{date}T{hh or '00'}:{mm or '00'}:{ss or '00'}"
    if zone and zone in "zZ":
        stamp += "+00:00"
    elif zone:
        stamp += zone
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError as e:
        raise ValueError(f"parsing time {original!r}: {e}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as Docker parses a time without a zone
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


def format_time(nanos: int) -> str:
    """Docker's ``rfc3339NanoFixed`` in local time: ``2026-12-04T20:31:02.123456789Z``."""
    from datetime import datetime

    seconds, ns = divmod(nanos, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds).astimezone()
    offset = moment.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}" + zone


def pretty(message: dict) -> str:
    """Docker CLI's default line: time, type, action, actor ID, ``(k=v, ...)`` sorted."""
    actor = message.get("Actor") or {}
    parts = []
    if message.get("timeNano"):
        parts.append(format_time(int(message["timeNano"])) + " ")
    elif message.get("time"):
        parts.append(format_time(int(message["time"]) * 1_000_000_000) + " ")
    parts.append(f"{message.get('Type', '')} {message.get('Action', '')} {actor.get('ID', '')}")
    attrs = actor.get("Attributes") or {}
    if attrs:
        parts.append(" (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")")
    return "".join(parts)
