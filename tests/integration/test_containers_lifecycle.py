"""run / create / start / stop / kill / rm / ps / logs / exec / inspect / wait / pause with real
busybox containers, under pyrunc, crun and runc (same observable behaviour)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, alive, dockyard_env, dy, wait_for)
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - mounts crun's hugetlb fix


@pytest.fixture(params=["pyrunc", "crun", "runc"])
def rt(request: pytest.FixtureRequest, dy: Dockyard, cgroup_parent: str) -> Dockyard:  # noqa: F811
    import shutil

    if request.param != "pyrunc" and shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    dy.runtime = request.param
    return dy


def test_run_attached_streams_and_exit_code(rt: Dockyard) -> None:
    result = rt.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n" and "err\n" in result.stderr
    assert rt.cli("ps", "-aq", check=True).stdout == ""  # --rm removed it before run returned


def test_run_stdin_and_env(rt: Dockyard, tmp_path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    result = rt.cli("run", "--rm", "-i", "-e", "A=1", "--env-file", env_file, "-w", "/tmp", "-h", "box",
                    "busybox", "sh", "-c", 'cat; echo "$A $FROM_FILE $(pwd) $(hostname)"', input="piped\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "piped\n1 yes /tmp box\n"


def test_detached_survives_cli_logs_follow_exec_stop(rt: Dockyard) -> None:
    cid = rt.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                 "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
                 check=True).stdout.strip()
    assert len(cid) == 64
    record = json.loads(rt.cli("inspect", "ticker", check=True).stdout)[0]
    assert record["State"]["Running"] and alive(record["State"]["Pid"])
    follower = rt.popen("logs", "-f", "ticker", stdout=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()
        assert first.startswith("tick ")
        later = follower.stdout.readline()
        assert later.startswith("tick ") and later != first
        # exec into the running container: its namespaces, its env, our flags
        result = rt.cli("exec", "-e", "X=42", "-w", "/etc", "-u", "nobody", "ticker", "sh", "-c",
                        'echo "$X $(pwd) $(id -u) $(hostname)"; exit 4')
        assert result.returncode == 4 and result.stdout == f"42 /etc 65534 {cid[:12]}\n", result.stderr
        started = time.monotonic()
        rt.cli("stop", "ticker", check=True)
        assert time.monotonic() - started < 5
        rest = follower.communicate(timeout=10)[0]
        assert "bye" in rest  # -f ended with the container
    finally:
        follower.kill()
    state = json.loads(rt.cli("inspect", "ticker", check=True).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0 and not alive(record["State"]["Pid"])
    assert state["FinishedAt"] > state["StartedAt"]
    assert rt.cli("exec", "ticker", "true").returncode == 1  # not running: an error
    assert rt.cli("rm", "ticker", check=True).stdout == "ticker\n"


def test_stop_timeout_then_kill(rt: Dockyard) -> None:
    rt.cli("run", "-d", "--name", "stubborn", "busybox", "sleep", "100", check=True)
    started = time.monotonic()
    rt.cli("stop", "-t", "1", "stubborn", check=True)  # PID 1 ignores SIGTERM: killed after 1 s
    assert 0.9 < time.monotonic() - started < 6
    assert rt.cli("inspect", "-f", "{{.State.ExitCode}}", "stubborn").stdout == "137\n"
    rt.cli("start", "stubborn", check=True)
    assert rt.cli("inspect", "-f", "{{.State.Status}}", "stubborn").stdout == "running\n"
    rt.cli("kill", "stubborn", check=True)
    assert rt.cli("wait", "stubborn").stdout == "137\n"


def test_exit_codes_like_docker(dy: Dockyard) -> None:
    assert dy.cli("run", "--rm", "busybox", "no-such-command").returncode == 127
    assert dy.cli("run", "--rm", "busybox", "/etc/passwd").returncode == 126
    assert dy.cli("run", "--rm", "--memory", "lots", "busybox", "true").returncode == 125
    assert dy.cli("run", "--rm", "--no-such-flag", "busybox", "true").returncode == 125
    assert dy.cli("run", "--rm", "no-such-image-here:1").returncode == 125
    assert dy.cli("ps", "-aq").stdout == ""  # --rm cleans up failed starts too


def test_create_start_attach_and_wait(dy: Dockyard) -> None:
    cid = dy.cli("create", "--name", "later", "busybox", "sh", "-c", "echo started; exit 7", check=True).stdout.strip()
    assert dy.cli("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}").stdout == "later created Created\n"
    result = dy.cli("start", "-a", cid[:8])
    assert result.returncode == 7 and result.stdout == "started\n"
    assert dy.cli("wait", "later").stdout == "7\n"
    assert dy.cli("logs", "later").stdout == "started\n"


def test_names_ids_and_conflicts(dy: Dockyard) -> None:
    cid = dy.cli("create", "--name", "alpha", "busybox", "true", check=True).stdout.strip()
    result = dy.cli("create", "--name", "alpha", "busybox", "true")
    assert result.returncode == 125
    assert (f'Conflict. The container name "/alpha" is already in use by container "{cid}". You have to remove '
            "(or rename) that container to be able to reuse that name.") in result.stderr
    assert dy.cli("inspect", "-f", "{{.Name}}", cid[:5]).stdout == "/alpha\n"
    dy.cli("rename", "alpha", "beta", check=True)
    assert dy.cli("inspect", "-f", "{{.Id}}", "beta").stdout == cid + "\n"
    missing = dy.cli("rm", "alpha")
    assert missing.returncode == 1 and "No such container: alpha" in missing.stderr
    generated = dy.cli("create", "busybox", "true", check=True).stdout.strip()
    name = dy.cli("inspect", "-f", "{{.Name}}", generated).stdout.strip()
    assert name.startswith("/") and "_" in name


def test_a_generated_name_taken_meanwhile_gives_another(dy: Dockyard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two creates at once may draw the same free name (8 concurrent API creates once did);
    the one that finds it taken when it writes its row draws again, as Docker does."""
    from dockyard.containers import names

    taken = dy.cli("create", "--name", "drawn_twice", "busybox", "true", check=True).stdout.strip()
    draws = iter(["drawn_twice", "drawn_second"])   # as if the first draw had been free when made
    monkeypatch.setattr(names, "random_name", lambda used=(): next(draws))
    engine = dy.engine()
    try:
        record = engine.containers.create({"Image": "busybox", "Cmd": ["true"]}, {})
        assert record.name == "drawn_second"
        assert engine.containers.get("drawn_twice").id == taken
    finally:
        engine.close()


