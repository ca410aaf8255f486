"""Parsing and checking of the run/create namespace, device, security and resource flags
(containers/runflags.py), their OCI spec (runtime/spec.py) and Docker seccomp profiles
converted to OCI (runtime/dockerseccomp.py). Messages are docker 20.10's."""

from __future__ import annotations

import json
import os

import pytest

from dockyard.containers import runflags
from dockyard.errors import NotFoundError
from dockyard.runtime import dockerseccomp
from dockyard.runtime import spec as specs


def _parse(**kw: object) -> dict:
    return runflags.parse(kw)


def test_defaults_are_dockers() -> None:
    host = _parse()
    assert host["ShmSize"] == 67108864 and host["IpcMode"] == "private" and host["SecurityOpt"] is None
    assert host["Devices"] == [] and host["DeviceCgroupRules"] is None and host["GroupAdd"] is None
    assert host["MemorySwappiness"] is None and host["OomScoreAdj"] == 0 and host["BlkioWeightDevice"] == []
    assert host["BlkioDeviceReadBps"] is None and host["VolumesFrom"] is None and host["Isolation"] == ""
    assert "Sysctls" not in host


@pytest.mark.parametrize("value,size", [("1m", 1048576), ("64k", 65536), ("0", 67108864)])
def test_shm_size(value: str, size: int) -> None:
    assert _parse(shm_size=value)["ShmSize"] == size


@pytest.mark.parametrize("kw,message", [
    ({"shm_size": "bogus"}, """invalid argument "bogus" for "--shm-size" flag: invalid size: 'bogus'"""),
    ({"shm_size": "-1"}, """invalid argument "-1" for "--shm-size" flag: invalid size: '-1'"""),
    ({"sysctl": ("vm.swappiness=1",)},
     """invalid argument "vm.swappiness=1" for "--sysctl" flag: sysctl 'vm.swappiness=1' is not whitelisted"""),
    ({"sysctl": ("kernel.hostname=x",)},
     """invalid argument "kernel.hostname=x" for "--sysctl" flag: sysctl 'kernel.hostname=x' is not whitelisted"""),
    ({"security_opt": ("bogus",)}, 'Invalid --security-opt: "bogus"'),
    ({"security_opt": ("seccomp=/nonexist",)},
     "opening seccomp profile (/nonexist) failed: open /nonexist: no such file or directory"),
    ({"device_cgroup_rule": ("c 1:3",)}, """invalid argument "c 1:3" for "--device-cgroup-rule" flag: """
                                          "invalid device cgroup format 'c 1:3'"),
    ({"device": ("/dev/null:rel",)}, "rel is not an absolute path"),
    ({"device": ("/dev/null:/dev/x:q",)}, "bad mode specified: q"),
    ({"pid": "bogus"}, "--pid: invalid PID mode"),
    ({"uts": "container:x"}, "--uts: invalid UTS mode"),
    ({"userns": "remap"}, "--userns: invalid USER mode"),
    ({"cgroupns": "bogus"}, "--cgroupns: invalid CGROUP mode"),
    ({"memory_swappiness": 101}, "invalid value: 101. Valid memory swappiness range is 0-100"),
    ({"blkio_weight_device": ("/dev/sda:5",)},
     """invalid argument "/dev/sda:5" for "--blkio-weight-device" flag: invalid weight for device: /dev/sda:5"""),
    ({"device_read_iops": ("/dev/sda:x",)}, "invalid rate for device: /dev/sda:x"),
])
def test_cli_refusals(kw: dict, message: str) -> None:
    with pytest.raises(runflags.FlagError) as e:
        runflags.parse(kw)
    assert message in e.value.message and e.value.exit_code == 125


def test_sysctls_and_devices() -> None:
    host = _parse(sysctl=("net.ipv4.ip_forward=1", "kernel.shmmax=1", "fs.mqueue.msg_max=20", "kernel.sem=1 2 3 4"),
                  device=("/dev/fuse", "/dev/a:/dev/b", "/dev/a:r", "/dev/a:/dev/b:rw"),
                  device_cgroup_rule=("c 1:3 rwm", "b *:* m", "a *:* r"))
    assert host["Sysctls"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "20",
                               "kernel.sem": "1 2 3 4"}
    assert host["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/a", "PathInContainer": "/dev/b", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/a", "PathInContainer": "/dev/a", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/a", "PathInContainer": "/dev/b", "CgroupPermissions": "rw"}]
    assert host["DeviceCgroupRules"] == ["c 1:3 rwm", "b *:* m", "a *:* r"]


def test_seccomp_file_is_stored_as_its_json(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "p.json"
    path.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    host = _parse(security_opt=(f"seccomp={path}", "no-new-privileges", "seccomp=unconfined"))
    assert host["SecurityOpt"] == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges",
                                   "seccomp=unconfined"]


def _check(**host: object) -> None:
    def find(name: str) -> None:
        raise NotFoundError(f"No such container: {name}")

    config = {"Hostname": host.pop("Hostname", "")}
    runflags.check({"NetworkMode": "default", **host}, config, find)


