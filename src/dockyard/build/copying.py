"""COPY and ADD: which paths a source names, the content checksum of what it matched, the copy
into a container root, archive extraction for ADD, and ADD's URL download.

Semantics are BuildKit's (the Dockerfile frontend, tonistiigi/fsutil's copy, the file-op
backend's unpack, the HTTP source); this is our own implementation:

- sources are cleaned as if rooted at "/", so neither "/" nor ".." leaves the source tree;
  symlinks on the way are resolved inside it; wildcards are filepath.Match per segment;
- a directory's contents (not the directory) are copied; a file goes to ``dest/<name>`` when
  dest is a directory (by a trailing "/" or because one exists there), else dest is its name;
- owners become 0:0 (``--chown`` wins; another stage's files keep theirs), modes and mtimes are
  kept (``--chmod`` replaces the permission bits), hard links stay links, symlinks stay links
  below a source while a top-level symlink is followed;
- every write lands in the container root: paths there are resolved as if it were "/", and
  every entry is created relative to a directory descriptor with O_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from dockyard.build.ignore import clean
from dockyard.errors import DockyardError
from dockyard.fsutil import in_root

TYPE_CHECKING = False  # importing typing costs start-up; the annotations are strings
if TYPE_CHECKING:
    from typing import BinaryIO, Callable

__all__ = ["CopyError", "HashMemo", "SourceTree", "checksum", "copy", "download", "expand_sources"]

MULTIPLE_SOURCES = "When using COPY with more than one source file, the destination must be a directory and end with a /"
UNNAMED = "__unnamed__"  # the frontend's name for a URL whose path has no last segment
CHUNK = 1 << 20
MAX_LINKS = 40  # symlink hops before ELOOP, as in_root and the kernel
MEMO_OTHERS = 10_000  # memo entries kept beyond those the last build touched (a memo per context)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_CHARS = frozenset("*?[")


class CopyError(DockyardError):
    """A COPY/ADD that cannot be done. Message WITHOUT a Dockerfile:LINE prefix (the builder adds it)."""


class SourceTree:
    """Where COPY reads from: the build context (root = context dir, excluded = the .dockerignore
    predicate taking a '/'-separated path relative to root), or another stage's / image's rootfs
    (excluded = None, keep_owner = True: BuildKit keeps the owners of files copied from a stage,
    while the context arrives owned by root)."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None = None, *, keep_owner: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.excluded = excluded
        self.keep_owner = keep_owner
        # A Patterns.excluded knows which excluded directories can hold an exception; with a
        # bare predicate every excluded directory has to be looked into.
        self._may_include_below = getattr(getattr(excluded, "__self__", None), "may_include_below", None)


# --------------------------------------------------------------------------- sources


def _not_found(cleaned: str) -> CopyError:
    return CopyError(f'"/{cleaned}": not found')


def _resolve(tree: SourceTree, rel: str) -> str | None:
    """The real path (relative to the root, "" for the root) of ``rel`` with every symlink
    resolved as if the root were "/" (fsutil.in_root's walk); None when a component is
    missing or a symlink on the way is excluded (it was never sent)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/".join([*done, part])
        path = os.path.join(tree.root, candidate)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            if tree.excluded is not None and tree.excluded(candidate):
                return None
            hops += 1
            if hops > MAX_LINKS:
                raise CopyError(f'"/{rel}": too many levels of symbolic links')
            target = os.readlink(path)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            return None
        done.append(part)
    return "/".join(done)


def _visible(tree: SourceTree, real: str, st: os.stat_result) -> bool:
    """Is the entry at ``real`` part of the tree? An excluded directory still is when
    something below it is re-included (the context walk sends it for that)."""
    if tree.excluded is None or not real or not tree.excluded(real):
        return True
    return stat.S_ISDIR(st.st_mode) and bool(_scan(tree, os.path.join(tree.root, real), real, first_only=True))


def _lookup(tree: SourceTree, path: str) -> tuple[str, os.stat_result]:
    """(absolute real path, lstat) of a matched source, its symlinks followed; CopyError when
    it is missing or excluded."""
    cleaned = clean("/" + path).lstrip("/")
    real = _resolve(tree, cleaned)
    if real is not None:
        abs_path = os.path.join(tree.root, real) if real else tree.root
        try:
            st = os.lstat(abs_path)
        except OSError:
            st = None
        if st is not None and _visible(tree, real, st):
            return abs_path, st
    raise _not_found(cleaned if cleaned != "." else "")


def _has_wildcard(segment: str) -> bool:
    """fsutil's containsWildcards: a backslash hides the next character."""
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "\\":
            i += 2
            continue
        if ch in _SPECIAL_CHARS:
            return True
        i += 1
    return False


