"""The registry's index: repositories, tags, manifests, blob links and referrers.

Answers ``tags/list``, ``_catalog`` and the referrers API without walking the
storage tree (what makes distribution's catalog slow), and gives GC what it
marks from.

Two implementations behind one interface:

- ``SqliteIndex`` (filesystem storage): one sqlite database under the root, every
  change a transaction. It also records when each blob was last used (uploaded,
  linked, checked with HEAD, referenced by a manifest), which is what lets GC run
  while pushes go on.
- ``ObjectIndex`` (S3 storage): small objects under ``index/`` in the bucket, so
  that several registry processes sharing the bucket see each other's pushes at
  once, with no cache to invalidate. Each lookup is one GET/HEAD and each listing
  one LIST per 1000 entries (S3 lists keys in order, which is the pagination the
  API wants).
"""

from __future__ import annotations

import abc
import asyncio
import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.registry.errors import APIError
from dockyard.registry.storage import PathNotFound, StorageDriver


@dataclass
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)  # blobs and child manifests it references
    created: float = 0.0

    def descriptor(self) -> dict[str, Any]:
        """The descriptor the referrers API lists."""
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d


class Index(abc.ABC):
    @abc.abstractmethod
    async def link_blob(self, repo: str, digest: str, size: int | None = None) -> None: ...

    @abc.abstractmethod
    async def blob_linked(self, repo: str, digest: str) -> bool: ...

    @abc.abstractmethod
    async def unlink_blob(self, repo: str, digest: str) -> bool: ...

    async def touch_blobs(self, digests: list[str]) -> None:
        """Note that these blobs are in use now (GC keeps blobs used after it started)."""

    @abc.abstractmethod
    async def put_manifest(self, repo: str, record: ManifestRecord, tag: str | None,
                           blobs: list[str] = (), manifests: list[str] = ()) -> None:
        """Store the record (and tag) if every blob is linked in ``repo`` and every child
        manifest is in it; else raise MANIFEST_BLOB_UNKNOWN. The check and the write are
        one transaction where the index has them, so GC cannot remove a reference in between."""

    @abc.abstractmethod
    async def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None: ...

    @abc.abstractmethod
    async def delete_manifest(self, repo: str, digest: str) -> bool:
        """Remove the manifest, every tag on it and its referrers entry."""

    @abc.abstractmethod
    async def resolve(self, repo: str, tag: str) -> str | None: ...

    @abc.abstractmethod
    async def delete_tag(self, repo: str, tag: str) -> bool: ...

    @abc.abstractmethod
    async def repo_exists(self, repo: str) -> bool: ...

    @abc.abstractmethod
    async def tags(self, repo: str, n: int | None, last: str | None) -> list[str]: ...

    @abc.abstractmethod
    async def catalog(self, n: int | None, last: str | None) -> list[str]: ...

    @abc.abstractmethod
    async def referrers(self, repo: str, subject: str) -> list[ManifestRecord]: ...

    def close(self) -> None:
        return None


