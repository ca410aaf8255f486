"""The parity suite: the same busybox bundle under pyrunc, crun and runc; crun is the oracle.

Each probe runs a command in a fresh container and reduces its output to what must
match. pyrunc must equal crun on every probe; runc is held to the same, except where
it is known to build the container differently (``RUNC_DIFFERS``), where the probe
compares only what runc does agree on.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any, Callable

import pytest

from dockyard.runtime import spec as specs
from dockyard.runtime.oci import OCIRuntime, OCIRuntimeError
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, run_in, runtime, runtime_roots)

_oracle_cache: dict[str, Any] = {}


# What runc does differently by design, and the part of a probe it is held to there.
RUNC_DIFFERS: dict[str, Callable[[Any], Any]] = {
    # runc bind-mounts the host's device nodes and leaves masked files read-write
    # (they are /dev/null either way): compare mount points only.
    "mounts-True": lambda table: [row[0] for row in table],
    # bind-mounted host nodes carry the host's dates, and runc adds no /dev/core link.
    # A line is "MODE MAJOR, MINOR HH:MM NAME": mode and name (the time differs across a minute's turn).
    "devices": lambda text: sorted(line.split()[0] + " " + line.split()[-1] for line in text.splitlines()[:-2]
                                   if line.startswith("c") and len(line.split()) > 3),
}


def check(runtime: OCIRuntime, runtime_roots: dict[str, OCIRuntime], bundles: Bundles, name: str,
          probe: Callable[[OCIRuntime, Bundles], Any]) -> Any:
    """Run ``probe`` under ``runtime`` and under crun (once per probe) and compare."""
    observed = probe(runtime, bundles)
    if runtime.name != "crun":
        if name not in _oracle_cache:
            _oracle_cache[name] = probe(get_runtime(runtime_roots, "crun"), bundles)
        expected = _oracle_cache[name]
        if runtime.name == "runc" and name in RUNC_DIFFERS:
            reduce = RUNC_DIFFERS[name]
            assert reduce(observed) == reduce(expected), f"runc differs from crun on {name}"
        else:
            assert observed == expected, f"{runtime.name} differs from crun on {name}"
    return observed


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


# ------------------------------------------------------------------ identity


def test_hostname_and_pid1(runtime, runtime_roots, bundles) -> None:
    def probe(rt, b):
        return out(run_in(rt, b, ["sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '"]))

    assert check(runtime, runtime_roots, bundles, "hostname", probe) == "parity\n1\nsh -c hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' ' "


_STATUS = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status"


def test_status_default(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "status-default",
                   lambda rt, b: out(run_in(rt, b, ["sh", "-c", _STATUS])))
    fields = dict(line.split(":\t") for line in result.splitlines())
    assert int(fields["CapBnd"], 16) == specs.capability_mask(specs.DEFAULT_CAPABILITIES)
    assert fields["CapEff"] == fields["CapBnd"] and int(fields["CapInh"], 16) == 0
    assert fields["NoNewPrivs"] == "0" and fields["Seccomp"] == "2"


def test_status_nobody_no_new_privs(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "status-nobody", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", _STATUS + "; id"], user="nobody", no_new_privileges=True, cap_drop=["NET_RAW"])))
    fields = dict(line.split(":\t") for line in result.splitlines()[:-1])
    assert int(fields["CapEff"], 16) == 0 and fields["NoNewPrivs"] == "1"
    assert result.splitlines()[-1] == "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)"  # as docker


def test_user_groups(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "groups", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "id; grep -E '^(Uid|Gid|Groups):' /proc/self/status"], user="1000:1000",
        group_add=["nobody", "42"])))
    assert result.splitlines()[0] == "uid=1000 gid=1000 groups=42,1000,65534(nobody)"


def test_env_and_cwd(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "env", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "env | sort; pwd"], env=["FOO=bar baz", "EMPTY="], workdir="/tmp/cwd-probe")))
    lines = result.splitlines()
    assert "FOO=bar baz" in lines and "EMPTY=" in lines and "HOSTNAME=parity" in lines
    assert lines[-1] == "/tmp/cwd-probe"


def test_rlimits_from_hard_limits(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "rlimits", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"], ulimits={"core": (0, 0)})))
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert result.split() == [str(hard), str(hard), "0"]


# ------------------------------------------------------------------ filesystem

def _mount_table(text: str, loose: bool) -> list[tuple[str, ...]]:
    rows = []
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        point, opts, fstype = fields[4], fields[5].split(","), fields[sep + 1]
        if loose:
            if fstype == "devtmpfs" and point.startswith("/dev/"):
                continue  # runc binds the host's device nodes where crun creates them
            rows.append((point, opts[0]))
        else:
            rows.append((point, fstype, ",".join(sorted(opts))))
    return sorted(rows)


@pytest.mark.parametrize("loose", [False, True], ids=["exact", "points"])
def test_mount_table(runtime, runtime_roots, bundles, loose) -> None:
    if not loose and runtime.name == "runc":
        pytest.skip("runc differs by design: host device binds, nosuid kept on read-only /proc paths, "
                    "rw masked files; compared by mount point and ro/rw only")
    table = check(runtime, runtime_roots, bundles, f"mounts-{loose}", lambda rt, b: _mount_table(
        out(run_in(rt, b, ["cat", "/proc/self/mountinfo"])), loose))
    points = {row[0] for row in table}
    assert {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} <= points


_MASK_PROBE = """for p in %s; do
  if [ -d $p ]; then echo "$p dir $(ls -A $p | wc -l)";
  elif [ -e $p ]; then echo "$p file $(head -c 100 $p 2>/dev/null | wc -c)";
  else echo "$p absent"; fi
