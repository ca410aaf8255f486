"""``GET /events`` through Debian's docker CLI (20.10) and raw sockets: the window of
``--since``/``--until``, following new events that the dockyard CLI logs, dockerd's JSON, and
followers that come and go without holding threads or descriptors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

pytestmark = pytest.mark.integration


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def open_stream(api, path: str) -> tuple[socket.socket, bytes]:
    """A request whose answer streams: the socket and what came after the headers so far."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 200"), header
    assert b"content-type: application/json" in header.lower()
    return sock, rest


def read_all(api, path: str) -> tuple[int, bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), payload


def test_since_until_window_as_the_dockyard_cli_shows_it(api, run_cli) -> None:
    start = time.time()
    ok(api.docker("network", "create", "evnet"))
    ok(api.docker("volume", "create", "evvol"))
    ok(run_cli("create", "--name", "evbox", "busybox", "true"))
    ok(api.docker("network", "rm", "evnet"))
    end = time.time() + 0.5
    window = ("events", "--since", f"{start:.9f}", "--until", f"{end:.9f}")
    ours = ok(api.docker(*window))
    assert ours == ok(run_cli(*window))
    lines = ours.splitlines()
    assert [" ".join(line.split()[1:3]) for line in lines] == [
        "network create", "volume create", "container create", "network destroy"]
    assert "(name=evbox, image=busybox)" in lines[2] or "(image=busybox, name=evbox)" in lines[2]
    # Filters narrow the window as in the CLI.
    only = window + ("--filter", "type=network", "--filter", "event=destroy")
    assert ok(api.docker(*only)) == ok(run_cli(*only)) == lines[3] + "\n"
    # {{json .}}: dockerd's message, legacy status/id/from for containers.
    formatted = ok(api.docker(*window, "--filter", "container=evbox", "--format", "{{json .}}"))
    message = json.loads(formatted)
    assert list(message) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert (message["status"], message["from"], message["Type"], message["scope"]) == \
        ("create", "busybox", "container", "local")
    assert message["Actor"]["Attributes"] == {"image": "busybox", "name": "evbox"}
    assert message["time"] == message["timeNano"] // 1_000_000_000


def test_route_answers_dockerds_json_lines_and_bad_parameters(api, run_cli) -> None:
    start = time.time()
    ok(run_cli("volume", "create", "--label", "k=v", "rawvol"))
    status, body = read_all(api, f"/v1.41/events?since={start:.3f}&until={time.time() + 0.2:.3f}")
    assert status == 200
    [line] = body.decode().splitlines()
    assert line == json.dumps(json.loads(line), separators=(",", ":"))   # Go's compact encoding, one a line
    message = json.loads(line)
    assert list(message) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert message["Actor"] == {"ID": "rawvol", "Attributes": {"driver": "local"}}
    bad = urllib.parse.quote(json.dumps({"bogus": ["x"]}))
    status, body = read_all(api, f"/events?until=1&filters={bad}")
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'bogus'"})
    status, body = read_all(api, "/events?since=abc")
    assert status == 400 and "abc" in json.loads(body)["message"]
    status, body = read_all(api, "/events?since=200&until=100")
    assert status == 400


def test_a_following_docker_events_sees_a_container_the_dockyard_cli_starts(api, run_cli) -> None:
    # --since without --until: the history, then following. The first container shows that the
    # client is connected (from the history or live); the second can only come live.
    since = f"{time.time():.9f}"
    follower = subprocess.Popen(["/usr/bin/docker", "events", "--since", since, "--filter", "type=container",
                                 "--format", "{{.Action}} {{.Actor.Attributes.name}}"], env=api.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(line: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and line not in seen:
            time.sleep(0.05)
        assert line in seen, seen

    try:
        ok(run_cli("run", "--rm", "--name", "first", "busybox", "true"))
        wait_for("destroy first\n")
        ok(run_cli("run", "--rm", "--name", "second", "busybox", "true"))
        wait_for("destroy second\n")
        assert [line for line in seen if line.endswith(" second\n")] == [
            "create second\n", "attach second\n", "start second\n", "die second\n", "destroy second\n"]
        assert follower.poll() is None   # still following
    finally:
        follower.terminate()
        follower.wait(10)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_many_followers_hold_no_thread_each_and_leave_nothing_behind(api, run_cli) -> None:
    pid = api.process.pid
    ok(api.docker("version"))   # the worker pool has started
    fds_before, threads_before = _fds(pid), _threads(pid)
    followers = [open_stream(api, "/v1.41/events?filters=" + urllib.parse.quote(json.dumps({"type": ["volume"]})))
                 for _ in range(40)]   # more than the 32 worker threads
    try:
        time.sleep(1.0)
        # More followers than worker threads: were each to hold one, a request that needs a
        # worker (version) would wait behind them. It answers, and each follower gets a new event.
        ok(api.docker("version", timeout=30))
        assert _threads(pid) <= threads_before + 32   # at most the pool's own threads, never one per follower
        ok(run_cli("volume", "create", "announced"))
        for sock, already in followers:
            data = already
            while b"announced" not in data:
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
    finally:
        for sock, _ in followers:
            sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _fds(pid) > fds_before:
        time.sleep(0.1)
    assert _fds(pid) <= fds_before, f"{_fds(pid) - fds_before} descriptors left by 40 followers"
    ok(api.docker("version"))