def test_ps_filters_formats_and_inspect_shape(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "web-1", "-l", "tier=web", "busybox", "sleep", "30", check=True)
    dy.cli("run", "--name", "done-1", "busybox", "true", check=True)
    assert dy.cli("ps", "--format", "{{.Names}}").stdout == "web-1\n"
    assert set(dy.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()) == {"web-1", "done-1"}
    assert dy.cli("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout == "done-1\n"
    assert dy.cli("ps", "-a", "--filter", "label=tier=web", "-q").stdout.strip() != ""
    assert dy.cli("ps", "-a", "--filter", "name=done", "--format", "{{.Names}}").stdout == "done-1\n"
    assert len(dy.cli("ps", "-a", "--filter", "ancestor=busybox", "-q").stdout.split()) == 2
    assert dy.cli("ps", "-n", "1", "--format", "{{.Names}}").stdout == "done-1\n"
    table = dy.cli("ps", "-a").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert any("Up " in line and '"sleep 30"' in line for line in table)
    assert any("Exited (0)" in line for line in table)
    row = json.loads(dy.cli("ps", "--format", "json").stdout.splitlines()[0])
    assert row["Names"] == "web-1" and row["State"] == "running"
    info = json.loads(dy.cli("inspect", "web-1").stdout)[0]
    for key in ("Id", "Name", "Created", "Path", "Args", "State", "Image", "Config", "HostConfig", "Mounts",
                "NetworkSettings"):
        assert key in info
    assert set(info["State"]) >= {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                                  "ExitCode", "Error", "StartedAt", "FinishedAt"}
    assert info["Path"] == "sleep" and info["Args"] == ["30"] and info["Config"]["Labels"] == {"tier": "web"}
    assert info["Image"].startswith("sha256:") and info["HostConfig"]["NetworkMode"] == "default"
    both = json.loads(dy.cli("inspect", "web-1", "busybox").stdout)
    assert both[0]["Id"] == info["Id"] and both[1]["Id"].startswith("sha256:")


def test_rm_running_needs_force_and_image_is_in_use(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "busy", "busybox", "sleep", "30", check=True)
    result = dy.cli("rm", "busy")
    assert result.returncode == 1 and "You cannot remove a running container" in result.stderr
    rmi = dy.cli("rmi", "busybox")
    assert rmi.returncode == 1 and "is using its referenced image" in rmi.stderr
    pid = int(dy.cli("inspect", "-f", "{{.State.Pid}}", "busy").stdout)
    assert dy.cli("rm", "-f", "busy", check=True).stdout == "busy\n"
    assert wait_for(lambda: not alive(pid), 3)
    assert dy.cli("ps", "-aq").stdout == ""
    assert not list((dy.root / "containers").iterdir())


def test_limits_readonly_tmpfs_and_network(dy: Dockyard) -> None:
    script = ("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; ulimit -n; "
              "touch /x 2>/dev/null || echo ro; touch /run/y && echo tmpfs; ls /sys/class/net | tr '\\n' ' '")
    result = dy.cli("run", "--rm", "--pids-limit", "20", "--ulimit", "nofile=100:200", "--read-only",
                    "--tmpfs", "/run", "-m", "64m", "--cpus", "0.5", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["20", "100", "ro", "tmpfs"]
    assert result.stdout.split("\n")[4].split() == ["eth0", "lo"]  # its own namespace on the default bridge
    none = dy.cli("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net", check=True).stdout
    assert none.split() == ["lo"]  # loopback only
    caps = dy.cli("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_RAW", "busybox", "grep", "CapEff",
                  "/proc/self/status").stdout
    assert caps.split()[1] == "0000000000002000"
    host = dy.cli("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net").stdout.split()
    assert len(host) > 1


def _on_a_terminal(rt: Dockyard, *args: str) -> tuple[int, str]:
    """Run ``dockyard ARGS`` with a pty as its stdin/stdout/stderr: (exit code, what it wrote)."""
    import os
    import select
    import sys

    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", *args], stdin=slave, stdout=slave, stderr=slave,
                                env={**rt.env, "DOCKYARD_RUNTIME": rt.runtime}, start_new_session=True)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:   # EIO: every holder of the slave is gone
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(10), out.decode(errors="replace").replace("\r", "")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_exec_tty_is_the_containers_own(rt: Dockyard) -> None:
    """exec -t: the process sits on a pty of the container's devpts, so `tty` names it."""
    rt.cli("run", "-d", "--name", "ttyexec", "busybox", "sleep", "60", check=True)
    code, out = _on_a_terminal(rt, "exec", "-t", "ttyexec", "sh", "-c", "tty; echo $TERM; exit 4")
    lines = out.split("\n")
    assert code == 4, out
    assert lines[0].startswith("/dev/pts/") and lines[1] == "xterm", out


class _Terminal:
    """``dockyard ARGS`` on a pty we type into and read from."""

    def __init__(self, rt: Dockyard, *args: str) -> None:
        import os
        import sys

        self.master, slave = os.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "dockyard", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env={**rt.env, "DOCKYARD_RUNTIME": rt.runtime},
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 15) -> None:
        import os
        import select

        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} in {self.seen!r}"
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    break
        assert text in self.seen, self.seen

    def type(self, data: bytes) -> None:
        import os

        os.write(self.master, data)

    def close(self) -> int:
        import os

        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


