"""Time in the shapes Docker prints and parses: RFC 3339 (Go's nanoseconds), Go's
``time.Time.String()``. Below the CLI, so the engine and the coming API service share it."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: str | None) -> float | None:
    """RFC 3339 (Go writes nanoseconds, Python reads at most micro) -> epoch seconds."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def go_time_string(epoch: float) -> str:
    """Go's ``time.Time.String()`` in local time: ``2024-05-06 10:00:00 +0000 UTC``."""
    moment = datetime.fromtimestamp(int(epoch)).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z ") + (moment.tzname() or "")


def rfc3339(epoch: float) -> str:
    """Go's ``time.RFC3339`` in local time: ``2024-05-06T10:00:00Z`` or ``...+02:00``."""
    moment = datetime.fromtimestamp(int(epoch)).astimezone()
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def rfc3339_nano_utc(epoch: float) -> str:
    """What Go's JSON encoding of a UTC time looks like: ``2024-05-06T10:00:00.123456Z``."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += (".%06d" % moment.microsecond).rstrip("0")
    return text + "Z"


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``1h30m``, ``500ms``, ``2.5s``) in seconds; ValueError if it is not one."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
