"""``system check``: an fsck of the root.

What it verifies, in this order (each repair lands before the next step looks):
1. leftovers of dead processes: partial downloads, unfinished unpacks, staging dirs;
2. every blob hashes to its digest; a layer blob's tar hashes to the diff ID its image's config
   names, and each unpacked layer made from it holds exactly the tar's tree (layercheck.py),
   with the size its row records;
3. every layer row has its dir and its parent;
4. every image has its manifest and config, they agree with its row, its layers are unpacked
   and their blobs are here; names point at images;
5. every container has its dir, its image's layers and its volumes; every volume its dir;
6. nothing is orphaned: container and volume dirs without a row, and (when no pull, import or
   load is running) blobs no image references and layers no image or container uses.

Each finding is an ``error`` (an inconsistency) or a ``leftover`` (something to reclaim).
``repair`` fixes what is safe to fix: leftovers and orphans go, rows pointing at nothing are
dropped, sizes corrected, missing dirs of containers and volumes are made again. What cannot be
fixed without losing data (a layer dir whose files differ from its tar, an image whose layer
blob is gone) is reported with what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from dockyard import digest as digests
from dockyard.errors import DockyardError
from dockyard.oci import mediatypes as mt
from dockyard.store.db import transaction
from dockyard.store.layers import chain_id
from dockyard.system import leftovers
from dockyard.system.layercheck import check_blob, compare_dir

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.store.images import Image
    from dockyard.store.owned import Leftover

ERROR = "error"
LEFTOVER = "leftover"


@dataclass
class Finding:
    severity: str                       # ERROR or LEFTOVER
    subject: str                        # "blob sha256:…", "image sha256:…", "content/ingest/…"
    problem: str
    size: int = 0                       # bytes a leftover holds
    repaired: str = ""                  # what repair did, empty if nothing

    def line(self) -> str:
        text = f"{self.severity}: {self.subject}: {self.problem}"
        return f"{text} ({self.repaired})" if self.repaired else text


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)   # what was looked at, by kind
    notes: list[str] = field(default_factory=list)          # parts skipped, and why

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    @property
    def clean(self) -> bool:
        return not self.remaining


def check(engine: "Engine", repair: bool = False) -> CheckReport:
    return _Checker(engine, repair).run()


@dataclass
class _LayerUse:
    chain: str
    diff_id: str
    compression: str


class _Checker:
    def __init__(self, engine: "Engine", repair: bool) -> None:
        self.engine = engine
        self.repair = repair
        self.report = CheckReport()
        # blob digest -> the unpacked layers made from it, from the images' manifests
        self.layer_uses: dict[str, list[_LayerUse]] = {}

    def run(self) -> CheckReport:
        self._temps()
        self._plan_images()
        self._blobs()
        self._layers()
        self._images()
        self._names()
        self._containers()
        self._volumes()
        self._orphans()
        return self.report

    def add(self, severity: str, subject: str, problem: str, fix: Callable[[], str] | None = None,
            size: int = 0) -> Finding:
        finding = Finding(severity, subject, problem, size)
        if self.repair and fix is not None:
            try:
                finding.repaired = fix()
            except (OSError, DockyardError) as e:
                finding.problem += f"; the repair failed: {e}"
        self.report.findings.append(finding)
        return finding

    # ---- 1. leftovers of dead processes

    def _temps(self) -> None:
        found = leftovers.temps(self.engine)
        items = [self.add(LEFTOVER, leftovers.describe(self.engine, item).partition(": ")[2],
                          f"{item.kind}, left by a process that is gone", size=item.size) for item in found]
        if self.repair and found:
            removed = {item.path for item in leftovers.reclaim_temps(self.engine)}
            for finding, item in zip(items, found):
                if item.path in removed or not os.path.lexists(item.path):
                    finding.repaired = "removed"

    # ---- 2. blobs, and the layers unpacked from them

    def _plan_images(self) -> None:
        """Which unpacked layer each layer blob made, from every readable manifest and config."""
        store = self.engine.image_store
        for image in store.list():
            try:
                manifest = store.manifest(image)
                config = store.config(image)
                descs = manifest.get("layers") or []
                diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            except (DockyardError, ValueError, TypeError, AttributeError):
                continue  # step 4 reports it
            parent = None
            for desc, diff_id in zip(descs, diff_ids):
                try:
                    chain = chain_id(parent, diff_id)
                    use = _LayerUse(chain, diff_id, mt.compression_of(desc["mediaType"]))
                except (KeyError, TypeError):
                    break
                uses = self.layer_uses.setdefault(desc["digest"], [])
                if all(u.chain != chain for u in uses):
                    uses.append(use)
                parent = chain

    def _blobs(self) -> None:
        content = self.engine.content
        count = 0
        for digest in sorted(content.list()):
            path = content.file(digest)
            uses = self.layer_uses.get(digest, [])
            try:
                result = check_blob(path, digests.algorithm_of(digest), uses[0].compression if uses else None)
            except FileNotFoundError:
                continue  # removed meanwhile
            count += 1
            if result.digest != digest:
                self.add(ERROR, f"blob {digest}", f"its content hashes to {result.digest}",
                         lambda d=digest: _done(content.delete(d), "removed"))
                continue
            if not uses:
                continue
            if result.error:
                self.add(ERROR, f"blob {digest}", f"is not a readable layer: {result.error}")
                continue
            for use in uses:
                if result.diff_id != use.diff_id:
                    self.add(ERROR, f"blob {digest}",
                             f"its tar hashes to {result.diff_id}, the image config says {use.diff_id}")
                    continue
                self._layer_content(use.chain, result)
        self.report.checked["blobs"] = count

    def _layer_content(self, chain: str, result: Any) -> None:
        layers = self.engine.layers
        row = self.engine.db.execute("SELECT size FROM layers WHERE chain_id = ?", (chain,)).fetchone()
        if row is None or not os.path.isdir(layers.diff_dir(chain)):
            return  # step 3 or 4 reports it
        for problem in compare_dir(layers.diff_dir(chain), result.expected):
            self.add(ERROR, f"layer {chain}", f"{problem} (remove the images that use it, then pull them again)")
        if row["size"] != result.size:
            def fix(size: int = result.size) -> str:
                with transaction(self.engine.db) as conn:
                    conn.execute("UPDATE layers SET size = ? WHERE chain_id = ?", (size, chain))
                return "size corrected"

            self.add(ERROR, f"layer {chain}", f"its row says {row['size']} bytes, its tar holds {result.size}", fix)

    # ---- 3. layer rows

    def _layers(self) -> None:
        layers = self.engine.layers
        rows = self.engine.db.execute("SELECT chain_id, parent FROM layers ORDER BY chain_id").fetchall()
        chains = {r["chain_id"] for r in rows}
        for r in rows:
            chain, parent = r["chain_id"], r["parent"]
            if not os.path.isdir(layers.diff_dir(chain)):
                self.add(ERROR, f"layer {chain}", "its directory is missing",
                         lambda c=chain: self._drop_layer(c))
            elif parent is not None and parent not in chains:
                self.add(ERROR, f"layer {chain}", f"its parent {parent} is missing",
                         lambda c=chain: self._drop_layer(c))
        self.report.checked["layers"] = len(rows)

    def _drop_layer(self, chain: str) -> str:
        """Drop a broken layer's row and those of the layers above it; their dirs go too.
        The images standing on them are broken then, and step 4 drops them."""
        db = self.engine.db
        doomed = [chain]
        for current in doomed:
            doomed += [r[0] for r in db.execute("SELECT chain_id FROM layers WHERE parent = ?", (current,))]
        with transaction(db) as conn:
            conn.executemany("DELETE FROM layers WHERE chain_id = ?", [(c,) for c in doomed])
        self.engine.layers.reclaim()  # their dirs have no row now
        return "dropped its row" if len(doomed) == 1 else f"dropped its row and the {len(doomed) - 1} above it"

    # ---- 4. images and names

    def _images(self) -> None:
        store = self.engine.image_store
        images = store.list()
        for image in images:
            problem = self._image_problem(image)
            if problem:
                self.add(ERROR, f"image {image.id}", problem, lambda i=image.id: self._drop_image(i))
                continue
            for desc in store.manifest(image).get("layers") or []:
                if not self.engine.content.has(desc["digest"]):
                    self.add(ERROR, f"image {image.id}",
                             f"its layer blob {desc['digest']} is missing (remove the image and pull it again)")
        self.report.checked["images"] = len(images)

    def _image_problem(self, image: "Image") -> str:
        """Why the image cannot be used, or ''."""
        store, content = self.engine.image_store, self.engine.content
        for what, digest in (("manifest", image.manifest_digest), ("config", image.id)):
            if not content.has(digest):
                return f"its {what} blob {digest} is missing"
        try:
            manifest = store.manifest(image)
            config = store.config(image)
            if manifest.get("config", {}).get("digest") != image.id:
                return "its manifest names another config"
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            if len(diff_ids) != len(manifest.get("layers") or []):
                return "its manifest and its config list different numbers of layers"
            parent, chains = None, []
            for diff_id in diff_ids:
                parent = chain_id(parent, diff_id)
                chains.append(parent)
        except (DockyardError, ValueError, TypeError, AttributeError) as e:
            return f"its manifest or config cannot be read: {e}"
        if chains != image.layers:
            return "its recorded layers are not those of its config"
        for chain in chains:
            if not self.engine.layers.has(chain):
                return f"its layer {chain} is missing"
        return ""

    def _drop_image(self, image_id: str) -> str:
        self.engine.image_store.delete(image_id, force=True)
        return "dropped its row and its names"

    def _names(self) -> None:
        db = self.engine.db
        for table, column in (("tags", "name"), ("repo_digests", "repository || '@' || digest")):
            rows = db.execute(f"SELECT {column} AS name, image_id FROM {table}"
                              " WHERE image_id NOT IN (SELECT id FROM images)").fetchall()
            for r in rows:
                def fix(t: str = table, c: str = column, name: str = r["name"]) -> str:
                    with transaction(db) as conn:
                        conn.execute(f"DELETE FROM {t} WHERE {c} = ?", (name,))
                    return "dropped"

                self.add(ERROR, f"name {r['name']}", f"points at image {r['image_id']}, which does not exist", fix)

    # ---- 5. containers and volumes

    def _containers(self) -> None:
        containers = self.engine.containers
        records = containers.store.all()
        for record in records:
            subject = f"container {record.id[:12]}"
            if not os.path.isdir(containers.container_dir(record.id)):
                if containers.store.get(record.id) is None:
                    continue  # removed meanwhile (a shim's --rm): row first, then the dir
                fix = None if record.running else (lambda cid=record.id: _done(containers.remove(cid), "removed"))
                self.add(ERROR, subject, "its directory is missing", fix)
                continue
            chain = record.config.get("ImageChain")
            if chain and not self.engine.layers.has(chain):
                self.add(ERROR, subject, f"its image's layer {chain} is missing (remove the container)")
            for m in record.config.get("Mounts") or []:
                if m.get("Type") == "volume" and m.get("Name") and self.engine.volumes.find(m["Name"]) is None:
                    self.add(ERROR, subject, f"its volume {m['Name']} has no record",
                             lambda n=m["Name"]: _done(self.engine.volumes.create(n), "volume recorded again"))
        self.report.checked["containers"] = len(records)

    def _volumes(self) -> None:
        volumes = self.engine.volumes.list()
        for volume in volumes:
            if not os.path.isdir(volume.mountpoint) and self.engine.volumes.find(volume.name) is not None:
                self.add(ERROR, f"volume {volume.name}", "its directory is missing",
                         lambda p=volume.mountpoint: _done(os.makedirs(p, exist_ok=True), "made again, empty"))
        self.report.checked["volumes"] = len(volumes)

    # ---- 6. orphans

    def _orphans(self) -> None:
        engine = self.engine
        for item in leftovers.orphan_dirs(engine):
            self._leftover(item, lambda i=item: leftovers.remove_orphan_dir(engine, i))
        from dockyard.store.owned import collecting

        with collecting(engine.root) as free:
            if not free:
                self.report.notes.append(leftovers.BUSY)
                return
            for item in leftovers.unused_layers(engine) + leftovers.unreferenced_blobs(engine):
                self._leftover(item, lambda i=item: leftovers.remove_unreferenced(engine, i))

    def _leftover(self, item: "Leftover", remove: Callable[[], bool]) -> None:
        if item.kind == "unreferenced blob":
            subject, problem = f"blob sha256:{os.path.basename(item.path)}", "no image references it"
        elif item.kind == "unused layer":
            subject, problem = f"layer sha256:{os.path.basename(os.path.dirname(item.path))}", "no image or container uses it"
        else:
            subject, problem = leftovers.describe(self.engine, item).partition(": ")[2], item.kind
        self.add(LEFTOVER, subject, problem, lambda: "removed" if remove() else "", size=item.size)


def _done(_: Any, what: str) -> str:
    return what


def summary_counts(report: CheckReport) -> dict[str, Any]:
    """Numbers for the CLI's last line."""
    remaining = report.remaining
    return {
        "errors": sum(f.severity == ERROR for f in report.findings),
        "leftovers": sum(f.severity == LEFTOVER for f in report.findings),
        "leftover_size": sum(f.size for f in report.findings if f.severity == LEFTOVER),
        "repaired": sum(bool(f.repaired) for f in report.findings),
        "remaining": len(remaining),
    }
