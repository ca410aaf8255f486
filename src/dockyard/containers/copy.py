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
import io
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


# ------------------------------------------------------------------ the Engine API's archive routes
# HEAD/GET/PUT /containers/{id}/archive: the same roots and descriptor walks as ``cp``; paths are
# taken from the container's / (the client resolves them), as dockerd does.

GO_MODE_DIR, GO_MODE_SYMLINK, GO_MODE_DEVICE, GO_MODE_PIPE, GO_MODE_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_MODE_SETUID, GO_MODE_SETGID, GO_MODE_CHARDEV, GO_MODE_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class PathNotFound(DockyardError):
    """Docker's 404 for a container path that does not exist."""

    http_status = 404


class ExtractionError(DockyardError):
    """A PUT Docker refuses as a bad request (not a directory, an overwrite it forbids)."""

    http_status = 400


def go_file_mode(mode: int) -> int:
    """Go's os.FileMode of a stat mode: permission bits plus Go's own type and special bits."""
    out = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFIFO: GO_MODE_PIPE,
            stat.S_IFSOCK: GO_MODE_SOCKET, stat.S_IFBLK: GO_MODE_DEVICE,
            stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHARDEV}.get(kind, 0)
    if mode & stat.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & stat.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


def _go_time(epoch_ns: int) -> str:
    import time

    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (("." + "%09d" % nanos).rstrip("0") if nanos else "") + "Z"


def _abs(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _not_found(path: str, record: "ContainerRecord") -> PathNotFound:
    return PathNotFound(f"Could not find the file {path} in container {record.name}")


def _inside(root_fd: int, fd: int) -> str | None:
    """The path of ``fd`` below the root ``root_fd`` ("/x/y"), or None when it cannot be told."""
    try:
        root, where = saferoot.real_path(root_fd), saferoot.real_path(fd)
    except OSError:
        return None
    if root == "/":
        return where
    if where == root:
        return "/"
    if where.startswith(root + "/"):
        return where[len(root):]
    return None


def stat_path(containers: "Containers", record: "ContainerRecord", path: str) -> dict:
    """Docker's ContainerPathStat of ``path`` (the link itself for a symlink, and where it
    leads inside the container as ``linkTarget``)."""
    path = _abs(path)
    with container_root(containers, record, path) as (root_fd, inner):
        try:
            fd = saferoot.resolve(root_fd, inner, follow=False)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(path, record) from None
        try:
            st = os.fstat(fd) if not path.endswith("/") else os.stat(saferoot.fd_path(fd))
            link_target = ""
            if stat.S_ISLNK(st.st_mode):
                try:
                    target_fd = saferoot.resolve(root_fd, inner)
                except OSError:
                    target_fd = -1
                if target_fd >= 0:
                    try:
                        link_target = _inside(root_fd, target_fd) or ""
                    finally:
                        os.close(target_fd)
                if not link_target:   # dangling: where the text points, lexically
                    text = os.readlink("", dir_fd=fd)
                    link_target = os.path.normpath(os.path.join(os.path.dirname(path), text))
        finally:
            os.close(fd)
    name = os.path.basename(os.path.normpath(path)) or "/"
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode), "mtime": _go_time(st.st_mtime_ns),
            "linkTarget": link_target}


def archive_path(containers: "Containers", record: "ContainerRecord", path: str, out: "object") -> None:
    """``path`` as an uncompressed tar written to ``out``, rebased on its own name (``dir/..``),
    its content only for ``dir/.``; a final symlink is archived as itself unless the path ends
    in ``/``."""
    path = _abs(path)
    with container_root(containers, record, path) as (root_fd, inner):
        try:
            fd = saferoot.resolve(root_fd, inner, follow=path.endswith(("/", "/.")))
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(path, record) from None
        try:
            name = "." if path.endswith("/.") else (os.path.basename(os.path.normpath(path)) or ".")
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _tar(tar, fd, name)
        finally:
            os.close(fd)


