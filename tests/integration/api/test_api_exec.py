"""Exec through the API with the docker CLI 20.10: exit codes, -i, -t under a terminal, -d, -u,
-w, -e; the exec's inspect; its events; side by side with dockerd where the words matter."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.api.test_api_streams import PtyProcess

pytestmark = pytest.mark.integration

NONE = ("--network", "none")


@pytest.fixture
def box(api, run_cli) -> str:
    run_cli("run", "-d", *NONE, "--name", "box", "busybox", "sleep", "300", check=True)
    return "box"


def test_exec_output_and_exit_code_pass_through(api, box) -> None:
    result = api.docker("exec", box, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (result.returncode, result.stdout, result.stderr) == (4, "out\n", "err\n"), api.logs()
    assert api.docker("exec", box, "true").returncode == 0


def test_exec_i_feeds_piped_stdin(api, box) -> None:
    result = api.docker("exec", "-i", box, "sh", "-c", "cat; echo end", input="piped\n")
    assert (result.returncode, result.stdout) == (0, "piped\nend\n")
    closed = api.docker("exec", box, "cat")   # no -i: the process's stdin is empty
    assert (closed.returncode, closed.stdout) == (0, "")


def test_exec_u_w_e(api, box) -> None:
    result = api.docker("exec", "-u", "nobody", "-w", "/tmp", "-e", "X=from-e", box, "sh", "-c",
                        "id -u; id -g; pwd; echo $X")
    assert (result.returncode, result.stdout) == (0, "65534\n65534\n/tmp\nfrom-e\n"), result.stderr
    numeric = api.docker("exec", "-u", "123:456", box, "id")
    assert numeric.stdout.startswith("uid=123 gid=456")


def test_exec_d_runs_in_the_background(api, box) -> None:
    began = time.monotonic()
    result = api.docker("exec", "-d", box, "sh", "-c", "sleep 1; echo done > /tmp/bg")
    assert (result.returncode, result.stdout) == (0, "")
    assert time.monotonic() - began < 1.0 + 5   # it did not wait for the sleep (allowing for load)
    assert api.docker("exec", box, "cat", "/tmp/bg").stdout == ""
    deadline = time.monotonic() + 20
    while api.docker("exec", box, "cat", "/tmp/bg").stdout != "done\n":
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_exec_it_under_a_terminal(api, box) -> None:
    term = PtyProcess(["/usr/bin/docker", "exec", "-it", box, "sh"], api.env, rows=40, cols=120)
    try:
        term.expect(b"# ")
        term.send(b"tty; stty size; echo $TERM\r")
        out = term.expect(b"xterm")
        assert b"/dev/pts/" in out and b"40 120" in out
        term.send(b"exit 6\r")
        assert term.wait() == 6, term.output
    finally:
        term.close()


def test_exec_of_a_missing_command_as_dockerd(api, box, docker) -> None:
    docker.run("run", "-d", *NONE, "--name", "box", "busybox", "sleep", "300")
    try:
        ours, theirs = api.docker("exec", box, "nosuch"), docker.run("exec", "box", "nosuch")
    finally:
        docker.run("rm", "-f", "box")
    assert ours.returncode == theirs.returncode == 126
    assert ours.stdout.startswith("OCI runtime exec failed: ") and "nosuch" in ours.stdout


def test_exec_in_a_stopped_or_missing_container(api, run_cli, docker) -> None:
    run_cli("create", *NONE, "--name", "idle", "busybox", "true", check=True)
    result = api.docker("exec", "idle", "true")
    assert result.returncode == 1 and "is not running" in result.stderr
    ours, theirs = api.docker("exec", "nosuchc", "true"), docker.run("exec", "nosuchc", "true")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)


def test_exec_inspect_and_start_twice(api, box) -> None:
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    exec_id = client.exec_create(box, ["sh", "-c", "exit 3"], user="root", workdir="/")["Id"]
    before = client.exec_inspect(exec_id)
    assert (before["Running"], before["ExitCode"], before["ID"]) == (False, None, exec_id)
    assert before["ProcessConfig"] == {"arguments": ["-c", "exit 3"], "entrypoint": "sh", "privileged": False,
                                       "tty": False, "user": "root"}
    assert before["ContainerID"].startswith(client.inspect_container(box)["Id"][:12])
    client.exec_start(exec_id)
    after = client.exec_inspect(exec_id)
    assert (after["Running"], after["ExitCode"]) == (False, 3)
    with pytest.raises(docker_py.errors.APIError) as again:
        client.exec_start(exec_id)
    assert again.value.status_code == 409
    with pytest.raises(docker_py.errors.NotFound):
        client.exec_inspect("nosuchexec")


def test_exec_run_from_docker_py(api, box) -> None:
    import docker as docker_py

    container = docker_py.DockerClient(base_url=api.url, version="1.41").containers.get(box)
    code, output = container.exec_run(["sh", "-c", "echo py; exit 2"])
    assert (code, output) == (2, b"py\n")
    code, (out, err) = container.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, out, err) == (0, b"o\n", b"e\n")


def test_exec_events_are_recorded(api, box, run_cli) -> None:
    since = str(time.time() - 1)
    api.docker("exec", box, "sh", "-c", "exit 5")
    result = run_cli("events", "--since", since, "--until", str(time.time() + 1), "--format", "{{json .}}")
    actions = [json.loads(line)["Action"] for line in result.stdout.splitlines()
               if json.loads(line)["Action"].startswith("exec_")]
    assert actions == ["exec_create: sh -c exit 5", "exec_start: sh -c exit 5", "exec_die"]


def test_exec_records_go_with_the_container(api, run_cli) -> None:
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    run_cli("run", "-d", *NONE, "--name", "short", "busybox", "sleep", "300", check=True)
    exec_id = client.exec_create("short", ["true"])["Id"]
    client.exec_start(exec_id)
    run_cli("rm", "-f", "short", check=True)
    import dockyard.api.execs as execs

    time.sleep(execs.PRUNE_EVERY + 0.5)
    run_cli("run", "-d", *NONE, "--name", "other", "busybox", "sleep", "300", check=True)
    client.exec_create("other", ["true"])   # a create looks for the records of removed containers
    with pytest.raises(docker_py.errors.NotFound):
        client.exec_inspect(exec_id)


def test_exec_passes_large_output_whole(api, box) -> None:
    result = api.docker("exec", box, "seq", "1", "50000")
    assert result.returncode == 0
    assert result.stdout == "".join(f"{n}\n" for n in range(1, 50001))


def test_a_detached_exec_is_running_until_it_ends(api, box) -> None:
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    exec_id = client.exec_create(box, ["sh", "-c", "sleep 3; exit 2"])["Id"]
    assert not client.exec_start(exec_id, detach=True)   # an empty answer
    assert client.exec_inspect(exec_id)["Running"] is True
    deadline = time.monotonic() + 30
    while client.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.exec_inspect(exec_id)["ExitCode"] == 2


def test_exec_it_detach_leaves_the_process_running(api, box) -> None:
    term = PtyProcess(["/usr/bin/docker", "exec", "-it", box, "sh", "-c", "echo ready; sleep 2; touch /tmp/lived"],
                      api.env)
    try:
        term.expect(b"ready")
        term.send(b"\x10\x11")   # ctrl-p ctrl-q: the docker CLI says so and exits 1, with dockerd too
        assert term.wait() == 1, term.output
        assert b"read escape sequence" in term.output
    finally:
        term.close()
    deadline = time.monotonic() + 30
    while api.docker("exec", box, "test", "-e", "/tmp/lived").returncode != 0:
        assert time.monotonic() < deadline, "the detached exec did not live on"
        time.sleep(0.3)


@pytest.mark.parametrize("started_first", [True, False], ids=["running", "hung-up-at-once"])
def test_exec_clients_that_hang_up_leave_no_fd_and_no_process(api, box, started_first: bool) -> None:
    """Twenty ``exec -i cat`` clients hang up: every cat sees its stdin end and exits 0, as with
    dockerd, also one whose client went before it started (its output pipe is still read:
    busybox cat's first splice to a pipe without a reader died of SIGPIPE, exit 141), and the
    service keeps no descriptor of theirs."""
    import socket

    from tests.integration.api.test_api_streams import _fds

    import docker as docker_py

    pid = api.process.pid
    before = _fds(pid)
    client = docker_py.APIClient(base_url=api.url, version="1.41")   # closed before the last count
    socks, ids = [], []
    for _ in range(20):
        exec_id = client.exec_create(box, ["cat"], stdin=True)["Id"]
        ids.append(exec_id)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(str(api.socket))
        body = b'{"Detach": false, "Tty": false}'
        sock.sendall(f"POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
                     f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        assert sock.recv(12) == b"HTTP/1.1 101"
        socks.append(sock)
    if started_first:
        time.sleep(0.5)
        assert all(client.exec_inspect(i)["Running"] for i in ids)
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 30
    while any(client.exec_inspect(i)["Running"] for i in ids):   # each cat saw its stdin end
        assert time.monotonic() < deadline, [client.exec_inspect(i)["Running"] for i in ids]
        time.sleep(0.3)
    assert [client.exec_inspect(i)["ExitCode"] for i in ids] == [0] * 20
    client.close()   # docker-py's kept-alive connections
    while _fds(pid) > before:
        assert time.monotonic() < deadline, (before, _fds(pid))
        time.sleep(0.3)
    assert "cat" not in api.docker("top", box).stdout.split()


def test_a_process_whose_client_hung_up_runs_on_and_its_output_is_dropped(api, box) -> None:
    """As with dockerd: the exec's process outlives its client; what it writes afterwards is
    read and dropped (no SIGPIPE), and its exit code is its own."""
    import socket

    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    exec_id = client.exec_create(box, ["sh", "-c", "sleep 1; seq 1 100000; exit 3"], stdin=True)["Id"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    body = b'{"Detach": false, "Tty": false}'
    sock.sendall(f"POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
                 f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert sock.recv(12) == b"HTTP/1.1 101"
    sock.close()
    time.sleep(0.3)
    assert client.exec_inspect(exec_id)["Running"] is True   # still in its sleep
    deadline = time.monotonic() + 30
    while client.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.exec_inspect(exec_id)["ExitCode"] == 3
    client.close()
