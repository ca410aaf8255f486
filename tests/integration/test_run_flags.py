"""run/create flags about namespaces, devices, security and resources (issue 14): each
flag's HostConfig field in inspect as Docker shows it, and its effect inside the
container (cgroup files, /proc, device nodes, namespace inodes). The errors are compared
with a private dockerd 20.10's on the same busybox image where one can start."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dockyard.testing import dockerd

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy, rt  # noqa: F401 - fixtures
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - crun's hugetlb fix

pytestmark = pytest.mark.integration


def _inspect(dy: Dockyard, name: str) -> dict:
    return json.loads(dy.cli("inspect", name, check=True).stdout)[0]


def _out(dy: Dockyard, *args: str) -> str:
    return dy.cli("run", "--rm", *args, check=True).stdout


def _host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


# ---------------------------------------------------------------------------- HostConfig

def test_host_config_fields_as_docker_shows_them(dy: Dockyard, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    dy.cli("create", "--name", "all", "--shm-size", "1m", "--sysctl", "net.ipv4.ip_forward=1",
           "--security-opt", "no-new-privileges", "--device", "/dev/null:/dev/mynull:r",
           "--device-cgroup-rule", "c 240:* r", "--group-add", "10", "--ipc", "shareable", "--pid", "host",
           "--uts", "host", "--userns", "host", "--cgroupns", "host", "--cidfile", str(cidfile),
           "--cpuset-cpus", "0", "--cpuset-mems", "0", "--cpu-period", "50000", "--cpu-quota", "25000",
           "--memory-reservation", "32m", "--memory-swappiness", "10", "--oom-kill-disable", "--oom-score-adj", "300",
           "--device-read-bps", "/dev/null:1mb", "--device-write-iops", "/dev/null:20", "--isolation", "default",
           "busybox", check=True)
    host = _inspect(dy, "all")["HostConfig"]
    assert cidfile.read_text() == _inspect(dy, "all")["Id"]
    expected = {
        "ShmSize": 1048576, "Sysctls": {"net.ipv4.ip_forward": "1"},
        "SecurityOpt": ["no-new-privileges", "label=disable"],   # docker's daemon adds the label for --pid host
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}],
        "DeviceCgroupRules": ["c 240:* r"], "GroupAdd": ["10"], "IpcMode": "shareable", "PidMode": "host",
        "UTSMode": "host", "UsernsMode": "host", "CgroupnsMode": "host", "ContainerIDFile": str(cidfile),
        "CpusetCpus": "0", "CpusetMems": "0", "CpuPeriod": 50000, "CpuQuota": 25000,
        "MemoryReservation": 33554432, "MemorySwappiness": 10, "OomKillDisable": True, "OomScoreAdj": 300,
        "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1048576}], "BlkioDeviceWriteBps": None,
        "BlkioDeviceWriteIOps": [{"Path": "/dev/null", "Rate": 20}], "Isolation": "default", "VolumesFrom": None,
    }
    assert {k: host.get(k) for k in expected} == expected


def test_host_config_fields_side_by_side(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    args = ["--shm-size", "2m", "--sysctl", "net.core.somaxconn=100", "--security-opt", "no-new-privileges:true",
            "--device", "/dev/zero", "--device-cgroup-rule", "b *:* m", "--group-add", "nobody", "--ipc", "host",
            "--uts", "host", "--cgroupns", "host", "--cpuset-cpus", "0", "--cpu-quota", "20000",
            "--memory-reservation", "16m", "--memory-swappiness", "0", "--oom-score-adj", "-10",
            "--device-write-bps", "/dev/null:3k", "--device-read-iops", "/dev/null:7"]
    keys = ["ShmSize", "Sysctls", "SecurityOpt", "Devices", "DeviceCgroupRules", "GroupAdd", "IpcMode", "PidMode",
            "UTSMode", "CgroupnsMode", "CpusetCpus", "CpuQuota", "MemoryReservation", "MemorySwappiness",
            "OomScoreAdj", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceReadBps", "OomKillDisable"]
    dy.cli("create", "--name", "hc", *args, "busybox", check=True)
    docker.cli("create", "--name", "hc", *args, "busybox")
    try:
        ours = _inspect(dy, "hc")["HostConfig"]
        theirs = json.loads(docker.cli("inspect", "hc"))[0]["HostConfig"]
        assert {k: ours.get(k) for k in keys} == {k: theirs.get(k) for k in keys}
    finally:
        docker.run("rm", "-f", "hc")


def test_host_config_defaults(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    dy.cli("create", "--name", "plain", "busybox", check=True)
    ours = _inspect(dy, "plain")["HostConfig"]
    docker.cli("create", "--name", "plain", "busybox")
    theirs = json.loads(docker.cli("inspect", "plain"))[0]["HostConfig"]
    try:
        keys = ["ShmSize", "Sysctls", "SecurityOpt", "Devices", "DeviceCgroupRules", "GroupAdd", "IpcMode",
                "PidMode", "UTSMode", "UsernsMode", "ContainerIDFile", "CpusetCpus", "CpusetMems", "CpuPeriod",
                "CpuQuota", "MemoryReservation", "MemorySwappiness", "OomKillDisable", "OomScoreAdj", "BlkioWeight",
                "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                "BlkioDeviceWriteIOps", "VolumesFrom", "Isolation"]
        assert {k: ours.get(k) for k in keys} == {k: theirs.get(k) for k in keys}
        # dockyard gives every container its own cgroup namespace (Docker on cgroup v1: the host's)
        assert ours["CgroupnsMode"] == "private" and theirs["CgroupnsMode"] == "host"
    finally:
        docker.run("rm", "-f", "plain")


# ---------------------------------------------------------------------------- effects

def test_shm_size(rt: Dockyard) -> None:
    out = _out(rt, "--shm-size", "1m", "busybox", "df", "/dev/shm")
    assert re.search(r"^shm\s+1024\s", out, re.M), out
    assert re.search(r"^shm\s+65536\s", _out(rt, "busybox", "df", "/dev/shm"), re.M)


def test_sysctl(rt: Dockyard) -> None:
    out = _out(rt, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1000000", "busybox",
               "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax")
    assert out.split() == ["1", "1000000"]


def test_oom_score_adj(rt: Dockyard) -> None:
    assert _out(rt, "--oom-score-adj", "500", "busybox", "cat", "/proc/1/oom_score_adj").strip() == "500"


def test_no_new_privileges_and_seccomp_unconfined(rt: Dockyard) -> None:
    assert "NoNewPrivs:\t1" in _out(rt, "--security-opt", "no-new-privileges", "busybox", "cat", "/proc/self/status")
    assert "NoNewPrivs:\t0" in _out(rt, "--security-opt", "no-new-privileges:false", "busybox", "cat",
                                    "/proc/self/status")
    assert "Seccomp:\t2" in _out(rt, "busybox", "cat", "/proc/self/status")
    assert "Seccomp:\t0" in _out(rt, "--security-opt", "seccomp=unconfined", "busybox", "cat", "/proc/self/status")


PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                       {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                        {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
                         "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
SCRIPT = "mkdir /x 2>/dev/null || echo mkdir-denied; chmod 700 /tmp 2>/dev/null && echo chmod-ok || echo chmod-denied"


def test_systempaths_unconfined(rt: Dockyard) -> None:
    script = "grep -c ' /proc/sys ' /proc/mounts; grep -c ' /proc/timer_list ' /proc/mounts"
    assert rt.cli("run", "--rm", "busybox", "sh", "-c", script).stdout.split() == ["1", "1"]
    assert rt.cli("run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c",
                  script).stdout.split() == ["0", "0"]
    rt.cli("create", "--name", "spu", "--security-opt", "systempaths=unconfined", "busybox", check=True)
    host = _inspect(rt, "spu")["HostConfig"]
    assert (host["MaskedPaths"], host["ReadonlyPaths"], host["SecurityOpt"]) == ([], [], [])   # as docker shows it


def test_seccomp_profile_in_docker_format(rt: Dockyard, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE, indent=2))
    opt = f"seccomp={profile}"
    assert _out(rt, "--security-opt", opt, "busybox", "sh", "-c", SCRIPT).split() == ["mkdir-denied", "chmod-ok"]
    # the chmod rule applies only to a container holding CAP_SYS_ADMIN ("includes")
    assert _out(rt, "--cap-add", "SYS_ADMIN", "--security-opt", opt, "busybox", "sh", "-c", SCRIPT).split() == \
        ["mkdir-denied", "chmod-denied"]
    rt.cli("create", "--name", "sc", "--security-opt", opt, "busybox", check=True)
    stored = _inspect(rt, "sc")["HostConfig"]["SecurityOpt"]
    assert stored == ["seccomp=" + json.dumps(PROFILE, separators=(",", ":"))]   # the file's JSON, as docker keeps it


def test_seccomp_profile_same_as_docker(dy: Dockyard, docker: dockerd.PrivateDockerd, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE))
    for extra in ([], ["--cap-add", "SYS_ADMIN"]):
        args = ["run", "--rm", *extra, "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c", SCRIPT]
        assert dy.cli(*args, check=True).stdout == docker.cli(*args)


def test_device_node_and_cgroup_rule(rt: Dockyard, tmp_path: Path) -> None:
    # A node of an unused major: opening it reads ENXIO when the cgroup allows it, EPERM when not.
    node = tmp_path / "dev240"
    os.mknod(node, 0o644 | 0o020000, os.makedev(240, 1))
    script = "ls -l /dev/x; cat /dev/x; echo hi > /dev/x"
    result = rt.cli("run", "--rm", "--device", f"{node}:/dev/x:r", "busybox", "sh", "-c", script)
    assert re.search(r"^crw-r--r-- .* 240,\s+1 .*/dev/x$", result.stdout, re.M), result.stdout
    assert "can't open '/dev/x': No such device or address" in result.stderr       # read: allowed
    assert "can't create /dev/x: Operation not permitted" in result.stderr         # write: denied by the cgroup
    script = "mknod /dev/y c 240 1; cat /dev/y; echo hi > /dev/y"
    result = rt.cli("run", "--rm", "--device-cgroup-rule", "c 240:* r", "busybox", "sh", "-c", script)
    assert "can't open '/dev/y': No such device or address" in result.stderr
    assert "can't create /dev/y: Operation not permitted" in result.stderr
    result = rt.cli("run", "--rm", "busybox", "sh", "-c", "mknod /dev/y c 240 1; cat /dev/y")
    assert "can't open '/dev/y': Operation not permitted" in result.stderr


def test_device_directory(rt: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    os.mknod(tmp_path / "sub" / "n", 0o600 | 0o020000, os.makedev(240, 2))
    (tmp_path / "plain").write_text("not a device")
    out = _out(rt, "--device", f"{tmp_path}:/dev/dd", "busybox", "ls", "-lR", "/dev/dd")
    assert re.search(r"^crw------- .* 240,\s+2 .* n$", out, re.M), out
    assert "plain" not in out   # docker maps the nodes only


def test_device_missing(dy: Dockyard) -> None:
    result = dy.cli("run", "--rm", "--device", "/dev/nosuch", "busybox", "true")
    assert result.returncode == 125
    assert 'error gathering device information while adding custom device "/dev/nosuch": no such file' \
        in result.stderr


def test_group_add_and_image_groups(dy: Dockyard, docker: dockerd.PrivateDockerd, tmp_path: Path) -> None:
    # an image whose /etc/group lists root and nobody in extra groups, made by docker and loaded here
    docker.cli("run", "--name", "g1", "busybox", "sh", "-c",
               "echo wheel:x:10:root,nobody >> /etc/group; echo audio:x:29:nobody >> /etc/group")
    try:
        docker.cli("commit", "g1", "bbg")
        docker.cli("save", "-o", str(tmp_path / "bbg.tar"), "bbg")
        dy.cli("load", "-i", str(tmp_path / "bbg.tar"), check=True)
        for args in (["busybox"], ["--group-add", "10", "--group-add", "20", "busybox"], ["bbg"],
                     ["-u", "nobody", "bbg"], ["-u", "nobody:root", "bbg"], ["-u", "65534", "bbg"],
                     ["--group-add", "audio", "bbg"]):
            ours = dy.cli("run", "--rm", *args, "id", check=True).stdout
            assert ours == docker.cli("run", "--rm", *args, "id"), args
        assert _out(dy, "busybox", "id") == "uid=0(root) gid=0(root) groups=0(root)\n"
    finally:
        docker.run("rm", "-f", "g1")
        docker.run("rmi", "-f", "bbg")


# docker 20.10's exec computes the user's groups from the image and --group-add (daemon/exec.go)
EXEC_GROUPS = {
    (): "uid=0(root) gid=0(root) groups=0(root),10\n",
    ("-u", "nobody"): "uid=65534(nobody) gid=65534(nobody) groups=10,65534(nobody)\n",
    ("-u", "1000:1000"): "uid=1000 gid=1000 groups=10,1000\n",
}


def test_exec_gets_the_users_groups_and_group_add(rt: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """Each runtime: runc adds --additional-gids to the container's groups and crun has no such
    flag, so both are given the whole process; what a user sees is docker's answer."""
    docker.cli("run", "-d", "--name", "eg", "--group-add", "10", "busybox", "sleep", "60")
    try:
        rt.cli("run", "-d", "--name", "eg", "--group-add", "10", "busybox", "sleep", "60", check=True)
        for args, expected in EXEC_GROUPS.items():
            assert docker.cli("exec", *args, "eg", "id") == expected, args
            assert rt.cli("exec", *args, "eg", "id", check=True).stdout == expected, args
        # the process's other settings survive the whole-process form
        probe = ("exec", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "eg", "sh", "-c", "echo $A $PWD $HOME")
        assert rt.cli(*probe, check=True).stdout == docker.cli(*probe)
    finally:
        docker.run("rm", "-f", "eg")


