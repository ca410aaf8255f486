"""Paths inside a root, resolved once to a descriptor and used through that descriptor.

``fsutil.in_root`` returns a *name*: every later syscall on it resolves it again, and
whoever can change the tree meanwhile (a container sharing a volume, a running
container seen through ``/proc/<pid>/root``) can swap a component for a symlink
between the check and the use (CVE-2021-30465, CVE-2018-15664). Here a path is
resolved once, to a file descriptor, and the caller mounts onto, reads, writes or
walks below that descriptor: mount(2) targets ``/proc/self/fd/N`` (``fd_path``),
children are opened relative to it with ``O_NOFOLLOW``.

Resolution is ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` where the kernel
has it (5.6+), else a walk from a descriptor of the root, one component at a time with
``O_NOFOLLOW`` from the directory descriptor before it: the tar extractor's walk
(``store.archive._Extractor._step``), which refuses every symlink, extended to follow
one the way the kernel would inside the root: its text is read from the link's own
descriptor and resolution goes on from the root for an absolute target, from the
directory it is in for a relative one; ``..`` steps back to the descriptor it came
from, never above the root and never through a ``..`` lookup a rename could redirect. The walk hands a magic link (``/proc/self/fd/N``) no special treatment: its text
is read like any symlink's and resolved inside the root, so it cannot leave it either.

Every descriptor made here is ``O_CLOEXEC``: none may reach a container's process.
"""

from __future__ import annotations

import errno
import os
import stat

# None: openat2 is tried on first use (ENOSYS turns it off); False: the O_NOFOLLOW walk
# only (tests set it to exercise the walk); True: known to work.
USE_OPENAT2: "bool | None" = None

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table)
MAX_HOPS = 40       # symlinks followed in one resolution before ELOOP, as the kernel
_AGAIN = 16         # openat2 retries on EAGAIN (a rename raced with "..") before walking

_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

_openat2_fn = None


class BreakoutError(OSError):
    """A path resolved twice gave two different places: something inside the root is
    being swapped under us (a race from a container)."""


def open_root(path: "str | os.PathLike[str]") -> int:
    """An ``O_PATH`` descriptor of the directory ``path`` (a host path, followed as given)."""
    return os.open(path, _O_PATH_DIR)


def fd_path(fd: int) -> str:
    """The name that reaches exactly what ``fd`` refers to (mount(2) targets and sources)."""
    return f"/proc/self/fd/{fd}"


def real_path(fd: int) -> str:
    """Where ``fd`` is, as this process's mount namespace names it (for messages and checks)."""
    return os.readlink(fd_path(fd))


def reopen(fd: int, flags: int) -> int:
    """A new descriptor of what the ``O_PATH`` descriptor ``fd`` refers to, opened with
    ``flags`` (the inode, never a name: nothing on the way can be swapped)."""
    return os.open(fd_path(fd), flags | os.O_CLOEXEC)


# ------------------------------------------------------------------ resolving

