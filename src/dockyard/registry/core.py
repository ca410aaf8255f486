"""The state one registry process serves from: settings, storage, index, uploads, auth."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from dockyard.registry.auth import Authorizer, from_settings
from dockyard.registry.index import Index, ObjectIndex, SqliteIndex
from dockyard.registry.settings import Settings
from dockyard.registry.storage import PathNotFound, StorageDriver, open_driver
from dockyard.registry.uploads import UPLOADS, SharedUploads, UploadManager, blob_path

INDEX_FILE = "index.db"


class ManifestCache:
    """Manifest bytes by digest (immutable content, so never stale): parallel pulls of
    one image read its manifest once. Bounded by total size."""

    def __init__(self, limit: int = 32 << 20) -> None:
        self.limit, self.used = limit, 0
        self.items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, digest: str) -> bytes | None:
        body = self.items.get(digest)
        if body is not None:
            self.items.move_to_end(digest)
        return body

    def put(self, digest: str, body: bytes) -> None:
        if digest in self.items or len(body) > self.limit // 4:
            return
        self.items[digest] = body
        self.used += len(body)
        while self.used > self.limit:
            _, old = self.items.popitem(last=False)
            self.used -= len(old)


class Registry:
    def __init__(self, settings: Settings, driver: StorageDriver | None = None, index: Index | None = None,
                 auth: Authorizer | None = None) -> None:
        self.settings = settings
        self.auth = auth or from_settings(settings)  # first: a bad auth setting creates nothing
        self.driver = driver or open_driver(settings)
        if index is None:
            if self.driver.name == "filesystem":
                index = SqliteIndex(Path(settings.root) / INDEX_FILE)
            else:
                index = ObjectIndex(self.driver)
        self.index = index
        # On the filesystem one process owns the root: sessions in memory, hashed as they
        # arrive. On S3 several replicas share the bucket: sessions in it, for any of them.
        self.uploads: UploadManager | SharedUploads = (
            UploadManager(self.driver, self.index) if self.driver.name == "filesystem"
            else SharedUploads(self.driver, self.index))
        self.manifests = ManifestCache()

    async def start(self) -> None:
        # Staged bytes of a previous run's sessions can never be finished: drop them.
        # (S3 replicas share the bucket: there sessions go on; ``expire`` removes idle ones.)
        if self.driver.name == "filesystem":
            try:
                await self.driver.delete(UPLOADS)
            except PathNotFound:
                pass

    async def close(self) -> None:
        await self.uploads.close()
        await self.driver.close()
        self.index.close()

    async def manifest_bytes(self, digest: str) -> bytes | None:
        body = self.manifests.get(digest)
        if body is None:
            try:
                body = await self.driver.get(blob_path(digest))
            except PathNotFound:
                return None
            self.manifests.put(digest, body)
        return body