def test_ipc_modes(rt: Dockyard) -> None:
    host = _host_ns("ipc")
    assert _out(rt, "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc").strip() == host
    assert _out(rt, "busybox", "readlink", "/proc/self/ns/ipc").strip() != host
    assert "/dev/shm" not in _out(rt, "--ipc", "none", "busybox", "cat", "/proc/mounts")
    rt.cli("run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sh", "-c",
           "echo shared > /dev/shm/f; sleep 60", check=True)
    rt.cli("run", "-d", "--name", "private", "busybox", "sleep", "60", check=True)
    donor_ns = rt.cli("exec", "donor", "readlink", "/proc/self/ns/ipc", check=True).stdout
    out = _out(rt, "--ipc", "container:donor", "busybox", "sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/f")
    assert out == donor_ns + "shared\n"
    result = rt.cli("run", "--rm", "--ipc", "container:private", "busybox", "true")
    assert result.returncode == 125 and "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" \
        in result.stderr
    cdir = rt.root / "containers" / _inspect(rt, "donor")["Id"]
    rt.cli("rm", "-f", "donor", check=True)
    assert str(cdir) not in Path("/proc/self/mountinfo").read_text()   # its /dev/shm tmpfs is gone with it


def test_pid_uts_cgroupns(rt: Dockyard) -> None:
    assert _out(rt, "--pid", "host", "busybox", "readlink", "/proc/self/ns/pid").strip() == _host_ns("pid")
    assert _out(rt, "--uts", "host", "busybox", "hostname").strip() == os.uname().nodename
    assert _out(rt, "--cgroupns", "host", "busybox", "readlink", "/proc/self/ns/cgroup").strip() == \
        _host_ns("cgroup")
    assert _out(rt, "--cgroupns", "private", "busybox", "readlink", "/proc/self/ns/cgroup").strip() != \
        _host_ns("cgroup")
    rt.cli("run", "-d", "--name", "p1", "busybox", "sleep", "60", check=True)
    out = _out(rt, "--pid", "container:p1", "busybox", "ps", "-o", "pid,args")
    assert re.search(r"^\s*1 sleep 60$", out, re.M), out
    rt.cli("create", "--name", "p2", "--pid", "container:p1", "busybox", check=True)
    assert _inspect(rt, "p2")["HostConfig"]["PidMode"] == "container:" + _inspect(rt, "p1")["Id"]  # as docker
    assert _out(rt, "--userns", "host", "busybox", "echo", "ok") == "ok\n"


