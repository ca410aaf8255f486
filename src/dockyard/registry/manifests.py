"""Manifest validation: what a PUT body must be, and what it references."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard import digest as digests
from dockyard.errors import InvalidDigestError
from dockyard.oci import mediatypes as mt
from dockyard.registry.errors import APIError

KNOWN = frozenset({mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST})


@dataclass
class Parsed:
    media_type: str
    blobs: list[str] = field(default_factory=list)       # config and layers: must be blobs of the repo
    manifests: list[str] = field(default_factory=list)   # an index's children: must be manifests of the repo
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def _invalid(reason: str) -> APIError:
    return APIError("MANIFEST_INVALID", {"reason": reason})


def _descriptor(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _invalid(f"{where}: expected a descriptor object")
    d = obj.get("digest")
    if not isinstance(d, str):
        raise _invalid(f"{where}: descriptor without a digest")
    try:
        digests.validate(d)
    except InvalidDigestError as e:
        raise APIError("DIGEST_INVALID", {"digest": d}, message=f"{where}: {e}") from None
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: descriptor of {d} without a valid size")
    mtype = obj.get("mediaType")
    if mtype is not None and not isinstance(mtype, str):
        raise _invalid(f"{where}: mediaType must be a string")
    return obj


def parse(body: bytes, content_type: str | None) -> Parsed:
    """Check the body is a manifest or index of a known type; list what it references."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("expected a JSON object")
    declared = doc.get("mediaType")
    content_type = (content_type or "").split(";")[0].strip() or None
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if declared and content_type and declared != content_type and content_type in KNOWN:
        raise _invalid(f"Content-Type {content_type} does not match mediaType {declared}")
    media_type = declared or content_type
    if media_type is None or media_type not in KNOWN:
        # An OCI manifest may omit mediaType; recognise it by shape when the client sent no type.
        if media_type is None and "config" in doc:
            media_type = mt.OCI_MANIFEST
        elif media_type is None and "manifests" in doc:
            media_type = mt.OCI_INDEX
        else:
            raise _invalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")

    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise _invalid("annotations must be an object")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    parsed = Parsed(media_type, annotations=annotations, artifact_type=artifact_type)
    if "subject" in doc and doc["subject"] is not None:
        parsed.subject = _descriptor(doc["subject"], "subject")["digest"]

    if media_type in mt.MANIFESTS:
        config = _descriptor(doc.get("config"), "config")
        parsed.blobs.append(config["digest"])
        layers = doc.get("layers")
        if layers is None and media_type == mt.OCI_MANIFEST:
            layers = []
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            layer = _descriptor(layer, f"layers[{i}]")
            # Foreign layers live at their URLs, not in this registry.
            if layer.get("mediaType") in mt.NON_DISTRIBUTABLE and layer.get("urls"):
                continue
            parsed.blobs.append(layer["digest"])
        if parsed.artifact_type is None and media_type == mt.OCI_MANIFEST:
            parsed.artifact_type = config.get("mediaType")
    else:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise _invalid("manifests must be a list")
        for i, child in enumerate(children):
            parsed.manifests.append(_descriptor(child, f"manifests[{i}]")["digest"])
    return parsed