def resolve(root_fd: int, path: str, flags: int = os.O_PATH, mode: int = 0o644, *, follow: bool = True) -> int:
    """A new descriptor (``flags | O_CLOEXEC``) of ``path`` resolved inside the directory
    ``root_fd`` as if it were "/": absolute symlinks and ``..`` stay in it.

    ``follow=False``: a final symlink is not followed (``O_NOFOLLOW``): with ``O_PATH`` the
    descriptor is the link's own, otherwise ELOOP. ``O_CREAT`` creates the last component
    (its parent must exist)."""
    global USE_OPENAT2
    if not follow:
        flags |= os.O_NOFOLLOW
    if USE_OPENAT2 is not False:
        for _ in range(_AGAIN):
            try:
                fd = _openat2(root_fd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
            except OSError as e:
                if e.errno == errno.ENOSYS and USE_OPENAT2 is None:
                    USE_OPENAT2 = False
                    break
                if e.errno == errno.EAGAIN:
                    continue
                raise
            USE_OPENAT2 = True
            return fd
    return _walk(root_fd, path, flags, mode, follow)


def mkdirs(root_fd: int, path: str, mode: int = 0o755) -> int:
    """An ``O_PATH`` descriptor of directory ``path`` inside the root, the missing
    directories on the way created with ``mode`` (symlinks followed inside the root, a
    dangling one by creating its target there, as ``mkdir -p`` through a chroot)."""
    try:
        return resolve(root_fd, path, _O_PATH_DIR)
    except FileNotFoundError:
        pass
    return _walk(root_fd, path, _O_PATH_DIR, 0, True, mkdir_mode=mode)


def make_file(root_fd: int, path: str, mode: int = 0o644) -> int:
    """An ``O_PATH`` descriptor of ``path`` inside the root, an empty regular file created
    there (and its parent directories) when nothing is: a bind mount's target for a file."""
    try:
        return resolve(root_fd, path)
    except FileNotFoundError:
        pass
    parent, name = split(path)
    if name is None:
        return mkdirs(root_fd, path)
    os.close(mkdirs(root_fd, parent))
    fd = resolve(root_fd, path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, mode)
    os.close(fd)
    return resolve(root_fd, path)


def split(path: str) -> "tuple[str, str | None]":
    """(parent, last component) of a path inside a root; None for the root itself or a
    path whose last component is ``..``."""
    parts = _parts(path)
    if not parts or parts[-1] == "..":
        return path, None
    return "/" + "/".join(parts[:-1]), parts[-1]


def check_cwd() -> None:
    """After chdir to a container process's cwd: it must be inside the process's root
    (a cwd of /proc/self/fd/N through a leaked host directory descriptor is not; runc's
    check for CVE-2024-21626). Raises PermissionError saying so."""
    try:
        inside = os.getcwd().startswith("/")  # glibc: ENOENT when the kernel says "(unreachable)/..."
    except FileNotFoundError:
        inside = False
    except PermissionError:  # a seccomp profile that denies getcwd (loaded first when no_new_privs is off)
        inside = _reaches_root()
    if not inside:
        raise PermissionError(errno.EPERM, "the current working directory is outside of the container's root "
                                           "(possible container breakout)")


def _reaches_root(limit: int = 4096) -> bool:
    """Whether walking ".." up from the cwd reaches this process's "/" (what getcwd does):
    from outside the root the walk ends at another file system root instead."""
    root = os.stat("/")
    path = "."
    for _ in range(limit):
        here = os.stat(path)
        if (here.st_dev, here.st_ino) == (root.st_dev, root.st_ino):
            return True
        parent = os.stat(path + "/..")
        if (parent.st_dev, parent.st_ino) == (here.st_dev, here.st_ino):
            return False  # a root that is not ours
        path += "/.."
    return False


def _parts(path: str) -> "list[str]":
    return [p for p in path.split("/") if p and p != "."]


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve_flags: int) -> int:
    global _openat2_fn
    if _openat2_fn is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
        syscall.restype = ctypes.c_long

        class OpenHow(ctypes.Structure):  # struct open_how {u64 flags; u64 mode; u64 resolve;}
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

        def call(dirfd: int, path: bytes, flags: int, mode: int, resolve_flags: int) -> int:
            how = OpenHow(flags, mode, resolve_flags)
            result = syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(path),
                             ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
            if result < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path.decode(errors="replace"))
            return result

        _openat2_fn = call
    tmpfile = getattr(os, "O_TMPFILE", 0)  # __O_TMPFILE | O_DIRECTORY
    if not flags & os.O_CREAT and (not tmpfile or flags & tmpfile != tmpfile):
        mode = 0  # openat2 refuses a mode without O_CREAT or O_TMPFILE
    return _openat2_fn(dirfd, os.fsencode(path.lstrip("/") or "."), flags | os.O_CLOEXEC, mode, resolve_flags)