def _segment_matcher(pattern: str) -> Callable[[str], object] | None:
    """A fullmatch for one segment in Go's filepath.Match syntax; None for a malformed pattern
    (BuildKit ignores Match's error, so such a pattern matches nothing)."""
    import re

    from dockyard.build.ignore import BadPattern, segment_token  # filepath.Match's tokens

    out: list[str] = []
    i = 0
    try:
        while i < len(pattern):
            token, i = segment_token(pattern, i)
            out.append(token)
    except BadPattern:
        return None
    return re.compile("(?s)" + "".join(out)).fullmatch


def _expand_wildcard(tree: SourceTree, cleaned: str) -> list[str]:
    """Matches of a source with wildcards: the part before the first wildcard segment is
    resolved (symlinks followed); the rest is matched segment by segment below it, through
    real directories only (BuildKit walks that part without following links)."""
    segments = cleaned.split("/")
    first = next(i for i, s in enumerate(segments) if _has_wildcard(s))
    base = _resolve(tree, "/".join(segments[:first]))
    if base is None:
        return []
    base_abs = os.path.join(tree.root, base) if base else tree.root
    if not os.path.isdir(base_abs) or os.path.islink(base_abs):
        return []
    matchers = [_segment_matcher(s) for s in segments[first:]]
    if any(m is None for m in matchers):
        return []
    current = [base]
    for depth, match in enumerate(matchers):
        last = depth == len(matchers) - 1
        found: list[str] = []
        for rel_dir in current:
            try:
                with os.scandir(os.path.join(tree.root, rel_dir) if rel_dir else tree.root) as it:
                    entries = sorted((e.name, e) for e in it)
            except OSError:
                continue
            for name, entry in entries:
                if not match(name):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                st = entry.stat(follow_symlinks=False)
                if not last and not stat.S_ISDIR(st.st_mode):
                    continue
                if _visible(tree, rel, st):
                    found.append(rel)
        current = found
    return current


def expand_sources(tree: SourceTree, sources: list[str]) -> list[str]:
    """The matched paths (relative to tree.root, '/'-separated, sorted per source, order of
    sources kept, duplicates dropped). Each source is cleaned and taken relative to the root:
    a leading '/' or '..' can never leave it. Wildcards ('*', '?', '[...]', Go filepath.Match per
    path segment) are expanded against the tree. A symlink in the path is resolved as if root were
    '/', so it never reaches outside root. Excluded paths are invisible (as if absent). A source
    that matches nothing raises CopyError('"/<cleaned>": not found'), a wildcard included.

    The root itself is ".". A plain source is returned as typed (cleaned), so its last name is
    the one COPY gives it; a wildcard match is returned below the real directory it was found in."""
    out: list[str] = []
    seen: set[str] = set()
    for source in sources:
        cleaned = clean("/" + source).lstrip("/")
        if any(_has_wildcard(s) for s in cleaned.split("/")):
            matches = sorted(_expand_wildcard(tree, cleaned), key=lambda p: p.split("/"))
            if not matches:
                raise _not_found(cleaned)
        else:
            _lookup(tree, cleaned)
            matches = [cleaned or "."]
        for match in matches:
            if match not in seen:
                seen.add(match)
                out.append(match)
    return out


# --------------------------------------------------------------------------- the tree walk

def _scan(tree: SourceTree, abs_dir: str, rel_dir: str, first_only: bool = False) -> list:
    """The visible entries below a directory, sorted by name, recursively, each as (name,
    absolute path, lstat, children for a directory else None). Sockets are left out (nothing
    can copy them). ``first_only`` stops at the first visible entry (a test)."""
    excluded = tree.excluded
    prune = tree._may_include_below
    nodes: list = []
    with os.scandir(abs_dir) as it:
        entries = sorted((e.name, e.path, e) for e in it)
    for name, path, entry in entries:
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            continue
        rel = f"{rel_dir}/{name}" if rel_dir else name
        is_dir = stat.S_ISDIR(mode)
        if excluded is not None and excluded(rel):
            if not is_dir or (prune is not None and not prune(rel)):
                continue
            children = _scan(tree, path, rel, first_only)
            if not children:
                continue  # an excluded directory is only there for what it carries
        else:
            children = _scan(tree, path, rel, first_only) if is_dir and not first_only else ([] if is_dir else None)
        nodes.append((name, path, st, children))
        if first_only:
            break
    return nodes


