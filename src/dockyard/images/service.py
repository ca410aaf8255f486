"""``engine.images``: the image verbs (list, tag, remove, inspect, history, prune, disk
usage, save, load, import; pull and push delegate to ``dockyard.distribution``).

Names go in as the user typed them (``nginx``, ``sha256:ab..``, ``ab12``) and come
out normalized in the store (``docker.io/library/nginx:latest``) and familiar in
results (``nginx:latest``), as Docker's daemon returns them.

Removal follows Docker's daemon (image_delete.go): removing a tag only untags while
other names remain; the last name removed deletes the image, then the layers no
image uses any more, then the blobs no image needs any more.
"""

from __future__ import annotations

import time

from dockyard import reference as references
from dockyard.errors import ConflictError, DockyardError, InvalidReferenceError, NotFoundError
from dockyard.records import field
from dockyard.records import record as dataclass  # not dataclasses: ~10 ms of start-up (records.py)

# Neither json nor re at the top (re and its enum cost ~5 ms): the listing needs neither, and
# the paths that do (filters, rmi's conflict message) import them.
TYPE_CHECKING = False  # typing costs every image listing ~3 ms of start-up
if TYPE_CHECKING:
    import re
    from typing import Any, BinaryIO, Iterable, Mapping, Sequence

    from dockyard.engine import Engine
    from dockyard.oci.platform import Platform
    from dockyard.reference import Reference
    from dockyard.store.images import Image
    from dockyard.store.owned import Leftover

# Filters `images --filter` and `image prune --filter` accept, as Docker's daemon.
LIST_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"label", "until"})


@dataclass
class ImageSummary:
    """One image as ``docker images`` gets it from the daemon."""

    id: str
    repo_tags: list[str]        # familiar: "nginx:latest"
    repo_digests: list[str]     # familiar: "nginx@sha256:..."
    created: float | None       # epoch seconds, from the config
    size: int                   # bytes of its unpacked layers
    shared_size: int = -1       # bytes of its layers other images use too (system df only)
    containers: int = -1        # containers using it (system df only; -1: not counted)


@dataclass
class DeleteRecord:
    """One line of ``rmi`` output: ``Untagged: x`` or ``Deleted: sha256:...``."""

    untagged: str = ""
    deleted: str = ""
    size: int = 0               # bytes freed, for deleted layers (prune's reclaimed space)


@dataclass
class PruneReport:
    deleted: list[DeleteRecord] = field(default_factory=list)
    reclaimed: int = 0
    # What dead processes left and nothing references, removed too (store/owned.py).
    leftovers: list["Leftover"] = field(default_factory=list)
    skipped: str = ""           # why part of the leftovers was not looked at, if it was not


@dataclass
class HistoryEntry:
    id: str                     # the image ID for the top entry, "<missing>" below it
    created: float | None
    created_by: str
    size: int
    comment: str
    tags: list[str] = field(default_factory=list)


@dataclass
class DiskUsage:
    images: list[ImageSummary]
    layers_size: int            # every unpacked layer counted once


@dataclass
class _Ref:
    """A name pointing at an image: a tag or a repo digest (normalized)."""

    name: str
    repository: str
    canonical: bool

    def familiar(self) -> str:
        return references.parse(self.name, default_tag=False).familiar()