def _cgroup_script(*files: str) -> str:
    return "; ".join(f"cat /sys/fs/cgroup/{f}" for f in files)


def test_cpu_and_memory_cgroup_files(rt: Dockyard) -> None:
    if not Path("/sys/fs/cgroup/cpuset/cpuset.cpus").exists():
        pytest.skip("not a cgroup v1 host")
    cpu = sorted(os.sched_getaffinity(0))[-1]
    out = _out(rt, "--cpuset-cpus", str(cpu), "--cpuset-mems", "0", "--cpu-period", "50000", "--cpu-quota", "25000",
               "-m", "64m", "--memory-reservation", "32m", "--memory-swappiness", "10", "--oom-kill-disable",
               "busybox", "sh", "-c",
               _cgroup_script("cpuset/cpuset.cpus", "cpuset/cpuset.mems", "cpu/cpu.cfs_period_us",
                              "cpu/cpu.cfs_quota_us", "memory/memory.soft_limit_in_bytes",
                              "memory/memory.swappiness", "memory/memory.oom_control"))
    lines = out.splitlines()
    assert lines[:6] == [str(cpu), "0", "50000", "25000", "33554432", "10"]
    assert "oom_kill_disable 1" in lines
    result = rt.cli("run", "--rm", "--oom-kill-disable", "busybox", "true", check=True)
    assert "WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be " \
           "dangerous." in result.stderr


