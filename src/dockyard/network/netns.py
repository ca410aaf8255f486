"""Named network namespaces, as ``ip netns`` keeps them, under a directory we choose: a
namespace lives as long as its nsfs inode is bind-mounted on a file there.

Only the calling thread ever changes namespace, and always comes back: ``create`` unshares
on the calling thread and setns-es back (measured faster than a forked child), ``entered``
does the same around a block. ``dockyard.linux`` (ctypes) is imported only by the functions
that need a system call, so importing this module stays cheap.
"""

from __future__ import annotations

import os

_SELF = "/proc/thread-self/ns/net"   # the calling thread's namespace (not the process's)


def _nsfs_dev() -> int:
    """The device of the nsfs pseudo filesystem: one superblock holds every namespace inode."""
    return os.stat(_SELF).st_dev


def exists(path: str) -> bool:
    """Whether ``path`` holds a namespace (an nsfs inode bind-mounted there)."""
    try:
        return os.stat(path).st_dev == _nsfs_dev()
    except OSError:
        return False


class _Entered:
    """The calling thread inside a namespace for a ``with`` block, back in its own after it
    (also when the block raises). Takes a path, or an open namespace fd (left open)."""

    def __init__(self, target: "str | int") -> None:
        self._target = target
        self._back = -1

    def __enter__(self) -> "_Entered":
        from dockyard import linux

        own = isinstance(self._target, str)
        fd = os.open(self._target, os.O_RDONLY | os.O_CLOEXEC) if own else self._target
        try:
            back = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, linux.CLONE_NEWNET)
            except BaseException:
                os.close(back)
                raise
            self._back = back
        finally:
            if own:
                os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        from dockyard import linux

        back, self._back = self._back, -1
        try:
            linux.setns(back, linux.CLONE_NEWNET)
        finally:
            os.close(back)


def entered(path: str) -> _Entered:
    """``with entered(path):`` runs the block with the calling thread in that namespace."""
    return _Entered(path)


def create(path: str) -> None:
    """A new network namespace bind-mounted on ``path`` (made, with its parents), its loopback
    up. The caller's own namespace is unchanged. EEXIST if ``path`` holds one already."""
    from dockyard import linux
    from dockyard.network import rtnl

    if exists(path):
        raise FileExistsError(17, f"network namespace {path} exists", path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))   # the mount point
    back = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    mounted = False
    try:
        linux.unshare(linux.CLONE_NEWNET)
        try:
            linux.mount(_SELF, path, None, linux.MS_BIND)
            mounted = True
            with rtnl.Netlink() as nl:   # made in the new namespace: loopback up
                nl._request(rtnl.RTM_NEWLINK, 0, rtnl._IFINFO.pack(0, 0, rtnl.LOOPBACK_IFINDEX, rtnl.IFF_UP,
                                                                   rtnl.IFF_UP), f"set lo up in {path}")
        finally:
            linux.setns(back, linux.CLONE_NEWNET)
    except BaseException:
        if mounted:
            remove(path)
        else:
            _unlink(path)
        raise
    finally:
        os.close(back)


def remove(path: str) -> None:
    """Unmount (lazily) and delete ``path``; nothing to do if it is missing or not mounted.
    The kernel frees the namespace, and its veths, asynchronously afterwards."""
    if exists(path):
        from dockyard import linux

        for _ in range(8):   # a namespace mounted twice on one path (a crash between runs)
            try:
                linux.umount(path, linux.MNT_DETACH)
            except OSError:
                break
            if not exists(path):
                break
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
