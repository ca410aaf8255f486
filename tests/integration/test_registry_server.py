"""The server as an operator sees it: flags/env/config, read-only and no-delete modes,
health, one access-log line per request, and errors without tracebacks."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time

import pytest

from dockyard.testing.client import Client
from dockyard.testing.registry import DockyardRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_read_only() -> None:
    with DockyardRegistry({"read_only": True}) as reg:
        c = Client(reg.url)
        assert c.request("GET", "/v2/").status == 200
        for method, path in (("POST", "/v2/x/blobs/uploads/"), ("PUT", "/v2/x/manifests/t"),
                             ("DELETE", f"/v2/x/blobs/{sha(b'')}")):
            r = c.request(method, path, b"")
            assert (r.status, r.error_code) == (405, "UNSUPPORTED"), (method, r)


def test_delete_disabled() -> None:
    with DockyardRegistry({"delete": False}) as reg:
        c = Client(reg.url)
        d = sha(b"keep")
        assert c.request("POST", f"/v2/x/blobs/uploads/?digest={d}", b"keep").status == 201
        r = c.request("DELETE", f"/v2/x/blobs/{d}")
        assert (r.status, r.error_code) == (405, "UNSUPPORTED")
        # cancelling an upload is not a delete of content
        loc = c.request("POST", "/v2/x/blobs/uploads/").headers["location"]
        assert c.request("DELETE", loc).status == 204


def test_health_and_access_log() -> None:
    with DockyardRegistry() as reg:
        c = Client(reg.url)
        assert c.request("GET", "/healthz").json() == {"status": "ok"}
        assert c.request("GET", "/v2/_health").status == 200
        c.request("GET", "/v2/nothing/here/tags/list")
        c.request("GET", "/v2/_catalog")
        for pattern in (r'"GET /v2/nothing/here/tags/list" 404 \d+ [\d.]+ms', r'"GET /v2/_catalog" 200 \d+ [\d.]+ms'):
            assert wait_for_line(reg, pattern), reg.logs()
        assert "Traceback" not in reg.logs()


def wait_for_line(reg: DockyardRegistry, pattern: str, timeout: float = 5.0) -> bool:
    """The server writes a request's log line after the response is out, so the client can
    read the log before the line is there: poll briefly."""
    deadline = time.monotonic() + timeout
    while True:
        if any(re.search(pattern, line) for line in reg.logs().splitlines()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_unknown_route_is_json_404() -> None:
    with DockyardRegistry() as reg:
        r = Client(reg.url).request("GET", "/v2/x/unknown-thing")
        assert r.status == 404 and r.error_code


def test_env_configuration(tmp_path) -> None:
    from dockyard.testing.servers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_REGISTRY_")}
    env.update({"DOCKYARD_REGISTRY_ADDR": f"127.0.0.1:{port}", "DOCKYARD_REGISTRY_ROOT": str(tmp_path / "root"),
                "DOCKYARD_REGISTRY_READ_ONLY": "true"})
    proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"listening on 127.0.0.1:{port}" in line and "read-only" in line
        assert (tmp_path / "root" / "index.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("args,message", [
    (["--addr", "nonsense"], "invalid listen address"),
    (["--config", "/nonexistent/config.yml"], "cannot read registry config"),
    (["--tls-cert", "/nonexistent/cert.pem"], "both a certificate and a key"),
    (["--htpasswd", "/nonexistent/htpasswd", "--root", "/tmp/dockyard-test-never"], "cannot read htpasswd"),
])
def test_cli_errors_without_traceback(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_REGISTRY_")}
    r = subprocess.run([sys.executable, "-m", "dockyard.registry", "serve", *args], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and message in r.stderr and "Traceback" not in r.stderr


def test_port_in_use_is_a_message() -> None:
    with DockyardRegistry() as reg:
        r = subprocess.run([sys.executable, "-m", "dockyard.registry", "serve", "--addr", reg.address, "--root",
                            str(reg.root.parent / "other")], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
