"""``ps``, ``system df``, ``stats`` and ``history`` side by side with Docker 20.10: the same
containers in a private dockerd and in dockyard, and what a user reads compared (COMMAND
quoting and truncation, SIZE, JSON keys, filter errors, the df tables)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.testing import dockerd


@pytest.fixture
def both(docker: dockerd.PrivateDockerd, run_cli: Callable[..., subprocess.CompletedProcess[str]],
         busybox_tar: Path) -> Iterator[Callable[..., tuple[subprocess.CompletedProcess[str], ...]]]:
    """``both(*args)``: the command in docker and in dockyard (a fresh root with busybox)."""
    run_cli("import", "--change", 'CMD ["sh"]', busybox_tar, "busybox", check=True)

    def run(*args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        return docker.run(*args), run_cli(*args)

    run.docker, run.dockyard = docker, run_cli  # type: ignore[attr-defined]
    yield run
    ids = docker.run("ps", "-aq").stdout.split()
    if ids:
        docker.run("rm", "-f", "-v", *ids)
    docker.run("volume", "prune", "-f")


def _ok(*results: subprocess.CompletedProcess[str]) -> list[str]:
    for r in results:
        assert r.returncode == 0, r.stderr
    return [r.stdout for r in results]


COMMANDS = [
    ["create", "busybox", "sleep", "300"],
    ["create", "busybox", "sh", "-c", "echo hi"],
    ["create", "busybox", "sh", "-c", 'echo "a b" && sleep 1000000'],
    ["create", "busybox", "echo", "tab\there", "back\\slash"],
    ["create", "busybox", "sh"],
    ["create", "--entrypoint", "/bin/echo", "busybox", "x" * 30],
]


def test_ps_command_column(both: Callable[..., Any]) -> None:
    for args in COMMANDS:
        _ok(*both(*args))
    for fmt in (["--format", "{{.Command}}"], ["--no-trunc", "--format", "{{.Command}}"]):
        theirs, ours = _ok(*both("ps", "-a", *fmt))
        assert ours == theirs
    theirs, ours = _ok(*both("ps", "-a"))
    assert re.split(r"\s{2,}", ours.splitlines()[0]) == re.split(r"\s{2,}", theirs.splitlines()[0])
    assert [re.split(r"\s{2,}", line)[2] for line in ours.splitlines()[1:]] == \
        [re.split(r"\s{2,}", line)[2] for line in theirs.splitlines()[1:]]


SIZE_CELL = re.compile(r"^\d+(\.\d+)?[kMG]?B \(virtual \d+(\.\d+)?[kMG]?B\)$")


def test_ps_size(both: Callable[..., Any]) -> None:
    _ok(*both("run", "--name", "writer", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f"))
    _ok(*both("create", "busybox", "true"))
    theirs, ours = _ok(*both("ps", "-as"))
    assert ours.splitlines()[0].split() == theirs.splitlines()[0].split()  # ... NAMES SIZE
    cells = [re.split(r"\s{2,}", line)[-1] for line in ours.splitlines()[1:]]
    # the writable layers agree; the image's size differs by how each engine counts a layer
    assert [c.split(" (")[0] for c in cells] == \
        [re.split(r"\s{2,}", line)[-1].split(" (")[0] for line in theirs.splitlines()[1:]]
    assert cells[1].startswith("100kB (virtual ") and SIZE_CELL.match(cells[0]) and cells[0].startswith("0B ")
    # a template reading .Size, or all of the row, gets the sizes without -s (Docker's CLI asks for them)
    theirs, ours = _ok(*both("ps", "-a", "--format", "{{.Size}}"))
    assert [line.split(" (")[0] for line in ours.splitlines()] == [line.split(" (")[0] for line in theirs.splitlines()]
    assert all(SIZE_CELL.match(line) for line in ours.splitlines())
    theirs, ours = _ok(*both("ps", "-a", "--format", "{{json .}}"))
    our_rows, their_rows = [json.loads(x) for x in ours.splitlines()], [json.loads(x) for x in theirs.splitlines()]
    assert [list(r) for r in our_rows] == [list(r) for r in their_rows]  # the same keys, sorted as Docker's
    assert [r["Size"].split(" (")[0] for r in our_rows] == [r["Size"].split(" (")[0] for r in their_rows]
    assert all(SIZE_CELL.match(r["Size"]) for r in our_rows)
    assert [r["Command"] for r in our_rows] == [r["Command"] for r in their_rows]


@pytest.mark.parametrize("filter_", ["status=bogus", "bogus=1", "status=running"])
def test_ps_filter_validation(both: Callable[..., Any], filter_: str) -> None:
    theirs, ours = both("ps", "--filter", filter_)
    assert ours.returncode == theirs.returncode
    assert ours.stderr.removeprefix("Error: ") == theirs.stderr.removeprefix("Error response from daemon: ")


def test_system_df(both: Callable[..., Any], tmp_path: Path) -> None:
    _ok(*both("volume", "create", "vol1"))
    _ok(*both("volume", "create", "unused"))
    _ok(*both("run", "-d", "-v", "vol1:/v", "busybox", "sh", "-c", "head -c 3000 /dev/zero > /v/f; sleep 300"))
    _ok(*both("run", "--name", "stopped", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f"))
    _ok(*both("create", "busybox", "sh", "-c", "echo hi"))
    for theirs, ours in [_ok(*both("system", "df"))]:
        our_rows = [line.split("  ")[0] for line in ours.splitlines()]
        assert our_rows == [line.split("  ")[0] for line in theirs.splitlines()]
        # Images: sizes differ by the layer's tar padding; the counts match
        for line_ours, line_theirs in zip(ours.splitlines()[2:], theirs.splitlines()[2:]):
            assert re.split(r"\s{2,}", line_ours) == re.split(r"\s{2,}", line_theirs)
    theirs, ours = _ok(*both("system", "df", "--format", "{{json .}}"))
    our_rows, their_rows = [json.loads(x) for x in ours.splitlines()], [json.loads(x) for x in theirs.splitlines()]
    assert [list(r) for r in our_rows] == [list(r) for r in their_rows]
    assert our_rows[1:] == their_rows[1:]
    assert our_rows[1]["Reclaimable"] == "100kB (100%)" and our_rows[2]["TotalCount"] == "2"
    theirs, ours = _ok(*both("system", "df", "-v"))
    sections = re.compile(r"^(\w[\w ]+ usage:.*|[A-Z][A-Z ]+(?:\s{2,}[A-Z][A-Z ]+)+)$", re.M)
    assert [re.sub(r"\s{2,}", " | ", s) for s in sections.findall(ours)] == \
        [re.sub(r"\s{2,}", " | ", s) for s in sections.findall(theirs)]

    def table(text: str, title: str) -> list[list[str]]:
        block = text.split(title, 1)[1].strip("\n").split("\n\n")[0]
        return [re.split(r"\s{2,}", line) for line in block.splitlines()[1:]]

    keep = [1, 2, 3, 4, 6]   # the containers' IMAGE, COMMAND, LOCAL VOLUMES, SIZE, STATUS

    def cells(row: list[str]) -> list[str]:
        # the status's age is the clock's, not the engine's ("Up Less than a second" / "Up 1 second")
        return [re.sub(r" (Less than a second|About a minute|an? \w+|\d+ \w+)( ago)?$", "", row[i]) if i == 6
                else row[i] for i in keep]

    assert [cells(row) for row in table(ours, "Containers space usage:")] == \
        [cells(row) for row in table(theirs, "Containers space usage:")]
    assert sorted(table(ours, "Local Volumes space usage:")) == sorted(table(theirs, "Local Volumes space usage:"))
    our_images, their_images = table(ours, "Images space usage:"), table(theirs, "Images space usage:")
    assert [row[:2] + row[-1:] for row in our_images] == [row[:2] + row[-1:] for row in their_images]


def test_stats_container_is_as_typed(both: Callable[..., Any]) -> None:
    docker_id, our_id = (r.stdout.strip() for r in both("run", "-d", "--name", "c1", "busybox", "sleep", "300"))
    theirs, ours = _ok(*both("stats", "--no-stream", "--format", "{{json .}}", "c1"))
    t, o = json.loads(theirs), json.loads(ours)
    assert list(o) == list(t)
    assert (o["Container"], o["Name"], o["ID"]) == ("c1", "c1", our_id[:12])
    assert (t["Container"], t["Name"], t["ID"]) == ("c1", "c1", docker_id[:12])
    docker, dy = both.docker, both.dockyard   # an ID prefix is each engine's own
    assert docker.cli("stats", "--no-stream", "--format", "{{.Container}} {{.ID}}", docker_id[:7]) == \
        f"{docker_id[:7]} {docker_id[:12]}\n"
    assert dy("stats", "--no-stream", "--format", "{{.Container}} {{.ID}}", our_id[:7], check=True).stdout == \
        f"{our_id[:7]} {our_id[:12]}\n"
    theirs, ours = _ok(*both("stats", "--no-stream", "--format", "{{.Container}}"))  # all: the short IDs
    assert (theirs, ours) == (docker_id[:12] + "\n", our_id[:12] + "\n")


def test_history_of_an_import(both: Callable[..., Any]) -> None:
    theirs, ours = _ok(*both("history", "busybox"))
    assert re.split(r"\s{2,}", ours.splitlines()[0]) == re.split(r"\s{2,}", theirs.splitlines()[0])
    # CREATED BY is empty (its spaces run into the next column's): IMAGE, CREATED, SIZE, COMMENT
    our_cells, their_cells = re.split(r"\s{2,}", ours.splitlines()[1]), re.split(r"\s{2,}", theirs.splitlines()[1])
    assert len(our_cells) == len(their_cells) == 4 and our_cells[-1] == their_cells[-1] == "Imported from -"
    theirs, ours = _ok(*both("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "busybox"))
    assert ours == theirs == "|Imported from -\n"


FILTERS = ["exited=abc", "health=bogus", "health=none", "is-task=maybe", "is-task=false", "is-task=true",
           "isolation=default", "network=none", "network=bridge", "volume=vol1", "volume=/h", "volume={hostdir}",
           "publish=80", "expose=80", "status=exited", "status=created", "name=aa", "label=k=v", "exited=0", "before=nosuch", "since=nosuch", "since=aa"]


def test_ps_filters_side_by_side(both: Callable[..., Any], tmp_path: Path) -> None:
    _ok(*both("run", "-d", "--name", "aa", "-l", "k=v", "-v", "vol1:/v", "--network", "none", "busybox", "sleep", "100"))
    _ok(*both("create", "--name", "bb", "-v", f"{tmp_path}:/h", "busybox"))
    _ok(*both("run", "--name", "cc", "busybox", "true"))
    for filter_ in FILTERS:
        theirs, ours = both("ps", "-a", "--format", "{{.Names}}", "--filter", filter_.format(hostdir=tmp_path))
        assert (ours.returncode, sorted(ours.stdout.split())) == (theirs.returncode, sorted(theirs.stdout.split())), \
            filter_
        assert ours.stderr.removeprefix("Error: ") == theirs.stderr.removeprefix("Error response from daemon: "), \
            filter_