# --------------------------------------------------------------------------- checksum


class HashMemo:
    """Per-file content digests remembered across builds by stat identity: key (path, st_dev,
    st_ino, st_size, st_mtime_ns, st_ctime_ns) -> sha256 hex. Persisted as one JSON file at
    ``path``, written atomically by save(); a missing or corrupt file is an empty memo, so a
    no-op rebuild re-reads no file content. Bounded: save() keeps the entries touched since
    the memo was loaded plus the MEMO_OTHERS most recently saved others."""

    VERSION = 1

    def __init__(self, path: str) -> None:
        self.path = path
        self._old: dict[str, str] = {}
        self._touched: dict[str, str] = {}
        self._read = False   # a file was read: there is something new to save
        try:
            import json

            with open(path, "rb") as f:
                data = json.loads(f.read())
            if data.get("version") == self.VERSION and isinstance(data.get("entries"), dict):
                self._old = {k: v for k, v in data["entries"].items() if isinstance(k, str) and isinstance(v, str)}
        except (OSError, ValueError, AttributeError):
            self._old = {}

    @staticmethod
    def _key(path: str, st: os.stat_result) -> str:
        return f"{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"

    def digest(self, path: str, st: os.stat_result) -> str:
        """The sha256 hex of the file at ``path`` whose lstat is ``st``, read only when no
        entry has the same stat identity."""
        key = self._key(path, st)
        value = self._touched.get(key)
        if value is None:
            value = self._old.pop(key, None)
            if value is None:
                value = _file_sha256(path)
                self._read = True
            self._touched[key] = value
        return value

    def save(self) -> None:
        """Write the memo, unless every digest came from it (a no-op rebuild writes nothing)."""
        if not self._read:
            return
        import json

        from dockyard.atomicfile import atomic_write

        others = list(self._old.items())[-MEMO_OTHERS:] if MEMO_OTHERS else []
        entries = dict(others)
        entries.update(self._touched)  # last: the next load sees them as the most recent
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with atomic_write(self.path) as f:
            f.write(json.dumps({"version": self.VERSION, "entries": entries}).encode())


def _sha256():  # noqa: ANN202
    from dockyard.digest import sha256_hasher

    return sha256_hasher()


