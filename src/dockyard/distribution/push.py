"""``push``: upload an image's layers, config and manifest to a registry.

As Docker does: for each blob, HEAD first (the registry may have it already); else
mount it from another repository of the same registry that we know holds it; else
upload it, in one PUT when small and in PATCH chunks when large. Then the config,
then the manifest bytes exactly as stored, so the registry's digest is ours.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from dockyard.distribution import credentials, sources
from dockyard.distribution.client import RegistryClient, RegistryHTTPError, with_retries
from dockyard.distribution.progress import Progress, short_id
from dockyard.errors import DockyardError, NotFoundError, RegistryError
from dockyard.oci import mediatypes as mt

if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.engine import Engine
    from dockyard.reference import Reference
    from dockyard.store.images import Image

# Blobs below this go up in one request (POST, then PUT with the body); larger ones in chunks.
MONOLITHIC_LIMIT = 8 << 20
CHUNK_SIZE = 32 << 20
READ_CHUNK = 1 << 20


def push(engine: "Engine", ref: "Reference", *, progress: Progress | None = None,
         creds: credentials.Credentials | None = None) -> str:
    """Push the image named ``ref``; returns the manifest digest the registry stored.
    ``creds``: the caller's (the API's X-Registry-Auth); else config.json's for the registry."""
    if ref.digest:
        raise DockyardError(f"cannot push a digest reference: {ref.familiar()}")
    image = engine.image_store.find(str(ref))
    if image is None:
        raise NotFoundError(f"An image does not exist locally with the tag: {ref.familiar()}")
    creds = creds or credentials.get(ref.registry_host)
    digest = asyncio.run(_Pusher(engine, ref, image, progress or Progress(), creds).run())
    engine.images.event("push", ref.familiar(), ref.familiar_repository, image.id)  # Docker's push event
    return digest


async def _file_chunks(path: "Path", offset: int, length: int, sent: Callable[[int], None]) -> AsyncIterator[bytes]:
    """A slice of a local blob as a request body: read as it is sent, 1 MiB at a time."""
    with open(path, "rb") as f:
        f.seek(offset)
        remaining = length
        while remaining:
            chunk = f.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise DockyardError(f"{path} is shorter than expected")
            remaining -= len(chunk)
            yield chunk
            sent(len(chunk))


class _Pusher:
    def __init__(self, engine: "Engine", ref: "Reference", image: "Image", progress: Progress,
                 creds: credentials.Credentials | None) -> None:
        self.engine = engine
        self.ref = ref
        self.image = image
        self.progress = progress
        self.creds = creds
        self.path = ref.path
        self.scopes = [f"repository:{ref.path}:pull,push"]
        self.sem = asyncio.Semaphore(max(1, engine.settings.max_concurrent_uploads))
        self.client: RegistryClient | None = None

    async def run(self) -> str:
        engine, ref, image = self.engine, self.ref, self.image
        raw = engine.content.read_bytes(image.manifest_digest, limit=mt.MAX_MANIFEST_SIZE)
        manifest = json.loads(raw)
        layers: list[dict[str, Any]] = list(manifest.get("layers") or [])
        config_desc: dict[str, Any] = manifest["config"]
        self.progress.message(f"The push refers to repository [{ref.repository}]")
        async with RegistryClient(engine.settings, ref.registry_host, self.creds) as client:
            self.client = client
            # Docker lists the top layer first.
            shown = list(reversed(layers))
            for desc in shown:
                self.progress.status(short_id(desc["digest"]), "Preparing")
            tasks = {}
            try:
                for desc in shown:
                    if desc["digest"] not in tasks:
                        tasks[desc["digest"]] = asyncio.create_task(self.push_layer(desc))
                await _gather_or_fail(list(tasks.values()))
            finally:
                for task in tasks.values():
                    task.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)
            await self.push_blob(config_desc, None)

            tag = ref.tag or "latest"
            digest = await with_retries(lambda: client.put_manifest(self.path, tag, raw, image.manifest_media_type))
        if digest and digest != image.manifest_digest:
            raise RegistryError(
                f"registry {ref.registry_host} stored the manifest as {digest}, expected {image.manifest_digest}")
        digest = image.manifest_digest
        engine.image_store.add(image, repo_digest=(ref.repository, digest))
        pushed = [config_desc["digest"]] + [d["digest"] for d in layers if d.get("mediaType") not in mt.NON_DISTRIBUTABLE]
        sources.remember(engine.db, ref.domain, ref.path, pushed)
        self.progress.message(f"{tag}: digest: {digest} size: {len(raw)}")
        return digest

    async def push_layer(self, desc: dict[str, Any]) -> None:
        layer_id = short_id(desc["digest"])
        if desc.get("mediaType") in mt.NON_DISTRIBUTABLE:
            # Foreign layers stay where their URLs point; registries would refuse them anyway.
            self.progress.status(layer_id, "Skipped foreign layer")
            return
        async with self.sem:
            await self.push_blob(desc, layer_id)

    async def push_blob(self, desc: dict[str, Any], layer_id: str | None) -> None:
        assert self.client is not None
        client = self.client
        digest = desc["digest"]
        if await with_retries(lambda: client.blob_exists(self.path, digest, self.scopes)):
            if layer_id:
                self.progress.status(layer_id, "Layer already exists")
            return

        def on_retry(error: BaseException, wait: float) -> None:
            if layer_id:
                seconds = max(1, math.ceil(wait))
                self.progress.status(layer_id, f"Retrying in {seconds} second{'s' if seconds != 1 else ''}")

        location = None
        for source in sources.candidates(self.engine.db, self.ref.domain, digest, self.path):
            try:
                mounted, location = await client.start_upload(
                    self.path, [*self.scopes, f"repository:{source}:pull"], mount=digest, mount_from=source)
            except RegistryHTTPError:
                sources.forget(self.engine.db, self.ref.domain, source, digest)
                continue
            if mounted:
                if layer_id:
                    self.progress.status(layer_id, f"Mounted from {source}")
                return
            break  # 202: the registry could not mount it, upload in the session it opened
        if not self.engine.content.has(digest):
            raise NotFoundError(
                f"blob {digest} of {self.ref.familiar()} is not in the local content store and the registry lacks it")
        # A session opened by a mount the registry declined serves the first attempt only.
        opened = [location] if location is not None else []
        await with_retries(lambda: self._upload(desc, layer_id, opened.pop() if opened else None),
                           on_retry=on_retry)
        if layer_id:
            self.progress.status(layer_id, "Pushed")

    async def _upload(self, desc: dict[str, Any], layer_id: str | None, location: Any) -> None:
        assert self.client is not None
        client = self.client
        digest, size = desc["digest"], int(desc["size"])
        path = self.engine.content.path(digest)
        if location is None:
            _, location = await client.start_upload(self.path, self.scopes)
        done = 0

        def sent(n: int) -> None:
            nonlocal done
            done += n
            if layer_id:
                self.progress.transfer(layer_id, "Pushing", done, size)

        if size < MONOLITHIC_LIMIT:
            await client.finish_upload(location, self.scopes, digest, size,
                                       body=lambda: _file_chunks(path, 0, size, sent))
            return
        offset = 0
        while offset < size:
            length = min(CHUNK_SIZE, size - offset)
            start = offset
            location = await client.patch_chunk(
                location, self.scopes, start, length, body=lambda: _file_chunks(path, start, length, sent))
            offset += length
        await client.finish_upload(location, self.scopes, digest)


async def _gather_or_fail(tasks: list[asyncio.Task]) -> None:
    """Wait for all tasks; the first failure is raised at once (the caller cancels the rest)."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()
