"""Online garbage collection for filesystem storage: mark from tags, sweep the rest,
while the server keeps accepting pushes.

Mark: every manifest a tag reaches (through index children, configs, layers and
the referrers of anything reached; without ``--delete-untagged`` every manifest is
a root) -- read from the index's ``refs`` table in one snapshot.

Sweep: a blob outside the mark is removed only if, re-checked inside a write
transaction of the index (the same lock the server's writes take):
  - it was last used (uploaded, linked, mounted, HEAD-checked, referenced by a
    manifest PUT) before the mark began minus a grace period (default one hour:
    a client uploads layers first and PUTs the manifest naming them last, so a
    blob uploaded just before the run is not garbage yet, only not referenced yet), and
  - no manifest row is that digest or references it.
The file is unlinked inside that transaction. The server marks a blob in use
(a write to the index) BEFORE it relies on the file (HEAD stats after touching;
an upload links before moving into place; a manifest PUT checks its references
in the transaction that stores it), so every interleaving either keeps the blob
or makes the client see it missing and upload it again. Nothing needs read-only
mode, unlike distribution's GC.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dockyard.errors import DockyardError
from dockyard.registry.index import SqliteIndex
from dockyard.registry.settings import Settings


@dataclass
class Report:
    marked: int = 0
    blobs: list[str] = field(default_factory=list)
    bytes: int = 0
    manifests: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def _blob_files(data: Path):
    """(digest, path, size) of every blob file, straight from the directory tree."""
    base = data / "blobs"
    if not base.is_dir():
        return
    for alg in os.scandir(base):
        if not alg.is_dir():
            continue
        for shard in os.scandir(alg.path):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                if entry.is_file() and not entry.name.startswith(".tmp-"):
                    yield f"{alg.name}:{entry.name}", entry.path, entry.stat().st_size


def mark(index: SqliteIndex, delete_untagged: bool) -> set[str]:
    db = index.db
    db.execute("BEGIN")  # one snapshot (WAL) for the whole mark
    try:
        roots = [r[0] for r in db.execute("SELECT DISTINCT digest FROM tags")]
        if not delete_untagged:
            roots += [r[0] for r in db.execute("SELECT DISTINCT digest FROM manifests")]
        children: dict[str, list[str]] = defaultdict(list)
        for parent, child in db.execute("SELECT parent, child FROM refs"):
            children[parent].append(child)
        for digest, subject in db.execute("SELECT digest, subject FROM manifests WHERE subject IS NOT NULL"):
            children[subject].append(digest)  # a referrer lives as long as its subject
    finally:
        db.execute("COMMIT")
    marked: set[str] = set()
    stack = roots
    while stack:
        digest = stack.pop()
        if digest not in marked:
            marked.add(digest)
            stack.extend(children.get(digest, ()))
    return marked


DEFAULT_GRACE = 3600.0


def collect(settings: Settings, *, dry_run: bool = False, delete_untagged: bool = False,
            grace: float = DEFAULT_GRACE, echo: Callable[[str], None] | None = None) -> Report:
    if settings.storage != "filesystem":
        raise DockyardError("gc works on filesystem storage (--root); S3 storage is not supported yet")
    root = Path(settings.root)
    if not (root / "index.db").exists():
        raise DockyardError(f"{root} is not a registry root (no index.db)")
    say = echo or (lambda _msg: None)
    began = time.monotonic()
    report = Report()
    index = SqliteIndex(root / "index.db")
    try:
        # Anything used after this instant is kept, whatever the mark says.
        mark_start = time.time() - grace
        marked = mark(index, delete_untagged)
        report.marked = len(marked)
        db = index.db
        if delete_untagged:
            rows = db.execute("SELECT repo, digest FROM manifests WHERE created < ?", (mark_start,)).fetchall()
            for repo, digest in rows:
                if digest in marked:
                    continue
                with index.transaction():
                    if _manifest_in_use(db, repo, digest, mark_start):
                        continue
                    report.manifests.append((repo, digest))
                    say(f"{'would remove' if dry_run else 'removing'} manifest {repo}@{digest}")
                    if not dry_run:
                        db.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
                        db.execute("DELETE FROM links WHERE repo = ? AND digest = ?", (repo, digest))
        for digest, path, size in list(_blob_files(root / "data")):
            if digest in marked:
                continue
            with index.transaction():
                if _blob_in_use(db, digest, mark_start, dry_run and delete_untagged, report):
                    continue
                report.blobs.append(digest)
                report.bytes += size
                say(f"{'would remove' if dry_run else 'removing'} blob {digest}")
                if not dry_run:
                    db.execute("DELETE FROM links WHERE digest = ?", (digest,))
                    db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
                    db.execute("DELETE FROM refs WHERE parent = ?", (digest,))
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
    finally:
        index.close()
    report.seconds = time.monotonic() - began
    return report


def _recently_used(db, digest: str, mark_start: float) -> bool:
    row = db.execute("SELECT last_used FROM blobs WHERE digest = ?", (digest,)).fetchone()
    return row is not None and row[0] >= mark_start


def _manifest_in_use(db, repo: str, digest: str, mark_start: float) -> bool:
    if db.execute("SELECT 1 FROM tags WHERE repo = ? AND digest = ?", (repo, digest)).fetchone():
        return True
    if _recently_used(db, digest, mark_start):
        return True
    # a child of a manifest in the same repository (an index pushed during the mark)
    return db.execute("SELECT 1 FROM refs r JOIN manifests m ON m.digest = r.parent "
                      "WHERE r.child = ? AND m.repo = ? AND m.digest != ?", (digest, repo, digest)).fetchone() is not None


def _blob_in_use(db, digest: str, mark_start: float, simulated: bool, report: Report) -> bool:
    if _recently_used(db, digest, mark_start):
        return True
    removed = {d for _, d in report.manifests} if simulated else set()
    rows = db.execute("SELECT digest FROM manifests WHERE digest = ?", (digest,)).fetchall()
    if any(r[0] not in removed for r in rows):
        return True
    parents = db.execute("SELECT DISTINCT m.digest FROM refs r JOIN manifests m ON m.digest = r.parent "
                         "WHERE r.child = ?", (digest,)).fetchall()
    return any(p[0] not in removed for p in parents)
