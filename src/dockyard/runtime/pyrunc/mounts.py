"""The container's mount namespace: spec mounts, /dev, cgroups, masked and read-only
paths, pivot_root. Runs in the container's init, after unshare(CLONE_NEWNS)."""

from __future__ import annotations

import os

from dockyard.fsutil import in_root
from dockyard import linux
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


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass


def prepare_rootfs(spec: "dict[str, Any]", bundle: str) -> None:
    """Every mount, /dev, sysctls, masked and read-only paths, then pivot_root.

    Masking happens before pivot_root: masked files are bind mounts of the host's
    /dev/null (as in crun), which cannot be reached once the old root is detached."""
    root = spec["root"]["path"]
    if not root.startswith("/"):
        root = bundle + "/" + root
    root = os.path.realpath(root)
    linux_spec = spec.get("linux") or {}
    propagation = _PROPAGATION.get(linux_spec.get("rootfsPropagation") or "rprivate",
                                   linux.MS_PRIVATE | linux.MS_REC)
    linux.mount(None, "/", None, propagation)
    linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    dev_is_tmpfs = False
    for m in spec.get("mounts") or []:
        if m["destination"] == "/dev" and m.get("type") == "tmpfs":
            dev_is_tmpfs = True
        mount_one(root, bundle, m)
    if dev_is_tmpfs:
        old = os.umask(0)
        try:
            create_devices(root, linux_spec.get("devices") or [])
        finally:
            os.umask(old)
    for key, value in (linux_spec.get("sysctl") or {}).items():
        with open(in_root(root, "/proc/sys/" + key.replace(".", "/")), "w") as f:
            f.write(value)
    for path in linux_spec.get("maskedPaths") or []:
        mask_path(in_root(root, path))
    for path in linux_spec.get("readonlyPaths") or []:
        readonly_path(in_root(root, path))
    _pivot(root)


def mount_one(root: str, bundle: str, m: "dict[str, Any]") -> None:
    dest = in_root(root, m["destination"])
    kind = m.get("type") or "bind"
    flags, propagation, data = parse_options(m.get("options") or [])
    if kind == "bind" or flags & linux.MS_BIND:
        source = m.get("source") or ""
        if not source.startswith("/"):
            source = bundle + "/" + source
        if os.path.isdir(source):
            _mkdirs(dest)
        elif not os.path.exists(dest):
            _mkdirs(os.path.dirname(dest))
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        linux.mount(source, dest, None, linux.MS_BIND | (flags & linux.MS_REC))
        extra = flags & ~(linux.MS_BIND | linux.MS_REC)
        if extra:
            linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | extra)
    elif kind == "cgroup":
        _mkdirs(dest)
        mount_cgroups(dest, flags)
    else:
        _mkdirs(dest)
        try:
            linux.mount(m.get("source") or kind, dest, kind, flags, data or None)
        except PermissionError:
            if kind not in ("sysfs", "mqueue"):
                raise
            # Sharing the host's network (or IPC) namespace forbids a new sysfs (mqueue):
            # bind the host's instead, as runc does.
            host = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}[kind]
            linux.mount(host, dest, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | flags)
    if propagation:
        linux.mount(None, dest, None, propagation)


def mount_cgroups(dest: str, flags: int) -> None:
    """cgroup2 as is; on v1, a tmpfs holding one mount per hierarchy (crun's layout)."""
    if cgroups.is_unified():
        linux.mount("cgroup2", dest, "cgroup2", flags)
        return
    linux.mount("cgroup", dest, "tmpfs", flags & ~linux.MS_RDONLY, "size=1024k")
    for point, options in cgroups.v1_hierarchies().items():
        if options == "unified":
            continue
        controllers = cgroups.controllers_of(options)
        name = os.path.basename(point)
        target = dest + "/" + name
        _mkdirs(target)
        linux.mount(point, target, "cgroup", flags, ",".join(controllers))
        for c in controllers:
            if c != name and not c.startswith("name=") and not os.path.lexists(dest + "/" + c):
                os.symlink(name, dest + "/" + c)


def create_devices(root: str, devices: "list[dict[str, Any]]") -> None:
    import stat

    dev = root + "/dev"
    for name, major, minor in _DEFAULT_DEVICES:
        _mknod(dev + "/" + name, stat.S_IFCHR | 0o666, major, minor, 0, 0)
    for d in devices:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.get("type", "c")]
        path = in_root(root, d["path"])
        _mkdirs(os.path.dirname(path))
        _mknod(path, kind | (d.get("fileMode") or 0o666), d.get("major", 0), d.get("minor", 0),
               d.get("uid") or 0, d.get("gid") or 0)
    for target, name in _DEV_LINKS:
        try:
            os.symlink(target, dev + "/" + name)
        except FileExistsError:
            pass


def _mknod(path: str, mode: int, major: int, minor: int, uid: int, gid: int) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mknod(path, mode, os.makedev(major, minor))
    if uid or gid:
        os.chown(path, uid, gid)


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


def mask_path(path: str) -> None:
    """An empty read-only tmpfs over a directory, /dev/null over a file."""
    try:
        is_dir = os.path.isdir(path)
        if not is_dir and not os.path.exists(path):
            return
        if is_dir:
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, "size=0k")
        else:
            linux.mount("/dev/null", path, None, linux.MS_BIND)
            linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    except FileNotFoundError:
        pass


def readonly_path(path: str) -> None:
    try:
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    except FileNotFoundError:
        return
    linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)
