"""``pull``: fetch an image's manifest, config and layers from a registry and commit it.

The steps, as Docker takes them:
1. GET the manifest by tag or digest; verify its digest (the one asked for, and the
   registry's ``Docker-Content-Digest``); an index picks the platform's manifest.
2. GET the config (its diff IDs give each layer's chain ID).
3. Layers whose chain is already unpacked are skipped ("Already exists", though a blob
   the content store lacks is still fetched); the others download concurrently
   (``max_concurrent_downloads``), each streamed into the content store under the blob's
   lock, so two pulls of one layer share one download.
4. A worker thread unpacks layer i as soon as it and layer i-1 are ready, while the
   downloads go on. The DB is touched only from that thread while the pull runs.
5. The manifest (and index) bytes are stored as received, then ``commit`` records the
   image, its tag and its repo digest. Nothing is tagged unless every step succeeded.

A pull first removes what dead processes left (partial downloads, half-unpacked layers,
staging dirs: each is flocked by its live owner, so the dead ones are known for sure), but
keeps a dead pull's partial download of a blob: the next pull of that blob hashes the bytes it
has and asks the registry for the rest with a Range request, as containerd does. The whole
pull holds the image lease (store/owned.py), so a prune never collects the blobs and layers it
committed before the image that uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import aiohttp

from dockyard import digest as digests
from dockyard.distribution import credentials, sources
from dockyard.distribution.client import RegistryClient, RegistryHTTPError, TransferError, with_retries
from dockyard.distribution.progress import Progress, short_id
from dockyard.errors import (
    AuthenticationError, DigestMismatchError, DockyardError, ManifestError, RegistryError, SizeMismatchError,
)
from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import Platform, host

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.reference import Reference
    from dockyard.store.content import Writer
    from dockyard.store.images import Image

SCHEMA1_TYPES = frozenset({
    mt.DOCKER_MANIFEST_V1_SIGNED,
    "application/vnd.docker.distribution.manifest.v1+json",
})
# Content-Types that say nothing: the manifest's own mediaType (or shape) decides.
GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


def pull(engine: "Engine", ref: "Reference", *, platform: Platform | None = None,
         progress: Progress | None = None, creds: credentials.Credentials | None = None) -> "Image":
    """Pull ``ref`` (by tag or digest) for ``platform`` (default: this host's) and return the image.
    ``creds``: the caller's (the API's X-Registry-Auth); else config.json's for the registry."""
    from dockyard.store.owned import image_lease

    creds = creds or credentials.get(ref.registry_host)
    with image_lease(engine.root):
        reclaim_leftovers(engine)
        puller = _Puller(engine, ref, platform, progress or Progress(), creds)
        image = asyncio.run(puller.run())
    engine.images.event("pull", ref.familiar(), ref.familiar_repository, image.id)  # Docker's pull event
    return image


def reclaim_leftovers(engine: "Engine") -> None:
    """What dead processes left, removed at a pull's start: cheap (a scan of three temp dirs
    and a lock attempt per entry). Partial downloads named by their digest stay to be resumed."""
    from dockyard.store.owned import scratch

    try:
        engine.content.reclaim_ingest(keep_resumable=True)
        engine.layers.reclaim()
        scratch(engine.root).reclaim()
    except OSError:
        pass  # best effort: a leftover we cannot remove now must not stop the pull


