"""pyrunc's command line and the pieces behind it that need no root: parsing (--help,
--version, the new verbs), update's resources, the stats reader, ``spec``, hooks, the spec
checks and the error messages (issue 13)."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from pathlib import Path

import pytest

from dockyard.runtime.pyrunc import caps, cli, container, hooks, state
from dockyard.runtime.pyrunc.state import SetupError

# ------------------------------------------------------------------ parsing, help, version


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--root", "/x", "--help"], ["help"], ["h"]])
def test_help_is_a_command(argv, capsys) -> None:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("NAME:\n   pyrunc - ") and "USAGE:" in out and "GLOBAL OPTIONS:" in out
    for verb in ("create", "run", "update", "events", "features", "spec", "list", "pause", "resume"):
        assert f"\n   {verb} " in out


@pytest.mark.parametrize("argv", [["update", "--help"], ["update", "-h"], ["help", "update"]])
def test_help_for_one_command(argv, capsys) -> None:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("NAME:\n   pyrunc update - update container resource constraints")
    assert "--resources value, -r value" in out and "--pids-limit" in out


@pytest.mark.parametrize("argv", [["--version"], ["-v"]])
def test_version_has_runcs_shape(argv, capsys) -> None:
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["pyrunc", "commit:", "spec:", "python:", "libseccomp:"]
    assert lines[0] == f"pyrunc version {cli.VERSION}" and lines[2] == f"spec: {state.OCI_VERSION}"
    assert lines[3] == f"python: {sys.version.split()[0]}"


def test_version_constants_agree() -> None:
    import dockyard

    assert cli.VERSION == dockyard.__version__ and cli.SPEC_VERSION == state.OCI_VERSION
    assert cli.DEFAULT_ROOT == state.DEFAULT_ROOT


def test_usage_errors_exit_2(capsys) -> None:
    assert cli.main(["--bogus"]) == 2
    assert cli.main(["nonsense"]) == 2
    assert cli.main(["help", "nonsense"]) == 2
    assert cli.main(["update", "--bogus", "x"]) == 2
    assert "unknown option --bogus for update" in capsys.readouterr().err


def test_parse_new_verbs() -> None:
    assert cli.parse(["update", "--memory", "1g", "-r", "-", "c1"]) == (
        cli.DEFAULT_ROOT, "update", {"--memory": ["1g"], "-r": ["-"]}, ["c1"])
    assert cli.parse(["--log", "/tmp/l", "events", "--stats", "c1"])[1:] == ("events", {"--stats": ["true"]}, ["c1"])
    assert cli._globals["--log"] == "/tmp/l"
    assert cli.parse(["spec", "--rootless", "-b", "/b"])[1:] == ("spec", {"--rootless": ["true"], "-b": ["/b"]}, [])
    assert cli.parse(["features"])[1] == "features"


def test_internal_errors_are_one_line(capsys, monkeypatch) -> None:
    def boom(*args):  # noqa: ANN002
        raise KeyError("process")

    monkeypatch.setattr(cli, "_dispatch", boom)
    assert cli.main(["state", "x"]) == 1
    err = capsys.readouterr().err
    assert err == "pyrunc: state: internal error: KeyError: 'process' (--debug shows where)\n"
    with pytest.raises(KeyError):
        cli.main(["--debug", "state", "x"])


# ------------------------------------------------------------------ update


@pytest.mark.parametrize("text,value", [("1024", 1024), ("1k", 1024), ("96m", 96 << 20), ("2g", 2 << 30),
                                        ("1.5G", 3 << 29), ("10MB", 10 << 20), ("10MiB", 10 << 20), ("-1", -1)])
def test_parse_bytes(text, value) -> None:
    assert cli.parse_bytes(text, "--memory") == value


@pytest.mark.parametrize("text", ["", "x", "1q", "-5m"])
def test_parse_bytes_refuses(text) -> None:
    with pytest.raises(cli.UsageError):
        cli.parse_bytes(text, "--memory")


def test_update_flags_make_resources() -> None:
    _, _, options, _ = cli.parse(["update", "--memory", "96m", "--memory-swap", "-1", "--memory-reservation", "32m",
                                  "--cpu-share", "512", "--cpu-quota", "50000", "--cpu-period", "100000",
                                  "--cpuset-cpus", "0-1", "--cpuset-mems", "0", "--pids-limit", "50",
                                  "--blkio-weight", "300", "c1"])
    assert cli.update_resources(options) == {
        "memory": {"limit": 96 << 20, "swap": -1, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 50}, "blockIO": {"weight": 300}}


def test_update_resources_file_wins(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"memory": {"limit": 1000}}')
    _, _, options, _ = cli.parse(["update", "--resources", str(path), "--pids-limit", "5", "c1"])
    assert cli.update_resources(options) == {"memory": {"limit": 1000}}  # runc: the other options are ignored
    _, _, options, _ = cli.parse(["update", "-r", "-", "c1"])
    assert cli.update_resources(options, stdin=io.StringIO('{"pids": {"limit": 7}}')) == {"pids": {"limit": 7}}
    with pytest.raises(cli.UsageError, match="invalid JSON"):
        cli.update_resources(options, stdin=io.StringIO("{nope"))
    _, _, options, _ = cli.parse(["update", "--l3-cache-schema", "L3:0=f", "c1"])
    with pytest.raises(cli.UsageError, match="Intel RDT"):
        cli.update_resources(options)


@pytest.mark.parametrize("text,seconds", [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0)])
def test_interval_durations(text, seconds) -> None:
    assert cli._duration(text) == seconds


# ------------------------------------------------------------------ stats


class FakeCgroup:
    """A v1 cgroup whose controllers' files live under tmp_path/<controller>/."""

    unified = False

    def __init__(self, base: Path) -> None:
        self.base = base

    def dir(self, controller: str) -> str | None:
        path = self.base / controller
        return str(path) if path.is_dir() else None


