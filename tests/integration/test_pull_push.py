"""Pull and push against real registries on loopback.

- CNCF distribution (Debian's ``docker-registry``): interop with skopeo both ways, byte-identical
  manifests, multi-platform indexes, basic auth with login/logout, cross-repository mounts,
  concurrent pulls.
- ``FakeRegistry``, a small aiohttp registry defined here: Docker Hub's bearer token flow cannot be
  reached from this machine, so this server stands in for Hub and its token service (and for an
  S3 blob host on another loopback address). test_pull_bad_input.py makes it misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from dockyard import config, reference
from dockyard.distribution import auth, credentials
from dockyard.engine import Engine
from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import host as host_platform
from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout
from dockyard.testing.registry import DistributionRegistry

pytestmark = pytest.mark.integration


# =============================================================================================
# Test images built in memory
# =============================================================================================

def layer_tar(files: dict[str, bytes]) -> bytes:
    """A deterministic uncompressed tar of ``files`` (name -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1704067200
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


LAYER_TYPES = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "": mt.OCI_LAYER}


@dataclass
class FakeImage:
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes]
    config_digest: str
    layer_digests: list[str]

    @property
    def digest(self) -> str:
        return sha(self.manifest)


def build_image(layers: list[dict[str, bytes]], compression: str = "gzip", arch: str | None = None,
                layer_types: list[str] | None = None, urls: dict[int, list[str]] | None = None) -> FakeImage:
    """An OCI image of ``layers`` (each name -> content); ``urls`` makes layer i foreign."""
    platform = host_platform()
    blobs, descs, diff_ids = {}, [], []
    for i, files in enumerate(layers):
        tar = layer_tar(files)
        blob = compress(tar, compression)
        blobs[sha(blob)] = blob
        diff_ids.append(sha(tar))
        desc = {"mediaType": (layer_types or [LAYER_TYPES[compression]] * len(layers))[i],
                "digest": sha(blob), "size": len(blob)}
        if urls and i in urls:
            desc["urls"] = urls[i]
        descs.append(desc)
    cfg = json.dumps({"architecture": arch or platform.architecture, "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": diff_ids},
                      "config": {"Cmd": ["sh"]}}).encode()
    blobs[sha(cfg)] = cfg
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                           "layers": descs}, indent=2).encode()
    return FakeImage(manifest, mt.OCI_MANIFEST, blobs, sha(cfg), [d["digest"] for d in descs])


# =============================================================================================
# FakeRegistry: an in-process aiohttp registry with a bearer token service
# =============================================================================================

Hook = Callable[[Any, str, dict], Awaitable[Any]]
_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs)/(?P<rest>[^/]*)$")


