"""Tar streams for layers: decompression, safe extraction, packing.

``extract`` unpacks an uncompressed tar stream into a directory without ever
writing outside it: every path is resolved component by component from a file
descriptor of the root with ``O_NOFOLLOW``, so neither ``..`` nor a symlink
planted by an earlier entry can redirect a write. Layer whiteouts become
overlayfs whiteouts (``.wh.name`` -> char device 0/0, ``.wh..wh..opq`` ->
``trusted.overlay.opaque=y``), and ``pack`` turns them back.

tarfile parses the headers; we do every filesystem operation ourselves.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from dockyard import digest as digests
from dockyard.errors import DockyardError, InvalidArchiveError

CHUNK = 1 << 20  # read/write granularity: big enough for disk speed, bounded memory
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
PAX_XATTR_PREFIX = "SCHILY.xattr."
# pax and GNU long-name headers are read into memory whole; Go's archive/tar caps them at 1 MiB too.
MAX_SPECIAL_HEADER = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Errors that say something about this machine (space, privileges) rather than the archive.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EPERM, errno.EACCES,
}


# --------------------------------------------------------------------------- hashing


class HashingReader(io.RawIOBase):
    """Passes reads through and hashes exactly the bytes that passed.

    A tar's diff ID is the digest of every byte of the stream, so the hash sits
    under tarfile's own buffering and sees what tarfile read ahead as well.
    """

    def __init__(self, stream: BinaryIO, verifier: digests.Verifier | None = None) -> None:
        self._stream = stream
        self.verifier = verifier or digests.Verifier()

    @property
    def digest(self) -> str:
        return self.verifier.digest

    @property
    def count(self) -> int:
        return self.verifier.count

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = _readinto(self._stream, view)
        if n:
            self.verifier.update(view[:n])
        return n


class _RawReader(io.RawIOBase):
    """readinto() over any object with read(): what BufferedReader and our threads need."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return _readinto(self._stream, memoryview(b).cast("B"))


