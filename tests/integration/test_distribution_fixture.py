"""The CNCF distribution fixture: it starts, takes pushes from skopeo (with and without
basic auth), serves them back, and stops without leaving a process or a file behind."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
from pathlib import Path

import pytest

from dockyard.oci import mediatypes as mt
from dockyard.testing.images import ImageSpec, SkopeoError, push_oci_layout, skopeo, write_oci_layout
from dockyard.testing.registry import DistributionRegistry, bcrypt_htpasswd_line
from tests.conftest import require


def get(registry: DistributionRegistry, path: str, auth: str | None = None) -> tuple[int, bytes]:
    import base64

    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def inspect(ref: str, *extra: str) -> dict:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, f"docker://{ref}").stdout)


def raw_manifest(ref: str, *extra: str) -> bytes:
    return skopeo("inspect", "--raw", "--tls-verify=false", *extra, f"docker://{ref}").stdout.encode()


def test_fixture_answers_v2(distribution: DistributionRegistry) -> None:
    host, _, port = distribution.address.partition(":")
    assert host == "127.0.0.1" and int(port) == distribution.port
    status, body = get(distribution, "/v2/")
    assert status == 200 and json.loads(body) == {}


def test_push_and_inspect(distribution: DistributionRegistry, busybox_layout: Path, repo_name: str) -> None:
    require("skopeo")
    ref = f"{distribution.address}/{repo_name}:latest"
    push_oci_layout(busybox_layout, ref)
    index = json.loads((busybox_layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads((busybox_layout / "blobs" / "sha256" / entry["digest"][7:]).read_bytes())

    info = inspect(ref)
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert info["Digest"] == entry["digest"]  # pushed byte for byte
    assert hashlib.sha256(raw_manifest(ref)).hexdigest() == entry["digest"][7:]
    status, body = get(distribution, f"/v2/{repo_name}/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["latest"]
    assert (distribution.storage / "docker" / "registry" / "v2" / "blobs" / "sha256").is_dir()


@pytest.mark.parametrize("flavour", ["oci", "docker"])
def test_push_multi_platform(distribution: DistributionRegistry, busybox_tar: Path, tmp_path: Path,
                             repo_name: str, flavour: str) -> None:
    require("skopeo")
    layout = tmp_path / "oci"
    digest = write_oci_layout(layout, [ImageSpec([busybox_tar], platform="linux/amd64", flavour=flavour),
                                       ImageSpec([busybox_tar], platform="linux/arm64/v8", flavour=flavour)],
                              tag="multi")
    ref = f"{distribution.address}/{repo_name}:multi"
    push_oci_layout(layout, ref, tag="multi")
    raw = raw_manifest(ref)
    assert hashlib.sha256(raw).hexdigest() == digest[7:]
    expected = mt.OCI_INDEX if flavour == "oci" else mt.DOCKER_MANIFEST_LIST
    assert json.loads(raw)["mediaType"] == expected
    arm = json.loads(skopeo("--override-arch", "arm64", "inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert arm["Architecture"] == "arm64"


def test_push_with_basic_auth(distribution_auth: DistributionRegistry, busybox_layout: Path,
                              repo_name: str) -> None:
    require("skopeo")
    assert distribution_auth.htpasswd is not None and distribution_auth.creds is not None
    ref = f"{distribution_auth.address}/{repo_name}:latest"
    assert get(distribution_auth, "/v2/")[0] == 401
    assert get(distribution_auth, "/v2/", auth=distribution_auth.creds)[0] == 200
    assert get(distribution_auth, "/v2/", auth=distribution_auth.htpasswd[0] + ":wrong")[0] == 401

    with pytest.raises(SkopeoError, match="(?i)unauthorized|authentication required"):
        push_oci_layout(busybox_layout, ref)
    with pytest.raises(SkopeoError, match="(?i)unauthorized|authentication required"):
        push_oci_layout(busybox_layout, ref, creds=(distribution_auth.htpasswd[0], "wrong"))

    push_oci_layout(busybox_layout, ref, creds=distribution_auth.htpasswd)
    info = inspect(ref, "--creds", distribution_auth.creds)
    assert len(info["Layers"]) == 1 and info["Layers"][0].startswith("sha256:")
    with pytest.raises(SkopeoError):
        inspect(ref)


def test_stop_leaves_nothing(busybox_layout: Path) -> None:
    require("docker-registry", "skopeo")
    registry = DistributionRegistry(htpasswd=("u", "p"))
    with registry:
        assert registry.proc is not None
        pid, workdir, port = registry.proc.pid, registry.dir, registry.port
        push_oci_layout(busybox_layout, f"{registry.address}/a/b:c", creds=("u", "p"))
        assert workdir is not None and any(workdir.rglob("data"))
    assert not Path(f"/proc/{pid}").exists()  # terminated and reaped
    assert workdir is not None and not workdir.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    registry.stop()  # idempotent


def test_stop_on_exception_and_restart() -> None:
    require("docker-registry")
    registry = DistributionRegistry()
    with pytest.raises(RuntimeError, match="boom"):
        with registry:
            pid = registry.proc.pid  # type: ignore[union-attr]
            raise RuntimeError("boom")
    assert not Path(f"/proc/{pid}").exists() and registry.dir is None
    with registry:  # a stopped registry starts again, fresh and empty
        assert get(registry, "/v2/_catalog")[1] == b'{"repositories":[]}\n'


def test_fixed_port_in_use_fails_clearly() -> None:
    require("docker-registry")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        registry = DistributionRegistry(port=blocker.getsockname()[1])
        with pytest.raises(RuntimeError, match="did not start"):
            registry.start()
    assert registry.proc is None and registry.dir is None


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="docker-registry"):
        DistributionRegistry(binary=str(tmp_path / "nope")).start()


def test_htpasswd_line_is_bcrypt() -> None:
    user, _, hashed = bcrypt_htpasswd_line("alice", "pw").partition(":")
    assert user == "alice" and hashed.startswith("$2") and len(hashed) == 60

