"""distribution's REGISTRY_* variables (those of Docker's ``registry:2`` image) configure our registry."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.registry import settings
from dockyard.registry.settings import TokenSettings
from dockyard.testing.client import Client
from dockyard.testing.registry import free_port
from dockyard.testing.servers import http_status, terminate


def test_listen_and_tls() -> None:
    s = settings.load(None, env={"REGISTRY_HTTP_ADDR": ":5000", "REGISTRY_HTTP_TLS_CERTIFICATE": "/c.pem",
                                 "REGISTRY_HTTP_TLS_KEY": "/k.pem"})
    assert s.host_port == ("0.0.0.0", 5000)  # distribution's ":5000" means every address
    assert (s.tls_cert, s.tls_key) == ("/c.pem", "/k.pem")
    assert settings.load(None, env={"REGISTRY_HTTP_ADDR": "127.0.0.1:6000"}).host_port == ("127.0.0.1", 6000)


def test_filesystem_delete_auth_and_access_log() -> None:
    s = settings.load(None, env={"REGISTRY_STORAGE": "filesystem",
                                 "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/var/lib/registry",
                                 "REGISTRY_STORAGE_DELETE_ENABLED": "false",
                                 "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd",
                                 "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
                                 "REGISTRY_LOG_ACCESSLOG_DISABLED": "true"})
    assert (s.storage, s.root, s.delete) == ("filesystem", Path("/var/lib/registry"), False)
    assert (s.htpasswd, s.realm, s.access_log) == ("/auth/htpasswd", "Registry Realm", False)
    assert s.ignored_env == []
    assert settings.load(None, env={"REGISTRY_STORAGE_DELETE": '{"enabled": false}'}).delete is False


@pytest.mark.parametrize("value,expected", [('{"enabled": true}', True), ("{enabled: true}", True),
                                            ('{"enabled": false}', False), ("{}", False),
                                            ("true", True), ("false", False)])
def test_read_only_map_or_boolean(value: str, expected: bool) -> None:
    assert settings.load(None, env={"REGISTRY_STORAGE_MAINTENANCE_READONLY": value}).read_only is expected


def test_read_only_enabled_beats_the_map() -> None:
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"}
    assert settings.load(None, env=env).read_only is True
    env["REGISTRY_STORAGE_MAINTENANCE_READONLY"] = '{"enabled": false}'
    assert settings.load(None, env=env).read_only is True


@pytest.mark.parametrize("env,msg", [
    ({"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled"}, "invalid REGISTRY_STORAGE_MAINTENANCE_READONLY"),
    ({"REGISTRY_STORAGE_MAINTENANCE_READONLY": "maybe"}, "invalid boolean"),
    ({"REGISTRY_STORAGE": "azure"}, "filesystem and s3"),
    ({"REGISTRY_STORAGE": "s3"}, "REGISTRY_STORAGE_S3_BUCKET"),
])
def test_errors(env: dict[str, str], msg: str) -> None:
    with pytest.raises(DockyardError, match=msg):
        settings.load(None, env=env)


@pytest.mark.parametrize("driver", ["s3", "s3aws"])
def test_s3(driver: str) -> None:
    s = settings.load(None, env={"REGISTRY_STORAGE": driver, "REGISTRY_STORAGE_S3_BUCKET": "b",
                                 "REGISTRY_STORAGE_S3_REGION": "eu-west-1",
                                 "REGISTRY_STORAGE_S3_REGIONENDPOINT": "http://minio:9000",
                                 "REGISTRY_STORAGE_S3_ACCESSKEY": "ak", "REGISTRY_STORAGE_S3_SECRETKEY": "sk",
                                 "REGISTRY_STORAGE_S3_ROOTDIRECTORY": "/registry"})
    assert s.storage == "s3"
    assert s.s3 == {"bucket": "b", "region": "eu-west-1", "endpoint": "http://minio:9000", "access_key": "ak",
                    "secret_key": "sk", "prefix": "/registry"}
    # DOCKYARD_REGISTRY_S3_* is the more specific source
    s = settings.load(None, env={"REGISTRY_STORAGE": driver, "REGISTRY_STORAGE_S3_BUCKET": "b",
                                 "DOCKYARD_REGISTRY_S3_BUCKET": "mine"})
    assert s.s3["bucket"] == "mine"


TOKEN = {"REGISTRY_AUTH_TOKEN_REALM": "https://auth/token", "REGISTRY_AUTH_TOKEN_SERVICE": "registry",
         "REGISTRY_AUTH_TOKEN_ISSUER": "auth", "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": "/certs/bundle.pem"}


def test_token() -> None:
    assert settings.load(None, env=TOKEN).token == TokenSettings("https://auth/token", "registry", "auth",
                                                                 "/certs/bundle.pem")


@pytest.mark.parametrize("missing", sorted(TOKEN))
def test_token_missing_variable(missing: str) -> None:
    env = {k: v for k, v in TOKEN.items() if k != missing}
    with pytest.raises(DockyardError, match=missing):
        settings.load(None, env=env)


def test_token_completes_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("auth: {token: {realm: r, service: s, issuer: i, certificate: /file.pem}}\n")
    s = settings.load(str(cfg), env={"REGISTRY_AUTH_TOKEN_ISSUER": "env-issuer"})
    assert s.token == TokenSettings("r", "s", "env-issuer", "/file.pem")


def test_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("addr: 0.0.0.0:6000\nroot: /from/file\ndelete: false\n")
    env = {"REGISTRY_HTTP_ADDR": ":7000", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/distribution"}
    s = settings.load(str(cfg), env=env)
    assert (s.addr, s.root, s.delete) == (":7000", Path("/from/distribution"), False)  # REGISTRY_* beats the file
    env["DOCKYARD_REGISTRY_ADDR"] = "127.0.0.1:8000"
    s = settings.load(str(cfg), env=env)
    assert (s.addr, s.root) == ("127.0.0.1:8000", Path("/from/distribution"))  # DOCKYARD_REGISTRY_* beats REGISTRY_*
    s = settings.load(str(cfg), env=env, addr="127.0.0.1:9000", root="/from/flag")
    assert (s.addr, s.root) == ("127.0.0.1:9000", Path("/from/flag"))  # flags beat both


def test_ignored_variables() -> None:
    env = {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "inmemory", "REGISTRY_HTTP_SECRET": "s",
           "REGISTRY_LOG_LEVEL": "debug", "REGISTRY_LOG_FORMATTER": "json", "REGISTRY_VERSION": "0.1",
           "REGISTRY_AUTH_FILE": "/run/user/1000/containers/auth.json",  # podman's, not distribution's
           "REGISTRY_SERVICE_HOST": "10.0.0.1", "REGISTRY_PORT": "tcp://10.0.0.1:5000",  # Kubernetes links
           "REGISTRY_PORT_5000_TCP_ADDR": "10.0.0.1",
           "REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS": "[nosniff]", "REGISTRY_NOTIFICATIONS_ENDPOINTS": "[]",
           "REGISTRY_CONFIGURATION_PATH": "/etc/docker/registry/config.yml", "REGISTRY_STORAGE_S3_SECURE": "false",
           "REGISTRY_HTTP_ADDR": ":5000", "OTHER": "x"}
    assert settings.load(None, env=env).ignored_env == [
        "REGISTRY_CONFIGURATION_PATH", "REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS",
        "REGISTRY_NOTIFICATIONS_ENDPOINTS", "REGISTRY_STORAGE_S3_SECURE"]


def test_server_reads_distribution_env(tmp_path: Path) -> None:
    """``python -m dockyard.registry`` configured only the way ``registry:2`` is."""
    port, storage = free_port(), tmp_path / "storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DOCKYARD_REGISTRY_"))}
    env.update(REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}", REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=str(storage),
               REGISTRY_FOO="1", REGISTRY_HTTP_SECRET="s")
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry"], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while http_status(port, "/v2/") != 200:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "registry did not answer GET /v2/"
            time.sleep(0.05)
        blob = b"distribution env"
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        c = Client(f"http://127.0.0.1:{port}")
        assert c.request("POST", f"/v2/app/blobs/uploads/?digest={digest}", blob).status == 201
        assert c.request("GET", f"/v2/app/blobs/{digest}").body == blob
    finally:
        terminate(proc)
    assert any(p.is_file() and p.read_bytes() == blob for p in storage.rglob("*")), "blob not under the storage dir"
    warnings = [line for line in (tmp_path / "stderr").read_text().splitlines() if "ignoring distribution" in line]
    assert warnings == ["registry: ignoring distribution settings this server does not support: REGISTRY_FOO"]