def test_detach_keys_leave_the_container_running(dy: Dockyard) -> None:
    term = _Terminal(dy, "run", "-it", "--name", "detaching", "busybox", "sh")
    try:
        term.expect(b"/ # ")     # the shell is up: typing now goes to it
        term.type(b"echo the-$((40+2))\n")
        term.expect(b"the-42")
        term.type(b"\x10\x11")   # ctrl-p ctrl-q
    finally:
        code = term.close()
    assert code == 0
    assert dy.cli("inspect", "-f", "{{.State.Status}}", "detaching").stdout.strip() == "running"
    again = _Terminal(dy, "attach", "--detach-keys", "ctrl-x,x", "detaching")
    try:
        time.sleep(0.3)   # attached: what we type now goes to the same shell
        again.type(b"echo back-$((1+1))\n")
        again.expect(b"back-2")
        again.type(b"\x18x")
    finally:
        code = again.close()
    assert code == 0
    assert dy.cli("inspect", "-f", "{{.State.Status}}", "detaching").stdout.strip() == "running"
    bad = dy.cli("run", "--rm", "--detach-keys", "ctrl-1", "busybox", "true")
    assert bad.returncode == 125 and "Invalid detach keys (ctrl-1) provided" in bad.stderr
    assert dy.cli("ps", "-aq").stdout.split() == [dy.cli("inspect", "-f", "{{.Id}}", "detaching").stdout[:12]]