class FakeRegistry:
    """A registry speaking enough of the distribution API for pull and push.

    ``auth``: None (anonymous), "bearer" (401 + token service at /token) or "basic".
    ``private``: repositories need credentials (``users``) to be read.
    ``hook``: an async callable (request, kind, info) -> response or None, consulted
    before the normal answer: that is how tests make the registry misbehave.
    ``redirect_blobs``: a base URL; blob GETs answer 307 to ``<base>/cdn/<digest>``.
    """

    def __init__(self, *, host: str = "127.0.0.1", auth: str | None = None, private: bool = False,
                 users: dict[str, str] | None = None, token_field: str = "token",
                 blobs: dict[str, bytes] | None = None) -> None:
        self.host = host
        self.port = 0
        self.auth = auth
        self.private = private
        self.users = users if users is not None else {"alice": "s3cret"}
        self.token_field = token_field
        self.blobs: dict[str, bytes] = blobs if blobs is not None else {}
        self.repo_blobs: dict[str, set[str]] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.tokens: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.token_requests: list[dict[str, Any]] = []
        self.hook: Hook | None = None
        self.redirect_blobs: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None

    # ---- content ----

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add_image(self, repo: str, tag: str | None, image: FakeImage) -> str:
        self.blobs.update(image.blobs)
        self.repo_blobs.setdefault(repo, set()).update(image.blobs)
        self.manifests[(repo, image.digest)] = (image.manifest, image.media_type)
        if tag:
            self.manifests[(repo, tag)] = (image.manifest, image.media_type)
        return image.digest

    def add_index(self, repo: str, tag: str, images: dict[str, FakeImage]) -> str:
        entries = []
        for arch, image in images.items():
            self.add_image(repo, None, image)
            entries.append({"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                            "platform": {"os": "linux", "architecture": arch}})
        index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()
        self.manifests[(repo, tag)] = (index, mt.OCI_INDEX)
        self.manifests[(repo, sha(index))] = (index, mt.OCI_INDEX)
        return sha(index)

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and re.search(pattern, p))

    # ---- lifecycle (a thread with its own event loop, so blocking pulls can run beside it) ----

    def start(self) -> "FakeRegistry":
        from aiohttp import web

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def setup() -> int:
            app = web.Application(client_max_size=1 << 30)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(setup(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "FakeRegistry":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- HTTP ----

    def _error(self, status: int, code: str, message: str, headers: dict | None = None):
        from aiohttp import web

        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
        return web.Response(status=status, text=body, content_type="application/json", headers=headers)

    def _challenge(self, scope: str | None):
        if self.auth == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake"'}
        value = f'Bearer realm="http://{self.address}/token",service="test"'
        if scope:
            value += f',scope="{scope}"'
        return {"WWW-Authenticate": value}

    def _user(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _allowed(self, request, repo: str, action: str) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth is None:
            return True
        if self.auth == "basic":
            return self._user(header) is not None
        if not header.startswith("Bearer "):
            return False
        granted = self.tokens.get(header[7:], set())
        return f"{repo}:{action}" in granted

    async def _token(self, request):
        from aiohttp import web

        header = request.headers.get("Authorization", "")
        self.token_requests.append({"query": request.query.copy(), "scopes": request.query.getall("scope", []),
                                    "authorization": header})
        user = self._user(header)
        if header and user is None:
            return web.json_response({"details": "incorrect username or password"}, status=401)
        granted = set()
        for scope in request.query.getall("scope", []):
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if kind != "repository":
                continue
            for action in actions.split(","):
                if action == "pull" and (user or not self.private):
                    granted.add(f"{repo}:pull")
                if action == "push" and user:
                    granted.add(f"{repo}:push")
        token = secrets.token_hex(8)
        self.tokens[token] = granted
        return web.json_response({self.token_field: token, "expires_in": 300})

    async def _handle(self, request):
        from aiohttp import web

        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if request.path == "/token":
            return await self._token(request)
        if request.path.startswith("/cdn/"):
            digest = request.path[5:]
            if self.hook is not None:
                answer = await self.hook(request, "cdn", {"digest": digest})
                if answer is not None:
                    return answer
            data = self.blobs.get(digest)
            return web.Response(body=data) if data is not None else web.Response(status=404)
        if request.path == "/v2/" or request.path == "/v2":
            if self.auth and not request.headers.get("Authorization"):
                return self._error(401, "UNAUTHORIZED", "authentication required", self._challenge(None))
            if self.auth == "basic" and self._user(request.headers["Authorization"]) is None:
                return self._error(401, "UNAUTHORIZED", "authentication required", self._challenge(None))
            if self.auth == "bearer" and request.headers["Authorization"][7:] not in self.tokens:
                return self._error(401, "UNAUTHORIZED", "authentication required", self._challenge(None))
            return web.json_response({})
        m = _PATH.match(request.path)
        if not m:
            return self._error(404, "NOT_FOUND", "not found")
        repo, kind, rest = m["name"], m["kind"], m["rest"]
        if self.hook is not None:
            answer = await self.hook(request, kind, {"repo": repo, "ref": rest})
            if answer is not None:
                return answer
        write = request.method in ("POST", "PUT", "PATCH", "DELETE")
        action = "push" if write else "pull"
        if not self._allowed(request, repo, action):
            scope = f"repository:{repo}:{'pull,push' if write else 'pull'}"
            status = 401
            return self._error(status, "UNAUTHORIZED", "authentication required", self._challenge(scope))
        if kind == "manifests":
            return await self._manifest(request, repo, rest)
        if kind == "blobs":
            return await self._blob(request, repo, rest)
        return await self._upload(request, repo, rest)

    async def _manifest(self, request, repo: str, ref: str):
        from aiohttp import web

        if request.method == "PUT":
            data = await request.read()
            digest = sha(data)
            media_type = request.headers.get("Content-Type", "")
            self.manifests[(repo, ref)] = self.manifests[(repo, digest)] = (data, media_type)
            return web.Response(status=201, headers={"Docker-Content-Digest": digest,
                                                     "Location": f"/v2/{repo}/manifests/{digest}"})
        found = self.manifests.get((repo, ref))
        if found is None:
            if not any(r == repo for r, _ in self.manifests):
                return self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        data, media_type = found
        headers = {"Docker-Content-Digest": sha(data), "Content-Type": media_type}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        return web.Response(body=data, headers=headers)

    async def _blob(self, request, repo: str, digest: str):
        from aiohttp import web

        data = self.blobs.get(digest)
        if data is None or digest not in self.repo_blobs.get(repo, set()):
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(len(data)), "Docker-Content-Digest": digest})
        if self.redirect_blobs:
            return web.Response(status=307, headers={"Location": f"{self.redirect_blobs}/cdn/{digest}?sig=a%2Fb"})
        start = 0
        rng = request.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            return web.Response(status=206, body=data[start:], headers={
                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", "Docker-Content-Digest": digest})
        return web.Response(body=data, headers={"Docker-Content-Digest": digest,
                                                "Content-Type": "application/octet-stream"})

    async def _upload(self, request, repo: str, upload_id: str):
        from aiohttp import web

        if request.method == "POST":
            mount, source = request.query.get("mount"), request.query.get("from")
            if mount and source:
                if mount in self.repo_blobs.get(source, set()) and self._allowed(request, source, "pull"):
                    self.repo_blobs.setdefault(repo, set()).add(mount)
                    return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{mount}",
                                                             "Docker-Content-Digest": mount})
            uid = secrets.token_hex(8)
            self.uploads[uid] = bytearray()
            return web.Response(status=202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}",
                                                     "Range": "0-0", "Docker-Upload-UUID": uid})
        buf = self.uploads.get(upload_id)
        if buf is None:
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        body = await request.read()
        if request.method == "PATCH":
            content_range = request.headers.get("Content-Range")
            if content_range and int(content_range.split("-")[0]) != len(buf):
                return web.Response(status=416)
            buf += body
            return web.Response(status=202, headers={"Location": f"/v2/{repo}/blobs/uploads/{upload_id}",
                                                     "Range": f"0-{len(buf) - 1}"})
        if request.method == "PUT":
            buf += body
            digest = request.query.get("digest", "")
            if sha(bytes(buf)) != digest:
                return self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            self.blobs[digest] = bytes(buf)
            self.repo_blobs.setdefault(repo, set()).add(digest)
            del self.uploads[upload_id]
            return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                                                     "Docker-Content-Digest": digest})
        return web.Response(status=405)