def _block_device() -> str:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            return f"/dev/{name}"
    pytest.skip("no block device to throttle")


def test_blkio_throttles_and_weight(rt: Dockyard) -> None:
    dev = _block_device()
    st = os.stat(dev)
    numbers = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    out = _out(rt, "--device-read-bps", f"{dev}:1mb", "--device-write-bps", f"{dev}:2mb",
               "--device-read-iops", f"{dev}:100", "--device-write-iops", f"{dev}:200", "busybox", "sh", "-c",
               _cgroup_script(*(f"blkio/blkio.throttle.{k}_device" for k in ("read_bps", "write_bps", "read_iops",
                                                                              "write_iops"))))
    assert out.splitlines() == [f"{numbers} 1048576", f"{numbers} 2097152", f"{numbers} 100", f"{numbers} 200"]
    if not any(Path(f"/sys/fs/cgroup/blkio/{n}").exists() for n in ("blkio.weight", "blkio.bfq.weight")):
        result = rt.cli("create", "--name", "bw", "--blkio-weight", "300", "busybox", check=True)
        assert "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. " \
               "Weight discarded." in result.stderr
        assert _inspect(rt, "bw")["HostConfig"]["BlkioWeight"] == 0


def test_volumes_from(dy: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "hostfile").write_text("from host\n")
    dy.cli("run", "--name", "vdonor", "-v", f"{tmp_path}:/host:ro", "-v", "vol1:/data", "-v", "/anon", "busybox",
           "sh", "-c", "echo v > /data/f; echo a > /anon/f", check=True)
    out = _out(dy, "--volumes-from", "vdonor", "busybox", "sh", "-c",
               "cat /data/f /anon/f /host/hostfile; touch /data/g && echo rw; touch /host/x || echo host-ro")
    assert out == "v\na\nfrom host\nrw\nhost-ro\n"
    result = dy.cli("run", "--rm", "--volumes-from", "vdonor:ro", "busybox", "touch", "/data/h")
    assert "Read-only file system" in result.stderr
    dy.cli("create", "--name", "c2", "--volumes-from", "vdonor", "busybox", check=True)
    assert _inspect(dy, "c2")["HostConfig"]["VolumesFrom"] == ["vdonor"]
    assert {m["Destination"] for m in _inspect(dy, "c2")["Mounts"]} == {"/host", "/data", "/anon"}
    # the --rm run above did not take the donor's anonymous volume with it
    assert _out(dy, "--volumes-from", "vdonor", "busybox", "cat", "/anon/f") == "a\n"


