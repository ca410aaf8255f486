"""``stats``: CPU, memory and PIDs of a container from its cgroup (v1, hybrid or v2)."""

from __future__ import annotations

import os
import time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _read(path: str | None, name: str) -> str:
    if not path:
        return ""
    try:
        with open(os.path.join(path, name)) as f:
            return f.read()
    except OSError:
        return ""


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def read_stats(cgroup: Any) -> dict[str, Any]:
    """{cpu_ns, memory_usage, memory_limit, pids} now; the caller samples twice for CPU %."""
    if cgroup.unified:
        path = cgroup.dirs[""]
        cpu = _kv(_read(path, "cpu.stat")).get("usage_usec", 0) * 1000
        usage = int(_read(path, "memory.current") or 0)
        usage -= _kv(_read(path, "memory.stat")).get("inactive_file", 0)
        limit_text = _read(path, "memory.max").strip()
        limit = int(limit_text) if limit_text.isdigit() else 0
        pids = int(_read(path, "pids.current") or 0)
        read, written = _io_stat(_read(path, "io.stat"))
    else:
        cpu = int(_read(cgroup.dir("cpuacct"), "cpuacct.usage") or 0)
        mem = cgroup.dir("memory")
        usage = int(_read(mem, "memory.usage_in_bytes") or 0)
        usage -= _kv(_read(mem, "memory.stat")).get("total_inactive_file", 0)
        limit = int(_read(mem, "memory.limit_in_bytes") or 0)
        pids = int(_read(cgroup.dir("pids"), "pids.current") or 0)
        read, written = _blkio(_read(cgroup.dir("blkio"), "blkio.throttle.io_service_bytes"))
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not limit or limit > total_memory:
        limit = total_memory
    return {"cpu_ns": cpu, "memory_usage": max(usage, 0), "memory_limit": limit, "pids": pids,
            "time": time.monotonic(), "wall": time.time(), "online_cpus": os.cpu_count() or 1,
            "blk_read": read, "blk_write": written}


def _blkio(text: str) -> tuple[int, int]:
    """cgroup v1 ``blkio.throttle.io_service_bytes``: ``MAJ:MIN Read N`` lines per device."""
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                written += int(fields[2])
    return read, written


def _io_stat(text: str) -> tuple[int, int]:
    """cgroup v2 ``io.stat``: ``MAJ:MIN rbytes=N wbytes=N ...`` per device."""
    read = written = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes" and value.isdigit():
                read += int(value)
            elif key == "wbytes" and value.isdigit():
                written += int(value)
    return read, written


def cpu_percent(now: dict[str, Any], before: dict[str, Any] | None, started_at: float | None) -> float:
    """Docker's CPU %: CPU time over wall time, in percent of one CPU (so up to N x 100 on N
    CPUs). Between two samples when there is an earlier one (the previous ``stats`` call's or
    the stream's); else the average since the container started, as podman's first sample
    does, rather than making the user wait a second for a second sample as docker does."""
    if before is not None and now["wall"] > before["wall"] and now["cpu_ns"] >= before["cpu_ns"]:
        return (now["cpu_ns"] - before["cpu_ns"]) / ((now["wall"] - before["wall"]) * 1e9) * 100
    if started_at and now["wall"] > started_at:
        return now["cpu_ns"] / ((now["wall"] - started_at) * 1e9) * 100
    return 0.0