# =============================================================================================
# Helpers
# =============================================================================================

@pytest.fixture
def engine(dockyard_root: Path):
    auth.TOKENS.clear()  # each test starts without cached tokens
    e = Engine(config.load())
    try:
        yield e
    finally:
        e.close()


def in_process_pull(name: str, **kwargs: Any):
    """Pull in this process (fast, and lets a test look at the engine); returns the image."""
    from dockyard.distribution.pull import pull

    e = Engine(config.load())
    try:
        return pull(e, reference.parse(name), **kwargs)
    finally:
        e.close()


def in_process_push(name: str, **kwargs: Any) -> str:
    from dockyard.distribution.push import push

    e = Engine(config.load())
    try:
        return push(e, reference.parse(name), **kwargs)
    finally:
        e.close()


def tag_image(source: str, target: str) -> None:
    e = Engine(config.load())
    try:
        image = e.image_store.lookup(source)
        e.image_store.tag(image.id, str(reference.parse(target)))
    finally:
        e.close()


def stored_manifest(name: str) -> bytes:
    e = Engine(config.load())
    try:
        image = e.image_store.lookup(name)
        return e.content.read_bytes(image.manifest_digest)
    finally:
        e.close()


def assert_clean_ingest(root: Path) -> None:
    leftovers = list((root / "content" / "ingest").iterdir()) if (root / "content" / "ingest").exists() else []
    assert leftovers == [], f"partial blobs left behind: {leftovers}"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# =============================================================================================
# CNCF distribution: interop with skopeo
# =============================================================================================

FLAVOURS = [
    pytest.param("oci", ["gzip", "gzip"], id="oci-gzip"),
    pytest.param("oci", ["zstd", "zstd"], id="oci-zstd"),
    pytest.param("oci", ["", ""], id="oci-plain"),
    pytest.param("oci", ["gzip", "zstd"], id="oci-mixed"),
    pytest.param("docker", ["gzip", "gzip"], id="docker-gzip"),
    pytest.param("docker", ["gzip", ""], id="docker-plain"),
]


