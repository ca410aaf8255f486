"""One read of a blob checks three things: its digest, for a layer the digest of its
uncompressed tar (the diff ID), and that the unpacked layer dirs hold what that tar says.

The tar's members are replayed as the extractor applies them (later entries replace earlier
ones, whiteouts remove, hard links share their target's content) into the expected tree:
type, size and sha256 of each regular file, symlink targets, device numbers. The unpacked dir
must hold exactly that tree. Owners, modes and times are not compared: a rootless unpack keeps
its own, and overlayfs changes directory times.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard import digest as digests
from dockyard.errors import DockyardError
from dockyard.store import archive

CHUNK = 1 << 20
MAX_PROBLEMS = 5  # per layer dir: the first few say enough


@dataclass
class BlobCheck:
    digest: str                         # what the bytes hash to
    diff_id: str = ""                   # what the uncompressed tar hashes to (layers only)
    size: int = 0                       # bytes of regular files in the tar (the layer row's size)
    error: str = ""                     # the tar could not be read
    expected: dict[str, tuple] = field(default_factory=dict)


def check_blob(path: str, algorithm: str, compression: str | None = None) -> BlobCheck:
    """Hash the blob at ``path``; with ``compression`` (a layer: "gzip", "zstd", ""), also
    read it as a tar and record the tree it unpacks to."""
    with open(path, "rb") as f:
        raw = archive.HashingReader(f, digests.Verifier(algorithm=algorithm))
        if compression is None:
            _drain(raw)
            return BlobCheck(raw.digest)
        result = BlobCheck("")
        plain = archive.HashingReader(archive.open_decompressed(io.BufferedReader(raw, CHUNK), compression))
        try:
            _replay(io.BufferedReader(plain, CHUNK), result)
            _drain(plain)
        except (DockyardError, tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as e:
            result.error = str(e) or type(e).__name__
        _drain(raw)  # whatever follows the compressed stream counts toward the blob's digest
        result.digest = raw.digest
        if not result.error:
            result.diff_id = plain.digest
        return result


def _drain(reader: BinaryIO) -> None:
    buf = bytearray(CHUNK)
    while reader.readinto(buf):
        pass


def _replay(reader: BinaryIO, result: BlobCheck) -> None:
    expected = result.expected
    if not reader.peek(1):
        return
    tar = tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape")
    try:
        for m in tar:
            tar.members.clear()
            path = _clean(m.name)
            if not path:
                continue
            parent, _, base = path.rpartition("/")
            _add_parents(expected, parent)
            if base.startswith(archive.WHITEOUT_PREFIX):
                if base == archive.WHITEOUT_OPAQUE or base.startswith(archive.WHITEOUT_META_PREFIX):
                    continue
                target = f"{parent}/{base[len(archive.WHITEOUT_PREFIX):]}".lstrip("/")
                _remove(expected, target)
                expected[target] = ("whiteout",)
                continue
            if m.islnk():
                source = expected.get(_clean(m.linkname))
                _remove(expected, path)
                if source is not None:
                    expected[path] = source
                continue
            if not (m.isdir() and expected.get(path, ("",))[0] == "dir"):
                _remove(expected, path)
            if m.isreg():
                expected[path] = ("file", m.size, _hash_member(tar, m))
                result.size += m.size
            elif m.isdir():
                expected[path] = ("dir",)
            elif m.issym():
                expected[path] = ("symlink", m.linkname)
            elif m.ischr() or m.isblk():
                expected[path] = ("chr" if m.ischr() else "blk", m.devmajor, m.devminor)
            elif m.isfifo():
                expected[path] = ("fifo",)
    finally:
        tar.close()


def _clean(name: str) -> str:
    # The extractor's own rules (leading "/" dropped, ".." resolved), so both see one path.
    return archive._clean_name(name, name)


def _add_parents(expected: dict[str, tuple], parent: str) -> None:
    while parent and parent not in expected:
        expected[parent] = ("dir",)
        parent = parent.rpartition("/")[0]


def _remove(expected: dict[str, tuple], path: str) -> None:
    if expected.pop(path, None) == ("dir",):
        prefix = path + "/"
        for key in [k for k in expected if k.startswith(prefix)]:
            del expected[key]


def _hash_member(tar: tarfile.TarFile, m: tarfile.TarInfo) -> str:
    h = hashlib.sha256()
    body = tar.extractfile(m)
    if body is not None:
        while chunk := body.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def compare_dir(diff_dir: str, expected: dict[str, tuple]) -> list[str]:
    """What differs between the unpacked ``diff_dir`` and the tree the tar describes."""
    problems: list[str] = []
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(diff_dir):
        rel = os.path.relpath(dirpath, diff_dir)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    for path in sorted(found - set(expected)):
        problems.append(f"{path} is not in the layer's tar")
    for path, want in sorted(expected.items()):
        if len(problems) >= MAX_PROBLEMS:
            break
        if path not in found:
            problems.append(f"{path} is missing")
            continue
        problem = _compare(os.path.join(diff_dir, path), want)
        if problem:
            problems.append(f"{path} {problem}")
    return problems[:MAX_PROBLEMS]


def _compare(path: str, want: tuple) -> str:
    st = os.lstat(path)
    kind = want[0]
    if kind == "file":
        if not stat.S_ISREG(st.st_mode):
            return "is not a regular file"
        if st.st_size != want[1]:
            return f"has {st.st_size} bytes, the tar {want[1]}"
        if _hash_file(path) != want[2]:
            return "differs from the tar's content"
    elif kind == "dir":
        if not stat.S_ISDIR(st.st_mode):
            return "is not a directory"
    elif kind == "symlink":
        if not stat.S_ISLNK(st.st_mode):
            return "is not a symlink"
        if os.readlink(path) != want[1]:
            return "points elsewhere than in the tar"
    elif kind == "whiteout":
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != 0:
            return "is not a whiteout"
    elif kind in ("chr", "blk"):
        right_type = stat.S_ISCHR(st.st_mode) if kind == "chr" else stat.S_ISBLK(st.st_mode)
        if not right_type or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (want[1], want[2]):
            return "is not the tar's device"
    elif kind == "fifo" and not stat.S_ISFIFO(st.st_mode):
        return "is not a fifo"
    return ""


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