def select_manifest(index: dict[str, Any], platform: Platform) -> dict[str, Any]:
    """The index entry for ``platform``: an exact variant match wins over a looser one."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ManifestError("image index has no manifests list")
    matches = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("mediaType", mt.OCI_MANIFEST) not in mt.MANIFESTS:
            continue
        p = entry.get("platform")
        if isinstance(p, dict) and platform.matches(p):
            matches.append(entry)
    if not matches:
        raise ManifestError(f"no matching manifest for {platform} in the manifest list entries")
    exact = [e for e in matches if e["platform"].get("variant", "") == platform.variant]
    return (exact or matches)[0]


def classify_manifest(raw: bytes, content_type: str, what: str) -> tuple[dict[str, Any], str]:
    """Parse a manifest and say what it is; refuse schema1 and types we do not know."""
    schema1 = (f"unsupported manifest media type {{}} for {what}: Docker image manifest v2 schema1 "
               "is deprecated and no longer supported; push the image again with a current client")
    if content_type in SCHEMA1_TYPES:
        raise ManifestError(schema1.format(content_type))
    try:
        manifest = json.loads(raw)
    except ValueError:
        known = content_type in mt.MANIFESTS or content_type in mt.INDEXES or content_type in GENERIC_TYPES
        if not known:
            raise ManifestError(f"unsupported manifest media type {content_type} for {what}") from None
        raise ManifestError(f"manifest for {what} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"manifest for {what} is not a JSON object")
    if manifest.get("schemaVersion") == 1:
        raise ManifestError(schema1.format(content_type or mt.DOCKER_MANIFEST_V1_SIGNED))
    media_type = manifest.get("mediaType")
    if not media_type:
        if content_type not in GENERIC_TYPES:
            media_type = content_type
        elif "manifests" in manifest:
            media_type = mt.OCI_INDEX
        elif "config" in manifest:
            media_type = mt.OCI_MANIFEST
    if media_type not in mt.MANIFESTS and media_type not in mt.INDEXES:
        raise ManifestError(f"unsupported manifest media type {media_type or content_type or '(none)'} for {what}")
    return manifest, media_type


def _check_descriptor(desc: Any, what: str) -> dict[str, Any]:
    if not isinstance(desc, dict):
        raise ManifestError(f"invalid {what} descriptor in the manifest")
    try:
        digests.validate(str(desc.get("digest", "")))
    except DockyardError as e:
        raise ManifestError(f"invalid {what} descriptor: {e}") from None
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"invalid {what} descriptor for {desc['digest']}: size must be a non-negative integer")
    return desc


def check_image_manifest(manifest: dict[str, Any]) -> None:
    """Every descriptor valid and of a media type we can use, before anything is fetched."""
    config = _check_descriptor(manifest.get("config"), "config")
    if config.get("mediaType") not in mt.CONFIGS:
        raise ManifestError(f"unsupported image config media type {config.get('mediaType')!r}")
    if config["size"] > mt.MAX_CONFIG_SIZE:
        raise ManifestError(f"image config is {config['size']} bytes, over the {mt.MAX_CONFIG_SIZE} byte limit")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("image manifest has no layers list")
    for layer in layers:
        _check_descriptor(layer, "layer")
        if not mt.is_layer(layer.get("mediaType", "")):
            raise ManifestError(f"unsupported layer media type {layer.get('mediaType')!r}")


def _verify_manifest(raw: bytes, expected: str | None, header: str | None, what: str) -> str:
    """The manifest's digest, checked against the one asked for and the registry's header."""
    if expected:
        actual = digests.of_bytes(raw, digests.algorithm_of(expected))
        if actual != expected:
            raise DigestMismatchError(f"manifest verification failed for {what}: expected {expected}, got {actual}")
    if header:
        try:
            algorithm = digests.algorithm_of(header)
        except DockyardError:
            raise ManifestError(f"registry sent an invalid Docker-Content-Digest {header!r} for {what}") from None
        actual = digests.of_bytes(raw, algorithm)
        if actual != header:
            raise DigestMismatchError(
                f"manifest verification failed for {what}: the registry says {header}, the content is {actual}")
    return expected or digests.of_bytes(raw)


def _pull_error(e: RegistryHTTPError, ref: "Reference", reference: str) -> DockyardError:
    """Docker's words for a manifest fetch that failed."""
    if "MANIFEST_UNKNOWN" in e.codes or (e.status == 404 and not e.codes):
        return RegistryError(f"manifest for {ref.familiar()} not found: {e.message}")
    if e.status in (401, 403, 404) or {"UNAUTHORIZED", "DENIED", "NAME_UNKNOWN"} & set(e.codes):
        return AuthenticationError(
            f"pull access denied for {ref.familiar_repository}, repository does not exist or may require "
            f"'docker login': {e.message}")
    return e


