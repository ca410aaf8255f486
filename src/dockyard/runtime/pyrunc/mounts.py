"""The container's mount namespace: spec mounts, /dev, cgroups, masked and read-only
paths, pivot_root. Runs in the container's init, after unshare(CLONE_NEWNS).

Every path inside the rootfs is resolved once, to a descriptor (``saferoot``), and
mounted onto or created through that descriptor (``/proc/self/fd/N``, ``*at`` calls):
a container sharing a volume with this one cannot swap a component for a symlink
between the resolution and the mount (CVE-2021-30465). A mount that must be changed
after it is made (a read-only remount, its propagation) is found by resolving its
destination once more, and refused unless that lands where the first resolution did
(runc's check).
"""

from __future__ import annotations

import os

from dockyard.fsutil import in_root  # noqa: F401 - re-exported (tests)
from dockyard import linux, saferoot
from dockyard.runtime.pyrunc import cgroups

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FLAGS = {  # option -> (set?, flag)
    "ro": (True, linux.MS_RDONLY), "rw": (False, linux.MS_RDONLY),
    "nosuid": (True, linux.MS_NOSUID), "suid": (False, linux.MS_NOSUID),
    "nodev": (True, linux.MS_NODEV), "dev": (False, linux.MS_NODEV),
    "noexec": (True, linux.MS_NOEXEC), "exec": (False, linux.MS_NOEXEC),
    "sync": (True, linux.MS_SYNCHRONOUS), "async": (False, linux.MS_SYNCHRONOUS),
    "dirsync": (True, linux.MS_DIRSYNC), "remount": (True, linux.MS_REMOUNT),
    "mand": (True, linux.MS_MANDLOCK), "nomand": (False, linux.MS_MANDLOCK),
    "noatime": (True, linux.MS_NOATIME), "atime": (False, linux.MS_NOATIME),
    "nodiratime": (True, linux.MS_NODIRATIME), "diratime": (False, linux.MS_NODIRATIME),
    "relatime": (True, linux.MS_RELATIME), "norelatime": (False, linux.MS_RELATIME),
    "strictatime": (True, linux.MS_STRICTATIME), "nostrictatime": (False, linux.MS_STRICTATIME),
    "nosymfollow": (True, linux.MS_NOSYMFOLLOW), "symfollow": (False, linux.MS_NOSYMFOLLOW),
    "bind": (True, linux.MS_BIND), "rbind": (True, linux.MS_BIND | linux.MS_REC),
}
_PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
_DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                    ("tty", 5, 0))
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
              ("/proc/self/fd/2", "stderr"), ("/proc/kcore", "core"), ("pts/ptmx", "ptmx"))


def parse_options(options: "list[str]") -> tuple[int, int, str]:
    """(mount flags, propagation flags, data string) of an OCI mount's options."""
    flags = propagation = 0
    data = []
    for option in options:
        if option in _FLAGS:
            is_set, flag = _FLAGS[option]
            flags = flags | flag if is_set else flags & ~flag
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        elif option != "tmpcopyup":
            data.append(option)
    return flags, propagation, ",".join(data)


