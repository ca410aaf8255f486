"""The layer store: each layer unpacked once, keyed by chain ID, shared by images.

Layout under ``<root>/layers``::

    <chain-id-hex>/diff    an unpacked layer, usable as an overlayfs lowerdir
    tmp/<random>           unpacks in progress and layers being deleted
    locks/<chain-id-hex>   flock files: one unpack per chain at a time
    locks/tmp              held shared while a temp dir is created, exclusive by reclaim

A layer appears under its final name only by ``rename`` after its diff ID was
verified, and the ``layers`` row is written after that, so a kill -9 leaves at
worst a temp dir or a final dir without a row, both invisible to ``has()`` and
removed by ``reclaim()``. Every temp dir is flocked by the process using it
(store/owned.py), which is how ``reclaim()`` tells abandoned ones from live ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import _thread  # a lock is all it takes: threading itself is not loaded on run's path
import time

from dockyard import digest as digests
from dockyard.atomicfile import fsync_dir
from dockyard.errors import ConflictError, NotFoundError
from dockyard.records import record
from dockyard.store.db import transaction
from dockyard.store.owned import Leftover, TempArea, lock_or_close, remove_tree

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO, Callable, Iterator
    from dockyard.store import archive  # imported where layers are unpacked: tarfile is not on the run path


def chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain ID: the diff ID for a base layer, else sha256 of "<parent> <diff_id>"."""
    if parent is None:
        return diff_id
    from dockyard.digest import small_sha256  # not OpenSSL's: a few bytes, and its import costs more

    return "sha256:" + small_sha256(f"{parent} {diff_id}".encode())


@record(frozen=True)
class LayerInfo:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


