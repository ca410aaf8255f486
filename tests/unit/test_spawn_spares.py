"""Shims forked ahead (``spawn.fork_spares``, used by kube play): they wait idle, one
thread and no CPU, until ``spawn_shim`` hands them out; only then does the runtime's
warm-up begin. A spare that warmed up from its fork on kept moving itself between
cgroups every 2 ms for the whole wait, and six of them doubled kube play's CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from dockyard.containers import spawn

    def threads(pid):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("Threads:"):
                return int(line.split()[1])

    def cpu_ticks(pid):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    spawn.fork_spares(3)
    pids = [s.process.pid for s in spawn._spares]
    time.sleep(0.2)    # what the spares do meanwhile is all they would ever do idle
    before = {p: cpu_ticks(p) for p in pids}
    time.sleep(0.5)
    idle = {"threads": [threads(p) for p in pids], "ticks": [cpu_ticks(p) - before[p] for p in pids]}
    handed = spawn.spawn_shim()   # a spare, woken
    deadline = time.monotonic() + 5
    woken = 1
    while time.monotonic() < deadline and woken == 1:
        woken = threads(handed.process.pid)   # the warm-up thread
        time.sleep(0.001)
    handed.cancel()                # EOF after the wake byte: it leaves without a container
    spawn.cancel_spares()
    print(json.dumps({"pids": pids, "idle": idle, "handed": handed.process.pid, "woken_threads": woken,
                      "handed_rc": handed.process.returncode, "left": len(spawn._spares)}))
""")


def test_spares_wait_idle_until_handed_out() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout)
    assert result["idle"]["threads"] == [1, 1, 1]
    assert max(result["idle"]["ticks"]) <= 1, result   # a 100 Hz tick at most in half a second
    assert result["handed"] == result["pids"][-1]      # handed out from the spares
    assert result["woken_threads"] >= 2                 # the warm-up began once handed out
    assert result["handed_rc"] == 0 and result["left"] == 0
    for pid in result["pids"]:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie_or_other(pid)


def _is_zombie_or_other(pid: int) -> bool:
    """The PID is gone, or reused by a process that is not our shim."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"dockyard" not in f.read()
    except OSError:
        return True
