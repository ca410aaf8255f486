"""``cp``: files between a container and the host, with Docker's path semantics.

A running container is reached through ``/proc/<pid>/root`` (its own mount namespace,
volumes included); a stopped one through a temporary mount of its rootfs, with its
volumes and binds mapped by path. The root is opened once and every path is resolved
inside it to a descriptor (``saferoot``): symlinks never lead out of it, and the copy
walks both trees through descriptors with ``O_NOFOLLOW``, so a running container that
swaps a path component for a symlink meanwhile (CVE-2018-15664) gets a file of its own
or an error, never the host's.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tarfile
from typing import TYPE_CHECKING, Iterator

from dockyard import saferoot
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.containers.manager import Containers
    from dockyard.containers.store import ContainerRecord


def split_arg(arg: str) -> tuple[str | None, str]:
    """``name:/path`` -> (name, /path); a local path (with / before any :) -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


@contextlib.contextmanager
def container_root(containers: "Containers", record: "ContainerRecord", path: str) -> Iterator[tuple[int, str]]:
    """(an ``O_PATH`` descriptor of the root that ``path`` of the container is in, the path
    inside that root), for as long as the context lasts."""
    from dockyard.runtime import rootfs

    if not path.startswith("/"):
        path = "/" + (record.container_config.get("WorkingDir") or "/").strip("/") + "/" + path
    if record.status in ("running", "paused") and record.pid:
        with _opened(f"/proc/{record.pid}/root") as root_fd:
            yield root_fd, path
        return
    norm = os.path.normpath(path)
    best = None
    for m in record.config.get("Mounts") or []:
        dest = os.path.normpath(m["Destination"])
        if m["Type"] != "tmpfs" and (norm == dest or norm.startswith(dest + "/")):
            if best is None or len(dest) > len(os.path.normpath(best["Destination"])):
                best = m
    if best is not None:
        rest = os.path.relpath(norm, os.path.normpath(best["Destination"]))
        with _opened(best["Source"]) as root_fd:
            yield root_fd, "/" + (rest if rest != "." else "")
        return
    cdir = containers.container_dir(record.id)
    was_mounted = rootfs.is_mounted(os.path.join(cdir, "rootfs"))
    chain = record.config.get("ImageChain")
    target = rootfs.mount(containers.engine.layers.lowerdirs(chain), cdir)
    try:
        with _opened(target) as root_fd:
            yield root_fd, path
    finally:
        if not was_mounted:
            rootfs.unmount(cdir)


@contextlib.contextmanager
def _opened(root: str) -> Iterator[int]:
    try:
        fd = saferoot.open_root(root)
    except OSError as e:
        raise DockyardError(f"cannot open the container's files at {root}: {e.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _place(src_fd: int, src_name: str | None, src_arg: str, dst_root_fd: int, dst_path: str, dst_arg: str,
           owner: tuple[int, int] | None) -> None:
    """Docker's rules: into an existing directory under the source's name; otherwise as ``dst``;
    ``SRC/.`` (or a source with no name, /) copies a directory's content."""
    src_is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
    contents_only = src_is_dir and (src_arg.endswith("/.") or src_name is None)
    try:
        dst_fd = saferoot.resolve(dst_root_fd, dst_path)
    except (FileNotFoundError, NotADirectoryError):
        dst_fd = -1
    except OSError as e:
        raise DockyardError(f"{dst_arg}: {e.strerror}") from None
    try:
        dst_is_dir = dst_fd >= 0 and stat.S_ISDIR(os.fstat(dst_fd).st_mode)
        if dst_is_dir:
            if contents_only:
                saferoot.copy_children(src_fd, dst_fd, owner)
            else:
                saferoot.copy_entry(src_fd, dst_fd, src_name or "", owner)
            return
        if dst_arg.endswith("/") and dst_fd < 0 and not src_is_dir:
            raise DockyardError(f"no such directory: {dst_arg}")
        if src_is_dir and dst_fd >= 0:
            raise DockyardError(f"cannot copy directory to a file: {dst_arg}")
        if not src_is_dir and src_arg.endswith("/"):
            raise DockyardError(f"not a directory: {src_arg}")
    finally:
        if dst_fd >= 0:
            os.close(dst_fd)
    try:
        parent_fd, name = saferoot.resolve_parent(dst_root_fd, dst_path)
    except (FileNotFoundError, NotADirectoryError):
        raise DockyardError(f"no such directory: {os.path.dirname(dst_arg.rstrip('/')) or '/'}") from None
    try:
        if name is None:
            raise DockyardError(f"cannot copy to {dst_arg}")
        saferoot.copy_entry(src_fd, parent_fd, name, owner)
    finally:
        os.close(parent_fd)