class _Puller:
    def __init__(self, engine: "Engine", ref: "Reference", platform: Platform | None,
                 progress: Progress, creds: credentials.Credentials | None) -> None:
        self.engine = engine
        self.ref = ref
        self.explicit_platform = platform is not None
        self.platform = platform or host()
        self.progress = progress
        self.creds = creds
        self.path = ref.path
        self.client: RegistryClient | None = None
        self.sem = asyncio.Semaphore(max(1, engine.settings.max_concurrent_downloads))
        # One thread does every unpack and every DB access while the pull runs.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-unpack")
        # Writers kept between attempts of one blob, so a retry resumes with a Range request.
        self._partial: dict[str, "Writer"] = {}
        # Blobs whose writer took over a dead pull's partial: only the final digest says
        # whether those bytes were right, and if not the blob is fetched again whole.
        self._took_over: set[str] = set()
        self.lock_waiters = ThreadPoolExecutor(max_workers=64, thread_name_prefix="dockyard-lock")
        # Phase timings for benchmarks (DOCKYARD_PULL_TIMINGS=1): when the pull began and
        # when the last blob landed in the content store.
        self.started = time.perf_counter()
        self.downloaded = self.started

    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    async def run(self) -> "Image":
        try:
            async with RegistryClient(self.engine.settings, self.ref.registry_host, self.creds) as client:
                self.client = client
                return await self._run()
        finally:
            for writer in self._partial.values():
                writer.abort()
            self._partial.clear()
            self.worker.shutdown(wait=True)
            self.lock_waiters.shutdown(wait=False)

    async def _run(self) -> "Image":
        ref, engine = self.ref, self.engine
        label = ref.digest if ref.digest else ref.tag
        self.progress.message(f"{label}: Pulling from {ref.path}")
        before = await self.in_worker(engine.image_store.find, str(ref))

        raw, manifest, media_type, top_digest = await self.fetch_manifest(ref.digest or ref.tag or "latest", ref.digest)
        index_raw: bytes | None = None
        manifest_digest = top_digest
        if media_type in mt.INDEXES:
            index_raw = raw
            entry = select_manifest(manifest, self.platform)
            manifest_digest = _check_descriptor(entry, "manifest")["digest"]
            raw, manifest, media_type, _ = await self.fetch_manifest(manifest_digest, manifest_digest)
            if media_type not in mt.MANIFESTS:
                raise ManifestError(f"index entry {manifest_digest} is not an image manifest ({media_type})")
        check_image_manifest(manifest)

        config_desc = manifest["config"]
        await self.fetch_blob(config_desc, None)
        from dockyard.images.commit import commit, ensure_layer, layer_plan

        config, plan = await self.in_worker(layer_plan, engine, manifest)
        if self.explicit_platform:
            self._check_platform(config)

        # A layer already unpacked is not unpacked again; its blob is still fetched if the
        # content store lacks it (the layer came from the same tar compressed otherwise, by
        # import or another registry): an image's blobs are all kept, as containerd keeps
        # them, since push and save read them.
        state = await self.in_worker(
            lambda: [(engine.layers.has(chain), engine.content.has(desc["digest"])) for desc, *_, chain in plan])
        for (desc, *_), (here, blob) in zip(plan, state):
            self.progress.status(short_id(desc["digest"]), "Already exists" if here and blob else "Pulling fs layer")

        tasks: dict[str, asyncio.Task] = {}
        try:
            for (desc, *_), (here, blob) in zip(plan, state):
                if not (here and blob) and desc["digest"] not in tasks:
                    tasks[desc["digest"]] = asyncio.create_task(self.fetch_blob(desc, short_id(desc["digest"])))
            for (desc, diff_id, parent, _chain), (here, _blob) in zip(plan, state):
                if here:
                    continue
                await _wait_for(tasks[desc["digest"]], tasks.values())
                layer_id = short_id(desc["digest"])
                self.progress.status(layer_id, "Extracting")
                await self.in_worker(ensure_layer, engine, desc, diff_id, parent)
                self.progress.status(layer_id, "Pull complete")
            for (desc, *_), (here, blob) in zip(plan, state):
                if here and not blob:
                    await _wait_for(tasks[desc["digest"]], tasks.values())
                    self.progress.status(short_id(desc["digest"]), "Already exists")
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

        # The manifest bytes exactly as received: their digest is the image's name in registries.
        engine.content.write_bytes(raw, manifest_digest)
        if index_raw is not None:
            engine.content.write_bytes(index_raw, top_digest)
        tags = [str(ref)] if ref.tag and not ref.digest else []
        image = await self.in_worker(
            lambda: commit(engine, manifest_digest, tags=tags, repo_digest=(ref.repository, top_digest)))
        blobs = [config_desc["digest"]] + [d["digest"] for d, *_ in plan if d["mediaType"] not in mt.NON_DISTRIBUTABLE]
        await self.in_worker(sources.remember, engine.db, ref.domain, ref.path, blobs)

        _report_timings(self.started, self.downloaded)
        self.progress.message(f"Digest: {top_digest}")
        if before is not None and before.id == image.id:
            self.progress.message(f"Status: Image is up to date for {ref.familiar()}")
        else:
            self.progress.message(f"Status: Downloaded newer image for {ref.familiar()}")
        return image

    def _check_platform(self, config: dict[str, Any]) -> None:
        actual = {"os": config.get("os", ""), "architecture": config.get("architecture", ""),
                  "variant": config.get("variant", "")}
        if not self.platform.matches(actual):
            shown = "/".join(v for v in actual.values() if v)
            raise ManifestError(
                f"image with reference {self.ref.familiar()} was found but does not match the specified "
                f"platform: wanted {self.platform}, actual: {shown}")

    # ---- manifests -----------------------------------------------------------------

    async def fetch_manifest(self, reference: str, expected: str | None) -> tuple[bytes, dict[str, Any], str, str]:
        """(raw bytes, parsed, media type, verified digest) of a manifest or index."""
        assert self.client is not None
        what = f"{self.ref.familiar_repository}@{reference}" if expected else self.ref.familiar()
        try:
            raw, content_type, header = await with_retries(
                lambda: self.client.get_manifest(self.path, reference))
        except RegistryHTTPError as e:
            raise _pull_error(e, self.ref, reference) from None
        manifest, media_type = classify_manifest(raw, content_type, what)
        digest = _verify_manifest(raw, expected, header, what)
        return raw, manifest, media_type, digest

    # ---- blobs ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _blob_lock(self, digest: str) -> AsyncIterator[None]:
        """The content store's per-digest file lock, taken without blocking the event loop."""
        lock = self.engine.content.lock(digest)
        # A thread of our own per waiting lock: blocked waits must never starve the
        # executor that commits blobs (two pulls waiting on each other's locks would hang).
        acquired = asyncio.get_running_loop().run_in_executor(self.lock_waiters, lock.__enter__)
        try:
            await asyncio.shield(acquired)
        except asyncio.CancelledError:
            # The thread may still get the lock later: give it back as soon as it does.
            acquired.add_done_callback(
                lambda f: f.cancelled() or f.exception() is not None or lock.__exit__(None, None, None))
            raise
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    async def fetch_blob(self, desc: dict[str, Any], layer_id: str | None) -> None:
        """Make sure the blob of ``desc`` is in the content store, downloading it if missing."""
        content = self.engine.content
        digest = desc["digest"]
        if content.has(digest):
            if layer_id:
                self.progress.status(layer_id, "Download complete")
            return
        async with self._blob_lock(digest):
            if not content.has(digest):  # another pull may have fetched it while we waited
                await self._download(desc, layer_id)
                self.downloaded = max(self.downloaded, time.perf_counter())
        if layer_id:
            self.progress.status(layer_id, "Download complete")

    async def _download(self, desc: dict[str, Any], layer_id: str | None) -> None:
        assert self.client is not None
        client = self.client
        digest = desc["digest"]

        def on_retry(error: BaseException, wait: float) -> None:
            if layer_id:
                seconds = max(1, math.ceil(wait))
                self.progress.status(layer_id, f"Retrying in {seconds} second{'s' if seconds != 1 else ''}")

        urls = [u for u in desc.get("urls") or [] if isinstance(u, str) and u.startswith(("http://", "https://"))]
        if desc.get("mediaType") in mt.NON_DISTRIBUTABLE and urls:
            # Foreign layers come from their own URLs first (as Docker), the registry second.
            for url in urls:
                try:
                    await self._fetch_into_store(desc, layer_id, lambda offset, u=url: client.open_url(u))
                    return
                except (RegistryError, DigestMismatchError, SizeMismatchError):
                    continue
        def fetch(fresh: bool = False) -> Any:
            return self._fetch_into_store(desc, layer_id, lambda offset: client.open_blob(self.path, digest, offset),
                                          resumable=True, fresh=fresh)

        try:
            await with_retries(fetch, on_retry=on_retry)
        except DigestMismatchError:
            if digest not in self._took_over:
                raise
            # The partial a dead pull left was not the blob's beginning (it was discarded).
            self._took_over.discard(digest)
            await with_retries(lambda: fetch(fresh=True), on_retry=on_retry)

    async def _fetch_into_store(
        self, desc: dict[str, Any], layer_id: str | None,
        opener: Callable[[int], Any], resumable: bool = False, fresh: bool = False,
    ) -> None:
        """One attempt: stream the blob into an ingest writer and commit it (digest checked).

        ``resumable``: continue this pull's own partial from an earlier attempt, or else a
        dead pull's partial of the same blob (``fresh`` refuses the latter)."""
        content = self.engine.content
        digest, size = desc["digest"], desc["size"]
        writer = self._partial.pop(digest, None) if resumable else None
        try:
            if writer is None:
                writer = await self._open_writer(digest, size, resume=resumable and not fresh)
                if writer.count:
                    self._took_over.add(digest)
                    if layer_id:
                        self.progress.transfer(layer_id, "Downloading", writer.count, size)
            offset = writer.count
            if not offset or offset < size:  # else a dead pull had every byte: the digest decides
                # The download slot covers the network part only: the fsync of commit() below
                # runs while the next download already streams.
                async with self.sem, opener(offset) as resp:
                    if offset and (resp.status != 206 or not _range_starts_at(resp, offset)):
                        # The server ignored our Range: start over.
                        writer.abort()
                        self._took_over.discard(digest)
                        writer = content.ingest(digest, size)
                        if resp.status == 206:
                            raise TransferError(f"registry sent the wrong range of {digest}")
                    elif not offset and resp.status == 206:
                        raise TransferError(f"registry sent a partial response for {digest}")
                    await self._copy(resp, writer, digest, layer_id, size)
            if writer.count < size:
                raise TransferError(f"download of {digest} was truncated: got {writer.count} of {size} bytes")
            # commit() fsyncs: off the event loop, so the other downloads keep flowing meanwhile.
            # Shielded: if this pull is cancelled (another layer failed) before a worker
            # picked the commit up, it would never run and its ingest file would be left
            # behind; asyncio.run waits for the executor, so the commit finishes first.
            done, writer = writer, None
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, done.commit))
        except TransferError:
            if writer is not None and resumable and writer.count:
                self._partial[digest] = writer  # the next attempt resumes from here
                writer = None
            raise
        finally:
            if writer is not None:
                writer.abort()

    async def _open_writer(self, digest: str, size: int, resume: bool) -> "Writer":
        """An ingest writer, made off the event loop: taking over a dead pull's partial hashes
        its bytes again. If we are cancelled meanwhile, the writer is aborted once made."""
        made = asyncio.get_running_loop().run_in_executor(
            None, lambda: self.engine.content.ingest(digest, size, resume=resume))
        try:
            return await asyncio.shield(made)
        except asyncio.CancelledError:
            made.add_done_callback(lambda f: f.cancelled() or f.exception() is not None or f.result().abort())
            raise

    async def _copy(self, resp: aiohttp.ClientResponse, writer: "Writer", digest: str,
                    layer_id: str | None, size: int) -> None:
        try:
            # readany hands over whatever the socket buffer holds (up to READ_BUFSIZE): few, big writes.
            while True:
                chunk = await resp.content.readany()
                if not chunk:
                    break
                writer.write(chunk)
                if layer_id:
                    self.progress.transfer(layer_id, "Downloading", writer.count, size)
        except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as e:
            from dockyard.distribution.client import reason_of

            raise TransferError(f"download of {digest} failed: {reason_of(e)}") from None
        except asyncio.TimeoutError:
            raise TransferError(f"download of {digest} timed out") from None


def _report_timings(started: float, downloaded: float) -> None:
    """With DOCKYARD_PULL_TIMINGS set, say on stderr how long the download phase took
    (manifest request to the last blob stored) beside the whole pull: bench/pull.py reads it."""
    if os.environ.get("DOCKYARD_PULL_TIMINGS"):
        now = time.perf_counter()
        print(f"timings: download={downloaded - started:.3f} unpack_tail={now - downloaded:.3f} "
              f"total={now - started:.3f}", file=sys.stderr)


def _range_starts_at(resp: aiohttp.ClientResponse, offset: int) -> bool:
    value = resp.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False


async def _wait_for(target: asyncio.Task, every: Any) -> None:
    """Wait for ``target``; fail as soon as any of ``every`` fails (no waiting on a doomed pull)."""
    while not target.done():
        pending = [t for t in every if not t.done()]
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()
    target.result()
