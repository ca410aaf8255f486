"""Pure parts of version, info, diff, update and completion (no root, no containers)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dockyard.cli.main import _wants_version
from dockyard.containers import filesystem, update
from dockyard.system import info, version


# ---- version ------------------------------------------------------------------------------


def test_banner_reads_as_docker_s() -> None:
    assert re.fullmatch(r"Dockyard version \d+\.\d+\.\d+, build ([0-9a-f]{7}|unknown)", version.banner())


def test_build_is_the_checkout_s_head() -> None:
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(version.__file__).parent, capture_output=True,
                          text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert version.git_commit() == head.stdout.strip()
    assert version.build() == head.stdout.strip()[:7]


@pytest.mark.parametrize("args,wanted", [
    (["--version"], True), (["-v"], True), (["--root", "/x", "-v"], True), (["-D", "--version"], True),
    (["-H", "unix:///x", "--version"], True), (["--root=/x", "-v"], True),
    (["ps"], False), (["run", "-v", "/a:/b", "busybox"], False), (["ps", "--version"], False), ([], False),
    (["--", "-v"], False), (["--root", "-v"], False),
])
def test_version_flag_only_among_the_global_options(args: list[str], wanted: bool) -> None:
    assert _wants_version(args) is wanted


def test_version_layout_follows_docker_s() -> None:
    from dockyard.cli.info import render_version

    data = version.version_info("pyrunc")
    text = render_version(data)
    lines = text.splitlines()
    assert lines[0] == "Client: Dockyard" and " Python version:    python" in text
    assert lines[10] == "Server: Dockyard" and lines[11] == " Engine:"
    assert "  API version:      1.41 (minimum version 1.12)" in lines
    assert lines[-3:] == [" pyrunc:", f"  Version:          {version.version()}", f"  GitCommit:        {version.build()}"]
    # Every value starts in column 21 of the Client section, as in Docker's template.
    assert all(line[19] == " " and line[20] != " " for line in lines[1:9] if len(line) > 20)


def test_runtime_version_of_runc_and_crun() -> None:
    import shutil

    for name in ("runc", "crun"):
        if shutil.which(name):
            ver, _commit = version.runtime_version(name)
            assert re.match(r"\d+\.\d+", ver), (name, ver)
    assert version.runtime_version("no-such-runtime") == ("", "")


# ---- info ---------------------------------------------------------------------------------


def test_bytes_size_as_go_units() -> None:
    from dockyard.cli.info import bytes_size

    assert bytes_size(25276071936) == "23.54GiB"
    assert bytes_size(512) == "512B"
    assert bytes_size(1536) == "1.5KiB"


def test_registry_config_as_docker_s() -> None:
    config = info.registry_config(["10.0.0.0/8", "myreg:5000"])
    assert config["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert config["IndexConfigs"]["myreg:5000"]["Secure"] is False
    assert config["IndexConfigs"]["docker.io"] == {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}


def test_warnings_in_docker_s_order() -> None:
    facts = {"CgroupVersion": "1"}
    found = info.warnings(facts)
    assert found[0] == "WARNING: No memory limit support" and found[1] == "WARNING: No swap limit support"
    assert found[-1] == "WARNING: bridge-nf-call-ip6tables is disabled"
    assert "WARNING: No kernel memory limit support" not in info.warnings({"CgroupVersion": "2"})


def test_backing_filesystem_names() -> None:
    assert info.backing_filesystem("/proc") == "proc"
    assert info.backing_filesystem("/") not in ("", "unknown")


def test_engine_id_is_made_once(tmp_path: Path) -> None:
    first = info.engine_id(str(tmp_path))
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", first)
    assert info.engine_id(str(tmp_path)) == first


def test_info_text_layout() -> None:
    from dockyard.cli.info import render_info

    data = {"ClientInfo": {"Debug": False, "Context": "default", "Plugins": []}, "Containers": 3,
            "ContainersRunning": 1, "ContainersPaused": 1, "ContainersStopped": 1, "Images": 2, "ServerVersion": "0.1.0",
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]], "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"]},
            "Swarm": {"LocalNodeState": "inactive"}, "Runtimes": {"pyrunc": {}, "crun": {}},
            "DefaultRuntime": "pyrunc", "InitBinary": "docker-init", "RuncCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=default"], "KernelVersion": "6.1", "OperatingSystem": "Debian",
            "OSType": "linux", "Architecture": "x86_64", "NCPU": 2, "MemTotal": 2 << 30, "Name": "host", "ID": "X",
            "DockerRootDir": "/r", "Debug": False, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "IndexServerAddress": info.INDEX_SERVER, "ExperimentalBuild": False,
            "RegistryConfig": info.registry_config(["myreg:5000"]), "LiveRestoreEnabled": True}
    text = render_info(data)
    assert text.startswith("Client:\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: 3\n"
                           "  Running: 1\n  Paused: 1\n  Stopped: 1\n Images: 2\n")
    assert " Runtimes: pyrunc crun\n Default Runtime: pyrunc\n" in text
    assert " Security Options:\n  seccomp\n   Profile: default\n" in text
    assert " Total Memory: 2GiB\n" in text
    assert " Insecure Registries:\n  myreg:5000\n  127.0.0.0/8\n Live Restore Enabled: true\n\n" in text
    assert "runc version" not in text


# ---- diff ---------------------------------------------------------------------------------


def _tree(base: Path, files: dict[str, str | None]) -> str:
    for rel, content in files.items():
        path = base / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    return str(base)


def test_changes_of_added_and_changed_files(tmp_path: Path) -> None:
    lower = _tree(tmp_path / "lower", {"bin/sh": "x", "etc/passwd": "root", "usr/lib": None, "root": None})
    upper = _tree(tmp_path / "upper", {"a": "", "etc/passwd": "root2", "usr/lib/new/f": "", "etc/hostname": "",
                                       "etc/hosts": "", "root": None})
    os.chmod(os.path.join(lower, "root"), 0o700)
    os.chmod(os.path.join(upper, "root"), 0o755)
    assert filesystem.changes(upper, [lower]) == [
        ("A", "/a"), ("C", "/etc"), ("C", "/etc/passwd"), ("C", "/root"), ("C", "/usr"), ("C", "/usr/lib"),
        ("A", "/usr/lib/new"), ("A", "/usr/lib/new/f")]


def test_changes_ignore_the_engine_s_files_and_unchanged_dirs(tmp_path: Path) -> None:
    lower = _tree(tmp_path / "lower", {"etc/passwd": "root"})
    upper = _tree(tmp_path / "upper", {"etc/hostname": "", "etc/resolv.conf": "", "etc/hosts": ""})
    assert filesystem.changes(upper, [lower]) == []
    assert filesystem.changes(str(tmp_path / "missing"), [lower]) == []


def test_changes_look_through_every_lower_layer(tmp_path: Path) -> None:
    top = _tree(tmp_path / "l2", {"opt/x": "1"})
    bottom = _tree(tmp_path / "l1", {"srv/y": "1"})
    upper = _tree(tmp_path / "upper", {"srv/y": "2", "opt/x": "2", "new": ""})
    assert filesystem.changes(upper, [top, bottom]) == [("A", "/new"), ("C", "/opt"), ("C", "/opt/x"),
                                                         ("C", "/srv"), ("C", "/srv/y")]


# ---- update -------------------------------------------------------------------------------


def test_parse_cpuset() -> None:
    assert update.parse_cpuset("0-2,4") == {0, 1, 2, 4}
    for bad in ("x", "2-1", "1,", "-1", "1-"):
        with pytest.raises(ValueError):
            update.parse_cpuset(bad)


def test_merge_follows_docker_s_rules() -> None:
    host = {"Memory": 20 << 20, "MemorySwap": 40 << 20, "NanoCpus": 0, "CpuQuota": 0, "PidsLimit": None}
    new = update.merge(host, {"Memory": 30 << 20})
    assert (new["Memory"], new["MemorySwap"]) == (30 << 20, 40 << 20)
    with pytest.raises(update.UpdateError, match="Memory limit should be smaller"):
        update.merge(host, {"Memory": 50 << 20})
    assert update.merge(host, {"Memory": 50 << 20, "MemorySwap": 100 << 20})["MemorySwap"] == 100 << 20
    assert update.merge(host, {"PidsLimit": -1})["PidsLimit"] == 0
    assert update.merge(host, {"CpuShares": 0}) == host   # zero: unchanged, as in Docker
    with pytest.raises(update.UpdateError, match="CPU Quota cannot be updated as NanoCPUs"):
        update.merge({"NanoCpus": 10 ** 9}, {"CpuQuota": 5000})
    with pytest.raises(update.UpdateError, match="Nano CPUs cannot be updated as CPU Period"):
        update.merge({"CpuPeriod": 5000}, {"NanoCpus": 10 ** 9})


def test_request_checks() -> None:
    for request, message in (({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
                             ({"Memory": 20 << 20, "MemorySwap": 10 << 20}, "Minimum memoryswap limit"),
                             ({"MemoryReservation": 1}, "Minimum memory reservation allowed is 6MB"),
                             ({"Memory": 10 << 20, "MemoryReservation": 20 << 20}, "can not be less than memory res"),
                             ({"NanoCpus": 10 ** 9, "CpuPeriod": 5000}, "Nano CPUs and CPU Period"),
                             ({"NanoCpus": 10 ** 12}, "Range of CPUs is from 0.01"),
                             ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms"),
                             ({"BlkioWeight": 5}, "Range of blkio weight"),
                             ({"CpusetMems": "a"}, "Invalid value a for cpuset mems")):
        with pytest.raises(update.UpdateError, match=re.escape(message)):
            update.check_request(request)
    update.check_request({"Memory": 10 << 20, "MemorySwap": -1, "CpuShares": 512})


def test_oci_resources_carry_only_what_was_asked() -> None:
    assert update.oci_resources({"Memory": 30, "NanoCpus": 5 * 10 ** 8, "PidsLimit": 0}) == {
        "memory": {"limit": 30}, "cpu": {"period": 100000, "quota": 50000}, "pids": {"limit": -1}}
    assert update.oci_resources({"CpuPeriod": 50000, "CpuQuota": 25000, "CpusetCpus": "0", "BlkioWeight": 300,
                                 "MemorySwap": -1}) == {
        "memory": {"swap": -1}, "cpu": {"period": 50000, "quota": 25000, "cpus": "0"}, "blockIO": {"weight": 300}}
    assert update.oci_resources({}) == {}


def test_restart_policy_checks() -> None:
    from dockyard.cli.changes import parse_restart

    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(Exception, match="invalid restart policy format"):
        parse_restart("a:1:2")
    with pytest.raises(update.UpdateError, match="cannot be negative"):
        update.check_restart_policy({"Name": "on-failure", "MaximumRetryCount": -1})
    with pytest.raises(update.UpdateError, match="AutoRemove"):
        update.check_auto_remove({"AutoRemove": True}, {"Name": "always"})
    update.check_auto_remove({"AutoRemove": True}, {"Name": "no"})


# ---- completion ----------------------------------------------------------------------------


def test_completion_kinds_from_metavar_and_name() -> None:
    import click

    from dockyard.cli.completion import kinds_of

    assert kinds_of(click.Argument(["names"], metavar="IMAGE [IMAGE...]")) == ["IMAGE"]
    assert kinds_of(click.Argument(["names"], metavar="NAME|ID [NAME|ID...]")) == ["CONTAINER", "IMAGE"]
    assert kinds_of(click.Argument(["container"])) == ["CONTAINER"]
    assert kinds_of(click.Argument(["containers_"], metavar="CONTAINER [CONTAINER...]")) == ["CONTAINER"]
    assert kinds_of(click.Argument(["names"], metavar="VOLUME [VOLUME...]")) == ["VOLUME"]
    assert kinds_of(click.Argument(["dest"])) == []


def test_changes_never_follow_a_layer_s_symlinks(tmp_path: Path) -> None:
    """A directory made where the image has an absolute symlink: what is in it is new, whatever
    the host has where the symlink points."""
    lower = _tree(tmp_path / "lower", {"etc/passwd": "root"})
    os.symlink("/usr", os.path.join(lower, "lib"))
    upper = _tree(tmp_path / "upper", {"lib/bin": ""})
    assert Path("/usr/bin").exists()
    assert filesystem.changes(upper, [lower]) == [("C", "/lib"), ("A", "/lib/bin")]


def test_changes_of_a_file_in_a_lower_layer_hidden_by_a_non_directory(tmp_path: Path) -> None:
    top = _tree(tmp_path / "l2", {"opt": "now a file"})
    bottom = _tree(tmp_path / "l1", {"opt/x": "1"})
    upper = _tree(tmp_path / "upper", {"opt2": ""})
    assert filesystem._in_lower([top, bottom], "/opt/x") is None
    assert filesystem._in_lower([top, bottom], "/opt") is not None
    assert filesystem.changes(upper, [top, bottom]) == [("A", "/opt2")]
