"""``cp``: files between a container and the host, with Docker's path semantics.

A running container is reached through ``/proc/<pid>/root`` (its own mount namespace,
volumes included); a stopped one through a temporary mount of its rootfs, with its
volumes and binds mapped by path. Paths are resolved inside the container's root
(symlinks never lead out of it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

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
def container_path(containers: "Containers", record: "ContainerRecord", path: str) -> Iterator[Path]:
    """The host path of ``path`` inside the container, for as long as the context lasts."""
    from dockyard.runtime import rootfs
    from dockyard.runtime.spec import secure_join

    if not path.startswith("/"):
        path = "/" + (record.container_config.get("WorkingDir") or "/").strip("/") + "/" + path
    if record.status in ("running", "paused") and record.pid:
        yield secure_join(Path(f"/proc/{record.pid}/root"), path)
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
        yield secure_join(Path(best["Source"]), rest if rest != "." else "")
        return
    cdir = containers.container_dir(record.id)
    was_mounted = rootfs.is_mounted(os.path.join(cdir, "rootfs"))
    chain = record.config.get("ImageChain")
    target = Path(rootfs.mount(containers.engine.layers.lowerdirs(chain), cdir))
    try:
        yield secure_join(target, path)
    finally:
        if not was_mounted:
            rootfs.unmount(cdir)


def _copy(src: Path, dst: Path, chown: tuple[int, int] | None) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
    if chown is not None:
        for root, dirs, files in os.walk(dst) if dst.is_dir() else [(str(dst.parent), [], [dst.name])]:
            os.lchown(root, *chown) if root != str(dst.parent) or dst.is_dir() else None
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *chown)


def _place(src: Path, src_arg: str, dst: Path, dst_arg: str, chown: tuple[int, int] | None) -> None:
    """Docker's rules: into an existing directory under the source's name; otherwise as ``dst``;
    ``SRC/.`` copies a directory's content."""
    if not src.exists() and not src.is_symlink():
        raise DockyardError(f"no such file or directory: {src_arg}")
    contents_only = src_arg.endswith("/.")
    if dst.is_dir():
        target = dst if contents_only else dst / src.name
    else:
        if dst_arg.endswith("/") and not dst.exists():
            if not src.is_dir():
                raise DockyardError(f"no such directory: {dst_arg}")
        if not dst.parent.is_dir():
            raise DockyardError(f"no such directory: {os.path.dirname(dst_arg.rstrip('/')) or '/'}")
        if src.is_dir() and dst.exists():
            raise DockyardError(f"cannot copy directory to a file: {dst_arg}")
        if not src.is_dir() and src_arg.endswith("/"):
            raise DockyardError(f"not a directory: {src_arg}")
        target = dst
    _copy(src, target, chown)


def copy_from(containers: "Containers", record: "ContainerRecord", src: str, dst: str, follow_link: bool = False) -> None:
    with container_path(containers, record, src) as host_src:
        if not host_src.exists() and not host_src.is_symlink():
            raise DockyardError(f"Could not find the file {src} in container {record.name}")
        if follow_link and host_src.is_symlink():
            host_src = host_src.resolve()
        if dst == "-":
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
                tar.add(host_src, arcname=host_src.name if not src.endswith("/.") else ".")
            return
        _place(host_src, src, Path(dst).absolute(), dst, None)


def copy_to(containers: "Containers", record: "ContainerRecord", src: str, dst: str, archive: bool = False,
            follow_link: bool = False) -> None:
    if record.host_config.get("ReadonlyRootfs") and record.status in ("running", "paused"):
        raise DockyardError("container rootfs is marked read-only")
    with container_path(containers, record, dst) as host_dst:
        if src == "-":
            if not host_dst.is_dir():
                raise DockyardError(f"destination \"{record.name}:{dst}\" must be a directory")
            from dockyard.store.archive import extract

            extract(sys.stdin.buffer, host_dst)
            return
        local = Path(src)
        if follow_link and local.is_symlink():
            local = local.resolve()
        if not local.exists() and not local.is_symlink():
            raise DockyardError(f"stat {src}: no such file or directory")
        st = local.stat() if archive else None
        _place(local, src, host_dst, dst, (st.st_uid, st.st_gid) if st else (0, 0))
