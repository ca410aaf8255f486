"""Pure pieces of the container code: IDs and names, json-file logs, mount flags, frames,
flags into Config/HostConfig, ps status text."""

from __future__ import annotations

import json
import re
import time

import pytest

from dockyard.containers import frames, logs, mounts, names
from dockyard.errors import DockyardError


def test_ids_and_names() -> None:
    cid = names.new_id()
    assert len(cid) == 64 and int(cid, 16) >= 0 and not cid[:12].isdigit()
    assert "_" in names.random_name()
    assert names.check_name("/web-1") == "web-1"
    with pytest.raises(DockyardError, match="Invalid container name"):
        names.check_name("x")  # Docker wants two characters at least
    with pytest.raises(DockyardError):
        names.check_name("bad name")


def test_resolution_order_like_docker() -> None:
    entries = [("abc123" + "0" * 58, "web"), ("abd456" + "0" * 58, "abc123"), ("fff" + "0" * 61, "db")]
    assert names.resolve(entries[0][0], entries) == entries[0][0]   # full ID
    assert names.resolve("abc123", entries) == entries[1][0]        # a name beats an ID prefix
    assert names.resolve("/db", entries) == entries[2][0]
    assert names.resolve("ff", entries) == entries[2][0]            # unique prefix
    with pytest.raises(DockyardError, match="multiple IDs found with provided prefix: ab"):
        names.resolve("ab", entries)
    with pytest.raises(names.NoSuchContainer, match="No such container: zzz"):
        names.resolve("zzz", entries)


def test_log_writer_lines_partial_and_rotation(tmp_path) -> None:
    path = str(tmp_path / "c-json.log")
    writer = logs.LogWriter(path, max_size=300, max_files=3)
    writer.write("stdout", b"one\ntw")
    writer.write("stdout", b"o\n")
    writer.write("stderr", b"no newline")
    writer.flush()
    records = list(logs.read(path))
    assert [(r["log"], r["stream"]) for r in records] == [("one\n", "stdout"), ("two\n", "stdout"),
                                                          ("no newline", "stderr")]
    # Go's RFC3339Nano, as Docker writes it: nanoseconds with trailing zeros dropped
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", records[0]["time"])
    for i in range(50):
        writer.write("stdout", f"line {i}\n".encode())
    writer.close()
    assert len(logs.files(path)) == 3  # current + .1 + .2; older ones dropped
    kept = [r["log"] for r in logs.read(path)]
    assert kept[-1] == "line 49\n" and "one\n" not in kept
    assert [r["log"] for r in logs.read(path, tail=2)] == ["line 48\n", "line 49\n"]
    assert list(logs.read(path, tail=0)) == []
    assert list(logs.read(path, since=time.time() + 60)) == []


def test_log_sizes_and_since() -> None:
    assert logs.parse_size("10m") == 10 * 1024 * 1024 and logs.parse_size("1k") == 1024
    assert logs.parse_size("100") == 100 and logs.parse_size("2kb") == 2048
    assert abs(logs.parse_since("10m", now=1000.0) - 400.0) < 1e-6
    assert logs.parse_since("1700000000") == 1700000000.0
    assert logs.parse_since("2024-01-01T00:00:00Z") == 1704067200.0


def test_volume_flags() -> None:
    bind = mounts.parse_volume("/srv/data:/data:ro")
    assert bind["Type"] == "bind" and bind["Source"] == "/srv/data" and not bind["RW"] and bind["Mode"] == "ro"
    named = mounts.parse_volume("cache:/cache")
    assert named["Type"] == "volume" and named["Name"] == "cache" and named["RW"]
    anon = mounts.parse_volume("/scratch")
    assert anon["Type"] == "volume" and anon["Name"] == "" and anon["Destination"] == "/scratch"
    with pytest.raises(DockyardError, match="invalid mode"):
        mounts.parse_volume("a:/b:bogus")
    with pytest.raises(DockyardError):
        mounts.parse_volume("a:b:c:d")
    with pytest.raises(DockyardError) as relative:
        mounts.parse_volume("data:relative:rw")
    assert str(relative.value).endswith("invalid mount path: 'relative' mount path must be absolute")
    tmpfs = mounts.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")
    assert mounts.to_oci(tmpfs) == {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev", "size=1m"]}
    vol = mounts.parse_mount("type=volume,source=v,target=/v,readonly,volume-nocopy")
    assert vol["NoCopy"] and not vol["RW"]
    assert mounts.parse_tmpfs("/run:size=64k")["TmpfsOptions"] == ["noexec", "nosuid", "nodev", "size=64k"]
    with pytest.raises(DockyardError, match="Duplicate mount point: /a"):
        mounts.check_unique([mounts.parse_volume("/a"), mounts.parse_volume("x:/a/")])


def test_frames_roundtrip_in_pieces() -> None:
    data = frames.pack(frames.STDOUT, b"hello") + frames.pack(frames.EXIT, json.dumps({"StatusCode": 3}).encode())
    reader = frames.Reader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == [(1, b"hello"), (3, b'{"StatusCode": 3}')]
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x05"  # Docker's stream header


def test_flags_into_config_and_host_config() -> None:
    from dockyard.cli.ops import build_create

    config, host = build_create({"env": ("A=1",), "labels": ("k=v",), "restart": "on-failure:3", "memory": "64m",
                                 "cpus": "0.5", "ulimit": ("nofile=10:20",), "entrypoint": "", "rm": True,
                                 "log_opt": ("max-size=1k",), "interactive": True, "detach": False},
                                "busybox", ["echo", "hi"])
    assert config["Env"] == ["A=1"] and config["Labels"] == {"k": "v"} and config["Cmd"] == ["echo", "hi"]
    assert config["Entrypoint"] == [""] and config["OpenStdin"] and config["AttachStdin"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Memory"] == 64 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k"}} and host["AutoRemove"]
    with pytest.raises(DockyardError):
        build_create({"restart": "on-failure:x"}, "busybox", [])


def test_status_text() -> None:
    from dockyard.containers.summary import status_text
    from dockyard.containers.store import ContainerRecord

    r = ContainerRecord(id="a" * 64, name="n", image_id="sha256:x", image="busybox", created=0, config={})
    assert status_text(r, 100) == "Created"
    r.status, r.started_at = "running", 40
    assert status_text(r, 100) == "Up About a minute"
    r.status = "paused"
    assert status_text(r, 100) == "Up About a minute (Paused)"
    r.status, r.exit_code, r.finished_at = "exited", 137, 97
    assert status_text(r, 100) == "Exited (137) 3 seconds ago"


def test_config_merge_with_image() -> None:
    from dockyard.containers.manager import _merge_config

    image = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/w",
             "Labels": {"a": "1"}, "User": "nobody"}
    merged = _merge_config({"Image": "x", "Env": ["A=mine"], "Cmd": None, "Entrypoint": None, "Labels": {"b": "2"}},
                           image)
    assert merged["Env"] == ["PATH=/bin", "A=mine"] and merged["Cmd"] == ["sh"] and merged["WorkingDir"] == "/w"
    assert merged["Labels"] == {"a": "1", "b": "2"} and merged["User"] == "nobody"
    reset = _merge_config({"Image": "x", "Entrypoint": ["/bin/echo"], "Cmd": None}, {"Cmd": ["sh"], "Entrypoint": ["e"]})
    assert reset["Entrypoint"] == ["/bin/echo"] and reset["Cmd"] is None
