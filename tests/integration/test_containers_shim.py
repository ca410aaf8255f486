"""The shim survives whatever a client sends it, and bad signals never reach it.

Before: ``kill -s 99`` exited 0, the shim died of EINVAL, the container was recorded as
exited while its process ran on unsupervised. Now the CLI refuses the signal as Docker
does, and every malformed request the attach protocol allows only gets its sender
dropped: the container stays supervised (the shim lives, ``stop`` works and records the
exit)."""

from __future__ import annotations

import json
import os
import socket
import struct
import time

import pytest

from dockyard.containers import frames
from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, alive, dockyard_env, dy, wait_for)
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - mounts crun's hugetlb fix


def _record(dy: Dockyard, name: str):  # noqa: ANN202
    engine = dy.engine()
    try:
        return engine.containers.get(name), engine.containers.socket_path(engine.containers.get(name).id)
    finally:
        engine.close()


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def _control(message: object) -> bytes:
    return _frame(frames.CONTROL, json.dumps(message).encode())


HELLO = b'{"stdin": true, "stdout": true, "stderr": true}\n'

# Every kind of malformed request the protocol allows: a bad hello, bad frames, bad control
# messages, signals no process can be sent, and clients that vanish half-way.
MALFORMED = {
    "not json": b"not json at all\n",
    "invalid utf-8": b"\xff\xfe\xfd\n",
    "hello is a list": b"[1, 2, 3]\n",
    "hello is a string": b'"hello"\n',
    "hello is null": b"null\n",
    "signal 99": b'{"signal": 99}\n',
    "signal 32": b'{"signal": 32}\n',
    "negative signal": b'{"signal": -9}\n',
    "signal as a name": b'{"signal": "KILL"}\n',
    "signal as a float": b'{"signal": 9.5}\n',
    "huge signal": b'{"signal": 1180591620717411303424}\n',
    "signal as a list": b'{"signal": [9]}\n',
    "signal true": b'{"signal": true}\n',
    "endless hello": b"{" + b" " * (1 << 20),
    "unknown stream": HELLO + _frame(9, b"x"),
    "frame too large": HELLO + struct.pack(">BxxxI", frames.STDIN, 0xFFFFFFFF) + b"x" * 100,
    "header garbage": HELLO + b"\x00\xff\xff\xff\x00\x00\x00\x01x",
    "control not json": HELLO + _frame(frames.CONTROL, b"{nope"),
    "control a list": HELLO + _control([1, 2]),
    "control signal 99": HELLO + _control({"signal": 99}),
    "control signal string": HELLO + _control({"signal": "TERM"}),
    "resize a string": HELLO + _control({"resize": "80x24"}),
    "resize one number": HELLO + _control({"resize": [80]}),
    "resize negative": HELLO + _control({"resize": [-1, 80]}),
    "resize enormous": HELLO + _control({"resize": [10 ** 9, 10 ** 9]}),
    "resize floats": HELLO + _control({"resize": [24.5, 80.5]}),
    "removed a string": HELLO + _control({"removed": "yes"}),
    "half a frame then gone": HELLO + _frame(frames.STDIN, b"abcdef")[:7],
    "nothing then gone": b"",
}


@pytest.mark.parametrize("runtime", ["pyrunc", "crun"])
def test_shim_survives_every_malformed_request(dy: Dockyard, runtime: str, cgroup_parent: str) -> None:  # noqa: F811
    dy.runtime = runtime
    dy.cli("run", "-d", "-i", "--name", "victim", "busybox", "sh", "-c", "trap 'exit 7' TERM; cat > /dev/null & "
           "while :; do sleep 0.1; done", check=True)
    record, path = _record(dy, "victim")
    for name, request in MALFORMED.items():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(path)
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):  # until the shim drops us (or the request was harmless)
                pass
        except OSError:
            pass  # dropped while we were still sending
        finally:
            sock.close()
        time.sleep(0.02)
        assert alive(record.shim_pid), f"the shim died of: {name}"
        assert alive(record.pid), f"the container died of: {name}"
    assert dy.cli("inspect", "-f", "{{.State.Status}}", "victim").stdout == "running\n"
    # Still supervised: a stop reaches the container and its exit is recorded.
    dy.cli("stop", "-t", "5", "victim", check=True)
    state = json.loads(dy.cli("inspect", "victim", check=True).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 7), state  # its TERM trap ran
    assert wait_for(lambda: not alive(record.shim_pid), 5)


def test_kill_refuses_signals_docker_refuses(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "target", "busybox", "sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.1; done",
           check=True)
    record, _ = _record(dy, "target")
    for sig, message in (("99", "Cannot kill container: target: The linux daemon does not support signal 99"),
                         ("0", "Invalid signal: 0"), ("FOO", "Invalid signal: FOO"),
                         ("SIGBOGUS", "Invalid signal: SIGBOGUS"),
                         ("32", "Cannot kill container: target: The linux daemon does not support signal 32")):
        result = dy.cli("kill", "-s", sig, "target")
        assert result.returncode == 1 and result.stderr == f"Error: {message}\n", (sig, result)
    assert alive(record.shim_pid) and alive(record.pid)
    assert dy.cli("start", "target").returncode == 0  # no "already exists": it never stopped
    # A valid signal the init has no handler for: PID 1 of its namespace ignores it.
    assert dy.cli("kill", "-s", "RTMIN+2", "target", check=True).stdout == "target\n"
    time.sleep(0.2)
    assert dy.cli("inspect", "-f", "{{.State.Status}}", "target").stdout == "running\n"
    dy.cli("kill", "-s", "USR1", "target", check=True)
    assert wait_for(lambda: dy.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "target").stdout
                    == "exited 3\n")


def test_stop_signal_is_checked_when_the_container_is_made(dy: Dockyard) -> None:
    result = dy.cli("run", "-d", "--stop-signal", "NOPE", "busybox", "sleep", "1")
    assert result.returncode == 125 and "Invalid signal: NOPE" in result.stderr
    assert dy.cli("ps", "-aq").stdout == ""
    stopped = dy.cli("stop", "-s", "99", "nothing-here")
    assert stopped.returncode == 1


def test_no_network_is_silently_replaced(dy: Dockyard) -> None:
    """An unknown network is an error, not a container quietly given another one."""
    result = dy.cli("run", "--rm", "--network", "mynet", "busybox", "true")
    assert (result.returncode, result.stderr) == (125, "Error: network mynet not found\n"), result
    assert dy.cli("ps", "-aq").stdout == ""
    bridged = dy.cli("run", "--rm", "--network", "bridge", "busybox", "cat", "/proc/net/dev", check=True).stdout
    assert sorted(line.split(":")[0].strip() for line in bridged.splitlines()[2:]) == ["eth0", "lo"]
    # The modes that need no driver still work: its own loopback-only namespace, or the host's.
    own = dy.cli("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev", check=True).stdout
    assert [line.split(":")[0].strip() for line in own.splitlines()[2:]] == ["lo"]
    host = dy.cli("run", "--rm", "--network", "host", "busybox", "hostname", check=True).stdout
    assert host == os.uname().nodename + "\n"