def _walk(root_fd: int, path: str, flags: int, mode: int, follow: bool, mkdir_mode: "int | None" = None) -> int:
    """``resolve`` without openat2: one component at a time from descriptors we hold, each
    opened ``O_NOFOLLOW``; a symlink's text is read and resolved the same way. With
    ``mkdir_mode``, missing directories are created (every component is a directory)."""
    parts = _parts(path)
    stack = [os.dup(root_fd)]  # the directories from the root down to where we are
    hops = 0

    def splice(target: str) -> None:
        nonlocal parts, hops
        hops += 1
        if hops > MAX_HOPS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            while len(stack) > 1:
                os.close(stack.pop())
        parts = _parts(target) + parts

    try:
        while True:
            if not parts:  # the root itself, or a path ending in ".."
                return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1])
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            here = stack[-1]
            if not parts and mkdir_mode is None:
                fd = _last(here, part, flags, mode, follow)
                if isinstance(fd, str):
                    splice(fd)
                    continue
                return fd
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            except FileNotFoundError:
                if mkdir_mode is None:
                    raise
                try:
                    os.mkdir(part, mkdir_mode, dir_fd=here)
                except FileExistsError:
                    pass  # made meanwhile (by whoever): look again
                parts.insert(0, part)
                hops += 1  # a racing rmdir must not keep this loop going for ever
                if hops > MAX_HOPS:
                    raise
                continue
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                splice(target)
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            if not parts:  # mkdirs: the last directory
                if flags & os.O_PATH:
                    return fd
                try:
                    return reopen(fd, flags)
                finally:
                    os.close(fd)
            stack.append(fd)
    finally:
        for fd in stack:
            os.close(fd)


def _last(dir_fd: int, name: str, flags: int, mode: int, follow: bool) -> "int | str":
    """The last component: a descriptor, or the text of a symlink to follow."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as e:
        # A symlink under O_NOFOLLOW: ELOOP, or ENOTDIR with O_DIRECTORY.
        if not follow or e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError:
            raise e from None  # not a symlink (any more): the open's own error
    if follow and flags & os.O_PATH:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):  # O_PATH|O_NOFOLLOW opens the link itself
            try:
                return os.readlink("", dir_fd=fd)
            finally:
                os.close(fd)
    return fd


def resolve_parent(root_fd: int, path: str) -> "tuple[int, str | None]":
    """(an ``O_PATH`` descriptor of the directory holding ``path``'s last component, that
    component) inside the root, a final symlink followed inside the root as a write to
    ``path`` would follow it; the name may not exist. (descriptor of the directory, None)
    when ``path`` is the root or ends in ``..``. What is at the name is the caller's to
    open with ``O_NOFOLLOW``: swapped for a symlink meanwhile, it is replaced, never
    followed."""
    for _ in range(MAX_HOPS + 1):
        parent, name = split(path)
        if name is None:
            return resolve(root_fd, path, _O_PATH_DIR), None
        pfd = resolve(root_fd, parent, _O_PATH_DIR)
        try:
            target = os.readlink(name, dir_fd=pfd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):  # not a symlink; nothing there
                os.close(pfd)
                raise
            return pfd, name
        os.close(pfd)
        path = target if target.startswith("/") else parent + "/" + target
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


# ------------------------------------------------------------------ copying

_CHUNK = 1 << 20
KEEP = "keep"  # copy_entry's owner: the source's own


def copy_entry(src_fd: int, dst_dir_fd: int, name: str, owner: "tuple[int, int] | str | None" = None) -> None:
    """Copy what the ``O_PATH`` descriptor ``src_fd`` refers to (a symlink's own descriptor
    copies the link) to ``name`` in the directory ``dst_dir_fd``, a directory with all it
    holds. Both sides are walked through descriptors with ``O_NOFOLLOW``: a symlink met on
    either side is copied or replaced, never followed; what is in the way at the
    destination is replaced, except a directory where a directory goes (merged).

    Modes and times are kept; owners are ``owner`` ((uid, gid)), the source's (``KEEP``),
    or the caller's (None)."""
    st = os.fstat(src_fd)
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        dfd = _make_dir(dst_dir_fd, name)
        try:
            copy_children(src_fd, dfd, owner)
            _finish(dfd, None, st, owner)
        finally:
            os.close(dfd)
        return
    if kind == stat.S_IFREG:
        rfd = reopen(src_fd, os.O_RDONLY)
        try:
            wfd = _create(dst_dir_fd, name, lambda: os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                                             | os.O_CLOEXEC, 0o600, dir_fd=dst_dir_fd))
            try:
                _copy_data(rfd, wfd)
                _finish(wfd, None, st, owner)
            finally:
                os.close(wfd)
        finally:
            os.close(rfd)
        return
    if kind == stat.S_IFLNK:
        target = os.readlink("", dir_fd=src_fd)
        _create(dst_dir_fd, name, lambda: os.symlink(target, name, dir_fd=dst_dir_fd))
    elif kind == stat.S_IFIFO:
        _create(dst_dir_fd, name, lambda: os.mkfifo(name, 0o600, dir_fd=dst_dir_fd))
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        _create(dst_dir_fd, name, lambda: os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=dst_dir_fd))
    else:
        return  # a socket: nothing to copy
    _finish(dst_dir_fd, name, st, owner)


