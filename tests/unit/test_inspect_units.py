"""The pure helpers behind ``inspect``, ``ps`` and their Docker shapes (the side-by-side tests
with a real dockerd are tests/integration/test_inspect_vs_docker.py and test_ps_df_vs_docker.py)."""

from __future__ import annotations

import re

import pytest

from dockyard.cli.ops import _wants_size, go_quote, ps_size
from dockyard.containers.summary import ps_command
from dockyard.containers import inspect as ci
from dockyard.containers.store import ContainerRecord


# ---- times ------------------------------------------------------------------------------------

def test_nano_time() -> None:
    assert ci.nano_time(None) == ci.nano_time(0) == "0001-01-01T00:00:00Z"
    assert ci.nano_time(1.5) == "1970-01-01T00:00:01.5Z"           # Go drops the trailing zeros
    assert ci.nano_time(86400.0) == "1970-01-02T00:00:00Z"
    text = ci.nano_time(1_700_000_000.123456789)
    assert re.fullmatch(r"2023-11-14T22:13:20\.123456\d{1,3}Z", text)  # more than Python's microseconds
    assert ci.nano_time(9.9999999999) == "1970-01-01T00:00:10Z"       # rounding carries into the second


# ---- HostConfig ------------------------------------------------------------------------------

def test_ram_in_bytes() -> None:
    assert ci.ram_in_bytes("1m") == 1048576
    assert ci.ram_in_bytes("64k") == 65536
    assert ci.ram_in_bytes("1G") == 1 << 30
    assert ci.ram_in_bytes("100") == 100
    assert ci.ram_in_bytes("1.5m") == 1572864
    assert ci.ram_in_bytes("2mb") == ci.ram_in_bytes("2MiB") == 2 << 20
    with pytest.raises(ValueError):
        ci.ram_in_bytes("lots")


def test_mount_spec_is_dockers_mount_shape() -> None:
    tmpfs = {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": "",
             "TmpfsOptions": ["nosuid", "nodev", "size=1m", "mode=1770"]}
    assert ci.mount_spec(tmpfs) == {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}}
    bare = dict(tmpfs, TmpfsOptions=["nosuid", "nodev"])
    assert ci.mount_spec(bare) == {"Type": "tmpfs", "Target": "/t"}
    volume = {"Type": "volume", "Name": "vol1", "Source": "", "Destination": "/v", "Driver": "local", "Mode": "z",
              "RW": False, "Propagation": "", "NoCopy": True}
    assert ci.mount_spec(volume) == {"Type": "volume", "Source": "vol1", "Target": "/v", "ReadOnly": True,
                                     "VolumeOptions": {"NoCopy": True}}
    anonymous = dict(volume, Name="", RW=True, NoCopy=False)
    assert ci.mount_spec(anonymous) == {"Type": "volume", "Target": "/v"}
    bind = {"Type": "bind", "Source": "/src", "Destination": "/d", "Mode": "", "RW": True, "Propagation": "rprivate"}
    assert ci.mount_spec(bind) == {"Type": "bind", "Source": "/src", "Target": "/d"}
    assert ci.mount_spec(dict(bind, Propagation="rshared"))["BindOptions"] == {"Propagation": "rshared"}


def test_host_config_has_every_docker_field_in_order() -> None:
    out = ci.host_config({"NetworkMode": "none", "Memory": 67108864, "Runtime": "pyrunc", "Init": None})
    omitted = {"StorageOpt", "Tmpfs", "Sysctls", "Mounts", "Init"}   # omitempty, and empty here
    assert list(out) == [k for k, _ in ci.HOST_CONFIG_DEFAULTS if k not in omitted]
    assert (out["NetworkMode"], out["Memory"], out["Runtime"]) == ("none", 67108864, "pyrunc")
    assert (out["ShmSize"], out["ConsoleSize"], out["Dns"], out["BlkioWeightDevice"]) == (67108864, [0, 0], [], [])
    assert out["OomKillDisable"] is False and out["MemorySwappiness"] is None and out["PidsLimit"] is None
    assert "/proc/kcore" in out["MaskedPaths"] and "/proc/sys" in out["ReadonlyPaths"]