def _files(base: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_stats_v1(tmp_path) -> None:
    _files(tmp_path, {
        "cpuacct/cpuacct.usage": "3000\n", "cpuacct/cpuacct.usage_percpu": "1000 2000 \n",
        "cpuacct/cpuacct.stat": f"user {os.sysconf('SC_CLK_TCK')}\nsystem 0\n",
        "cpu/cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        "memory/memory.limit_in_bytes": "67108864\n", "memory/memory.usage_in_bytes": "4096\n",
        "memory/memory.max_usage_in_bytes": "8192\n", "memory/memory.failcnt": "0\n",
        "memory/memory.stat": "cache 100\ntotal_cache 200\nrss 5\n",
        "pids/pids.current": "3\n", "pids/pids.max": "40\n",
        "blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        "hugetlb/hugetlb.2MB.usage_in_bytes": "0\n", "hugetlb/hugetlb.2MB.max_usage_in_bytes": "0\n",
        "hugetlb/hugetlb.2MB.failcnt": "0\n",
    })
    data = cli.cgroup_stats(FakeCgroup(tmp_path))
    assert data["cpu"] == {"usage": {"total": 3000, "percpu": [1000, 2000], "kernel": 0, "user": 1_000_000_000},
                           "throttling": {}}
    assert data["memory"]["cache"] == 200
    assert data["memory"]["usage"] == {"limit": 64 << 20, "usage": 4096, "max": 8192, "failcnt": 0}
    assert data["memory"]["raw"] == {"cache": 100, "total_cache": 200, "rss": 5}
    assert data["pids"] == {"current": 3, "limit": 40}
    assert data["blkio"] == {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 10},
                                                         {"major": 8, "minor": 0, "op": "Write", "value": 20}]}
    assert data["hugetlb"] == {"2MB": {"failcnt": 0}}
    assert data["network_interfaces"] is None and data["intel_rdt"] == {}
    json.dumps(data)


def test_stats_v2(tmp_path) -> None:
    _files(tmp_path, {
        "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 3\n",
        "memory.max": "max\n", "memory.current": "4096\n", "memory.stat": "file 12\nanon 30\n",
        "memory.events": "low 0\nhigh 0\nmax 2\noom 0\n", "pids.current": "2\n", "pids.max": "max\n",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    })
    data = cli._stats_v2(str(tmp_path))
    assert data["cpu"] == {"usage": {"total": 7000, "kernel": 2000, "user": 5000},
                           "throttling": {"periods": 4, "throttled_periods": 1, "throttled_time": 3000}}
    assert data["memory"]["usage"]["failcnt"] == 2 and data["memory"]["cache"] == 12
    assert data["pids"] == {"current": 2}
    assert [e["op"] for e in data["blkio"]["ioServiceBytesRecursive"]] == ["Read", "Write"]


# ------------------------------------------------------------------ spec and features


RUNC_SPEC_KEYS = {"ociVersion", "process", "root", "hostname", "mounts", "linux"}


