"""What dead processes left behind, and content nothing references any more.

Three kinds, each told from live work in its own way (never by age alone):
- temp objects (partial downloads, unfinished unpacks, staging dirs of import and load, layer
  dirs whose row was never written): each is flocked by its live owner (store/owned.py), so
  one we can lock belongs to a dead process;
- committed content no image uses (blobs, unpacked layers): a pull, import or load holds the
  image lease while it has such content, so it is collected only while the lease can be taken
  exclusive; otherwise it is left for a later run, which says so;
- container and volume directories without a row (a kill between ``rm``'s delete of the row and
  the removal of the files, or between a create's mkdir and its row). A create holds its new
  directory flocked until the row is written, so one we can lock is a dead process's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.store.owned import Leftover, collecting, remove_tree, scratch, unrecorded_dirs

if TYPE_CHECKING:
    from dockyard.engine import Engine

BUSY = "unreferenced blobs and layers were not looked at: a pull, import or load is running"


@dataclass
class Collected:
    """Leftovers found (or removed), and why part of the search was skipped, if it was."""

    items: list[Leftover] = field(default_factory=list)
    skipped: str = ""

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)


def temps(engine: "Engine") -> list[Leftover]:
    """Temp objects of dead processes in every store; nothing is removed."""
    return engine.content.leftovers() + engine.layers.leftovers() + scratch(engine.root).leftovers()


def reclaim_temps(engine: "Engine", keep: Callable[[Leftover], bool] | None = None) -> list[Leftover]:
    """Remove temp objects of dead processes (but those ``keep`` spares); returns what went."""
    return engine.content.ingest_area.reclaim(keep) + engine.layers.reclaim(keep) + scratch(engine.root).reclaim(keep)


# ---- committed content no image uses (call these while ``collecting``) -----------------------


def referenced_blobs(engine: "Engine") -> set[str]:
    """Every blob an image needs: its config, manifest and layers, and the repo digests
    (an index pulled by tag or digest); and the layer tars of the build cache."""
    db = engine.db
    store = engine.image_store
    refs: set[str] = set()
    for image in store.list():
        refs.update((image.id, image.manifest_digest))
        try:
            manifest = store.manifest(image)
            descriptors = [manifest.get("config")] + list(manifest.get("layers") or [])
            refs.update(d["digest"] for d in descriptors if isinstance(d, dict) and isinstance(d.get("digest"), str))
        except (DockyardError, ValueError, TypeError, AttributeError):
            # Unreadable manifest: keep every blob known to hold one of its layers.
            for row in db.execute(
                    "SELECT b.blob_digest FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id"
                    " JOIN layer_blobs b ON b.diff_id = l.diff_id WHERE il.image_id = ?", (image.id,)):
                refs.add(row[0])
    refs.update(r[0] for r in db.execute("SELECT digest FROM repo_digests"))
    # The build cache's layers keep the tars a build wrote of them (an image made from the
    # cache lists them); ``builder prune`` lets them go with the entries.
    refs.update(r[0] for r in db.execute(
        "SELECT b.blob_digest FROM build_cache c JOIN layers l ON l.chain_id = c.chain_id"
        " JOIN layer_blobs b ON b.diff_id = l.diff_id"))
    return refs


def unreferenced_blobs(engine: "Engine") -> list[Leftover]:
    content = engine.content
    refs = referenced_blobs(engine)
    out = []
    for digest in sorted(content.list()):
        if digest in refs:
            continue
        try:
            st = os.stat(content.file(digest))
        except FileNotFoundError:
            continue
        out.append(Leftover(content.file(digest), st.st_size, st.st_mtime, "unreferenced blob"))
    return out


def container_chains(engine: "Engine") -> set[str]:
    """Layers a container's rootfs stands on (even when its image was removed with -f)."""
    chains = set()
    for record in engine.containers.store.all():
        chain = record.config.get("ImageChain")
        while chain:
            chains.add(chain)
            row = engine.db.execute("SELECT parent FROM layers WHERE chain_id = ?", (chain,)).fetchone()
            chain = row[0] if row is not None else None
    return chains


def unused_layers(engine: "Engine") -> list[Leftover]:
    """Unpacked layers no image and no container uses, children before parents."""
    layers = engine.layers
    used = container_chains(engine)
    out = []
    for chain in layers.unused():
        if chain in used:
            continue
        row = engine.db.execute("SELECT size, created FROM layers WHERE chain_id = ?", (chain,)).fetchone()
        if row is not None:
            out.append(Leftover(layers.diff_dir(chain), row["size"], row["created"], "unused layer"))
    return out