@pytest.mark.parametrize("host,message", [
    ({"IpcMode": "bogus"}, "Invalid IPC mode: bogus"),
    ({"IpcMode": "container:nosuch"}, "No such container: nosuch"),
    ({"PidMode": "container:nosuch"}, "No such container: nosuch"),
    ({"Isolation": "hyperv"}, "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
    ({"UTSMode": "host", "Hostname": "x"}, "conflicting options: hostname and the UTS mode"),
    ({"Sysctls": {"net.core.somaxconn": "1"}, "NetworkMode": "host"},
     'sysctl "net.core.somaxconn" not allowed in host network namespace'),
    ({"Sysctls": {"kernel.msgmax": "1"}, "IpcMode": "host"}, 'sysctl "kernel.msgmax" is not allowed in the hosts ipc'),
    ({"CpusetCpus": "x"}, "Invalid value x for cpuset cpus: invalid format: x"),
    ({"CpusetCpus": "4096"}, "Requested CPUs are not available - requested 4096, available: "),
    ({"CpusetMems": "64"}, "Requested memory nodes are not available - requested 64, available: "),
    ({"CpuPeriod": 100}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 10**9, "CpuPeriod": 50000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"Memory": 10 << 20, "MemorySwap": 5 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 5 << 20}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemoryReservation": 1024}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 8 << 20, "MemoryReservation": 16 << 20}, "Minimum memory limit can not be less than memory "
                                                          "reservation limit, see usage"),
    ({"OomScoreAdj": 2000}, "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"SecurityOpt": ["no-new-privileges:maybe"]}, 'invalid --security-opt 2: "no-new-privileges:maybe"'),
    ({"SecurityOpt": ["foo=bar"]}, 'invalid --security-opt 2: "foo=bar"'),
])
def test_daemon_refusals(host: dict, message: str) -> None:
    with pytest.raises(Exception) as e:
        _check(**host)
    assert message in str(e.value)


def test_daemon_accepts() -> None:
    _check(IpcMode="shareable", PidMode="host", UTSMode="host", CpusetCpus="0", CpuPeriod=100000, CpuQuota=50000,
           Memory=64 << 20, MemorySwap=-1, MemoryReservation=32 << 20, OomScoreAdj=-1000,
           SecurityOpt=["no-new-privileges", "no-new-privileges=false", "seccomp=unconfined", "apparmor=unconfined",
                        "label=disable", "no-new-privileges:1"],
           Sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"})


def test_spec_of_the_options(tmp_path) -> None:  # noqa: ANN001
    options = specs.RunOptions(
        command=["sh"], shm_size=1 << 20, namespaces={"ipc": "host", "pid": "/proc/9/ns/pid", "uts": "host"},
        shm="/dev/shm", devices=[{"path": "/dev/x", "type": "c", "major": 240, "minor": 1}],
        device_rules=[{"allow": True, "type": "c", "major": 240, "access": "r"}], oom_score_adj=300,
        memory_reservation=32 << 20, memory_swappiness=10, oom_kill_disable=True,
        block_io={"throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1}]})
    spec = specs.build({}, tmp_path, options, "c" * 64)
    linux = spec["linux"]
    assert {"type": "pid", "path": "/proc/9/ns/pid"} in linux["namespaces"]
    assert {n["type"] for n in linux["namespaces"]} == {"pid", "mount", "cgroup", "network"}
    assert "hostname" not in spec   # the host's UTS namespace
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                    "options": ["rbind", "nosuid", "noexec", "nodev"]}]
    assert linux["devices"] == [{"path": "/dev/x", "type": "c", "major": 240, "minor": 1}]
    assert linux["resources"]["devices"][-1] == {"allow": True, "type": "c", "major": 240, "access": "r"}
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert linux["resources"]["memory"] == {"reservation": 32 << 20, "swappiness": 10, "disableOOMKiller": True}
    assert linux["resources"]["blockIO"] == {"throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1}]}
    assert spec["process"]["oomScoreAdj"] == 300
    plain = specs.build({}, tmp_path, specs.RunOptions(command=["sh"], shm_size=1 << 20), "c" * 64)
    assert [m["options"][-1] for m in plain["mounts"] if m["destination"] == "/dev/shm"] == ["size=1024k"]
    none = specs.build({}, tmp_path, specs.RunOptions(command=["sh"], shm="none"), "c" * 64)
    assert not [m for m in none["mounts"] if m["destination"] == "/dev/shm"]


def test_docker_profile_to_oci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "5.10.0-1", "#1", "x86_64")))
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["sync_file_range2"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.1"}},
        ]}
    oci = dockerseccomp.to_oci(profile, ["CAP_CHOWN"])
    assert oci == {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
                     {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    admin = dockerseccomp.to_oci(profile, ["CAP_SYS_ADMIN"])
    assert [r["names"] for r in admin["syscalls"]] == [["read", "write"], ["mkdir"], ["mount"], ["arch_prctl"]]
    with pytest.raises(dockerseccomp.ProfileError):
        dockerseccomp.to_oci({"syscalls": []}, [])
    with pytest.raises(dockerseccomp.ProfileError):
        dockerseccomp.to_oci({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x"], "archMap": [{}]}, [])
    options = specs.RunOptions(command=["sh"], seccomp=("docker", json.dumps(profile)))
    assert specs._seccomp(options, ["CAP_CHOWN"]) == oci


def test_joined_namespaces_keep_the_donors_id() -> None:
    class Record:
        id = "f" * 64

    host = {"IpcMode": "container:web", "PidMode": "container:web", "NetworkMode": "default"}
    runflags.check(host, {}, lambda name: Record())
    assert host["IpcMode"] == host["PidMode"] == "container:" + "f" * 64


def test_systempaths_unconfined(tmp_path) -> None:  # noqa: ANN001
    runflags.check_security_opt("systempaths=unconfined")
    with pytest.raises(runflags.FlagError):
        runflags.check_security_opt("systempaths=confined")
    spec = specs.build({}, tmp_path, specs.RunOptions(command=["sh"], unmasked=True), "c" * 64)
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