@pytest.mark.parametrize("flavour,compression", FLAVOURS)
def test_pull_image_pushed_by_skopeo(flavour, compression, distribution, busybox_tar, repo_name, tmp_path,
                                     dockyard_root, run_cli):
    extra = random_layer_tar(tmp_path / "extra.tar", 300_000, seed=7)
    layout = tmp_path / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar, extra], compression=compression, flavour=flavour)])
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(layout, f"{name}:v1")

    result = run_cli("pull", f"{name}:v1", check=True)
    out = lines(result.stdout)
    assert out[0] == f"v1: Pulling from {repo_name}"
    assert sum(line.endswith(": Pull complete") for line in out) == 2
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", out[-3])
    assert out[-2] == f"Status: Downloaded newer image for {name}:v1"
    assert out[-1] == f"{name}:v1"

    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}:v1").stdout.encode()
    assert stored_manifest(f"{name}:v1") == raw
    assert out[-3] == f"Digest: {sha(raw)}"
    e = Engine(config.load())
    try:
        image = e.image_store.lookup(f"{name}:v1")
        assert f"{name}@{sha(raw)}" in image.repo_digests
        assert (e.layers.path(image.layers[0]) / "bin" / "busybox").is_file()
        assert (e.layers.path(image.layers[1]) / "data.bin").stat().st_size == 300_000
    finally:
        e.close()
    assert_clean_ingest(dockyard_root)

    again = run_cli("pull", f"{name}:v1", check=True)
    assert sum(line.endswith(": Already exists") for line in lines(again.stdout)) == 2
    assert f"Status: Image is up to date for {name}:v1" in again.stdout


def test_pull_by_digest(distribution, busybox_layout, repo_name, run_cli, dockyard_root):
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(busybox_layout, f"{name}:latest")
    digest = sha(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}:latest").stdout.encode())
    result = run_cli("pull", f"{name}@{digest}", check=True)
    assert lines(result.stdout)[0] == f"{digest}: Pulling from {repo_name}"
    assert lines(result.stdout)[-1] == f"{name}@{digest}"
    e = Engine(config.load())
    try:
        image = e.image_store.lookup(f"{name}@{digest}")
        assert image.tags == []  # by digest: no tag, as Docker
        assert image.repo_digests == [f"{name}@{digest}"]
    finally:
        e.close()


def test_push_then_skopeo_reads_it(distribution, busybox_tar, repo_name, tmp_path, dockyard_root, run_cli):
    big = random_layer_tar(tmp_path / "big.tar", 20 << 20, seed=3)  # over the monolithic limit: PATCH chunks
    small = random_layer_tar(tmp_path / "small.tar", 1 << 20, seed=4)
    layout = tmp_path / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar, big, small], compression=["gzip", "", "zstd"])])
    source = f"{distribution.address}/{repo_name}"
    push_oci_layout(layout, f"{source}:src")
    run_cli("pull", f"{source}:src", check=True)

    # A second registry: nothing can be mounted there, every blob is uploaded.
    with DistributionRegistry() as target:
        dest = f"{target.address}/pushed/app"
        tag_image(f"{source}:src", f"{dest}:1.0")
        result = run_cli("push", f"{dest}:1.0", check=True)
        out = lines(result.stdout)
        assert out[0] == f"The push refers to repository [{dest}]"
        assert sum(line.endswith(": Pushed") for line in out) == 3
        manifest = stored_manifest(f"{dest}:1.0")
        assert out[-1] == f"1.0: digest: {sha(manifest)} size: {len(manifest)}"

        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}:1.0").stdout.encode()
        assert raw == manifest
        copy = tmp_path / "copy"
        skopeo("copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{dest}:1.0", f"oci:{copy}:x")
        for desc in [json.loads(raw)["config"], *json.loads(raw)["layers"]]:
            blob = copy / "blobs" / "sha256" / desc["digest"][7:]
            assert blob.stat().st_size == desc["size"]
            assert (layout / "blobs" / "sha256" / desc["digest"][7:]).read_bytes() == blob.read_bytes()
        assert "PATCH" in target.logs()  # the 20 MiB layer went up in chunks

        e = Engine(config.load())
        try:
            assert f"{dest}@{sha(manifest)}" in e.image_store.lookup(f"{dest}:1.0").repo_digests
        finally:
            e.close()

        # Pushing again uploads nothing.
        again = run_cli("push", f"{dest}:1.0", check=True)
        assert sum(line.endswith(": Layer already exists") for line in lines(again.stdout)) == 3

        quiet = run_cli("push", "-q", f"{dest}:1.0", check=True)
        assert quiet.stdout.strip() == f"{dest}:1.0"


