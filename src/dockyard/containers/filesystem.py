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
    from typing import Any, BinaryIO, Iterator

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
    and what is in it now added or changed. The upper dir is walked through descriptors
    (``O_NOFOLLOW``): a running container's symlinks never lead the walk out of it."""
    out: list[tuple[str, str]] = []
    try:
        fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return out   # never started
    try:
        _walk(fd, "", lowerdirs, out, hidden=False)
    finally:
        os.close(fd)
    return out


def _image_names(lowerdirs: "list[str]", rel_dir: str) -> "list[str]":
    """The names the image has in ``rel_dir`` (every layer's, less what a layer above deleted)."""
    names: set[str] = set()
    for layer in lowerdirs:
        if _real_dir(layer, rel_dir):
            names.update(os.listdir(layer + rel_dir or "/"))
    return sorted(n for n in names if _in_lower(lowerdirs, f"{rel_dir}/{n}") is not None)


def _walk(dir_fd: int, rel_dir: str, lowerdirs: "list[str]", out: "list[tuple[str, str]]", hidden: bool) -> bool:
    """Append the changes under ``rel_dir`` (the upper dir's directory ``dir_fd``); whether there
    were any. ``hidden``: the image's entries there are hidden (an opaque directory): those not
    in the upper dir are deleted."""
    entries = {}
    for name in os.listdir(dir_fd):
        try:
            entries[name] = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue   # gone meanwhile
    gone = [n for n in _image_names(lowerdirs, rel_dir) if n not in entries] if hidden else []
    found = False
    for name in sorted([*entries, *gone]):
        rel = f"{rel_dir}/{name}"
        if rel in INIT_PATHS:
            continue
        st = entries.get(name)
        if st is None:
            out.append((DELETED, rel))
            found = True
            continue
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
                _walk_child(dir_fd, name, rel, [], out, hidden=False)   # everything below a new directory is new
            continue
        if is_dir and stat.S_ISDIR(lower.st_mode):
            mark = len(out)
            below = _walk_child(dir_fd, name, rel, lowerdirs, out, hidden, opaque_counts=True)
            if below or _metadata_changed(st, lower):
                out.insert(mark, (CHANGED, rel))
                found = True
            continue
        out.append((CHANGED, rel))
        found = True
        if is_dir:   # a directory where the image has a file: all in it is new
            _walk_child(dir_fd, name, rel, [], out, hidden=False)
    return found


def _walk_child(dir_fd: int, name: str, rel: str, lowerdirs: "list[str]", out: "list[tuple[str, str]]",
                hidden: bool, opaque_counts: bool = False) -> bool:
    """``_walk`` of the directory ``name`` below ``dir_fd``, opened without following a symlink
    (swapped in meanwhile: nothing to list). ``opaque_counts``: an opaque directory hides the image's."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return _walk(fd, rel, lowerdirs, out, hidden or (opaque_counts and _fd_opaque(fd)))
    finally:
        os.close(fd)


def _metadata_changed(st: os.stat_result, lower: os.stat_result) -> bool:
    """A directory copied up whose own mode or owner changed (its mtime alone says nothing:
    adding an entry the engine then hides changes it too)."""
    return (st.st_mode, st.st_uid, st.st_gid) != (lower.st_mode, lower.st_uid, lower.st_gid)


# ---- packing the upper dir as a layer (commit) ------------------------------------------------


def pack_upper(upper: str, out: "BinaryIO") -> None:
    """Write the container's changes as an uncompressed layer tar (whiteouts as ``.wh.``
    entries, opaque dirs with ``.wh..wh..opq``; the init paths left out) to ``out``."""
    pack_tree(upper, out, layer=True)


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
    from dockyard.runtime import rootfs

    cdir = containers.container_dir(record.id)
    mounted = os.path.join(cdir, "rootfs")
    if record.status in ("running", "paused", "restarting") and rootfs.is_mounted(mounted):
        pack_tree(mounted, out)
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
        pack_tree(layers[0], out)
        return
    target = tempfile.mkdtemp(prefix="export-", dir=cdir)
    try:
        read_only_view(layers[1:] if not upper else layers, upper or layers[0], target)
        try:
            pack_tree(target, out)
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


# ---- a tree as a tar, walked by descriptors --------------------------------------------------


def pack_tree(top: str, out: "BinaryIO", layer: bool = False) -> None:
    """``top``'s tree as an uncompressed tar (numeric owners, xattrs, hard links, sorted), as
    ``store.archive.pack`` writes one, but walked through directory descriptors with
    ``O_NOFOLLOW`` at every step: a running container that swaps a directory for a symlink
    meanwhile (CVE-2018-15664) cannot make the walk read the host's files. A file that shrinks
    meanwhile is padded: a live container's export is as consistent as the container is.
    ``layer``: ``top`` is an overlay upper dir, written in the layer format (whiteouts,
    opaque markers) without Docker's init paths."""
    import tarfile

    from dockyard.store import archive

    writer = archive._Batched(archive.HashingWriter(out, None))
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _pack_dir(fd, "", writer, {}, bytearray(archive.CHUNK), layer)
    finally:
        os.close(fd)
    writer.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    writer.flush()