def prepare_rootfs(spec: "dict[str, Any]", bundle: str) -> None:
    """Every mount, /dev, sysctls, masked and read-only paths, then pivot_root.

    Masking happens before pivot_root: masked files are bind mounts of the host's
    /dev/null (as in crun), which cannot be reached once the old root is detached.

    Propagation as runc has it: ``rootfsPropagation`` (default rprivate) goes on / of the
    new namespace first (private for an unbindable one: binds from the host's tree must
    still work); then the mount holding the rootfs is made private (slave for a slave
    propagation): pivot_root refuses a shared parent (EINVAL), an unbindable one cannot
    be bind-mounted, and a shared one would pass our mounts to its peers. A shared or
    unbindable propagation goes on the container's / after pivot_root."""
    root = spec["root"]["path"]
    if not root.startswith("/"):
        root = bundle + "/" + root
    root = os.path.realpath(root)
    linux_spec = spec.get("linux") or {}
    propagation = root_propagation(linux_spec.get("rootfsPropagation"))
    if propagation & linux.MS_UNBINDABLE:  # the host's tree would refuse every bind source
        linux.mount(None, "/", None, linux.MS_PRIVATE | (propagation & linux.MS_REC))
    else:
        linux.mount(None, "/", None, propagation)
    _propagation_of_mount_at(root, linux.MS_SLAVE if propagation & linux.MS_SLAVE else linux.MS_PRIVATE)
    linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    root_fd = saferoot.open_root(root)  # the bind just made: every mount goes below it
    try:
        dev_is_tmpfs = False
        for m in spec.get("mounts") or []:
            if m["destination"] == "/dev" and m.get("type") == "tmpfs":
                dev_is_tmpfs = True
            mount_one(root_fd, bundle, m)
        if dev_is_tmpfs:
            old = os.umask(0)
            try:
                create_devices(root_fd, linux_spec.get("devices") or [], in_user_namespace(linux_spec))
            finally:
                os.umask(old)
        for key, value in (linux_spec.get("sysctl") or {}).items():
            fd = saferoot.resolve(root_fd, "/proc/sys/" + key.replace(".", "/"), os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        for path in linux_spec.get("maskedPaths") or []:
            mask_path(root_fd, path)
        for path in linux_spec.get("readonlyPaths") or []:
            readonly_path(root_fd, path)
    finally:
        os.close(root_fd)
    _pivot(root)
    if propagation & (linux.MS_SHARED | linux.MS_UNBINDABLE):
        linux.mount(None, "/", None, propagation)


def root_propagation(name: "str | None") -> int:
    """The flags of ``linux.rootfsPropagation`` (rprivate when unset)."""
    if not name:
        return linux.MS_PRIVATE | linux.MS_REC
    if name not in _PROPAGATION:
        from dockyard.runtime.pyrunc.state import SetupError

        raise SetupError(f"rootfsPropagation {name!r}: not one of {', '.join(_PROPAGATION)}")
    return _PROPAGATION[name]


def _propagation_of_mount_at(path: str, flag: int) -> None:
    """``flag`` on the mount ``path`` lives on: the nearest mount point at or above it."""
    import errno

    while True:
        try:
            linux.mount(None, path, None, flag)
            return
        except OSError as e:
            if e.errno != errno.EINVAL or path == "/":  # EINVAL: not a mount point, go up
                raise
        path = os.path.dirname(path)


def _mount(source: "str | None", fd: int, fstype: "str | None", flags: int, data: "str | None",
           dest: str) -> None:
    """mount(2) onto what ``fd`` refers to; an error names the destination, not the fd."""
    try:
        linux.mount(source, saferoot.fd_path(fd), fstype, flags, data)
    except OSError as e:
        raise OSError(e.errno, f"mount {source or ''} on {dest}: {os.strerror(e.errno)}", dest) from None


def _top(root_fd: int, dest: str, where: str) -> int:
    """The mount just made at ``dest`` (an O_PATH descriptor of its root): ``dest`` resolved
    again, which must land where the mount was made (``where``), or something in the root
    is being swapped under us."""
    fd = saferoot.resolve(root_fd, dest)
    found = saferoot.real_path(fd)
    if found != where:
        os.close(fd)
        raise saferoot.BreakoutError(f"mount destination {dest} moved while it was mounted ({where} -> {found}): "
                                     "possible container breakout")
    return fd


def _change(root_fd: int, dest: str, where: str, flags: int) -> None:
    """A second mount(2) on the mount just made at ``dest``: a remount or a propagation.

    In a user namespace a bind of a mount from outside it carries that mount's flags
    locked (ro, nosuid, nodev, noexec, the atime ones): a remount that would clear one is
    refused (EPERM). Then the mount's own flags (statvfs) are kept on top of the asked
    ones, as runc does for "mount --bind -o remount,..."."""
    fd = _top(root_fd, dest, where)
    try:
        try:
            _mount(None, fd, None, flags, None, dest)
        except PermissionError:
            if not flags & linux.MS_REMOUNT:
                raise
            locked = locked_flags(fd, flags)
            if locked & ~flags == 0:
                raise
            _mount(None, fd, None, flags | locked, None, dest)
    finally:
        os.close(fd)


_ATIME = linux.MS_NOATIME | linux.MS_NODIRATIME | linux.MS_RELATIME | linux.MS_STRICTATIME
_STATVFS_FLAGS = ((os.ST_RDONLY, linux.MS_RDONLY), (os.ST_NOSUID, linux.MS_NOSUID), (os.ST_NODEV, linux.MS_NODEV),
                  (os.ST_NOEXEC, linux.MS_NOEXEC), (os.ST_NOATIME, linux.MS_NOATIME),
                  (os.ST_NODIRATIME, linux.MS_NODIRATIME), (os.ST_RELATIME, linux.MS_RELATIME))


def locked_flags(fd: int, flags: int) -> int:
    """The flags of the mount ``fd`` is on that the kernel may hold locked (a user
    namespace's copy of an outer mount): its ro/nosuid/nodev/noexec, and its atime flags
    unless ``flags`` asks for an atime of its own."""
    st = os.statvfs(fd)
    found = 0
    for st_flag, ms_flag in _STATVFS_FLAGS:
        if st.f_flag & st_flag:
            found |= ms_flag
    if flags & _ATIME:
        found &= ~_ATIME
    return found


def in_user_namespace(linux_spec: "dict[str, Any]") -> bool:
    """Whether the container is in a user namespace (a new one or one joined by path)."""
    return any(ns.get("type") == "user" for ns in linux_spec.get("namespaces") or [])


def mount_one(root_fd: int, bundle: str, m: "dict[str, Any]") -> None:
    """One spec mount at its destination inside the root ``root_fd``."""
    dest = m["destination"]
    kind = m.get("type") or "bind"
    flags, propagation, data = parse_options(m.get("options") or [])
    remount = 0
    if kind == "bind" or flags & linux.MS_BIND:
        source = m.get("source") or ""
        if not source.startswith("/"):
            source = bundle + "/" + source
        source_fd = os.open(source, os.O_PATH | os.O_CLOEXEC)  # a host path: followed as given
        try:
            is_dir = os.path.isdir(saferoot.fd_path(source_fd))
            target = saferoot.mkdirs(root_fd, dest) if is_dir else saferoot.make_file(root_fd, dest)
            try:
                where = saferoot.real_path(target)
                _bind(source_fd, target, flags & linux.MS_REC, source, dest)
            finally:
                os.close(target)
        finally:
            os.close(source_fd)
        remount = flags & ~(linux.MS_BIND | linux.MS_REC)
    else:
        target = saferoot.mkdirs(root_fd, dest)
        try:
            where = saferoot.real_path(target)
            if kind == "cgroup":
                mount_cgroups(root_fd, target, dest, where, flags)
            else:
                remount = _filesystem(m.get("source") or kind, target, kind, flags, data, dest)
        finally:
            os.close(target)
    if remount:
        _change(root_fd, dest, where, linux.MS_BIND | linux.MS_REMOUNT | remount)
    if propagation:
        _change(root_fd, dest, where, propagation)


def _bind(source_fd: int, target: int, rec: int, source: str, dest: str) -> None:
    """Bind what ``source_fd`` refers to onto ``target`` (both descriptors: no name between)."""
    try:
        linux.mount(saferoot.fd_path(source_fd), saferoot.fd_path(target), None, linux.MS_BIND | rec)
    except OSError as e:
        raise OSError(e.errno, f"mount {source} on {dest}: {os.strerror(e.errno)}", dest) from None


def _filesystem(source: str, target: int, kind: str, flags: int, data: str, dest: str) -> int:
    """A new filesystem at ``target``; the flags still to apply by a remount (0: none)."""
    try:
        _mount(source, target, kind, flags, data or None, dest)
        return 0
    except PermissionError:
        if kind not in ("sysfs", "mqueue"):
            raise
    # Sharing the host's network (or IPC) namespace forbids a new sysfs (mqueue):
    # bind the host's instead, as runc does.
    host = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}[kind]
    _mount(host, target, None, linux.MS_BIND | linux.MS_REC, None, dest)
    return flags


