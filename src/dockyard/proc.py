"""Processes by /proc: alive or not, and which one (a PID is reused; its start time is not).

Both the runtime and the containers layer ask; nothing is imported, the shim and the hot
commands use it.
"""

from __future__ import annotations


def _stat_fields(pid: int) -> "list[bytes] | None":
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()  # after "(comm)": comm may hold spaces


def process_alive(pid: int, starttime: "str | None") -> bool:
    """Alive, not a zombie, and the same process (not a reused PID)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return starttime is None or fields[19].decode() == starttime


def starttime_of(pid: int) -> str:
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return fields[19].decode()
