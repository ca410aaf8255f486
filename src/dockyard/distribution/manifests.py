"""The registry side of ``dockyard manifest``, as ``docker manifest`` does it:

- ``fetch_member``: a manifest's descriptor and platform (from its config blob), for ``create``;
  ``local_member``: the same from a local image the registry does not have yet;
- ``inspect_remote``: a manifest or a list as the registry holds it, for ``inspect``;
- ``push_list``: members living in other repositories of the registry get their blobs
  mounted into the list's repository (local members: uploaded) and their manifests put
  there by digest; then the list itself goes up under its tag.

Built on ``RegistryClient`` (auth, TLS, insecure registries, error mapping).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any, Callable

from dockyard import digest as digests
from dockyard.distribution import credentials
from dockyard.distribution.client import RegistryClient, RegistryHTTPError, with_retries
from dockyard.distribution.manifestlists import Entry, build_list, list_bytes
from dockyard.errors import DockyardError, ManifestError, NotFoundError
from dockyard.records import replace
from dockyard.oci import mediatypes as mt

if TYPE_CHECKING:
    from dockyard.config import Settings
    from dockyard.engine import Engine
    from dockyard.store.content import ContentStore
    from dockyard.reference import Reference


def _client(settings: "Settings", host: str, insecure: bool) -> RegistryClient:
    if insecure and host not in settings.insecure_registries:
        settings = replace(settings, insecure_registries=[*settings.insecure_registries, host])
    return RegistryClient(settings, host, credentials.get(host))


def _reference(ref: "Reference") -> str:
    return ref.digest or ref.tag or "latest"


async def _get(client: RegistryClient, ref: "Reference") -> tuple[bytes, str, str]:
    """(raw, media type, digest) of what ``ref`` names; NotFoundError as Docker words it."""
    try:
        raw, content_type, _ = await with_retries(lambda: client.get_manifest(ref.path, _reference(ref)))
    except RegistryHTTPError as e:
        if e.status == 404:
            raise NotFoundError(f"no such manifest: {ref}") from None
        raise
    digest = digests.of_bytes(raw)
    if ref.digest and ref.digest != digest:
        raise ManifestError(f"manifest of {ref} has digest {digest}")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ManifestError(f"manifest of {ref} is not JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"manifest of {ref} is not a JSON object")
    media_type = doc.get("mediaType") or content_type
    if media_type not in mt.MANIFESTS | mt.INDEXES:
        media_type = mt.OCI_INDEX if "manifests" in doc else content_type
    return raw, media_type, digest


async def _platform(client: RegistryClient, path: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The platform an image's config says it runs on (OCI key order)."""
    config_digest = (manifest.get("config") or {}).get("digest")
    if not config_digest:
        raise ManifestError("manifest has no config")
    async with client.open_blob(path, config_digest) as resp:
        data = await resp.content.read(mt.MAX_CONFIG_SIZE + 1)
    if len(data) > mt.MAX_CONFIG_SIZE:
        raise ManifestError(f"config {config_digest} is over the {mt.MAX_CONFIG_SIZE} byte limit")
    return _platform_of(data, config_digest)


def _platform_of(data: bytes, config_digest: str) -> dict[str, Any]:
    try:
        config = json.loads(data)
    except ValueError:
        raise ManifestError(f"config {config_digest} is not JSON") from None
    if not isinstance(config, dict):
        raise ManifestError(f"config {config_digest} is not a JSON object")
    platform: dict[str, Any] = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
    for key in ("os.version", "os.features", "variant"):
        if config.get(key):
            platform[key] = config[key]
    return platform


def _entry(ref: str, raw: bytes, media_type: str, digest: str, platform: dict[str, Any]) -> Entry:
    manifest = json.loads(raw)
    entry: Entry = {
        "Ref": ref,
        "Descriptor": {"mediaType": media_type, "digest": digest, "size": len(raw), "platform": platform},
        "Raw": base64.b64encode(raw).decode(),
    }
    entry["SchemaV2Manifest" if media_type == mt.DOCKER_MANIFEST else "OCIManifest"] = manifest
    return entry


def fetch_member(settings: "Settings", ref: "Reference", *, insecure: bool = False) -> Entry:
    """What ``manifest create`` records for one image: its descriptor, platform and bytes."""

    async def run() -> Entry:
        async with _client(settings, ref.registry_host, insecure) as client:
            raw, media_type, digest = await _get(client, ref)
            if media_type in mt.INDEXES:
                raise DockyardError(f"{ref} is a manifest list")
            return _entry(str(ref), raw, media_type, digest, await _platform(client, ref.path, json.loads(raw)))

    return asyncio.run(run())


def local_member(engine: "Engine", ref: "Reference") -> Entry | None:
    """The entry for a local image of that name (not pushed yet: ``push_list`` uploads its blobs),
    or None if there is none."""
    image = engine.image_store.find(str(ref))
    if image is None:
        return None
    if image.manifest_media_type in mt.INDEXES:
        raise DockyardError(f"{ref} is a manifest list")
    raw = engine.content.read_bytes(image.manifest_digest, limit=mt.MAX_MANIFEST_SIZE)
    config_digest = json.loads(raw)["config"]["digest"]
    platform = _platform_of(engine.content.read_bytes(config_digest, limit=mt.MAX_CONFIG_SIZE), config_digest)
    return _entry(str(ref), raw, image.manifest_media_type, image.manifest_digest, platform)


