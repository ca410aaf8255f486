"""Pulls from registries that misbehave: each failure is one clear line, a non-zero exit,
nothing committed (no image, no tag, no partial blob), and the next pull works.

The misbehaving registry is the FakeRegistry of test_pull_push.py with a ``hook`` that
answers in its place (500s, bodies cut short, wrong bytes, huge manifests...).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from dockyard import config, reference
from dockyard.distribution import auth, client as client_module
from dockyard.engine import Engine
from dockyard.errors import DockyardError
from dockyard.oci import mediatypes as mt
from tests.integration.test_pull_push import FakeImage, FakeRegistry, assert_clean_ingest, build_image, sha

pytestmark = pytest.mark.integration

REPO = "bad/input"


@pytest.fixture
def fast_retries(monkeypatch):
    """In-process pulls retry without waiting (the CLI tests keep the real backoff)."""
    monkeypatch.setattr(client_module, "RETRY_DELAYS", (0, 0, 0, 0))


@pytest.fixture
def image() -> FakeImage:
    # The second layer is incompressible: 1 MiB on the wire, so a body can be cut in the middle.
    return build_image([{"etc/hostname": b"bad-input\n"}, {"data.bin": os.urandom(1 << 20)}])


@pytest.fixture
def registry(image, dockyard_root):
    auth.TOKENS.clear()
    with FakeRegistry() as reg:
        reg.add_image(REPO, "latest", image)
        yield reg


def pull(reg: FakeRegistry, name: str | None = None, **kwargs):
    from dockyard.distribution.pull import pull as do_pull

    e = Engine(config.load())
    try:
        return do_pull(e, reference.parse(name or f"{reg.address}/{REPO}"), **kwargs)
    finally:
        e.close()


def assert_nothing_committed(root: Path, image: FakeImage | None = None) -> None:
    e = Engine(config.load())
    try:
        assert e.image_store.list() == []
    finally:
        e.close()
    assert_clean_ingest(root)
    if image is not None:
        for digest in image.layer_digests[1:]:
            assert not (root / "content" / "blobs" / "sha256" / digest[7:]).exists()


def assert_pull_works(reg: FakeRegistry, image: FakeImage) -> None:
    reg.hook = None
    pulled = pull(reg)
    assert pulled.manifest_digest == image.digest


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


def raw_response(status: int = 200, body: bytes = b"", headers: dict | None = None):
    from aiohttp import web

    return web.Response(status=status, body=body, headers=headers)


async def cut_body(request, data: bytes, keep: int, length: int | None = None):
    """Announce ``length`` (default: all of ``data``), send ``keep`` bytes, drop the connection."""
    from aiohttp import web

    resp = web.StreamResponse(headers={"Content-Length": str(length if length is not None else len(data))})
    await resp.prepare(request)
    await resp.write(data[:keep])
    request.transport.close()
    return resp


# ---- server errors -----------------------------------------------------------------------------

def test_manifest_500_cli(registry, image, run_cli, dockyard_root):
    async def fail(request, kind, info):
        return raw_response(500, b"oops") if kind == "manifests" else None

    registry.hook = fail
    result = run_cli("pull", f"{registry.address}/{REPO}")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"Error: registry {registry.address} answered 500 Internal Server Error "
                                     f"for manifest latest")
    assert registry.count("GET", "/manifests/latest") == 5  # Docker's five attempts
    assert_nothing_committed(dockyard_root)
    registry.hook = None
    assert run_cli("pull", f"{registry.address}/{REPO}").returncode == 0


def test_blob_500_gives_up_after_retries(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]

    async def fail(request, kind, info):
        if kind == "blobs" and info["ref"] == layer:
            return raw_response(503, json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "try later"}]}).encode())
        return None

    registry.hook = fail
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert one_line(err.value) == (f"registry {registry.address} answered 503 Service Unavailable for blob {layer}: "
                                   "unavailable: try later")
    assert registry.count("GET", f"/blobs/{layer}") == 5
    assert_nothing_committed(dockyard_root, image)
    assert_pull_works(registry, image)


def test_transient_errors_are_retried(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]
    failures = {"n": 0}

    async def flaky(request, kind, info):
        if kind == "blobs" and info["ref"] == layer and failures["n"] < 2:
            failures["n"] += 1
            return raw_response(502)
        return None

    registry.hook = flaky
    messages = []

    class Collect:
        def message(self, text): messages.append(text)
        def status(self, id, text): messages.append(f"{id}: {text}")
        def transfer(self, *a): pass
        def close(self): pass

    pulled = pull(registry, progress=Collect())
    assert pulled.manifest_digest == image.digest
    assert f"{layer[7:19]}: Retrying in 1 second" in messages
    assert f"{layer[7:19]}: Pull complete" in messages
    assert registry.count("GET", f"/blobs/{layer}") == 3


# ---- bodies cut short, wrong or too long -------------------------------------------------------

def test_connection_closed_mid_blob_cli(registry, image, run_cli, dockyard_root):
    layer = image.layer_digests[1]
    data = image.blobs[layer]

    async def close(request, kind, info):
        if kind == "blobs" and info["ref"] == layer and request.method == "GET":
            return await cut_body(request, data, len(data) // 3)
        return None

    registry.hook = close
    result = run_cli("pull", f"{registry.address}/{REPO}")
    assert result.returncode == 1
    stderr = result.stderr.strip()
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"Error: download of {layer} failed")
    assert_nothing_committed(dockyard_root, image)
    registry.hook = None
    assert run_cli("pull", f"{registry.address}/{REPO}").returncode == 0


def test_resume_with_range_after_cut(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]
    data = image.blobs[layer]
    cut = {"done": False}

    async def close_once(request, kind, info):
        if kind == "blobs" and info["ref"] == layer and not cut["done"]:
            cut["done"] = True
            return await cut_body(request, data, 100_000)
        return None

    registry.hook = close_once
    assert pull(registry).manifest_digest == image.digest
    gets = [h for m, p, h in registry.requests if m == "GET" and p.endswith(f"/blobs/{layer}")]
    assert len(gets) == 2
    assert "Range" not in gets[0]
    resumed_from = int(gets[1]["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= 100_000
    assert_clean_ingest(dockyard_root)


def test_truncated_blob(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]
    short = image.blobs[layer][:-10]

    async def truncate(request, kind, info):
        if kind == "blobs" and info["ref"] == layer:
            return raw_response(200, short)  # a complete response, but 10 bytes short of the descriptor
        return None

    registry.hook = truncate
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert one_line(err.value) == (f"download of {layer} was truncated: got {len(short)} of {len(short) + 10} bytes")
    assert_nothing_committed(dockyard_root, image)
    assert_pull_works(registry, image)


def test_wrong_digest(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]
    data = image.blobs[layer]
    evil = bytes([data[0] ^ 1]) + data[1:]

    async def tamper(request, kind, info):
        if kind == "blobs" and info["ref"] == layer:
            return raw_response(200, evil)
        return None

    registry.hook = tamper
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert one_line(err.value) == f"digest mismatch: expected {layer}, got {sha(evil)}"
    assert registry.count("GET", f"/blobs/{layer}") == 1  # not worth retrying
    assert_nothing_committed(dockyard_root, image)
    assert_pull_works(registry, image)


def test_blob_longer_than_descriptor(registry, image, fast_retries, dockyard_root):
    layer = image.layer_digests[1]

    async def pad(request, kind, info):
        if kind == "blobs" and info["ref"] == layer:
            return raw_response(200, image.blobs[layer] + b"extra")
        return None

    registry.hook = pad
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert "larger than the announced" in one_line(err.value)
    assert_nothing_committed(dockyard_root, image)
    assert_pull_works(registry, image)


# ---- manifests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_manifest_over_4_mib(chunked, registry, image, dockyard_root):
    huge = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}, "layers": [],
                       "annotations": {"pad": "x" * (5 << 20)}}).encode()

    async def big(request, kind, info):
        from aiohttp import web

        if kind != "manifests":
            return None
        if not chunked:
            return raw_response(200, huge, {"Content-Type": mt.OCI_MANIFEST})
        resp = web.StreamResponse(headers={"Content-Type": mt.OCI_MANIFEST})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(huge), 1 << 20):
            await resp.write(huge[i:i + (1 << 20)])
        await resp.write_eof()
        return resp

    registry.hook = big
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert "over the 4194304 byte limit" in one_line(err.value)
    assert_nothing_committed(dockyard_root)
    assert_pull_works(registry, image)


def test_unknown_manifest_media_type(registry, image, run_cli, dockyard_root):
    odd = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example.widget+json"}).encode()

    async def weird(request, kind, info):
        if kind == "manifests":
            return raw_response(200, odd, {"Content-Type": "application/vnd.example.widget+json"})
        return None

    registry.hook = weird
    result = run_cli("pull", f"{registry.address}/{REPO}")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"Error: unsupported manifest media type application/vnd.example.widget+json "
                                     f"for {registry.address}/{REPO}:latest")
    assert_nothing_committed(dockyard_root)


def test_schema1_manifest(registry, image, dockyard_root):
    schema1 = json.dumps({"schemaVersion": 1, "name": REPO, "tag": "latest", "architecture": "amd64",
                          "fsLayers": [], "history": [], "signatures": []}).encode()

    async def old(request, kind, info):
        if kind == "manifests":
            return raw_response(200, schema1, {"Content-Type": mt.DOCKER_MANIFEST_V1_SIGNED})
        return None

    registry.hook = old
    with pytest.raises(DockyardError) as err:
        pull(registry)
    text = one_line(err.value)
    assert text.startswith(f"unsupported manifest media type {mt.DOCKER_MANIFEST_V1_SIGNED}")
    assert "schema1" in text
    assert_nothing_committed(dockyard_root)


def test_unsupported_layer_media_type(registry, image, dockyard_root):
    manifest = json.loads(image.manifest)
    manifest["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.tar+lz4"
    odd = FakeImage(json.dumps(manifest).encode(), mt.OCI_MANIFEST, image.blobs, image.config_digest,
                    image.layer_digests)
    registry.add_image(REPO, "lz4", odd)
    with pytest.raises(DockyardError) as err:
        pull(registry, f"{registry.address}/{REPO}:lz4")
    assert one_line(err.value) == "unsupported layer media type 'application/vnd.example.layer.v1.tar+lz4'"
    assert registry.count("GET", "/blobs/") == 0  # refused before fetching anything
    assert_nothing_committed(dockyard_root)


def test_manifest_digest_mismatch(registry, image, dockyard_root):
    async def lie(request, kind, info):
        if kind == "manifests":
            return raw_response(200, image.manifest, {"Content-Type": mt.OCI_MANIFEST,
                                                      "Docker-Content-Digest": "sha256:" + "0" * 64})
        return None

    registry.hook = lie
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert "manifest verification failed" in one_line(err.value)
    assert_nothing_committed(dockyard_root)

    # By digest: the bytes must hash to the digest asked for, whatever the headers say.
    other = build_image([{"other": b"other"}])

    async def swap(request, kind, info):
        if kind == "manifests":
            return raw_response(200, other.manifest, {"Content-Type": mt.OCI_MANIFEST})
        return None

    registry.hook = swap
    with pytest.raises(DockyardError) as err:
        pull(registry, f"{registry.address}/{REPO}@{image.digest}")
    assert one_line(err.value) == (f"manifest verification failed for {registry.address}/{REPO}@{image.digest}: "
                                   f"expected {image.digest}, got {other.digest}")
    assert_nothing_committed(dockyard_root)
    assert_pull_works(registry, image)


def test_invalid_json_manifest(registry, dockyard_root):
    async def garbage(request, kind, info):
        if kind == "manifests":
            return raw_response(200, b"{not json", {"Content-Type": mt.OCI_MANIFEST})
        return None

    registry.hook = garbage
    with pytest.raises(DockyardError) as err:
        pull(registry)
    assert one_line(err.value) == f"manifest for {registry.address}/{REPO}:latest is not valid JSON"
    assert_nothing_committed(dockyard_root)


# ---- registry error documents ------------------------------------------------------------------

def test_manifest_unknown_and_repository_unknown(registry, run_cli, dockyard_root):
    missing_tag = run_cli("pull", f"{registry.address}/{REPO}:nope")
    assert missing_tag.returncode == 1
    assert missing_tag.stderr.strip() == (f"Error: manifest for {registry.address}/{REPO}:nope not found: "
                                          "manifest unknown: manifest unknown")
    missing_repo = run_cli("pull", f"{registry.address}/no/such")
    assert missing_repo.returncode == 1
    assert missing_repo.stderr.strip() == (
        f"Error: pull access denied for {registry.address}/no/such, repository does not exist or may require "
        "'docker login': name unknown: repository name not known to registry")
    assert_nothing_committed(dockyard_root)


def test_connection_refused(run_cli, dockyard_root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the pull: nothing listens there
    result = run_cli("pull", f"127.0.0.1:{port}/x/y")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: cannot reach registry 127.0.0.1:{port}: connection refused"
    assert_nothing_committed(dockyard_root)


# ---- TLS mistakes ------------------------------------------------------------------------------

def test_https_client_against_http_registry(registry, dockyard_root):
    from dockyard.distribution.client import RegistryClient

    settings = config.load()

    async def ping():
        # A loopback registry is plain HTTP by default; force HTTPS to see what a
        # non-loopback registry serving plain HTTP looks like.
        async with RegistryClient(settings, registry.address, scheme="https") as c:
            await c.ping()

    with pytest.raises(DockyardError) as err:
        asyncio.run(ping())
    text = one_line(err.value)
    assert "server gave HTTP response to HTTPS client" in text
    assert f'add it to "insecure-registries" in {settings.settings_file} or DOCKYARD_INSECURE_REGISTRIES' in text


@pytest.fixture
def self_signed_https(tmp_path):
    """An HTTPS server on loopback with a self-signed certificate (made by openssl)."""
    from aiohttp import web

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        async def v2(request):
            return web.json_response({})

        app = web.Application()
        app.router.add_get("/v2/", v2)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_tls_verification_error(self_signed_https, dockyard_root):
    from dockyard.distribution.client import RegistryClient

    settings = config.load()

    async def ping(**kwargs):
        async with RegistryClient(settings, self_signed_https, **kwargs) as c:
            await c.ping()
            await c.ping()  # and the requests after the first one

    with pytest.raises(DockyardError) as err:
        asyncio.run(ping(scheme="https"))
    text = one_line(err.value)
    assert "failed to verify certificate" in text
    assert 'add it to "insecure-registries"' in text
    # Listed as insecure, a TLS-only registry is used without verification, as Docker does.
    asyncio.run(ping())


def test_layer_content_not_matching_its_diff_id(registry, image, fast_retries, dockyard_root):
    # The blob is what the manifest says, but it unpacks to something else than the config's diff ID.
    config = json.loads(image.blobs[image.config_digest])
    config["rootfs"]["diff_ids"][1] = "sha256:" + "e" * 64
    raw_config = json.dumps(config).encode()
    manifest = json.loads(image.manifest)
    manifest["config"] = {**manifest["config"], "digest": sha(raw_config), "size": len(raw_config)}
    lying = FakeImage(json.dumps(manifest).encode(), mt.OCI_MANIFEST, {**image.blobs, sha(raw_config): raw_config},
                      sha(raw_config), image.layer_digests)
    registry.add_image(REPO, "lying", lying)
    with pytest.raises(DockyardError) as err:
        pull(registry, f"{registry.address}/{REPO}:lying")
    assert "sha256:" + "e" * 64 in one_line(err.value)
    assert_nothing_committed(dockyard_root)
    assert_pull_works(registry, image)
