"""``manifest create|annotate|inspect|push|rm``: Docker's ``docker manifest`` verbs.

A multi-platform image is built locally from images already in a registry (``create``),
its members' platforms fixed up (``annotate``), then pushed as one list (``push``).
Only click is imported here: the registry code (aiohttp) loads inside the commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.distribution.manifestlists import ManifestListStore
    from dockyard.reference import Reference


def _store() -> "ManifestListStore":
    from dockyard.distribution.manifestlists import ManifestListStore

    return ManifestListStore(common.engine().settings.root)


def _ref(value: str, what: str = "") -> "Reference":
    from dockyard import reference
    from dockyard.errors import InvalidReferenceError

    try:
        return reference.parse(value)
    except InvalidReferenceError as e:
        raise InvalidReferenceError(f"{what}{e}" if what else str(e)) from None


def _print_indented(value: Any) -> None:
    # Docker indents with tabs (Go's json.Indent / MarshalIndent with "\t").
    click.echo(json.dumps(value, indent="\t", ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def manifest() -> None:
    """Manage multi-platform image indexes (manifest lists)."""


@manifest.command()
@click.option("-a", "--amend", is_flag=True, help="Amend an existing manifest list.")
@click.option("--insecure", is_flag=True, help="Allow communication with an insecure registry.")
@click.argument("manifest_list", metavar="MANIFEST_LIST")
@click.argument("manifests", metavar="MANIFEST [MANIFEST...]", nargs=-1, required=True)
def create(amend: bool, insecure: bool, manifest_list: str, manifests: tuple[str, ...]) -> None:
    """Create a local manifest list for annotating and pushing to a registry."""
    from dockyard.distribution.manifests import fetch_member, local_member
    from dockyard.errors import DockyardError, NotFoundError

    target = _ref(manifest_list, f"error parsing name for manifest list {manifest_list}: ")
    store = _store()
    if store.exists(str(target)) and not amend:
        raise DockyardError("refusing to amend an existing manifest list with no --amend flag")
    engine = common.engine()
    for value in manifests:
        member = _ref(value)
        # A member created before keeps what annotate gave it (Docker's getManifest).
        entry = store.get(str(target), str(member))
        if entry is None:
            try:
                entry = fetch_member(engine.settings, member, insecure=insecure)
            except NotFoundError:
                # not in the registry: a local image of that name will do (push uploads its blobs)
                entry = local_member(engine, member)
                if entry is None:
                    raise
        store.save(str(target), str(member), entry)
    click.echo(f"Created manifest list {target}")


@manifest.command()
@click.option("--os", "os_", default="", help="Set operating system.")
@click.option("--arch", default="", help="Set architecture.")
@click.option("--os-version", default="", help="Set operating system version.")
@click.option("--os-features", multiple=True, help="Set operating system feature.")
@click.option("--variant", default="", help="Set architecture variant.")
@click.argument("manifest_list", metavar="MANIFEST_LIST")
@click.argument("image", metavar="MANIFEST")
def annotate(os_: str, arch: str, os_version: str, os_features: tuple[str, ...], variant: str,
             manifest_list: str, image: str) -> None:
    """Add additional information to a local image manifest."""
    from dockyard.distribution.manifestlists import annotate as annotate_entry
    from dockyard.errors import NotFoundError

    target = _ref(manifest_list, f"annotate: error parsing name for manifest list {manifest_list}: ")
    member = _ref(image, f"annotate: error parsing name for manifest {image}: ")
    store = _store()
    entry = store.get(str(target), str(member))
    if entry is None:
        raise NotFoundError(f"manifest for image {image} does not exist in {manifest_list}")
    features = tuple(f for value in os_features for f in value.split(",") if f)
    annotate_entry(entry, os_=os_, arch=arch, variant=variant, os_version=os_version, os_features=features)
    store.save(str(target), str(member), entry)


@manifest.command()
@click.option("--insecure", is_flag=True, help="Allow communication with an insecure registry.")
@click.option("-v", "--verbose", is_flag=True, help="Output additional info including layers and platform.")
@click.argument("name", metavar="[MANIFEST_LIST] MANIFEST")
def inspect(insecure: bool, verbose: bool, name: str) -> None:
    """Display an image manifest, or manifest list."""
    from dockyard.oci import mediatypes as mt

    ref = _ref(name)
    store = _store()
    if store.exists(str(ref)):
        entries = store.get_list(str(ref))
        if verbose:
            _print_entries(entries)
        else:
            _print_list(_local_list(entries))
        return
    from dockyard.distribution.manifests import inspect_remote

    found = inspect_remote(common.engine().settings, ref, insecure=insecure, verbose=verbose)
    if verbose:
        _print_entries(found)
    elif found.get("mediaType") in mt.INDEXES or "manifests" in found:
        _print_list(found)
    else:
        _print_indented(found)


def _print_list(doc: dict) -> None:
    # Docker prints a list as it pushes it (three-space indent), a manifest re-indented with tabs.
    from dockyard.distribution.manifestlists import list_bytes

    click.echo(list_bytes(doc).decode())


def _print_entries(entries: Any) -> None:
    # Docker 20.10's ImageManifest has no Raw field: the bytes are ours, kept for push.
    strip = lambda e: {k: v for k, v in e.items() if k != "Raw"}  # noqa: E731
    _print_indented([strip(e) for e in entries] if isinstance(entries, list) else strip(entries))


def _local_list(entries: list[dict]) -> dict:
    # inspect shows the list even before every member has a platform (push refuses it then).
    from dockyard.distribution.manifestlists import build_list, list_descriptor
    from dockyard.errors import DockyardError
    from dockyard.oci import mediatypes as mt

    try:
        return build_list(entries)[0]
    except DockyardError:
        return {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                "manifests": [list_descriptor(e) for e in entries]}


@manifest.command()
@click.option("-p", "--purge", is_flag=True, help="Remove the local manifest list after push.")
@click.option("--insecure", is_flag=True, help="Allow push to an insecure registry.")
@click.argument("manifest_list", metavar="MANIFEST_LIST")
def push(purge: bool, insecure: bool, manifest_list: str) -> None:
    """Push a manifest list to a repository."""
    from dockyard.distribution.manifests import push_list

    target = _ref(manifest_list)
    store = _store()
    entries = store.get_list(str(target))
    engine = common.engine()
    digest = push_list(engine.settings, target, entries, insecure=insecure, say=click.echo, content=engine.content)
    click.echo(digest)
    if purge:
        store.remove(str(target))


@manifest.command()
@click.argument("manifest_lists", metavar="MANIFEST_LIST [MANIFEST_LIST...]", nargs=-1, required=True)
def rm(manifest_lists: tuple[str, ...]) -> None:
    """Delete one or more manifest lists from local storage."""
    from dockyard.errors import DockyardError

    store = _store()
    errors = []
    for value in manifest_lists:
        try:
            store.remove(str(_ref(value)))
        except DockyardError as e:
            errors.append(str(e))
    if errors:
        raise DockyardError("\n".join(errors))