def _file_sha256(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        import hashlib   # OpenSSL's sha256 for file contents; not loaded by a cached build

        return hashlib.file_digest(f, "sha256").hexdigest()


_KIND = {stat.S_IFDIR: b"d", stat.S_IFREG: b"f", stat.S_IFLNK: b"l", stat.S_IFCHR: b"c", stat.S_IFBLK: b"b", stat.S_IFIFO: b"p"}


def checksum(tree: SourceTree, paths: list[str], memo: HashMemo | None = None) -> str:
    """'sha256:<hex>' over the content of the matched paths: for each path (its name included)
    and everything below it (excluded paths skipped), in sorted order: its path relative to
    the matched source, file type, permission bits (incl. setuid/setgid/sticky), symlink
    target, device numbers, file content, and the owner only when the tree keeps owners
    (keep_owner; the context's owners never reach the image). NOT times or inodes. A
    top-level source that is a symlink is followed (as COPY follows it); symlinks below are
    hashed as links."""
    parts: list[bytes] = []   # hashed once at the end: the same bytes, one update call
    emit = parts.append
    keep_owner = tree.keep_owner

    def content(path: str, st: os.stat_result) -> str:
        return memo.digest(path, st) if memo is not None else _file_sha256(path)

    def record(rel: bytes, path: str, st: os.stat_result) -> None:
        mode = st.st_mode
        kind = _KIND.get(stat.S_IFMT(mode))
        if kind is None:
            return  # a socket: COPY leaves it out too
        extra = b""
        if kind == b"f":
            extra = content(path, st).encode()
        elif kind == b"l":
            extra = os.fsencode(os.readlink(path))
        elif kind in (b"c", b"b"):
            extra = b"%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        owner = b"%d:%d" % (st.st_uid, st.st_gid) if keep_owner else b""
        emit(b"%s\0%s\0%o\0%s\0%s\n" % (rel, kind, stat.S_IMODE(mode), owner, extra))

    def walk(nodes: list, prefix: bytes) -> None:
        for name, path, st, children in nodes:
            rel = prefix + os.fsencode(name)
            record(rel, path, st)
            if children:
                walk(children, rel + b"/")

    for source in paths:
        abs_path, st = _lookup(tree, source)
        emit(b"source\0%s\n" % os.fsencode(source))
        try:
            record(b"", abs_path, st)
            if stat.S_ISDIR(st.st_mode):
                walk(_scan(tree, abs_path, _rel_in(tree.root, abs_path)), b"")
        except OSError as e:
            raise CopyError(f"failed to calculate checksum of {source!r}: {e.strerror or e}") from None
    h = _sha256()
    h.update(b"".join(parts))
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- the destination


def _is_dir_syntax(dest: str) -> bool:
    """Does the destination, as typed, name a directory (a trailing "/", or "." / ".." forms)?"""
    return dest == "" or dest.endswith("/") or posixpath.basename(dest) in (".", "..")


def _rel_in(root: str, real: str) -> str:
    """``real`` (from in_root) relative to ``root``, "" for the root itself."""
    return real[len(root) :].strip("/")


def _open_beneath(root_fd: int, rel: str) -> int:
    """A new descriptor of directory ``rel`` below ``root_fd``, refusing any symlink on the way."""
    fd = os.dup(root_fd)
    try:
        for part in (p for p in rel.split("/") if p):
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _makedirs(root_fd: int, root: str, path: str, owner: tuple[int, int] | None) -> tuple[int, str]:
    """Directory ``path`` of the container root, symlinks resolved inside it, missing parts
    created 0755 (owned by ``owner`` when given, as BuildKit's MkdirAll does). Returns a new
    descriptor and its real path."""
    real = in_root(root, path)
    rel = _rel_in(root, real)
    fd = os.dup(root_fd)
    done = ""
    try:
        for part in (p for p in rel.split("/") if p):
            done = f"{done}/{part}"
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(child, 0o755)  # whatever the umask
                if owner is not None:
                    _chown(child, *owner)
            except (NotADirectoryError, OSError) as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                raise CopyError(f"cannot copy to non-directory: {done}") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, real


def _remove_at(dir_fd: int, name: str) -> None:
    import shutil

    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _chown(target: int | str, uid: int, gid: int, dir_fd: int | None = None) -> None:
    """fchown, or lchown of ``target`` in ``dir_fd``. Without root we cannot give files away:
    they stay ours (a rootless build), as the layer extractor does."""
    try:
        if dir_fd is None:
            os.fchown(target, uid, gid)  # type: ignore[arg-type]
        else:
            os.chown(target, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    except PermissionError:
        if os.geteuid() == 0:
            raise


# --------------------------------------------------------------------------- copy


class _Copier:
    """One COPY into one container root: the options and what has been copied so far."""

    def __init__(self, tree: SourceTree, root: str, root_fd: int, chown: tuple[int, int] | None, chmod: int | None) -> None:
        self.tree = tree
        self.root = root
        self.root_fd = root_fd
        self.chown = chown
        self.chmod = None if chmod is None else chmod & 0o7777
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) of a source -> real path of its copy
        self.range_copy = True  # copy_file_range until the kernel says it cannot
        self.sendfile = True
        self.link_from: LinkSource | None = None

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.chown is not None:
            return self.chown
        return (st.st_uid, st.st_gid) if self.tree.keep_owner else (0, 0)

    def mode(self, st: os.stat_result) -> int:
        return self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode)

    def where(self, dir_real: str, name: str) -> str:
        return "/" + _rel_in(self.root, os.path.join(dir_real, name))

    # -- entries

    def copy_children(self, nodes: list, dir_fd: int, dir_real: str) -> None:
        for node in nodes:
            name, path, st, children = node
            if children is not None:
                self.copy_dir(name, st, children, dir_fd, dir_real)
            else:
                self.copy_entry(name, path, st, dir_fd, dir_real)

    def copy_dir(self, name: str, st: os.stat_result, children: list, dir_fd: int, dir_real: str) -> None:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            real = os.path.join(dir_real, name)
        except FileNotFoundError:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            real = os.path.join(dir_real, name)
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            fd, real = self.follow_dir(name, dir_real)
        try:
            self.copy_children(children, fd, real)
            # An existing directory gets the source's metadata too (fsutil overwrites it).
            _chown(fd, *self.owner(st))
            os.fchmod(fd, self.mode(st))
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)

    def follow_dir(self, name: str, dir_real: str) -> tuple[int, str]:
        """A symlink of the image where the source has a directory (/lib -> usr/lib): copy
        into what it points to, resolved inside the root, when that is a directory."""
        where = self.where(dir_real, name)
        real = in_root(self.root, where)
        try:
            return _open_beneath(self.root_fd, _rel_in(self.root, real)), real
        except OSError:
            raise CopyError(f"cannot copy to non-directory: {where}") from None

    def copy_entry(self, name: str, path: str, st: os.stat_result, dir_fd: int, dir_real: str) -> None:
        mode = st.st_mode
        if stat.S_ISREG(mode) and self.link_from is not None:
            # Hard links from the source's layers (shared source inodes stay shared); what
            # cannot be linked is copied, never linked through the mount (see LinkSource).
            if not self.link_from.link(self, name, path, dir_fd, dir_real):
                self.copy_file(name, path, st, dir_fd, dir_real)
            return
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    self.replace(dir_fd, dir_real, name, lambda: os.link(first, name, dst_dir_fd=dir_fd, follow_symlinks=False))
                    return
                self.links[key] = os.path.join(dir_real, name)
            self.copy_file(name, path, st, dir_fd, dir_real)
        elif stat.S_ISLNK(mode):
            target = os.readlink(path)
            self.replace(dir_fd, dir_real, name, lambda: os.symlink(target, name, dir_fd=dir_fd))
            _chown(name, *self.owner(st), dir_fd=dir_fd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            self.replace(dir_fd, dir_real, name, lambda: os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dir_fd))
            _chown(name, *self.owner(st), dir_fd=dir_fd)
            os.chmod(name, self.mode(st), dir_fd=dir_fd)  # the node just made here, not a link
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def replace(self, dir_fd: int, dir_real: str, name: str, create: Callable[[], object]) -> None:
        """Create a non-directory at ``name``: what is there already is removed (never followed);
        a directory there is an error, as in BuildKit."""
        try:
            create()
            return
        except FileExistsError:
            pass
        if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise CopyError(f"cannot replace directory {self.where(dir_real, name)} with a file")
        os.unlink(name, dir_fd=dir_fd)
        create()

    def copy_file(self, name: str, path: str, st: os.stat_result, dir_fd: int, dir_real: str) -> None:
        src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fds: list[int] = []
            self.replace(dir_fd, dir_real, name, lambda: fds.append(os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)))
            dst = fds[0]
            try:
                if st.st_size:
                    self.copy_data(src, dst, st.st_size)
                _chown(dst, *self.owner(st))
                os.fchmod(dst, self.mode(st))  # after chown, which clears setuid
                _copy_xattrs(src, dst)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def copy_data(self, src: int, dst: int, size: int) -> None:
        """``size`` bytes (the size stat saw), in the kernel where it can: copy_file_range
        (a reflink where the filesystem has them), then sendfile. Both advance the file
        offsets, so a fallback continues where the previous method stopped."""
        if self.range_copy:
            try:
                while size > 0 and (n := os.copy_file_range(src, dst, size)):
                    size -= n
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.EBADF):
                    raise
                self.range_copy = False
        if self.sendfile:
            try:
                while size > 0 and (n := os.sendfile(dst, src, None, size)):
                    size -= n
                return
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self.sendfile = False
        while size > 0 and (data := os.read(src, min(CHUNK, size))):
            size -= len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]