class LayerStore:
    # Paths are strings here: this store opens on `run`'s path, which does not load pathlib
    # (see config.py); ``path`` gives callers a Path.
    def __init__(self, root: str | os.PathLike, conn: sqlite3.Connection) -> None:
        self.root = os.path.join(root, "layers")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.locks_dir = os.path.join(self.root, "locks")
        for d in (self.root, self.tmp_dir, self.locks_dir):
            os.makedirs(d, exist_ok=True)
        self.tmp_area = TempArea(self.tmp_dir, os.path.join(self.locks_dir, "tmp"), "unfinished layer unpack or removal")
        self._conn = conn
        # One connection, many threads: a statement of one thread must not land inside
        # another thread's transaction.
        self._db_lock = _thread.allocate_lock()

    # ------------------------------------------------------------------ queries

    def diff_dir(self, chain_id: str) -> str:
        """The diff directory of a layer (whether or not it exists)."""
        return os.path.join(self._layer_dir(chain_id), "diff")

    def path(self, chain_id: str) -> "Path":
        """``diff_dir`` as a Path."""
        from pathlib import Path

        return Path(self.diff_dir(chain_id))

    def has(self, chain_id: str) -> bool:
        return self._row(chain_id) is not None and os.path.isdir(self.diff_dir(chain_id))

    def get(self, chain_id: str) -> LayerInfo:
        row = self._row(chain_id)
        if row is None:
            raise NotFoundError(f"layer {chain_id} not found in the layer store")
        return _info(row)

    def lowerdirs(self, chain_id: str) -> list[str]:
        """Diff dirs from ``chain_id`` down to its base: the order overlayfs wants in lowerdir=."""
        dirs: list[str] = []
        current: str | None = chain_id
        while current is not None:
            info = self.get(current)
            dirs.append(self.diff_dir(current))
            current = info.parent
        return dirs

    def children(self, chain_id: str) -> list[str]:
        rows = self._query("SELECT chain_id FROM layers WHERE parent = ? ORDER BY chain_id", (chain_id,))
        return [r["chain_id"] for r in rows]

    def unused(self, older_than: float = 0.0) -> list[str]:
        """Layers no image needs, children before parents (the order to delete them in).

        A layer is needed when an image or a build cache entry lists it, or when it is an
        ancestor of one that is.
        ``older_than`` (seconds) spares layers unpacked more recently than that: a pull in
        progress has unpacked layers before it records the image that uses them.
        """
        rows = self._query(
            """
            WITH RECURSIVE used(id) AS (
                SELECT chain_id FROM image_layers
                UNION
                SELECT chain_id FROM build_cache WHERE chain_id != ''
                UNION
                SELECT l.parent FROM layers l JOIN used u ON l.chain_id = u.id WHERE l.parent IS NOT NULL
            )
            SELECT chain_id FROM layers WHERE chain_id NOT IN (SELECT id FROM used) AND created <= ?
            """,
            (time.time() - older_than,),
        )
        parents = {r["chain_id"]: r["parent"] for r in self._query("SELECT chain_id, parent FROM layers")}
        return sorted((r["chain_id"] for r in rows), key=lambda c: (-_depth(c, parents), c))

    def total_size(self) -> int:
        rows = self._query("SELECT COALESCE(SUM(size), 0) AS total FROM layers")
        return int(rows[0]["total"])

    def blobs_for(self, diff_id: str) -> list[tuple[str, str, int]]:
        rows = self._query(
            "SELECT blob_digest, media_type, size FROM layer_blobs WHERE diff_id = ? ORDER BY blob_digest", (diff_id,)
        )
        return [(r["blob_digest"], r["media_type"], r["size"]) for r in rows]

    # ------------------------------------------------------------------ changes

    def record_blob(self, diff_id: str, blob_digest: str, media_type: str, size: int) -> None:
        """Remember a compressed form of a diff ID (what push and save can send instead of re-packing)."""
        digests.validate(diff_id)
        digests.validate(blob_digest)
        known = self._query("SELECT media_type, size FROM layer_blobs WHERE diff_id = ? AND blob_digest = ?",
                            (diff_id, blob_digest))
        if known and (known[0]["media_type"], known[0]["size"]) == (media_type, size):
            return   # already known as it is: no write (a cached build re-records every layer)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO layer_blobs (diff_id, blob_digest, media_type, size) VALUES (?, ?, ?, ?)",
                (diff_id, blob_digest, media_type, size),
            )

    def unpack(self, blob: BinaryIO, compression: str | None, diff_id: str | None, parent: str | None) -> LayerInfo:
        """Unpack a layer blob on top of ``parent`` unless that chain is already here.

        With ``diff_id`` known, an existing chain returns at once without reading ``blob``,
        and concurrent unpackers of one chain (threads or processes) wait for the first
        and reuse its result. With ``diff_id`` None (``import``) it is computed first.
        """
        if diff_id is not None:
            digests.validate(diff_id)
            cid = chain_id(parent, diff_id)
            if self.has(cid):
                return self.get(cid)
        self._require_parent(parent)
        if diff_id is None:
            return self._unpack_unknown(blob, compression, parent)
        with self._chain_lock(cid):
            if self.has(cid):  # another unpacker finished while we waited
                return self.get(cid)
            with self.tmp_area.new_dir() as tmp:  # removed unless renamed into place
                result = self._extract(blob, compression, diff_id, tmp)
                return self._commit(tmp, cid, result.diff_id, parent, result.size)

    def adopt(self, directory: str, diff_id: str, parent: str | None, size: int) -> LayerInfo:
        """Make ``directory`` (holding only ``diff/``, already on this filesystem: a committed
        snapshot) the layer ``diff_id`` on ``parent``, by rename. If that chain exists
        already, it is returned and ``directory`` is left to its owner to remove."""
        digests.validate(diff_id)
        self._require_parent(parent)
        cid = chain_id(parent, diff_id)
        with self._chain_lock(cid):
            if self.has(cid):
                return self.get(cid)
            return self._commit(directory, cid, diff_id, parent, size)

    def delete(self, chain_id: str) -> bool:
        """Remove a layer no image and no child layer uses. False if it was not there."""
        with self._chain_lock(chain_id):
            with self._transaction() as conn:
                if conn.execute("SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)).fetchone() is None:
                    found = False
                else:
                    self._check_unused(conn, chain_id)
                    conn.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,))
                    found = True
            layer_dir = self._layer_dir(chain_id)
            if os.path.exists(layer_dir):  # also an orphan left by a kill between rename and insert
                self._discard(layer_dir)
                found = True
        return found

    def leftovers(self) -> list[Leftover]:
        """What dead unpacks and deletes left (temp dirs, final dirs without a row); nothing
        is removed."""
        return self.tmp_area.leftovers() + self._orphans(remove=False)

    def reclaim(self, keep: Callable[[Leftover], bool] | None = None) -> list[Leftover]:
        """Remove what dead unpacks and deletes left (but what ``keep`` spares); returns what
        went. Safe while other unpacks run: their dirs are locked."""
        return self.tmp_area.reclaim(keep) + self._orphans(remove=True, keep=keep)

    def _orphans(self, remove: bool, keep: Callable[[Leftover], bool] | None = None) -> list[Leftover]:
        """Final dirs that never got their row (a kill between rename and insert), found under
        their chain lock (an unpack holding it is about to write the row)."""
        found = []
        for cid in self._rowless_dirs():
            fd = lock_or_close(self._lock_fd(cid))
            if fd is None:
                continue
            try:
                if self._row(cid) is not None or not os.path.isdir(self._layer_dir(cid)):
                    continue
                item = self._orphan_leftover(cid)
                if remove:
                    if keep is not None and keep(item):
                        continue
                    self._discard(self._layer_dir(cid))
                found.append(item)
            finally:
                os.close(fd)
        return found

    def _rowless_dirs(self) -> list[str]:
        """Chain IDs of the layer dirs without a row (a kill between rename and insert)."""
        out = []
        for entry in os.scandir(self.root):
            cid = f"sha256:{entry.name}"
            if entry.name not in ("tmp", "locks") and digests.is_digest(cid) and self._row(cid) is None:
                out.append(cid)
        return sorted(out)

    # ------------------------------------------------------------------ unpack steps

    def _require_parent(self, parent: str | None) -> None:
        if parent is not None and not self.has(parent):
            raise NotFoundError(f"parent layer {parent} not found in the layer store")

    def _unpack_unknown(self, blob: BinaryIO, compression: str | None, parent: str | None) -> LayerInfo:
        # The chain ID is known only after the whole stream was read: unpack first, then
        # take the chain lock to move it in (or drop it if someone else was faster).
        with self.tmp_area.new_dir() as tmp:  # removed unless renamed into place
            result = self._extract(blob, compression, None, tmp)
            cid = chain_id(parent, result.diff_id)
            with self._chain_lock(cid):
                if self.has(cid):
                    return self.get(cid)
                return self._commit(tmp, cid, result.diff_id, parent, result.size)

    def _extract(self, blob: BinaryIO, compression: str | None, diff_id: str | None, tmp: str) -> archive.ExtractResult:
        from pathlib import Path

        from dockyard.store import archive

        diff = Path(tmp, "diff")
        diff.mkdir(mode=0o755)
        return archive.extract(archive.open_decompressed(blob, compression), diff, diff_id=diff_id)

    def _commit(self, tmp: str, cid: str, diff_id: str, parent: str | None, size: int) -> LayerInfo:
        """Rename the unpacked dir into place, then record it. Caller holds the chain lock."""
        final = self._layer_dir(cid)
        if os.path.exists(final):
            self._discard(final)  # an orphan from a kill between rename and insert, or a row-less dir
        os.chmod(tmp, 0o711)
        os.rename(tmp, final)
        fsync_dir(self.root)
        info = LayerInfo(chain_id=cid, diff_id=diff_id, parent=parent, size=size)
        try:
            with self._transaction() as conn:
                # The parent could have been deleted while we unpacked.
                if parent is not None and conn.execute("SELECT 1 FROM layers WHERE chain_id = ?", (parent,)).fetchone() is None:
                    raise NotFoundError(f"parent layer {parent} was deleted during the unpack")
                conn.execute(
                    "INSERT OR REPLACE INTO layers (chain_id, diff_id, parent, size, created) VALUES (?, ?, ?, ?, ?)",
                    (cid, diff_id, parent, size, time.time()),
                )
        except BaseException:
            self._discard(final)
            raise
        return info

    def _check_unused(self, conn: sqlite3.Connection, cid: str) -> None:
        image = conn.execute("SELECT image_id FROM image_layers WHERE chain_id = ? LIMIT 1", (cid,)).fetchone()
        if image is not None:
            raise ConflictError(f"layer {cid} is used by image {image['image_id']}")
        if conn.execute("SELECT 1 FROM build_cache WHERE chain_id = ? LIMIT 1", (cid,)).fetchone() is not None:
            raise ConflictError(f"layer {cid} is used by the build cache")
        child = conn.execute("SELECT chain_id FROM layers WHERE parent = ? LIMIT 1", (cid,)).fetchone()
        if child is not None:
            raise ConflictError(f"layer {cid} is the parent of layer {child['chain_id']}")

    def _orphan_leftover(self, cid: str) -> Leftover:
        path = self._layer_dir(cid)
        from dockyard.fsutil import tree_size

        return Leftover(path, tree_size(path), os.lstat(path).st_mtime, "layer without a record")

    # ------------------------------------------------------------------ files and locks

    def _layer_dir(self, cid: str) -> str:
        return os.path.join(self.root, digests.hex_of(cid))

    def _lock_fd(self, cid: str) -> int:
        return os.open(os.path.join(self.locks_dir, digests.hex_of(cid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @contextlib.contextmanager
    def _chain_lock(self, cid: str) -> Iterator[None]:
        """One unpack (or delete) per chain across threads and processes: each holder opens
        its own file description, so flock excludes threads of one process too."""
        fd = self._lock_fd(cid)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the description releases the lock

    def _discard(self, layer_dir: str) -> None:
        """Remove a layer dir atomically: rename it into tmp/ (locked, so reclaim leaves it
        to us), then delete the tree at leisure."""
        trash = os.path.join(self.tmp_dir, f"trash-{os.urandom(16).hex()}")
        fd = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(layer_dir, trash)
            remove_tree(trash)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ database

    def _row(self, cid: str) -> sqlite3.Row | None:
        rows = self._query("SELECT chain_id, diff_id, parent, size FROM layers WHERE chain_id = ?", (cid,))
        return rows[0] if rows else None

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._db_lock:
            return self._conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock, transaction(self._conn) as conn:
            yield conn


def _info(row: sqlite3.Row) -> LayerInfo:
    return LayerInfo(chain_id=row["chain_id"], diff_id=row["diff_id"], parent=row["parent"], size=row["size"])


def _depth(cid: str, parents: dict[str, str | None]) -> int:
    depth = 0
    current = parents.get(cid)
    while current is not None and depth <= len(parents):
        depth += 1
        current = parents.get(current)
    return depth