def mount_cgroups(root_fd: int, target: int, dest: str, where: str, flags: int) -> None:
    """cgroup2 as is; on v1, a tmpfs holding one mount per hierarchy (crun's layout).

    In a user namespace without a cgroup namespace of its own the kernel refuses a new
    cgroup mount (EPERM): the host's are bound instead, as runc does (cgroup2: the host's
    /sys/fs/cgroup; v1: the container's own cgroup of each hierarchy)."""
    if cgroups.is_unified():
        try:
            _mount("cgroup2", target, "cgroup2", flags, None, dest)
        except PermissionError:
            _bind_cgroup(root_fd, cgroups.CGROUP_ROOT, target, dest, where, flags)
        return
    _mount("cgroup", target, "tmpfs", flags & ~linux.MS_RDONLY, "size=1024k", dest)
    top = _top(root_fd, dest, where)  # the tmpfs: ours alone, nothing in it to swap
    own: "dict[str, str] | None" = None
    try:
        for point, options in cgroups.v1_hierarchies().items():
            if options == "unified":
                continue
            controllers = cgroups.controllers_of(options)
            name = os.path.basename(point)
            try:
                os.mkdir(name, 0o755, dir_fd=top)
            except FileExistsError:
                pass
            sub = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
            try:
                try:
                    _mount(point, sub, "cgroup", flags, ",".join(controllers), f"{dest}/{name}")
                except PermissionError:
                    if own is None:
                        own = _own_cgroups()
                    source = point + own.get(",".join(controllers), "/")
                    if not os.path.isdir(source):
                        source = point
                    _bind_cgroup(root_fd, source, sub, f"{dest}/{name}", saferoot.real_path(sub), flags)
            finally:
                os.close(sub)
            for c in controllers:
                if c != name and not c.startswith("name="):
                    try:
                        os.symlink(name, c, dir_fd=top)
                    except FileExistsError:
                        pass
    finally:
        os.close(top)


