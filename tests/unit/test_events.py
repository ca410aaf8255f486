"""The event log: writer, reader, rotation, concurrent writers, filters, time values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard import events


def _all(root: Path, **kw) -> list[dict]:  # noqa: ANN003
    return list(events.read(str(root), **kw))


def test_record_writes_dockers_message_shape(tmp_path: Path) -> None:
    before = time.time_ns()
    events.record(str(tmp_path), "container", "start", "abc123", {"image": "busybox", "name": "c1"})
    line = (tmp_path / "events" / "events.jsonl").read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    message = json.loads(line)
    assert message["status"] == "start" and message["id"] == "abc123" and message["from"] == "busybox"
    assert message["Type"] == "container" and message["Action"] == "start"
    assert message["Actor"] == {"ID": "abc123", "Attributes": {"image": "busybox", "name": "c1"}}
    assert message["scope"] == "local"
    assert before <= message["timeNano"] <= time.time_ns()
    assert message["time"] == message["timeNano"] // 1_000_000_000


def test_deprecated_fields_only_for_containers_and_images(tmp_path: Path) -> None:
    events.record(str(tmp_path), "image", "tag", "sha256:1", {"name": "busybox:x"})
    events.record(str(tmp_path), "volume", "create", "v1", {"driver": "local"})
    image, volume = _all(tmp_path)
    assert image["status"] == "tag" and image["id"] == "sha256:1" and "from" not in image
    assert not {"status", "id", "from"} & set(volume)


def test_record_never_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkey_warned = events._warned
    events._warned = False
    try:
        events.record(str(blocker), "container", "start", "x")  # <root>/events cannot be made under a file
        events.record(str(blocker), "container", "stop", "x")
    finally:
        events._warned = monkey_warned
    err = capsys.readouterr().err
    assert err.count("not recorded") == 1


def test_record_is_cheap(tmp_path: Path) -> None:
    events.record(str(tmp_path), "container", "create", "warm")
    n = 200
    start = time.perf_counter()
    for i in range(n):
        events.record(str(tmp_path), "container", "start", f"id{i}", {"image": "busybox", "name": f"c{i}"})
    per_call = (time.perf_counter() - start) / n
    assert per_call < 0.001, f"{per_call * 1e6:.0f} us per event"


def test_since_until_and_order(tmp_path: Path) -> None:
    for action in ("create", "start", "die"):
        events.record(str(tmp_path), "container", action, "c")
        time.sleep(0.002)
    every = _all(tmp_path)
    assert [m["Action"] for m in every] == ["create", "start", "die"]
    t = [m["timeNano"] for m in every]
    assert [m["Action"] for m in _all(tmp_path, since=t[1])] == ["start", "die"]
    assert [m["Action"] for m in _all(tmp_path, until=t[1])] == ["create", "start"]
    assert [m["Action"] for m in _all(tmp_path, since=t[1], until=t[1])] == ["start"]


def test_missing_log_reads_empty(tmp_path: Path) -> None:
    assert _all(tmp_path) == []


def test_partial_last_line_is_not_read(tmp_path: Path) -> None:
    events.record(str(tmp_path), "container", "start", "c")
    with open(tmp_path / "events" / "events.jsonl", "ab") as f:
        f.write(b'{"Type":"container","Act')
    assert [m["Action"] for m in _all(tmp_path)] == ["start"]


def test_rotation_keeps_the_previous_file_and_reads_it_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 2000)
    for i in range(60):
        events.record(str(tmp_path), "container", "start", f"id{i:03d}")
    directory = tmp_path / "events"
    assert (directory / "events.1.jsonl").exists()
    assert (directory / "events.jsonl").stat().st_size <= 2000 + 400
    seen = [m["Actor"]["ID"] for m in _all(tmp_path)]
    # Bounded: older rotations are gone, what is kept is in order and ends with the newest.
    assert seen == sorted(seen) and seen[-1] == "id059"
    assert 5 < len(seen) < 60
    assert sum(p.stat().st_size for p in directory.glob("*.jsonl")) <= 2 * (2000 + 400)


_WRITER = """
import sys
from dockyard import events
root, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if len(sys.argv) > 4:
    events.MAX_BYTES = int(sys.argv[4])
for i in range(n):
    events.record(root, "container", "exec_start: " + tag * 50, tag + str(i), {"pad": tag * 300, "i": str(i)})
