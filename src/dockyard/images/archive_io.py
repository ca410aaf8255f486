"""``save`` and ``load``: images as one tar, in both formats Docker 25+ writes at once.

A saved tar is a docker-archive (``manifest.json``, ``repositories``) and an OCI image
layout (``oci-layout``, ``index.json`` with ``org.opencontainers.image.ref.name``) over
the same ``blobs/sha256/`` files, so ``docker load``, ``skopeo copy docker-archive:``
and ``skopeo copy oci-archive:`` all read it::

    blobs/sha256/<config hex>     the image config (its digest is the image ID)
    blobs/sha256/<diff-id hex>    each layer as an uncompressed tar (digest = diff ID)
    blobs/sha256/<manifest hex>   an OCI manifest over those blobs
    index.json  manifest.json  oci-layout  repositories

Layers stored compressed are decompressed while they stream into the tar. A tar entry
needs its size up front, so such a layer is read twice: once to count (and verify the
diff ID), once to write. Memory stays bounded; nothing is staged on disk.

``load`` reads docker-archives (``docker save`` of any version, ``skopeo copy
docker-archive:``; layer files plain, gzip, zstd, xz or bzip2) and OCI layout tars, from
a file or a pipe, itself optionally compressed. The entries are staged under
``<root>/tmp`` (a tar has no order we could rely on), every digest, size and diff ID is
checked, and only then do blobs enter the content store, layers get unpacked and images
get named. A failure at any step removes what this load added.

Layer blobs from a docker-archive are stored as given: an uncompressed tar becomes an
``application/vnd.docker.image.rootfs.diff.tar`` blob (its digest is the diff ID). Load
stays a copy (no CPU spent compressing), a save of a loaded image is a straight copy
again, and the blob is byte-for-byte what was loaded; this is what Docker's containerd
image store does too. The cost is disk space, and a push sends such layers uncompressed.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from dockyard import digest as digests
from dockyard import reference as references
from dockyard.errors import (
    DigestMismatchError, DockyardError, InvalidArchiveError, ManifestError, SizeMismatchError,
)
from dockyard.oci import mediatypes as mt

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.store.images import Image

CHUNK = 1 << 20
MANIFEST_JSON = "manifest.json"
INDEX_JSON = "index.json"
OCI_LAYOUT = "oci-layout"
REPOSITORIES = "repositories"
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
MAX_LINK_HOPS = 16

# Layers of a docker-archive as given: media type by compression, for Docker and OCI manifests.
_DOCKER_LAYER_TYPES = {"": mt.DOCKER_LAYER, "gzip": mt.DOCKER_LAYER_GZIP}
_OCI_LAYER_TYPES = {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}
_NAMED_BLOB = re.compile(r"^(?:blobs/(sha256|sha512)/([0-9a-f]+)|([0-9a-f]{64})\.(?:json|tar))$")


# =========================================================================== save


def save(engine: "Engine", targets: list[tuple["Image", list[str]]], out: BinaryIO) -> None:
    """Write ``targets`` ((image, normalized tags) pairs) to ``out`` as one tar stream."""
    writer = _SaveWriter(engine, out)
    writer.run(targets)


class _SaveWriter:
    def __init__(self, engine: "Engine", out: BinaryIO) -> None:
        self.engine = engine
        # "w|": a pure stream, so stdout and pipes work; copybufsize bounds each copy step.
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        self.written: dict[str, int] = {}  # blob digest in the tar -> size

    def run(self, targets: list[tuple["Image", list[str]]]) -> None:
        items: list[dict[str, Any]] = []
        index: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        self._add_dir("blobs")
        self._add_dir("blobs/sha256")
        for image, tags in targets:
            config_bytes = self.engine.content.read_bytes(image.id, limit=mt.MAX_CONFIG_SIZE)
            config = json.loads(config_bytes)
            stored = self.engine.image_store.manifest(image)
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(stored.get("layers") or []):
                raise ManifestError(f"image {image.short_id}: its config and manifest disagree on the layers")
            layers = []
            for desc, diff_id in zip(stored.get("layers") or [], diff_ids):
                size = self._add_layer(desc, diff_id)
                layers.append({"mediaType": mt.OCI_LAYER, "digest": diff_id, "size": size})
            self._add_blob(image.id, config_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": image.id, "size": len(config_bytes)},
                "layers": layers,
            }
            manifest_bytes = _compact(manifest)
            manifest_digest = digests.of_bytes(manifest_bytes)
            self._add_blob(manifest_digest, manifest_bytes)
            descriptor = {
                "mediaType": mt.OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": _platform(config),
            }
            refs = [references.parse(t) for t in tags]
            for ref in refs:
                index.append({**descriptor, "annotations": {
                    ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag}})
                if diff_ids:
                    repositories.setdefault(ref.familiar_repository, {})[ref.tag or "latest"] = digests.hex_of(diff_ids[-1])
            if not refs:
                index.append(descriptor)  # untagged: still reachable for OCI readers
            items.append({
                "Config": _blob_path(image.id),
                "RepoTags": [ref.familiar() for ref in refs] or None,
                "Layers": [_blob_path(d) for d in diff_ids],
            })
        self._add_file(INDEX_JSON, _compact({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index}))
        self._add_file(MANIFEST_JSON, _compact(items) + b"\n")
        self._add_file(OCI_LAYOUT, OCI_LAYOUT_CONTENT)
        if repositories:
            self._add_file(REPOSITORIES, _compact(repositories) + b"\n")
        self.tar.close()

    # -- entries

    def _info(self, name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0  # reproducible: the same images always save to the same bytes
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if directory:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.mode = 0o644
        return info

    def _add_dir(self, name: str) -> None:
        self.tar.addfile(self._info(name, directory=True))

    def _add_file(self, name: str, data: bytes) -> None:
        import io

        self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))

    def _add_blob(self, digest: str, data: bytes) -> None:
        if digest not in self.written:
            self._add_file(_blob_path(digest), data)
            self.written[digest] = len(data)

    def _add_layer(self, desc: dict[str, Any], diff_id: str) -> int:
        """Write the layer as an uncompressed tar named by its diff ID; returns its size."""
        if diff_id in self.written:
            return self.written[diff_id]
        blob, compression = self._best_blob(desc, diff_id)
        content = self.engine.content
        if compression == "":
            size = content.size(blob)
            with content.open(blob) as f:
                self.tar.addfile(self._info(_blob_path(diff_id), size), f)
        else:
            size = _uncompressed_size(content, blob, compression, diff_id)
            with content.open(blob) as f:
                from dockyard.store.archive import open_decompressed

                self.tar.addfile(self._info(_blob_path(diff_id), size), open_decompressed(f, compression))
        self.written[diff_id] = size
        return size

    def _best_blob(self, desc: dict[str, Any], diff_id: str) -> tuple[str, str]:
        """An uncompressed blob of this diff ID if the store has one (a straight copy), else
        the manifest's own blob."""
        content = self.engine.content
        for blob, media_type, _size in self.engine.layers.blobs_for(diff_id):
            if mt.LAYER_COMPRESSION.get(media_type) == "" and blob == diff_id and content.has(blob):
                return blob, ""
        media_type = desc.get("mediaType", "")
        if not mt.is_layer(media_type):
            raise ManifestError(f"unsupported layer media type {media_type!r}")
        compression = mt.compression_of(media_type)
        if compression == "" and desc["digest"] != diff_id:
            raise DigestMismatchError(f"layer blob {desc['digest']} is not the tar of diff ID {diff_id}")
        return desc["digest"], compression


