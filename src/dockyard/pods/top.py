"""``pod top`` as podman 4.3 prints it (its psgo library's default descriptors): USER, PID and
PPID as the container sees them (its PID namespace; 0 for a parent outside it), %CPU over the
process's life, ELAPSED and TIME as Go durations, TTY, COMMAND (the arguments, each followed by
a space). Read from /proc: no ``ps`` is run."""

from __future__ import annotations

import os
import time

from dockyard.containers.top import _boot_time   # container top's: the same /proc/stat btime

HEADER = ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String: ``1.982744711s``, ``2m3.5s``, ``1h0m0s``, ``350ms``, ``0s``."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size, size) + unit
    whole, frac = divmod(nanos, 1_000_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs}" + (f".{frac:09d}".rstrip("0") if frac else "") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim(value: float, size: int) -> str:
    digits = len(str(size)) - 1
    return (f"{value:.{digits}f}".rstrip("0").rstrip(".")) if digits else str(int(value))


def rows(pids: "list[int]") -> "list[list[str]]":
    """podman's rows for these host PIDs, in PID order (gone ones skipped)."""
    hertz = os.sysconf("SC_CLK_TCK")
    boot = _boot_time()
    now = time.time()
    out = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            status = _status(pid)
            ppid_status = None
            fields = stat[stat.rindex(")") + 2:].split()
            ppid = int(fields[1])
            if ppid:
                try:
                    ppid_status = _status(ppid)
                except OSError:
                    ppid_status = None
        except OSError:
            continue
        ns_pid = status.get("NSpid", str(pid)).split()
        depth = len(ns_pid)
        parent_ns = (ppid_status or {}).get("NSpid", "").split()
        # the parent as this namespace sees it: only when it lives in the same namespace depth
        ns_ppid = parent_ns[-1] if parent_ns and len(parent_ns) == depth else "0"
        cpu = (int(fields[11]) + int(fields[12])) / hertz
        elapsed = now - (boot + int(fields[19]) / hertz)
        percent = 100 * cpu / elapsed if elapsed > 0 else 0.0
        uid = int(status.get("Uid", "0").split()[0])
        args = cmdline.rstrip(b"\0").split(b"\0")
        command = "".join(a.decode(errors="replace") + " " for a in args if a) or \
            stat[stat.index("(") + 1:stat.rindex(")")]
        out.append([_user(pid, uid), ns_pid[-1], ns_ppid, f"{percent:.3f}", go_duration(elapsed),
                    _tty(int(fields[4])), go_duration(int(cpu)), command])
    return out


def _status(pid: int) -> "dict[str, str]":
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _user(pid: int, uid: int) -> str:
    """The name the container's own /etc/passwd gives ``uid`` (psgo's lookup), else the number."""
    try:
        with open(f"/proc/{pid}/root/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2] == str(uid):
                    return parts[0]
    except OSError:
        pass
    return str(uid)


def _tty(tty_nr: int) -> str:
    if not tty_nr:
        return "?"
    major, minor = os.major(tty_nr), os.minor(tty_nr)
    return f"pts/{(major - 136) * 256 + minor}" if 136 <= major <= 143 else "?"
