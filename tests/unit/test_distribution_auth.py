"""Unit tests of the registry client's pure parts: challenges, scopes, tokens, credentials,
registry errors, manifest classification and platform selection. No server, no root."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from dockyard.distribution import auth, credentials
from dockyard.distribution.client import parse_errors, with_retries, RegistryHTTPError, TransferError
from dockyard.distribution.pull import classify_manifest, select_manifest, check_image_manifest
from dockyard.errors import DockyardError, ManifestError
from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import Platform

pytestmark = pytest.mark.unit


# ---- WWW-Authenticate ----------------------------------------------------------------------

def test_parse_docker_hub_challenge():
    [c] = auth.parse_challenges([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'])
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/nginx:pull"}


def test_parse_unquoted_spaces_and_escapes():
    [c] = auth.parse_challenges(['bearer  realm = http://127.0.0.1:5/token , service=test,'
                                 ' error="insufficient_scope", note="a \\"quoted\\", b"'])
    assert c.params["realm"] == "http://127.0.0.1:5/token"
    assert c.params["service"] == "test"
    assert c.params["error"] == "insufficient_scope"
    assert c.params["note"] == 'a "quoted", b'


def test_parse_several_schemes_and_headers():
    cs = auth.parse_challenges(['Basic realm="Registry Realm"', 'Bearer realm="http://x/t",scope="a:b:pull,push"'])
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[0].params == {"realm": "Registry Realm"}
    assert cs[1].params["scope"] == "a:b:pull,push"  # the comma inside quotes stays
    two = auth.parse_challenges(['Basic realm="r", Bearer realm="http://t"'])
    assert [c.scheme for c in two] == ["basic", "bearer"]


def test_parse_garbage_does_not_crash():
    assert auth.parse_challenges([""]) == []
    assert auth.parse_challenges(['Negotiate'])[0].scheme == "negotiate"
    auth.parse_challenges(['Bearer realm="unterminated'])


# ---- scopes and the token cache ----------------------------------------------------------

def test_merge_scopes_unions_actions_and_sorts():
    assert auth.merge_scopes(["repository:b:pull", "repository:a:push", "repository:a:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")
    assert auth.merge_scopes(["repository:127.0.0.1:5000/x:pull"]) == ("repository:127.0.0.1:5000/x:pull",)
    assert auth.repository_scope("library/nginx") == "repository:library/nginx:pull"


def test_token_cache_expires(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    cache = auth.TokenCache()
    key = ("r", "", ("repository:a:pull",))
    cache.put(key, "tok", lifetime=60)
    assert cache.get(key) == "tok"
    assert cache.get(("r", "", ("repository:b:pull",))) is None
    assert cache.get(("other", "", ("repository:a:pull",))) is None
    clock[0] += 60 - auth.EXPIRY_MARGIN + 0.1
    assert cache.get(key) is None


def test_basic_header():
    h = auth.basic_header(credentials.Credentials("alice", "pa:ss"))
    assert base64.b64decode(h.split()[1]) == b"alice:pa:ss"


# ---- credentials in config.json ----------------------------------------------------------

@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def test_store_get_erase_roundtrip(docker_config):
    assert credentials.get("127.0.0.1:5000") is None
    key = credentials.store("127.0.0.1:5000", credentials.Credentials("alice", "s3cret"))
    assert key == "127.0.0.1:5000"
    data = json.loads(docker_config.read_text())
    assert base64.b64decode(data["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:s3cret"
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert credentials.get("127.0.0.1:5000") == credentials.Credentials("alice", "s3cret")
    assert credentials.get("http://127.0.0.1:5000/v2/") == credentials.Credentials("alice", "s3cret")
    assert credentials.get("127.0.0.1:5001") is None
    assert credentials.erase("127.0.0.1:5000") is True
    assert credentials.erase("127.0.0.1:5000") is False
    assert credentials.get("127.0.0.1:5000") is None
    assert [p.name for p in docker_config.parent.iterdir()] == ["config.json"]  # no temp file left


def test_docker_hub_key(docker_config):
    assert credentials.server_key("") == credentials.INDEX_SERVER
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"):
        assert credentials.server_key(name) == "https://index.docker.io/v1/"
    credentials.store("docker.io", credentials.Credentials("bob", "pw"))
    data = json.loads(docker_config.read_text())
    assert list(data["auths"]) == ["https://index.docker.io/v1/"]
    assert credentials.get("registry-1.docker.io") == credentials.Credentials("bob", "pw")


def test_keeps_other_keys_and_reads_docker_written_entries(docker_config):
    docker_config.parent.mkdir(parents=True)
    docker_config.write_text(json.dumps({
        "auths": {"https://reg.example.com/v1/": {"auth": base64.b64encode(b"u:p").decode()},
                  "other:5000": {"auth": base64.b64encode(b"x:y").decode()}},
        "psFormat": "table {{.ID}}",
        "credHelpers": {"gcr.io": "gcloud"},
    }))
    assert credentials.get("reg.example.com") == credentials.Credentials("u", "p")
    credentials.store("reg.example.com", credentials.Credentials("u2", "p2"))
    data = json.loads(docker_config.read_text())
    assert data["psFormat"] == "table {{.ID}}" and data["credHelpers"] == {"gcr.io": "gcloud"}
    assert set(data["auths"]) == {"reg.example.com", "other:5000"}  # the old spelling was replaced
    assert credentials.get("other:5000") == credentials.Credentials("x", "y")


def test_bad_config_file_is_a_clear_error(docker_config):
    docker_config.parent.mkdir(parents=True)
    docker_config.write_text("{not json")
    with pytest.raises(DockyardError, match="not valid JSON"):
        credentials.get("x")
    docker_config.write_text(json.dumps({"auths": {"x": {"auth": base64.b64encode(b"nocolon").decode()}}}))
    with pytest.raises(DockyardError, match="user:password"):
        credentials.get("x")


# ---- registry errors and retries ---------------------------------------------------------

def test_parse_errors_formats_like_docker():
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}}]})
    assert parse_errors(body.encode()) == (["MANIFEST_UNKNOWN"], "manifest unknown: manifest unknown")
    body = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"},
                                  {"code": "UNAUTHORIZED"}]})
    codes, msg = parse_errors(body.encode())
    assert codes == ["DENIED", "UNAUTHORIZED"]
    assert msg == "denied: requested access to the resource is denied; unauthorized"
    assert parse_errors(b"<html>oops</html>") == ([], "")
    assert parse_errors(b'{"details":"incorrect username or password"}') == ([], "incorrect username or password")


def test_http_error_transience():
    assert RegistryHTTPError("x", 500).transient
    assert RegistryHTTPError("x", 429).transient
    assert not RegistryHTTPError("x", 404).transient
    assert not RegistryHTTPError("x", 401).transient


async def test_with_retries_gives_up_after_five_attempts():
    calls = []

    async def flaky():
        calls.append(1)
        raise TransferError("connection reset")

    with pytest.raises(TransferError):
        await with_retries(flaky, delays=[0, 0, 0, 0])
    assert len(calls) == 5


async def test_with_retries_does_not_retry_permanent_errors():
    calls = []

    async def denied():
        calls.append(1)
        raise RegistryHTTPError("denied", 403)

    with pytest.raises(RegistryHTTPError):
        await with_retries(denied, delays=[0, 0, 0, 0])
    assert len(calls) == 1


async def test_with_retries_recovers():
    calls = []

    async def second_time():
        calls.append(1)
        if len(calls) < 3:
            raise RegistryHTTPError("boom", 503)
        return "ok"

    assert await with_retries(second_time, delays=[0, 0, 0, 0]) == "ok"


# ---- manifests -------------------------------------------------------------------------

def test_classify_known_types():
    m = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": {}, "layers": []}
    assert classify_manifest(json.dumps(m).encode(), mt.DOCKER_MANIFEST, "x")[1] == mt.DOCKER_MANIFEST
    oci = {"schemaVersion": 2, "config": {}, "layers": []}  # OCI may omit mediaType
    assert classify_manifest(json.dumps(oci).encode(), mt.OCI_MANIFEST, "x")[1] == mt.OCI_MANIFEST
    assert classify_manifest(json.dumps(oci).encode(), "application/json", "x")[1] == mt.OCI_MANIFEST
    idx = {"schemaVersion": 2, "manifests": []}
    assert classify_manifest(json.dumps(idx).encode(), "", "x")[1] == mt.OCI_INDEX


def test_classify_refuses_schema1_and_unknown():
    s1 = {"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}
    with pytest.raises(ManifestError, match="unsupported manifest media type .*schema1"):
        classify_manifest(json.dumps(s1).encode(), mt.DOCKER_MANIFEST_V1_SIGNED, "x")
    with pytest.raises(ManifestError, match="schema1"):
        classify_manifest(json.dumps(s1).encode(), "application/json", "x")
    other = {"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}
    with pytest.raises(ManifestError, match="unsupported manifest media type application/vnd.example.thing"):
        classify_manifest(json.dumps(other).encode(), "application/vnd.example.thing+json", "x")
    with pytest.raises(ManifestError):
        classify_manifest(b"\x00\x01binary", "application/octet-stream", "x")


def test_check_image_manifest_refuses_bad_descriptors():
    good_config = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "a" * 64, "size": 10}
    layer = {"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": 5}
    check_image_manifest({"config": good_config, "layers": [layer]})
    with pytest.raises(ManifestError, match="unsupported layer media type"):
        check_image_manifest({"config": good_config, "layers": [{**layer, "mediaType": "application/x-tar"}]})
    with pytest.raises(ManifestError, match="invalid layer descriptor"):
        check_image_manifest({"config": good_config, "layers": [{**layer, "digest": "sha256:../../etc"}]})
    with pytest.raises(ManifestError, match="size"):
        check_image_manifest({"config": good_config, "layers": [{**layer, "size": -1}]})
    with pytest.raises(ManifestError, match="config media type"):
        check_image_manifest({"config": {**good_config, "mediaType": "text/plain"}, "layers": []})


def _entry(arch, variant=None, os_="linux", media_type=mt.OCI_MANIFEST, n=0):
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    return {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": 1, "platform": p}


def test_select_manifest_by_platform():
    index = {"manifests": [_entry("amd64", n=1), _entry("arm64", "v8", n=2), _entry("s390x", n=3),
                           _entry("unknown", os_="unknown", n=4)]}
    assert select_manifest(index, Platform("linux", "amd64"))["digest"].endswith("1")
    assert select_manifest(index, Platform("linux", "arm64"))["digest"].endswith("2")
    assert select_manifest(index, Platform("linux", "arm64", "v8"))["digest"].endswith("2")
    assert select_manifest(index, Platform("linux", "s390x"))["digest"].endswith("3")
    with pytest.raises(ManifestError, match="no matching manifest for linux/riscv64 in the manifest list entries"):
        select_manifest(index, Platform("linux", "riscv64"))


def test_select_manifest_prefers_exact_variant():
    index = {"manifests": [_entry("arm", "v6", n=1), _entry("arm", "v7", n=2), _entry("arm", n=3)]}
    assert select_manifest(index, Platform("linux", "arm", "v7"))["digest"].endswith("2")
    assert select_manifest(index, Platform("linux", "arm"))["digest"].endswith("3")


def test_cli_module_does_not_import_aiohttp():
    import subprocess
    import sys

    code = ("import sys; import dockyard.cli.distribution; "
            "print('aiohttp' in sys.modules, 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard", "pull", "--help"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    assert "aiohttp" not in imported and "rich" not in imported
