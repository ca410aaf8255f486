"""The API's streams through the docker CLI 20.10: run (attach before start, wait, --rm), start -a,
attach under a terminal with its detach keys, logs, wait, resize; and no fd left behind by
clients that hang up mid-stream. Side by side with dockerd where the words matter."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

NONE = ("--network", "none")


class PtyProcess:
    """A command on a terminal of its own (the docker CLI's -it checks that stdin is one)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True, close_fds=True)
        os.close(slave)
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        self.output += data
        return bool(data)

    def expect(self, needle: bytes, timeout: float = 30.0) -> bytes:
        """Read until ``needle`` shows up in the output; all output so far."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{needle!r} not seen; output so far: {self.output!r}")
        return self.output

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running; output: {self.output!r}")
            self._read(0.1)
        # what it wrote just before exiting may still be in the terminal: read it (to EIO, or
        # until nothing more comes)
        while select.select([self.master], [], [], 0.2)[0] and self._read(0):
            pass
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def status_of(run_cli, name: str) -> str:
    return run_cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


# ---------------------------------------------------------------- run

def test_run_prints_the_output_and_exits_0(api) -> None:
    result = api.docker("run", *NONE, "busybox", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", ""), api.logs()


def test_run_passes_the_exit_code_and_keeps_stdout_and_stderr_apart(api) -> None:
    result = api.docker("run", *NONE, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n"), api.logs()


def test_run_t_gives_the_terminal_s_raw_output(api) -> None:
    result = api.docker("run", "-t", *NONE, "busybox", "sh", "-c", "echo tty; echo err >&2", text=False)
    assert (result.returncode, result.stdout) == (0, b"tty\r\nerr\r\n")   # one stream on a terminal


def test_run_loses_no_output_from_the_first_byte(api) -> None:
    result = api.docker("run", *NONE, "busybox", "seq", "1", "20000")
    assert result.returncode == 0
    assert result.stdout == "".join(f"{n}\n" for n in range(1, 20001))


def test_run_rm_leaves_nothing(api, run_cli) -> None:
    result = api.docker("run", "--rm", *NONE, "busybox", "sh", "-c", "echo bye; exit 5")
    assert (result.returncode, result.stdout) == (5, "bye\n"), result.stderr + api.logs()
    assert run_cli("ps", "-aq").stdout == ""


def test_concurrent_runs_each_get_their_own_output_and_exit_code(api, run_cli) -> None:
    import concurrent.futures

    def one(i: int) -> tuple[int, str]:
        result = api.docker("run", "--rm", *NONE, "busybox", "sh", "-c", f"echo n{i}; exit {i % 5}")
        return result.returncode, result.stdout

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    assert results == [(i % 5, f"n{i}\n") for i in range(12)]
    assert run_cli("ps", "-aq").stdout == ""


def test_run_i_feeds_piped_stdin_and_sees_its_end(api) -> None:
    result = api.docker("run", "-i", *NONE, "busybox", "cat", input="data\nmore\n")
    assert (result.returncode, result.stdout) == (0, "data\nmore\n"), result.stderr + api.logs()


@pytest.mark.parametrize(("command", "code"), [("nosuch", 127), ("/etc/passwd", 126)])
def test_run_of_a_missing_command_fails_as_with_dockerd(api, docker, run_cli, command: str, code: int) -> None:
    ours = api.docker("run", *NONE, "--name", "missing", "busybox", command)
    theirs = docker.run("run", *NONE, "busybox", command)
    assert ours.returncode == theirs.returncode == code

    def kinds(stderr: str) -> set[str]:
        """The lines the CLI printed (in either order), timestamps and the runtime's words aside.
        Not "error waiting for container: context canceled": the CLI's wait goroutine prints it
        while its main one exits, so it comes or not whatever the daemon (seen both ways)."""
        import re

        return {"docker: Error response from daemon: ..." if line.startswith("docker: Error response from daemon: ")
                and command in line else re.sub(r'time="[^"]*"', "time=T", line) for line in stderr.splitlines()
                if "error waiting for container: context canceled" not in line}

    assert kinds(ours.stderr) == kinds(theirs.stderr), (ours.stderr, theirs.stderr)
    assert status_of(run_cli, "missing") != "running"


def test_run_rm_of_a_missing_command_removes_it(api, run_cli) -> None:
    result = api.docker("run", "--rm", *NONE, "busybox", "nosuch")
    assert result.returncode == 127, result.stderr
    assert run_cli("ps", "-aq").stdout == ""


def test_run_it_under_a_terminal_detach_and_attach_again(api, run_cli) -> None:
    term = PtyProcess(["/usr/bin/docker", "run", "-it", *NONE, "--name", "itc", "busybox", "sh"], api.env)
    try:
        term.expect(b"# ")
        term.send(b"echo $((6*7))\r")
        term.expect(b"42")
        term.send(b"stty size\r")   # the CLI's resize reached the container's terminal
        term.expect(b"24 80")
        term.send(b"\x10\x11")      # ctrl-p ctrl-q
        assert term.wait() == 0, term.output
    finally:
        term.close()
    assert status_of(run_cli, "itc") == "running"
    again = PtyProcess(["/usr/bin/docker", "attach", "itc"], api.env, rows=30, cols=100)
    try:
        again.send(b"echo again-$((1+1))\r")
        again.expect(b"again-2")
        again.send(b"stty size\r")
        again.expect(b"30 100")
        again.send(b"exit 7\r")
        assert again.wait() == 7, again.output
    finally:
        again.close()
    assert status_of(run_cli, "itc") == "exited"


def test_run_it_with_other_detach_keys(api, run_cli) -> None:
    term = PtyProcess(["/usr/bin/docker", "run", "-it", "--detach-keys", "ctrl-x,x", *NONE, "--name", "dk",
                       "busybox", "sh"], api.env)
    try:
        term.expect(b"# ")
        term.send(b"\x18x")
        assert term.wait() == 0, term.output
    finally:
        term.close()
    assert status_of(run_cli, "dk") == "running"


def test_run_rm_it_exits_with_the_shell_and_leaves_nothing(api, run_cli) -> None:
    term = PtyProcess(["/usr/bin/docker", "run", "--rm", "-it", *NONE, "busybox", "sh"], api.env)
    try:
        term.expect(b"# ")
        term.send(b"echo inside\r")
        term.expect(b"inside")
        term.send(b"exit 3\r")
        assert term.wait() == 3, term.output
    finally:
        term.close()
    assert run_cli("ps", "-aq").stdout == ""


# ---------------------------------------------------------------- start -a, attach, wait

def test_start_a_attaches_before_the_container_runs(api, run_cli) -> None:
    cid = run_cli("create", *NONE, "busybox", "sh", "-c", "echo first; echo second >&2; exit 2",
                  check=True).stdout.strip()
    result = api.docker("start", "-a", cid)
    assert (result.returncode, result.stdout, result.stderr) == (2, "first\n", "second\n"), api.logs()
    again = api.docker("start", "-a", cid)   # an exited container: attached again from its start
    assert (again.returncode, again.stdout) == (2, "first\n")


def test_start_ai_feeds_stdin_to_an_interactive_container(api, run_cli) -> None:
    run_cli("create", "-i", *NONE, "--name", "ai", "busybox", "sh", "-c", "read x; echo read-$x; exit 1",
            check=True)
    result = api.docker("start", "-ai", "ai", input="it\n")
    assert (result.returncode, result.stdout) == (1, "read-it\n"), result.stderr + api.logs()


def test_start_of_a_running_container_is_a_no_op(api, run_cli) -> None:
    run_cli("run", "-d", *NONE, "--name", "up", "busybox", "sleep", "60", check=True)
    result = api.docker("start", "up")
    assert (result.returncode, result.stdout) == (0, "up\n")


def test_start_of_a_missing_command_prints_the_error_and_exits_1(api, run_cli) -> None:
    run_cli("create", *NONE, "--name", "bad", "busybox", "nosuch", check=True)
    result = api.docker("start", "bad")
    assert result.returncode == 1
    assert "Error response from daemon:" in result.stderr and "nosuch" in result.stderr
    assert "Error: failed to start containers: bad" in result.stderr


def test_wait_returns_the_exit_code_when_the_container_stops(api, run_cli) -> None:
    run_cli("run", "-d", *NONE, "--name", "waited", "busybox", "sh", "-c", "sleep 1; exit 9", check=True)
    began = time.monotonic()
    result = api.docker("wait", "waited")
    assert (result.returncode, result.stdout) == (0, "9\n")
    assert time.monotonic() - began >= 0.5
    assert api.docker("wait", "waited").stdout == "9\n"   # stopped already: at once


def test_wait_conditions_over_the_api(api, run_cli) -> None:
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    cid = run_cli("create", *NONE, "busybox", "sh", "-c", "exit 4", check=True).stdout.strip()
    assert client.wait(cid, condition="not-running") == {"Error": None, "StatusCode": 0}   # created: at once
    with pytest.raises(docker_py.errors.APIError) as bad:
        client.wait(cid, condition="sometime")
    assert bad.value.status_code == 400
    import threading

    results: dict[str, object] = {}

    def waiting(condition: str) -> None:
        results[condition] = client.wait(cid, condition=condition, timeout=60)

    threads = [threading.Thread(target=waiting, args=(c,)) for c in ("next-exit", "removed")]
    for t in threads:
        t.start()
    time.sleep(0.5)
    api.docker("start", cid)
    threads[0].join(30)
    assert results["next-exit"] == {"Error": None, "StatusCode": 4}
    assert "removed" not in results
    run_cli("rm", cid, check=True)
    threads[1].join(30)
    assert results["removed"] == {"Error": None, "StatusCode": 4}


def test_wait_of_a_missing_container_is_docker_s_error(api, docker) -> None:
    ours, theirs = api.docker("wait", "nosuchc"), docker.run("wait", "nosuchc")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)


def test_attach_over_a_raw_hijack_with_the_multiplexed_frames(api, run_cli) -> None:
    """What any client sees: 101 UPGRADED, then [stream,0,0,0,len] frames; closed at the exit. From
    API 1.42 the Content-Type names the framing (before, dockerd said raw-stream for both)."""
    run_cli("create", *NONE, "-i", "--name", "raw", "busybox", "sh", "-c", "read x; echo got-$x; echo e >&2",
            check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(b"POST /v1.42/containers/raw/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                 b"Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert api.docker("start", "raw").returncode == 0
    sock.sendall(b"hello\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    frames = []
    while data:
        kind, size = data[0], int.from_bytes(data[4:8], "big")
        frames.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    assert frames == [(1, b"got-hello\n"), (2, b"e\n")]


def test_detach_keys_end_the_attach_not_the_container(api, run_cli) -> None:
    run_cli("run", "-d", "-i", *NONE, "--name", "stay", "busybox", "cat", check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(b"POST /containers/stay/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,x HTTP/1.1\r\n"
                 b"Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    sock.sendall(b"echo\n")
    assert sock.recv(65536) == b"\x01\x00\x00\x00\x00\x00\x00\x05echo\n"
    sock.sendall(b"\x01x")
    assert sock.recv(65536) == b""   # closed by the service
    sock.close()
    assert status_of(run_cli, "stay") == "running"


def test_attach_without_upgrade_is_answered_200_and_hijacked_the_same(api, run_cli) -> None:
    """A client older than the Upgrade header: 200 OK, then the same raw stream."""
    run_cli("create", *NONE, "-t", "--name", "old", "busybox", "echo", "from-tty", check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(b"POST /containers/old/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n"
                 b"Content-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: application/vnd.docker.raw-stream" in head
    try:
        assert api.docker("start", "old", timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        raise AssertionError(f"docker start hung; the service's log:\n{api.logs()}") from None
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert data == b"from-tty\r\n"


def test_docker_py_attach_with_logs_replays_then_follows(api, run_cli) -> None:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=api.url, version="1.41")
    run_cli("run", *NONE, "--name", "replayed", "busybox", "sh", "-c", "echo earlier", check=True)
    container = client.containers.get("replayed")
    assert container.attach(stdout=True, stderr=True, logs=True, stream=False) == b"earlier\n"
    chunks = container.attach(stdout=True, stderr=True, logs=True, stream=True)
    assert client.api.start(container.id) is None   # attached (held) before the start
    assert b"".join(chunks) == b"earlier\nearlier\n"


def test_attach_websocket(api, run_cli) -> None:
    import asyncio

    import aiohttp

    run_cli("run", "-d", "-i", *NONE, "--name", "ws", "busybox", "sh", "-c", "read x; echo ws-$x", check=True)

    async def talk() -> bytes:
        connector = aiohttp.UnixConnector(path=str(api.socket))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.ws_connect("http://docker/v1.41/containers/ws/attach/ws?stream=1&stdin=1&stdout=1") as ws:
                await ws.send_bytes(b"x\n")
                out = b""
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        out += message.data
                    else:
                        break
                return out

    assert asyncio.run(asyncio.wait_for(talk(), 30)) == b"ws-x\n"


# ---------------------------------------------------------------- logs

@pytest.fixture
def logged(api, run_cli) -> str:
    run_cli("run", *NONE, "--name", "logged", "busybox", "sh", "-c",
            "echo one; echo two >&2; sleep 1.1; echo three", check=True)
    return "logged"


def test_logs_keeps_stdout_and_stderr_apart(api, logged) -> None:
    result = api.docker("logs", logged)
    assert (result.returncode, result.stdout, result.stderr) == (0, "one\nthree\n", "two\n")


def test_logs_tail(api, logged) -> None:
    result = api.docker("logs", "--tail", "2", logged)
    assert (result.stdout, result.stderr) == ("three\n", "two\n")
    assert api.docker("logs", "--tail", "0", logged).stdout == ""


def test_logs_timestamps_as_dockerd_writes_them(api, logged, run_cli) -> None:
    import re

    result = api.docker("logs", "-t", logged)
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "three"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", line.split(" ")[0]) for line in lines)


def test_logs_since_and_until(api, logged) -> None:
    stamps = [line.split(" ")[0] for line in api.docker("logs", "-t", logged).stdout.splitlines()]
    later = api.docker("logs", "--since", stamps[1], logged)
    assert (later.stdout, later.stderr) == ("three\n", "")
    earlier = api.docker("logs", "--until", stamps[0], logged)
    assert earlier.stdout == "one\n"


def test_logs_of_a_tty_container_are_raw(api, run_cli) -> None:
    run_cli("run", "-t", *NONE, "--name", "tl", "busybox", "echo", "tty-line", check=True)
    result = api.docker("logs", "tl", text=False)
    assert result.stdout == b"tty-line\r\n"


def test_logs_follow_ends_when_the_container_exits(api, run_cli) -> None:
    run_cli("run", "-d", *NONE, "--name", "lf", "busybox", "sh", "-c", "echo a; sleep 2; echo b", check=True)
    began = time.monotonic()
    result = api.docker("logs", "-f", "lf", timeout=60)
    assert (result.returncode, result.stdout) == (0, "a\nb\n")
    assert time.monotonic() - began >= 1.0


def test_logs_of_a_missing_container(api, docker) -> None:
    ours, theirs = api.docker("logs", "nosuchc"), docker.run("logs", "nosuchc")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)


# ---------------------------------------------------------------- resize

def test_resize_reaches_the_terminal(api, run_cli) -> None:
    import docker as docker_py

    run_cli("run", "-d", "-t", *NONE, "--name", "rs", "busybox", "sleep", "60", check=True)
    client = docker_py.APIClient(base_url=api.url, version="1.41")
    client.resize("rs", height=33, width=111)
    result = api.docker("exec", "rs", "sh", "-c", "stty size < /proc/1/fd/0")
    assert result.stdout == "33 111\n", result.stderr
    run_cli("create", *NONE, "--name", "rs2", "busybox", "true", check=True)
    with pytest.raises(docker_py.errors.APIError) as stopped:
        client.resize("rs2", height=10, width=10)
    assert stopped.value.status_code == 409


# ---------------------------------------------------------------- leaks

def _fds(pid: int) -> int:
    """The service's open descriptors but its workers' databases: each thread of the worker pool
    (32 at most) keeps its engine's sqlite files open, a bounded cost, not a leak."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        count += not os.path.basename(target).startswith("dockyard.db")
    return count


def _hang_up_mid_stream(api, path: str, upgrade: bool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    extra = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    sock.sendall(f"POST {path} HTTP/1.1\r\n".encode() if upgrade else f"GET {path} HTTP/1.1\r\n".encode())
    sock.sendall(b"Host: docker\r\n" + extra + b"Content-Length: 0\r\n\r\n")
    assert sock.recv(12).startswith(b"HTTP/1.1 ")
    return sock


def test_clients_that_hang_up_mid_stream_leave_no_fd(api, run_cli) -> None:
    run_cli("run", "-d", *NONE, "--name", "chatty", "busybox", "sh", "-c", "while :; do echo x; sleep 0.2; done",
            check=True)
    pid = api.process.pid

    def fifty_then_hang_up() -> None:
        socks = [_hang_up_mid_stream(api, "/v1.41/containers/chatty/attach?stream=1&stdout=1", True)
                 for _ in range(25)]
        socks += [_hang_up_mid_stream(api, "/v1.41/containers/chatty/logs?follow=1&stdout=1", False)
                  for _ in range(25)]
        time.sleep(0.5)
        assert _fds(pid) >= settled + 50
        for sock in socks:
            sock.close()

    def settle(limit: int) -> int:
        deadline = time.monotonic() + 20
        while _fds(pid) > limit and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        return _fds(pid)

    settled = before = _fds(pid)
    before_fds = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    for _ in range(2):
        fifty_then_hang_up()
    after = settle(before)
    from collections import Counter

    now = Counter(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    assert after <= before, f"left open: {dict(now - Counter(before_fds))}"
    threads = len(os.listdir(f"/proc/{pid}/task"))
    assert threads <= 40, threads
    # and the service still serves
    assert api.docker("logs", "--tail", "1", "chatty").stdout == "x\n"


def test_logs_follow_keeps_the_last_lines_of_a_container_removed_at_its_exit(api) -> None:
    """docker-py's run: logs(follow) opened, wait, remove, and only then the stream is read."""
    import threading

    import docker as docker_py

    client = docker_py.DockerClient(base_url=api.url, version="1.41")
    outputs: dict[int, bytes] = {}

    def one(i: int) -> None:
        outputs[i] = client.containers.run("busybox", ["echo", f"hello{i}"], remove=True, network_mode="none")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outputs == {i: f"hello{i}\n".encode() for i in range(8)}


def test_run_records_docker_s_events_in_docker_s_order(api, docker, run_cli) -> None:
    def actions(run, events) -> list[str]:
        since = f"{time.time() - 1:.3f}"
        assert run("run", *NONE, "--name", "evented", "busybox", "true").returncode == 0
        out = events("events", "--since", since, "--until", f"{time.time() + 1:.3f}", "--filter",
                     "container=evented", "--format", "{{.Action}}")
        return out.stdout.split()

    theirs = actions(docker.run, docker.run)
    docker.run("rm", "-f", "evented")
    ours = actions(api.docker, run_cli)
    assert ours == theirs == ["create", "attach", "start", "die"]


def test_stream_content_type_follows_the_api_version(api, run_cli) -> None:
    """dockerd 20.10 (API 1.41) answers raw-stream even for multiplexed frames; 1.42+ names them."""
    import http.client

    run_cli("run", *NONE, "--name", "said", "busybox", "echo", "hi", check=True)
    for version, expected in (("1.41", "application/vnd.docker.raw-stream"),
                              ("1.42", "application/vnd.docker.multiplexed-stream")):
        conn = http.client.HTTPConnection("docker")
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.connect(str(api.socket))
        try:
            conn.request("GET", f"/v{version}/containers/said/logs?stdout=1")
            response = conn.getresponse()
            body = response.read()
            assert response.getheader("Content-Type") == expected, version
            assert body == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"   # framed either way
        finally:
            conn.close()


def test_docker_py_reads_a_replay_sent_right_behind_the_head(api, run_cli) -> None:
    """docker-py reads the 101 head through a buffered reader and the stream from the raw socket
    under it: a log replay that arrived with the head was lost (3 of 25 attaches on a busy
    machine, before the service waited for the head to be read)."""
    import docker as docker_py

    client = docker_py.DockerClient(base_url=api.url, version="1.41")
    lost = []
    for i in range(15):
        name = f"replay{i}"
        run_cli("run", *NONE, "--name", name, "busybox", "cat", "/proc/uptime", check=True)
        container = client.containers.get(name)
        replayed = container.attach(stdout=True, stderr=True, logs=True, stream=False)
        if replayed != container.logs() or not replayed:
            lost.append((name, replayed))
    assert not lost