def _own_cgroups() -> "dict[str, str]":
    """This process's cgroup in each v1 hierarchy: its controllers (``cpu``,
    ``name=systemd``, as /proc/self/cgroup has them) -> path."""
    found = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers:
                found[controllers] = path.rstrip("/")
    return found


def _bind_cgroup(root_fd: int, source: str, target: int, dest: str, where: str, flags: int) -> None:
    """``source`` (a host cgroup directory) bound at ``target``, then given ``flags``."""
    _mount(source, target, None, linux.MS_BIND, None, dest)
    if flags & ~linux.MS_REC:
        _change(root_fd, dest, where, linux.MS_BIND | linux.MS_REMOUNT | (flags & ~linux.MS_REC))


def create_devices(root_fd: int, devices: "list[dict[str, Any]]", bind: bool = False) -> None:
    """The default devices, the spec's, and /dev's symlinks, each made at a descriptor of
    its directory inside the root (an image's /dev symlink cannot send them elsewhere).

    In a user namespace (``bind``) mknod is refused: each node is the host's same path
    bound onto an empty file, as runc does (so too when mknod fails with EPERM)."""
    import stat

    dev = saferoot.mkdirs(root_fd, "/dev")
    try:
        bound = set()  # a spec device the defaults have: the same host node, bound once
        for name, major, minor in _DEFAULT_DEVICES:
            if bind:
                _bind_node(dev, name, "/dev/" + name)
                bound.add("/dev/" + name)
            else:
                _mknod(dev, name, stat.S_IFCHR | 0o666, major, minor, 0, 0, "/dev/" + name)
        for d in devices:
            if bind:
                if os.path.normpath(d["path"]) in bound or os.path.normpath(d["path"]) == "/dev/ptmx":
                    continue  # (ptmx: the devpts instance's, linked below)
                parent, name = saferoot.split(d["path"])
                if name is None:
                    raise IsADirectoryError(21, os.strerror(21), d["path"])
                pfd = saferoot.mkdirs(root_fd, parent)
                try:
                    _bind_node(pfd, name, d["path"])
                finally:
                    os.close(pfd)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.get("type", "c")]
            parent, name = saferoot.split(d["path"])
            if name is None:
                raise IsADirectoryError(21, os.strerror(21), d["path"])
            pfd = saferoot.mkdirs(root_fd, parent)
            try:
                _mknod(pfd, name, kind | (d.get("fileMode") or 0o666), d.get("major", 0), d.get("minor", 0),
                       d.get("uid") or 0, d.get("gid") or 0, d["path"])
            finally:
                os.close(pfd)
        for target, name in _DEV_LINKS:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
    finally:
        os.close(dev)