def test_tty_and_init(dy: Dockyard) -> None:
    tty = dy.cli("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo $TERM")
    assert tty.returncode == 0 and tty.stdout.replace("\r", "").split("\n")[:2] == ["/dev/pts/0", "xterm"]
    import shutil

    if not (shutil.which("docker-init") or shutil.which("tini")):
        pytest.skip("no docker-init or tini on this host (apt-get install tini)")
    ps = dy.cli("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm").stdout.split()
    assert ps[2:4] == ["1", "docker-init"] or ps[2:4] == ["1", "tini"]
    dy.cli("run", "-d", "--init", "--name", "polite", "busybox", "sleep", "100", check=True)
    started = time.monotonic()
    dy.cli("stop", "polite", check=True)  # the init forwards SIGTERM: no 10 s wait
    assert time.monotonic() - started < 5


def test_rm_containers_mount_volatile(dy: Dockyard) -> None:
    """--rm rootfs skips overlayfs's syncs (the unmount's is on `run --rm`'s path); others keep them."""
    from pathlib import Path

    def rootfs_options(name: str) -> str:
        cid = dy.cli("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4].endswith(f"/containers/{cid}/rootfs"):
                return fields[-1]
        raise AssertionError(f"no rootfs mount for {name}")

    dy.cli("run", "-d", "--rm", "--name", "fleeting", "busybox", "sleep", "30", check=True)
    dy.cli("run", "-d", "--name", "lasting", "busybox", "sleep", "30", check=True)
    volatile = {"volatile", "fsync=volatile"}   # how kernels before and after 6.6 show it
    assert volatile & set(rootfs_options("fleeting").split(","))
    assert not volatile & set(rootfs_options("lasting").split(","))


def test_pause_freezes_through_the_runtime(rt: Dockyard) -> None:
    """pause/unpause go through the container's own runtime: its state says paused, the
    container's code stands still, and a paused container can still be stopped and removed."""
    rt.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done",
           check=True)
    engine = rt.engine()
    try:
        record = engine.containers.get("ticker")
        runtime = engine.containers.runtime_of(record)
        assert runtime.name == rt.runtime
        assert wait_for(lambda: len(rt.cli("logs", "ticker").stdout.split()) > 2)
        rt.cli("pause", "ticker", check=True)
        assert runtime.state(record.id).status == "paused"
        time.sleep(0.15)
        frozen = rt.cli("logs", "ticker").stdout
        time.sleep(0.4)
        assert rt.cli("logs", "ticker").stdout == frozen
        assert rt.cli("pause", "ticker").stderr.endswith("is already paused\n")
        rt.cli("unpause", "ticker", check=True)
        assert runtime.state(record.id).status == "running"
        assert wait_for(lambda: rt.cli("logs", "ticker").stdout != frozen)
        rt.cli("pause", "ticker", check=True)
        rt.cli("stop", "-t", "1", "ticker", check=True)
        assert rt.cli("inspect", "-f", "{{.State.Status}}", "ticker").stdout == "exited\n"
        assert not runtime.exists(record.id)
    finally:
        engine.close()