def remove_unreferenced(engine: "Engine", item: Leftover) -> bool:
    """Delete an unreferenced blob or an unused layer found above (caller holds ``collecting``)."""
    if item.kind == "unused layer":
        chain = "sha256:" + os.path.basename(os.path.dirname(item.path))
        try:
            return engine.layers.delete(chain)
        except (ConflictError, NotFoundError):
            return False  # a child or an image appeared: not unused any more
    try:
        os.unlink(item.path)
        return True
    except FileNotFoundError:
        return False


# ---- container and volume dirs without a row --------------------------------------------------


def orphan_dirs(engine: "Engine") -> list[Leftover]:
    """Container and volume directories no row describes and no live create holds
    (``owned.recording_dir``); nothing is removed."""
    base = os.path.dirname(engine.containers.container_dir("0" * 64))
    out = [_dir_leftover(path, "container directory without a record")
           for path in unrecorded_dirs(engine.root, base, lambda name: engine.containers.store.get(name) is not None)]
    volumes = engine.volumes
    named = _volume_names_in_use(engine)
    out += [_dir_leftover(path, "volume directory without a record")
            for path in unrecorded_dirs(engine.root, str(volumes.base),
                                        lambda name: name in named or volumes.find(name) is not None)]
    return out


def remove_orphan_dir(engine: "Engine", item: Leftover) -> bool:
    """Remove a row-less container or volume dir; never through a mount (if the rootfs an
    ``rm`` left mounted cannot be unmounted, the dir stays and is found again next time)."""
    from dockyard.runtime import rootfs

    if item.kind.startswith("container"):
        rootfs.unmount(item.path)  # rm may have died before it unmounted the rootfs
    if not os.path.lexists(item.path) or _mounts_below(item.path):
        return False
    remove_tree(item.path)
    return True


def _mounts_below(path: str) -> bool:
    import re

    prefix = os.path.realpath(path) + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4]) for line in f]
    except OSError:
        return True  # cannot tell: do not risk it
    return any(point.startswith(prefix) for point in points)


def _dir_leftover(path: str, kind: str) -> Leftover:
    from dockyard.fsutil import tree_size

    return Leftover(path, tree_size(path), os.lstat(path).st_mtime, kind)


def _volume_names_in_use(engine: "Engine") -> set[str]:
    return {m.get("Name") for record in engine.containers.store.all()
            for m in record.config.get("Mounts") or [] if m.get("Type") == "volume"}


# ---- all of it at once: what prune runs ---------------------------------------------------------


def collect(engine: "Engine", *, remove: bool, dirs: bool = False, until: float | None = None) -> Collected:
    """Find (or, with ``remove``, remove) every leftover older than ``until`` (a time, None
    for all): temp objects of dead processes, with ``dirs`` row-less container and volume
    dirs, and, when no pull, import or load is alive, unreferenced blobs and unused layers."""
    result = Collected()

    def young(item: Leftover) -> bool:
        return until is not None and item.mtime >= until

    if remove:
        result.items += reclaim_temps(engine, keep=young)
    else:
        result.items += [item for item in temps(engine) if not young(item)]
    if dirs:
        result.items += collect_dirs(engine, remove=remove, until=until)
    with collecting(engine.root) as free:
        if not free:
            result.skipped = BUSY
            return result
        # Layers first: the blobs of those layers are unreferenced too, and go next.
        for item in unused_layers(engine) + unreferenced_blobs(engine):
            if not young(item) and (not remove or remove_unreferenced(engine, item)):
                result.items.append(item)
    return result


def collect_dirs(engine: "Engine", *, remove: bool, until: float | None = None) -> list[Leftover]:
    """Find (or remove) container and volume dirs without a row, older than ``until``."""
    return [item for item in orphan_dirs(engine)
            if (until is None or item.mtime < until) and (not remove or remove_orphan_dir(engine, item))]


def describe(engine: "Engine", item: Leftover) -> str:
    """``<what it is>: <where, relative to the root>``, as prune and check print it."""
    try:
        where = os.path.relpath(item.path, engine.root)
    except ValueError:
        where = item.path
    if where.startswith(".."):
        where = item.path
    return f"{item.kind}: {where}"