class LinkSource:
    """COPY --from a stage or an image by hard links instead of copies (no new inode, no data
    written: on a busy ext4 that is most of a big COPY's time).

    The source tree is an overlay view of the source's layers and the destination an overlay
    snapshot; a link cannot cross those mounts, so it is made underneath them: from the
    file's real path in the topmost source layer that has it, into the snapshot's upper dir
    (its parent made there first by a copy-up through the mount). Layers are never changed in
    place (containers and later steps copy up), so sharing inodes between two of them is safe,
    and the new layer packs the same as a copy would: same owner, mode, times and xattrs,
    because it is the same inode. Only for a plain COPY --from (no --chown/--chmod: those would
    change the shared inode) and only where nothing is there yet (a replaced file is copied)."""

    def __init__(self, view_root: str, lowerdirs: list[str], upper: str) -> None:
        self.view_root = os.path.abspath(view_root)
        self.lowerdirs = lowerdirs      # the source's layer dirs, top first
        self.upper = upper              # the destination snapshot's upper dir
        self.linked = 0

    def real(self, path: str) -> str | None:
        """The layer file the view shows at ``path``: the topmost layer's (a view of a
        visible path never has a whiteout or an opaque dir above that one)."""
        rel = _rel_in(self.view_root, os.path.abspath(path))
        for layer in self.lowerdirs:
            candidate = os.path.join(layer, rel)
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                continue
            except OSError:
                return None
            return candidate if stat.S_ISREG(st.st_mode) else None
        return None

    def link(self, copier: "_Copier", name: str, path: str, dir_fd: int, dir_real: str) -> bool:
        try:
            os.lstat(name, dir_fd=dir_fd)
            return False   # something is there: the copy's replace rules apply
        except FileNotFoundError:
            pass
        source = self.real(path)
        if source is None:
            return False
        upper_dir = os.path.join(self.upper, _rel_in(copier.root, dir_real))
        if not os.path.isdir(upper_dir):
            st = os.fstat(dir_fd)
            os.utime(dir_fd, ns=(st.st_atime_ns, st.st_mtime_ns))   # copies the directory up
            if not os.path.isdir(upper_dir):
                return False
        try:
            os.link(source, os.path.join(upper_dir, name), follow_symlinks=False)
        except OSError:
            return False
        self.linked += 1
        return True


