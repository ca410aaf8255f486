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