def test_cidfile(dy: Dockyard, tmp_path: Path) -> None:
    path = tmp_path / "cid"
    out = dy.cli("run", "-d", "--cidfile", str(path), "busybox", "sleep", "30", check=True).stdout
    assert path.read_text() == out.strip()
    result = dy.cli("run", "--rm", "--cidfile", str(path), "busybox", "true")
    assert result.returncode == 125
    assert f"container ID file found, make sure the other container isn't running or delete {path}" in result.stderr


def test_attach_streams(rt: Dockyard) -> None:
    script = "echo o; echo e >&2"
    result = rt.cli("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", script, check=True)
    assert (result.stdout, result.stderr) == ("o\n", "")
    result = rt.cli("run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", script, check=True)
    assert (result.stdout, result.stderr) == ("", "e\n")
    result = rt.cli("run", "--rm", "-a", "stdin", "busybox", "sh", "-c", script, check=True)
    assert re.fullmatch(r"[0-9a-f]{64}\n", result.stdout) and result.stderr == ""  # docker prints the ID


def test_platform(dy: Dockyard) -> None:
    assert _out(dy, "--platform", "linux/amd64" if os.uname().machine == "x86_64" else "linux/arm64", "busybox",
                "echo", "ok") == "ok\n"
    other = "linux/arm64" if os.uname().machine == "x86_64" else "linux/amd64"
    result = dy.cli("run", "--rm", "--pull", "never", "--platform", other, "busybox", "true")
    assert result.returncode == 125
    here = "linux/amd64" if os.uname().machine == "x86_64" else "linux/arm64"
    assert f"image with reference busybox was found but does not match the specified platform: wanted {other}, " \
           f"actual: {here}" in result.stderr


