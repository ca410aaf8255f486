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


def _pki(base: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    files: dict[str, Path] = {}

    def write_key(name: str, key: ec.EllipticCurvePrivateKey) -> None:
        files[name] = base / f"{name}.pem"
        files[name].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))

    def write_cert(name: str, cert: x509.Certificate) -> None:
        files[name] = base / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write_cert("ca", ca)
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, who)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if who == "server":
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        write_cert(f"{who}-cert", builder.sign(ca_key, hashes.SHA256()))
        write_key(f"{who}-key", key)
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_with_tls_verifies_client_certificates(dockyard_root: Path, tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    port = _free_port()
    # all interfaces: allowed because clients must show a certificate the CA signed
    process = subprocess.Popen([sys.executable, "-m", "dockyard", "system", "service", "--time", "0", "--tlsverify",
                                "--tlscacert", str(pki["ca"]), "--tlscert", str(pki["server-cert"]),
                                "--tlskey", str(pki["server-key"]), f"tcp://0.0.0.0:{port}"],
                               stderr=subprocess.PIPE, text=True)
    docker = ["/usr/bin/docker", "-H", f"tcp://127.0.0.1:{port}"]
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    env.pop("DOCKER_HOST", None)
    try:
        with_cert = [*docker, "--tlsverify", "--tlscacert", str(pki["ca"]), "--tlscert", str(pki["client-cert"]),
                     "--tlskey", str(pki["client-key"]), "version", "--format", "{{.Server.Platform.Name}}"]
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(with_cert, capture_output=True, text=True, env=env, timeout=30)
            if result.returncode == 0 or time.monotonic() > deadline or process.poll() is not None:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Dockyard"
        # TLS without a client certificate: refused in the handshake
        no_cert = subprocess.run([*docker, "--tls", "--tlscacert", str(pki["ca"]), "version"],
                                 capture_output=True, text=True, env=env, timeout=30)
        assert no_cert.returncode != 0 and "Dockyard" not in no_cert.stdout
        # plain HTTP to a TLS port: no answer from the engine
        plain = subprocess.run([*docker, "version"], capture_output=True, text=True, env=env, timeout=30)
        assert plain.returncode != 0 and "Dockyard" not in plain.stdout
    finally:
        process.terminate()
        process.wait(15)


def test_systemd_socket_activation_serves_the_passed_socket(dockyard_root: Path) -> None:
    """fd://: what systemd does, done by hand: a bound socket at fd 3, LISTEN_FDS=1, LISTEN_PID."""
    path = Path("/tmp") / f"dy-fd-{os.getpid()}.sock"
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)

    # LISTEN_PID must name the service itself: set in the child after fork, kept across exec
    code = ("import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); "
            "os.execv(sys.executable, [sys.executable, '-m', 'dockyard', 'system', 'service', '--time', '0', 'fd://'])")
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "LISTEN_FDS": "1"},
                               preexec_fn=lambda: os.dup2(listener.fileno(), 3), close_fds=False,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _, body = request(path, "GET", "/_ping")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and body == b"OK", process.stderr.read() if process.poll() is not None else ""
    finally:
        process.terminate()
        process.wait(15)
        listener.close()
        path.unlink(missing_ok=True)
