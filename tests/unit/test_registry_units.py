"""Names, errors, settings, manifest validation and token verification."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.oci import mediatypes as mt
from dockyard.registry import manifests, names, settings
from dockyard.registry.auth import encode_jwt, load_public_keys, verify_jwt
from dockyard.registry.errors import CODES, APIError

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", ["a", "library/nginx", "a0/b-c/d__e", "x.y_z", "a--b", "a/b/c/d/e"])
def test_valid_names(name: str) -> None:
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a..b", "a/B", "a" * 256, "a:b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(APIError) as e:
        names.check_name(name)
    assert e.value.code == "NAME_INVALID" and e.value.status == 400


def test_references() -> None:
    assert names.check_reference("v1.0_rc-1") == ("v1.0_rc-1", None)
    assert names.check_reference(D) == (None, D)
    assert names.check_reference("sha512:" + "b" * 128)[1]
    for bad in ("sha256:short", "md5:" + "a" * 32, "-tag", "x" * 129, ".INVALID_MANIFEST_NAME"):
        with pytest.raises(APIError) as read:
            names.check_reference(bad)
        assert (read.value.code, read.value.status) == ("MANIFEST_UNKNOWN", 404)  # names nothing
        with pytest.raises(APIError) as write:
            names.check_reference(bad, writing=True)
        assert write.value.status == 400  # a PUT with a bad name is the client's error


def test_error_body_and_table() -> None:
    spec = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
            "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}
    assert spec <= set(CODES)
    body = json.loads(APIError("BLOB_UNKNOWN", {"digest": D}).body())
    assert body == {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": {"digest": D}}]}


def test_settings_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("addr: 0.0.0.0:6000\nroot: /from/file\nread_only: true\nauth: {htpasswd: /file/htpasswd}\n")
    s = settings.load(str(cfg), env={})
    assert (s.addr, str(s.root), s.read_only, s.htpasswd) == ("0.0.0.0:6000", "/from/file", True, "/file/htpasswd")
    s = settings.load(str(cfg), env={"DOCKYARD_REGISTRY_ROOT": "/from/env", "DOCKYARD_REGISTRY_READ_ONLY": "0"})
    assert (str(s.root), s.read_only) == ("/from/env", False)
    s = settings.load(str(cfg), env={"DOCKYARD_REGISTRY_ROOT": "/from/env"}, root="/from/flag", read_only=None)
    assert str(s.root) == "/from/flag" and s.read_only is True
    assert settings.load(None, env={"DOCKYARD_REGISTRY_CONFIG": str(cfg)}).addr == "0.0.0.0:6000"


@pytest.mark.parametrize("text,msg", [("bogus: 1\n", "unknown settings"), ("addr: nope\n", "HOST:PORT"),
                                      ("storage: s3\n", "bucket"), ("tls: {cert: c}\n", "both"),
                                      ("[1, 2]\n", "mapping")])
def test_settings_errors(tmp_path: Path, text: str, msg: str) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    with pytest.raises(DockyardError, match=msg):
        settings.load(str(cfg), env={})


def _manifest(**extra) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 2},
           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": 3}], **extra}
    return json.dumps(doc).encode()


def test_manifest_parse() -> None:
    p = manifests.parse(_manifest(), mt.OCI_MANIFEST)
    assert p.blobs == [D, "sha256:" + "b" * 64] and p.artifact_type == mt.OCI_CONFIG
    p = manifests.parse(_manifest(subject={"mediaType": mt.OCI_MANIFEST, "digest": D, "size": 1},
                                  artifactType="x/y"), None)
    assert p.subject == D and p.artifact_type == "x/y"
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                        "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": D, "size": 1}]}).encode()
    assert manifests.parse(index, mt.OCI_INDEX).manifests == [D]


@pytest.mark.parametrize("body,ctype", [
    (b"nope", mt.OCI_MANIFEST),
    (b"[]", mt.OCI_MANIFEST),
    (json.dumps({"schemaVersion": 1, "mediaType": mt.OCI_MANIFEST}).encode(), mt.OCI_MANIFEST),
    (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), "text/plain"),
    (_manifest(), mt.DOCKER_MANIFEST),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {"digest": D}}).encode(), None),
])
def test_manifest_invalid(body: bytes, ctype: str | None) -> None:
    with pytest.raises(APIError) as e:
        manifests.parse(body, ctype)
    assert e.value.code == "MANIFEST_INVALID"


def test_jwt_roundtrip_and_tamper() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key, alg in ((rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
                     (rsa.generate_private_key(public_exponent=65537, key_size=2048), "PS384"),
                     (ec.generate_private_key(ec.SECP256R1()), "ES256"),
                     (ec.generate_private_key(ec.SECP384R1()), "ES384")):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys = load_public_keys(pem)
        token = encode_jwt({"iss": "me", "exp": time.time() + 60}, key, alg)
        assert verify_jwt(token, keys)["iss"] == "me"
        head, body, sig = token.split(".")
        with pytest.raises(ValueError):
            verify_jwt(f"{head}.{body}x.{sig}", keys)
    with pytest.raises(ValueError):
        verify_jwt("not-a-token", keys)
