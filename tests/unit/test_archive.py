"""archive.py: decompression, safe extraction (one test per escape), preservation, pack.

Everything here runs without root; what needs root (owners, devices, whiteouts) is in
tests/integration/test_layers.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import DigestMismatchError, DockyardError, InvalidArchiveError, InvalidDigestError
from dockyard.store import archive

# --------------------------------------------------------------------------- helpers


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.uid = attrs.pop("uid", os.geteuid())
    info.gid = attrs.pop("gid", os.getegid())
    info.mtime = attrs.pop("mtime", 1_600_000_000)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def extract_bytes(data: bytes, dest: Path, **kwargs) -> archive.ExtractResult:
    return archive.extract(io.BytesIO(data), dest, **kwargs)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sentinel dir next to dest: no test may change anything in it."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("untouched")
    return d


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def snapshot(d: Path) -> dict[str, bytes | str]:
    result: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        result[str(p.relative_to(d))] = p.read_bytes() if p.is_file() and not p.is_symlink() else "other"
    return result


def assert_untouched(outside: Path) -> None:
    assert snapshot(outside) == {"secret": b"untouched"}


# --------------------------------------------------------------------------- escapes

pytestmark = pytest.mark.unit


def test_absolute_path_is_made_relative(dest: Path, outside: Path) -> None:
    target = outside / "pwned"
    extract_bytes(make_tar(member(str(target), data=b"x")), dest)
    assert not target.exists()
    assert (dest / str(target).lstrip("/")).read_bytes() == b"x"
    assert_untouched(outside)


def test_absolute_dotdot_is_cleaned_like_docker(dest: Path, outside: Path) -> None:
    extract_bytes(make_tar(member("/../../x", data=b"x")), dest)
    assert (dest / "x").read_bytes() == b"x"
    assert_untouched(outside)


def test_dotdot_climb_is_refused(dest: Path, outside: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="climbs out"):
        extract_bytes(make_tar(member("../outside/pwned", data=b"x")), dest)
    assert_untouched(outside)


def test_dotdot_that_stays_inside_is_fine(dest: Path, outside: Path) -> None:
    extract_bytes(make_tar(member("a/../b", data=b"x")), dest)
    assert (dest / "b").read_bytes() == b"x"
    assert_untouched(outside)


def test_symlinked_parent_is_refused(dest: Path, outside: Path) -> None:
    tar = make_tar(member("link", tarfile.SYMTYPE, linkname=str(outside)), member("link/x", data=b"pwned"))
    with pytest.raises(InvalidArchiveError, match="symlink"):
        extract_bytes(tar, dest)
    assert_untouched(outside)


def test_relative_symlinked_parent_is_refused(dest: Path, outside: Path) -> None:
    tar = make_tar(member("a/link", tarfile.SYMTYPE, linkname="../../outside"), member("a/link/x", data=b"pwned"))
    with pytest.raises(InvalidArchiveError, match="symlink"):
        extract_bytes(tar, dest)
    assert_untouched(outside)


def test_hardlink_to_etc_passwd_is_refused(dest: Path, outside: Path) -> None:
    links_before = os.stat("/etc/passwd").st_nlink
    with pytest.raises(InvalidArchiveError, match="not in the layer"):
        extract_bytes(make_tar(member("h", tarfile.LNKTYPE, linkname="/etc/passwd")), dest)
    assert os.stat("/etc/passwd").st_nlink == links_before
    assert not (dest / "h").exists()


def test_hardlink_climbing_out_is_refused(dest: Path, outside: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="climbs out"):
        extract_bytes(make_tar(member("h", tarfile.LNKTYPE, linkname="../outside/secret")), dest)
    assert os.stat(outside / "secret").st_nlink == 1
    assert_untouched(outside)


def test_hardlink_through_symlink_is_refused(dest: Path, outside: Path) -> None:
    tar = make_tar(member("l", tarfile.SYMTYPE, linkname=str(outside)), member("h", tarfile.LNKTYPE, linkname="l/secret"))
    with pytest.raises(InvalidArchiveError, match="symlink"):
        extract_bytes(tar, dest)
    assert os.stat(outside / "secret").st_nlink == 1
    assert_untouched(outside)


def test_symlink_then_file_through_it_is_refused(dest: Path, outside: Path) -> None:
    tar = make_tar(member("etc", tarfile.SYMTYPE, linkname=str(outside)), member("etc/passwd", data=b"root::0:0"))
    with pytest.raises(InvalidArchiveError, match="symlink"):
        extract_bytes(tar, dest)
    assert_untouched(outside)


def test_symlink_replaced_by_file_replaces_the_link(dest: Path, outside: Path) -> None:
    tar = make_tar(member("x", tarfile.SYMTYPE, linkname=str(outside / "secret")), member("x", data=b"mine"))
    extract_bytes(tar, dest)
    assert not (dest / "x").is_symlink()
    assert (dest / "x").read_bytes() == b"mine"
    assert_untouched(outside)


def test_symlink_replaced_by_dir_replaces_the_link(dest: Path, outside: Path) -> None:
    tar = make_tar(
        member("d", tarfile.SYMTYPE, linkname=str(outside)),
        member("d", tarfile.DIRTYPE),
        member("d/new", data=b"inside"),
    )
    extract_bytes(tar, dest)
    assert (dest / "d").is_dir() and not (dest / "d").is_symlink()
    assert (dest / "d" / "new").read_bytes() == b"inside"
    assert_untouched(outside)


def test_whiteout_through_symlinked_parent_is_refused(dest: Path, outside: Path) -> None:
    tar = make_tar(member("l", tarfile.SYMTYPE, linkname=str(outside)), member("l/.wh.secret"))
    with pytest.raises(InvalidArchiveError, match="symlink"):
        extract_bytes(tar, dest)
    assert_untouched(outside)


def test_truncated_body_with_huge_declared_size(dest: Path, outside: Path) -> None:
    info = tarfile.TarInfo("big")
    info.size = 50 << 30  # declares 50 GiB
    data = info.tobuf(tarfile.PAX_FORMAT) + b"x" * 1000
    with pytest.raises(InvalidArchiveError, match="big"):
        extract_bytes(data, dest)
    assert_untouched(outside)
    assert snapshot(dest) in ({}, {"big": b"x" * 1000})


def test_truncated_header_is_refused(dest: Path) -> None:
    data = make_tar(member("a", data=b"1"))
    header_end = 512 + 512  # first member: header + one data block
    with pytest.raises(InvalidArchiveError, match="truncated"):
        extract_bytes(data[: header_end + 100], dest)


def test_corrupt_header_mid_stream_is_refused(dest: Path) -> None:
    data = bytearray(make_tar(member("a", data=b"1"), member("b", data=b"2")))
    data[1024 + 10] ^= 0xFF  # second header's name: the checksum no longer matches
    with pytest.raises(InvalidArchiveError, match="after entry 'a'"):
        extract_bytes(bytes(data), dest)


def test_not_a_tar(dest: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="not a tar"):
        extract_bytes(b"hello world" * 100, dest)


def test_unsupported_entry_type_names_the_entry(dest: Path) -> None:
    info = tarfile.TarInfo("weird")
    info.type = b"V"  # GNU volume header
    with pytest.raises(InvalidArchiveError, match="'weird'.*unsupported type"):
        extract_bytes(info.tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024, dest)


def test_oversized_pax_header_is_refused_before_reading_it(dest: Path) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 1 << 30
    with pytest.raises(InvalidArchiveError, match="limit"):
        extract_bytes(info.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 4096, dest)


def test_whiteout_of_dotdot_is_refused(dest: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="whiteout"):
        extract_bytes(make_tar(member("a/.wh..."), member("x")), dest)


def test_overlay_xattrs_from_the_tar_are_dropped(dest: Path) -> None:
    info, data = member("d", tarfile.DIRTYPE)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    result = extract_bytes(make_tar((info, data)), dest)
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "d")
    assert any("trusted.overlay.redirect" in w for w in result.warnings)


# --------------------------------------------------------------------------- overwrite rules


def test_later_entries_overwrite_earlier_ones(dest: Path) -> None:
    tar = make_tar(
        member("f", data=b"old"),
        member("f", data=b"new"),
        member("d", tarfile.DIRTYPE),
        member("d/inner", data=b"gone"),
        member("d", data=b"now a file"),
        member("g", data=b"was a file"),
        member("g", tarfile.DIRTYPE),
        member("g/x", data=b"x"),
    )
    extract_bytes(tar, dest)
    assert (dest / "f").read_bytes() == b"new"
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "g" / "x").read_bytes() == b"x"


def test_dir_entry_twice_keeps_contents(dest: Path) -> None:
    tar = make_tar(member("d", tarfile.DIRTYPE), member("d/x", data=b"x"), member("d", tarfile.DIRTYPE, mode=0o700))
    extract_bytes(tar, dest)
    assert (dest / "d" / "x").read_bytes() == b"x"
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o700


def test_missing_parents_are_created(dest: Path) -> None:
    extract_bytes(make_tar(member("a/b/c/file", data=b"deep")), dest)
    assert (dest / "a/b/c/file").read_bytes() == b"deep"
    assert stat.S_IMODE((dest / "a").stat().st_mode) == 0o755


# --------------------------------------------------------------------------- diff IDs and compression


def test_diff_id_is_the_hash_of_the_whole_stream_with_padding(dest: Path) -> None:
    data = make_tar(member("a", data=b"1")) + b"\0" * 4096  # extra zero blocks after the end marker
    result = extract_bytes(data, dest)
    assert result.diff_id == sha256(data)
    assert result.size == 1


def test_diff_id_mismatch_raises(dest: Path) -> None:
    data = make_tar(member("a", data=b"1"))
    with pytest.raises(DigestMismatchError):
        extract_bytes(data, dest, diff_id=sha256(b"something else"))


def test_diff_id_match_passes(dest: Path) -> None:
    data = make_tar(member("a", data=b"1"))
    assert extract_bytes(data, dest, diff_id=sha256(data)).diff_id == sha256(data)


def test_bad_expected_diff_id_is_refused_before_reading(dest: Path) -> None:
    with pytest.raises(InvalidDigestError):
        extract_bytes(make_tar(member("a")), dest, diff_id="sha256:nothex")


def test_empty_stream_is_an_empty_layer(dest: Path) -> None:
    result = extract_bytes(b"", dest)
    assert result.diff_id == sha256(b"") and result.size == 0
    assert list(dest.iterdir()) == []


def test_size_is_the_sum_of_regular_files(dest: Path) -> None:
    tar = make_tar(member("a", data=b"12345"), member("b", data=b"678"), member("l", tarfile.SYMTYPE, linkname="a"))
    assert extract_bytes(tar, dest).size == 8


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("kind", ["gzip", "zstd", ""])
@pytest.mark.parametrize("declared", [True, False])
def test_compressions(kind: str, declared: bool, dest: Path) -> None:
    body = os.urandom(3 << 20)  # bigger than one read chunk
    data = make_tar(member("big", data=body), member("small", data=b"s"))
    stream = archive.open_decompressed(io.BytesIO(_compress(kind, data)), kind if declared else None)
    result = archive.extract(stream, dest)
    assert result.diff_id == sha256(data)
    assert (dest / "big").read_bytes() == body


def test_gzip_multi_member(dest: Path) -> None:
    data = make_tar(member("a", data=b"x" * 100_000))
    compressed = gzip.compress(data[:7000]) + gzip.compress(data[7000:]) + b"\0" * 10
    result = archive.extract(archive.open_decompressed(io.BytesIO(compressed), None), dest)
    assert result.diff_id == sha256(data)


def test_zstd_multi_frame(dest: Path) -> None:
    data = make_tar(member("a", data=os.urandom(200_000)))
    c = zstandard.ZstdCompressor()
    compressed = c.compress(data[:50_000]) + c.compress(data[50_000:])
    result = archive.extract(archive.open_decompressed(io.BytesIO(compressed), "zstd"), dest)
    assert result.diff_id == sha256(data)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_compressed_stream(kind: str, dest: Path) -> None:
    data = make_tar(member("a", data=os.urandom(300_000)))
    compressed = _compress(kind, data)
    with pytest.raises(InvalidArchiveError, match="truncated"):
        archive.extract(archive.open_decompressed(io.BytesIO(compressed[:-20]), None), dest)


@pytest.mark.parametrize("cut", [1, 5, 2000])
def test_zstd_truncated_anywhere_is_detected(cut: int) -> None:
    data = b"".join(os.urandom(1000) + b"\0" * 50_000 for _ in range(20))
    compressed = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    stream = archive.open_decompressed(io.BytesIO(compressed[:-cut]), "zstd")
    with pytest.raises(InvalidArchiveError, match="truncated"):
        while stream.read(1 << 20):
            pass


def test_corrupt_gzip(dest: Path) -> None:
    compressed = bytearray(gzip.compress(make_tar(member("a", data=os.urandom(10_000)))))
    compressed[100] ^= 0xFF
    with pytest.raises(InvalidArchiveError, match="gzip"):
        archive.extract(archive.open_decompressed(io.BytesIO(bytes(compressed)), None), dest)


def test_unknown_compression_name() -> None:
    with pytest.raises(InvalidArchiveError, match="compression"):
        archive.open_decompressed(io.BytesIO(b""), "lz4")


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_link_targets(fmt: int, dest: Path) -> None:
    deep = "/".join(["d" * 60] * 5) + "/file-é"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tar:
        for info, data in (member(deep, data=b"deep"), member("link", tarfile.SYMTYPE, linkname="/x" * 80)):
            tar.addfile(info, io.BytesIO(data))
    extract_bytes(buf.getvalue(), dest)
    assert (dest / deep).read_bytes() == b"deep"
    assert os.readlink(dest / "link") == "/x" * 80


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
def test_gnu_sparse_files_take_tarfiles_own_path(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
    data = subprocess.run(["tar", "--sparse", "-C", str(src), "-cf", "-", "sparse"], check=True, capture_output=True).stdout
    result = extract_bytes(data, dest)
    assert (dest / "sparse").read_bytes() == b"\0" * (5 << 20) + b"end"
    assert result.size == (5 << 20) + 3


def test_hashing_reader_counts_what_passes() -> None:
    reader = archive.HashingReader(io.BytesIO(b"abc" * 1000))
    assert io.BufferedReader(reader).read() == b"abc" * 1000
    assert reader.digest == sha256(b"abc" * 1000) and reader.count == 3000


# --------------------------------------------------------------------------- preservation (own uid)


def test_preserves_modes_times_links_and_xattrs(dest: Path) -> None:
    info, data = member("f", data=b"payload", mode=0o4755, mtime=1_500_000_000)
    info.pax_headers = {"SCHILY.xattr.user.foo": "bar"}
    tar = make_tar(
        member("d", tarfile.DIRTYPE, mode=0o1777, mtime=1_400_000_000),
        member("d/inner", data=b"i"),
        (info, data),
        member("hard", tarfile.LNKTYPE, linkname="f"),
        member("sym", tarfile.SYMTYPE, linkname="/does/not/exist", mtime=1_300_000_000),
        member("fifo", tarfile.FIFOTYPE, mode=0o640),
    )
    extract_bytes(tar, dest)
    f = (dest / "f").stat()
    assert stat.S_IMODE(f.st_mode) == 0o4755
    assert f.st_mtime == 1_500_000_000
    assert os.getxattr(dest / "f", "user.foo") == b"bar"
    assert (dest / "hard").stat().st_ino == f.st_ino and f.st_nlink == 2
    assert os.readlink(dest / "sym") == "/does/not/exist"
    assert os.lstat(dest / "sym").st_mtime == 1_300_000_000
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode) and stat.S_IMODE((dest / "fifo").lstat().st_mode) == 0o640
    d = (dest / "d").stat()
    assert stat.S_IMODE(d.st_mode) == 0o1777
    assert d.st_mtime == 1_400_000_000  # set after its contents were written


def test_binary_xattr_values_round_trip(dest: Path) -> None:
    value = bytes(range(256))
    info, data = member("f")
    info.pax_headers = {"SCHILY.xattr.user.bin": value.decode("utf-8", "surrogateescape")}
    extract_bytes(make_tar((info, data)), dest)
    assert os.getxattr(dest / "f", "user.bin") == value


def test_root_entry_sets_root_metadata(dest: Path) -> None:
    extract_bytes(make_tar(member("./", tarfile.DIRTYPE, mode=0o750, mtime=1_234_567_890), member("./a")), dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750
    assert dest.stat().st_mtime == 1_234_567_890


def test_root_entry_that_is_not_a_dir_is_refused(dest: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="root"):
        extract_bytes(make_tar(member(".", data=b"x")), dest)


def test_regular_files_are_not_opened_through_symlinks(dest: Path, outside: Path) -> None:
    # Even a file entry whose name was a symlink before the extract began replaces the link.
    os.symlink(outside / "secret", dest / "victim")
    extract_bytes(make_tar(member("victim", data=b"mine")), dest)
    assert (dest / "victim").read_bytes() == b"mine"
    assert_untouched(outside)


# --------------------------------------------------------------------------- pack


def test_pack_is_deterministic_and_keeps_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    (src / "a").write_bytes(b"a" * 5000)
    os.link(src / "a", src / "b" / "hard")
    os.symlink("../a", src / "b" / "sym")
    os.setxattr(src / "a", "user.k", b"v")
    first, second = io.BytesIO(), io.BytesIO()
    assert archive.pack(src, first) == archive.pack(src, second)
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["a", "b", "b/hard", "b/sym"]
    assert members["b/hard"].islnk() and members["b/hard"].linkname == "a"
    assert members["b/sym"].linkname == "../a"
    assert members["a"].pax_headers["SCHILY.xattr.user.k"] == "v"
    assert members["a"].uname == ""


def test_pack_refuses_file_that_shrinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 100)
    real = archive._tar_infos

    def shrink_after_stat(rel, path, st, links):
        infos = real(rel, path, st, links)
        Path(path).write_bytes(b"x")  # the file changes between stat and read
        return infos

    monkeypatch.setattr(archive, "_tar_infos", shrink_after_stat)
    with pytest.raises(DockyardError, match="shrank"):
        archive.pack(src, io.BytesIO())


# A tree: name -> ("f", data, mode) | ("l", target) | ("d", mode, children)
_names = st.text(alphabet="abxyz._-é", min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..") and not n.startswith(".wh.")
)
_files = st.tuples(st.just("f"), st.binary(max_size=2000), st.sampled_from([0o644, 0o600, 0o755, 0o4755, 0o2750, 0o444]))
_links = st.tuples(st.just("l"), st.sampled_from(["a", "../x", "/abs/path", "é"]))
_trees = st.recursive(
    st.one_of(_files, _links),
    lambda children: st.tuples(st.just("d"), st.sampled_from([0o755, 0o700, 0o1777]), st.dictionaries(_names, children, max_size=4)),
    max_leaves=12,
)


def _tar_of(tree: dict) -> tuple[bytes, dict]:
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    expected: dict[str, tuple] = {}

    def walk(prefix: str, children: dict) -> None:
        for name, node in sorted(children.items()):
            path = prefix + name
            if node[0] == "f":
                members.append(member(path, data=node[1], mode=node[2]))
                expected[path] = ("f", node[1], node[2])
            elif node[0] == "l":
                members.append(member(path, tarfile.SYMTYPE, linkname=node[1]))
                expected[path] = ("l", node[1])
            else:
                members.append(member(path, tarfile.DIRTYPE, mode=node[1]))
                expected[path] = ("d", node[1])
                walk(path + "/", node[2])

    walk("", tree)
    return make_tar(*members), expected


def _read_tar(data: bytes) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8") as tar:
        for m in tar:
            if m.isreg():
                found[m.name] = ("f", tar.extractfile(m).read(), m.mode)
            elif m.issym():
                found[m.name] = ("l", m.linkname)
            elif m.isdir():
                found[m.name] = ("d", m.mode)
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(_names, _trees, min_size=1, max_size=5))
def test_pack_of_extract_round_trips(tree: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    data, expected = _tar_of(tree)
    first = tmp_path_factory.mktemp("first")
    archive.extract(io.BytesIO(data), first)
    packed = io.BytesIO()
    diff_id = archive.pack(first, packed)
    assert _read_tar(packed.getvalue()) == expected
    # And the packed tar extracts to the same tree, with the diff ID pack announced.
    second = tmp_path_factory.mktemp("second")
    assert archive.extract(io.BytesIO(packed.getvalue()), second).diff_id == diff_id
    again = io.BytesIO()
    assert archive.pack(second, again) == diff_id