def _mknod(dir_fd: int, name: str, mode: int, major: int, minor: int, uid: int, gid: int, path: str) -> None:
    """The node ``name`` in ``dir_fd`` (``path`` in the container: for errors); the host's
    ``path`` bound there if mknod is not permitted (a user namespace joined unseen)."""
    import stat

    try:
        try:
            os.unlink(name, dir_fd=dir_fd)  # a symlink there goes itself, never its target
        except FileNotFoundError:
            pass
        try:
            os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
        except PermissionError:
            if stat.S_ISFIFO(mode):  # a FIFO is never refused for privilege: nothing to bind
                raise
            bind = True
        else:
            bind = False
        if not bind and (uid or gid):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        raise OSError(e.errno, os.strerror(e.errno), path) from None
    if bind:
        _bind_node(dir_fd, name, path)


def _bind_node(dir_fd: int, name: str, path: str) -> None:
    """The host's device ``path`` bound onto an empty file ``name`` made in ``dir_fd``."""
    try:
        try:
            os.unlink(name, dir_fd=dir_fd)  # a symlink there goes itself, never its target
        except FileNotFoundError:
            pass
        source = os.open(path, os.O_PATH | os.O_CLOEXEC)  # a host path, as in the spec
        try:
            target = _create_empty(dir_fd, name)
            try:
                linux.mount(saferoot.fd_path(source), saferoot.fd_path(target), None, linux.MS_BIND)
            finally:
                os.close(target)
        finally:
            os.close(source)
    except OSError as e:
        raise OSError(e.errno, f"binding the host's {path}: {os.strerror(e.errno)}", path) from None


def _create_empty(dir_fd: int, name: str) -> int:
    """A new empty file ``name`` in ``dir_fd``, mode 0 (a mount point), as an O_PATH descriptor."""
    fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC, 0, dir_fd=dir_fd)
    try:
        return os.open(saferoot.fd_path(fd), os.O_PATH | os.O_CLOEXEC)
    finally:
        os.close(fd)


def _pivot(root: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked underneath (runc's way: no
    put_old directory inside the container)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        linux.pivot_root(".", ".")
        os.fchdir(old_root)
        # Keep the unmount from propagating to the host's mounts.
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount(".", linux.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def finish_rootfs(spec: "dict[str, Any]") -> None:
    """After pivot_root: a read-only root if asked for."""
    if spec["root"].get("readonly"):
        linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def mask_path(root_fd: int, path: str) -> None:
    """An empty read-only tmpfs over a directory, /dev/null over a file."""
    try:
        fd = saferoot.resolve(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        where = saferoot.real_path(fd)
        if os.path.isdir(saferoot.fd_path(fd)):
            _mount("tmpfs", fd, "tmpfs", linux.MS_RDONLY, "size=0k", path)
            return
        _mount("/dev/null", fd, None, linux.MS_BIND, None, path)
    finally:
        os.close(fd)
    _change(root_fd, path, where, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def readonly_path(root_fd: int, path: str) -> None:
    """``path`` bound onto itself, then remounted read-only (recursively)."""
    try:
        fd = saferoot.resolve(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        where = saferoot.real_path(fd)
        _mount(saferoot.fd_path(fd), fd, None, linux.MS_BIND | linux.MS_REC, None, path)
    finally:
        os.close(fd)
    _change(root_fd, path, where, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)
