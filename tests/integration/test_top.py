"""``top`` with no ps options reads /proc instead of running ``ps -ef``: the rows are what procps'
``ps -ef`` prints for the container's processes (times checked loosely: CPU and clock move)."""

from __future__ import annotations

import subprocess
import time

from dockyard.containers import top

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures


def _ps_ef(pids: set[int]) -> list[list[str]]:
    out = subprocess.run(["ps", "-efww"], capture_output=True, text=True, check=True).stdout.splitlines()
    header = out[0].split()
    assert header == top.HEADER
    rows = [line.split(None, len(header) - 1) for line in out[1:]]
    return [r for r in rows if int(r[1]) in pids]


def test_top_rows_are_ps_ef_rows(dy: Dockyard) -> None:  # noqa: F811
    dy.cli("run", "-d", "--name", "tp", "--network", "none", "-u", "65534", "busybox", "sh", "-c",
           "sleep 300 & i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exec sleep 301", check=True)
    for _ in range(100):   # the loop's CPU time first, then the two sleeps
        listed = dy.cli("top", "tp", check=True).stdout.splitlines()
        if listed[-1].endswith("sleep 301"):
            break
        time.sleep(0.1)
    assert listed[0].split() == top.HEADER
    pids = {int(line.split()[1]) for line in listed[1:]}
    ours = top.ps_ef(pids)
    theirs = _ps_ef(pids)
    assert [r[:3] + r[5:6] + r[7:] for r in ours] == [r[:3] + r[5:6] + r[7:] for r in theirs]
    for mine, procps in zip(ours, theirs):
        assert abs(int(mine[3]) - int(procps[3])) <= 1 and mine[4] == procps[4]
        assert mine[6][-2:].isdigit() and len(mine[6]) == len(procps[6])
    assert sorted(r[-1] for r in ours) == ["sleep 300", "sleep 301"]
    assert all(r[0] == "nobody" for r in ours)


def test_top_with_ps_options_runs_ps(dy: Dockyard) -> None:  # noqa: F811
    dy.cli("run", "-d", "--name", "tp2", "--network", "none", "busybox", "sleep", "300", check=True)
    listed = dy.cli("top", "tp2", "-o", "pid,comm", check=True).stdout.splitlines()
    assert listed[0].split() == ["PID", "COMMAND"] and listed[1].split()[1] == "sleep"
