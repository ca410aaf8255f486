"""Local manifest lists for ``dockyard manifest``: what ``create`` gathered, ``annotate``
changed and ``push`` sends, kept under ``<root>/manifests`` (Docker keeps them in
``~/.docker/manifests``).

One directory per list, one JSON file per member, in Docker's ``ImageManifest`` shape
(``Ref``, ``Descriptor`` with its ``platform``, ``Raw``, ``SchemaV2Manifest`` or
``OCIManifest``), so ``inspect --verbose`` prints what Docker prints. File names are
Docker's (``:`` -> ``-``, ``/`` -> ``_``): members are listed in that order, as Docker
lists them, so both build the same list bytes. Every write is atomic.

No registry code here: ``distribution.manifests`` talks to registries.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dockyard.atomicfile import atomic_write
from dockyard.errors import DockyardError, NotFoundError
from dockyard.oci import mediatypes as mt

# Docker's `manifest annotate` accepts these os/arch pairs only (Go's supported ports).
VALID_OS_ARCH = frozenset({
    ("darwin", "386"), ("darwin", "amd64"), ("darwin", "arm"), ("darwin", "arm64"),
    ("dragonfly", "amd64"), ("freebsd", "386"), ("freebsd", "amd64"), ("freebsd", "arm"),
    ("linux", "386"), ("linux", "amd64"), ("linux", "arm"), ("linux", "arm64"), ("linux", "ppc64le"),
    ("linux", "mips64"), ("linux", "mips64le"), ("linux", "riscv64"), ("linux", "s390x"),
    ("netbsd", "386"), ("netbsd", "amd64"), ("netbsd", "arm"), ("openbsd", "386"),
    ("openbsd", "amd64"), ("openbsd", "arm"), ("plan9", "386"), ("plan9", "amd64"),
    ("solaris", "amd64"), ("windows", "386"), ("windows", "amd64"),
})

Entry = dict[str, Any]  # one member: Docker's ImageManifest JSON


def file_safe(ref: str) -> str:
    """Docker's file name for a reference."""
    return ref.replace(":", "-").replace("/", "_")


class ManifestListStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "manifests"

    def _list_dir(self, list_ref: str) -> Path:
        return self.dir / file_safe(list_ref)

    def exists(self, list_ref: str) -> bool:
        return bool(self._files(list_ref))

    def _files(self, list_ref: str) -> list[Path]:
        d = self._list_dir(list_ref)
        try:
            return sorted(p for p in d.iterdir() if not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def get_list(self, list_ref: str) -> list[Entry]:
        """The members of a list, in Docker's order; NotFoundError if there is no such list."""
        files = self._files(list_ref)
        if not files:
            raise NotFoundError(f"No such manifest: {list_ref}")
        return [self._read(p) for p in files]

    def get(self, list_ref: str, ref: str) -> Entry | None:
        path = self._list_dir(list_ref) / file_safe(ref)
        if not path.exists():
            return None
        entry = self._read(path)
        return entry if entry.get("Ref") == ref else None

    def save(self, list_ref: str, ref: str, entry: Entry) -> None:
        d = self._list_dir(list_ref)
        d.mkdir(parents=True, exist_ok=True)
        path = d / file_safe(ref)
        if path.exists() and self._read(path).get("Ref") != ref:
            raise DockyardError(f"{ref} clashes with another member of {list_ref} ({path.name}): tag it differently")
        with atomic_write(path, 0o600) as f:
            f.write(json.dumps(entry).encode())

    def remove(self, list_ref: str) -> None:
        if not self.exists(list_ref):
            raise NotFoundError(f"No such manifest: {list_ref}")
        shutil.rmtree(self._list_dir(list_ref))

    @staticmethod
    def _read(path: Path) -> Entry:
        try:
            return json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            raise DockyardError(f"cannot read local manifest {path}: {e}") from None


def annotate(entry: Entry, *, os_: str = "", arch: str = "", variant: str = "", os_version: str = "",
             os_features: tuple[str, ...] = ()) -> Entry:
    """Docker's ``manifest annotate``: set the given platform fields of a member, then check the pair."""
    platform = entry["Descriptor"].setdefault("platform", {})
    if os_:
        platform["os"] = os_
    if arch:
        platform["architecture"] = arch
    for feature in os_features:
        features = platform.setdefault("os.features", [])
        if feature not in features:
            features.append(feature)
    if variant:
        platform["variant"] = variant
    if os_version:
        platform["os.version"] = os_version
    if (platform.get("os", ""), platform.get("architecture", "")) not in VALID_OS_ARCH:
        raise DockyardError(f"manifest entry for image has unsupported os/arch combination: {os_}/{arch}")
    return entry


def list_descriptor(entry: Entry) -> dict[str, Any]:
    """A member's entry in the pushed list, with Docker's key order (distribution's PlatformSpec)."""
    desc = entry["Descriptor"]
    platform = desc.get("platform") or {}
    spec: dict[str, Any] = {"architecture": platform.get("architecture", ""), "os": platform.get("os", "")}
    for key in ("os.version", "os.features", "variant", "features"):
        if platform.get(key):
            spec[key] = platform[key]
    return {"mediaType": desc["mediaType"], "size": desc["size"], "digest": desc["digest"], "platform": spec}


def build_list(entries: list[Entry]) -> tuple[dict[str, Any], str]:
    """The list document and its media type: a Docker manifest list when every member is a Docker
    schema2 manifest (as Docker pushes it), else an OCI index."""
    for entry in entries:
        platform = entry["Descriptor"].get("platform") or {}
        if not platform.get("architecture") or not platform.get("os"):
            raise DockyardError(f"manifest {entry['Ref']} must have an OS and Architecture to be pushed to a registry")
    docker = all(e["Descriptor"]["mediaType"] == mt.DOCKER_MANIFEST for e in entries)
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [list_descriptor(e) for e in entries]}
    return doc, media_type


def list_bytes(doc: dict[str, Any]) -> bytes:
    """The bytes pushed: Go's MarshalIndent with three spaces, as distribution's manifestlist
    package writes them, so a list Docker would push for the same members has the same digest."""
    return json.dumps(doc, indent=3, ensure_ascii=False).encode()