# --- sqlite ------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos(name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(digest TEXT PRIMARY KEY, size INTEGER, last_used REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links(repo TEXT, digest TEXT, PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_digest ON links(digest);
CREATE TABLE IF NOT EXISTS manifests(
    repo TEXT, digest TEXT, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    artifact_type TEXT, subject TEXT, annotations TEXT, created REAL NOT NULL,
    PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests(subject, repo);
CREATE INDEX IF NOT EXISTS manifests_digest ON manifests(digest);
CREATE TABLE IF NOT EXISTS refs(parent TEXT, child TEXT, PRIMARY KEY(parent, child)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_child ON refs(child);
CREATE TABLE IF NOT EXISTS tags(repo TEXT, tag TEXT, digest TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY(repo, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_digest ON tags(digest);
"""


class SqliteIndex(Index):
    """The index of a filesystem registry: ``<root>/index.db`` (WAL, so GC and the server
    can both use it; every write is a short transaction)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN ourselves, so transactions are explicit.
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def transaction(self, immediate: bool = True) -> "_Tx":
        return _Tx(self.db, immediate)

    # blobs
    async def link_blob(self, repo: str, digest: str, size: int | None = None) -> None:
        now = time.time()
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO repos(name) VALUES (?)", (repo,))
            self.db.execute("INSERT OR IGNORE INTO links(repo, digest) VALUES (?, ?)", (repo, digest))
            self._touch(digest, now, size)

    def _touch(self, digest: str, now: float, size: int | None = None) -> None:
        self.db.execute(
            "INSERT INTO blobs(digest, size, last_used) VALUES (?, ?, ?) ON CONFLICT(digest) DO UPDATE SET "
            "last_used = max(last_used, excluded.last_used), size = coalesce(excluded.size, size)",
            (digest, size, now))

    async def touch_blobs(self, digests: list[str]) -> None:
        now = time.time()
        with self.transaction():
            for d in digests:
                self._touch(d, now)

    async def blob_linked(self, repo: str, digest: str) -> bool:
        return self.db.execute("SELECT 1 FROM links WHERE repo = ? AND digest = ?", (repo, digest)).fetchone() is not None

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        with self.transaction():
            return self.db.execute("DELETE FROM links WHERE repo = ? AND digest = ?", (repo, digest)).rowcount > 0

    # manifests and tags
    async def put_manifest(self, repo: str, record: ManifestRecord, tag: str | None,
                           blobs: list[str] = (), manifests: list[str] = ()) -> None:
        now = time.time()
        with self.transaction():
            for blob in blobs:
                if not self.db.execute("SELECT 1 FROM links WHERE repo = ? AND digest = ?", (repo, blob)).fetchone():
                    raise APIError("MANIFEST_BLOB_UNKNOWN", {"digest": blob})
            for child in manifests:
                if not self.db.execute("SELECT 1 FROM manifests WHERE repo = ? AND digest = ?",
                                       (repo, child)).fetchone():
                    raise APIError("MANIFEST_BLOB_UNKNOWN", {"digest": child})
            self.db.execute("INSERT OR IGNORE INTO repos(name) VALUES (?)", (repo,))
            self.db.execute(
                "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (repo, record.digest, record.media_type, record.size, record.artifact_type, record.subject,
                 json.dumps(record.annotations) if record.annotations else None, now))
            self.db.executemany("INSERT OR IGNORE INTO refs(parent, child) VALUES (?, ?)",
                                [(record.digest, c) for c in record.refs])
            self.db.execute("INSERT OR IGNORE INTO links(repo, digest) VALUES (?, ?)", (repo, record.digest))
            self._touch(record.digest, now, record.size)
            for child in record.refs:
                self._touch(child, now)
            if tag is not None:
                self.db.execute("INSERT OR REPLACE INTO tags(repo, tag, digest, updated) VALUES (?, ?, ?, ?)",
                                (repo, tag, record.digest, now))

    async def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        row = self.db.execute(
            "SELECT digest, media_type, size, artifact_type, subject, annotations, created FROM manifests "
            "WHERE repo = ? AND digest = ?", (repo, digest)).fetchone()
        return _record(row) if row else None

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        with self.transaction():
            gone = self.db.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest)).rowcount
            self.db.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, digest))
            self.db.execute("DELETE FROM links WHERE repo = ? AND digest = ?", (repo, digest))
            return gone > 0

    async def resolve(self, repo: str, tag: str) -> str | None:
        row = self.db.execute("SELECT digest FROM tags WHERE repo = ? AND tag = ?", (repo, tag)).fetchone()
        return row[0] if row else None

    async def delete_tag(self, repo: str, tag: str) -> bool:
        with self.transaction():
            return self.db.execute("DELETE FROM tags WHERE repo = ? AND tag = ?", (repo, tag)).rowcount > 0

    # listings
    async def repo_exists(self, repo: str) -> bool:
        return self.db.execute("SELECT 1 FROM repos WHERE name = ?", (repo,)).fetchone() is not None

    async def tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        rows = self.db.execute("SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?",
                               (repo, last or "", -1 if n is None else n)).fetchall()
        return [r[0] for r in rows]

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        rows = self.db.execute("SELECT name FROM repos WHERE name > ? ORDER BY name LIMIT ?",
                               (last or "", -1 if n is None else n)).fetchall()
        return [r[0] for r in rows]

    async def referrers(self, repo: str, subject: str) -> list[ManifestRecord]:
        rows = self.db.execute(
            "SELECT digest, media_type, size, artifact_type, subject, annotations, created FROM manifests "
            "WHERE subject = ? AND repo = ? ORDER BY digest", (subject, repo)).fetchall()
        return [_record(r) for r in rows]