def copy_children(src_dir_fd: int, dst_dir_fd: int, owner: "tuple[int, int] | str | None" = None) -> None:
    """``copy_entry`` of everything in the directory ``src_dir_fd`` into ``dst_dir_fd``."""
    rfd = reopen(src_dir_fd, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = os.listdir(rfd)
        for child in names:
            try:
                cfd = os.open(child, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rfd)
            except FileNotFoundError:
                continue  # gone meanwhile
            try:
                copy_entry(cfd, dst_dir_fd, child, owner)
            finally:
                os.close(cfd)
    finally:
        os.close(rfd)


def _make_dir(dir_fd: int, name: str) -> int:
    """An ``O_RDONLY`` descriptor of directory ``name`` in ``dir_fd``: the one there, or a new
    one in place of whatever else is there (a symlink is removed, not followed)."""
    for _ in range(MAX_HOPS):
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            _remove(dir_fd, name)
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            pass
    raise OSError(errno.EAGAIN, f"{name} keeps changing", name)


def _create(dir_fd: int, name: str, make):  # noqa: ANN001, ANN202
    """``make()`` (which creates ``name`` exclusively), once whatever is at ``name`` is gone."""
    for _ in range(MAX_HOPS):
        try:
            return make()
        except FileExistsError:
            _remove(dir_fd, name)
    raise OSError(errno.EAGAIN, f"{name} keeps changing", name)


def _remove(dir_fd: int, name: str) -> None:
    import shutil  # here: resolving paths (pyrunc's init) needs none of it

    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: safe against symlinks planted inside
    else:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


def _copy_data(rfd: int, wfd: int) -> None:
    while True:
        data = os.read(rfd, _CHUNK)
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(wfd, view):]


def _finish(fd: int, name: "str | None", st: os.stat_result, owner: "tuple[int, int] | str | None") -> None:
    """Owner, mode and times of a copy: ``fd`` itself, or ``name`` in the directory ``fd``
    (not followed)."""
    uid_gid = (st.st_uid, st.st_gid) if owner == KEEP else owner
    link = name is not None and stat.S_ISLNK(st.st_mode)
    if uid_gid is not None:
        if name is None:
            os.fchown(fd, *uid_gid)
        else:
            os.chown(name, *uid_gid, dir_fd=fd, follow_symlinks=False)
    if not link:  # a symlink's mode means nothing (and lchmod does not exist on Linux)
        if name is None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        else:
            _chmod_at(fd, name, stat.S_IMODE(st.st_mode))
    times = (st.st_atime_ns, st.st_mtime_ns)
    if name is None:
        os.utime(fd, ns=times)
    else:
        os.utime(name, ns=times, dir_fd=fd, follow_symlinks=False)


def _chmod_at(dir_fd: int, name: str, mode: int) -> None:
    """chmod of a fifo or device node ``name`` in ``dir_fd``, through an O_PATH descriptor
    of it (``fchmodat`` would follow a symlink swapped in meanwhile)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return
        os.chmod(fd_path(fd), mode)
    finally:
        os.close(fd)
