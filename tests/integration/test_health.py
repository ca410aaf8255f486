"""Health checks run by the shim (``--health-*``, ``--no-healthcheck``, an image's HEALTHCHECK):
the check's effect on ``inspect`` (State.Health), ``ps`` (STATUS and ``--filter health=``),
the ``health_status`` events, stop and restart; Docker's messages for bad flags and its
Health shape, side by side with a private dockerd where one is available."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard.testing import dockerd

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy, wait_for  # noqa: F401 - fixtures

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


def inspect(dy: Dockyard, name: str) -> dict[str, Any]:
    return json.loads(dy.cli("inspect", name, check=True).stdout)[0]


def health(dy: Dockyard, name: str) -> dict[str, Any] | None:
    return inspect(dy, name)["State"].get("Health")


def status_column(dy: Dockyard, name: str) -> str:
    return dy.cli("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}", check=True).stdout.strip()


def until_status(dy: Dockyard, name: str, status: str, timeout: float = 20) -> dict[str, Any]:
    state = wait_for(lambda: (h := health(dy, name)) and h["Status"] == status and h, timeout=timeout, interval=0.2)
    assert state, f"{name}: health never {status}: {health(dy, name)}"
    return state


def probe_processes(dy: Dockyard, name: str, command: str) -> int:
    top = dy.cli("top", name, check=True).stdout.splitlines()[1:]
    return sum(1 for line in top if line.rstrip().endswith(command))


def test_a_passing_check_makes_the_container_healthy(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "ok", "--health-cmd", "echo fine", "--health-interval", "1s", "busybox",
           "sleep", "300", check=True)
    state = until_status(dy, "ok", "healthy")
    assert state["FailingStreak"] == 0
    entry = state["Log"][-1]
    assert list(entry) == ["Start", "End", "ExitCode", "Output"]
    assert entry["ExitCode"] == 0 and entry["Output"] == "fine\n"
    assert TIME.match(entry["Start"]) and TIME.match(entry["End"]) and entry["Start"] <= entry["End"]
    assert re.fullmatch(r"Up .+ \(healthy\)", status_column(dy, "ok"))
    config = inspect(dy, "ok")["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "echo fine"], "Interval": 1_000_000_000}
    # the log keeps the last five results
    wait_for(lambda: len(health(dy, "ok")["Log"]) == 5, timeout=15, interval=0.3)
    time.sleep(1.5)
    assert len(health(dy, "ok")["Log"]) == 5


def test_a_new_container_is_starting_until_its_first_check(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "slow", "--health-cmd", "true", "--health-interval", "30s", "busybox",
           "sleep", "300", check=True)
    assert health(dy, "slow") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert re.fullmatch(r"Up .+ \(health: starting\)", status_column(dy, "slow"))


def test_failures_past_the_retries_make_it_unhealthy(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "bad", "--health-cmd", "echo broken >&2; exit 3", "--health-interval", "1s",
           "--health-retries", "2", "busybox", "sleep", "300", check=True)
    state = until_status(dy, "bad", "unhealthy")
    assert state["FailingStreak"] >= 2
    assert all(e["ExitCode"] == 3 and e["Output"] == "broken\n" for e in state["Log"])
    assert re.fullmatch(r"Up .+ \(unhealthy\)", status_column(dy, "bad"))


def test_a_check_past_its_timeout_is_killed_and_fails(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "hang", "--health-cmd", "sleep 60", "--health-interval", "1s",
           "--health-timeout", "1s", "--health-retries", "1", "busybox", "sleep", "300", check=True)
    state = until_status(dy, "hang", "unhealthy")
    entry = state["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (1s)"
    # Ended at the timeout, not when the command would have
    from dockyard.timefmt import parse_timestamp

    took = parse_timestamp(entry["End"]) - parse_timestamp(entry["Start"])
    assert 0.9 <= took < 5, took
    # a timed-out check is killed: never more than the one running now
    for _ in range(4):
        assert probe_processes(dy, "hang", "sleep 60") <= 1
        time.sleep(0.6)


def test_failures_in_the_start_period_do_not_count(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "warm", "--health-cmd", "false", "--health-interval", "1s",
           "--health-start-period", "60s", "--health-retries", "1", "busybox", "sleep", "300", check=True)
    assert wait_for(lambda: len((health(dy, "warm") or {}).get("Log") or []) >= 2, timeout=15, interval=0.3)
    state = health(dy, "warm")
    assert state["Status"] == "starting" and state["FailingStreak"] == 0
    assert all(e["ExitCode"] == 1 for e in state["Log"])
    # the same check without a start period fails at once
    dy.cli("run", "-d", "--name", "cold", "--health-cmd", "false", "--health-interval", "1s",
           "--health-retries", "1", "busybox", "sleep", "300", check=True)
    assert until_status(dy, "cold", "unhealthy")["FailingStreak"] >= 1


def test_ps_filters_by_health(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "f-good", "--health-cmd", "true", "--health-interval", "1s", "busybox",
           "sleep", "300", check=True)
    dy.cli("run", "-d", "--name", "f-bad", "--health-cmd", "false", "--health-interval", "1s",
           "--health-retries", "1", "busybox", "sleep", "300", check=True)
    dy.cli("run", "-d", "--name", "f-wait", "--health-cmd", "true", "--health-interval", "60s", "busybox",
           "sleep", "300", check=True)
    dy.cli("run", "-d", "--name", "f-none", "busybox", "sleep", "300", check=True)
    until_status(dy, "f-good", "healthy")
    until_status(dy, "f-bad", "unhealthy")

    def names(value: str) -> set[str]:
        return set(dy.cli("ps", "--filter", f"health={value}", "--format", "{{.Names}}", check=True).stdout.split())

    assert names("healthy") == {"f-good"}
    assert names("unhealthy") == {"f-bad"}
    assert names("starting") == {"f-wait"}
    assert names("none") == {"f-none"}
    both = dy.cli("ps", "--filter", "health=healthy", "--filter", "health=unhealthy", "--format", "{{.Names}}")
    assert set(both.stdout.split()) == {"f-good", "f-bad"}
    assert status_column(dy, "f-none").startswith("Up ") and "(" not in status_column(dy, "f-none")
    bogus = dy.cli("ps", "--filter", "health=bogus")
    assert bogus.returncode == 1 and "Unrecognised filter value for health: bogus" in bogus.stderr


def test_status_changes_are_health_status_events(dy: Dockyard) -> None:
    since = str(int(time.time()) - 1)
    dy.cli("run", "-d", "--name", "ev", "--label", "team=a", "--health-cmd", "test -e /tmp/down && exit 1; true",
           "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "300", check=True)
    until_status(dy, "ev", "healthy")
    dy.cli("exec", "ev", "touch", "/tmp/down", check=True)
    until_status(dy, "ev", "unhealthy")
    out = dy.cli("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "container=ev",
                 "--filter", "event=health_status", "--format", "{{json .}}", check=True).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["Action"] for e in events] == ["health_status: healthy", "health_status: unhealthy"]
    assert events[0]["Type"] == "container" and events[0]["Actor"]["Attributes"]["name"] == "ev"
    assert events[0]["Actor"]["Attributes"]["image"] == "busybox"


def test_stop_leaves_it_unhealthy_and_a_new_start_checks_again(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "again", "--health-cmd", "true", "--health-interval", "1s", "busybox",
           "sleep", "300", check=True)
    until_status(dy, "again", "healthy")
    dy.cli("stop", "-t", "0", "again", check=True)
    state = health(dy, "again")
    assert state["Status"] == "unhealthy" and state["FailingStreak"] == 0   # as Docker 20.10 shows it
    kept = len(state["Log"])
    listed = dy.cli("ps", "-a", "--filter", "health=unhealthy", "--format", "{{.Names}}", check=True).stdout.split()
    assert listed == ["again"]
    dy.cli("start", "again", check=True)
    assert health(dy, "again")["Status"] == "starting"
    state = until_status(dy, "again", "healthy")
    assert len(state["Log"]) > kept or len(state["Log"]) == 5


def test_a_container_without_a_check_costs_nothing(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "plain", "busybox", "sleep", "300", check=True)
    record = inspect(dy, "plain")
    assert "Health" not in record["State"] and "Healthcheck" not in record["Config"]
    assert not (Path(record["LogPath"]).parent / "health.json").exists()
    # the shim has the container's init as its only child: no monitor process
    engine = dy.engine()
    try:
        shim = engine.containers.get("plain").shim_pid
    finally:
        engine.close()
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                data = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(data[data.rindex(b")") + 2:].split()[1]) == shim:
                children.append(int(entry))
    assert children == [record["State"]["Pid"]]


@pytest.fixture
def hc_image(dy: Dockyard, tmp_path: Path) -> Iterator[str]:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=1s --retries=2 CMD echo from-image\n")
    dy.cli("build", "--progress", "plain", "-t", "hc:1", str(ctx), check=True, timeout=120)
    yield "hc:1"
    dy.remove_all()
    dy.cli("rmi", "-f", "hc:1")


def test_an_image_healthcheck_runs_and_the_flags_override_it(dy: Dockyard, hc_image: str) -> None:
    dy.cli("run", "-d", "--name", "img", hc_image, "sleep", "300", check=True)
    assert until_status(dy, "img", "healthy")["Log"][-1]["Output"] == "from-image\n"
    # --no-healthcheck: nothing runs, no Health, ps shows none
    dy.cli("run", "-d", "--name", "off", "--no-healthcheck", hc_image, "sleep", "300", check=True)
    record = inspect(dy, "off")
    assert record["Config"]["Healthcheck"]["Test"] == ["NONE"]
    time.sleep(2.5)
    assert "Health" not in inspect(dy, "off")["State"]
    assert "(" not in status_column(dy, "off")
    assert dy.cli("ps", "--filter", "health=none", "--format", "{{.Names}}", check=True).stdout.split() == ["off"]
    # a flag replaces its own field only: the image's interval and retries stay
    dy.cli("run", "-d", "--name", "mixed", "--health-cmd", "echo from-flag", hc_image, "sleep", "300", check=True)
    assert inspect(dy, "mixed")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo from-flag"], "Interval": 1_000_000_000, "Retries": 2}
    assert until_status(dy, "mixed", "healthy")["Log"][-1]["Output"] == "from-flag\n"


# ---- side by side with Docker ---------------------------------------------------------

BAD_FLAGS = [
    ("--health-interval=-1s",),
    ("--health-timeout=-1s",),
    ("--health-retries=-1",),
    ("--health-start-period=-1s",),
    ("--health-interval=abc",),
    ("--health-timeout=10",),
    ("--health-interval=500us",),
    ("--health-timeout=100us",),
    ("--health-start-period=1us",),
    ("--no-healthcheck", "--health-cmd=true"),
]


def _message(stderr: str) -> str:
    """The message itself: no 'docker: ' / 'Error: ' / daemon prefix, no trailing '.', no usage hint."""
    line = stderr.strip().splitlines()[0]
    line = re.sub(r"^(docker: |dockyard: )?(Error response from daemon: |Error: )*", "", line)
    return line.rstrip(".")


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=lambda f: " ".join(f))
def test_bad_flags_are_refused_with_dockers_words(docker: dockerd.PrivateDockerd, dy: Dockyard,
                                                  flags: tuple[str, ...]) -> None:
    theirs = docker.run("run", "-d", *flags, "busybox", "true")
    ours = dy.cli("run", "-d", *flags, "busybox", "true")
    assert theirs.returncode != 0
    assert (ours.returncode, _message(ours.stderr)) == (theirs.returncode, _message(theirs.stderr))
    assert dy.cli("ps", "-aq").stdout == ""


def _shape(value: Any) -> Any:
    """The key tree with value types, for comparing JSON from two engines."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