"""


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    n, writers = 300, 4
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), chr(ord("a") + k), str(n)])
             for k in range(writers)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    raw = (tmp_path / "events" / "events.jsonl").read_bytes()
    lines = raw.splitlines()
    assert len(lines) == n * writers
    per_writer: dict[str, list[int]] = {}
    for line in lines:
        message = json.loads(line)  # a torn line would not parse
        attrs = message["Actor"]["Attributes"]
        tag = attrs["pad"][0]
        assert attrs["pad"] == tag * 300
        per_writer.setdefault(tag, []).append(int(attrs["i"]))
    assert all(v == list(range(n)) for v in per_writer.values())


def test_concurrent_writers_rotating_leave_whole_lines(tmp_path: Path) -> None:
    n, writers = 200, 4
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), chr(ord("a") + k), str(n), "30000"])
             for k in range(writers)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    directory = tmp_path / "events"
    kept = []
    for name in ("events.1.jsonl", "events.jsonl"):
        for line in (directory / name).read_bytes().splitlines():
            attrs = json.loads(line)["Actor"]["Attributes"]
            assert attrs["pad"] == attrs["pad"][0] * 300
            kept.append(attrs["pad"][0] + attrs["i"])
    assert len(kept) == len(set(kept)) and 10 < len(kept) < n * writers   # bounded: older rotations gone
    assert (directory / "events.jsonl").stat().st_size <= 30000 + 4 * 1000
    assert [m["Actor"]["Attributes"]["pad"][0] + m["Actor"]["Attributes"]["i"] for m in _all(tmp_path)] == kept


def test_follow_sees_new_events_and_stops_at_until(tmp_path: Path) -> None:
    events.record(str(tmp_path), "container", "create", "old")
    since = time.time_ns()
    until = since + int(1.5e9)
    got: list[str] = []

    def reader() -> None:
        for m in events.read(str(tmp_path), since=since, until=until, follow=True, interval=0.05):
            got.append(m["Action"])

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    events.record(str(tmp_path), "container", "start", "new")
    deadline = time.monotonic() + 1.0
    while "start" not in got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got == ["start"]
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_follow_continues_across_a_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 1500)
    stop = threading.Event()
    got: list[str] = []

    def reader() -> None:
        for m in events.read(str(tmp_path), follow=True, interval=0.02, stop=stop.is_set):
            got.append(m["Actor"]["ID"])

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(40):
        events.record(str(tmp_path), "container", "start", f"id{i:03d}")
        time.sleep(0.01)
    deadline = time.monotonic() + 3
    while len(got) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert got == [f"id{i:03d}" for i in range(40)]


# --- filters -----------------------------------------------------------------------------------

def _msg(type_: str, action: str, actor: str, **attrs: str) -> dict:
    return {"Type": type_, "Action": action, "Actor": {"ID": actor, "Attributes": attrs}, "scope": "local"}


C1 = _msg("container", "start", "aaa111", image="busybox:latest", name="c1", tier="web")
C2 = _msg("container", "die", "bbb222", image="alpine", name="c2", exitCode="0")
EX = _msg("container", "exec_start: sh -c true", "aaa111", image="busybox:latest", name="c1", execID="e1")
IM = _msg("image", "tag", "sha256:fff", name="busybox:mytag")
VO = _msg("volume", "create", "data", driver="local")
NE = _msg("network", "connect", "n123", container="aaa111", name="none", type="null")


def _keep(filters: dict, msgs=(C1, C2, EX, IM, VO, NE)) -> list[dict]:  # noqa: ANN001
    m = events.Matcher(filters)
    return [x for x in msgs if m(x)]


def test_filter_same_key_ored_different_keys_anded() -> None:
    assert _keep({"event": ["start", "die"]}) == [C1, C2]
    assert _keep({"event": ["start", "die"], "container": ["c2"]}) == [C2]
    assert _keep({"type": ["volume", "network"]}) == [VO, NE]


def test_filter_container_by_name_id_or_prefix() -> None:
    assert _keep({"container": ["c1"]}) == [C1, EX]
    assert _keep({"container": ["bbb"]}) == [C2]
    assert _keep({"container": ["aaa111"], "type": ["container"]}) == [C1, EX]


def test_filter_exec_events_match_without_detail() -> None:
    assert _keep({"event": ["exec_start"]}) == [EX]
    assert _keep({"event": ["exec_start: sh -c true"]}) == [EX]


def test_filter_image_matches_container_and_image_events_with_or_without_tag() -> None:
    assert _keep({"image": ["busybox"]}) == [C1, EX, IM]
    assert _keep({"image": ["busybox:mytag"]}) == [IM]
    assert _keep({"image": ["sha256:fff"]}) == [IM]


def test_filter_label_key_or_key_value_all_must_hold() -> None:
    assert _keep({"label": ["tier"]}) == [C1]
    assert _keep({"label": ["tier=web"]}) == [C1]
    assert _keep({"label": ["tier=db"]}) == []
    assert _keep({"label": ["tier", "nope"]}) == []


def test_filter_volume_network_daemon() -> None:
    assert _keep({"volume": ["data"]}) == [VO]
    assert _keep({"network": ["none"]}) == [NE]
    assert _keep({"network": ["n1"]}) == [NE]
    assert _keep({"daemon": ["x"]}) == []


def test_validate_filters() -> None:
    events.validate_filters({"event": ["start"], "label": ["a"]})
    with pytest.raises(Exception, match="Invalid filter 'bogus'"):
        events.validate_filters({"bogus": ["x"]})


# --- time values -------------------------------------------------------------------------------

NOW = 1_800_000_000 * 10**9


@pytest.mark.parametrize("text, expected", [
    ("10m", NOW - 600 * 10**9),
    ("1h30m", NOW - 5400 * 10**9),
    ("1700000000", 1_700_000_000 * 10**9),
    ("1700000000.5", 1_700_000_000 * 10**9 + 500_000_000),
    ("0", 0),
    ("2026-12-04T20:31:02Z", 1_796_416_262 * 10**9),
    ("2026-12-04T20:31:02.123456789Z", 1_796_416_262 * 10**9 + 123_456_789),
    ("2026-12-04T21:31:02+01:00", 1_796_416_262 * 10**9),
    ("2026-12-04T20:31Z", 1_796_416_260 * 10**9),
])
def test_parse_time(text: str, expected: int) -> None:
    assert events.parse_time(text, now_ns=NOW) == expected


def test_parse_time_local_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert events.parse_time("2026-12-04") == 1_796_342_400 * 10**9
        assert events.parse_time("2026-12-04T20:31:02") == 1_796_416_262 * 10**9
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["yesterday", "2026-13-40", "12:00", "1.2.3"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        events.parse_time(text, now_ns=NOW)


def test_pretty_line_as_docker_prints_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        message = dict(C1, timeNano=1_796_416_262_123_456_789)
        assert events.pretty(message) == ("2026-12-04T20:31:02.123456789Z container start aaa111 "
                                          "(image=busybox:latest, name=c1, tier=web)")
        assert events.pretty(_msg("volume", "destroy", "v", )) == "volume destroy v"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_without_history_only_new_events(tmp_path: Path) -> None:
    events.record(str(tmp_path), "container", "create", "old")
    stream = events.read(str(tmp_path), follow=True, interval=0.02, history=False,
                         until=time.time_ns() + int(0.5e9))
    events.record(str(tmp_path), "container", "start", "new")
    assert [m["Actor"]["ID"] for m in stream] == ["new"]


def test_filter_health_status_matches_its_detail() -> None:
    health = _msg("container", "health_status: healthy", "aaa111", name="c1")
    assert _keep({"event": ["health_status"]}, (C1, health)) == [health]
    assert _keep({"event": ["health_status: unhealthy"]}, (C1, health)) == []


# --- the CLI's lines ---------------------------------------------------------------------------

def test_cli_json_is_the_go_struct_in_field_order() -> None:
    from dockyard.cli.events import formatter

    message = {"Type": "volume", "Action": "create", "Actor": {"ID": "v", "Attributes": {"z": "1", "driver": "local"}},
               "scope": "local", "time": 1, "timeNano": 1_000_000_001}
    line = '{"Type":"volume","Action":"create","Actor":{"ID":"v","Attributes":{"driver":"local","z":"1"}},' \
           '"scope":"local","time":1,"timeNano":1000000001}'
    assert formatter("json")(message) == line
    assert formatter("{{json .}}")(message) == line
    assert formatter("{{.Action}} {{.Actor.Attributes.driver}} {{.Actor.Attributes.nosuch}}")(message) == \
        "create local <no value>"
    assert formatter("{{json .Actor.Attributes}}")(message) == '{"driver":"local","z":"1"}'


def test_cli_template_with_an_unknown_field_fails_first() -> None:
    from dockyard.cli.events import formatter
    from dockyard.cli.formatting import TemplateError

    with pytest.raises(TemplateError, match=r"can't evaluate field Nope in type \*events.Message"):
        formatter("x {{.Nope}}")


def test_cli_filter_parsing() -> None:
    from dockyard.cli.events import parse_filters

    assert parse_filters(["event=start", "Event=die", "label=a=b"]) == {"event": ["start", "die"], "label": ["a=b"]}
