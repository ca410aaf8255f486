"""The commands issue 14 added: version, info (system info), diff, commit, export, update,
completion, the global -v/--version, -l, -H, --config, and the container/image aliases.

Each command's effect and output shape; side by side with a private dockerd (Debian's 20.10)
where Docker's own output is the oracle: version and info key sets, diff of the same change
sequence, commit's image and history, export's file list.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing import dockerd

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy, rt, wait_for  # noqa: F401
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - crun's hugetlb fix

CHANGES = "touch /a; rm /etc/group; mkdir /d; echo x > /d/f; rm /bin/zcat; mkdir -p /usr/new/deep; touch /usr/new/deep/f"
needs_docker = pytest.mark.skipif(not dockerd.available(), reason="docker.io is not installed (the Docker oracle)")


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Key paths of a JSON tree (list items as [])."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + k)
            out |= _keys(v, prefix + k + ".")
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, prefix + "[].")
    return out


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---- version -------------------------------------------------------------------------------


def test_global_version_flag_prints_docker_s_line(dy: Dockyard) -> None:
    for flag in ("--version", "-v"):
        out = _ok(dy.cli(flag))
        assert out.startswith("Dockyard version 0.1.0, build ") and out.count("\n") == 1
    # Behind global options too, as docker takes it.
    assert _ok(dy.cli("--root", str(dy.root), "-D", "--version")).startswith("Dockyard version ")


def test_global_version_flag_is_cheap(dy: Dockyard) -> None:
    """Handled before click: a bare interpreter's start-up plus a few ms."""
    env = {k: v for k, v in dy.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    entry = shutil.which("dockyard", path=str(Path(sys.executable).parent)) or "dockyard"
    subprocess.run([entry, "--version"], env=env, capture_output=True)   # byte-compiled once

    def best(argv: list[str]) -> float:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    bare = best([sys.executable, "-c", "pass"])
    ours = best([entry, "--version"])
    assert ours < bare + 0.02, (ours, bare)


@needs_docker
def test_version_has_docker_s_sections_and_keys(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    text = _ok(dy.cli("version"))
    theirs_text = docker.cli("version")
    labels = lambda t: [line.split(":")[0] for line in t.splitlines() if line.strip()]  # noqa: E731
    ours_labels = [s.replace("Python version", "Go version") for s in labels(text)]
    theirs_labels = labels(theirs_text)
    # Same Client and Engine lines in the same order; a runtime component follows the engine.
    assert ours_labels[:ours_labels.index(" pyrunc")] == theirs_labels[:theirs_labels.index(" containerd")]
    assert "  Version" in ours_labels[ours_labels.index(" pyrunc"):]
    ours = json.loads(_ok(dy.cli("version", "--format", "{{json .}}")))
    theirs = json.loads(docker.cli("version", "--format", "{{json .}}"))
    assert _keys(ours) == _keys(theirs)
    assert ours["Client"]["ApiVersion"] == ours["Server"]["ApiVersion"] == "1.41"
    assert ours["Client"]["GoVersion"] == "python" + ".".join(map(str, sys.version_info[:3]))
    assert ours["Server"]["Components"][1]["Name"] == "pyrunc"
    assert _ok(dy.cli("version", "--format", "{{.Client.Version}}")) == "0.1.0\n"
    assert _ok(dy.cli("version", "-f", "{{.Server.Os}}/{{.Server.Arch}}")) == "linux/amd64\n" or os.uname().machine != "x86_64"


# ---- info ----------------------------------------------------------------------------------


def _labels(text: str) -> list[str]:
    return [line.split(":")[0] for line in text.splitlines() if line.strip() and ":" in line]


@needs_docker
def test_info_has_docker_s_sections_and_json_keys(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    ours = json.loads(_ok(dy.cli("info", "--format", "{{json .}}")))
    theirs = json.loads(docker.cli("info", "--format", "{{json .}}"))
    # Docker's key tree, less what Docker's own daemon has and dockyard has not.
    docker_only = {k for k in _keys(theirs) if k.startswith(("RegistryConfig.IndexConfigs.docker.io",
                                                              "Runtimes.io.containerd", "Runtimes.runc"))}
    assert _keys(theirs) - docker_only <= _keys(ours), sorted(_keys(theirs) - docker_only - _keys(ours))
    extra = {k for k in _keys(ours) - _keys(theirs) if not k.startswith(("Runtimes.", "RegistryConfig.IndexConfigs."))}
    assert not extra
    # The text: Docker's lines (minus containerd's and Init version) in Docker's order.
    text = _ok(dy.cli("info"))
    theirs_labels = [s for s in _labels(docker.cli("info")) if s not in (" containerd version", " init version")]
    ours_labels = _labels(text)
    assert [s for s in ours_labels if s in theirs_labels] == [s for s in theirs_labels if s in ours_labels]
    missing = set(theirs_labels) - set(ours_labels)
    assert not missing, missing
    assert _ok(dy.cli("system", "info", "--format", "{{json .}}")).startswith('{"ID":')


def test_info_counts_and_host_facts(dy: Dockyard) -> None:
    dy.cli("create", "--name", "i1", "busybox", "true", check=True)
    dy.cli("run", "-d", "--name", "i2", "--network", "none", "busybox", "sleep", "60", check=True)
    dy.cli("run", "-d", "--name", "i3", "--network", "none", "busybox", "sleep", "60", check=True)
    dy.cli("pause", "i3", check=True)
    d = json.loads(_ok(dy.cli("info", "--format", "{{json .}}")))
    assert (d["Containers"], d["ContainersRunning"], d["ContainersPaused"], d["ContainersStopped"]) == (3, 1, 1, 1)
    assert d["Images"] == 1
    assert d["Driver"] == "overlay2" and d["LoggingDriver"] == "json-file" and d["CgroupDriver"] == "cgroupfs"
    assert d["CgroupVersion"] == ("2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1")
    assert d["NCPU"] == len(os.sched_getaffinity(0))
    assert d["DockerRootDir"] == str(dy.root)
    assert d["DefaultRuntime"] == "pyrunc" and "pyrunc" in d["Runtimes"]
    assert ("crun" in d["Runtimes"]) == bool(shutil.which("crun"))
    assert d["KernelVersion"] == os.uname().release and d["OSType"] == "linux"
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    assert d["MemTotal"] == int(meminfo[1]) * 1024
    assert d["ID"] == json.loads(_ok(dy.cli("info", "--format", "{{json .}}")))["ID"]   # kept in the root
    text = _ok(dy.cli("info"))
    for line in (" Containers: 3", "  Running: 1", "  Paused: 1", "  Stopped: 1", " Images: 1",
                 " Storage Driver: overlay2", " Default Runtime: pyrunc", f" Docker Root Dir: {dy.root}",
                 f" Cgroup Version: {d['CgroupVersion']}", "  Network: bridge host none", "  Log: json-file"):
        assert line + "\n" in text, line
    assert _ok(dy.cli("info", "--format", "{{.ContainersRunning}}/{{.ContainersPaused}}")) == "1/1\n"
    dy.cli("unpause", "i3")


def test_info_warns_on_stderr_as_docker_does(dy: Dockyard) -> None:
    from dockyard.system.info import warnings

    facts = {k: True for k in ("MemoryLimit", "SwapLimit", "KernelMemory", "KernelMemoryTCP", "OomKillDisable",
                               "CpuCfsQuota", "CpuCfsPeriod", "CPUShares", "CPUSet", "IPv4Forwarding",
                               "BridgeNfIptables", "BridgeNfIp6tables")}
    facts["CgroupVersion"] = "1"
    assert warnings(facts) == []
    facts["SwapLimit"] = False
    assert warnings(facts) == ["WARNING: No swap limit support"]
    result = dy.cli("info")
    d = json.loads(_ok(dy.cli("info", "--format", "{{json .}}")))
    assert result.stderr == "".join(w + "\n" for w in d["Warnings"] or [])
    assert "WARNING" not in result.stdout


# ---- diff ----------------------------------------------------------------------------------


@needs_docker
def test_diff_lists_what_docker_lists(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    dy.cli("run", "--name", "d1", "--network", "none", "busybox", "sh", "-c", CHANGES, check=True)
    try:
        docker.cli("run", "--name", "d1", "busybox", "sh", "-c", CHANGES)
        theirs = docker.cli("diff", "d1").splitlines()
    finally:
        docker.run("rm", "-f", "d1")
    ours = _ok(dy.cli("diff", "d1")).splitlines()
    assert sorted(ours) == sorted(theirs)
    assert "D /etc/group" in ours and "C /etc" in ours and "A /d/f" in ours
    # Docker's order, made stable: a directory before what changed in it, names in order.
    assert ours == ["A /a", "C /bin", "D /bin/zcat", "A /d", "A /d/f", "C /etc", "D /etc/group",
                    "C /usr", "A /usr/new", "A /usr/new/deep", "A /usr/new/deep/f"]
    assert _ok(dy.cli("container", "diff", "d1")).splitlines() == ours


@needs_docker
@pytest.mark.parametrize("run_args", [
    ["-v", "/data", "-w", "/work/dir", "busybox", "touch", "/x"],
    ["busybox", "sh", "-c", "rm -rf /root /usr; mkdir /root /usr; touch /root/x /usr/x; mkdir /usr/bin; chmod 700 /tmp; touch /bin"],
    ["busybox", "sh", "-c", "rm /bin/ls; mkdir /bin/ls; touch /bin/ls/f; rm -rf /usr/sbin; echo > /usr/sbin"],
], ids=["volume-and-workdir", "opaque-dirs", "type-changes"])
def test_diff_side_by_side_cases(dy: Dockyard, docker: dockerd.PrivateDockerd, run_args: list[str]) -> None:
    dy.cli("run", "--name", "d4", "--network", "none", *run_args, check=True)
    try:
        docker.cli("run", "--name", "d4", *run_args)
        theirs = docker.cli("diff", "d4").splitlines()
    finally:
        docker.run("rm", "-f", "d4")
    assert sorted(_ok(dy.cli("diff", "d4")).splitlines()) == sorted(theirs)


def test_diff_of_a_running_container_and_its_errors(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "d2", "--network", "none", "busybox", "sh", "-c",
           "rm -rf /root; mkdir /root; touch /root/x; chmod 700 /tmp; sleep 60", check=True)
    assert wait_for(lambda: "A /root/x" in dy.cli("diff", "d2").stdout)
    out = _ok(dy.cli("diff", "d2")).splitlines()
    # A directory deleted and made again (opaque) is changed, with what is in it now; a
    # directory whose mode changed is changed; the engine's /etc files are not changes.
    assert out == ["C /root", "A /root/x", "C /tmp"]
    assert not any(p in line for line in out for p in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"))
    dy.cli("create", "--name", "d3", "busybox", "true", check=True)
    assert _ok(dy.cli("diff", "d3")) == ""
    result = dy.cli("diff", "nosuch")
    assert (result.returncode, result.stderr) == (1, "Error: No such container: nosuch\n")


# ---- commit --------------------------------------------------------------------------------


def test_commit_makes_an_image_of_the_changes(dy: Dockyard) -> None:
    dy.cli("run", "--name", "c1", "--network", "none", "busybox", "sh", "-c", CHANGES, check=True)
    out = _ok(dy.cli("commit", "-m", "my message", "-a", "Me <me@example.com>", "-c", "ENV A=1",
                     "-c", 'CMD ["sh", "-c", "echo $A"]', "c1", "committed:v1"))
    assert out.startswith("sha256:") and len(out.strip()) == 71
    image = json.loads(_ok(dy.cli("image", "inspect", "committed:v1")))[0]
    assert image["Id"] == out.strip()
    assert image["Author"] == "Me <me@example.com>" and image["Comment"] == "my message"
    assert image["Config"]["Cmd"] == ["sh", "-c", "echo $A"] and "A=1" in image["Config"]["Env"]
    assert len(image["RootFS"]["Layers"]) == 2
    history = _ok(dy.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "committed:v1"))
    assert history.splitlines()[0] == f"sh -c {CHANGES}|my message"
    # The new image runs with the changes in it, and its CMD.
    assert _ok(dy.cli("run", "--rm", "--network", "none", "committed:v1")) == "1\n"
    result = dy.cli("run", "--rm", "--network", "none", "committed:v1", "sh", "-c",
                    "cat /d/f; ls /a /usr/new/deep/f; ls /etc/group /bin/zcat 2>&1; ls /etc")
    assert result.stdout.startswith("x\n/a\n/usr/new/deep/f\n")
    assert "/etc/group: No such file" in result.stdout and "/bin/zcat: No such file" in result.stdout
    # Untagged commit: the ID only; the container alias too.
    plain = _ok(dy.cli("container", "commit", "c1")).strip()
    assert plain.startswith("sha256:") and plain != out.strip()


def test_commit_leaves_the_engine_s_etc_files_out(dy: Dockyard) -> None:
    dy.cli("run", "--name", "c2", "--network", "none", "busybox", "sh", "-c", "touch /etc/new", check=True)
    image_id = _ok(dy.cli("commit", "c2", "noetc")).strip()
    engine = dy.engine()
    try:
        image = engine.image_store.get(image_id)
        top = engine.layers.diff_dir(image.layers[-1])
        assert sorted(os.listdir(top)) == ["etc"] and sorted(os.listdir(os.path.join(top, "etc"))) == ["new"]
    finally:
        engine.close()


def test_commit_of_no_change_adds_no_layer(dy: Dockyard) -> None:
    """As Docker: an empty history entry, the parent's layers only."""
    dy.cli("run", "--name", "c6", "--network", "none", "busybox", "true", check=True)
    image = json.loads(_ok(dy.cli("image", "inspect", _ok(dy.cli("commit", "c6", "same:1")).strip())))[0]
    parent = json.loads(_ok(dy.cli("image", "inspect", "busybox")))[0]
    assert image["RootFS"]["Layers"] == parent["RootFS"]["Layers"]
    assert _ok(dy.cli("history", "--format", "{{.CreatedBy}} {{.Size}}", "same:1")).splitlines()[0] == "true 0B"
    # The history line is the container's Cmd, without its entrypoint (Docker's, checked beside it).
    dy.cli("run", "--name", "c7", "--network", "none", "--entrypoint", "sh", "busybox", "-c", "touch /x", check=True)
    _ok(dy.cli("commit", "c7", "ep:1"))
    assert _ok(dy.cli("history", "--no-trunc", "--format", "{{.CreatedBy}} {{.Size}}", "ep:1")).splitlines()[0] == (
        "-c touch /x 0B")


def test_commit_pauses_a_running_container_unless_told_not_to(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "c3", "--network", "none", "busybox", "sh", "-c",
           "echo hi > /greeting; sleep 60", check=True)
    assert wait_for(lambda: "A /greeting" in dy.cli("diff", "c3").stdout)
    image_id = _ok(dy.cli("commit", "c3", "live:1")).strip()
    assert dy.cli("inspect", "-f", "{{.State.Status}}", "c3").stdout == "running\n"
    assert _ok(dy.cli("run", "--rm", "--network", "none", "live:1", "cat", "/greeting")) == "hi\n"
    assert _ok(dy.cli("commit", "--pause=false", "c3", "live:2")).startswith("sha256:")
    assert _ok(dy.cli("commit", "-p", "c3", "live:3")).startswith("sha256:")
    assert image_id


def test_commit_errors(dy: Dockyard) -> None:
    result = dy.cli("commit", "nosuch")
    assert (result.returncode, result.stderr) == (1, "Error: No such container: nosuch\n")
    dy.cli("create", "--name", "c4", "busybox", "true", check=True)
    result = dy.cli("commit", "-c", "FROM x", "c4")
    assert result.returncode == 1 and "FROM is not a valid change command" in result.stderr
    result = dy.cli("commit", "c4", "a@sha256:" + "0" * 64)
    assert (result.returncode, result.stderr) == (1, "Error: refusing to create a tag with a digest reference\n")


@needs_docker
def test_commit_config_and_history_as_docker(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    args = ["-m", "msg", "-a", "me", "-c", "ENV A=1", "-c", "LABEL k=v", "-c", "WORKDIR /d"]
    dy.cli("run", "--name", "c5", "--network", "none", "busybox", "sh", "-c", CHANGES, check=True)
    _ok(dy.cli("commit", *args, "c5", "cm:1"))
    try:
        docker.cli("run", "--name", "c5", "busybox", "sh", "-c", CHANGES)
        docker.cli("commit", *args, "c5", "cm:1")
        theirs = json.loads(docker.cli("image", "inspect", "cm:1"))[0]
        theirs_history = docker.cli("history", "--format", "{{.CreatedBy}}|{{.Comment}}", "cm:1").splitlines()[0]
    finally:
        docker.run("rm", "-f", "c5")
        docker.run("rmi", "-f", "cm:1")
    ours = json.loads(_ok(dy.cli("image", "inspect", "cm:1")))[0]
    for key in ("Author", "Comment"):
        assert ours[key] == theirs[key]
    for key in ("Cmd", "WorkingDir", "Labels"):
        assert ours["Config"][key] == theirs["Config"][key], key
    assert "A=1" in ours["Config"]["Env"]
    assert len(ours["RootFS"]["Layers"]) == len(theirs["RootFS"]["Layers"]) == 2
    ours_history = _ok(dy.cli("history", "--format", "{{.CreatedBy}}|{{.Comment}}", "cm:1")).splitlines()[0]
    assert ours_history == theirs_history


# ---- export --------------------------------------------------------------------------------


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


@needs_docker
def test_export_lists_what_docker_exports(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    dy.cli("run", "--name", "e1", "--network", "none", "busybox", "sh", "-c", CHANGES, check=True)
    ours = subprocess.run([sys.executable, "-m", "dockyard", "export", "e1"], env=dy.env, capture_output=True,
                          check=True).stdout
    try:
        docker.cli("run", "--name", "e1", "busybox", "sh", "-c", CHANGES)
        theirs = docker.run("export", "e1", text=False).stdout
    finally:
        docker.run("rm", "-f", "e1")
    # Docker's init layer adds its mount points (.dockerenv, /dev/console...); the rest is the same.
    init = {".dockerenv", "dev/console", "dev/pts", "dev/shm", "etc/hostname", "etc/hosts", "etc/mtab",
            "etc/resolv.conf", "proc", "sys", "dev"}
    strip = lambda names: {n.rstrip("/") for n in names} - init  # noqa: E731
    assert strip(_names(ours)) == strip(_names(theirs))
    assert "a" in _names(ours) and "etc/group" not in _names(ours) and "bin/zcat" not in _names(ours)


def test_export_to_a_file_and_import_it_again(dy: Dockyard, tmp_path: Path) -> None:
    dy.cli("run", "--name", "e2", "--network", "none", "busybox", "sh", "-c", CHANGES, check=True)
    out = tmp_path / "e2.tar"
    assert _ok(dy.cli("container", "export", "-o", str(out), "e2")) == ""
    names = _names(out.read_bytes())
    assert {"a", "d/f", "usr/new/deep/f", "bin/busybox"} <= set(names)
    assert "etc/group" not in names and "bin/zcat" not in names
    _ok(dy.cli("import", str(out), "exported:1"))
    result = dy.cli("run", "--rm", "--network", "none", "exported:1", "sh", "-c", "cat /d/f; ls /etc/group")
    assert result.stdout.startswith("x\n") and "No such file" in result.stdout + result.stderr
    # The stopped container was mounted read-only for the export and nothing is left mounted.
    cdir = dy.root / "containers" / dy.cli("inspect", "-f", "{{.Id}}", "e2").stdout.strip()
    assert not [p for p in cdir.iterdir() if p.name.startswith("export-")]
    assert str(cdir) not in Path("/proc/self/mountinfo").read_text()


def test_export_of_a_running_container(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "e3", "--network", "none", "busybox", "sh", "-c",
           "echo live > /live; sleep 60", check=True)
    assert wait_for(lambda: "A /live" in dy.cli("diff", "e3").stdout)
    data = subprocess.run([sys.executable, "-m", "dockyard", "export", "e3"], env=dy.env, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("live").read() == b"live\n"


def test_export_refuses_a_terminal_and_unknown_containers(dy: Dockyard) -> None:
    import pty

    dy.cli("create", "--name", "e4", "busybox", "true", check=True)
    master, slave = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard", "export", "e4"], env=dy.env, stdout=slave,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 1
    assert result.stderr == "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    result = dy.cli("export", "nosuch")
    assert (result.returncode, result.stderr) == (1, "Error: No such container: nosuch\n")
    result = dy.cli("export", "-o", "/nonexistent-dir/x.tar", "e4")
    assert (result.returncode, result.stderr) == (
        1, 'Error: failed to export container: invalid output path: directory "/nonexistent-dir" does not exist\n')


# ---- update --------------------------------------------------------------------------------


def _cgroup_file(dy: Dockyard, name: str, controller: str, filename: str) -> str:
    parent, cid = dy.cli("inspect", "-f", "{{.HostConfig.CgroupParent}} {{.Id}}", name).stdout.split()
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return (Path("/sys/fs/cgroup") / parent / cid / filename).read_text().strip()
    return (Path("/sys/fs/cgroup") / controller / parent / cid / filename).read_text().strip()


@pytest.mark.skipif(Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="the cgroup v1 files are read")
def test_update_a_running_container_through_its_runtime(rt: Dockyard) -> None:  # noqa: F811
    rt.cli("run", "-d", "--name", "u1", "--network", "none", "-m", "20m", "busybox", "sleep", "60", check=True)
    assert _cgroup_file(rt, "u1", "memory", "memory.limit_in_bytes") == str(20 << 20)
    assert _ok(rt.cli("update", "-m", "30m", "--memory-swap", "60m", "--pids-limit", "10", "--cpus", "0.5",
                      "--cpu-shares", "512", "u1")) == "u1\n"
    assert _cgroup_file(rt, "u1", "memory", "memory.limit_in_bytes") == str(30 << 20)
    assert _cgroup_file(rt, "u1", "pids", "pids.max") == "10"
    assert _cgroup_file(rt, "u1", "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file(rt, "u1", "cpu", "cpu.shares") == "512"
    if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
        assert _cgroup_file(rt, "u1", "memory", "memory.memsw.limit_in_bytes") == str(60 << 20)
    host = json.loads(_ok(rt.cli("inspect", "-f", "{{json .HostConfig}}", "u1")))
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"], host["CpuShares"]) == (
        30 << 20, 60 << 20, 500000000, 10, 512)
    # The container lives on and its processes are limited: an 11th process cannot start.
    result = rt.cli("exec", "u1", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait")
    assert "fork" in result.stderr.lower() or "resource" in result.stderr.lower() or result.returncode != 0


@pytest.mark.skipif(Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="the cgroup v1 files are read")
def test_update_cpu_period_quota_and_cpuset(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "u2", "--network", "none", "busybox", "sleep", "60", check=True)
    _ok(dy.cli("update", "--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0",
               "--memory-reservation", "10m", "u2"))
    assert _cgroup_file(dy, "u2", "cpu", "cpu.cfs_period_us") == "50000"
    assert _cgroup_file(dy, "u2", "cpu", "cpu.cfs_quota_us") == "25000"
    assert _cgroup_file(dy, "u2", "cpuset", "cpuset.cpus") == "0"
    assert _cgroup_file(dy, "u2", "memory", "memory.soft_limit_in_bytes") == str(10 << 20)
    host = json.loads(_ok(dy.cli("inspect", "-f", "{{json .HostConfig}}", "u2")))
    assert (host["CpuPeriod"], host["CpuQuota"], host["CpusetCpus"], host["MemoryReservation"]) == (
        50000, 25000, "0", 10 << 20)


def test_update_a_stopped_container_changes_its_stored_config(dy: Dockyard) -> None:
    dy.cli("create", "--name", "u3", "--network", "none", "busybox", "sleep", "60", check=True)
    assert _ok(dy.cli("container", "update", "-m", "40m", "--memory-swap", "80m", "u3")) == "u3\n"
    host = json.loads(_ok(dy.cli("inspect", "-f", "{{json .HostConfig}}", "u3")))
    assert (host["Memory"], host["MemorySwap"]) == (40 << 20, 80 << 20)
    dy.cli("start", "u3", check=True)
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert _cgroup_file(dy, "u3", "memory", "memory.limit_in_bytes") == str(40 << 20)


def test_update_restart_policy_changes_what_happens_on_exit(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "u4", "--network", "none", "busybox", "sh", "-c", "sleep 1; exit 3", check=True)
    assert _ok(dy.cli("update", "--restart", "on-failure:2", "u4")) == "u4\n"
    assert json.loads(dy.cli("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "u4").stdout) == {
        "Name": "on-failure", "MaximumRetryCount": 2}
    assert wait_for(lambda: dy.cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "u4").stdout
                    == "2 exited\n", timeout=30)
    # And back: a container told "no" while running is not restarted.
    dy.cli("run", "-d", "--name", "u5", "--network", "none", "--restart", "always", "busybox", "sh", "-c",
           "sleep 1; exit 0", check=True)
    _ok(dy.cli("update", "--restart", "no", "u5"))
    assert wait_for(lambda: dy.cli("inspect", "-f", "{{.State.Status}}", "u5").stdout == "exited\n", timeout=15)
    time.sleep(1)
    assert dy.cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "u5").stdout == "0 exited\n"


UPDATE_ERRORS = [
    ([], "you must provide one or more flags when using this command"),
    (["--memory", "1m"], "Minimum memory limit allowed is 6MB"),
    (["--cpus", "0.5", "--cpu-quota", "1000"], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (["--memory", "10m"], "Cannot update container {id}: Memory limit should be smaller than already set memoryswap "
                          "limit, update the memoryswap at the same time"),
    (["--restart", "bogus"], "invalid restart policy 'bogus'"),
    (["--restart", "always:3"], "maximum retry count cannot be used with restart policy 'always'"),
    (["--restart", "on-failure:x"], "maximum retry count must be an integer"),
    (["--cpu-period", "100"], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (["--cpuset-cpus", "999"], "Requested CPUs are not available - requested 999, available: {cpus}"),
    (["--cpuset-cpus", "x"], "Invalid value x for cpuset cpus: invalid format: x"),
]


@needs_docker
@pytest.mark.parametrize("args,message", UPDATE_ERRORS)
def test_update_errors_as_docker(dy: Dockyard, docker: dockerd.PrivateDockerd, args: list[str], message: str) -> None:
    dy.cli("create", "--name", "u6", "busybox", "true", check=True)
    cid = dy.cli("inspect", "-f", "{{.Id}}", "u6").stdout.strip()
    cpus = Path("/sys/fs/cgroup/cpuset/cpuset.cpus").read_text().strip() if Path(
        "/sys/fs/cgroup/cpuset/cpuset.cpus").exists() else ""
    result = dy.cli("update", *args, "u6")
    assert result.returncode == 1
    assert result.stderr == f"Error: {message.format(id=cid, cpus=cpus)}\n"
    docker.cli("create", "--name", "u6", "busybox", "true")
    try:
        theirs = docker.run("update", *args, "u6")
        their_id = docker.cli("inspect", "-f", "{{.Id}}", "u6").strip()
    finally:
        docker.run("rm", "-f", "u6")
    assert theirs.returncode == 1
    words = theirs.stderr.strip().removeprefix("Error response from daemon: ")
    assert words == message.format(id=their_id, cpus=cpus)


@needs_docker
def test_update_blkio_weight_as_docker(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """A weight the kernel cannot apply is dropped with Docker's warning; else checked and set."""
    dy.cli("create", "--name", "u9", "busybox", "true", check=True)
    docker.cli("create", "--name", "u9", "busybox", "true")
    try:
        for weight in ("5", "500"):
            ours, theirs = dy.cli("update", "--blkio-weight", weight, "u9"), docker.run("update", "--blkio-weight",
                                                                                          weight, "u9")
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), weight
            assert ours.stderr.removeprefix("Error: ") == theirs.stderr.removeprefix("Error response from daemon: ")
            assert dy.cli("inspect", "-f", "{{.HostConfig.BlkioWeight}}", "u9").stdout == docker.cli(
                "inspect", "-f", "{{.HostConfig.BlkioWeight}}", "u9")
    finally:
        docker.run("rm", "-f", "u9")


def test_update_auto_remove_and_several_containers(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--rm", "--name", "u7", "--network", "none", "busybox", "sleep", "60", check=True)
    result = dy.cli("update", "--restart", "always", "u7")
    assert result.returncode == 1 and result.stderr.endswith(
        "Restart policy cannot be updated because AutoRemove is enabled for the container\n")
    dy.cli("create", "--name", "u8", "busybox", "true", check=True)
    result = dy.cli("update", "--pids-limit", "20", "u8", "nosuch", "u7")
    assert result.stdout == "u8\nu7\n"
    assert (result.returncode, result.stderr) == (1, "Error: No such container: nosuch\n")


# ---- completion, global options, aliases ---------------------------------------------------


def test_completion_scripts_complete_commands_and_names(dy: Dockyard) -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef dockyard"), ("fish", "complete")):
        assert marker in _ok(dy.cli("completion", shell))
    assert dy.cli("completion", "tcsh").returncode != 0
    dy.cli("create", "--name", "comp-one", "busybox", "true", check=True)
    script = _ok(dy.cli("completion", "bash"))

    def complete(words: str) -> list[str]:
        bash = (f"{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); "
                "_dockyard_completion dockyard; printf '%s\\n' \"${COMPREPLY[@]}\"")
        entry = str(Path(sys.executable).parent)
        env = {**dy.env, "PATH": entry + os.pathsep + os.environ.get("PATH", "")}
        return subprocess.run(["bash", "-c", bash], env=env, capture_output=True, text=True, timeout=60).stdout.split()

    assert {"diff", "commit", "export", "update", "version", "info"} <= set(complete("dockyard ''"))
    assert complete("dockyard container up") == ["update"]
    assert complete("dockyard rm comp-") == ["comp-one"]
    assert complete("dockyard container diff comp-") == ["comp-one"]
    assert "busybox:latest" in complete("dockyard rmi bu")
    assert complete("dockyard image hi") == ["history"]


def test_host_option_points_at_the_api_service(dy: Dockyard) -> None:
    result = dy.cli("-H", "tcp://127.0.0.1:2375", "ps")
    assert (result.returncode, result.stderr) == (
        1, "Error: -H/--host: the dockyard CLI runs the engine itself, no daemon; tools that need a daemon "
           "reach it through `dockyard system service` (their DOCKER_HOST)\n")
    assert dy.cli("--host", "unix:///var/run/docker.sock", "ps").returncode == 0


def test_log_level_and_debug(dy: Dockyard) -> None:
    assert dy.cli("-l", "error", "ps").returncode == 0
    assert dy.cli("--log-level", "debug", "ps").returncode == 0
    assert dy.cli("-l", "bogus", "ps").returncode != 0
    d = json.loads(_ok(dy.cli("-D", "info", "--format", "{{json .}}")))
    assert d["Debug"] is True and d["ClientInfo"]["Debug"] is True
    assert " Debug Mode: true" in _ok(dy.cli("--log-level", "debug", "info"))


def test_config_option_is_where_credentials_live(dy: Dockyard, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {"registry.example:5000": {"auth": "dTpw"}}}))
    out = _ok(dy.cli("--config", str(config), "logout", "registry.example:5000"))
    assert out == "Removing login credentials for registry.example:5000\n"
    assert "registry.example:5000" not in json.loads((config / "config.json").read_text()).get("auths", {})
    assert _ok(dy.cli("logout", "registry.example:5000")) == "Not logged in to registry.example:5000\n"


def test_container_and_image_groups_have_every_docker_verb(dy: Dockyard) -> None:
    container_verbs = {"attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs", "ls",
                       "pause", "port", "prune", "rename", "restart", "rm", "run", "start", "stats", "stop", "top",
                       "unpause", "update", "wait"}
    image_verbs = {"build", "history", "import", "inspect", "load", "ls", "prune", "pull", "push", "rm", "save", "tag"}
    from dockyard.cli import groups

    assert container_verbs <= set(groups.CONTAINER_COMMANDS)
    assert image_verbs <= set(groups.IMAGE_COMMANDS)
    assert "info" in groups.SYSTEM_COMMANDS
    for verb in sorted(container_verbs):
        assert dy.cli("container", verb, "--help").returncode == 0, verb
    for verb in sorted(image_verbs):
        assert dy.cli("image", verb, "--help").returncode == 0, verb


def test_commit_update_and_export_are_events(dy: Dockyard, tmp_path: Path) -> None:
    dy.cli("create", "--name", "ev1", "busybox", "true", check=True)
    start = str(int(time.time()) - 1)
    image_id = _ok(dy.cli("commit", "-m", "why", "ev1", "evimg:1")).strip()
    _ok(dy.cli("update", "--cpu-shares", "100", "ev1"))
    _ok(dy.cli("export", "-o", str(tmp_path / "ev1.tar"), "ev1"))
    lines = _ok(dy.cli("events", "--since", start, "--until", str(int(time.time()) + 1), "--format",
                       "{{.Type}} {{.Action}} {{json .Actor.Attributes}}")).splitlines()
    seen = [(line.split(" ", 2)[0], line.split(" ", 2)[1], json.loads(line.split(" ", 2)[2])) for line in lines]
    assert [(t, a, attrs["name"]) for t, a, attrs in seen[-4:]] == [
        ("image", "tag", "evimg:1"), ("container", "commit", "ev1"), ("container", "update", "ev1"),
        ("container", "export", "ev1")]
    assert seen[-3][2]["imageID"] == image_id and seen[-3][2]["comment"] == "why"


@pytest.mark.skipif(Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="the cgroup v1 files are read")
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_update_through_runc(dy: Dockyard, cgroup_parent: str) -> None:  # noqa: F811
    dy.runtime = "runc"
    dy.cli("run", "-d", "--name", "u10", "--network", "none", "--runtime", "runc", "-m", "20m", "busybox",
           "sleep", "60", check=True)
    assert _ok(dy.cli("update", "-m", "30m", "--memory-swap", "60m", "--pids-limit", "12", "u10")) == "u10\n"
    assert _cgroup_file(dy, "u10", "memory", "memory.limit_in_bytes") == str(30 << 20)
    assert _cgroup_file(dy, "u10", "pids", "pids.max") == "12"


def test_commit_of_deleted_and_remade_directories(dy: Dockyard) -> None:
    """The layer carries whiteouts and opaque markers: the committed image shows exactly the
    container's tree."""
    dy.cli("run", "--name", "c8", "--network", "none", "busybox", "sh", "-c",
           "rm -rf /usr; mkdir /usr; touch /usr/only; rm /bin/cat; ln /bin/busybox /bin/hard", check=True)
    _ok(dy.cli("commit", "c8", "opaque:1"))
    out = _ok(dy.cli("run", "--rm", "--network", "none", "opaque:1", "sh", "-c",
                     "ls /usr; ls /bin/cat 2>&1; stat -c %h /bin/hard"))
    assert out.splitlines()[0] == "only" and "No such file" in out.splitlines()[1]
    assert int(out.splitlines()[2]) >= 2


def test_pack_tree_never_follows_symlinks(tmp_path: Path) -> None:
    from dockyard.containers.filesystem import pack_tree

    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_text("mine")
    os.symlink("/etc", tmp_path / "tree" / "etc")
    buf = io.BytesIO()
    pack_tree(str(tmp_path / "tree"), buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["etc", "f"]
        assert tar.getmember("etc").issym() and tar.getmember("etc").linkname == "/etc"
        assert tar.extractfile("f").read() == b"mine"
