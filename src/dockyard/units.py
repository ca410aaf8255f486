"""Docker's human-readable sizes and durations (github.com/docker/go-units), for every front end:
the CLI's tables, the API's progress bars and container status texts."""

from __future__ import annotations

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: base 1000, ``%.<precision>g`` then the unit.

    ``docker images`` and ``history`` use precision 3 (``4.26MB``); ``system df``
    and ``prune`` use 4 (``HumanSize``, ``4.264MB``).
    """
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        value /= 1000.0
        i += 1
    return "%.*g%s" % (precision, value, _DECIMAL_UNITS[i])


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def bytes_size(size: float) -> str:
    """go-units BytesSize: base 1024, ``%.4g`` then the unit (``23.54GiB``; info, stats)."""
    value, i = float(size), 0
    while value >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        value /= 1024.0
        i += 1
    return "%.4g%s" % (value, _BINARY_UNITS[i])


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: ``About a minute``, ``3 hours``, ``2 weeks``..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600.0 + 0.5)  # Go's d.Round(time.Hour): half away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"
