"""The service itself: listeners, socket permissions, version negotiation, errors, idle exit."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def request(sock_path: Path, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(sock_path))
    head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    sock.sendall(head + body)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    header_text, _, payload = data.partition(b"\r\n\r\n")
    lines = header_text.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, payload


def test_ping_answers_with_the_api_version_docker_clients_negotiate(api) -> None:
    status, headers, body = request(api.socket, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.41" and headers["ostype"] == "linux"
    status, headers, body = request(api.socket, "HEAD", "/_ping")
    assert status == 200 and body == b"" and headers["api-version"] == "1.41"


def test_the_socket_is_not_world_accessible(api) -> None:
    mode = os.stat(api.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert os.stat(api.socket).st_uid == 0


def test_docker_version_shows_dockyard_as_the_server(api) -> None:
    result = api.docker("version", "--format", "{{json .Server}}")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)
    assert server["ApiVersion"] == "1.41" and server["Platform"]["Name"] == "Dockyard"
    assert server["Components"][0]["Name"] == "Engine"


def test_docker_info_counts_what_the_cli_made(api, run_cli) -> None:
    run_cli("create", "--name", "made-by-cli", "busybox", "true", check=True)
    result = api.docker("info", "--format", "{{.Containers}} {{.ContainersStopped}} {{.Images}} {{.Driver}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "1", "overlay2"]


def test_versioned_and_unversioned_paths_and_docker_error_bodies(api) -> None:
    for path in ("/version", "/v1.41/version", "/v1.24/version"):
        status, headers, body = request(api.socket, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json", path
    status, headers, body = request(api.socket, "GET", "/v1.99/version")
    assert status == 400 and b"is too new" in body
    status, headers, body = request(api.socket, "GET", "/v1.41/nonsense")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "page not found"}


def test_tcp_on_a_public_address_without_tls_verification_is_refused(dockyard_root: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "dockyard", "system", "service", "tcp://0.0.0.0:23750"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "without TLS client verification" in result.stderr and "Traceback" not in result.stderr


def test_a_socket_in_use_is_not_stolen(api) -> None:
    result = subprocess.run([sys.executable, "-m", "dockyard", "system", "service", api.url],
                            capture_output=True, text=True, timeout=30, env=api.env)
    assert result.returncode != 0 and "in use" in result.stderr
    assert request(api.socket, "GET", "/_ping")[0] == 200


def test_the_service_exits_after_its_idle_time(dockyard_root: Path, tmp_path: Path) -> None:
    sock = Path("/tmp") / f"dy-idle-{os.getpid()}.sock"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "dockyard", "system", "service", "--time", "2",
                                f"unix://{sock}"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert request(sock, "GET", "/_ping")[0] == 200
        assert process.wait(20) == 0, process.stderr.read()
        assert time.monotonic() - started >= 2
        assert not sock.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
