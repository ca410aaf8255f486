"""Turn blobs already in the content store into an image: unpack layers, record names.

Pull, load and import all end here, so an image appears in the store only after
every layer it needs is unpacked and verified against the config's diff IDs.
"""

from __future__ import annotations

import json
import time

from dockyard.errors import ManifestError
from dockyard.oci import mediatypes as mt
from dockyard.store.images import Image
from dockyard.store.layers import LayerInfo, chain_id

TYPE_CHECKING = False   # typing costs the start-up of a cached build, which ends here
if TYPE_CHECKING:
    from typing import Any, Iterable

    from dockyard.engine import Engine


def load_manifest(engine: "Engine", manifest_digest: str) -> dict[str, Any]:
    raw = engine.content.read_bytes(manifest_digest, limit=mt.MAX_MANIFEST_SIZE)
    return parse_manifest(raw)


def parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise ManifestError(f"manifest is not valid JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise ManifestError("manifest is not a JSON object")
    return manifest


def manifest_media_type(manifest: dict[str, Any]) -> str:
    """The manifest's own media type; OCI manifests may omit it (then ``config`` tells)."""
    media_type = manifest.get("mediaType")
    if media_type:
        return media_type
    if "manifests" in manifest:
        return mt.OCI_INDEX
    if "config" in manifest:
        return mt.OCI_MANIFEST
    raise ManifestError("manifest has no mediaType and is neither an image manifest nor an index")


def layer_plan(engine: "Engine", manifest: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[dict, str, str | None, str]]]:
    """Read the config; return it and, per layer, (descriptor, diff_id, parent chain, chain)."""
    config_desc = manifest.get("config") or {}
    if config_desc.get("mediaType") not in mt.CONFIGS:
        raise ManifestError(f"unsupported image config media type {config_desc.get('mediaType')!r}")
    config = json.loads(engine.content.read_bytes(config_desc["digest"], limit=mt.MAX_CONFIG_SIZE))
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = manifest.get("layers") or []
    if len(diff_ids) != len(layers):
        raise ManifestError(
            f"image config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
    plan = []
    parent: str | None = None
    for desc, diff_id in zip(layers, diff_ids):
        if not mt.is_layer(desc.get("mediaType", "")):
            raise ManifestError(f"unsupported layer media type {desc.get('mediaType')!r}")
        chain = chain_id(parent, diff_id)
        plan.append((desc, diff_id, parent, chain))
        parent = chain
    return config, plan


def ensure_layer(engine: "Engine", desc: dict[str, Any], diff_id: str, parent: str | None) -> LayerInfo:
    """Unpack one layer from its blob in the content store, unless its chain is present."""
    chain = chain_id(parent, diff_id)
    if not engine.layers.has(chain):
        with engine.content.open(desc["digest"]) as blob:
            engine.layers.unpack(blob, mt.compression_of(desc["mediaType"]), diff_id, parent)
    engine.layers.record_blob(diff_id, desc["digest"], desc["mediaType"], int(desc.get("size", 0)))
    return engine.layers.get(chain)


def commit(
    engine: "Engine",
    manifest_digest: str,
    tags: Iterable[str] = (),
    repo_digest: tuple[str, str] | None = None,
) -> Image:
    """Record the image of a single-platform manifest whose blobs are all in the content store."""
    manifest = load_manifest(engine, manifest_digest)
    media_type = manifest_media_type(manifest)
    if media_type not in mt.MANIFESTS:
        raise ManifestError(f"unsupported manifest media type {media_type!r}")
    config, plan = layer_plan(engine, manifest)
    size = 0
    for desc, diff_id, parent, _chain in plan:
        size += ensure_layer(engine, desc, diff_id, parent).size
    image = Image(
        id=manifest["config"]["digest"],
        manifest_digest=manifest_digest,
        manifest_media_type=media_type,
        created=config.get("created"),
        size=size,
        added_at=time.time(),
        layers=[chain for *_, chain in plan],
    )
    return engine.image_store.add(image, tags, repo_digest)


# ---- an image from a container's changes (``dockyard commit``) ---------------------------------


def commit_container(engine: "Engine", record: Any, reference: str | None = None, changes: Iterable[str] = (),
                     message: str = "", author: str = "") -> Image:
    """Docker's CreateImageFromContainer: the container's image plus one layer of its
    changes (its upper dir), the container's Config with ``changes`` (Dockerfile
    instructions, as ``import --change``) applied, and a history entry carrying
    ``message`` and ``author``. The caller pauses a running container if it wants to."""
    import os

    from dockyard import reference as references
    from dockyard.containers.filesystem import changes as changes_of
    from dockyard.containers.filesystem import pack_upper
    from dockyard.images.changes import apply_changes
    from dockyard.store.owned import image_lease
    from dockyard.system.version import version
    from dockyard.timefmt import rfc3339_nano_utc

    tags = []
    if reference:
        ref = references.parse(reference)
        if ref.digest:
            raise ManifestError("refusing to create a tag with a digest reference")
        tags.append(str(ref))
    container_config = dict(record.config.get("Config") or {})
    new_config = apply_changes(container_config, list(changes))   # checked before any byte is written
    parent = engine.image_store.get(record.image_id)
    parent_config = engine.image_store.config(parent)
    parent_manifest = load_manifest(engine, parent.manifest_digest)
    created = rfc3339_nano_utc(time.time())
    upper = os.path.join(engine.containers.container_dir(record.id), "upper")
    with image_lease(engine.root):
        layers = [_oci_descriptor(engine, desc, diff_id_, chain)
                  for desc, diff_id_, chain in zip(parent_manifest.get("layers") or [],
                                                   (parent_config.get("rootfs") or {}).get("diff_ids") or [],
                                                   parent.layers)]
        diff_ids = list((parent_config.get("rootfs") or {}).get("diff_ids") or [])
        # Docker's history line of a commit: the container's Cmd (not its entrypoint).
        history_entry: dict[str, Any] = {"created": created,
                                         "created_by": " ".join(container_config.get("Cmd") or [])}
        chain = record.config.get("ImageChain")
        lowerdirs = engine.layers.lowerdirs(chain) if chain and engine.layers.has(chain) else []
        if changes_of(upper, lowerdirs):   # what `diff` lists; none: Docker adds no layer
            with engine.content.ingest() as writer:
                pack_upper(upper, writer)
                blob_size = writer.count
                diff_id = writer.commit()   # uncompressed: the blob's digest is the diff ID
            layers.append({"mediaType": mt.OCI_LAYER, "digest": diff_id, "size": blob_size})
            engine.layers.record_blob(diff_id, diff_id, mt.OCI_LAYER, blob_size)
            diff_ids.append(diff_id)
        else:
            history_entry["empty_layer"] = True   # nothing changed: no layer, as Docker commits it
        if author:
            history_entry["author"] = author
        if message:
            history_entry["comment"] = message
        config: dict[str, Any] = {
            "architecture": parent_config.get("architecture", ""), "os": parent_config.get("os", "linux"),
        }
        if parent_config.get("variant"):
            config["variant"] = parent_config["variant"]
        config.update({
            "author": author, "comment": message, "config": new_config, "container": record.id,
            "container_config": container_config, "created": created, "docker_version": version(),
            "history": list(parent_config.get("history") or []) + [history_entry],
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        if not author:
            del config["author"]
        if not message:
            del config["comment"]
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_digest = engine.content.write_bytes(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": layers}
        manifest_digest = engine.content.write_bytes(json.dumps(manifest, separators=(",", ":")).encode())
        return commit(engine, manifest_digest, tags)


def _oci_descriptor(engine: "Engine", desc: dict[str, Any], diff_id: str, chain: str) -> dict[str, Any]:
    """A parent layer as an OCI manifest lists it: its stored blob, or (pruned) the layer
    packed again as an uncompressed tar."""
    oci = {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}
    if desc.get("digest") and engine.content.has(desc["digest"]):
        return {"mediaType": oci[mt.compression_of(desc["mediaType"])], "digest": desc["digest"],
                "size": int(desc.get("size") or engine.content.size(desc["digest"]))}
    for blob, media_type, _size in engine.layers.blobs_for(diff_id):
        if engine.content.has(blob):
            return {"mediaType": oci[mt.compression_of(media_type)], "digest": blob, "size": engine.content.size(blob)}
    from pathlib import Path

    from dockyard.store import archive

    with engine.content.ingest(expected=diff_id) as writer:
        archive.pack(Path(engine.layers.diff_dir(chain)), writer, hash=False)
        writer.commit()
    size = engine.content.size(diff_id)
    engine.layers.record_blob(diff_id, diff_id, mt.OCI_LAYER, size)
    return {"mediaType": mt.OCI_LAYER, "digest": diff_id, "size": size}