def _readinto(stream, view: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(view) or 0
    data = stream.read(len(view)) or b""
    view[: len(data)] = data
    return len(data)


class _Prefetcher(io.RawIOBase):
    """Reads ahead in a helper thread. Decompression and hashing release the GIL, so they
    run while the caller's thread writes files: extraction goes at the speed of the
    slowest stage instead of the sum of all of them. Memory: ``depth`` chunks."""

    def __init__(self, source: io.RawIOBase, depth: int = 4) -> None:
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._produce, name="dockyard-unpack-read", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                buf = bytearray(CHUNK)
                n = self._source.readinto(buf)
                if not n:
                    break
                del buf[n:]
                self._put(buf)
            self._put(None)
        except BaseException as e:  # handed to the reading thread, which raises it
            self._put(e)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readinto(self, b) -> int:
        if not self._current:
            if self._eof:
                return 0
            item = self._queue.get()
            if item is None or isinstance(item, BaseException):
                self._eof = True
                if item is not None:
                    raise item
                return 0
            self._current = memoryview(item)
        n = min(len(b), len(self._current))
        memoryview(b).cast("B")[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        super().close()


class HashingWriter:
    """Writes through to ``out`` and hashes what was written."""

    def __init__(self, out: BinaryIO, algorithm: str | None = "sha256") -> None:
        self._out = out
        self._hash = digests.new_hasher(algorithm) if algorithm else None   # None: ``out`` hashes already
        self._algorithm = algorithm
        self.count = 0

    def write(self, data) -> int:
        if self._hash is not None:
            self._hash.update(data)
        view = memoryview(data).cast("B")
        self.count += len(view)
        while view:
            n = self._out.write(view)
            if n is None or n >= len(view):  # buffered writers write everything
                break
            view = view[n:]
        return len(data)

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}" if self._hash is not None else ""


class _Batched:
    """Small writes (tar headers, small files) gathered into one write per ``CHUNK``: a layer
    of many small files is otherwise a write call per header."""

    def __init__(self, out: HashingWriter) -> None:
        self._out = out
        self._buf = bytearray()

    def write(self, data) -> None:
        if len(data) >= CHUNK:
            self.flush()
            self._out.write(data)
            return
        self._buf += data
        if len(self._buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._buf = bytearray()


# --------------------------------------------------------------------------- decompression


class _Source(io.RawIOBase):
    """The compressed input, with a peek for the magic bytes (the stream itself need not seek)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._prefix = b""

    def readable(self) -> bool:
        return True

    def peek_exact(self, n: int) -> bytes:
        while len(self._prefix) < n:
            data = self._stream.read(n - len(self._prefix))
            if not data:
                break
            self._prefix += data
        return self._prefix[:n]

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n < 0 or n >= len(self._prefix):
                data, self._prefix = self._prefix, b""
            else:
                data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data  # a short read is fine for a raw stream
        return self._stream.read(n) or b""

    def readinto(self, b) -> int:
        data = self.read(len(b))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)


class _GzipReader(io.RawIOBase):
    """gzip decompression with our own loop: multi-member streams, bounded output per call,
    and a clear error when the stream stops inside a member."""

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._decompressor = zlib.decompressobj(31)
        self._pending = b""
        self._in_member = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        out = self._decompress(len(b))
        memoryview(b).cast("B")[: len(out)] = out
        return len(out)

    def _decompress(self, limit: int) -> bytes:
        while True:
            if not self._pending:
                self._pending = self._source.read(CHUNK)
                if not self._pending:
                    if self._in_member:
                        raise InvalidArchiveError("gzip stream is truncated")
                    return b""
            if not self._in_member and not self._start_member():
                continue
            try:
                out = self._decompressor.decompress(self._pending, limit)
            except zlib.error as e:
                raise InvalidArchiveError(f"gzip stream is corrupt: {e}") from None
            if self._decompressor.eof:
                self._pending = self._decompressor.unused_data
                self._in_member = False
            else:
                self._pending = self._decompressor.unconsumed_tail
            if out:
                return out

    def _start_member(self) -> bool:
        # Zero padding between or after members is allowed, as gzip(1) allows it.
        stripped = self._pending.lstrip(b"\0")
        self._pending = stripped
        if not stripped:
            return False
        self._decompressor = zlib.decompressobj(31)
        self._in_member = True
        return True


class _ZstdFrames:
    """Follows zstd frame and block headers as compressed bytes pass, only to tell a complete
    stream from a truncated one: zstandard's stream reader stops silently mid-frame."""

    def __init__(self) -> None:
        self._need = 4  # bytes wanted for the next header
        self._header = bytearray()
        self._skip = 0  # bytes of block content (or checksum) still to pass
        self._state = "magic"
        self._checksum = False

    def complete(self) -> bool:
        return self._state == "magic" and not self._header and not self._skip

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            n = min(self._need - len(self._header), len(view))
            self._header += view[:n]
            view = view[n:]
            if len(self._header) == self._need:
                self._advance(bytes(self._header))

    def _expect(self, state: str, need: int, skip: int = 0) -> None:
        self._state, self._need, self._skip = state, need, skip
        self._header.clear()

    def _advance(self, header: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(header, "little")
            if header == ZSTD_MAGIC:
                self._expect("descriptor", 1)
            elif magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                self._expect("skippable", 4)
            else:
                raise InvalidArchiveError("zstd stream is corrupt: unknown frame magic")
        elif self._state == "skippable":
            self._expect("magic", 4, skip=int.from_bytes(header, "little"))
        elif self._state == "descriptor":
            fhd = header[0]
            fcs_flag, single_segment = fhd >> 6, (fhd >> 5) & 1
            self._checksum = bool(fhd & 0x04)
            fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
            did_size = (0, 1, 2, 4)[fhd & 0x03]
            rest = (0 if single_segment else 1) + did_size + fcs_size
            if rest:
                self._expect("frame-header", rest)
            else:
                self._expect("block", 3)
        elif self._state == "frame-header":
            self._expect("block", 3)
        elif self._state == "block":
            value = int.from_bytes(header, "little")
            last, block_type, size = value & 1, (value >> 1) & 3, value >> 3
            if block_type == 3:
                raise InvalidArchiveError("zstd stream is corrupt: reserved block type")
            content = 1 if block_type == 1 else size
            if not last:
                self._expect("block", 3, skip=content)
            else:
                self._expect("magic", 4, skip=content + (4 if self._checksum else 0))


class _Tee:
    """A read() source that shows every chunk to a callback on the way."""

    def __init__(self, source: _Source, callback: Callable[[bytes], None]) -> None:
        self._source = source
        self._callback = callback

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._callback(data)
        return data


class _ZstdReader(io.RawIOBase):
    def __init__(self, source: _Source) -> None:
        import zstandard  # lazily: only zstd layers pay for the import

        self._frames = _ZstdFrames()
        self._error = zstandard.ZstdError
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            _Tee(source, self._frames.feed), read_size=CHUNK, read_across_frames=True, closefd=False
        )

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._reader.readinto(b)
        except self._error as e:
            raise InvalidArchiveError(f"zstd stream is corrupt: {e}") from None
        if n == 0 and not self._frames.complete():
            raise InvalidArchiveError("zstd stream is truncated")
        return n


def detect_compression(magic: bytes) -> str:
    """"gzip", "zstd" or "" (plain) from the first bytes of a stream."""
    if magic.startswith(GZIP_MAGIC):
        return "gzip"
    if magic.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def open_decompressed(stream: BinaryIO, compression: str | None) -> BinaryIO:
    """A buffered reader of the uncompressed bytes of ``stream``.

    ``compression`` is "gzip", "zstd", "" (none) or None to detect it from the magic bytes.
    """
    source = _Source(stream)
    if compression is None:
        compression = detect_compression(source.peek_exact(4))
    raw: io.RawIOBase
    if compression == "gzip":
        raw = _GzipReader(source)
    elif compression == "zstd":
        raw = _ZstdReader(source)
    elif compression == "":
        raw = source
    else:
        raise InvalidArchiveError(f"unsupported layer compression {compression!r}")
    return io.BufferedReader(raw, buffer_size=CHUNK)


# --------------------------------------------------------------------------- extraction


@dataclass
class ExtractResult:
    diff_id: str  # digest of the whole uncompressed tar stream
    size: int  # sum of the sizes of the regular files written
    warnings: list[str] = field(default_factory=list)  # xattrs the filesystem refused, skipped entries


class _TarInfo(tarfile.TarInfo):
    """Refuses oversized pax / long-name headers before tarfile reads them into memory, and
    records why tarfile stopped (it reports a corrupt header mid-stream as a quiet end)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super().frombuf(buf, encoding, errors)
        special = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
        if obj.type in special and obj.size > MAX_SPECIAL_HEADER:
            raise InvalidArchiveError(f"tar extended header of {obj.size} bytes is over the {MAX_SPECIAL_HEADER} byte limit")
        return obj

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as e:
            tar.stop_reason = e
            raise


class _TarReader(tarfile.TarFile):
    tarinfo = _TarInfo
    stop_reason: Exception | None = None


class _MissingPath(InvalidArchiveError):
    """A path an entry refers to (a hardlink target's directory) is not in the layer."""


@dataclass
class _DirMeta:
    mode: int
    mtime_ns: int


def _clean_name(raw: str, entry: str) -> str:
    """The path of an entry relative to the root ("" for the root itself).

    A leading "/" is dropped and ".." resolved lexically, as Docker does; a path that
    still climbs above the root is refused.
    """
    if raw.startswith("/"):
        path = posixpath.normpath("/" + raw).lstrip("/")
    else:
        path = posixpath.normpath(raw) if raw else "."
    if path == ".":
        return ""
    if path == ".." or path.startswith("../"):
        raise InvalidArchiveError(f"tar entry {entry!r} climbs out of the layer root")
    return path


def _is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _ns(seconds: float | int) -> int:
    value = seconds * 1_000_000_000 if isinstance(seconds, int) else int(seconds * 1e9)
    return max(-(2**63), min(value, 2**63 - 1))


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Extractor:
    """Creates entries under ``root`` through directory file descriptors, never through paths
    that the archive itself could have turned into symlinks."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.size = 0
        self.warnings: list[str] = []
        self._is_root = os.geteuid() == 0
        self._dirs: dict[str, _DirMeta] = {}
        self._cached_parent: tuple[tuple[str, ...], int] | None = None
        self._entry = ""

    def close(self) -> None:
        self._forget_parent()
        os.close(self.root_fd)

    # -- resolving paths

    def _open_dir(self, parts: list[str] | tuple[str, ...], create: bool) -> int:
        """A new fd of the directory ``parts`` below the root, refusing symlinks on the way."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                fd = self._step(fd, part, parts[: i + 1], create)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, part: str, so_far, create: bool) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            child = os.open(part, flags, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise _MissingPath(f"tar entry {self._entry!r}: {'/'.join(so_far)!r} does not exist") from None
            os.mkdir(part, 0o755, dir_fd=fd)  # implicit parents get 0755, as in Docker
            child = os.open(part, flags, dir_fd=fd)
        except OSError as e:
            # O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR (or ELOOP on some kernels).
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise InvalidArchiveError(
                f"tar entry {self._entry!r}: parent {'/'.join(so_far)!r} is {what}; refusing to go through it"
            ) from None
        os.close(fd)
        return child

    def _parent(self, parts: list[str]) -> int:
        """A borrowed fd of the parent directory, cached: consecutive entries share a parent."""
        key = tuple(parts)
        if self._cached_parent and self._cached_parent[0] == key:
            return self._cached_parent[1]
        self._forget_parent()
        fd = self._open_dir(key, create=True)
        self._cached_parent = (key, fd)
        return fd

    def _forget_parent(self) -> None:
        if self._cached_parent:
            os.close(self._cached_parent[1])
            self._cached_parent = None

    def _remove(self, pfd: int, name: str, path: str, keep_dir: bool) -> bool:
        """Remove what exists at ``name`` (a later entry wins). Returns True if a directory
        was kept. Symlinks are removed themselves, never followed."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            cached = self._cached_parent
            if cached and _is_under("/".join(cached[0]), path):
                self._forget_parent()  # the cached fd would point into the removed tree
            shutil.rmtree(name, dir_fd=pfd)
            self._forget_dirs_under(path)
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    def _forget_dirs_under(self, path: str) -> None:
        for key in [k for k in self._dirs if _is_under(k, path)]:
            del self._dirs[key]

    # -- entries

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self._entry = m.name
        path = _clean_name(m.name, m.name)
        self._check_header(m)
        parts = path.split("/") if path else []
        if not parts:
            return self._root_entry(m)
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(m, parts)
        pfd = self._parent(parts[:-1])
        if m.islnk():  # resolve the target before anything at the new name is removed
            return self._hardlink(m, pfd, parts, path)
        kept_dir = self._remove(pfd, base, path, keep_dir=m.isdir())
        if m.isreg():
            self._regular(tar, m, pfd, base)
        elif m.isdir():
            self._directory(m, pfd, base, path, exists=kept_dir)
        elif m.issym():
            self._symlink(m, pfd, base)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            self._finish_node(m, pfd, base)
        elif m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
            self._finish_node(m, pfd, base)

    def _check_header(self, m: tarfile.TarInfo) -> None:
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.ischr() or m.isblk() or m.isfifo()):
            raise InvalidArchiveError(f"tar entry {m.name!r} has unsupported type {m.type!r}")
        if m.size < 0 or m.uid < 0 or m.gid < 0 or m.devmajor < 0 or m.devminor < 0:
            raise InvalidArchiveError(f"tar entry {m.name!r} has a negative size, owner or device number")

    def _root_entry(self, m: tarfile.TarInfo) -> None:
        # "./" carries the mode and times of the layer root itself.
        if not m.isdir():
            raise InvalidArchiveError(f"tar entry {m.name!r} names the layer root but is not a directory")
        fd = os.dup(self.root_fd)
        try:
            self._set_owner(m, fd=fd)
            self._set_xattrs(m, fd=fd)
        finally:
            os.close(fd)
        self._dirs[""] = _DirMeta(m.mode & 0o7777, _ns(m.mtime))

    def _regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            self._copy_body(tar, m, fd)
            self._set_owner(m, fd=fd)
            self._set_xattrs(m, fd=fd)
            os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid
            os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)
        self.size += m.size

    def _copy_body(self, tar: tarfile.TarFile, m: tarfile.TarInfo, fd: int) -> None:
        remaining = m.size
        if not remaining:
            return
        direct = _direct_body(tar, m)
        body = direct if direct is not None else tar.extractfile(m)
        assert body is not None
        while remaining:
            chunk = body.read(min(CHUNK, remaining))
            if not chunk:
                raise InvalidArchiveError(f"tar entry {m.name!r} is truncated")
            _write_all(fd, chunk)
            remaining -= len(chunk)
            if direct is not None:
                tar.fileobj.pos += len(chunk)  # type: ignore[union-attr]

    def _directory(self, m: tarfile.TarInfo, pfd: int, name: str, path: str, exists: bool) -> None:
        if not exists:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._set_owner(m, fd=fd)
            self._set_xattrs(m, fd=fd)
        finally:
            os.close(fd)
        # Mode and times are set at the end: writing children would change the mtime,
        # and a read-only mode would stop a non-root extractor from adding them.
        self._dirs[path] = _DirMeta(m.mode & 0o7777, _ns(m.mtime))

    def _symlink(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        if not m.linkname:
            raise InvalidArchiveError(f"tar entry {m.name!r} is a symlink with an empty target")
        os.symlink(m.linkname, name, dir_fd=pfd)  # the target is stored as-is and never followed
        self._set_owner(m, pfd=pfd, name=name)
        self._set_xattrs(m, pfd=pfd, name=name)
        os.utime(name, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=pfd, follow_symlinks=False)

    def _finish_node(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        self._set_owner(m, pfd=pfd, name=name)
        self._set_xattrs(m, pfd=pfd, name=name)
        # chmod follows a final symlink, but ``name`` is the node we just created in a
        # directory only we write to.
        os.chmod(name, m.mode & 0o7777, dir_fd=pfd)
        os.utime(name, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, parts: list[str], path: str) -> None:
        target = _clean_name(m.linkname, m.name) if m.linkname else ""
        if not target:
            raise InvalidArchiveError(f"tar entry {m.name!r} is a hardlink with an empty target")
        if target == path:
            raise InvalidArchiveError(f"tar entry {m.name!r} is a hardlink to itself")
        tparts = target.split("/")
        missing = InvalidArchiveError(f"tar entry {m.name!r} links to {m.linkname!r}, which is not in the layer")
        try:
            tfd = self._open_dir(tparts[:-1], create=False)  # refuses targets reached through symlinks
        except _MissingPath:
            raise missing from None
        try:
            try:
                st = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise missing from None
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArchiveError(f"tar entry {m.name!r} is a hardlink to a directory")
            self._remove(pfd, parts[-1], path, keep_dir=False)
            # follow_symlinks=False: a link to a symlink links the symlink itself
            os.link(tparts[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _whiteout(self, m: tarfile.TarInfo, parts: list[str]) -> None:
        base = parts[-1]
        pfd = self._parent(parts[:-1])
        if base == WHITEOUT_OPAQUE:
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            self.warnings.append(f"skipped AUFS metadata entry {m.name!r}")
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise InvalidArchiveError(f"tar entry {m.name!r} is a whiteout of nothing")
        self._remove(pfd, name, "/".join(parts[:-1] + [name]), keep_dir=False)
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        self._set_owner(m, pfd=pfd, name=name)

    # -- metadata

    def _set_owner(self, m: tarfile.TarInfo, *, fd: int | None = None, pfd: int | None = None, name: str = "") -> None:
        try:
            if fd is not None:
                os.fchown(fd, m.uid, m.gid)
            else:
                os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        except PermissionError:
            if self._is_root:
                raise
            # Without root we cannot give files away; keep ours (rootless extraction).

    def _set_xattrs(self, m: tarfile.TarInfo, *, fd: int | None = None, pfd: int | None = None, name: str = "") -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(PAX_XATTR_PREFIX):
                continue
            attr = key[len(PAX_XATTR_PREFIX) :]
            if attr.startswith(OVERLAY_XATTR_PREFIX):
                # Only whiteout entries may steer overlayfs; a raw redirect/opaque xattr could not.
                self.warnings.append(f"dropped xattr {attr} of {m.name!r}")
                continue
            data = value.encode("utf-8", "surrogateescape")
            # Without an fd: /proc/self/fd/<dir>/<name>, not following the last component,
            # so no path the archive controls is resolved.
            try:
                if fd is not None:
                    os.setxattr(fd, attr, data)
                else:
                    os.setxattr(f"/proc/self/fd/{pfd}/{name}", attr, data, follow_symlinks=False)
            except OSError as e:
                # Docker skips what the filesystem refuses (user.* on symlinks, security.selinux...).
                if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                self.warnings.append(f"could not set xattr {attr} on {m.name!r}: {e.strerror}")

    def finish_dirs(self) -> None:
        """Apply directory modes and times, deepest first, after all their contents exist."""
        self._forget_parent()
        for path in sorted(self._dirs, key=lambda p: p.count("/") + bool(p), reverse=True):
            meta = self._dirs[path]
            self._entry = path or "."
            try:
                fd = self._open_dir(path.split("/") if path else [], create=False)
            except InvalidArchiveError:
                continue  # replaced by a later entry (we forget those, but be sure)
            try:
                os.fchmod(fd, meta.mode)
                os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
            finally:
                os.close(fd)


def extract(stream: BinaryIO, dest: Path, *, diff_id: str | None = None) -> ExtractResult:
    """Unpack the uncompressed tar ``stream`` into ``dest`` and return its diff ID and size.

    Raises InvalidArchiveError for malformed or escaping archives and DigestMismatchError
    when ``diff_id`` is given and differs; in both cases the caller discards ``dest``.
    """
    verifier = digests.Verifier(diff_id)  # validates the expected digest before any read
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(dest)
    # Decompression runs in the prefetch thread, hashing and writing in this one: two
    # stages of similar cost that overlap, each releasing the GIL for its heavy part.
    prefetcher = _Prefetcher(_RawReader(stream))
    reader = io.BufferedReader(HashingReader(prefetcher, verifier), buffer_size=CHUNK)
    try:
        try:
            _extract_members(reader, extractor)
            extractor.finish_dirs()
        except OSError as e:
            raise _os_error(e, extractor._entry) from None
        finally:
            extractor.close()
        try:
            _drain(reader)  # trailing zero blocks and padding count toward the diff ID
        except OSError as e:
            raise DockyardError(f"cannot read the layer stream: {e}") from None
    finally:
        prefetcher.close()
    verifier.check()
    return ExtractResult(diff_id=verifier.digest, size=extractor.size, warnings=extractor.warnings)


def _extract_members(reader: BinaryIO, extractor: _Extractor) -> None:
    if not reader.peek(1):
        return  # an empty stream is an empty layer, as for Docker
    last, current = "(start of archive)", None
    try:
        # bufsize=BLOCKSIZE keeps tarfile from reading ahead of the headers (see _direct_body).
        tar = _TarReader.open(
            fileobj=reader, mode="r|", bufsize=tarfile.BLOCKSIZE, encoding="utf-8", errors="surrogateescape"
        )
    except tarfile.ReadError as e:
        raise InvalidArchiveError(f"not a tar archive: {e}") from None
    try:
        while (m := tar.next()) is not None:
            tar.members.clear()  # tarfile keeps every member for random access; we stream
            current = m.name
            extractor.add(tar, m)
            last, current = m.name, None
        _check_end(tar.stop_reason, last)
    except tarfile.TarError as e:
        where = f"tar entry {current!r}" if current is not None else f"tar stream after entry {last!r}"
        raise InvalidArchiveError(f"invalid {where}: {e}") from None
    finally:
        tar.close()


def _direct_body(tar: tarfile.TarFile, m: tarfile.TarInfo) -> BinaryIO | None:
    """The underlying reader, positioned at the body of ``m``, when it is safe to read it there.

    tarfile's stream mode copies bodies through a small join-and-slice buffer that costs
    as much as decompression. With bufsize=BLOCKSIZE that buffer is empty whenever
    tarfile returns a member, so the body can be read straight from our reader in big
    chunks and tarfile told how far it went. Anything unusual uses tarfile's own path.
    """
    stream = tar.fileobj
    if m.sparse is not None or getattr(stream, "buf", None) != b"" or getattr(stream, "pos", None) != m.offset_data:
        return None
    return getattr(stream, "fileobj", None)


def _check_end(reason: Exception | None, last: str) -> None:
    """tarfile ends iteration quietly on a corrupt or truncated header; Docker would not."""
    if reason is None or isinstance(reason, (tarfile.EOFHeaderError, tarfile.EmptyHeaderError)):
        return
    if isinstance(reason, tarfile.TruncatedHeaderError):
        raise InvalidArchiveError(f"tar stream is truncated after entry {last!r}")
    raise InvalidArchiveError(f"invalid tar header after entry {last!r}: {reason}")


def _drain(reader: BinaryIO) -> None:
    while reader.read(CHUNK):
        pass


def _os_error(e: OSError, entry: str) -> DockyardError:
    message = f"cannot extract tar entry {entry!r}: {e.strerror or e}"
    if e.errno in _ENVIRONMENT_ERRNOS:
        return DockyardError(message)
    return InvalidArchiveError(message)


# --------------------------------------------------------------------------- packing


def pack(src: Path, out: BinaryIO, hash: bool = True) -> str:
    """Write an uncompressed PAX tar of the tree under ``src`` to ``out``; return its diff ID
    ("" with ``hash`` False: for an ``out`` that hashes what it is given itself).

    Entries are sorted, owners numeric, xattrs kept; overlayfs whiteouts become
    ``.wh.`` entries again. The root directory itself is not an entry (as in Docker).
    """
    hashing = HashingWriter(out, "sha256" if hash else None)
    writer = _Batched(hashing)
    links: dict[tuple[int, int], str] = {}
    buf = bytearray(CHUNK)
    try:
        for rel, path, st in _walk_dir("", str(src)):
            for info in _tar_infos(rel, path, st, links):
                writer.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                if info.isreg() and info.size:
                    _copy_file(path, info.size, writer, buf, rel)
    except OSError as e:
        raise DockyardError(f"cannot pack {src}: {e}") from None
    writer.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    writer.flush()
    return hashing.digest


def content_size(src: Path) -> int:
    """What ``pack`` of ``src`` holds in regular files, a hard-linked file once: the layer
    size the store records (as ``extract`` counts it)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, _, st in _walk_dir("", str(src)):
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total


def _walk_dir(rel_dir: str, dir_path: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative name, path, lstat) sorted, depth-first, a directory before its contents;
    symlinks are never followed."""
    for entry in sorted(os.scandir(dir_path), key=lambda e: e.name):
        rel = f"{rel_dir}{entry.name}"
        st = entry.stat(follow_symlinks=False)
        yield rel, entry.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(rel + "/", entry.path)


def _tar_infos(rel: str, path: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> list[tarfile.TarInfo]:
    mode = st.st_mode
    info = _base_info(rel, st)
    if stat.S_ISCHR(mode) and st.st_rdev == 0:
        # An overlayfs whiteout: back to the ".wh." file of the layer format.
        head, _, name = rel.rpartition("/")
        info.name = f"{head}/{WHITEOUT_PREFIX}{name}" if head else f"{WHITEOUT_PREFIX}{name}"
        info.mode = 0o600
        return [info]
    xattrs = _read_xattrs(path)
    opaque = xattrs.pop(OPAQUE_XATTR, None) == b"y"
    for key in [k for k in xattrs if k.startswith(OVERLAY_XATTR_PREFIX)]:
        del xattrs[key]  # overlay's own bookkeeping (origin, impure, redirect) is not layer content
    for key in sorted(xattrs):
        info.pax_headers[PAX_XATTR_PREFIX + key] = xattrs[key].decode("utf-8", "surrogateescape")
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            if st.st_nlink > 1:
                links[key] = rel  # later names of this inode become hardlinks to this one
            info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return []  # sockets are not layer content, as in Docker
    if not opaque:
        return [info]
    marker = _base_info(f"{rel}/{WHITEOUT_OPAQUE}", st)
    marker.mode = stat.S_IMODE(mode) & 0o777
    return [info, marker]


def _base_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""  # numeric owners only: the image's passwd decides names
    info.mtime = int(st.st_mtime)  # whole seconds, as Docker writes them
    return info


def _read_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    return {name: os.getxattr(path, name, follow_symlinks=False) for name in names}


def _copy_file(path: str, size: int, writer: "_Batched", buf: bytearray, rel: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    view = memoryview(buf)
    remaining = size
    try:
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while remaining:
                n = f.readinto(view[: min(CHUNK, remaining)])
                if not n:
                    raise DockyardError(f"{rel} shrank while it was being packed")
                writer.write(view[:n])
                remaining -= n
    finally:
        os.close(fd)
    padding = -size % tarfile.BLOCKSIZE
    if padding:
        writer.write(b"\0" * padding)