class _Tx:
    """``with index.transaction():`` BEGIN [IMMEDIATE] ... COMMIT, ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection, immediate: bool) -> None:
        self.db, self.immediate = db, immediate

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def _record(row: tuple) -> ManifestRecord:
    digest, media_type, size, artifact_type, subject, annotations, created = row
    return ManifestRecord(digest, media_type, size, artifact_type, subject,
                          json.loads(annotations) if annotations else {}, [], created)


# --- objects in the storage driver (S3) ---------------------------------------------------

def _dpath(digest: str) -> str:
    return digest.replace(":", "/", 1)


def _enc(repo: str) -> str:
    # Catalog keys are flat (no directory for "a" beside "a/b"); '%' is not in the name grammar.
    return repo.replace("/", "%2F")


class ObjectIndex(Index):
    """The index as small objects beside the blobs: the bucket is the only shared state."""

    def __init__(self, driver: StorageDriver, prefix: str = "index") -> None:
        self.d = driver
        self.p = prefix

    def _repo(self, repo: str) -> str:
        return f"{self.p}/repos/{repo}"

    async def _exists(self, path: str) -> bool:
        st = await self.d.stat(path)
        return st is not None and not st.is_dir

    async def _get(self, path: str) -> bytes | None:
        try:
            return await self.d.get(path)
        except PathNotFound:
            return None

    async def _delete(self, path: str) -> bool:
        try:
            await self.d.delete(path)
            return True
        except PathNotFound:
            return False

    async def _ensure_repo(self, repo: str) -> None:
        key = f"{self.p}/catalog/{_enc(repo)}"
        if not await self._exists(key):
            await self.d.put(key, b"")

    async def link_blob(self, repo: str, digest: str, size: int | None = None) -> None:
        key = f"{self._repo(repo)}/_links/{_dpath(digest)}"

        async def link() -> None:
            if not await self._exists(key):
                await self.d.put(key, b"")

        await asyncio.gather(self._ensure_repo(repo), link())

    async def blob_linked(self, repo: str, digest: str) -> bool:
        return await self._exists(f"{self._repo(repo)}/_links/{_dpath(digest)}")

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        return await self._delete(f"{self._repo(repo)}/_links/{_dpath(digest)}")

    async def put_manifest(self, repo: str, record: ManifestRecord, tag: str | None,
                           blobs: list[str] = (), manifests: list[str] = ()) -> None:
        # Each check is a HEAD: concurrently, so a 30-layer manifest costs one round trip, not 30.
        linked = await asyncio.gather(*(self.blob_linked(repo, b) for b in blobs),
                                      *(self._exists(self._manifest_key(repo, c)) for c in manifests))
        for ref, ok in zip([*blobs, *manifests], linked):
            if not ok:
                raise APIError("MANIFEST_BLOB_UNKNOWN", {"digest": ref})
        # Order matters without transactions: what a reader can reach is written last
        # (the tag, after the record it names; the rest is only found through them).
        record = ManifestRecord(**{**asdict(record), "created": time.time()})
        body = json.dumps(asdict(record)).encode()
        writes = [self.link_blob(repo, record.digest), self.d.put(self._manifest_key(repo, record.digest), body)]
        if record.subject:
            writes.append(self.d.put(
                f"{self._repo(repo)}/_referrers/{_dpath(record.subject)}/{_dpath(record.digest)}", body))
        await asyncio.gather(*writes)
        if tag is not None:
            await self.d.put(f"{self._repo(repo)}/_tags/{tag}", record.digest.encode())

    def _manifest_key(self, repo: str, digest: str) -> str:
        return f"{self._repo(repo)}/_manifests/{_dpath(digest)}"

    async def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        body = await self._get(f"{self._repo(repo)}/_manifests/{_dpath(digest)}")
        return ManifestRecord(**json.loads(body)) if body is not None else None

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        record = await self.get_manifest(repo, digest)
        if record is None:
            return False
        for tag in await self.tags(repo, None, None):
            if await self.resolve(repo, tag) == digest:
                await self._delete(f"{self._repo(repo)}/_tags/{tag}")
        if record.subject:
            await self._delete(f"{self._repo(repo)}/_referrers/{_dpath(record.subject)}/{_dpath(digest)}")
        await self._delete(f"{self._repo(repo)}/_manifests/{_dpath(digest)}")
        await self._delete(f"{self._repo(repo)}/_links/{_dpath(digest)}")
        return True

    async def resolve(self, repo: str, tag: str) -> str | None:
        body = await self._get(f"{self._repo(repo)}/_tags/{tag}")
        return body.decode() if body else None

    async def delete_tag(self, repo: str, tag: str) -> bool:
        return await self._delete(f"{self._repo(repo)}/_tags/{tag}")

    async def repo_exists(self, repo: str) -> bool:
        return await self._exists(f"{self.p}/catalog/{_enc(repo)}")

    async def tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        base = f"{self._repo(repo)}/_tags"
        keys = await self.d.list(base, start_after=f"{base}/{last}" if last else None, limit=n)
        return [k[len(base) + 1:] for k in keys]

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        base = f"{self.p}/catalog"
        keys = await self.d.list(base, start_after=f"{base}/{_enc(last)}" if last else None, limit=n)
        return [k[len(base) + 1:].replace("%2F", "/") for k in keys]

    async def referrers(self, repo: str, subject: str) -> list[ManifestRecord]:
        base = f"{self._repo(repo)}/_referrers/{_dpath(subject)}"
        out = []
        for key in await self.d.list(base):
            body = await self._get(key)
            if body is not None:
                out.append(ManifestRecord(**json.loads(body)))
        return out