def test_push_mounts_shared_base_across_repositories(distribution, busybox_tar, repo_name, tmp_path, run_cli):
    layouts = []
    for i in range(2):
        layer = random_layer_tar(tmp_path / f"l{i}.tar", 100_000, seed=10 + i)
        layouts.append(tmp_path / f"oci{i}")
        write_oci_layout(layouts[-1], [ImageSpec([busybox_tar, layer])])
    source = f"{distribution.address}/{repo_name}"
    for i, layout in enumerate(layouts):
        push_oci_layout(layout, f"{source}:{i}")
        run_cli("pull", f"{source}:{i}", check=True)

    with DistributionRegistry() as target:
        tag_image(f"{source}:0", f"{target.address}/first:latest")
        tag_image(f"{source}:1", f"{target.address}/second:latest")
        first = lines(run_cli("push", f"{target.address}/first", check=True).stdout)
        assert sum(line.endswith(": Pushed") for line in first) == 2
        second = lines(run_cli("push", f"{target.address}/second", check=True).stdout)
        base_id = json.loads(stored_manifest(f"{target.address}/second"))["layers"][0]["digest"][7:19]
        assert f"{base_id}: Mounted from first" in second
        assert sum(line.endswith(": Pushed") for line in second) == 1
        assert "mount=" in target.logs()


@pytest.mark.parametrize("flavour", ["oci", "docker"])
def test_multi_platform_index(flavour, distribution, busybox_tar, repo_name, tmp_path, run_cli):
    layout = tmp_path / "oci"
    specs = []
    for i, arch in enumerate(["linux/amd64", "linux/arm64", "linux/s390x"]):
        layer = random_layer_tar(tmp_path / f"{i}.tar", 50_000, seed=20 + i)
        specs.append(ImageSpec([busybox_tar, layer], platform=arch, labels={"arch": arch}, flavour=flavour))
    index_digest = write_oci_layout(layout, specs)
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(layout, f"{name}:multi")
    index_raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}:multi").stdout.encode()
    assert sha(index_raw) == index_digest

    def config_of(ref: str) -> dict:
        e = Engine(config.load())
        try:
            return e.image_store.config(e.image_store.lookup(ref))
        finally:
            e.close()

    result = run_cli("pull", f"{name}:multi", check=True)
    assert f"Digest: {index_digest}" in result.stdout  # the index digest, as Docker records it
    host = host_platform()
    if host.architecture in ("amd64", "arm64", "s390x"):
        assert config_of(f"{name}:multi")["architecture"] == host.architecture

    result = run_cli("pull", "--platform", "linux/arm64", f"{name}:multi", check=True)
    assert config_of(f"{name}:multi")["architecture"] == "arm64"
    e = Engine(config.load())
    try:
        image = e.image_store.lookup(f"{name}:multi")
        assert f"{name}@{index_digest}" in image.repo_digests
        assert e.content.read_bytes(index_digest) == index_raw  # the index, byte-identical
        entry = next(m for m in json.loads(index_raw)["manifests"] if m["platform"]["architecture"] == "arm64")
        assert image.manifest_digest == entry["digest"]
    finally:
        e.close()

    missing = run_cli("pull", "--platform", "linux/riscv64", f"{name}:multi")
    assert missing.returncode != 0
    assert "no matching manifest for linux/riscv64 in the manifest list entries" in missing.stderr


