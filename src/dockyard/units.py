"""Docker's human-readable sizes (github.com/docker/go-units), for every front end: the CLI's
tables and the API's progress bars."""

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
