"""A container's root filesystem: an overlayfs of its image's layers plus its own upper dir.

Layout under the container's directory::

    upper/   the container's changes     work/   overlayfs scratch     rootfs/  the mount

Overlay options are limited to one page; with many layers the lowerdirs are given
relative to the layer store's root (mount(2) resolves them against the cwd), which is
why that mount runs in a child process with that cwd. Otherwise mount(2) and umount2(2)
are called directly (ctypes): a fork+exec of /usr/bin/mount costs more than the syscall.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Sequence

PAGE = 4096
MNT_DETACH = 2


class RootfsError(DockyardError):
    exit_code = 125


def overlay_options(lowerdirs: Sequence[str | os.PathLike], upper: str | os.PathLike,
                    work: str | os.PathLike) -> tuple[str, str | None]:
    """(options, cwd to mount from or None). Lowerdirs top first, as the layer store gives them."""
    options = f"lowerdir={':'.join(str(d) for d in lowerdirs)},upperdir={upper},workdir={work}"
    if len(options) < PAGE - 1:
        return options, None
    base = os.path.commonpath([str(d) for d in lowerdirs])
    relative = ":".join(os.path.relpath(d, base) for d in lowerdirs)
    options = f"lowerdir={relative},upperdir={upper},workdir={work}"
    if len(options) >= PAGE - 1:
        raise RootfsError(f"too many layers ({len(lowerdirs)}) for one overlay mount")
    return options, base


def mount(lowerdirs: Sequence[str | os.PathLike], container_dir: str | os.PathLike, volatile: bool = False) -> str:
    """Mount the rootfs of a container under ``container_dir``; returns the mount point.

    ``volatile`` (for containers removed when they exit, ``--rm``): overlayfs skips every
    sync of the upper dir, including the one at unmount that ``run --rm`` would wait for.
    A crash then leaves the upper dir unusable, which a container about to be deleted
    does not mind. Idempotent: an already mounted rootfs is returned as it is."""
    if not lowerdirs:
        raise RootfsError("an image needs at least one layer to make a rootfs")
    base = os.path.realpath(container_dir)
    upper, work, target = (os.path.join(base, name) for name in ("upper", "work", "rootfs"))
    for d in (upper, work, target):
        os.makedirs(d, exist_ok=True)
    if is_mounted(target):
        return target
    options, cwd = overlay_options(list(lowerdirs), upper, work)
    if volatile and len(options) + len(",volatile") < PAGE - 1:
        options += ",volatile"
    if cwd is None:
        from dockyard import linux

        try:
            linux.mount("overlay", target, "overlay", 0, options)
        except OSError as e:
            if not options.endswith(",volatile"):
                raise RootfsError(f"cannot mount the container's rootfs: {e.strerror}") from None
            return mount(lowerdirs, container_dir)  # a kernel before 5.10: no volatile
        return target
    import subprocess

    result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, target],
                            cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RootfsError(f"cannot mount the container's rootfs: {result.stderr.strip()}")
    return target


def unmount(container_dir: str | os.PathLike) -> None:
    """Unmount the rootfs if mounted (lazily if busy)."""
    target = os.path.join(container_dir, "rootfs")
    if not is_mounted(target):
        return
    from dockyard import linux

    try:
        linux.umount(os.path.realpath(target))
    except OSError:
        try:
            linux.umount(os.path.realpath(target), MNT_DETACH)
        except OSError:
            pass


def remove(container_dir: str | os.PathLike) -> None:
    """Unmount and delete the container's rootfs, upper and work dirs."""
    unmount(container_dir)
    base = os.fspath(container_dir)
    if is_mounted(os.path.join(base, "rootfs")):
        raise RootfsError(f"{os.path.join(base, 'rootfs')} is still mounted")
    if os.path.exists(base):
        import shutil

        shutil.rmtree(base)


def is_mounted(path: str | os.PathLike) -> bool:
    try:
        real = os.path.realpath(path)
        with open("/proc/self/mountinfo") as f:
            return any(_unescape(line.split()[4]) == real for line in f)
    except OSError:
        return False


def _unescape(field: str) -> str:
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)
