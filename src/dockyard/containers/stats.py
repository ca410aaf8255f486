"""``stats``: CPU, memory and PIDs of a container from its cgroup (v1, hybrid or v2)."""

from __future__ import annotations

import os
import time
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
    else:
        cpu = int(_read(cgroup.dir("cpuacct"), "cpuacct.usage") or 0)
        mem = cgroup.dir("memory")
        usage = int(_read(mem, "memory.usage_in_bytes") or 0)
        usage -= _kv(_read(mem, "memory.stat")).get("total_inactive_file", 0)
        limit = int(_read(mem, "memory.limit_in_bytes") or 0)
        pids = int(_read(cgroup.dir("pids"), "pids.current") or 0)
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not limit or limit > total_memory:
        limit = total_memory
    return {"cpu_ns": cpu, "memory_usage": max(usage, 0), "memory_limit": limit, "pids": pids,
            "time": time.monotonic(), "online_cpus": os.cpu_count() or 1}