@pytest.mark.parametrize("flags,status", [
    (("--health-cmd", "echo hi", "--health-interval", "1s"), "healthy"),
    (("--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1"), "unhealthy"),
    (("--health-cmd", "sleep 30", "--health-interval", "1s", "--health-timeout", "500ms", "--health-retries", "1",
      "--health-start-period", "1ms"), "unhealthy"),
], ids=["healthy", "unhealthy", "timeout"])
def test_inspect_health_as_docker_shows_it(docker: dockerd.PrivateDockerd, dy: Dockyard, flags: tuple[str, ...],
                                           status: str) -> None:
    cid = docker.cli("run", "-d", *flags, "busybox", "sleep", "300").strip()
    try:
        dy.cli("run", "-d", "--name", "same", *flags, "busybox", "sleep", "300", check=True)
        ours = until_status(dy, "same", status)

        def theirs_now() -> dict[str, Any] | None:
            state = json.loads(docker.cli("inspect", cid))[0]["State"].get("Health")
            return state if state and state["Status"] == status else None

        theirs = wait_for(theirs_now, timeout=20, interval=0.2)
        assert theirs, "docker never got there"
        assert _shape(ours) == _shape(theirs)
        assert ours["Log"][0]["ExitCode"] == theirs["Log"][0]["ExitCode"]
        assert ours["Log"][0]["Output"] == theirs["Log"][0]["Output"]
        their_config = json.loads(docker.cli("inspect", cid))[0]["Config"]["Healthcheck"]
        assert inspect(dy, "same")["Config"]["Healthcheck"] == their_config
        assert status_column(dy, "same").split("(")[-1] == docker.cli(
            "ps", "--filter", f"id={cid}", "--format", "{{.Status}}").strip().split("(")[-1]
    finally:
        docker.run("rm", "-f", cid)