def test_basic_auth_login_pull_logout(distribution_auth, busybox_layout, repo_name, run_cli, dockyard_root):
    registry = distribution_auth
    user, password = registry.htpasswd
    name = f"{registry.address}/{repo_name}"
    push_oci_layout(busybox_layout, f"{name}:latest", creds=(user, password))

    anonymous = run_cli("pull", name)
    assert anonymous.returncode == 1
    assert anonymous.stderr.startswith(f"Error: pull access denied for {name}, repository does not exist or may "
                                       "require 'docker login'")
    assert len(anonymous.stderr.strip().splitlines()) == 1

    # Wrong credentials in config.json: a clean error, nothing committed.
    credentials.store(registry.address, credentials.Credentials(user, "wrong"))
    wrong = run_cli("pull", name)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "Error: unauthorized: authentication required"
    e = Engine(config.load())
    try:
        assert e.image_store.find(name) is None and e.image_store.list() == []
    finally:
        e.close()
    assert_clean_ingest(dockyard_root)

    bad_login = run_cli("login", "-u", user, "--password-stdin", registry.address, input="nope\n")
    assert bad_login.returncode == 1
    assert "unauthorized" in bad_login.stderr and "Login Succeeded" not in bad_login.stdout
    assert credentials.get(registry.address) == credentials.Credentials(user, "wrong")  # unchanged

    login = run_cli("login", "-u", user, "--password-stdin", registry.address, input=password + "\n")
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "Login Succeeded"
    config_file = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    entry = json.loads(config_file.read_text())["auths"][registry.address]
    assert base64.b64decode(entry["auth"]).decode() == f"{user}:{password}"
    assert oct(config_file.stat().st_mode & 0o777) == "0o600"

    again = run_cli("login", registry.address)  # stored credentials are reused
    assert again.returncode == 0 and "Login Succeeded" in again.stdout

    pulled = run_cli("pull", name, check=True)
    assert f"Status: Downloaded newer image for {name}:latest" in pulled.stdout

    logout = run_cli("logout", registry.address, check=True)
    assert logout.stdout.strip() == f"Removing login credentials for {registry.address}"
    assert registry.address not in json.loads(config_file.read_text()).get("auths", {})
    assert run_cli("logout", registry.address, check=True).stdout.strip() == f"Not logged in to {registry.address}"
    assert run_cli("pull", name).returncode == 1