def extract_to(containers: "Containers", record: "ContainerRecord", path: str, stream: "object",
               no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
    """Unpack the tar ``stream`` into the existing directory ``path`` of the container, through
    the layer extractor's descriptor walk (nothing in the tar or the container leads out of it).
    Entries keep the tar's owners, as dockerd's; with ``copy_uid_gid`` they belong to the
    container's user when it has one (dockerd's tarCopyOptions)."""
    from dockyard.store import archive

    path = _abs(path)
    if record.host_config.get("ReadonlyRootfs") and record.status in ("running", "paused"):
        raise ExtractionError("container rootfs is marked read-only")
    owner = _container_user(containers, record) if copy_uid_gid else None
    with container_root(containers, record, path) as (root_fd, inner):
        try:
            dir_fd = saferoot.resolve(root_fd, inner)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(path, record) from None
        try:
            if not stat.S_ISDIR(os.fstat(dir_fd).st_mode):
                refused = ExtractionError("extraction point is not a directory")
                refused.http_status = 500   # dockerd's status for this one
                raise refused
            extractor = _CopyExtractor(saferoot.fd_path(dir_fd), path, owner, no_overwrite_dir_non_dir)
            reader = io.BufferedReader(_Raw(stream), buffer_size=archive.CHUNK)
            try:
                archive._extract_members(reader, extractor)
                extractor.finish_dirs()
            except OSError as e:
                raise ExtractionError(f"{path}: {e.strerror or e}") from None
            except DockyardError as e:
                if isinstance(e, ExtractionError):
                    raise
                raise ExtractionError(e.message) from None   # a malformed or escaping tar
            finally:
                extractor.close()
        finally:
            os.close(dir_fd)


def _container_user(containers: "Containers", record: "ContainerRecord") -> "tuple[int, int] | None":
    """(uid, gid) of the container's Config.User in its own /etc/passwd; None without a user."""
    user = record.container_config.get("User") or ""
    if not user:
        return None
    from dockyard.runtime.spec import SpecError, resolve_user

    with container_root(containers, record, "/") as (root_fd, _):
        try:
            found = resolve_user(saferoot.fd_path(root_fd), user)
        except SpecError as e:
            raise ExtractionError(e.message) from None
    return found["uid"], found["gid"]


class _Raw(io.RawIOBase):
    """A file with ``read`` as a raw stream (BufferedReader's peek needs one)."""

    def __init__(self, stream: "object") -> None:
        super().__init__()
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "memoryview") -> int:
        data = self.stream.read(len(buffer))  # type: ignore[attr-defined]
        buffer[: len(data)] = data
        return len(data)


def _copy_extractor_base() -> type:
    from dockyard.store import archive

    return archive._Extractor


class _CopyExtractor(_copy_extractor_base()):  # type: ignore[misc]
    """The layer extractor with cp's rules: owners forced to ``owner`` when given, and
    Docker's noOverwriteDirNonDir (a directory never replaced by a non-directory, nor the
    other way round)."""

    def __init__(self, root: str, shown: str, owner: "tuple[int, int] | None", no_overwrite: bool) -> None:
        from pathlib import Path

        super().__init__(Path(root))
        self.shown, self.owner, self.no_overwrite = shown, owner, no_overwrite

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        if not [p for p in m.name.split("/") if p not in ("", ".")]:
            return   # "./": the destination keeps its own mode and owner, as Docker's untar does
        if self.owner is not None:
            m.uid, m.gid = self.owner
            m.uname = m.gname = ""
        if self.no_overwrite:
            self._check_overwrite(m)
        super().add(tar, m)

    def _check_overwrite(self, m: tarfile.TarInfo) -> None:
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        if not parts:
            return
        try:
            pfd = self._open_dir(parts[:-1], create=False)
        except (OSError, DockyardError):
            return   # the parent is made by this tar: nothing there to overwrite
        try:
            st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        finally:
            os.close(pfd)
        target = os.path.join(self.shown, *parts)
        if stat.S_ISDIR(st.st_mode) and not m.isdir():
            raise ExtractionError(f'cannot overwrite directory "{target}" with non-directory "{self.shown}"')
        if not stat.S_ISDIR(st.st_mode) and m.isdir():
            raise ExtractionError(f'cannot overwrite non-directory "{target}" with directory "{self.shown}"')