def _name(path: str) -> str | None:
    """The name a copied entry keeps: the last component of the path as given."""
    return saferoot.split(path)[1]


def copy_from(containers: "Containers", record: "ContainerRecord", src: str, dst: str, follow_link: bool = False) -> None:
    with container_root(containers, record, src) as (root_fd, path):
        try:
            src_fd = saferoot.resolve(root_fd, path, follow=follow_link)
        except (FileNotFoundError, NotADirectoryError):
            raise DockyardError(f"Could not find the file {src} in container {record.name}") from None
        except OSError as e:
            raise DockyardError(f"{src} in container {record.name}: {e.strerror}") from None
        try:
            if dst == "-":
                with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
                    _tar(tar, src_fd, "." if src.endswith("/.") else (_name(path) or "."))
                return
            host_root = saferoot.open_root("/")
            try:
                _place(src_fd, _name(path), src, host_root, os.path.abspath(dst), dst, None)
            finally:
                os.close(host_root)
        finally:
            os.close(src_fd)


def copy_to(containers: "Containers", record: "ContainerRecord", src: str, dst: str, archive: bool = False,
            follow_link: bool = False) -> None:
    if record.host_config.get("ReadonlyRootfs") and record.status in ("running", "paused"):
        raise DockyardError("container rootfs is marked read-only")
    with container_root(containers, record, dst) as (root_fd, path):
        if src == "-":
            try:
                dir_fd = saferoot.resolve(root_fd, path, os.O_PATH | os.O_DIRECTORY)
            except OSError:
                raise DockyardError(f"destination \"{record.name}:{dst}\" must be a directory") from None
            try:
                from pathlib import Path

                from dockyard.store.archive import extract

                extract(sys.stdin.buffer, Path(saferoot.fd_path(dir_fd)))  # the directory, not a name
            finally:
                os.close(dir_fd)
            return
        try:
            local = os.open(src, os.O_PATH | os.O_CLOEXEC | (0 if follow_link else os.O_NOFOLLOW))
        except FileNotFoundError:
            raise DockyardError(f"stat {src}: no such file or directory") from None
        try:
            st = os.fstat(local)
            owner = (st.st_uid, st.st_gid) if archive else (0, 0)
            base = os.path.basename(os.path.normpath(src))
            _place(local, base if base not in ("", ".", "..") else None, src, root_fd, path, dst, owner)
        finally:
            os.close(local)


def _tar(tar: tarfile.TarFile, fd: int, arcname: str) -> None:
    """Add what the ``O_PATH`` descriptor ``fd`` refers to, and all below it, to ``tar``."""
    st = os.fstat(fd)
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFREG:
        info.type, info.size = tarfile.REGTYPE, st.st_size
        rfd = saferoot.reopen(fd, os.O_RDONLY)
        with os.fdopen(rfd, "rb") as f:
            tar.addfile(info, f)
        return
    if kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        rfd = saferoot.reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for child in sorted(os.listdir(rfd)):
                try:
                    cfd = os.open(child, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rfd)
                except FileNotFoundError:
                    continue
                try:
                    _tar(tar, cfd, f"{arcname}/{child}")
                finally:
                    os.close(cfd)
        finally:
            os.close(rfd)
        return
    if kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
    elif kind == stat.S_IFIFO:
        info.type = tarfile.FIFOTYPE
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return  # a socket
    tar.addfile(info)
