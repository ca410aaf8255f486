"""Health check settings as Docker parses, merges and prints them (containers/health.py), and
the json-file records and rotation options as Docker's driver writes and reads them."""

from __future__ import annotations

import pytest

from dockyard.containers import health, logs


@pytest.mark.parametrize("text,ns", [("0", 0), ("1s", 10**9), ("1.5s", 1_500_000_000), ("500ms", 500_000_000),
                                     ("1m30s", 90 * 10**9), ("2h", 7200 * 10**9), ("-1s", -(10**9)),
                                     ("10us", 10_000), ("1µs", 1_000), ("3ns", 3)])
def test_go_durations(text: str, ns: int) -> None:
    assert health.parse_duration(text) == ns


@pytest.mark.parametrize("text,message", [("abc", 'time: invalid duration "abc"'),
                                          ("10", 'time: missing unit in duration "10"'),
                                          ("5x", 'time: unknown unit "x" in duration "5x"'),
                                          ("", 'time: invalid duration ""')])
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        health.parse_duration(text)


@pytest.mark.parametrize("ns,text", [(10**9, "1s"), (1_500_000_000, "1.5s"), (500_000_000, "500ms"),
                                     (90 * 10**9, "1m30s"), (7200 * 10**9, "2h0m0s"), (1_000, "1µs"), (0, "0s")])
def test_go_duration_strings(ns: int, text: str) -> None:
    assert health.format_duration(ns) == text


def test_flags_into_config() -> None:
    assert health.from_flags({}) is None
    assert health.from_flags({"health_interval": "0"}) is None     # Docker: zero is no setting
    assert health.from_flags({"health_cmd": "true", "health_interval": "1s", "health_retries": 2}) == {
        "Test": ["CMD-SHELL", "true"], "Interval": 10**9, "Retries": 2}
    assert health.from_flags({"no_healthcheck": True}) == {"Test": ["NONE"]}
    with pytest.raises(health.HealthError, match="--no-healthcheck conflicts with --health-\\* options"):
        health.from_flags({"no_healthcheck": True, "health_timeout": "1s"})
    with pytest.raises(health.HealthError, match='invalid argument "x" for "--health-start-period" flag'):
        health.from_flags({"health_start_period": "x"})


def test_merge_and_limits() -> None:
    image = {"Test": ["CMD", "probe"], "Interval": 5 * 10**9, "Retries": 4}
    assert health.merge(None, image) == image
    assert health.merge({"Test": ["NONE"]}, image) == {"Test": ["NONE"], "Interval": 5 * 10**9, "Retries": 4}
    assert health.merge({"Interval": 10**9}, image) == {"Test": ["CMD", "probe"], "Interval": 10**9, "Retries": 4}
    health.check({"Interval": 10**6})
    with pytest.raises(health.HealthError, match="Interval in Healthcheck cannot be less than 1ms"):
        health.check({"Interval": 999_999})
    assert health.probe_command({"Test": ["CMD-SHELL", "a b"]}) == ["/bin/sh", "-c", "a b"]
    assert health.probe_command({"Test": ["CMD-SHELL", "a"]}, ["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "a"]
    assert health.probe_command({"Test": ["CMD", "x", "y"]}) == ["x", "y"]
    assert health.probe_command({"Test": ["NONE"]}) is None
    probe = health.shim_config({"Healthcheck": {"Test": ["CMD", "x"]}})
    assert probe == {"argv": ["x"], "interval": 30 * 10**9, "timeout": 30 * 10**9, "start_period": 0, "retries": 3}


def test_state_file_is_replaced_whole(tmp_path) -> None:
    assert health.read_state(str(tmp_path)) is None
    health.write_state(str(tmp_path), {"Status": "healthy", "FailingStreak": 0, "Log": []})
    assert health.read_state(str(tmp_path)) == {"Status": "healthy", "FailingStreak": 0, "Log": []}
    assert [p.name for p in tmp_path.iterdir()] == ["health.json"]
    health.mark_stopped(str(tmp_path))
    assert health.read_state(str(tmp_path))["Status"] == "unhealthy"


def test_json_file_records_and_options() -> None:
    assert logs.encode_record(b'<a&b>\t"q" \\\n', "stdout", "T") == \
        b'{"log":"\\u003ca\\u0026b\\u003e\\u0009\\"q\\" \\\\\\n","stream":"stdout","time":"T"}\n'
    assert logs.timestamp(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert logs.timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert logs.rotation({}) == (0, 1)
    assert logs.rotation({"max-size": "1k", "max-file": "3"}) == (1000, 3)
    assert logs.rotation({"max-size": "1KiB"}) == (1024, 1)
    for config, message in (({"max-size": "0"}, "max-size must be a positive number"),
                            ({"max-file": "0"}, "max-file cannot be less than 1"),
                            ({"max-size": "abc"}, "invalid size: 'abc'")):
        with pytest.raises(ValueError, match=message):
            logs.rotation(config)


def test_rotation_keeps_max_file_files(tmp_path) -> None:
    path = str(tmp_path / "c-json.log")
    for max_files in (1, 2):
        writer = logs.LogWriter(path, max_size=200, max_files=max_files)
        writer.write("stdout", b"".join(b"line %d\n" % i for i in range(100)))   # one read, many records
        writer.close()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["c-json.log", "c-json.log.1"][:max_files]
        assert all(p.stat().st_size < 200 + 80 for p in tmp_path.iterdir())
        assert [r["log"] for r in logs.read(path)][-1] == "line 99\n"
        for p in tmp_path.iterdir():
            p.unlink()