def _copy_xattrs(src: int, dst: int) -> None:
    """Extended attributes (file capabilities, user.*) go along; what the target filesystem
    refuses is skipped, as BuildKit's copy does."""
    try:
        names = os.listxattr(src)
    except OSError:
        return
    for key in names:
        try:
            os.setxattr(dst, key, os.getxattr(src, key))
        except OSError:
            pass


def copy(
    tree: SourceTree,
    paths: list[str],
    rootfs: str,
    dest: str,
    *,
    workdir: str = "/",
    chown: tuple[int, int] | None = None,
    chmod: int | None = None,
    unpack_archives: bool = False,
    dest_is_dir: bool | None = None,
    link_from: LinkSource | None = None,
) -> None:
    """Copy the matched paths (from expand_sources) into the mounted container root ``rootfs``
    at ``dest`` (variable-expanded, as typed: relative to ``workdir`` unless absolute).

    ``dest_is_dir`` overrides what the spelling of ``dest`` says (a trailing "/", "." or "..").
    A source directory's contents are merged into dest; a file goes to dest/<name> when dest is
    a directory (by spelling or because one is there), else becomes dest. Missing parents are
    made 0755 (owned by ``chown`` when given). With ``unpack_archives`` (ADD), a source that is
    a tar archive (plain, gzip, bzip2, xz, zstd) is extracted into dest instead."""
    root = os.path.abspath(rootfs)
    full = posixpath.join("/", workdir or "/", dest)
    dir_syntax = _is_dir_syntax(dest) if dest_is_dir is None else dest_is_dir
    if len(paths) > 1 and not dir_syntax:
        raise CopyError(MULTIPLE_SOURCES)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    copier = _Copier(tree, root, root_fd, chown, chmod)
    if link_from is not None and chown is None and chmod is None and not unpack_archives:
        copier.link_from = link_from
    try:
        for source in paths:
            abs_path, st = _lookup(tree, source)
            try:
                _copy_one(copier, source, abs_path, st, full, dir_syntax, unpack_archives)
            except OSError as e:
                name = e.filename
                if isinstance(name, str) and name.startswith(root):
                    name = "/" + _rel_in(root, name)  # the path in the image, not on this host
                where = f": {name}" if name else ""
                raise CopyError(f"failed to copy files: {e.strerror or e}{where}") from None
    finally:
        os.close(root_fd)


def _copy_one(copier: _Copier, source: str, abs_path: str, st: os.stat_result, full: str, dir_syntax: bool, unpack: bool) -> None:
    tree, root, root_fd = copier.tree, copier.root, copier.root_fd
    mode = st.st_mode
    if unpack and stat.S_ISREG(mode) and _is_archive(abs_path):
        fd, real = _makedirs(root_fd, root, full, copier.chown)
        os.close(fd)
        _extract(abs_path, root, real, copier.chown)
        return
    if stat.S_ISDIR(mode):
        real_rel = _rel_in(tree.root, abs_path)
        nodes = _scan(tree, abs_path, real_rel)
        fd, real = _makedirs(root_fd, root, full, copier.chown)
        try:
            copier.copy_children(nodes, fd, real)
        finally:
            os.close(fd)
        return
    if stat.S_ISSOCK(mode):
        return
    name = posixpath.basename(source)
    if dir_syntax:
        fd, real = _makedirs(root_fd, root, full, copier.chown)
    else:
        target = in_root(root, full)
        target_rel = _rel_in(root, target)
        if not target_rel or os.path.isdir(target):  # resolved: no symlink left to follow
            fd, real = _makedirs(root_fd, root, target_rel, copier.chown)
        else:
            parent, name = posixpath.split(target_rel)
            fd, real = _makedirs(root_fd, root, parent, copier.chown)
    try:
        copier.copy_entry(name, abs_path, st, fd, real)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- ADD archives


