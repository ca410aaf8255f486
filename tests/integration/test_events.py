"""``dockyard events``: real commands write the log, ``events`` reads it back (windows, filters,
formats, follow), and the sequences match a private dockerd's for the same commands."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.testing import dockerd
from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures

SHORT = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"


def _now() -> str:
    return "%.9f" % time.time()


def _events(dy: Dockyard, since: str, *args: str, fmt: str = SHORT) -> list[str]:
    result = dy.cli("events", "--since", since, "--until", _now(), "--format", fmt, *args, check=True, timeout=30)
    return result.stdout.splitlines()


def test_run_rm_sequence(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("run", "--rm", "--name", "r1", "--network", "none", "busybox", "true", check=True)
    # Docker's none network too: joined before the start, left after the end
    assert _events(dy, t0) == ["container create r1", "container attach r1", "network connect none",
                               "container start r1", "container die r1", "network disconnect none",
                               "container destroy r1"]
    die = json.loads(_events(dy, t0, "-f", "event=die", fmt="{{json .}}")[0])
    assert die["Actor"]["Attributes"] == {"exitCode": "0", "image": "busybox", "name": "r1"}


def test_create_start_exec_stop_rm_sequence(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("create", "--name", "c1", "--network", "none", "-l", "tier=web", "busybox", "sleep", "100", check=True)
    dy.cli("start", "c1", check=True)
    dy.cli("exec", "c1", "sh", "-c", "exit 3")
    dy.cli("stop", "-t", "1", "c1", check=True)
    dy.cli("rm", "c1", check=True)
    assert _events(dy, t0, "-f", "type=container",
                   fmt="{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.tier}}") == [
        "container create c1 web", "container start c1 web",
        "container exec_create: sh -c exit 3 c1 web", "container exec_start: sh -c exit 3 c1 web",
        "container exec_die c1 web",
        "container kill c1 web", "container kill c1 web",   # sleep as PID 1 ignores SIGTERM
        "container die c1 web", "container stop c1 web", "container destroy c1 web"]
    details = _events(dy, t0, "-f", "event=kill", "-f", "event=die", "-f", "event=exec_die",
                      fmt="{{.Action}} {{.Actor.Attributes.signal}} {{.Actor.Attributes.exitCode}}")
    assert details == ["exec_die <no value> 3", "kill 15 <no value>", "kill 9 <no value>", "die <no value> 137"]
    exec_ids = {json.loads(line)["Actor"]["Attributes"]["execID"]
                for line in _events(dy, t0, "-f", "event=exec_create", "-f", "event=exec_start",
                                    "-f", "event=exec_die", fmt="json")}
    assert len(exec_ids) == 1 and len(exec_ids.pop()) == 64


def test_pause_unpause_rename_restart_kill(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "p1", "--network", "none", "busybox", "sleep", "100", check=True)
    t0 = _now()
    dy.cli("pause", "p1", check=True)
    dy.cli("unpause", "p1", check=True)
    dy.cli("rename", "p1", "p2", check=True)
    dy.cli("restart", "-t", "0", "p2", check=True)
    dy.cli("kill", "-s", "USR1", "p2", check=True)
    lines = _events(dy, t0, "-f", "type=container",
                    fmt="{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.oldName}} {{.Actor.Attributes.signal}}")
    assert lines == ["pause p1 <no value> <no value>", "unpause p1 <no value> <no value>",
                     "rename p2 /p1 <no value>", "kill p2 <no value> 15", "kill p2 <no value> 9",
                     "die p2 <no value> <no value>", "stop p2 <no value> <no value>",
                     "start p2 <no value> <no value>", "restart p2 <no value> <no value>",
                     "kill p2 <no value> 10"]


def test_image_and_volume_events(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("tag", "busybox", "busybox:ev", check=True)
    dy.cli("rmi", "busybox:ev", check=True)
    dy.cli("volume", "create", "ev1", check=True)
    dy.cli("run", "--rm", "--network", "none", "-v", "ev1:/data", "busybox", "true", check=True)
    dy.cli("volume", "rm", "ev1", check=True)
    image_id = dy.cli("image", "inspect", "-f", "{{.Id}}", "busybox", check=True).stdout.strip()
    assert _events(dy, t0, "-f", "type=image", fmt="{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}") == [
        f"tag {image_id} busybox:ev", f"untag {image_id} {image_id}"]
    assert _events(dy, t0, "-f", "type=volume", fmt="{{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}") == [
        'create ev1 {"driver":"local"}',
        'create ev1 {"driver":"local"}',   # Docker says it again when run names the volume
        'mount ev1 {"container":"%s","destination":"/data","driver":"local","propagation":"","read/write":"true"}'
        % _container_of(dy, t0, "mount"),
        'unmount ev1 {"container":"%s","driver":"local"}' % _container_of(dy, t0, "mount"),
        'destroy ev1 {"driver":"local"}']
    # volume=ev1 leaves container events out (different keys are ANDed)
    assert {line.split()[0] for line in _events(dy, t0, "-f", "volume=ev1", "-f", "type=volume", "-f",
                                                "type=container")} == {"volume"}
    # volume events come between the container's own, in Docker's order
    order = _events(dy, t0, "-f", "type=volume", "-f", "type=container", "-f", "event=mount", "-f", "event=start",
                    "-f", "event=unmount", "-f", "event=die", "-f", "event=destroy", fmt="{{.Type}} {{.Action}}")
    assert order == ["volume mount", "container start", "container die", "volume unmount", "container destroy",
                     "volume destroy"]


def _container_of(dy: Dockyard, since: str, action: str) -> str:
    return _events(dy, since, "-f", f"event={action}", fmt="{{.Actor.Attributes.container}}")[0]


def test_filters(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("run", "--name", "f1", "--network", "none", "-l", "tier=web", "busybox", "true", check=True)
    dy.cli("run", "--name", "f2", "--network", "none", "busybox", "sh", "-c", "exit 2")
    dy.cli("volume", "create", "fv", check=True)
    both = _events(dy, t0, "-f", "event=die", fmt="{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
    assert both == ["f1 0", "f2 2"]
    assert _events(dy, t0, "-f", "container=f2", "-f", "event=start", "-f", "event=die") == [
        "container start f2", "container die f2"]
    f1_id = dy.cli("inspect", "-f", "{{.Id}}", "f1", check=True).stdout.strip()
    assert _events(dy, t0, "-f", f"container={f1_id[:12]}", "-f", "event=create") == ["container create f1"]
    assert _events(dy, t0, "-f", "label=tier=web", "-f", "event=create") == ["container create f1"]
    assert _events(dy, t0, "-f", "label=tier", "-f", "label=nosuch") == []
    assert _events(dy, t0, "-f", "image=busybox", "-f", "event=create") == ["container create f1",
                                                                            "container create f2"]
    assert _events(dy, t0, "-f", "type=volume", fmt="{{.Action}} {{.Actor.ID}}") == ["create fv"]
    assert _events(dy, t0, "-f", "volume=fv", fmt="{{.Action}} {{.Actor.ID}}") == ["create fv"]
    assert _events(dy, t0, "-f", "daemon=x") == []


def test_since_until_window_and_default_format(dy: Dockyard) -> None:
    dy.cli("volume", "create", "w1", check=True)
    t1 = _now()
    dy.cli("volume", "create", "w2", check=True)
    t2 = _now()
    dy.cli("volume", "create", "w3", check=True)
    out = dy.cli("events", "--since", t1, "--until", t2, "-f", "type=volume", check=True, timeout=30).stdout
    assert out.count("\n") == 1
    stamp, rest = out.rstrip("\n").split(" ", 1)
    assert rest == "volume create w2 (driver=local)"
    assert len(stamp) == len("2026-12-04T20:31:02.123456789Z") and stamp.endswith("Z")  # TZ=UTC here
    # Relative and RFC 3339 times as docker takes them
    assert "volume create w3" in dy.cli("events", "--since", "1m", "--until", "0s", "-f", "type=volume",
                                        check=True, timeout=30).stdout
    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    assert "volume create w3" in dy.cli("events", "--since", utc, "--until", _now(), check=True, timeout=30).stdout


def test_json_format_is_dockers_message(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("run", "--rm", "--name", "j1", "--network", "none", "busybox", "true", check=True)
    for fmt in ("json", "{{json .}}"):
        lines = _events(dy, t0, "-f", "event=start", fmt=fmt)
        message = json.loads(lines[0])
        assert list(message) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
        assert message["status"] == "start" and message["from"] == "busybox" and message["scope"] == "local"
        assert message["id"] == message["Actor"]["ID"] and message["time"] == message["timeNano"] // 10**9


def test_follow_sees_a_start_as_it_happens(dy: Dockyard) -> None:
    follower = dy.popen("events", "--format", "{{.Action}} {{.Actor.Attributes.name}}", "-f", "event=start",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)   # it starts reading from "now": let it get there
        dy.cli("run", "-d", "--name", "live", "--network", "none", "busybox", "sleep", "5", check=True)
        ready, _, _ = select.select([follower.stdout], [], [], 10)
        assert ready, "no event line within 10 s"
        assert follower.stdout.readline().strip() == "start live"
        assert follower.poll() is None   # still following
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
    assert "Traceback" not in follower.stderr.read()


def test_until_in_the_future_stops_then(dy: Dockyard) -> None:
    t0 = _now()
    started = time.monotonic()
    result = dy.cli("events", "--since", t0, "--until", "%.3f" % (time.time() + 2), "-f", "type=volume",
                    check=True, timeout=30)
    assert 1.5 < time.monotonic() - started < 15
    assert result.stdout == ""


@pytest.mark.parametrize("args, code, message", [
    (["--since", "yesterday"], 1, 'failed to parse value as time or duration: "yesterday"'),
    (["--since", "10", "--until", "5"], 1, "`since` time (10) cannot be after `until` time (5)"),
    (["--filter", "nofilter", "--until", "1"], 125,
     'invalid argument "nofilter" for "-f, --filter" flag: bad format of filter (expected name=value)'),
    (["--until", "1", "--format", "{{.Nope}}"], 64,
     "can't evaluate field Nope in type *events.Message"),
])
def test_errors_as_docker(dy: Dockyard, args: list[str], code: int, message: str) -> None:
    result = dy.cli("events", *args, timeout=30)
    assert result.returncode == code
    assert message in result.stderr
    assert dy.cli("events", "--until", "1", "-f", "bogus=1", timeout=30).returncode == 0  # docker ignores it


def test_system_events_is_events(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("volume", "create", "s1", check=True)
    out = dy.cli("system", "events", "--since", t0, "--until", _now(), "--format", "{{.Action}} {{.Actor.ID}}",
                 check=True, timeout=30).stdout
    assert out == "create s1\n"


# ---- side by side with Docker -----------------------------------------------------------------

SCENARIOS = {
    "run --rm": [("run", "--rm", "--name", "x1", "--network", "none", "busybox", "true")],
    "create/start/exec/stop/rm": [
        ("create", "--name", "x2", "--network", "none", "-l", "k=v", "busybox", "sleep", "100"),
        ("start", "x2"), ("exec", "x2", "true"), ("stop", "-t", "1", "x2"), ("rm", "x2")],
    "tag/rmi": [("tag", "busybox", "busybox:side"), ("rmi", "busybox:side")],
    "volumes": [("volume", "create", "sv"), ("run", "--rm", "--network", "none", "-v", "sv:/d", "busybox", "true"),
                ("volume", "rm", "sv")],
    "save/load": [("save", "-o", "{tmp}/saved.tar", "busybox"), ("load", "-i", "{tmp}/saved.tar")],
    "import/rmi": [("import", "{tar}", "imported:1"), ("rmi", "imported:1")],
    "rm -f": [("run", "-d", "--name", "x3", "--network", "none", "busybox", "sleep", "100"), ("rm", "-f", "x3")],
    # a command that cannot start: no start, no die; --rm still destroys
    "launch failure": [("run", "--rm", "--network", "none", "busybox", "nosuchcmd"),
                       ("run", "--name", "x4", "--network", "none", "busybox", "nosuchcmd"), ("rm", "x4")],
    # the host network is joined and left as none is; a failed start with a volume: joined and
    # mounted, then left and unmounted
    "host network": [("run", "--rm", "--network", "host", "busybox", "true"),
                     ("create", "--name", "x5", "--network", "host", "busybox", "sleep", "100"), ("start", "x5"),
                     ("stop", "-t", "0", "x5"), ("start", "x5"), ("rm", "-f", "x5")],
    "launch failure with a volume": [("volume", "create", "lfv"),
                                     ("run", "--rm", "--network", "none", "-v", "lfv:/d", "busybox", "nosuchcmd"),
                                     ("volume", "rm", "lfv")],
}


def _shape(line: str) -> str:
    """``Type Action attribute-keys`` of one JSON event (the none and host networks' connect and
    disconnect included: Docker says them too)."""
    m = json.loads(line)
    return f"{m['Type']} {m['Action']} {','.join(sorted(m['Actor']['Attributes']))}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sequence_like_docker(scenario: str, dy: Dockyard, docker: dockerd.PrivateDockerd, busybox_tar: Path,
                              tmp_path: Path) -> None:
    seqs = []
    for run, events in ((lambda *a: dy.cli(*a, timeout=60), lambda *a: dy.cli(*a, check=True).stdout),
                        (docker.run, docker.cli)):
        t0 = _now()
        for command in SCENARIOS[scenario]:
            run(*(arg.format(tmp=tmp_path, tar=busybox_tar) for arg in command))
        out = events("events", "--since", t0, "--until", _now(), "--format", "{{json .}}")
        seqs.append([_shape(line) for line in out.splitlines()])
    ours, theirs = seqs
    assert ours == theirs


def test_push_and_pull_events(distribution, repo_name: str, dy: Dockyard) -> None:  # noqa: ANN001
    name = f"{distribution.address}/{repo_name}"
    dy.cli("tag", "busybox", f"{name}:v1", check=True)
    t0 = _now()
    dy.cli("push", f"{name}:v1", check=True, timeout=120)
    dy.cli("rmi", f"{name}:v1", check=True)
    dy.cli("pull", f"{name}:v1", check=True, timeout=120)
    lines = _events(dy, t0, "-f", "event=push", "-f", "event=pull",
                    fmt="{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
    # Docker: the reference as the actor, the repository as its name
    assert lines == [f"push {name}:v1 {name}", f"pull {name}:v1 {name}"]


def test_restart_policy_like_docker(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """on-failure:2: three runs, each a start and a die, then the container stays exited."""
    command = ("run", "-d", "--name", "rp", "--network", "none", "--restart", "on-failure:2", "busybox",
               "sh", "-c", "exit 1")
    seqs = []
    for run, events in ((lambda *a: dy.cli(*a, check=True), lambda *a: dy.cli(*a, check=True).stdout),
                        (docker.cli, docker.cli)):
        t0 = _now()
        run(*command)
        deadline = time.monotonic() + 20
        while True:
            out = events("events", "--since", t0, "--until", _now(), "-f", "type=container",
                         "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}")
            if out.count("die") >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(1)  # no fourth run
        seqs.append(events("events", "--since", t0, "--until", _now(), "-f", "type=container",
                           "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}").splitlines())
        run("rm", "-f", "rp")
    ours, theirs = seqs
    assert ours == theirs == ["create <no value>"] + ["start <no value>", "die 1"] * 3


def test_network_events(dy: Dockyard) -> None:
    t0 = _now()
    dy.cli("network", "create", "evnet", check=True)
    dy.cli("network", "create", "evnet2", check=True)
    try:
        dy.cli("run", "-d", "--name", "nc", "--network", "evnet", "busybox", "sleep", "100", check=True)
        dy.cli("network", "connect", "evnet2", "nc", check=True)
        dy.cli("network", "disconnect", "evnet2", "nc", check=True)
        dy.cli("stop", "-t", "0", "nc", check=True)
        dy.cli("rm", "nc", check=True)
    finally:
        dy.cli("rm", "-f", "nc")
        dy.cli("network", "rm", "evnet")
        dy.cli("network", "rm", "evnet2")
    cid_of = {}
    lines = []
    for line in _events(dy, t0, "-f", "type=network", fmt="json"):
        m = json.loads(line)
        attrs = m["Actor"]["Attributes"]
        cid_of.setdefault(attrs["name"], m["Actor"]["ID"])
        assert m["Actor"]["ID"] == cid_of[attrs["name"]] and attrs["type"] == "bridge"
        lines.append(f"{m['Action']} {attrs['name']} {'container' in attrs}")
    assert lines == ["create evnet False", "create evnet2 False", "connect evnet True", "connect evnet2 True",
                     "disconnect evnet2 True", "disconnect evnet True", "destroy evnet False",
                     "destroy evnet2 False"]
    cid = _events(dy, t0, "-f", "container=nc", "-f", "event=start", fmt="{{.Actor.ID}}")
    # network=evnet: by name or ID prefix, so evnet2 too (Docker's fuzzy match)
    assert _events(dy, t0, "-f", "network=evnet", "-f", "event=connect", fmt="{{.Actor.Attributes.container}}") \
        == cid * 2
    assert _events(dy, t0, "-f", f"network={cid_of['evnet2']}", fmt="{{.Action}}") == [
        "create", "connect", "disconnect", "destroy"]


def test_oom_before_die(dy: Dockyard) -> None:
    t0 = _now()
    result = dy.cli("run", "--rm", "--name", "oomy", "--network", "none", "-m", "8m", "--memory-swap", "8m", "busybox",
                    "sh", "-c", 'x=$(head -c 40000000 /dev/zero | tr "\\0" a); echo done', timeout=60)
    assert result.returncode == 137
    assert _events(dy, t0, "-f", "container=oomy", fmt="{{.Action}} {{.Actor.Attributes.exitCode}}")[-3:] == [
        "oom <no value>", "die 137", "destroy <no value>"]


def _until_seen(events, action: str, t0: str, timeout: float = 15.0) -> None:  # noqa: ANN001
    """Poll the log until an event ``action`` is in it (a background process records it)."""
    deadline = time.monotonic() + timeout
    while action not in events("events", "--since", t0, "--until", _now(), "--format", "{{.Action}}"):
        assert time.monotonic() < deadline, f"no {action} event within {timeout} s"
        time.sleep(0.2)


@pytest.mark.parametrize("path", ["fast", "click"])
def test_detached_exec_dies_like_docker(path: str, dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """exec -d: exec_die with the process's code when it ends, as dockerd says it; the command
    itself returns at once (it holds neither the process's end nor its caller's pipes)."""
    env = {"DOCKYARD_NO_FASTPATH": "1"} if path == "click" else {}
    seqs = []
    for run, events in ((lambda *a: dy.cli(*a, check=True, env=env), lambda *a: dy.cli(*a, check=True).stdout),
                        (docker.cli, docker.cli)):
        run("run", "-d", "--name", "xd", "--network", "none", "busybox", "sleep", "100")
        t0 = _now()
        started = time.monotonic()
        run("exec", "-d", "xd", "sh", "-c", "sleep 2; exit 3")
        assert time.monotonic() - started < 1.8   # not held until the process ends
        _until_seen(events, "exec_die", t0)
        out = events("events", "--since", t0, "--until", _now(), "--format", "{{json .}}")
        run("rm", "-f", "xd")
        messages = [json.loads(line) for line in out.splitlines()]
        assert len({m["Actor"]["Attributes"]["execID"] for m in messages}) == 1
        seqs.append([(_shape(json.dumps(m)), m["Actor"]["Attributes"].get("exitCode")) for m in messages])
    ours, theirs = seqs
    assert ours == theirs
    assert [shape.split(" ", 2)[1] for shape, _ in ours] == ["exec_create:", "exec_start:", "exec_die"]
    assert ours[-1][1] == "3"


def test_detached_exec_that_cannot_start(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "xn", "--network", "none", "busybox", "sleep", "100", check=True)
    t0 = _now()
    result = dy.cli("exec", "-d", "xn", "nosuchcmd")
    assert result.returncode != 0 and "nosuchcmd" in result.stderr
    time.sleep(0.5)
    assert [a.split(":")[0] for a in _events(dy, t0, fmt="{{.Action}}")] == ["exec_create", "exec_start"]  # no die


@pytest.mark.parametrize("command", ["exit 0", "echo hi; exit 1"])
def test_health_probes_are_execs_like_docker(command: str, dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """Each probe is an exec as dockerd says it: exec_create and exec_start of the shell form,
    exec_die with its code, then the health_status it brings."""
    seqs = []
    for run, events in ((lambda *a: dy.cli(*a, check=True), lambda *a: dy.cli(*a, check=True).stdout),
                        (docker.cli, docker.cli)):
        t0 = _now()
        run("run", "-d", "--name", "hp", "--network", "none", "--health-cmd", command, "--health-interval", "1s",
            "--health-retries", "1", "busybox", "sleep", "100")
        _until_seen(events, "health_status: " + ("healthy" if command == "exit 0" else "unhealthy"), t0)
        out = events("events", "--since", t0, "--until", _now(), "--format", "{{json .}}")
        run("rm", "-f", "hp")
        seq = []
        for line in out.splitlines():
            seq.append((_shape(line), json.loads(line)["Actor"]["Attributes"].get("exitCode")))
            if seq[-1][0].startswith("container health_status"):
                break
        seqs.append(seq)
    ours, theirs = seqs
    assert ours == theirs
    assert ours[3][0].startswith("container exec_create: /bin/sh -c " + command + " ")


def test_restart_policy_leaves_and_joins_like_docker(dy: Dockyard, docker: dockerd.PrivateDockerd) -> None:
    """Each run of a restarting container joins its network and mounts its volumes before the
    start, and leaves and unmounts after the die."""
    seqs = []
    for run, events in ((lambda *a: dy.cli(*a, check=True), lambda *a: dy.cli(*a, check=True).stdout),
                        (docker.cli, docker.cli)):
        t0 = _now()
        run("run", "-d", "--name", "rl", "--network", "none", "-v", "rlv:/d", "--restart", "on-failure:1",
            "busybox", "sh", "-c", "exit 1")
        deadline = time.monotonic() + 20
        while events("events", "--since", t0, "--until", _now(), "--format", "{{.Action}}").count("unmount") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        out = events("events", "--since", t0, "--until", _now(), "--format", "{{.Type}} {{.Action}}")
        run("rm", "-f", "rl")
        run("volume", "rm", "rlv")
        seqs.append(out.splitlines())
    ours, theirs = seqs
    assert ours == theirs
    assert ours[-6:] == ["network connect", "volume mount", "container start", "container die",
                         "network disconnect", "volume unmount"]