def test_platform_pulls_the_one_asked_for(dy: Dockyard, distribution, busybox_tar: Path, repo_name: str,  # noqa: ANN001
                                          tmp_path: Path) -> None:
    from dockyard.testing.images import ImageSpec, push_oci_layout, write_oci_layout

    # one index, two platforms (the same static busybox: it runs whatever the label says)
    write_oci_layout(tmp_path / "oci", [ImageSpec([busybox_tar], platform="linux/amd64", cmd=["sh"]),
                                        ImageSpec([busybox_tar], platform="linux/arm64", cmd=["sh"])])
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(tmp_path / "oci", f"{name}:latest")
    here, other = ("linux/amd64", "linux/arm64") if os.uname().machine == "x86_64" else ("linux/arm64", "linux/amd64")

    def arch() -> str:
        return json.loads(dy.cli("image", "inspect", name, check=True).stdout)[0]["Architecture"]

    result = dy.cli("run", "--rm", "--platform", other, name, "echo", "ok", check=True)
    assert result.stdout == "ok\n" and f"Unable to find image '{name}:latest' locally" in result.stderr
    assert arch() == other.split("/")[1]
    # the local image is for the other platform: pulled again for this one
    result = dy.cli("run", "--rm", "--platform", here, name, "echo", "ok", check=True)
    assert result.stdout == "ok\n" and f"Unable to find image '{name}:latest' locally" in result.stderr
    assert arch() == here.split("/")[1]
    result = dy.cli("run", "--rm", "--platform", here, name, "echo", "ok", check=True)
    assert "Unable to find image" not in result.stderr


# ---------------------------------------------------------------------------- errors, side by side