class Images:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    # ---- lookup ----------------------------------------------------------------------

    def get(self, name: str) -> "Image":
        """The image ``name`` refers to (reference, full ID or unique ID prefix)."""
        return self.engine.image_store.lookup(name)

    def find(self, name: str) -> "Image | None":
        return self.engine.image_store.find(name)

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of every container created from ``image_id``.

        The seam for the container store: rmi, prune and system df ask only this.
        """
        return self.engine.containers.containers_using(image_id)

    # ---- list ------------------------------------------------------------------------

    def list(self, filters: Mapping[str, Sequence[str]] | None = None, all: bool = False) -> list[ImageSummary]:
        """Images, newest first, filtered as ``docker images --filter`` does.

        One SQL statement reads every image with its tags and digests; configs are read
        only for a ``label`` filter. ``all`` would add intermediate images, which only a
        builder makes; there are none yet.
        """
        filters = {k: list(v) for k, v in (filters or {}).items() if v}
        _check_filters(filters, LIST_FILTERS)
        patterns = filters.get("reference", [])
        for pattern in patterns:
            _glob(pattern)  # a malformed pattern is an error even when no image exists
        dangling = _bool_filter(filters, "dangling")
        before = self._filter_time(filters.get("before"), "before")
        since = self._filter_time(filters.get("since"), "since")
        until = _until(filters.get("until"))
        labels = filters.get("label", [])

        out = []
        for summary in self._summaries():
            if patterns:
                summary.repo_tags = [t for t in summary.repo_tags if _matches_any(patterns, t)]
                summary.repo_digests = [d for d in summary.repo_digests if _matches_any(patterns, d)]
                if not summary.repo_tags and not summary.repo_digests:
                    continue
            if dangling is True and summary.repo_tags:
                continue
            if dangling is False and not summary.repo_tags and not summary.repo_digests:
                continue
            created = summary.created or 0
            if before is not None and not created < before:
                continue
            if since is not None and not created > since:
                continue
            if until is not None and not created < until:
                continue
            if labels and not _labels_match(self._labels(summary.id), labels):
                continue
            out.append(summary)
        return out

    def _summaries(self) -> list[ImageSummary]:
        sql = (
            "SELECT i.id, i.created, i.size,"
            " (SELECT group_concat(t.name, char(10)) FROM tags t WHERE t.image_id = i.id) AS tags,"
            " (SELECT group_concat(r.repository || '@' || r.digest, char(10))"
            "    FROM repo_digests r WHERE r.image_id = i.id) AS digests"
            " FROM images i"
        )
        summaries = [_summary(row) for row in self.engine.db.execute(sql)]
        # Docker sorts by creation time, newest first; the ID breaks ties stably.
        return sorted(summaries, key=lambda s: (s.created or 0, s.id), reverse=True)

    def _filter_time(self, values: list[str] | None, key: str) -> float | None:
        if not values:
            return None
        image = self.find(values[-1])
        if image is None:
            raise NotFoundError(f"No such image: {values[-1]}")
        return _created(image.created) or 0

    def _labels(self, image_id: str) -> dict[str, str]:
        image = self.engine.image_store.get(image_id)
        config = self.engine.image_store.config(image).get("config") or {}
        return config.get("Labels") or {}

    def event(self, action: str, actor: str, name: str, image_id: str | None = None) -> None:
        """An image event as Docker's daemon logs it: the image's labels (while it exists),
        then ``name``."""
        from dockyard import events

        attrs: dict[str, str] = {}
        if image_id:
            try:
                attrs.update(self._labels(image_id))
            except (DockyardError, OSError, ValueError):
                pass  # deleted already: Docker's delete events carry no labels either
        attrs["name"] = name
        events.record(self.engine.root, "image", action, actor, attrs)

    # ---- tag -------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> "Reference":
        """Point ``target`` (normalized, ``:latest`` by default) at the image ``source`` names."""
        image = self.get(source)
        ref = references.parse(target)
        if ref.digest:
            raise InvalidReferenceError("refusing to create a tag with a digest reference")
        self.engine.image_store.tag(image.id, str(ref))
        self.event("tag", image.id, ref.familiar(), image.id)
        return ref

    # ---- remove ----------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> list[DeleteRecord]:
        """``rmi name``: untag, and delete the image once nothing names or uses it."""
        image_id = self.engine.image_store.lookup(name).id
        records = self._remove(name, force)
        for r in records:  # Docker's events name the image by ID for both
            if r.untagged:
                self.event("untag", image_id, image_id, image_id)
            elif r.deleted == image_id:
                self.event("delete", image_id, image_id)
        return records

    def _remove(self, name: str, force: bool) -> list[DeleteRecord]:
        store = self.engine.image_store
        image = store.lookup(name)
        records: list[DeleteRecord] = []
        refs = self._refs(image)
        ref = _as_reference(name)
        named = ref is not None and not _is_id_prefix(image.id, name) and _points_at(ref, refs)
        if named:
            assert ref is not None
            single = _is_single_reference(refs)
            if not force and single:
                users = self.containers_using(image.id)
                if users:
                    import json

                    raise ConflictError(
                        f"conflict: unable to remove repository reference {json.dumps(name)} (must force) - container "
                        f"{users[0][0][:12]} is using its referenced image {image.short_id}")
            self._remove_ref(ref, records)
            refs = [r for r in refs if r.name != str(ref)]
            if not ref.digest and not any(not r.canonical and r.repository == ref.repository for r in refs):
                # The last tag of a repository takes the repository's digest references with it.
                for r in [r for r in refs if r.canonical and r.repository == ref.repository]:
                    self._remove_ref(references.parse(r.name, default_tag=False), records)
                    refs.remove(r)
            if refs:
                return records
            self._delete(image, records, force, quiet=True)
            return records
        if _is_single_reference(refs):
            self._check_conflicts(image, force, check_refs=False)
            for r in refs:
                self._remove_ref(references.parse(r.name, default_tag=False), records)
        self._delete(image, records, force, quiet=False)
        return records

    def _refs(self, image: "Image") -> list[_Ref]:
        refs = []
        for tag in image.tags:
            parsed = references.parse(tag, default_tag=False)
            refs.append(_Ref(tag, parsed.repository, canonical=False))
        for entry in image.repo_digests:
            repository, _, _ = entry.partition("@")
            refs.append(_Ref(entry, repository, canonical=True))
        return refs

    def _remove_ref(self, ref: "Reference", records: list[DeleteRecord]) -> None:
        store = self.engine.image_store
        if ref.digest:
            store.remove_repo_digest(ref.repository, ref.digest)
        else:
            store.untag(str(ref))
        records.append(DeleteRecord(untagged=ref.familiar()))

    def _check_conflicts(self, image: "Image", force: bool, check_refs: bool) -> None:
        """Docker's checkImageDeleteConflict: running containers always block (hard);
        stopped containers and remaining names block unless forced (soft)."""
        users = self.containers_using(image.id)
        running = [cid for cid, is_running in users if is_running]
        if running:
            raise ConflictError(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                                f"image is being used by running container {running[0][:12]}")
        if force:
            return
        if check_refs and self._refs(self.engine.image_store.get(image.id)):
            raise ConflictError(f"conflict: unable to delete {image.short_id} (must be forced) - "
                                "image is referenced in multiple repositories")
        if users:
            raise ConflictError(f"conflict: unable to delete {image.short_id} (must be forced) - "
                                f"image is being used by stopped container {users[0][0][:12]}")

    def _delete(self, image: "Image", records: list[DeleteRecord], force: bool, quiet: bool) -> None:
        try:
            self._check_conflicts(image, force, check_refs=True)
        except ConflictError:
            if quiet:
                return  # untagging was what was asked; the image stays for its other users
            raise
        store = self.engine.image_store
        current = store.get(image.id)
        for r in self._refs(current):
            self._remove_ref(references.parse(r.name, default_tag=False), records)
        # Read what the blobs are before the image record goes.
        try:
            manifest = store.manifest(current)
            config = store.config(current)
        except (NotFoundError, ValueError):
            manifest, config = {}, {}
        store.delete(image.id, force=True)
        records.append(DeleteRecord(deleted=image.id))
        records.extend(self._release_layers(current))
        self._release_blobs(current, manifest, config, image.repo_digests)

    def _release_layers(self, image: "Image") -> list[DeleteRecord]:
        """Delete this image's layers that no image and no container uses any more, top
        first (``rmi -f`` of an image a stopped container uses leaves it its rootfs, as
        Docker's layer store does; prune collects those layers once the container is gone)."""
        from dockyard.system.leftovers import container_chains

        layers = self.engine.layers
        unused = set(layers.unused()) - container_chains(self.engine)
        removed = []
        for chain in reversed(image.layers):
            if chain not in unused or not layers.has(chain):
                continue
            size = layers.get(chain).size
            layers.delete(chain)
            removed.append(DeleteRecord(deleted=chain, size=size))
        return removed

    def _release_blobs(self, image: "Image", manifest: dict, config: dict, repo_digests: Iterable[str]) -> None:
        """Delete the image's config, manifest and layer blobs when no remaining image needs them.

        A layer blob is needed while any unpacked layer has its diff ID: an image that
        shares the layer (even on another parent) references the same blob in its manifest.
        """
        db = self.engine.db
        content = self.engine.content
        content.delete(image.id)
        if not db.execute("SELECT 1 FROM images WHERE manifest_digest = ?", (image.manifest_digest,)).fetchone():
            content.delete(image.manifest_digest)
        for entry in repo_digests:  # an index pulled by digest, when it was stored
            digest = entry.partition("@")[2]
            if digest == image.manifest_digest:
                continue
            if not db.execute("SELECT 1 FROM repo_digests WHERE digest = ? UNION ALL "
                              "SELECT 1 FROM images WHERE manifest_digest = ?", (digest, digest)).fetchone():
                content.delete(digest)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        for desc, diff_id in zip(manifest.get("layers") or [], diff_ids):
            if not self._blob_in_use(desc["digest"], diff_id):
                content.delete(desc["digest"])

    def _blob_in_use(self, blob: str, diff_id: str) -> bool:
        """Does a remaining image's manifest list ``blob``? Only images that have the diff ID
        can, so only their manifests are read."""
        rows = self.engine.db.execute(
            "SELECT DISTINCT il.image_id FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id"
            " WHERE l.diff_id = ?", (diff_id,)).fetchall()
        store = self.engine.image_store
        for row in rows:
            try:
                manifest = store.manifest(store.get(row["image_id"]))
            except (NotFoundError, ValueError):
                return True  # cannot tell: keep the blob
            if any(d.get("digest") == blob for d in manifest.get("layers") or []):
                return True
        return False

    # ---- prune -----------------------------------------------------------------------

    def prune(self, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None) -> PruneReport:
        """Remove dangling images (no tag), or with ``all`` every image no container uses; then
        what dead processes left (partial downloads, unfinished unpacks) and the blobs and
        layers no image uses. Leftovers carry no labels: a ``label`` filter spares them."""
        filters = {k: list(v) for k, v in (filters or {}).items() if v}
        _check_filters(filters, PRUNE_FILTERS)
        until = _until(filters.get("until"))
        labels = filters.get("label", [])
        report = PruneReport()
        store = self.engine.image_store
        for image in store.list():
            if self.containers_using(image.id):
                continue
            if until is not None and not (_created(image.created) or 0) < until:
                continue
            if labels and not _labels_match(self._labels(image.id), labels):
                continue
            if image.tags and not all:
                continue
            records: list[DeleteRecord] = []
            try:
                # Docker removes each name in turn; the last one removed deletes the image.
                for _ in range(len(image.tags) + len(image.repo_digests) + 1):
                    if not store.exists(image.id):
                        break
                    current = store.get(image.id)
                    names = current.tags + current.repo_digests
                    records += self.remove(names[0] if names else image.id)
            except (ConflictError, NotFoundError):
                pass  # used or removed meanwhile: prune skips it, as Docker does
            report.deleted += records
        if not labels:
            from dockyard.system.leftovers import collect

            collected = collect(self.engine, remove=True, until=until)
            report.leftovers, report.skipped = collected.items, collected.skipped
        report.reclaimed = sum(r.size for r in report.deleted) + sum(item.size for item in report.leftovers)
        return report

    # ---- history, inspect, disk usage ------------------------------------------------

    def history(self, name: str) -> list[HistoryEntry]:
        """The config's history, newest first, with each layer's unpacked size."""
        image = self.get(name)
        config = self.engine.image_store.config(image)
        entries = []
        layer = 0
        for h in config.get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                if layer < len(image.layers):
                    size = self.engine.layers.get(image.layers[layer]).size
                layer += 1
            entries.append(HistoryEntry(
                id="<missing>",
                created=_created(h.get("created")),
                created_by=h.get("created_by", ""),
                size=size,
                comment=h.get("comment", ""),
            ))
        entries.reverse()
        if entries:
            entries[0].id = image.id
            entries[0].tags = [references.parse(t).familiar() for t in image.tags]
        return entries

    def inspect(self, name: str) -> dict[str, Any]:
        from dockyard.images.inspect import inspect_image

        return inspect_image(self.engine, self.get(name))

    def disk_usage(self) -> DiskUsage:
        """Every image with its shared size; the layers' total counts each layer once."""
        images = self.list()
        chains_of: dict[str, list[str]] = {}
        for row in self.engine.db.execute("SELECT image_id, chain_id FROM image_layers"):
            chains_of.setdefault(row["image_id"], []).append(row["chain_id"])
        users: dict[str, int] = {}
        for chains in chains_of.values():
            for chain in set(chains):
                users[chain] = users.get(chain, 0) + 1
        sizes = {}
        for chain in users:
            try:
                sizes[chain] = self.engine.layers.get(chain).size
            except NotFoundError:
                sizes[chain] = 0
        for summary in images:
            chains = set(chains_of.get(summary.id, []))
            summary.shared_size = sum(sizes[c] for c in chains if users[c] > 1)
            summary.containers = len(self.containers_using(summary.id))
        return DiskUsage(images=images, layers_size=self.engine.layers.total_size())

    # ---- moving images in and out --------------------------------------------------

    def save(self, names: Sequence[str], out: BinaryIO) -> None:
        """Write ``names`` as one tar: docker-archive (manifest.json) and OCI layout together."""
        from dockyard.images import archive_io

        targets = self._save_targets(names)
        archive_io.save(self.engine, targets, out)
        for image, _tags in targets:
            self.event("save", image.id, image.id, image.id)

    def _save_targets(self, names: Sequence[str]) -> list[tuple["Image", list[str]]]:
        """(image, tags to record) for each name, as Docker's save parses names: a tag
        saves that tag; a bare repository every tag it has; an ID or digest no tag."""
        targets: dict[str, tuple["Image", list[str]]] = {}

        def add(image: "Image", tag: str | None) -> None:
            entry = targets.setdefault(image.id, (image, []))
            if tag and tag not in entry[1]:
                entry[1].append(tag)

        for name in names:
            ref = _as_reference(name, default_tag=False)
            image = self.get(name)
            if ref is None or _is_id_prefix(image.id, name) or ref.digest:
                add(image, None)
            elif ref.tag:
                add(image, str(ref))
            else:
                tagged = [t for t in self._all_tags() if references.parse(t).repository == ref.repository]
                for tag in tagged:
                    add(self.engine.image_store.lookup(tag), tag)
                if not tagged:
                    add(image, None)
        return list(targets.values())

    def _all_tags(self) -> list[str]:
        return [r[0] for r in self.engine.db.execute("SELECT name FROM tags ORDER BY name")]

    def load(self, stream: BinaryIO, quiet: bool = False) -> list[str]:
        """Load images from a docker-archive or OCI layout tar; returns the lines to print."""
        from dockyard.images import archive_io

        lines = archive_io.load(self.engine, stream)
        loaded: list[str] = []
        for line in lines:  # the images loaded, named by the lines docker load prints
            if line.startswith("Loaded image ID: "):
                loaded.append(line.partition(": ")[2])
            elif line.startswith("Loaded image: "):
                found = self.find(line.partition(": ")[2])
                if found is not None:
                    loaded.append(found.id)
        for image_id in dict.fromkeys(loaded):
            self.event("load", image_id, image_id, image_id)
        return lines

    def import_(
        self,
        source: str | BinaryIO,
        reference: str | None = None,
        changes: Sequence[str] = (),
        message: str = "",
        platform: "Platform | None" = None,
    ) -> "Image":
        """A rootfs tarball (path, http(s) URL or stream) as a one-layer image."""
        from dockyard.images import importer

        image = importer.import_image(self.engine, source, reference, changes, message, platform)
        if reference:
            self.event("tag", image.id, references.parse(reference).familiar(), image.id)
        self.event("import", image.id, image.id, image.id)
        return image

    def pull(self, ref: "Reference | str", platform: "Platform | None" = None, progress: Any = None,
             creds: Any = None) -> "Image":
        from dockyard.distribution.pull import pull

        if isinstance(ref, str):
            ref = references.parse(ref)
        return pull(self.engine, ref, platform=platform, progress=progress, creds=creds)

    def push(self, ref: "Reference | str", progress: Any = None, creds: Any = None) -> str:
        from dockyard.distribution.push import push

        if isinstance(ref, str):
            ref = references.parse(ref)
        return push(self.engine, ref, progress=progress, creds=creds)


# ---- helpers ------------------------------------------------------------------------


def _summary(row: Any) -> ImageSummary:
    tags = [references.parse(t).familiar() for t in (row["tags"] or "").split("\n") if t]
    digests = [references.parse(d).familiar() for d in (row["digests"] or "").split("\n") if d]
    return ImageSummary(id=row["id"], repo_tags=sorted(tags), repo_digests=sorted(digests),
                        created=_created(row["created"]), size=row["size"])


def _created(value: str | None) -> float | None:
    """timefmt.parse_timestamp, without its re for the shape configs carry: ``...T..:..:..[.f]Z``."""
    if value and len(value) >= 20 and value[-1] == "Z" and value[10] == "T" and not value[0].isspace():
        head, dot, fraction = value[:-1].partition(".")
        if len(head) == 19 and (not dot or (fraction.isdigit() and fraction.isascii())):
            from datetime import datetime  # the listing's sqlite3 has loaded it already

            text = head + ("." + fraction[:6].ljust(6, "0") if dot else "") + "+00:00"  # as parse_timestamp
            try:
                return datetime.fromisoformat(text).timestamp()
            except ValueError:
                return None
    from dockyard.timefmt import parse_timestamp

    return parse_timestamp(value)


def _as_reference(name: str, default_tag: bool = True) -> "Reference | None":
    try:
        return references.parse(name, default_tag=default_tag)
    except DockyardError:
        return None


def _is_id_prefix(image_id: str, name: str) -> bool:
    """Did the user name the image by (a prefix of) its ID? Then rmi deletes, not untags."""
    digits = name[7:] if name.startswith("sha256:") else name   # (sha256:)?[0-9a-f]+
    return bool(digits) and not digits.strip("0123456789abcdef") and (
        image_id.startswith(name) or image_id.startswith("sha256:" + name))


def _points_at(ref: "Reference", refs: list[_Ref]) -> bool:
    return any(r.name == str(ref) for r in refs)


def _is_single_reference(refs: list[_Ref]) -> bool:
    """Docker's isSingleReference: one tag (and digests of that tag's repository only)."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: _Ref | None = None
    canonical_repos = set()
    for r in refs:
        if r.canonical:
            canonical_repos.add(r.repository)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical_repos) == 1 and single.repository in canonical_repos


def _check_filters(filters: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise DockyardError(f"invalid filter '{key}'")


def _bool_filter(filters: Mapping[str, list[str]], key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise DockyardError(f"invalid filter '{key}={values[-1]}'")




def _until(values: list[str] | None) -> float | None:
    """``until``: a Go duration before now (``24h``, ``1h30m``), a Unix time or an RFC 3339 time."""
    if not values:
        return None
    value = values[-1]
    from dockyard.timefmt import parse_duration

    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    import re

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    from dockyard.timefmt import parse_timestamp

    moment = parse_timestamp(value)
    if moment is None:
        raise DockyardError(f"invalid filter 'until={value}': not a duration or timestamp")
    return moment


def _labels_match(labels: Mapping[str, str], wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` (``key!=value``) filter must hold."""
    for item in wanted:
        if "!=" in item:
            key, _, value = item.partition("!=")
            if labels.get(key) == value:
                return False
        elif "=" in item:
            key, _, value = item.partition("=")
            if labels.get(key) != value:
                return False
        elif item not in labels:
            return False
    return True


def _matches_any(patterns: list[str], familiar: str) -> bool:
    """Docker's reference.FamiliarMatch: the glob against ``name:tag`` (or ``name@digest``),
    then against the bare familiar name."""
    name = familiar.partition("@")[0]
    if "@" not in familiar:
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name = name[:colon]
    return any(_glob(p).fullmatch(familiar) or _glob(p).fullmatch(name) for p in patterns)


_GLOB_CACHE: dict[str, "re.Pattern[str]"] = {}


def _glob(pattern: str) -> "re.Pattern[str]":
    """Go's path.Match as a regex: ``*`` and ``?`` stop at ``/``; ``[...]`` classes, ``[^...]``."""
    cached = _GLOB_CACHE.get(pattern)
    if cached is not None:
        return cached
    import re  # here: only a reference filter needs it

    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise DockyardError(f"invalid reference filter {pattern!r}: syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("^", "]") else i + 1)
            if j < 0:
                raise DockyardError(f"invalid reference filter {pattern!r}: syntax error in pattern")
            body = pattern[i + 1:j]
            negate = body.startswith("^")
            if negate:
                body = body[1:]
            if not body:
                raise DockyardError(f"invalid reference filter {pattern!r}: syntax error in pattern")
            out.append("[" + ("^" if negate else "") + body + "]")  # Go's class escapes read the same
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    compiled = re.compile("".join(out))
    _GLOB_CACHE[pattern] = compiled
    return compiled
