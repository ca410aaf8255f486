"""The image store: which images exist, their layers, and the names pointing at them.

An image is identified, as in Docker, by the digest of its config blob. Tags
(``docker.io/library/nginx:latest``) and repo digests (``docker.io/library/nginx@sha256:..``,
the manifest or index digest a registry knows it by) point at image IDs. The blobs
themselves (manifest, config, layers) live in the content store.
"""

from __future__ import annotations

import json
import re
import sqlite3
import _thread  # a lock is all it takes: threading itself is not loaded on run's path
import time

from dockyard import reference as references
from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.oci.mediatypes import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE
from dockyard.records import field, record
from dockyard.store import db
from dockyard.store.content import ContentStore

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any, Iterable

_ID_PREFIX = re.compile(r"^(sha256:)?[a-f0-9]{1,64}$")


@record
class Image:
    id: str                          # config digest
    manifest_digest: str
    manifest_media_type: str
    created: str | None
    size: int                        # bytes of all unpacked layers
    added_at: float
    layers: list[str] = field(default_factory=list)        # chain IDs, base first
    tags: list[str] = field(default_factory=list)          # normalized references
    repo_digests: list[str] = field(default_factory=list)  # "repository@digest"

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]


class ImageStore:
    def __init__(self, conn: sqlite3.Connection, content: ContentStore) -> None:
        self.conn = conn
        self.content = content
        self._lock = _thread.allocate_lock()  # one connection, shared by pull's threads

    # ---- reading -----------------------------------------------------------------

    def get(self, image_id: str) -> Image:
        with self._lock:
            row = self.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"No such image: {image_id}")
            return self._load(row)

    def exists(self, image_id: str) -> bool:
        with self._lock:
            return self.conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is not None

    def list(self) -> list[Image]:
        with self._lock:
            rows = self.conn.execute("SELECT * FROM images ORDER BY added_at DESC").fetchall()
            return [self._load(r) for r in rows]

    def lookup(self, name: str) -> Image:
        """Resolve what a user typed: a reference, a full ID, or a unique ID prefix (as Docker)."""
        image = self.find(name)
        if image is None:
            raise NotFoundError(f"No such image: {name}")
        return image

    def find(self, name: str) -> Image | None:
        with self._lock:
            image_id = self._resolve(name)
            if image_id is None:
                return None
            row = self.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
            return self._load(row) if row else None

    def _resolve(self, name: str) -> str | None:
        if name.startswith("sha256:") and len(name) == 71:
            row = self.conn.execute("SELECT id FROM images WHERE id = ?", (name,)).fetchone()
            return row["id"] if row else None
        try:
            ref = references.parse(name)
        except DockyardError:
            ref = None
        if ref is not None:
            if ref.digest:
                row = self.conn.execute(
                    "SELECT image_id FROM repo_digests WHERE repository = ? AND digest = ?",
                    (ref.repository, ref.digest),
                ).fetchone()
                if row is None:  # an image pulled by its manifest digest under another name
                    row = self.conn.execute(
                        "SELECT id AS image_id FROM images WHERE manifest_digest = ?", (ref.digest,)
                    ).fetchone()
                if row:
                    return row["image_id"]
            else:
                row = self.conn.execute("SELECT image_id FROM tags WHERE name = ?", (str(ref),)).fetchone()
                if row:
                    return row["image_id"]
        if _ID_PREFIX.match(name):
            prefix = name if name.startswith("sha256:") else "sha256:" + name
            rows = self.conn.execute(
                "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
            ).fetchall()
            if len(rows) > 1:
                raise DockyardError(f"ambiguous image ID prefix {name!r}: it matches more than one image")
            if rows:
                return rows[0]["id"]
        return None

    def _load(self, row: sqlite3.Row) -> Image:
        image_id = row["id"]
        layers = [r[0] for r in self.conn.execute(
            "SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position", (image_id,))]
        tags = [r[0] for r in self.conn.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]
        digests = [f"{r[0]}@{r[1]}" for r in self.conn.execute(
            "SELECT repository, digest FROM repo_digests WHERE image_id = ? ORDER BY repository", (image_id,))]
        return Image(
            id=image_id,
            manifest_digest=row["manifest_digest"],
            manifest_media_type=row["manifest_media_type"],
            created=row["created"],
            size=row["size"],
            added_at=row["added_at"],
            layers=layers,
            tags=tags,
            repo_digests=digests,
        )

    def config(self, image: Image) -> dict[str, Any]:
        return json.loads(self.content.read_bytes(image.id, limit=MAX_CONFIG_SIZE))

    def manifest(self, image: Image) -> dict[str, Any]:
        return json.loads(self.content.read_bytes(image.manifest_digest, limit=MAX_MANIFEST_SIZE))

    def referenced_chains(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self.conn.execute("SELECT DISTINCT chain_id FROM image_layers")}

    # ---- writing (each method one transaction) -----------------------------------

    def add(
        self,
        image: Image,
        tags: Iterable[str] = (),
        repo_digest: tuple[str, str] | None = None,
    ) -> Image:
        """Record an image (idempotent), move ``tags`` to it, remember its repo digest."""
        with self._lock, db.transaction(self.conn):
            exists = self.conn.execute("SELECT 1 FROM images WHERE id = ?", (image.id,)).fetchone()
            if not exists:
                self.conn.execute(
                    "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (image.id, image.manifest_digest, image.manifest_media_type, image.created,
                     image.size, image.added_at or time.time()),
                )
                self.conn.executemany(
                    "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?)",
                    [(image.id, i, c) for i, c in enumerate(image.layers)],
                )
            for tag in tags:
                self.conn.execute("INSERT OR REPLACE INTO tags (name, image_id) VALUES (?, ?)", (tag, image.id))
            if repo_digest is not None:
                self.conn.execute(
                    "INSERT OR REPLACE INTO repo_digests (repository, digest, image_id) VALUES (?, ?, ?)",
                    (repo_digest[0], repo_digest[1], image.id),
                )
        return self.get(image.id)

    def tag(self, image_id: str, name: str) -> None:
        with self._lock, db.transaction(self.conn):
            if not self.conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone():
                raise NotFoundError(f"No such image: {image_id}")
            self.conn.execute("INSERT OR REPLACE INTO tags (name, image_id) VALUES (?, ?)", (name, image_id))

    def untag(self, name: str) -> str:
        """Remove one tag; returns the image ID it pointed at."""
        with self._lock, db.transaction(self.conn):
            row = self.conn.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"No such image: {name}")
            self.conn.execute("DELETE FROM tags WHERE name = ?", (name,))
            return row["image_id"]

    def remove_repo_digest(self, repository: str, digest: str) -> None:
        with self._lock, db.transaction(self.conn):
            self.conn.execute(
                "DELETE FROM repo_digests WHERE repository = ? AND digest = ?", (repository, digest))

    def delete(self, image_id: str, force: bool = False) -> None:
        """Delete the image record and every name pointing at it (layers are the layer store's)."""
        with self._lock, db.transaction(self.conn):
            if not force:
                n = self.conn.execute("SELECT COUNT(*) FROM tags WHERE image_id = ?", (image_id,)).fetchone()[0]
                if n > 1:
                    raise ConflictError(
                        f"unable to delete {image_id[7:19]} (must be forced) - image is referenced in multiple repositories")
            self.conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