def test_host_config_omitempty_and_extras() -> None:
    out = ci.host_config({"Privileged": True, "Init": True, "Tmpfs": {"/run": ""}, "SomethingNew": 1,
                          "Mounts": [{"Type": "tmpfs", "Destination": "/t", "RW": True, "TmpfsOptions": []}]})
    assert out["MaskedPaths"] is None and out["ReadonlyPaths"] is None   # privileged: nothing masked
    assert out["Init"] is True and out["Tmpfs"] == {"/run": ""}
    assert out["Mounts"] == [{"Type": "tmpfs", "Target": "/t"}]
    assert list(out)[-1] == "SomethingNew"                               # a field Docker 20.10 lacks, kept last
    assert list(out).index("Mounts") < list(out).index("MaskedPaths") < list(out).index("Init")
    assert ci.host_config({"Init": False})["Init"] is False              # *bool: false prints


def _record(config: dict, host: dict | None = None) -> ContainerRecord:
    return ContainerRecord(id="0123456789abcdef" * 4, name="c1", image_id="sha256:x", image="busybox", created=1.0,
                           config={"Path": "sh", "Args": [], "Config": config, "HostConfig": host or {}})


def test_container_config_shape() -> None:
    conf = ci.container_config(_record({"Env": [], "Cmd": ["sh"], "Image": "busybox", "Labels": None,
                                        "Domainname": "", "ExposedPorts": {}, "StopTimeout": 0}), None)
    assert conf["Hostname"] == "0123456789ab"     # the short ID, as Docker's create sets it
    assert conf["Env"] is None and conf["Labels"] == {} and conf["Volumes"] is None
    assert "ExposedPorts" not in conf and conf["StopTimeout"] == 0
    assert list(conf)[:6] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr"]
    assert list(conf).index("Image") < list(conf).index("Volumes") < list(conf).index("OnBuild") < list(conf).index("Labels")
    # host networking: the host's name
    import os

    assert ci.container_config(_record({}, {"NetworkMode": "host"}), None)["Hostname"] == os.uname().nodename
    # a record from before the engine stopped adding PATH: dropped when the image has none
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert ci.container_config(_record({"Env": [path, "A=1"]}), [])["Env"] == ["A=1"]
    assert ci.container_config(_record({"Env": [path, "A=1"]}), [path])["Env"] == [path, "A=1"]


# ---- ps ---------------------------------------------------------------------------------------

def test_ps_command_quotes_as_the_daemon_does() -> None:
    assert ps_command("sleep", ["300"]) == "sleep 300"
    assert ps_command("sh", []) == "sh"
    assert ps_command("sh", ["-c", "echo hi"]) == "sh -c 'echo hi'"
    assert go_quote("sh -c 'echo hi'") == "\"sh -c 'echo hi'\""
    assert go_quote('echo "a b" \\ x') == '"echo \\"a b\\" \\\\ x"'
    assert go_quote("tab\there\n") == '"tab\\there\\n"'
    assert go_quote("\x01\x7f") == '"\\x01\\x7f"'
    assert go_quote("café…") == '"café…"'


def test_ps_size_cell() -> None:
    assert ps_size(0, 1986001) == "0B (virtual 1.99MB)"
    assert ps_size(100000, 2086001) == "100kB (virtual 2.09MB)"
    assert ps_size(5, 0) == "5B"


def test_sizes_asked_for_by_the_template() -> None:
    assert not _wants_size(None) and not _wants_size("{{.Names}}") and not _wants_size("table {{.ID}}")
    assert _wants_size("{{.Size}}") and _wants_size("{{json .}}") and _wants_size("json")
    assert _wants_size("table {{.Names}}\t{{.Size}}")


def test_anonymous_volumes_are_config_volumes() -> None:
    assert ci.split_binds(None) == (None, {})
    assert ci.split_binds(["/anon", "/h:/d:ro", "named:/n", "/x:rw"]) == (["/h:/d:ro", "named:/n"], {"/anon": {}, "/x": {}})
    assert ci.split_binds(["/anon"]) == (None, {"/anon": {}})
    assert ci.host_config({"Binds": ["/anon"]})["Binds"] is None
    assert ci.container_config(_record({"Volumes": None}, {"Binds": ["/anon"]}), None)["Volumes"] == {"/anon": {}}
    assert ci.host_config({"Privileged": True})["SecurityOpt"] == ["label=disable"]
