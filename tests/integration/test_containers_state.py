"""Restart policies, pause/top/stats, concurrent runs, kill -9 of a shim and of the CLI,
the two warnings Docker does not give, and system reset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, alive, dockyard_env, dy, wait_for)


def _state(dy: Dockyard, name: str) -> dict:
    return json.loads(dy.cli("inspect", name, check=True).stdout)[0]["State"]


def _shim_pid(dy: Dockyard, name: str) -> int:
    engine = dy.engine()
    try:
        return engine.containers.get(name).shim_pid
    finally:
        engine.close()


def test_restart_on_failure_counts_and_gives_up(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3",
           check=True)
    assert wait_for(lambda: dy.cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky").stdout
                    == "2 exited\n", 15)
    assert dy.cli("logs", "flaky").stdout == "try\n" * 3
    assert _state(dy, "flaky")["ExitCode"] == 3


def test_restart_always_until_stopped(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 0",
           check=True)
    assert wait_for(lambda: int(dy.cli("inspect", "-f", "{{.RestartCount}}", "phoenix").stdout or 0) >= 2, 15)
    dy.cli("stop", "-t", "1", "phoenix", check=True)
    assert _state(dy, "phoenix")["Status"] == "exited"
    count = dy.cli("inspect", "-f", "{{.RestartCount}}", "phoenix").stdout
    time.sleep(0.8)
    assert dy.cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "phoenix").stdout == count.strip() + " exited\n"
    assert not alive(_shim_pid(dy, "phoenix"))


def test_pause_unpause_top_stats(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "frozen", "busybox", "sh", "-c", "while true; do sleep 0.05; done", check=True)
    dy.cli("pause", "frozen", check=True)
    assert dy.cli("ps", "--format", "{{.Status}}").stdout.endswith("(Paused)\n")
    state = _state(dy, "frozen")
    assert state["Paused"] and state["Status"] == "paused"
    assert dy.cli("exec", "frozen", "true").returncode != 0
    dy.cli("unpause", "frozen", check=True)
    top = dy.cli("top", "frozen", check=True).stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and any("while true" in line for line in top[1:])
    stats = dy.cli("stats", "--no-stream", "frozen", check=True).stdout.splitlines()
    assert stats[0].startswith("CONTAINER ID") and "frozen" in stats[1] and " / " in stats[1]
    assert dy.cli("rm", "-f", "frozen", check=True).returncode == 0


def test_concurrent_runs_keep_state_consistent(dy: Dockyard) -> None:
    def one(i: int) -> subprocess.CompletedProcess[str]:
        if i % 2:
            return dy.cli("run", "--rm", "busybox", "sh", "-c", f"echo {i}")
        return dy.cli("run", "-d", "--name", f"par-{i}", "busybox", "sleep", "30")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    for i, r in enumerate(results):
        assert r.returncode == 0, r.stderr
        if i % 2:
            assert r.stdout == f"{i}\n"
    names = dy.cli("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout.split("\n")
    assert sorted(n for n in names if n) == sorted(f"par-{i} running" for i in range(0, 20, 2))
    removed = dy.cli("rm", "-f", *[f"par-{i}" for i in range(0, 20, 2)], check=True)
    assert removed.returncode == 0 and dy.cli("ps", "-aq").stdout == ""


def test_killed_shim_marks_container_exited(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "orphan", "busybox", "sleep", "100", check=True)
    pid = _state(dy, "orphan")["Pid"]
    os.kill(_shim_pid(dy, "orphan"), signal.SIGKILL)
    state = wait_for(lambda: (s := _state(dy, "orphan"))["Status"] == "exited" and s, 5)
    assert state and state["ExitCode"] == 137 and "shim" in state["Error"] and "died" in state["Error"]
    assert wait_for(lambda: not alive(pid), 5)
    assert dy.cli("ps", "-q").stdout == ""
    rootfs = next((dy.root / "containers").iterdir()) / "rootfs"
    assert str(rootfs) not in Path("/proc/self/mounts").read_text()
    dy.cli("start", "orphan", check=True)  # and it can run again
    assert _state(dy, "orphan")["Running"]


def test_killed_cli_leaves_the_container_running_to_completion(dy: Dockyard) -> None:
    cli = dy.popen("run", "--name", "survivor", "busybox", "sh", "-c", "sleep 1; echo finished",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: dy.cli("ps", "-q", "--filter", "name=survivor").stdout.strip(), 10)
    cli.kill()
    cli.wait()
    assert wait_for(lambda: _state(dy, "survivor")["Status"] == "exited", 10)
    assert _state(dy, "survivor")["ExitCode"] == 0
    assert dy.cli("logs", "survivor").stdout == "finished\n"


def test_killed_cli_before_the_shim_leaves_a_removable_container(dy: Dockyard) -> None:
    # A create that never got started is a plain "created" container.
    cid = dy.cli("create", "--name", "halfway", "busybox", "true", check=True).stdout.strip()
    assert _state(dy, cid)["Status"] == "created"
    assert dy.cli("rm", "halfway", check=True).returncode == 0


def test_warns_when_detached_container_dies_in_its_first_second(dy: Dockyard) -> None:
    result = dy.cli("run", "-d", "--name", "crashy", "busybox", "sh", "-c", "echo config missing >&2; exit 2",
                    env={"DOCKYARD_EARLY_EXIT_WINDOW": "1"})
    assert result.returncode == 0 and len(result.stdout.strip()) == 64
    assert "crashy exited with code 2 within its first second" in result.stderr
    assert "config missing" in result.stderr and "dockyard logs crashy" in result.stderr
    fine = dy.cli("run", "-d", "busybox", "sleep", "5", env={"DOCKYARD_EARLY_EXIT_WINDOW": "0.3"})
    assert fine.returncode == 0 and fine.stderr == ""


def test_warns_about_a_replaced_single_file_bind(dy: Dockyard, tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("old\n")
    dy.cli("run", "-d", "--name", "reader", "-v", f"{conf}:/etc/app.conf", "busybox", "sleep", "30", check=True)
    assert dy.cli("exec", "reader", "cat", "/etc/app.conf").stderr == ""
    replacement = tmp_path / "app.conf.swp"
    replacement.write_text("new\n")
    os.replace(replacement, conf)  # what vim and friends do: a new inode
    result = dy.cli("exec", "reader", "cat", "/etc/app.conf")
    assert result.stdout == "old\n" and "was replaced on the host" in result.stderr
    assert "Restart the container" in dy.cli("inspect", "reader").stderr
    dy.cli("restart", "-t", "1", "reader", check=True)
    after = dy.cli("exec", "reader", "cat", "/etc/app.conf")
    assert after.stdout == "new\n" and after.stderr == ""


def test_system_reset_removes_everything(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "doomed", "-v", "vol1:/data", "busybox", "sleep", "100", check=True)
    pid = _state(dy, "doomed")["Pid"]
    result = dy.cli("system", "reset", "--force", check=True)
    assert "Deleted container" in result.stdout
    assert wait_for(lambda: not alive(pid), 5)
    assert "dockyard-ctest" not in Path("/proc/self/mounts").read_text() or \
        str(dy.root) not in Path("/proc/self/mounts").read_text()
    assert not dy.root.exists()
    engine = dy.engine()  # the module's busybox is gone too: import it again for later tests
    try:
        from dockyard.testing.images import busybox_rootfs_tar

        tar = busybox_rootfs_tar(dy.base / "busybox.tar")
        engine.images.import_(str(tar), "busybox", ['CMD ["sh"]'])
    finally:
        engine.close()


def test_attach_logs_options_and_prune(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "talker", "busybox", "sh", "-c",
           "trap 'exit 5' TERM; while true; do echo hello; sleep 0.1; done", check=True)
    attached = dy.popen("attach", "talker", stdout=subprocess.PIPE, text=True)
    try:
        assert attached.stdout.readline() == "hello\n"
        dy.cli("stop", "talker", check=True)
        assert attached.wait(10) == 5
    finally:
        attached.kill()
    timestamps = dy.cli("logs", "-t", "--tail", "2", "talker", check=True).stdout.splitlines()
    assert len(timestamps) == 2 and all(t.split(" ", 1)[0].endswith("Z") and t.endswith(" hello") for t in timestamps)
    assert dy.cli("logs", "--since", "1h", "talker").stdout.startswith("hello\n")
    assert dy.cli("logs", "--since", str(int(time.time()) + 3600), "talker").stdout == ""
    dy.cli("run", "-d", "--name", "keeper", "busybox", "sleep", "30", check=True)
    # until: only what was created before that time (talker is seconds old)
    assert dy.cli("container", "prune", "-f", "--filter", "until=1h", check=True).stdout == "Total reclaimed space: 0B\n"
    assert "talker" in dy.cli("ps", "-a", "--format", "{{.Names}}").stdout
    pruned = dy.cli("container", "prune", "-f", "--filter", f"until={int(time.time()) + 60}", check=True).stdout
    assert pruned.startswith("Deleted Containers:\n") and "Total reclaimed space:" in pruned
    assert dy.cli("ps", "-a", "--format", "{{.Names}}").stdout == "keeper\n"
    dy.cli("volume", "create", "lonely", check=True)
    dy.cli("run", "--rm", "-v", "/anon", "busybox", "true", check=True)  # --rm took its anonymous volume
    assert dy.cli("volume", "ls", "-q").stdout == "lonely\n"
    assert dy.cli("volume", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"  # named: kept
    assert "lonely" in dy.cli("volume", "prune", "-af", check=True).stdout
