"""``dockyard compose`` as a user types it (busybox projects, a private root): what up, ps, ls,
logs, exec, run, port, top, config and down print, and that down -v leaves nothing.

The services trap SIGTERM (a shell as PID 1 would ignore it and every stop would wait 10 s)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard.testing.registry import free_port

pytestmark = pytest.mark.integration

Run = Callable[..., subprocess.CompletedProcess[str]]
WAIT = "trap 'exit 0' TERM; sleep 3600 & wait"


@pytest.fixture
def dy(dockyard_root: Path, busybox_tar: Path, tmp_path: Path) -> Iterator[Run]:
    """``dy("compose", "ps", cwd=...)``: the dockyard CLI in the test's root (busybox imported),
    run in ``cwd`` (default: the test's project dir, tmp_path/project)."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dockyard", *args], cwd=cwd or project_dir, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ))

    run.dir = project_dir  # type: ignore[attr-defined]
    imported = run("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox")
    assert imported.returncode == 0, imported.stderr
    yield run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def write(dy: Run, text: str) -> Path:
    path = dy.dir / "compose.yaml"  # type: ignore[attr-defined]
    path.write_text(text)
    return path


def test_up_wait_then_every_view_then_down_leaves_nothing(dy: Run) -> None:
    port = free_port()
    write(dy, f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello from web; {WAIT}"]
    healthcheck: {{test: ["CMD", "true"], interval: 200ms}}
    ports: ["{port}:80"]
    depends_on: [db]
  db:
    image: busybox
    command: ["sh", "-c", "echo db ready; echo on stderr >&2; {WAIT}"]
    volumes: [data:/data]
volumes:
  data: {{}}
""")
    try:
        up = ok(dy("compose", "-p", "clitest", "up", "-d", "--wait"))
        assert up.stdout == ""
        progress = up.stderr.splitlines()
        for line in (" Network clitest_default  Created", " Volume clitest_data  Created",
                     " Container clitest-db-1  Started", " Container clitest-web-1  Started",
                     " Container clitest-web-1  Healthy",
                     " Container clitest-db-1  Healthy"):   # v2's word in --wait, with or without a health check
            assert line in progress, up.stderr
        assert progress.index(" Container clitest-db-1  Started") < progress.index(" Container clitest-web-1  Started")

        # the project's name from -p, then from COMPOSE_PROJECT_NAME via --project-name's absence: use -p
        ps = ok(dy("compose", "-p", "clitest", "ps")).stdout.splitlines()
        assert re.match(r"NAME +IMAGE +COMMAND +SERVICE +CREATED +STATUS +PORTS$", ps[0]), ps
        assert ps[1].startswith("clitest-db-1 ") and " db " in ps[1] and "Up " in ps[1]
        assert ps[2].startswith("clitest-web-1 ") and "(healthy)" in ps[2]
        assert f"0.0.0.0:{port}->80/tcp" in ps[2]
        assert '"sh -c \'echo hello f…"' in ps[2]   # the daemon's quoting, cut at 20 as compose's
        # columns line up: each header starts where its cells start
        for header in ("IMAGE", "SERVICE", "STATUS"):
            at = ps[0].index(header)
            assert ps[1][at - 1] == " " and ps[1][at] != " "

        rows = [json.loads(line) for line in ok(dy("compose", "-p", "clitest", "ps", "--format", "json")).stdout.splitlines()]
        assert [(r["Service"], r["Name"], r["State"], r["Health"]) for r in rows] == [
            ("db", "clitest-db-1", "running", ""), ("web", "clitest-web-1", "running", "healthy")]
        assert rows[1]["Publishers"] == [{"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": port, "Protocol": "tcp"}]
        assert ok(dy("compose", "-p", "clitest", "ps", "--services")).stdout == "db\nweb\n"
        ids = ok(dy("compose", "-p", "clitest", "ps", "-q")).stdout.split()
        assert sorted(ids) == sorted(ok(dy("ps", "-q", "--no-trunc")).stdout.split())

        ls = ok(dy("compose", "ls")).stdout.splitlines()
        assert ls[0] == "NAME                STATUS              CONFIG FILES"
        assert ls[1] == f"clitest             running(2)          {dy.dir / 'compose.yaml'}"  # type: ignore[attr-defined]
        assert json.loads(ok(dy("compose", "ls", "--format", "json")).stdout) == [
            {"Name": "clitest", "Status": "running(2)", "ConfigFiles": str(dy.dir / "compose.yaml")}]  # type: ignore[attr-defined]

        logs = ok(dy("compose", "-p", "clitest", "logs")).stdout.splitlines()
        assert "db-1   | db ready" in logs and "db-1   | on stderr" in logs and "web-1  | hello from web" in logs
        assert ok(dy("compose", "-p", "clitest", "logs", "--no-log-prefix", "db")).stdout == "db ready\non stderr\n"
        stamped = ok(dy("compose", "-p", "clitest", "logs", "-t", "--tail", "1", "web")).stdout
        assert re.fullmatch(r"web-1  \| \d{4}-\d\d-\d\dT[\d:.]+Z hello from web\n", stamped), stamped

        assert ok(dy("compose", "-p", "clitest", "exec", "-T", "web", "sh", "-c", "echo $((6*7))")).stdout == "42\n"
        oneoff = ok(dy("compose", "-p", "clitest", "run", "--rm", "-T", "db", "echo", "one-off"))
        assert oneoff.stdout == "one-off\n"
        assert dy("compose", "-p", "clitest", "run", "--rm", "-T", "--no-deps", "db", "sh", "-c", "exit 4").returncode == 4
        assert len(ok(dy("ps", "-aq")).stdout.split()) == 2   # the --rm one-offs are gone
        assert ok(dy("compose", "-p", "clitest", "port", "web", "80")).stdout == f"0.0.0.0:{port}\n"
        top = ok(dy("compose", "-p", "clitest", "top")).stdout.splitlines()
        assert re.match(r"SERVICE  #   UID +PID +PPID +C +STIME +TTY +TIME +CMD$", top[0]), top
        assert any(line.startswith("web      1   root ") and "sleep 3600" in line for line in top), top
        assert ok(dy("compose", "config", "--services")).stdout == "db\nweb\n"

        # unchanged: a second up recreates nothing
        again = ok(dy("compose", "-p", "clitest", "up", "-d"))
        assert "Recreate" not in again.stderr and "Created" not in again.stderr, again.stderr
        assert sorted(ok(dy("compose", "-p", "clitest", "ps", "-q")).stdout.split()) == sorted(ids)
    finally:
        down = dy("compose", "-p", "clitest", "down", "-v")
    ok(down)
    assert " Container clitest-web-1  Removed" in down.stderr.splitlines()
    assert " Volume clitest_data  Removed" in down.stderr.splitlines()
    assert ok(dy("ps", "-aq")).stdout == ""
    assert "clitest_default" not in ok(dy("network", "ls", "--format", "{{.Name}}")).stdout.split()
    assert ok(dy("volume", "ls", "-q")).stdout == ""
    assert ok(dy("compose", "ls", "-a")).stdout == "NAME                STATUS              CONFIG FILES\n"
    nothing = ok(dy("compose", "-p", "clitest", "down"))
    assert 'No resource found to remove for project "clitest"' in nothing.stderr


QUICK = f"""
services:
  longname:
    image: busybox
    command: ["sh", "-c", "echo started; {WAIT}"]
  quick:
    image: busybox
    command: ["sh", "-c", "sleep 0.5; echo one; echo two; exit 3"]
"""


def test_attached_up_prefixes_output_and_aborts_with_the_exit_code(dy: Run) -> None:
    write(dy, QUICK)
    try:
        up = dy("compose", "-p", "attached", "up", "--abort-on-container-exit")
        assert up.returncode == 3, up.stdout + up.stderr
        out = up.stdout.splitlines()
        assert out[0] == "Attaching to longname-1, quick-1"
        assert "longname-1  | started" in out
        assert out.index("quick-1     | one") < out.index("quick-1     | two") < out.index("quick-1 exited with code 3")
        assert "longname-1 exited with code 0" in out
        assert "Aborting on container exit..." in up.stderr
        states = ok(dy("compose", "-p", "attached", "ps", "-a", "--format", "{{.Service}} {{.State}}")).stdout
        assert states.split("\n")[:2] == ["longname exited", "quick exited"]
        assert ok(dy("compose", "-p", "attached", "up", "--exit-code-from", "longname", "--no-attach", "quick",
                     timeout=60)).stdout.startswith("Attaching to longname-1\n")
    finally:
        ok(dy("compose", "-p", "attached", "down"))


def test_ctrl_c_stops_the_attached_project(dy: Run) -> None:
    write(dy, QUICK)
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "compose", "-p", "ctrlc", "up", "longname"],
                            cwd=dy.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,  # type: ignore[attr-defined]
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == "Attaching to longname-1\n"
        assert proc.stdout.readline() == "longname-1  | started\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Gracefully stopping... (press Ctrl+C again to force)" in err
        assert " Container ctrlc-longname-1  Stopped" in err.splitlines()
        assert ok(dy("compose", "-p", "ctrlc", "ps", "-a", "--format", "{{.State}}")).stdout == "exited\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ok(dy("compose", "-p", "ctrlc", "down"))


def test_verbs_by_project_name_without_a_file(dy: Run, tmp_path: Path) -> None:
    write(dy, QUICK)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        ok(dy("compose", "-p", "named", "up", "-d", "longname"))
        ps = ok(dy("compose", "-p", "named", "ps", "--format", "{{.Name}}", cwd=elsewhere))
        assert ps.stdout == "named-longname-1\n"
        nofile = dy("compose", "ps", cwd=elsewhere)
        assert nofile.returncode == 1 and nofile.stderr.startswith("Error: no configuration file provided")
        killed = ok(dy("compose", "-p", "named", "kill", "-s", "SIGTERM", cwd=elsewhere))
        assert " Container named-longname-1  Killed" in killed.stderr.splitlines()
        assert ok(dy("compose", "-p", "named", "kill", cwd=elsewhere)).stderr == "no container to kill\n"
        ok(dy("compose", "-p", "named", "start", cwd=elsewhere))
        ok(dy("compose", "-p", "named", "stop", cwd=elsewhere))
        assert ok(dy("compose", "-p", "named", "ps", "-a", "--format", "{{.State}}", cwd=elsewhere)).stdout == "exited\n"
    finally:
        ok(dy("compose", "-p", "named", "down", cwd=elsewhere))
    assert ok(dy("ps", "-aq")).stdout == ""
    gone = dy("compose", "-p", "named", "start", cwd=elsewhere)
    assert (gone.returncode, gone.stderr) == (1, 'Error: no container found for project "named": not found\n')


@pytest.mark.parametrize("text, where, what", [
    ("services:\n  web:\n    image: busybox\n    ports: 80\n", "compose.yaml:4", "services.web.ports"),
    ("services:\n  web:\n    image: busybox\n    colour: blue\n", "compose.yaml:4", "'colour' not allowed"),
    ("services:\n  a:\n    image: busybox\n    ports: ['18181:80']\n  b:\n    image: busybox\n"
     "    ports: ['18182:80', '18181:81']\n", "compose.yaml:7", "port is already allocated"),
    ("services:\n  web:\n    image: busybox\n    command: ${NEEDED:?set NEEDED}\n", "compose.yaml:4", "set NEEDED"),
    ("services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\n",
     "compose.yaml:", "depends_on"),
])
def test_bad_input_is_one_line_naming_file_and_line_and_nothing_starts(dy: Run, text: str, where: str,
                                                                       what: str) -> None:
    write(dy, text)
    up = dy("compose", "-p", "bad", "up", "-d")
    assert up.returncode == 1, up.stdout + up.stderr
    lines = up.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), up.stderr
    assert where in lines[0] and what in lines[0], lines[0]
    assert ok(dy("ps", "-aq")).stdout == ""
    assert "bad_default" not in ok(dy("network", "ls", "--format", "{{.Name}}")).stdout.split()


def test_orphans_are_named_then_removed(dy: Run) -> None:
    write(dy, QUICK.replace("exit 3", WAIT))
    try:
        ok(dy("compose", "-p", "orph", "up", "-d"))
        write(dy, QUICK.split("  quick:")[0])
        again = ok(dy("compose", "-p", "orph", "up", "-d"))
        assert "WARN[0000] Found orphan containers ([orph-quick-1]) for this project." in again.stderr, again.stderr
        assert "--remove-orphans" in again.stderr
        ok(dy("compose", "-p", "orph", "up", "-d", "--remove-orphans"))
        assert ok(dy("compose", "-p", "orph", "ps", "-a", "--format", "{{.Name}}")).stdout == "orph-longname-1\n"
    finally:
        ok(dy("compose", "-p", "orph", "down", "--remove-orphans"))
    assert ok(dy("ps", "-aq")).stdout == ""


def test_run_detached_prints_the_id_and_port_says_what_is_missing(dy: Run) -> None:
    write(dy, QUICK.replace("exit 3", WAIT))
    try:
        ok(dy("compose", "-p", "det", "up", "-d", "longname"))
        started = ok(dy("compose", "-p", "det", "run", "-d", "--no-deps", "quick"))
        cid = started.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", cid), started.stdout
        name = ok(dy("inspect", "--format", "{{.Name}}", cid)).stdout.strip().lstrip("/")
        assert re.fullmatch(r"det-quick-run-[0-9a-f]{12}", name), name
        labels = json.loads(ok(dy("inspect", "--format", "{{json .Config.Labels}}", cid)).stdout)
        assert labels["com.docker.compose.oneoff"] == "True" and labels["com.docker.compose.service"] == "quick"
        missing = dy("compose", "-p", "det", "port", "longname", "81")
        assert missing.returncode == 1
        assert missing.stderr == "Error: no port 81/tcp for container det-longname-1\n"
        assert dy("compose", "-p", "det", "exec", "-T", "quick", "true").stderr == 'Error: service "quick" is not running\n'
    finally:
        ok(dy("compose", "-p", "det", "down"))
    assert ok(dy("ps", "-aq")).stdout == ""


def test_config_prints_the_resolved_model(dy: Run) -> None:
    write(dy, """
name: cfg
services:
  web:
    image: busybox:${TAG:-latest}
    ports: ["8080:80"]
    volumes: [data:/data]
  debug:
    image: busybox
    profiles: [tools]
volumes:
  data: {}
""")
    model = json.loads(ok(dy("compose", "config", "--format", "json")).stdout)
    assert model["name"] == "cfg" and list(model["services"]) == ["web"]
    assert model["services"]["web"]["image"] == "busybox:latest"
    assert model["services"]["web"]["ports"] == [{"mode": "ingress", "target": 80, "published": "8080",
                                                  "protocol": "tcp"}]
    assert model["volumes"] == {"data": {"name": "cfg_data"}}
    yaml_text = ok(dy("compose", "config")).stdout
    assert yaml_text.startswith("name: cfg\n") and "    image: busybox:latest\n" in yaml_text
    assert ok(dy("compose", "--profile", "tools", "config", "--services")).stdout == "debug\nweb\n"
    assert ok(dy("compose", "config", "--volumes")).stdout == "data\n"
    assert ok(dy("compose", "config", "--profiles")).stdout == "tools\n"
    assert ok(dy("compose", "config", "--images")).stdout == "busybox:latest\n"
    assert ok(dy("compose", "config", "-q")).stdout == ""
    out = dy.dir / "resolved.yaml"  # type: ignore[attr-defined]
    ok(dy("compose", "config", "-o", str(out)))
    assert out.read_text() == yaml_text