def _open_decompressed(f: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of ``f`` by its magic number (BuildKit's DecompressStream)."""
    magic = f.read(6)
    f.seek(0)
    if magic.startswith(b"\x1f\x8b\x08"):
        import gzip

        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(f)  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(f)  # type: ignore[return-value]
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)  # type: ignore[return-value]
    return f


def _open_tar(f: BinaryIO):
    import tarfile

    return tarfile.open(fileobj=_open_decompressed(f), mode="r|", bufsize=CHUNK)


def _is_archive(path: str) -> bool:
    """A tar (plain or compressed) whose first header reads: BuildKit's isArchivePath."""
    try:
        with open(path, "rb") as f, _open_tar(f) as tar:
            return tar.next() is not None
    except Exception:  # anything unreadable as a tar is a plain file to copy
        return False


def _clean_tar_name(name: str) -> str:
    """An entry name relative to the extraction root ("" for the root); one that climbs out
    is an error."""
    cleaned = posixpath.normpath(name.lstrip("/")) if name.lstrip("/") else "."
    if cleaned == ".":
        return ""
    if cleaned == ".." or cleaned.startswith("../"):
        raise CopyError(f"archive path {name!r} is outside extraction root")
    return cleaned


def _resolve_in_archive(root: str, name: str, follow_leaf: bool) -> str:
    """``name`` below the extraction root with symlinks followed as BuildKit's unpack does:
    an absolute target is taken from the extraction root, a relative one must stay inside."""
    for _ in range(255):
        parts = [p for p in name.split("/") if p]
        resolved: list[str] = []
        followed = False
        for i, part in enumerate(parts):
            if i == len(parts) - 1 and not follow_leaf:
                resolved.append(part)
                continue
            candidate = "/".join([*resolved, part])
            try:
                st = os.lstat(os.path.join(root, candidate))
            except FileNotFoundError:
                return "/".join(resolved + parts[i:])
            if not stat.S_ISLNK(st.st_mode):
                resolved.append(part)
                continue
            target = os.readlink(os.path.join(root, candidate))
            if target.startswith("/"):
                name = _clean_tar_name(target)
            else:
                name = posixpath.normpath(posixpath.join(posixpath.dirname(candidate), target))
                if name == ".":
                    name = ""
                if name == ".." or name.startswith("../"):
                    raise CopyError(f"archive symlink {candidate!r} points outside extraction root")
            if parts[i + 1 :]:
                name = posixpath.join(name, *parts[i + 1 :])
            followed = True
            break
        if not followed:
            return "/".join(resolved)
    raise CopyError(f"too many symlinks resolving archive path {name!r}")


def _extract(archive: str, root: str, dest_real: str, chown: tuple[int, int] | None) -> None:
    """Unpack ``archive`` into ``dest_real`` (a directory of the container root ``root``).

    Every entry is resolved below the extraction directory and created relative to a
    descriptor of its parent opened with O_NOFOLLOW all the way down, so neither ".." nor a
    symlink (from the image or planted by an earlier entry) can send a write elsewhere.
    Owners come from the archive (``chown`` overrides them, as in BuildKit), modes and mtimes
    too; directory times are set last."""
    import tarfile

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ex_fd = _open_beneath(root_fd, _rel_in(root, dest_real))
    finally:
        os.close(root_fd)
    dirs: list[tuple[str, int]] = []
    try:
        with open(archive, "rb") as f, _open_tar(f) as tar:
            while (m := tar.next()) is not None:
                tar.members.clear()  # stream: keep no member list
                name = _clean_tar_name(m.name)
                if not name:
                    continue
                op = _resolve_in_archive(dest_real, name, follow_leaf=m.isdir())
                if not op:
                    continue
                _extract_entry(tar, m, ex_fd, dest_real, op, chown, dirs)
            for rel, mtime_ns in reversed(dirs):
                try:
                    fd = _open_beneath(ex_fd, rel)
                except OSError:
                    continue  # replaced by a later entry
                try:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                finally:
                    os.close(fd)
    except (CopyError, OSError):
        raise
    except Exception as e:  # tarfile's and the decompressors' errors: a corrupt archive
        raise CopyError(f"failed to extract {os.path.basename(archive)}: {e}") from None
    finally:
        os.close(ex_fd)


def _tar_ns(mtime: float) -> int:
    ns = int(mtime * 1_000_000_000)
    return ns if 0 <= ns < 2**63 else 0  # out of range -> the epoch, as BuildKit


def _extract_entry(tar, m, ex_fd: int, dest_real: str, op: str, chown: tuple[int, int] | None, dirs: list) -> None:
    parent, base = posixpath.split(op)
    pfd = os.dup(ex_fd)
    try:
        for part in (p for p in parent.split("/") if p):  # implied parents: 0755, root's
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=pfd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=pfd)
                child = os.open(part, _DIR_FLAGS, dir_fd=pfd)
                _chown(child, 0, 0)
                os.fchmod(child, 0o755)
            os.close(pfd)
            pfd = child
        uid, gid = chown if chown is not None else (m.uid, m.gid)
        mode = m.mode & 0o7777
        mtime = _tar_ns(m.mtime)
        try:
            existing = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove_at(pfd, base)
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            try:
                _chown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            dirs.append((op, mtime))
        elif m.isreg():
            fd = os.open(base, _NEW_FILE, 0o600, dir_fd=pfd)
            try:
                body = tar.extractfile(m)
                while chunk := body.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                _chown(fd, uid, gid)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)  # stored as-is, resolved inside on use
            _chown(base, uid, gid, dir_fd=pfd)
            os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            target = _clean_tar_name(m.linkname)
            if not target:
                raise CopyError(f"archive hardlink {m.name!r} targets extraction root")
            target = _resolve_in_archive(dest_real, target, follow_leaf=False)
            tdir, tname = posixpath.split(target)
            tfd = _open_beneath(ex_fd, tdir)
            try:
                os.link(tname, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            _chown(base, uid, gid, dir_fd=pfd)
            if not stat.S_ISLNK(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                os.chmod(base, mode, dir_fd=pfd)
                os.utime(base, ns=(mtime, mtime), dir_fd=pfd)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            _chown(base, uid, gid, dir_fd=pfd)
            os.chmod(base, mode, dir_fd=pfd)
            os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)
        else:
            raise CopyError(f"unsupported tar entry {m.name!r} type {m.type!r}")
    finally:
        os.close(pfd)


# --------------------------------------------------------------------------- ADD <url>


def _url_file_name(url: str) -> str:
    """The name the Dockerfile frontend gives a download: Go's path.Base of the URL's
    (unescaped) path, or "__unnamed__" when that is "." or "/"."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(url).path)
    stripped = path.rstrip("/")
    if not stripped:
        return UNNAMED  # "" -> "." and "/" -> "/" in Go
    base = stripped.rsplit("/", 1)[-1]
    return base if base != "." else UNNAMED


async def download(url: str, dest_file: str, checksum: str | None = None) -> tuple[str, float | None]:
    """ADD <url>: fetch ``url`` into ``dest_file`` (streamed, hashed on the way; mode 0600 and
    mtime = Last-Modified or the epoch, as BuildKit's HTTP source leaves it). Any status
    outside 2xx is CopyError(f'failed to load {url}: HTTP {status}'); with ``checksum``
    ('sha256:<hex>') a mismatch is CopyError(f'digest mismatch {actual}: {checksum}') and no
    file is left. Returns (the file name Docker gives it, Last-Modified as epoch seconds or None)."""
    import aiohttp  # here: only ADD <url> pays for it

    if checksum is not None:
        algorithm, _, expected = checksum.partition(":")
        if algorithm != "sha256" or len(expected) != 64:
            raise CopyError(f"unsupported checksum {checksum!r}: only sha256:<hex> is supported")
    h = _sha256()
    tmp = f"{dest_file}.part"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, headers={"User-Agent": "dockyard"}) as resp:
                if not 200 <= resp.status < 300:
                    raise CopyError(f"failed to load {url}: HTTP {resp.status}")
                last_modified = _http_time(resp.headers.get("Last-Modified"))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        h.update(chunk)
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
                    os.fchmod(fd, 0o600)
                    mtime = last_modified if last_modified is not None else 0
                    os.utime(fd, (mtime, mtime))
                finally:
                    os.close(fd)
    except aiohttp.ClientError as e:
        _unlink_quietly(tmp)
        raise CopyError(f"failed to load {url}: {e}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    actual = "sha256:" + h.hexdigest()
    if checksum is not None and actual != checksum:
        _unlink_quietly(tmp)
        raise CopyError(f"digest mismatch {actual}: {checksum}")
    os.replace(tmp, dest_file)
    return _url_file_name(url), last_modified


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