def test_concurrent_pulls_share_blobs(distribution, busybox_tar, repo_name, tmp_path, dockyard_root):
    big = random_layer_tar(tmp_path / "big.tar", 16 << 20, seed=30)
    layout = tmp_path / "oci"
    write_oci_layout(layout, [ImageSpec([busybox_tar, big])])
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(layout, f"{name}:latest")
    procs = [subprocess.Popen([sys.executable, "-m", "dockyard", "pull", name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) for _ in range(2)]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert lines(out)[-1] == f"{name}:latest"
    manifest = json.loads(stored_manifest(name))
    blobs = list((dockyard_root / "content" / "blobs" / "sha256").iterdir())
    wanted = {d["digest"][7:] for d in manifest["layers"]} | {manifest["config"]["digest"][7:]}
    assert wanted <= {b.name for b in blobs}
    assert len(blobs) == len(wanted) + 1  # + the manifest itself: each blob stored once
    assert_clean_ingest(dockyard_root)


# =============================================================================================
# Bearer tokens, redirects, foreign layers: FakeRegistry
# =============================================================================================

def test_token_flow_anonymous(engine, dockyard_root, run_cli):
    image = build_image([{"a.txt": b"hello"}, {"b.txt": b"world" * 1000}])
    with FakeRegistry(auth="bearer") as reg:
        reg.add_image("library/app", "latest", image)
        result = run_cli("pull", f"{reg.address}/library/app", check=True)
        assert f"Status: Downloaded newer image for {reg.address}/library/app:latest" in result.stdout
        # One token for the whole pull: requested once, anonymously, for pull on the repository.
        assert len(reg.token_requests) == 1
        token = reg.token_requests[0]
        assert token["scopes"] == ["repository:library/app:pull"]
        assert token["query"]["service"] == "test"
        assert token["authorization"] == "" and "account" not in token["query"]
        registry_calls = [(m, p, h) for m, p, h in reg.requests if p.startswith("/v2/")]
        assert "Authorization" not in registry_calls[0][2]  # the first call learns the challenge
        assert all(h.get("Authorization", "").startswith("Bearer ") for _, _, h in registry_calls[1:])
        assert reg.count("GET", r"/blobs/") == 3  # config + 2 layers, each once


@pytest.mark.parametrize("token_field", ["token", "access_token"])
def test_token_flow_with_credentials(token_field, engine, dockyard_root, run_cli):
    image = build_image([{"secret.txt": b"classified"}])
    with FakeRegistry(auth="bearer", private=True, token_field=token_field) as reg:
        reg.add_image("team/private", "v1", image)
        name = f"{reg.address}/team/private:v1"
        denied = run_cli("pull", name)
        assert denied.returncode == 1
        assert denied.stderr.startswith("Error: pull access denied for "
                                        f"{reg.address}/team/private, repository does not exist or may require "
                                        "'docker login'")

        wrong = run_cli("login", "-u", "alice", "-p", "nope", reg.address)
        assert wrong.returncode == 1
        assert "unauthorized: incorrect username or password" in wrong.stderr
        assert credentials.get(reg.address) is None

        login = run_cli("login", "-u", "alice", "--password-stdin", reg.address, input="s3cret")
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == "Login Succeeded"

        reg.token_requests.clear()
        run_cli("pull", name, check=True)
        assert len(reg.token_requests) == 1
        request = reg.token_requests[0]
        assert request["query"]["account"] == "alice"
        assert base64.b64decode(request["authorization"][6:]) == b"alice:s3cret"
        assert request["scopes"] == ["repository:team/private:pull"]

        # Wrong stored credentials: the token service refuses them, one clean line.
        credentials.store(reg.address, credentials.Credentials("alice", "stale"))
        stale = run_cli("pull", name)
        assert stale.returncode == 1
        assert stale.stderr.strip() == "Error: unauthorized: incorrect username or password"


def test_token_scopes_for_push_and_mount(engine, dockyard_root):
    image = build_image([{"base.txt": b"base" * 100}, {"top.txt": b"top"}])
    with FakeRegistry(auth="bearer") as reg:
        reg.add_image("src/app", "latest", image)
        credentials.store(reg.address, credentials.Credentials("alice", "s3cret"))
        in_process_pull(f"{reg.address}/src/app")
        tag_image(f"{reg.address}/src/app", f"{reg.address}/dst/app:1")
        reg.token_requests.clear()
        in_process_push(f"{reg.address}/dst/app:1")
        scopes = [tuple(t["scopes"]) for t in reg.token_requests]
        assert ("repository:dst/app:pull,push",) in scopes
        # The mount needs pull on the source repository in the same token.
        assert ("repository:dst/app:pull,push", "repository:src/app:pull") in scopes
        assert reg.count("POST", r"/v2/dst/app/blobs/uploads/\?.*mount=") == 3  # two layers + config
        assert reg.count("PUT", r"/blobs/uploads/") == 0  # nothing uploaded
        assert reg.manifests[("dst/app", "1")][0] == image.manifest


def test_push_to_fake_registry_uploads_with_token(engine, dockyard_root):
    image = build_image([{"x.bin": os.urandom(9 << 20)}], compression="")  # over 8 MiB: chunked
    with FakeRegistry(auth="bearer") as source, FakeRegistry(auth="bearer") as target:
        source.add_image("a/b", "latest", image)
        in_process_pull(f"{source.address}/a/b")
        tag_image(f"{source.address}/a/b", f"{target.address}/c/d:v2")
        credentials.store(target.address, credentials.Credentials("alice", "s3cret"))
        digest = in_process_push(f"{target.address}/c/d:v2")
        assert digest == image.digest
        assert target.count("PATCH", r"/blobs/uploads/") >= 1
        assert target.blobs[image.layer_digests[0]] == image.blobs[image.layer_digests[0]]
        assert target.manifests[("c/d", "v2")] == (image.manifest, mt.OCI_MANIFEST)


@pytest.mark.parametrize("cdn_host", ["127.0.0.2", "127.0.0.1"])
def test_blob_redirect_drops_authorization(cdn_host, engine, dockyard_root):
    image = build_image([{"f": b"redirected" * 1000}])
    with FakeRegistry(auth="bearer") as reg, FakeRegistry(host=cdn_host, blobs=reg.blobs) as cdn:
        reg.add_image("x/y", "latest", image)
        reg.redirect_blobs = f"http://{cdn.address}"
        in_process_pull(f"{reg.address}/x/y")
        cdn_calls = [(p, h) for m, p, h in cdn.requests if p.startswith("/cdn/")]
        assert len(cdn_calls) == 2  # config and layer came from the blob host
        assert all("?sig=a%2Fb" in p for p, _ in cdn_calls)  # the signed URL kept as sent
        assert all("Authorization" not in h for _, h in cdn_calls)
        assert all(h.get("Authorization", "").startswith("Bearer ")
                   for m, p, h in reg.requests if "/blobs/" in p)


def test_foreign_layer_from_urls_then_skipped_on_push(engine, dockyard_root):
    base = {"base.txt": b"base layer"}
    with FakeRegistry() as cdn, FakeRegistry() as reg:
        url = f"http://{cdn.address}/cdn/"
        image = build_image([base, {"app.txt": b"app"}], layer_types=[mt.OCI_LAYER_ND_GZIP, mt.OCI_LAYER_GZIP])
        foreign = image.layer_digests[0]
        manifest = json.loads(image.manifest)
        manifest["layers"][0]["urls"] = [url + foreign]
        image.manifest = json.dumps(manifest).encode()
        cdn.blobs[foreign] = image.blobs[foreign]
        reg.add_image("w/foreign", "latest", image)
        reg.repo_blobs["w/foreign"].discard(foreign)  # the registry does not have it
        in_process_pull(f"{reg.address}/w/foreign")
        assert cdn.count("GET", "/cdn/" + foreign) == 1

        tag_image(f"{reg.address}/w/foreign", f"{reg.address}/w/copy:1")
        lines_out: list[str] = []

        class Collect:
            def message(self, text): lines_out.append(text)
            def status(self, id, text): lines_out.append(f"{id}: {text}")
            def transfer(self, *a): pass
            def close(self): pass

        in_process_push(f"{reg.address}/w/copy:1", progress=Collect())
        assert f"{foreign[7:19]}: Skipped foreign layer" in lines_out
        assert not any(foreign in p for m, p, _ in reg.requests if m in ("POST", "PUT", "PATCH", "HEAD")
                       and "w/copy" in p)


def test_concurrent_pulls_download_each_blob_once(dockyard_root):
    image = build_image([{"big.bin": os.urandom(4 << 20)}, {"small": b"s"}], compression="")
    with FakeRegistry() as reg:
        reg.add_image("c/c", "latest", image)

        async def slow(request, kind, info):
            # Hold the layers back a little so that both pulls are in flight at once.
            if kind == "blobs" and request.method == "GET":
                await asyncio.sleep(0.3)
            return None

        reg.hook = slow
        procs = [subprocess.Popen([sys.executable, "-m", "dockyard", "pull", f"{reg.address}/c/c"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL) for _ in range(2)]
        try:
            results = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for p, (out, err) in zip(procs, results):
            assert p.returncode == 0, err
        for digest in image.blobs:
            assert reg.count("GET", f"/blobs/{digest}") == 1, digest
        assert_clean_ingest(dockyard_root)


def test_docker_hub_names(monkeypatch, tmp_path):
    # Docker Hub itself cannot be reached from here: check the names we would use.
    ref = reference.parse("nginx")
    assert ref.registry_host == "registry-1.docker.io" and ref.path == "library/nginx"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    credentials.store("docker.io", credentials.Credentials("u", "p"))
    assert credentials.get(ref.registry_host) == credentials.Credentials("u", "p")
    assert list(json.loads((tmp_path / "config.json").read_text())["auths"]) == ["https://index.docker.io/v1/"]


def test_push_errors_are_one_line(distribution_auth, busybox_layout, repo_name, run_cli, dockyard_root):
    registry = distribution_auth
    user, password = registry.htpasswd
    name = f"{registry.address}/{repo_name}"
    missing = run_cli("push", f"{name}:nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"Error: An image does not exist locally with the tag: {name}:nope"

    push_oci_layout(busybox_layout, f"{name}:latest", creds=(user, password))
    run_cli("login", "-u", user, "--password-stdin", registry.address, input=password, check=True)
    run_cli("pull", name, check=True)
    tag_image(name, f"{name}-copy:1")
    run_cli("logout", registry.address, check=True)
    denied = run_cli("push", f"{name}-copy:1")
    assert denied.returncode == 1
    assert denied.stderr.strip() == "Error: unauthorized: authentication required"

    run_cli("login", "-u", user, "--password-stdin", registry.address, input=password, check=True)
    pushed = run_cli("push", f"{name}-copy:1", check=True)
    assert "Mounted from" in pushed.stdout  # same registry, another repository: no upload
