"""A container's filesystem against its image: ``diff`` (Docker's A/C/D list), ``export`` (the
merged tree as a tar) and the layer ``commit`` packs from the container's upper dir.

The container's changes are its overlay upper dir: a char device 0/0 is a deleted path, a
directory marked ``trusted.overlay.opaque`` replaced the image's directory of that name.
Files the engine itself puts there (the mount points of /etc/hostname, /etc/hosts,
/etc/resolv.conf; Docker keeps them in its "init" layer) are not the container's changes.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

    from dockyard.containers.manager import Containers
    from dockyard.containers.store import ContainerRecord

# What Docker's init layer holds (daemon/initlayer): never part of a container's changes. All
# of /dev: a container's /dev is a tmpfs, so what is below it in the upper dir is only the
# runtime's mount point.
INIT_PATHS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/.dockerenv", "/etc/resolv.conf",
                        "/etc/hosts", "/etc/hostname", "/dev/console", "/etc/mtab"})
OPAQUE_XATTR = "trusted.overlay.opaque"
ADDED, CHANGED, DELETED = "A", "C", "D"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _in_lower(lowerdirs: "list[str]", rel: str) -> "os.stat_result | None":
    """The image's entry at ``rel`` as overlayfs merges the layers (top first): None if no
    layer has it, a layer above deleted it (a whiteout), or hid it (an opaque directory, or a
    non-directory where a parent should be). Walked one component at a time, never through
    a symlink of a layer (an absolute one would lead out of it)."""
    parts = rel.strip("/").split("/")
    last = len(parts) - 1
    for layer in lowerdirs:
        path, hiding = layer, False
        for i, part in enumerate(parts):
            path = f"{path}/{part}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if hiding:
                    return None   # an opaque directory of this layer hides the layers below
                break
            if is_whiteout(st):
                return None
            if i == last:
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None
            hiding = hiding or is_opaque(path)
    return None


def _real_dir(layer: str, rel_dir: str) -> bool:
    """Is ``rel_dir`` a directory of ``layer`` reached through directories only?"""
    path = layer
    for part in rel_dir.strip("/").split("/") if rel_dir else []:
        path = f"{path}/{part}"
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return False
    return True


def changes(upper: str, lowerdirs: "list[str]") -> "list[tuple[str, str]]":
    """(kind, path) of the container's changes, as ``docker diff`` lists them (Docker 20.10's
    overlay2 compares the container's tree with the image's on kernels with redirect_dir, which
    is what these rules give): a directory listed (as C) before what changed in it, entries in
    name order; a directory deleted and made again (opaque) is changed, its old entries deleted
    and what is in it now added or changed."""
    out: list[tuple[str, str]] = []
    _walk(upper, "", lowerdirs, out, hidden=False)
    return out


def _image_names(lowerdirs: "list[str]", rel_dir: str) -> "list[str]":
    """The names the image has in ``rel_dir`` (every layer's, less what a layer above deleted)."""
    names: set[str] = set()
    for layer in lowerdirs:
        if _real_dir(layer, rel_dir):
            names.update(os.listdir(layer + rel_dir or "/"))
    return sorted(n for n in names if _in_lower(lowerdirs, f"{rel_dir}/{n}") is not None)


def _walk(upper: str, rel_dir: str, lowerdirs: "list[str]", out: "list[tuple[str, str]]", hidden: bool) -> bool:
    """Append the changes under ``rel_dir``; whether there were any. ``hidden``: the image's
    entries there are hidden (an opaque directory): those not in the upper dir are deleted."""
    try:
        entries = {e.name: e for e in os.scandir(upper + rel_dir or "/")}
    except FileNotFoundError:
        entries = {}
    gone = [n for n in _image_names(lowerdirs, rel_dir) if n not in entries] if hidden else []
    found = False
    for name in sorted([*entries, *gone]):
        rel = f"{rel_dir}/{name}"
        if rel in INIT_PATHS:
            continue
        entry = entries.get(name)
        if entry is None:
            out.append((DELETED, rel))
            found = True
            continue
        st = entry.stat(follow_symlinks=False)
        lower = _in_lower(lowerdirs, rel)
        if is_whiteout(st):
            if lower is not None and not hidden:
                out.append((DELETED, rel))
                found = True
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if lower is None:
            out.append((ADDED, rel))
            found = True
            if is_dir:
                _walk(upper, rel, [], out, hidden=False)   # everything below a new directory is new
            continue
        if is_dir and stat.S_ISDIR(lower.st_mode):
            mark = len(out)
            below = _walk(upper, rel, lowerdirs, out, hidden=hidden or is_opaque(entry.path))
            if below or _metadata_changed(st, lower):
                out.insert(mark, (CHANGED, rel))
                found = True
            continue
        out.append((CHANGED, rel))
        found = True
        if is_dir:   # a directory where the image has a file: all in it is new
            _walk(upper, rel, [], out, hidden=False)
    return found


def _metadata_changed(st: os.stat_result, lower: os.stat_result) -> bool:
    """A directory copied up whose own mode or owner changed (its mtime alone says nothing:
    adding an entry the engine then hides changes it too)."""
    return (st.st_mode, st.st_uid, st.st_gid) != (lower.st_mode, lower.st_uid, lower.st_gid)


# ---- packing the upper dir as a layer (commit) ------------------------------------------------


def pack_upper(upper: str, out: "BinaryIO") -> int:
    """Write the container's changes as an uncompressed layer tar (whiteouts as ``.wh.``
    entries, opaque dirs with ``.wh..wh..opq``; the init paths left out) to ``out``; the
    number of bytes written."""
    import tarfile

    from dockyard.store import archive

    hashing = archive.HashingWriter(out, None)
    writer = archive._Batched(hashing)
    links: dict[tuple[int, int], str] = {}
    buf = bytearray(archive.CHUNK)
    try:
        for rel, path, st in _walk_upper(upper, ""):
            for info in archive._tar_infos(rel, path, st, links):
                writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                if info.isreg() and info.size:
                    archive._copy_file(path, info.size, writer, buf, rel)
    except OSError as e:
        from dockyard.errors import DockyardError

        raise DockyardError(f"cannot pack the container's changes: {e}") from None
    writer.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    writer.flush()
    return hashing.count


def _walk_upper(top: str, rel_dir: str) -> "Iterator[tuple[str, str, os.stat_result]]":
    """(name in the tar, path, lstat) of the upper dir, sorted, the init paths left out."""
    for entry in sorted(os.scandir(os.path.join(top, rel_dir) if rel_dir else top), key=lambda e: e.name):
        rel = f"{rel_dir}{entry.name}"
        if "/" + rel in INIT_PATHS:
            continue
        st = entry.stat(follow_symlinks=False)
        yield rel, entry.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_upper(top, rel + "/")


# ---- the merged tree (export) ---------------------------------------------------------------


def read_only_view(lowerdirs: "list[str]", upper: str, target: str) -> None:
    """Mount the container's tree read-only at ``target``: its upper dir as the top lower
    layer of an overlay without an upper (whiteouts and opaque dirs still apply), so a
    stopped container is never mounted writable, nor its upper dir used twice."""
    from dockyard import linux
    from dockyard.runtime import rootfs

    options = "lowerdir=" + ":".join([upper, *lowerdirs])
    if len(options) < rootfs.PAGE - 1:
        linux.mount("overlay", target, "overlay", linux.MS_RDONLY, options)
        return
    import subprocess

    base = os.path.commonpath([upper, *lowerdirs])
    options = "lowerdir=" + ":".join(os.path.relpath(d, base) for d in [upper, *lowerdirs])
    if len(options) >= rootfs.PAGE - 1:
        raise rootfs.RootfsError(f"too many layers ({len(lowerdirs)}) for one overlay mount")
    result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "ro," + options, target], cwd=base,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise rootfs.RootfsError(f"cannot mount the container's filesystem: {result.stderr.strip()}")