def test_default_spec_is_runcs(tmp_path, capsys) -> None:
    spec = cli.default_spec()
    assert set(spec) == RUNC_SPEC_KEYS
    assert spec["process"]["capabilities"]["ambient"] == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert "inheritable" not in spec["process"]["capabilities"]  # runc's own spec: ambient without inheritable
    assert spec["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert cli.main(["spec", "--bundle", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "config.json").read_text()) == spec
    assert cli.main(["spec", "--bundle", str(tmp_path)]) == 1
    assert "File config.json exists. Remove it first" in capsys.readouterr().err
    assert cli.main(["spec", "--rootless", "--bundle", str(tmp_path / "x")]) == 1


def test_features_shape() -> None:
    found = cli.features()
    assert set(found) == {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"}
    assert found["hooks"] == list(hooks.KINDS)
    assert set(found["linux"]) == {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux"}
    assert found["linux"]["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False}
    assert "SCMP_ACT_ERRNO" in found["linux"]["seccomp"]["actions"]


def test_list_table_is_runcs(tmp_path, capsys) -> None:
    """runc's tabwriter layout, on a state dir with one (stopped) container."""
    root = tmp_path / "state"
    (root / "c1").mkdir(parents=True)
    (root / "c1" / "state.json").write_text(json.dumps({
        "id": "c1", "pid": 2**22 + 1, "starttime": "1", "bundle": "/b", "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00.000000000Z", "cgroup": "/pyrunc-unit-none/c1"}))
    assert cli.main(["--root", str(root), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ID          PID         STATUS      BUNDLE      CREATED                          OWNER"
    owner = __import__("pwd").getpwuid(os.getuid()).pw_name
    assert lines[1] == f"c1          0           stopped     /b          2024-01-01T00:00:00.000000000Z   {owner}"
    assert cli.main(["--root", str(root), "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["owner"] == owner
    assert cli.main(["--root", str(tmp_path / "empty"), "list", "-f", "json"]) == 0
    assert capsys.readouterr().out == "null\n"  # as runc prints no containers


# ------------------------------------------------------------------ hooks


def _hook(tmp_path: Path, body: str, **fields) -> dict:  # noqa: ANN003
    script = tmp_path / f"hook{len(list(tmp_path.iterdir()))}.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return {"path": str(script), **fields}


def test_hook_gets_state_env_and_args(tmp_path) -> None:
    script = f'tr "\\0" " " < /proc/$$/cmdline > {tmp_path}/argv; env > {tmp_path}/env; cat > {tmp_path}/stdin'
    hook = {"path": "/bin/sh", "args": ["name0", "-c", script, "a"], "env": ["ONE=1", "TWO=2 2"]}
    st = hooks.state("c1", "creating", 42, "/bundle", {"k": "v"})
    hooks.run("createRuntime", [hook], st)
    argv = (tmp_path / "argv").read_text()
    assert argv.startswith("name0 -c ") and argv.endswith(" a ")  # args as given, argv[0] included
    env = set((tmp_path / "env").read_text().splitlines())
    assert env - {"PWD=" + os.getcwd(), "SHLVL=1", "_=/usr/bin/env"} == {"ONE=1", "TWO=2 2"}
    assert json.loads((tmp_path / "stdin").read_text()) == {
        "ociVersion": state.OCI_VERSION, "id": "c1", "status": "creating", "pid": 42, "bundle": "/bundle",
        "annotations": {"k": "v"}}


def test_hook_without_args_gets_its_path_as_argv0(tmp_path) -> None:
    out = tmp_path / "out"
    hook = _hook(tmp_path, f'echo "$0" > {out}\n')
    hooks.run("poststart", [hook], hooks.state("c1", "running", 1, "/b", None))
    assert out.read_text().strip() == hook["path"]


def test_hook_failure_and_timeout(tmp_path) -> None:
    st = hooks.state("c1", "stopped", 0, "/b", None)
    assert "pid" not in st and "annotations" not in st
    failing = _hook(tmp_path, "echo to-out; echo to-err >&2; exit 3\n")
    with pytest.raises(hooks.HookError) as caught:
        hooks.run("prestart", [_hook(tmp_path, "exit 0\n"), failing], st)
    assert str(caught.value) == (f"error running prestart hook #1 ({failing['path']}): exit status 3, "
                                 "stdout: to-out, stderr: to-err")
    assert caught.value.destroys
    slow = _hook(tmp_path, "exec sleep 30\n", timeout=1)
    with pytest.raises(hooks.HookError, match=r"createRuntime hook #0 .*timeout of 1s"):
        hooks.run("createRuntime", [slow], st)
    with pytest.raises(hooks.HookError, match="exec /no/such/hook: No such file"):
        hooks.run("poststart", [{"path": "/no/such/hook"}], st)


def test_poststop_failures_are_warnings(tmp_path) -> None:
    out = tmp_path / "ran"
    warnings: list[str] = []
    hooks.run_warning("poststop", [_hook(tmp_path, "exit 1\n"), _hook(tmp_path, f"touch {out}\n")],
                      hooks.state("c1", "stopped", 0, "/b", None), warnings.append)
    assert len(warnings) == 1 and "poststop hook #0" in warnings[0] and out.exists()


@pytest.mark.parametrize("bad,message", [
    ({"prestart": [{"path": "rel"}]}, "hooks.prestart[0]: path must be absolute"),
    ({"prestart": [{"path": "/bin/true", "timeout": 0}]}, "timeout must be a positive number"),
    ({"preStart": [{"path": "/bin/true"}]}, "unknown hook kind 'preStart'"),
])
def test_hooks_validated(bad, message) -> None:
    with pytest.raises(SetupError, match=message.replace("[", r"\[").replace("]", r"\]")):
        hooks.validate({"hooks": bad})


# ------------------------------------------------------------------ spec checks, warnings, errors


def _spec(**changes) -> dict:  # noqa: ANN003
    spec = {"root": {"path": "/r"}, "process": {"args": ["true"], "cwd": "/"}, "mounts": [],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}
    spec.update(changes)
    return spec


def test_check_spec_process_optional_until_start() -> None:
    spec = _spec()
    del spec["process"]
    container.check_spec(spec, starting=False)
    with pytest.raises(SetupError, match="process property must not be empty"):
        container.check_spec(spec, starting=True)


def test_check_spec_without_mount_namespace(capsys) -> None:
    linux = {"namespaces": [{"type": "pid"}], "maskedPaths": ["/proc/kcore"]}
    with pytest.raises(SetupError, match="without a private MNT namespace"):
        container.check_spec(_spec(linux=linux), starting=True)
    container.check_spec(_spec(linux={"namespaces": [{"type": "pid"}]}, root={"path": "/r", "readonly": True},
                               mounts=[{"destination": "/proc", "type": "proc"}]), starting=True)
    err = capsys.readouterr().err
    assert "pyrunc warning: no mount namespace: the 1 mounts" in err and "root.readonly is ignored" in err
    assert "pyrunc: " not in err  # callers read "pyrunc: " as the runtime's failure


def test_check_spec_ambient_warning(capsys) -> None:
    capabilities = {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_CHOWN"],
                    "ambient": ["CAP_KILL", "CAP_CHOWN", "CAP_NOT_A_CAP"]}
    assert caps.unraisable_ambient(capabilities) == ["CAP_KILL"]
    container.check_spec(_spec(process={"args": ["true"], "capabilities": capabilities}), starting=True)
    assert "can't raise ambient capabilities CAP_KILL:" in capsys.readouterr().err


def test_check_spec_oom_and_apparmor(monkeypatch) -> None:
    with pytest.raises(SetupError, match="oomScoreAdj must be an integer from -1000 to 1000"):
        container.check_spec(_spec(process={"args": ["true"], "oomScoreAdj": 5000}), starting=True)
    monkeypatch.setattr(container, "apparmor_enabled", lambda: False)
    with pytest.raises(SetupError, match="apparmor profile `p` is set in the config, but AppArmor is not enabled"):
        container.check_spec(_spec(process={"args": ["true"], "apparmorProfile": "p"}), starting=True)


def test_check_spec_user_namespace() -> None:
    linux = {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}]}
    with pytest.raises(SetupError, match="no namespace path to join nor mappings"):
        container.check_spec(_spec(linux=linux), starting=True)
    with pytest.raises(SetupError, match="user namespace isn't enabled"):
        container.check_spec(_spec(linux={"namespaces": [{"type": "mount"}],
                                          "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}), starting=True)
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    container.check_spec(_spec(linux={**linux, "uidMappings": maps, "gidMappings": maps}), starting=True)


def test_warnings_go_to_the_log_file(tmp_path, monkeypatch, capsys) -> None:
    log = tmp_path / "log"
    monkeypatch.setattr(state, "LOG_PATH", str(log))
    state.warn("something skipped")
    assert log.read_text() == "pyrunc warning: something skipped\n" and capsys.readouterr().err == ""


def test_describe_names_operation_and_path() -> None:
    def mknod_failure() -> None:
        def _mknod(path: str) -> None:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))  # os.mknod's: no filename

        _mknod("/rootfs/dev/null")

    try:
        mknod_failure()
    except OSError as e:
        assert container._refined_step(e) == "creating device nodes"
        assert container.describe(e, "/rootfs") == "mknod /dev/null: Operation not permitted"
    linux_style = OSError(errno.EPERM, "mount proc on /r/proc: Operation not permitted", "/r/proc")
    assert container.describe(linux_style, "/r") == "mount proc on /r/proc: Operation not permitted"
    assert container.describe(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")) == \
        "/x: No such file or directory"
    assert container.describe(KeyError("process")) == "KeyError: 'process'"


def test_step_wraps_os_errors() -> None:
    with pytest.raises(SetupError) as caught, container.step("creating the cgroup /a"):
        raise PermissionError(errno.EACCES, "Permission denied", "/sys/fs/cgroup/a")
    assert str(caught.value) == "creating the cgroup /a: /sys/fs/cgroup/a: Permission denied"
    with pytest.raises(SetupError, match="^as it was$"), container.step("ignored"):
        raise SetupError("as it was")
