"""``ps`` reads each container's summary column (containers/summary.py), not its whole config:
the listing stays the same in every format, a state DB of the older shape (no summary column)
is migrated with the same summaries, and a ``ps -a`` that decoded configs would fail here."""

from __future__ import annotations

import json
import sqlite3

import pytest

from dockyard.containers.summary import summarize
from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures

FORMATS = [
    (), ("--no-trunc",), ("-q",), ("--format", "json"), ("--format", "{{json .}}"),
    ("--format", "{{.Names}}|{{.Command}}|{{.Labels}}|{{.Label \"tier\"}}|{{.Mounts}}|{{.LocalVolumes}}"
                 "|{{.Networks}}|{{.Ports}}|{{.State}}"),
    ("--format", "table {{.Names}}\t{{.Label \"com.example.my-key\"}}\t{{.Networks}}"),
    ("-f", "label=tier=web"), ("-f", "volume=psv"), ("-f", "network=pssum"), ("-f", "expose=80"),
    ("-f", "status=exited"), ("-n", "2"),
]
# Fields whose text moves with the clock (CREATED, STATUS, and their JSON keys) are left out of
# the comparisons: the two listings are taken seconds apart.
STEADY = "{{.ID}}|{{.Names}}|{{.Command}}|{{.Labels}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}|{{.Ports}}|{{.State}}"


def _containers(dy: Dockyard) -> None:
    dy.cli("volume", "create", "psv", check=True)
    dy.cli("network", "create", "pssum", check=True)
    dy.cli("create", "--name", "s1", "--network", "none", "-l", "tier=web", "-l", "com.example.my-key=v1",
           "-v", "psv:/data", "-v", "/tmp:/hosttmp", "--tmpfs", "/run", "--expose", "80", "--expose", "53/udp",
           "busybox", "sh", "-c", 'echo "hi there" \\ ünï', check=True)
    dy.cli("create", "--name", "s2", "--network", "host", "busybox", "echo", "tab\there", check=True)
    dy.cli("create", "--name", "s3", "--network", "pssum", "busybox", "true", check=True)
    dy.cli("network", "connect", "bridge", "s3", check=True)   # rewrites the config: the summary follows
    dy.cli("run", "--name", "s4", "--network", "none", "busybox", "sh", "-c", "exit 3")


def _listings(dy: Dockyard) -> dict[str, str]:
    out = {}
    for args in FORMATS:
        if args and args[0] in ("--format", "-q"):
            fmt = args
        else:
            fmt = (*args, "--format", STEADY)
        result = dy.cli("ps", "-a", *fmt)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        if fmt[-1] in ("json", "{{json .}}"):
            rows = [json.loads(line) for line in text.splitlines()]
            text = json.dumps([{k: v for k, v in r.items() if k not in ("CreatedAt", "RunningFor", "Status")}
                               for r in rows])
        out[" ".join(args)] = text
    return out


def _db(dy: Dockyard) -> sqlite3.Connection:
    return sqlite3.connect(dy.root / "dockyard.db", isolation_level=None)


def test_summaries_are_the_configs_and_ps_reads_only_them(dy: Dockyard) -> None:
    _containers(dy)
    before = _listings(dy)
    assert "s1|\"sh -c 'echo \\\"hi the…\"|com.example.my-key=v1,tier=web|web|psv,/tmp,|1|none|53/udp, 80/tcp" \
        in before["--format " + FORMATS[5][1]]
    assert "s3|\"true\"||||0|pssum,bridge||created" in before["--format " + FORMATS[5][1]]
    conn = _db(dy)
    try:
        rows = conn.execute("SELECT id, config, summary FROM containers").fetchall()
        assert len(rows) == 4
        for _, config, summary in rows:
            assert json.loads(summary) == summarize(json.loads(config))
        # A listing that decoded the configs would now fail; ps -a (no filter that needs more
        # than the summary) does not look at them.
        conn.execute("UPDATE containers SET config = '{'")
        try:
            for args in [(), ("--no-trunc",), ("--format", "json"), ("--format", FORMATS[5][1])]:
                result = dy.cli("ps", "-a", *args)
                assert result.returncode == 0, result.stderr
                assert result.stdout.count("\n") == (5 if not args or args[0] != "--format" else 4)
            steady = dy.cli("ps", "-a", "--format", STEADY, check=True).stdout
        finally:
            conn.executemany("UPDATE containers SET config = ? WHERE id = ?", [(c, i) for i, c, _ in rows])
    finally:
        conn.close()
    assert steady == before[""]
    assert _listings(dy) == before


def test_an_older_db_is_migrated_and_lists_the_same(dy: Dockyard) -> None:
    _containers(dy)
    before = _listings(dy)
    conn = _db(dy)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        # the shape before the summary column: the column gone, the version one back
        conn.execute("ALTER TABLE containers DROP COLUMN summary")
        conn.execute(f"PRAGMA user_version = {version - 1}")
    finally:
        conn.close()
    assert _listings(dy) == before     # the first command migrates
    conn = _db(dy)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version
        rows = conn.execute("SELECT config, summary FROM containers").fetchall()
    finally:
        conn.close()
    assert len(rows) == 4
    for config, summary in rows:
        assert summary is not None and json.loads(summary) == summarize(json.loads(config))


def test_a_row_without_summary_still_lists(dy: Dockyard) -> None:
    """A record written by an older process still running (no summary) is summarized from its config."""
    _containers(dy)
    before = _listings(dy)
    conn = _db(dy)
    try:
        conn.execute("UPDATE containers SET summary = NULL WHERE name IN ('s1', 's3')")
    finally:
        conn.close()
    assert _listings(dy) == before


@pytest.mark.parametrize("bad", ["status=bogus", "nosuch=1"])
def test_filters_still_checked(dy: Dockyard, bad: str) -> None:
    result = dy.cli("ps", "-a", "-f", bad)
    assert result.returncode == 1 and result.stderr.startswith("Error")