def export(containers: "Containers", record: "ContainerRecord", out: "BinaryIO") -> None:
    """The container's whole filesystem (image and changes; no volume or bind) as a tar."""
    from pathlib import Path

    from dockyard.runtime import rootfs
    from dockyard.store import archive

    cdir = containers.container_dir(record.id)
    mounted = os.path.join(cdir, "rootfs")
    if record.status in ("running", "paused", "restarting") and rootfs.is_mounted(mounted):
        archive.pack(Path(mounted), out, hash=False)
        return
    import tempfile

    chain = record.config.get("ImageChain")
    engine = containers.engine
    if not chain or not engine.layers.has(chain):
        from dockyard.errors import DockyardError

        raise DockyardError(f"the image of container {record.id[:12]} ({record.image}) is gone")
    layers = engine.layers.lowerdirs(chain)
    upper = os.path.join(cdir, "upper")
    if not os.path.isdir(upper):   # never started: the image's tree (one layer: that layer itself)
        upper = ""
    if len(layers) == 1 and not upper:
        archive.pack(Path(layers[0]), out, hash=False)
        return
    target = tempfile.mkdtemp(prefix="export-", dir=cdir)
    try:
        read_only_view(layers[1:] if not upper else layers, upper or layers[0], target)
        try:
            archive.pack(Path(target), out, hash=False)
        finally:
            _unmount(target)
    finally:
        try:
            os.rmdir(target)
        except OSError:
            pass


def _unmount(target: str) -> None:
    from dockyard import linux

    try:
        linux.umount(target)
    except OSError:
        linux.umount(target, 2)   # MNT_DETACH: a reader of the tar stream still inside