def inspect_remote(settings: "Settings", ref: "Reference", *, insecure: bool = False,
                   verbose: bool = False) -> Any:
    """A manifest or list from the registry: the document itself, or (``verbose``) Docker's
    ImageManifest entries (one, or one per member of a list)."""

    async def run() -> Any:
        async with _client(settings, ref.registry_host, insecure) as client:
            raw, media_type, digest = await _get(client, ref)
            doc = json.loads(raw)
            if not verbose:
                return doc
            if media_type not in mt.INDEXES:
                return _entry(str(ref), raw, media_type, digest, await _platform(client, ref.path, doc))
            entries = []
            for desc in doc.get("manifests") or []:
                member = ref.with_digest(desc["digest"])
                child_raw, child_type, child_digest = await _get(client, member)
                platform = desc.get("platform") or await _platform(client, ref.path, json.loads(child_raw))
                entries.append(_entry(str(member), child_raw, child_type, child_digest, platform))
            return entries

    return asyncio.run(run())


def _blobs(entry: Entry) -> list[str]:
    manifest = entry.get("SchemaV2Manifest") or entry.get("OCIManifest") or {}
    out = [manifest["config"]["digest"]] if manifest.get("config") else []
    out += [layer["digest"] for layer in manifest.get("layers") or []
            if layer.get("mediaType") not in mt.NON_DISTRIBUTABLE]
    return out


def push_list(settings: "Settings", target: "Reference", entries: list[Entry], *, insecure: bool = False,
              say: Callable[[str], None] = print, content: "ContentStore | None" = None) -> str:
    """Push a local list to ``target``; returns the list's digest. ``say`` gets Docker's lines.

    Each member's blobs must end up in the target repository: already there, mounted from the
    member's repository, or (a local image never pushed) uploaded from ``content``. A member
    manifest the repository lacks is put there by digest, its bytes unchanged."""
    from dockyard import reference

    doc, media_type = build_list(entries)
    data = list_bytes(doc)
    members = [(reference.parse(e["Ref"]), e) for e in entries]
    for member, _ in members:
        if member.domain != target.domain:
            raise DockyardError("cannot use source images from a different registry than the target image: "
                                f"{member.domain} != {target.domain}")

    async def run() -> str:
        async with _client(settings, target.registry_host, insecure) as client:
            for member, entry in members:
                member_digest = entry["Descriptor"]["digest"]
                if member.path == target.path and await _has_manifest(client, target.path, member_digest):
                    continue  # Docker's case: nothing to copy
                for blob in _blobs(entry):
                    await _ensure_blob(client, target, member, blob, content)
                raw = base64.b64decode(entry["Raw"])
                stored = await with_retries(lambda: client.put_manifest(
                    target.path, member_digest, raw, entry["Descriptor"]["mediaType"]))
                say(f"Pushed ref {target.repository}@{member_digest} with digest: {stored or member_digest}")
            stored = await with_retries(lambda: client.put_manifest(target.path, _reference(target), data, media_type))
            return stored or digests.of_bytes(data)

    return asyncio.run(run())


async def _has_manifest(client: RegistryClient, path: str, digest: str) -> bool:
    async with client.request("HEAD", client.url(f"{path}/manifests/{digest}"),
                              scopes=[f"repository:{path}:pull"], headers={"Accept": mt.MANIFEST_ACCEPT},
                              ok=(200, 404), what=f"HEAD manifest {digest}") as resp:
        return resp.status == 200


async def _ensure_blob(client: RegistryClient, target: "Reference", member: "Reference", blob: str,
                       content: "ContentStore | None") -> None:
    """Get ``blob`` into the target repository: there already, mounted, or uploaded from local content."""
    scopes = [f"repository:{target.path}:pull,push"]
    if await with_retries(lambda: client.blob_exists(target.path, blob, scopes)):
        return
    location = None
    if member.path != target.path:
        mount_scopes = [*scopes, f"repository:{member.path}:pull"]
        mounted, location = await with_retries(lambda: client.start_upload(
            target.path, mount_scopes, mount=blob, mount_from=member.path))
        if mounted:
            return
    if content is None or not content.has(blob):
        if location is not None:
            await _cancel(client, location, scopes)
        if member.path == target.path:
            raise NotFoundError(f"blob {blob} of {member} is neither in {target.repository} nor stored locally")
        raise DockyardError(f"error mounting {member.repository}@{blob} to {target}")
    if location is None:
        _, location = await with_retries(lambda: client.start_upload(target.path, scopes))
    path = content.path(blob)
    size = path.stat().st_size
    await client.finish_upload(location, scopes, blob, size, body=lambda: _chunks(path))


async def _chunks(path: Any) -> Any:
    """A local blob as a request body, read as it is sent."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


async def _cancel(client: RegistryClient, location: Any, scopes: list[str]) -> None:
    """Close the upload session a declined mount opened (best effort)."""
    try:
        async with client.request("DELETE", location, scopes=scopes, ok=(200, 202, 204, 404)):
            pass
    except DockyardError:
        pass