def _uncompressed_size(content: Any, blob: str, compression: str, diff_id: str) -> int:
    """Decompress once to learn the tar's size, checking it is the diff ID's tar."""
    from dockyard.store.archive import open_decompressed

    verifier = digests.Verifier(diff_id)
    with content.open(blob) as f:
        reader = open_decompressed(f, compression)
        while chunk := reader.read(CHUNK):
            verifier.update(chunk)
    try:
        verifier.check()
    except DigestMismatchError:
        raise DigestMismatchError(
            f"layer blob {blob} does not decompress to diff ID {diff_id} (got {verifier.digest})") from None
    return verifier.count


def _blob_path(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _platform(config: dict[str, Any]) -> dict[str, str]:
    out = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
    if config.get("variant"):
        out["variant"] = config["variant"]
    return out


# =========================================================================== load


@dataclass
class _Staged:
    path: Path
    digest: str   # sha256 of the entry's bytes
    size: int


@dataclass
class _Pending:
    """One image ready to commit: its blobs (all verified), manifest bytes and names."""

    manifest: bytes
    blobs: list[_Staged]
    tags: list[str] = field(default_factory=list)

    @property
    def manifest_digest(self) -> str:
        return digests.of_bytes(self.manifest)


def load(engine: "Engine", stream: BinaryIO) -> list[str]:
    """Load every image in the tar ``stream``; returns the lines ``docker load`` prints."""
    from dockyard.store.owned import image_lease, scratch

    # The staging dir is locked while we use it (a kill -9 leaves one the next prune knows is
    # dead); the lease keeps blobs and layers committed before the image safe from a collector.
    with image_lease(engine.root), scratch(engine.root).new_dir("load-") as staging_dir:
        archive = _Archive(Path(staging_dir))
        archive.read(stream)
        if archive.has(MANIFEST_JSON):
            pending = _docker_archive_images(archive)
        elif archive.has(INDEX_JSON):
            pending = _oci_layout_images(archive)
        else:
            raise InvalidArchiveError(
                "invalid archive: it has neither manifest.json (docker save) nor index.json (OCI layout)")
        return _commit(engine, pending)


class _Archive:
    """The outer tar's files, staged on disk and hashed as they stream past."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.files: dict[str, _Staged] = {}
        self.links: dict[str, str] = {}  # entry name -> archive path it points at
        self._count = 0

    def read(self, stream: BinaryIO) -> None:
        from dockyard.images.importer import decompressed

        try:
            source = decompressed(stream)  # `docker load` takes gzip/zstd/xz/bzip2 archives too
            if not source.peek(1):
                raise InvalidArchiveError("invalid archive: the input is empty")
            tar = _StrictTar.open(fileobj=source, mode="r|", encoding="utf-8", errors="surrogateescape")
        except tarfile.ReadError as e:
            raise InvalidArchiveError(f"invalid archive: not a tar archive ({e})") from None
        where = "at its start"
        try:
            for member in _members(tar):
                where = f"in entry {member.name!r}"
                self._add(tar, member)
                where = f"after entry {member.name!r}"
        except (tarfile.ReadError, EOFError) as e:
            raise InvalidArchiveError(f"invalid archive: truncated or corrupt {where} ({e})") from None
        except tarfile.TarError as e:
            raise InvalidArchiveError(f"invalid archive: bad tar {where} ({e})") from None
        finally:
            tar.close()
        if tar.stop_reason is not None:
            raise InvalidArchiveError(f"invalid archive: truncated or corrupt {where}")
        if not self.files:
            raise InvalidArchiveError("invalid archive: it holds no files")

    def _add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = _entry_name(member.name)
        if member.isdir() or not name:
            return
        if member.issym() or member.islnk():
            target = member.linkname  # a hardlink names an archive path
            if member.issym() and not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(name), target)
            resolved = _entry_name(target, link_of=name)
            self.links[name] = resolved
            self.files.pop(name, None)
            return
        if not member.isreg():
            return  # devices, fifos: nothing a docker or OCI archive needs
        self._count += 1
        path = self.staging / f"{self._count:06d}"
        hasher = digests.new_hasher("sha256")
        remaining = member.size
        body = tar.extractfile(member)
        assert body is not None
        with open(path, "wb") as f:
            while remaining:
                chunk = body.read(min(CHUNK, remaining))
                if not chunk:
                    raise InvalidArchiveError(f"invalid archive: entry {member.name!r} is truncated")
                hasher.update(chunk)
                f.write(chunk)
                remaining -= len(chunk)
        self.files[name] = _Staged(path, f"sha256:{hasher.hexdigest()}", member.size)
        self.links.pop(name, None)

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> _Staged | None:
        try:
            name = _entry_name(name)
        except InvalidArchiveError:
            return None
        for _ in range(MAX_LINK_HOPS):
            if name in self.files:
                return self.files[name]
            if name not in self.links:
                return None
            name = self.links[name]
        raise InvalidArchiveError(f"invalid archive: too many levels of links at {name!r}")

    def get(self, name: str, what: str) -> _Staged:
        if not isinstance(name, str) or not name:
            raise InvalidArchiveError(f"invalid archive: {what} has no path")
        _entry_name(name)  # a path that climbs out is an attack, not a missing file
        staged = self._find(name)
        if staged is None:
            raise InvalidArchiveError(f"invalid archive: {what} {name!r} is missing")
        return staged

    def read_json(self, name: str, what: str, limit: int) -> Any:
        staged = self.get(name, what)
        if staged.size > limit:
            raise InvalidArchiveError(f"invalid archive: {what} {name!r} is {staged.size} bytes, over {limit}")
        try:
            return json.loads(staged.path.read_bytes())
        except ValueError as e:
            raise InvalidArchiveError(f"invalid archive: {what} {name!r} is not valid JSON: {e}") from None


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError, tarfile.SubsequentHeaderError) as e:
            tar.stop_reason = e  # tarfile ends iteration quietly on these; a load must not
            raise


class _StrictTar(tarfile.TarFile):
    tarinfo = _StrictTarInfo
    stop_reason: Exception | None = None


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = tar.next()
        if member is None:
            return
        tar.members.clear()  # tarfile keeps every member for random access; we stream
        yield member


def _entry_name(raw: str, link_of: str | None = None) -> str:
    """An archive path, normalized. An entry name that is absolute or has a ``..`` component
    is refused; so is a link whose target resolves outside the archive."""
    if link_of is None:
        if raw.startswith("/") or ".." in raw.split("/"):
            raise InvalidArchiveError(f"invalid archive: entry {raw!r} points outside the archive")
        name = posixpath.normpath(raw) if raw else "."
    else:
        # An absolute link target means the archive's root, as Docker's FollowSymlinkInScope reads it.
        name = posixpath.normpath(raw.lstrip("/") or ".")
        if name == ".." or name.startswith("../"):
            raise InvalidArchiveError(f"invalid archive: link {link_of!r} points outside the archive")
    return "" if name == "." else name


# --------------------------------------------------------------------------- docker-archive


def _docker_archive_images(archive: _Archive) -> list[_Pending]:
    items = archive.read_json(MANIFEST_JSON, "manifest", mt.MAX_MANIFEST_SIZE)
    if not isinstance(items, list):
        raise InvalidArchiveError("invalid archive: manifest.json is not a list")
    pending: dict[str, _Pending] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidArchiveError("invalid archive: manifest.json has an entry that is not an object")
        config_path = item.get("Config")
        config_staged = archive.get(config_path, "image config")
        _check_named_digest(config_path, config_staged)
        config = _read_config(config_staged, config_path)
        diff_ids = config["rootfs"]["diff_ids"]
        layer_paths = item.get("Layers") or []
        if not isinstance(layer_paths, list) or len(layer_paths) != len(diff_ids):
            raise InvalidArchiveError(
                f"invalid manifest, layers length mismatch: expected {len(layer_paths)}, got {len(diff_ids)}")
        layers: list[tuple[_Staged, str]] = []
        for i, (path, diff_id) in enumerate(zip(layer_paths, diff_ids)):
            staged = archive.get(path, f"layer {i}")
            _check_named_digest(path, staged)
            staged, compression = _layer_as_given(archive, staged)
            _verify_diff_id(staged, compression, diff_id, path)
            layers.append((staged, compression))
        tags = [_tag(t) for t in (item.get("RepoTags") or [])]
        image_id = config_staged.digest
        if image_id in pending:
            pending[image_id].tags += [t for t in tags if t not in pending[image_id].tags]
            continue
        pending[image_id] = _Pending(
            manifest=_archive_manifest(config_staged, layers),
            blobs=[config_staged] + [s for s, _ in layers],
            tags=tags,
        )
    return list(pending.values())


def _read_config(staged: _Staged, path: str) -> dict[str, Any]:
    if staged.size > mt.MAX_CONFIG_SIZE:
        raise InvalidArchiveError(f"invalid archive: image config {path!r} is over {mt.MAX_CONFIG_SIZE} bytes")
    try:
        config = json.loads(staged.path.read_bytes())
    except ValueError as e:
        raise InvalidArchiveError(f"invalid archive: image config {path!r} is not valid JSON: {e}") from None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and digests.is_digest(d) for d in diff_ids):
        raise InvalidArchiveError(f"invalid archive: image config {path!r} has no valid rootfs.diff_ids")
    if config.get("os", "linux") != "linux":
        raise InvalidArchiveError(f"cannot load {config.get('os')} image on linux")
    return config


def _check_named_digest(path: str, staged: _Staged) -> None:
    """A file named by a digest (``blobs/sha256/<hex>``, ``<hex>.json``) must have it."""
    m = _NAMED_BLOB.match(_entry_name(path))
    if not m:
        return
    if m.group(3):
        expected = "sha256:" + m.group(3)
    else:
        expected = f"{m.group(1)}:{m.group(2)}"
    actual = staged.digest if expected.startswith("sha256:") else _file_digest(staged.path, expected)
    if actual != expected:
        raise DigestMismatchError(f"invalid archive: {path!r} has digest {actual}")


def _file_digest(path: Path, like: str) -> str:
    return digests.of_file(str(path), digests.algorithm_of(like) if digests.is_digest(like) else "sha256")


def _layer_as_given(archive: _Archive, staged: _Staged) -> tuple[_Staged, str]:
    """(blob, compression) to store for a docker-archive layer file: as it is when plain,
    gzip or zstd (media types exist for those); xz and bzip2 are decompressed first."""
    from dockyard.store.archive import detect_compression

    with open(staged.path, "rb") as f:
        head = f.read(6)
    compression = detect_compression(head)
    if compression or not (head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"BZh")):
        return staged, compression
    from dockyard.images.importer import decompressed

    archive._count += 1
    path = archive.staging / f"{archive._count:06d}"
    hasher = digests.new_hasher("sha256")
    size = 0
    with open(staged.path, "rb") as src, open(path, "wb") as dst:
        reader = decompressed(src)
        while chunk := _read_layer(reader):
            hasher.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return _Staged(path, f"sha256:{hasher.hexdigest()}", size), ""


def _read_layer(reader: BinaryIO) -> bytes:
    import lzma

    try:
        return reader.read(CHUNK)
    except (EOFError, OSError, lzma.LZMAError) as e:
        raise InvalidArchiveError(f"invalid archive: a layer does not decompress: {e}") from None


def _verify_diff_id(staged: _Staged, compression: str, diff_id: str, path: str) -> None:
    """The layer's uncompressed bytes must hash to the config's diff ID."""
    if compression == "":
        actual = staged.digest if diff_id.startswith("sha256:") else _file_digest(staged.path, diff_id)
    else:
        from dockyard.store.archive import open_decompressed

        verifier = digests.Verifier(algorithm=digests.algorithm_of(diff_id))
        with open(staged.path, "rb") as f:
            reader = open_decompressed(f, compression)
            while chunk := reader.read(CHUNK):
                verifier.update(chunk)
        actual = verifier.digest
    if actual != diff_id:
        raise DigestMismatchError(f"invalid archive: layer {path!r} has diff ID {actual}, the config says {diff_id}")


def _archive_manifest(config: _Staged, layers: list[tuple[_Staged, str]]) -> bytes:
    """A manifest over the blobs as given: Docker schema2, or OCI when a layer is zstd
    (schema2 has no zstd media type)."""
    oci = any(c == "zstd" for _, c in layers)
    types = _OCI_LAYER_TYPES if oci else _DOCKER_LAYER_TYPES
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, "size": config.size,
                   "digest": config.digest},
        "layers": [{"mediaType": types[c], "size": s.size, "digest": s.digest} for s, c in layers],
    }
    return _compact(manifest)


def _tag(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArchiveError(f"invalid archive: tag {value!r} is not a string")
    ref = references.parse(value)
    if ref.digest:
        raise InvalidArchiveError(f"invalid tag {value!r}")
    return str(ref)


# --------------------------------------------------------------------------- OCI layout


def _oci_layout_images(archive: _Archive) -> list[_Pending]:
    index = archive.read_json(INDEX_JSON, "index", mt.MAX_MANIFEST_SIZE)
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArchiveError("invalid archive: index.json has no manifests list")
    pending: dict[str, _Pending] = {}
    for entry in index["manifests"]:
        desc = _descriptor(entry, "index.json entry")
        manifest_desc = _resolve_platform(archive, desc)
        if manifest_desc is None:
            continue
        staged = _blob(archive, manifest_desc, "manifest")
        raw = staged.path.read_bytes()
        key = manifest_desc["digest"]
        if key not in pending:
            pending[key] = _oci_image(archive, raw)
        name = _oci_name(entry.get("annotations") or {})
        if name and name not in pending[key].tags:
            pending[key].tags.append(name)
    if not pending:
        from dockyard.oci.platform import host

        raise InvalidArchiveError(f"invalid archive: no image in index.json for platform {host()}")
    return list(pending.values())


def _descriptor(entry: Any, what: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str) or not digests.is_digest(entry["digest"]):
        raise InvalidArchiveError(f"invalid archive: {what} has no valid digest")
    if not isinstance(entry.get("size"), int) or entry["size"] < 0:
        raise InvalidArchiveError(f"invalid archive: {what} {entry['digest']} has no valid size")
    return entry


def _blob(archive: _Archive, desc: dict[str, Any], what: str) -> _Staged:
    """The staged blob of a descriptor, with its size and digest checked."""
    digest = desc["digest"]
    staged = archive.get(_blob_path(digest), f"{what} blob")
    if staged.size != desc["size"]:
        raise SizeMismatchError(f"invalid archive: {what} blob {digest} is {staged.size} bytes, "
                                f"its descriptor says {desc['size']}")
    actual = staged.digest if digest.startswith("sha256:") else _file_digest(staged.path, digest)
    if actual != digest:
        raise DigestMismatchError(f"invalid archive: {what} blob {digest} has digest {actual}")
    return staged


def _resolve_platform(archive: _Archive, desc: dict[str, Any], depth: int = 0) -> dict[str, Any] | None:
    """The image manifest for this host below ``desc`` (itself, or picked from an index)."""
    from dockyard.oci.platform import host

    media_type = desc.get("mediaType", "")
    if media_type in mt.MANIFESTS:
        return desc
    if media_type not in mt.INDEXES:
        raise InvalidArchiveError(f"invalid archive: unsupported manifest media type {media_type!r}")
    if depth > 4:
        raise InvalidArchiveError("invalid archive: indexes nested too deep")
    index = _json_blob(archive, desc, "index")
    platform = host()
    candidates = [_descriptor(m, "index entry") for m in index.get("manifests") or []]
    exact = [m for m in candidates if platform.matches(m.get("platform") or {})
             and (m.get("platform") or {}).get("variant", "") == platform.variant]
    loose = [m for m in candidates if platform.matches(m.get("platform") or {})]
    for m in exact + loose:
        found = _resolve_platform(archive, m, depth + 1)
        if found is not None:
            return found
    return None


def _json_blob(archive: _Archive, desc: dict[str, Any], what: str) -> dict[str, Any]:
    staged = _blob(archive, desc, what)
    if staged.size > mt.MAX_MANIFEST_SIZE:
        raise InvalidArchiveError(f"invalid archive: {what} {desc['digest']} is too large")
    try:
        value = json.loads(staged.path.read_bytes())
    except ValueError as e:
        raise InvalidArchiveError(f"invalid archive: {what} {desc['digest']} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise InvalidArchiveError(f"invalid archive: {what} {desc['digest']} is not a JSON object")
    return value


def _oci_image(archive: _Archive, raw: bytes) -> _Pending:
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise InvalidArchiveError(f"invalid archive: manifest is not valid JSON: {e}") from None
    config_desc = _descriptor(manifest.get("config"), "manifest config")
    if config_desc.get("mediaType") not in mt.CONFIGS:
        raise InvalidArchiveError(f"invalid archive: unsupported config media type {config_desc.get('mediaType')!r}")
    config_staged = _blob(archive, config_desc, "config")
    config = _read_config(config_staged, _blob_path(config_desc["digest"]))
    diff_ids = config["rootfs"]["diff_ids"]
    layers = manifest.get("layers") or []
    if len(layers) != len(diff_ids):
        raise InvalidArchiveError(
            f"invalid archive: the config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
    blobs = [config_staged]
    for i, (entry, diff_id) in enumerate(zip(layers, diff_ids)):
        desc = _descriptor(entry, f"layer {i}")
        media_type = desc.get("mediaType", "")
        if not mt.is_layer(media_type):
            raise InvalidArchiveError(f"invalid archive: unsupported layer media type {media_type!r}")
        staged = _blob(archive, desc, f"layer {i}")
        _verify_diff_id(staged, mt.compression_of(media_type), diff_id, _blob_path(desc["digest"]))
        blobs.append(staged)
    return _Pending(manifest=raw, blobs=blobs)


def _oci_name(annotations: dict[str, Any]) -> str | None:
    """The image's name: containerd's full name if present, else a ref.name that is a
    whole reference (``busybox:latest``); a bare tag (``latest``) names nothing."""
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == ANNOTATION_REF_NAME and not re.search(r"[:/@]", value):
            continue
        try:
            ref = references.parse(value)
        except DockyardError:
            continue
        if ref.digest:
            continue
        return str(ref)
    return None


# --------------------------------------------------------------------------- commit


def _commit(engine: "Engine", pending: list[_Pending]) -> list[str]:
    """Move verified blobs into the content store, unpack every layer, then name the
    images. On any failure, remove the blobs and layers this load added."""
    from dockyard.images.commit import commit, ensure_layer, layer_plan, load_manifest

    content = engine.content
    added_blobs: list[str] = []
    added_chains: list[str] = []
    for p in pending:
        existing = engine.image_store.find(_image_id(p))
        if existing is not None:
            # Already here (perhaps under another manifest): only its names are new.
            p.manifest, p.blobs = content.read_bytes(existing.manifest_digest), []
    try:
        for p in pending:
            for staged in p.blobs:
                if not content.has(staged.digest):
                    _ingest(engine, staged)
                    added_blobs.append(staged.digest)
            digest = p.manifest_digest
            if not content.has(digest):
                content.write_bytes(p.manifest, digest)
                added_blobs.append(digest)
        # Every layer first: an archive with a bad layer leaves no image behind.
        for p in pending:
            _config, plan = layer_plan(engine, load_manifest(engine, p.manifest_digest))
            for desc, diff_id, parent, chain in plan:
                if not engine.layers.has(chain):
                    added_chains.append(chain)
                ensure_layer(engine, desc, diff_id, parent)
        lines: list[str] = []
        for p in pending:
            image_id = _image_id(p)
            for tag in p.tags:
                old = engine.image_store.find(tag)
                if old is not None and old.id != image_id:
                    lines.append(f"The image {references.parse(tag).familiar()} already exists, "
                                 f"renaming the old one with ID {old.id} to empty string")
            image = commit(engine, p.manifest_digest, p.tags)
            if p.tags:
                lines += [f"Loaded image: {references.parse(t).familiar()}" for t in p.tags]
            else:
                lines.append(f"Loaded image ID: {image.id}")
        return lines
    except BaseException:
        _undo(engine, added_chains, added_blobs)
        raise


def _image_id(p: _Pending) -> str:
    return json.loads(p.manifest)["config"]["digest"]


def _ingest(engine: "Engine", staged: _Staged) -> None:
    with open(staged.path, "rb") as f, engine.content.ingest(staged.digest, staged.size) as writer:
        while chunk := f.read(CHUNK):
            writer.write(chunk)
        writer.commit()


def _undo(engine: "Engine", chains: list[str], blobs: list[str]) -> None:
    with contextlib.suppress(Exception):
        unused = set(engine.layers.unused())
        for chain in reversed(chains):
            if chain in unused:
                engine.layers.delete(chain)
    for digest in blobs:
        engine.content.delete(digest)