done""" % " ".join(specs.MASKED_PATHS)


def test_masked_paths_unreadable(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "masked", lambda rt, b: out(run_in(rt, b, ["sh", "-c", _MASK_PROBE])))
    for line in result.splitlines():
        path, kind, *rest = line.split()
        assert kind == "absent" or rest == ["0"], line


_RO_PROBE = """for p in /proc/sys/kernel/domainname /proc/sysrq-trigger /proc/irq/default_smp_affinity /proc/bus/x /proc/fs/x /sys/kernel/uevent_helper /sys/x; do
  if (echo x > $p) 2>/dev/null; then echo "$p writable"; else echo "$p denied"; fi
done"""


def test_readonly_paths_unwritable(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "readonly", lambda rt, b: out(run_in(rt, b, ["sh", "-c", _RO_PROBE])))
    assert "writable" not in result, result


def test_readonly_root(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "ro-root", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "touch /x 2>/dev/null && echo writable || echo denied; touch /dev/shm/x && echo shm ok"],
        read_only=True)))
    assert result == "denied\nshm ok\n"


def test_devices(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "devices", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "ls -l /dev | grep -v total | awk '{print $1, $5, $6, $9, $10, $11}'; "
                            "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null ok"])))
    assert "null ok" in result


# ------------------------------------------------------------------ limits

def test_memory_limit_oom_kills(runtime, runtime_roots, bundles) -> None:
    result = check(runtime, runtime_roots, bundles, "oom", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $?"],
        memory=32 << 20, memory_swap=32 << 20)))
    assert result.strip() == "137"


def test_pids_limit_bounds_fork_loop(runtime, runtime_roots, bundles) -> None:
    # busybox sh gives up ("can't fork") at the first failed fork: count the successes.
    script = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); echo $i; done"

    def probe(rt, b):
        result = run_in(rt, b, ["sh", "-c", script], pids_limit=12)
        return result.returncode, result.stdout.split()[-1:], b"can't fork" in result.stderr

    code, last, refused = check(runtime, runtime_roots, bundles, "pids", probe)
    assert code != 0 and refused and last == [b"11"]  # the shell itself is the 12th


def test_cpu_quota_visible(runtime, runtime_roots, bundles) -> None:
    script = "if [ -f /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; " \
             "else cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; fi"
    result = check(runtime, runtime_roots, bundles, "cpu", lambda rt, b: out(run_in(
        rt, b, ["sh", "-c", script], cpu_quota=50000, cpu_period=100000, cpu_shares=512)))
    assert result.split() == ["50000", "100000"]


# ------------------------------------------------------------------ exit codes and errors

def test_exit_code(runtime, runtime_roots, bundles) -> None:
    assert check(runtime, runtime_roots, bundles, "exit", lambda rt, b: run_in(rt, b, ["sh", "-c", "exit 7"]).returncode) == 7


def _run_and_signal(rt: OCIRuntime, b: Bundles, command: list[str], signal: str) -> int:
    cid, bundle = b.make(rt.name, command)
    proc = subprocess.Popen(rt.argv("run", "--bundle", str(bundle), cid), env=rt._env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if rt.state(cid).status == "running":
                    break
            except OCIRuntimeError:
                pass
            time.sleep(0.02)
        time.sleep(0.2)  # let the shell install its trap
        rt.kill(cid, signal)
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)


def test_signal_exit_is_128_plus_n(runtime, runtime_roots, bundles) -> None:
    assert check(runtime, runtime_roots, bundles, "sigkill", lambda rt, b: _run_and_signal(
        rt, b, ["sleep", "60"], "KILL")) == 137


def test_signal_reaches_handler(runtime, runtime_roots, bundles) -> None:
    assert check(runtime, runtime_roots, bundles, "sigterm", lambda rt, b: _run_and_signal(
        rt, b, ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"], "TERM")) == 42


@pytest.mark.parametrize("command, workdir, code", [
    (["no-such-program"], None, 127),
    (["/no/such/path"], None, 127),
    (["/notexec"], None, 126),
    (["/badformat"], None, 126),
    (["true"], "/etc/passwd", 126),
], ids=["missing", "missing-path", "permission", "exec-format", "cwd-not-dir"])
def test_start_errors(runtime, runtime_roots, bundles, command, workdir, code) -> None:
    def probe(rt, b):
        with pytest.raises(OCIRuntimeError) as info:
            run_in(rt, b, command, workdir=workdir)
        return info.value.exit_code

    assert check(runtime, runtime_roots, bundles, f"error-{command[0]}-{workdir}", probe) == code


def test_missing_cwd_is_created(runtime, runtime_roots, bundles) -> None:
    assert check(runtime, runtime_roots, bundles, "cwd-create", lambda rt, b: out(run_in(
        rt, b, ["pwd"], workdir="/tmp/created/by/runtime"))) == "/tmp/created/by/runtime\n"