ERRORS = [
    (["--stop-signal", "BOGUS"], "Invalid signal: BOGUS"),
    (["-e", ""], 'invalid argument "" for "-e, --env" flag: invalid environment variable: '),
    (["-v", "rel/dir:/x"], '"rel/dir" includes invalid characters for a local volume name'),
    (["-m", "10m", "--memory-swap", "5m"], "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness=1' is not whitelisted"),
    (["--ipc", "bogus"], "Invalid IPC mode: bogus"),
    (["--pid", "bogus"], "--pid: invalid PID mode"),
    (["--uts", "bogus"], "--uts: invalid UTS mode"),
    (["--userns", "bogus"], "--userns: invalid USER mode"),
    (["--cgroupns", "bogus"], "--cgroupns: invalid CGROUP mode"),
    (["--isolation", "hyperv"], "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
    (["--platform", "bogus"], 'error parsing specified platform: "bogus": unknown operating system or architecture'),
    (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99, available: "),
    (["--cpuset-cpus", "x"], "Invalid value x for cpuset cpus: invalid format: x"),
    (["--cpu-period", "100"], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (["--cpu-quota", "100"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (["--cpus", "1", "--cpu-quota", "50000"], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
    (["--memory-swappiness", "101"], "invalid value: 101. Valid memory swappiness range is 0-100"),
    (["--oom-score-adj", "2000"], "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
    (["--blkio-weight-device", "/dev/sda:5"], 'invalid weight for device: /dev/sda:5'),
    (["--device-cgroup-rule", "bogus"], "invalid device cgroup format 'bogus'"),
    (["--device", "/dev/null:rel"], "rel is not an absolute path"),
    (["--device", "/dev/null:/dev/x:q"], "bad mode specified: q"),
    (["--volumes-from", "nosuch"], "No such container: nosuch"),
    (["--ipc", "container:nosuch"], "No such container: nosuch"),
    (["--pid", "container:nosuch"], "No such container: nosuch"),
    (["--shm-size", "bogus"], "invalid size: 'bogus'"),
    (["-a", "bogus"], "valid streams are STDIN, STDOUT and STDERR"),
    (["--security-opt", "bogus"], 'Invalid --security-opt: "bogus"'),
    (["--security-opt", "no-new-privileges:bogus"], 'invalid --security-opt 2: "no-new-privileges:bogus"'),
    (["--security-opt", "seccomp=/nonexist"], "opening seccomp profile (/nonexist) failed: open /nonexist: "
                                              "no such file or directory"),
    (["--uts", "host", "-h", "foo"], "conflicting options: hostname and the UTS mode"),
    (["--group-add", "nosuch"], "Unable to find group nosuch: no matching entries in group file"),
]


@pytest.mark.parametrize("args,message", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_refused_as_docker_refuses(dy: Dockyard, docker: dockerd.PrivateDockerd, args: list[str],
                                   message: str) -> None:
    ours = dy.cli("run", "--rm", *args, "busybox", "true")
    theirs = docker.run("run", "--rm", *args, "busybox", "true")
    assert (ours.returncode, theirs.returncode) == (125, 125), (ours.stderr, theirs.stderr)
    assert message in ours.stderr and message in theirs.stderr, (ours.stderr, theirs.stderr)


def test_tty_needs_a_terminal(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    ours = dy.cli("run", "--rm", "-it", "busybox", "true")
    theirs = docker.run("run", "--rm", "-it", "busybox", "true")
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert "the input device is not a TTY" in ours.stderr and "the input device is not a TTY" in theirs.stderr
    assert dy.cli("run", "--rm", "-t", "busybox", "echo", "ok", check=True).stdout.strip() == "ok"


def test_refused_where_the_host_lacks_them(dy: Dockyard) -> None:
    """AppArmor and SELinux: docker ignores a profile the host cannot apply; we say so instead."""
    if not Path("/sys/module/apparmor").exists():
        result = dy.cli("run", "--rm", "--security-opt", "apparmor=myprofile", "busybox", "true")
        assert result.returncode == 125 and "AppArmor is not enabled on this host" in result.stderr
        assert _out(dy, "--security-opt", "apparmor=unconfined", "busybox", "echo", "ok") == "ok\n"
    if not Path("/sys/fs/selinux").exists():
        result = dy.cli("run", "--rm", "--security-opt", "label=type:svirt_t", "busybox", "true")
        assert result.returncode == 125 and "SELinux is not enabled on this host" in result.stderr
        assert _out(dy, "--security-opt", "label=disable", "busybox", "echo", "ok") == "ok\n"


def test_sysctl_refused_with_host_namespaces(dy: Dockyard) -> None:
    result = dy.cli("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true")
    assert result.returncode == 125 and 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace' \
        in result.stderr
    result = dy.cli("run", "--rm", "--ipc", "host", "--sysctl", "kernel.shmmax=1000", "busybox", "true")
    assert result.returncode == 125 and 'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace' \
        in result.stderr


def test_cgroup_parent(rt: Dockyard) -> None:
    """--cgroup-parent: the container's cgroup sits below that parent in every hierarchy, as
    /proc/self/cgroup inside shows (a cgroup namespace hides it: --cgroupns host)."""
    from dockyard.fsutil import remove_cgroup

    parent = f"dy-test-parent-{os.getpid()}"
    try:
        dy_id = rt.cli("run", "-d", "--cgroupns", "host", "--network", "none", "--cgroup-parent", f"/{parent}/sub",
                       "busybox", "sleep", "30", check=True).stdout.strip()
        assert _inspect(rt, dy_id)["HostConfig"]["CgroupParent"] == f"{parent}/sub"
        lines = rt.cli("exec", dy_id, "cat", "/proc/self/cgroup", check=True).stdout.splitlines()
        memory = next(line for line in lines if ":memory:" in line or line.startswith("0::"))
        assert memory.split(":", 2)[2] == f"/{parent}/sub/{dy_id}"
        assert rt.cli("run", "--rm", "--cgroup-parent", "../x", "busybox", "true").returncode == 125
    finally:
        rt.cli("rm", "-f", dy_id if "dy_id" in locals() else "nothing")
        remove_cgroup(parent)


def test_memory_alone_caps_memory_and_swap_at_twice(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """-m without --memory-swap: Docker stores (and sets) memory+swap at twice the memory where
    swap can be limited, so a later `update -m` within that works as in Docker."""
    from dockyard.runtime.cgroupfs import swap_limit_supported

    if not swap_limit_supported():
        pytest.skip("no swap accounting on this host: Docker stores -1 then")
    dy.cli("run", "-d", "--name", "mem2x", "--network", "none", "-m", "32m", "busybox", "sleep", "30", check=True)
    docker.cli("create", "--name", "mem2x", "--network", "none", "-m", "32m", "busybox")
    try:
        ours = _inspect(dy, "mem2x")["HostConfig"]
        theirs = json.loads(docker.cli("inspect", "mem2x"))[0]["HostConfig"]
        assert (ours["Memory"], ours["MemorySwap"]) == (theirs["Memory"], theirs["MemorySwap"]) == (32 << 20, 64 << 20)
        cid = _inspect(dy, "mem2x")["Id"]
        memsw = Path(f"/sys/fs/cgroup/memory/{dy.cgroup}/{cid}/memory.memsw.limit_in_bytes")
        assert int(memsw.read_text()) == 64 << 20
        assert dy.cli("update", "-m", "48m", "mem2x").returncode == 0
    finally:
        docker.run("rm", "-f", "mem2x")


def test_a_missing_working_dir_is_made_even_in_a_read_only_rootfs(rt: Dockyard) -> None:
    # Docker makes it in the container's layer before the start; the runtime's chdir could not
    # in a read-only rootfs (Docker Compose's read_only + working_dir services need it)
    assert _out(rt, "--network", "none", "--read-only", "-w", "/srv/app", "busybox", "pwd") == "/srv/app\n"
    assert "A /srv" in rt.cli("run", "--name", "madewd", "--network", "none", "-w", "/srv", "busybox",
                               "true", check=True).stdout + rt.cli("diff", "madewd", check=True).stdout
    refused = rt.cli("run", "--rm", "--network", "none", "-w", "/etc/passwd", "busybox", "pwd")
    assert refused.returncode == 125 and "/etc/passwd" in refused.stderr and "Traceback" not in refused.stderr