def _pack_dir(dir_fd: int, rel_dir: str, writer: "Any", links: "dict[tuple[int, int], str]", buf: bytearray,
              layer: bool) -> None:
    import tarfile

    from dockyard.store import archive

    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    for name in sorted(os.listdir(dir_fd)):
        rel = rel_dir + name
        if layer and "/" + rel in INIT_PATHS:
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue   # gone meanwhile
        info = tarfile.TarInfo(rel)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        info.uname = info.gname = ""
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                info.type, info.linkname = tarfile.LNKTYPE, links[key]
                writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                continue
            try:
                fd = os.open(name, os.O_RDONLY | flags, dir_fd=dir_fd)
            except (FileNotFoundError, OSError):
                continue   # gone, or swapped for a symlink (ELOOP) meanwhile
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                if st.st_nlink > 1:
                    links[(st.st_dev, st.st_ino)] = rel
                info.type, info.size = tarfile.REGTYPE, st.st_size
                _xattrs(info, fd)
                writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                _copy(fd, st.st_size, writer, buf)
            finally:
                os.close(fd)
            continue
        if stat.S_ISDIR(mode):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | flags, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                info.type = tarfile.DIRTYPE
                _xattrs(info, fd)
                writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                if layer and _fd_opaque(fd):   # the directory replaced the image's: say so
                    marker = tarfile.TarInfo(f"{rel}/{archive.WHITEOUT_OPAQUE}")
                    marker.mode, marker.uid, marker.gid, marker.mtime = info.mode, info.uid, info.gid, info.mtime
                    marker.uname = marker.gname = ""
                    writer.write(marker.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                _pack_dir(fd, rel + "/", writer, links, buf, layer)
            finally:
                os.close(fd)
            continue
        if stat.S_ISLNK(mode):
            try:
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            except OSError:
                continue
        elif layer and is_whiteout(st):   # a deleted path: the layer format's .wh. file
            info.name = f"{rel_dir}{archive.WHITEOUT_PREFIX}{name}"
            info.mode = 0o600
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            continue   # sockets are not content, as in Docker
        writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


def _fd_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _xattrs(info: "Any", fd: int) -> None:
    from dockyard.store import archive

    try:
        names = os.listxattr(fd)
    except OSError:
        return
    for key in sorted(names):
        if key.startswith(archive.OVERLAY_XATTR_PREFIX):
            continue   # overlay's own bookkeeping
        try:
            value = os.getxattr(fd, key)
        except OSError:
            continue
        info.pax_headers[archive.PAX_XATTR_PREFIX + key] = value.decode("utf-8", "surrogateescape")


def _copy(fd: int, size: int, writer: "Any", buf: bytearray) -> None:
    import tarfile

    view = memoryview(buf)
    remaining = size
    while remaining:
        n = os.readv(fd, [view[: min(len(buf), remaining)]])
        if not n:
            writer.write(bytes(remaining))   # shrank meanwhile: padded to the size in the header
            break
        writer.write(view[:n])
        remaining -= n
    padding = -size % tarfile.BLOCKSIZE
    if padding:
        writer.write(b"\0" * padding)
