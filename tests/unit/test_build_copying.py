"""build/copying.py: COPY/ADD as BuildKit applies them -- source matching, the content
checksum and its memo, the copy rules, escapes that must stay inside the root, ADD's archive
extraction and URL download.

Tests that give files away (owners, device nodes) need root and are skipped without it."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.build import copying
from dockyard.build.copying import CopyError, HashMemo, SourceTree, checksum, copy, download, expand_sources
from dockyard.build.ignore import parse
from dockyard.errors import DockyardError

pytestmark = pytest.mark.unit

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="gives files away")


# --------------------------------------------------------------------------- helpers


def write(path: Path, data: str | bytes = "", mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    """A small build context."""
    c = tmp_path / "ctx"
    write(c / "a.txt", "A")
    write(c / "b.txt", "B")
    write(c / "c.md", "C")
    write(c / "dir" / "one.txt", "1")
    write(c / "dir" / "sub" / "two.txt", "2")
    return c


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    write(r / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\n")
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sentinel beside the roots: nothing may change in it."""
    o = tmp_path / "outside"
    write(o / "secret", "keep")
    return o


def snapshot(path: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = ("->" + os.readlink(p)) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


def do_copy(ctx: Path, sources: list[str], rootfs: Path, dest: str, excluded=None, **kwargs) -> None:
    tree = SourceTree(str(ctx), excluded)
    copy(tree, expand_sources(tree, sources), str(rootfs), dest, **kwargs)


def tar_bytes(*entries: tuple[str, bytes, dict]) -> bytes:
    """A tar of (name, data, attrs); attrs may set type, linkname, mode, uid, gid, mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            info.type = attrs.get("type", tarfile.REGTYPE)
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            info.mode = attrs.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
            info.uid, info.gid = attrs.get("uid", 0), attrs.get("gid", 0)
            info.mtime = attrs.get("mtime", 1_600_000_000)
            info.linkname = attrs.get("linkname", "")
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


# --------------------------------------------------------------------------- sources


def test_expand_plain_sources_keep_order_and_drop_duplicates(ctx: Path) -> None:
    tree = SourceTree(str(ctx))
    assert expand_sources(tree, ["b.txt", "a.txt", "./b.txt", "dir/"]) == ["b.txt", "a.txt", "dir"]
    assert expand_sources(tree, ["."]) == ["."]


def test_wildcards_are_filepath_match_per_segment(ctx: Path) -> None:
    tree = SourceTree(str(ctx))
    write(ctx / "dir" / "three.txt", "3")
    write(ctx / ".hidden.txt", "h")
    assert expand_sources(tree, ["*.txt"]) == [".hidden.txt", "a.txt", "b.txt"]
    assert expand_sources(tree, ["?.md", "[ab].txt"]) == ["c.md", "a.txt", "b.txt"]
    assert expand_sources(tree, ["[^a].txt"]) == ["b.txt"]
    assert expand_sources(tree, ["dir/*.txt"]) == ["dir/one.txt", "dir/three.txt"]
    assert expand_sources(tree, ["*/sub/*"]) == ["dir/sub/two.txt"]
    assert expand_sources(tree, ["d*"]) == ["dir"]  # a directory matched whole, not walked into


def test_missing_source_is_not_found_with_buildkits_words(ctx: Path) -> None:
    tree = SourceTree(str(ctx))
    with pytest.raises(CopyError) as e:
        expand_sources(tree, ["nope/../missing.txt"])
    assert str(e.value) == '"/missing.txt": not found'
    assert e.value.exit_code == 1 and isinstance(e.value, DockyardError)
    with pytest.raises(CopyError, match=r'^"/\*\.nope": not found$'):
        expand_sources(tree, ["*.nope"])
    with pytest.raises(CopyError, match=r'^"/a.txt/x": not found$'):
        expand_sources(tree, ["a.txt/x"])  # through a file
    with pytest.raises(CopyError, match="not found"):
        expand_sources(tree, ["[a"])  # a malformed pattern matches nothing


def test_dotdot_and_absolute_sources_stay_in_the_root(tmp_path: Path, ctx: Path) -> None:
    write(tmp_path / "escaped.txt", "outside")
    tree = SourceTree(str(ctx))
    assert expand_sources(tree, ["../../a.txt", "/b.txt", "/../../c.md"]) == ["a.txt", "b.txt", "c.md"]
    with pytest.raises(CopyError, match='"/escaped.txt": not found'):
        expand_sources(tree, ["../escaped.txt"])


def test_a_context_symlink_pointing_outside_resolves_inside(tmp_path: Path, ctx: Path, rootfs: Path) -> None:
    write(tmp_path / "hostfile", "HOST")
    write(ctx / "hostfile", "CONTEXT")
    (ctx / "abs").symlink_to(tmp_path / "hostfile")  # absolute: read as if ctx were /
    (ctx / "rel").symlink_to("../../../hostfile")  # climbs: stops at the root
    (ctx / "gone").symlink_to("/nonexistent")
    tree = SourceTree(str(ctx))
    with pytest.raises(CopyError, match="not found"):
        expand_sources(tree, ["abs"])  # ctx/<tmp_path>/hostfile does not exist
    do_copy(ctx, ["rel"], rootfs, "/out/")
    assert (rootfs / "out" / "rel").read_text() == "CONTEXT"
    with pytest.raises(CopyError, match='"/gone": not found'):
        expand_sources(tree, ["gone"])
    inner = ctx / tmp_path.relative_to("/") / "hostfile"
    write(inner, "INNER")
    do_copy(ctx, ["abs"], rootfs, "/out/")
    assert (rootfs / "out" / "abs").read_text() == "INNER"


# --------------------------------------------------------------------------- copy rules


def test_a_directory_source_copies_its_contents_not_itself(ctx: Path, rootfs: Path) -> None:
    do_copy(ctx, ["dir"], rootfs, "/app")
    assert (rootfs / "app" / "one.txt").read_text() == "1"
    assert (rootfs / "app" / "sub" / "two.txt").read_text() == "2"
    assert not (rootfs / "app" / "dir").exists()


def test_directory_contents_merge_with_what_is_there(ctx: Path, rootfs: Path) -> None:
    write(rootfs / "app" / "old.txt", "old")
    write(rootfs / "app" / "one.txt", "stale")
    do_copy(ctx, ["dir/"], rootfs, "/app/")
    assert (rootfs / "app" / "old.txt").read_text() == "old"
    assert (rootfs / "app" / "one.txt").read_text() == "1"


def test_file_into_a_directory_dest_and_file_to_a_new_name(ctx: Path, rootfs: Path) -> None:
    do_copy(ctx, ["a.txt"], rootfs, "/into/")  # trailing slash: a directory, made
    assert (rootfs / "into" / "a.txt").read_text() == "A"
    do_copy(ctx, ["a.txt"], rootfs, "/renamed")  # no slash: the file's new name
    assert (rootfs / "renamed").read_text() == "A"
    do_copy(ctx, ["b.txt"], rootfs, "/into")  # no slash, but a directory is there
    assert (rootfs / "into" / "b.txt").read_text() == "B"
    do_copy(ctx, ["b.txt"], rootfs, "/renamed")  # an existing file is replaced
    assert (rootfs / "renamed").read_text() == "B"


def test_relative_dest_is_relative_to_workdir(ctx: Path, rootfs: Path) -> None:
    do_copy(ctx, ["a.txt"], rootfs, ".", workdir="/srv/app")
    assert (rootfs / "srv" / "app" / "a.txt").read_text() == "A"
    do_copy(ctx, ["b.txt"], rootfs, "sub/b", workdir="/srv/app")
    assert (rootfs / "srv" / "app" / "sub" / "b").read_text() == "B"
    do_copy(ctx, ["c.md"], rootfs, "..", workdir="/srv/app")
    assert (rootfs / "srv" / "c.md").read_text() == "C"


def test_more_than_one_source_needs_a_directory_dest(ctx: Path, rootfs: Path) -> None:
    with pytest.raises(CopyError) as e:
        do_copy(ctx, ["a.txt", "b.txt"], rootfs, "/dest")
    assert str(e.value) == copying.MULTIPLE_SOURCES
    with pytest.raises(CopyError, match="must be a directory and end with a /"):
        do_copy(ctx, ["*.txt"], rootfs, "/dest")  # two matches count as two
    assert not (rootfs / "dest").exists()
    do_copy(ctx, ["*.txt", "c.md"], rootfs, "/dest/")
    assert sorted(os.listdir(rootfs / "dest")) == ["a.txt", "b.txt", "c.md"]
    do_copy(ctx, ["a.txt", "b.txt"], rootfs, "/forced", dest_is_dir=True)
    assert sorted(os.listdir(rootfs / "forced")) == ["a.txt", "b.txt"]


def test_a_directory_where_a_file_goes_is_an_error(ctx: Path, rootfs: Path) -> None:
    (rootfs / "app" / "a.txt").mkdir(parents=True)
    with pytest.raises(CopyError, match="cannot replace directory /app/a.txt"):
        do_copy(ctx, ["a.txt"], rootfs, "/app/")
    write(rootfs / "file", "f")
    with pytest.raises(CopyError, match="cannot copy to non-directory"):
        do_copy(ctx, ["dir"], rootfs, "/file/x/")


def test_parents_are_made_0755(ctx: Path, rootfs: Path) -> None:
    old = os.umask(0o077)
    try:
        do_copy(ctx, ["a.txt"], rootfs, "/deep/er/a.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((rootfs / "deep").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "deep" / "er").stat().st_mode) == 0o755


def test_modes_and_mtimes_are_kept(ctx: Path, rootfs: Path) -> None:
    write(ctx / "tool", "#!/bin/sh\n", mode=0o4751)
    (ctx / "dir" / "sub").chmod(0o750)
    os.utime(ctx / "tool", ns=(1_000_000_000, 1_234_567_890_123_456_789))
    os.utime(ctx / "dir" / "sub", ns=(5, 1_500_000_000_000_000_000))
    do_copy(ctx, ["tool"], rootfs, "/bin/")
    do_copy(ctx, ["dir"], rootfs, "/d")
    st = (rootfs / "bin" / "tool").stat()
    assert stat.S_IMODE(st.st_mode) == 0o4751
    assert st.st_mtime_ns == 1_234_567_890_123_456_789
    sub = (rootfs / "d" / "sub").stat()
    assert stat.S_IMODE(sub.st_mode) == 0o750
    assert sub.st_mtime_ns == 1_500_000_000_000_000_000


@needs_root
def test_owner_is_root_or_chown(ctx: Path, rootfs: Path) -> None:
    os.chown(ctx / "a.txt", 1234, 5678)
    os.chown(ctx / "dir" / "sub", 1234, 5678)
    do_copy(ctx, ["a.txt", "dir"], rootfs, "/plain/")
    assert (os.stat(rootfs / "plain" / "a.txt").st_uid, os.stat(rootfs / "plain" / "a.txt").st_gid) == (0, 0)
    assert os.stat(rootfs / "plain" / "sub").st_uid == 0
    os.chown(rootfs / "etc", 7, 7)  # an existing parent keeps its owner
    do_copy(ctx, ["dir"], rootfs, "/etc/new/deeper/", chown=(1000, 1001))
    for path in ("etc/new", "etc/new/deeper", "etc/new/deeper/one.txt", "etc/new/deeper/sub", "etc/new/deeper/sub/two.txt"):
        st = os.stat(rootfs / path)
        assert (st.st_uid, st.st_gid) == (1000, 1001), path
    assert os.stat(rootfs / "etc").st_uid == 7


@needs_root
def test_files_from_a_stage_keep_their_owner(tmp_path: Path, rootfs: Path) -> None:
    stage = tmp_path / "stage"
    write(stage / "app" / "bin", "x")
    os.chown(stage / "app" / "bin", 33, 44)
    tree = SourceTree(str(stage), keep_owner=True)
    copy(tree, expand_sources(tree, ["/app"]), str(rootfs), "/app")
    assert (os.stat(rootfs / "app" / "bin").st_uid, os.stat(rootfs / "app" / "bin").st_gid) == (33, 44)
    copy(tree, expand_sources(tree, ["/app"]), str(rootfs), "/app2", chown=(1, 2))
    assert os.stat(rootfs / "app2" / "bin").st_uid == 1


def test_chmod_replaces_the_bits_of_files_and_directories(ctx: Path, rootfs: Path) -> None:
    write(ctx / "dir" / "suid", "s", mode=0o4755)
    do_copy(ctx, ["dir"], rootfs, "/app", chmod=0o700)
    for path in ("app/one.txt", "app/sub", "app/sub/two.txt", "app/suid"):
        assert stat.S_IMODE((rootfs / path).stat().st_mode) == 0o700, path
    assert stat.S_IMODE((rootfs / "app").stat().st_mode) == 0o755  # made, not copied
    do_copy(ctx, ["a.txt"], rootfs, "/x", chmod=0o4711)
    assert stat.S_IMODE((rootfs / "x").stat().st_mode) == 0o4711


def test_symlinks_below_stay_links_a_top_level_one_is_followed(ctx: Path, rootfs: Path) -> None:
    (ctx / "dir" / "link").symlink_to("/etc/passwd")
    (ctx / "top").symlink_to("dir/one.txt")
    (ctx / "topdir").symlink_to("dir/sub")
    do_copy(ctx, ["dir"], rootfs, "/app")
    assert os.readlink(rootfs / "app" / "link") == "/etc/passwd"
    do_copy(ctx, ["top"], rootfs, "/t/")
    assert not (rootfs / "t" / "top").is_symlink() and (rootfs / "t" / "top").read_text() == "1"
    do_copy(ctx, ["topdir"], rootfs, "/sub")
    assert (rootfs / "sub" / "two.txt").read_text() == "2"


def test_hard_links_stay_hard_links(ctx: Path, rootfs: Path) -> None:
    os.link(ctx / "dir" / "one.txt", ctx / "dir" / "sub" / "same.txt")
    do_copy(ctx, ["dir"], rootfs, "/app")
    a, b = (rootfs / "app" / "one.txt").stat(), (rootfs / "app" / "sub" / "same.txt").stat()
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert a.st_ino != (ctx / "dir" / "one.txt").stat().st_ino


def test_fifos_are_copied_sockets_skipped(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    os.mkfifo(ctx / "dir" / "pipe", 0o640)
    sock = socket.socket(socket.AF_UNIX)
    short = Path("/tmp") / f"dyk-{os.getpid()}-{tmp_path.name}.sock"  # AF_UNIX paths are short
    try:
        sock.bind(str(short))
        os.rename(short, ctx / "dir" / "sock")
        do_copy(ctx, ["dir"], rootfs, "/app")
    finally:
        sock.close()
        short.unlink(missing_ok=True)
    assert stat.S_ISFIFO((rootfs / "app" / "pipe").lstat().st_mode)
    assert stat.S_IMODE((rootfs / "app" / "pipe").lstat().st_mode) == 0o640
    assert not (rootfs / "app" / "sock").exists()


@needs_root
def test_device_nodes_are_copied(ctx: Path, rootfs: Path) -> None:
    os.mknod(ctx / "dir" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    do_copy(ctx, ["dir"], rootfs, "/dev")
    st = (rootfs / "dev" / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_excluded_paths_are_not_copied(ctx: Path, rootfs: Path) -> None:
    write(ctx / "dir" / "secret.key", "k")
    write(ctx / "dir" / "sub" / "keep.key", "keep")
    write(ctx / "node_modules" / "x" / "y.js", "y")
    patterns = parse("**/*.key\n!dir/sub/keep.key\nnode_modules\n")
    do_copy(ctx, ["."], rootfs, "/app", excluded=patterns.excluded)
    assert not (rootfs / "app" / "dir" / "secret.key").exists()
    assert (rootfs / "app" / "dir" / "sub" / "keep.key").read_text() == "keep"
    assert not (rootfs / "app" / "node_modules").exists()
    tree = SourceTree(str(ctx), patterns.excluded)
    with pytest.raises(CopyError, match='"/dir/secret.key": not found'):
        expand_sources(tree, ["dir/secret.key"])
    with pytest.raises(CopyError, match=r'"/dir/\*.key": not found'):
        expand_sources(tree, ["dir/*.key"])
    assert expand_sources(tree, ["dir/sub/*"]) == ["dir/sub/keep.key", "dir/sub/two.txt"]
    assert "dir/secret.key" not in expand_sources(tree, ["dir/*"])


def test_an_excluded_directory_holding_an_exception_carries_only_that(ctx: Path, rootfs: Path) -> None:
    write(ctx / "build" / "drop.o", "o")
    write(ctx / "build" / "out" / "app", "app")
    # a bare predicate (no Patterns object to prune with) works the same
    patterns = parse("build\n!build/out/app\n")
    tree = SourceTree(str(ctx), lambda p: patterns.excluded(p))
    assert expand_sources(tree, ["build"]) == ["build"]
    copy(tree, ["build"], str(rootfs), "/b")
    assert snapshot(rootfs / "b") == {"out": "dir", "out/app": b"app"}


# --------------------------------------------------------------------------- escapes


def test_a_dest_symlink_in_the_image_cannot_lead_outside(tmp_path: Path, ctx: Path, rootfs: Path, outside: Path) -> None:
    before = snapshot(outside)
    depth = "/".join([".."] * (len(rootfs.parts) + 2))
    (rootfs / "app").symlink_to(f"/{depth}{outside}")  # "/../../..<outside>"
    (rootfs / "rel").symlink_to(f"{depth}{outside}")
    do_copy(ctx, ["dir"], rootfs, "/app")
    do_copy(ctx, ["a.txt"], rootfs, "/rel/")
    do_copy(ctx, ["b.txt"], rootfs, "/app/secret")
    assert snapshot(outside) == before
    landed = rootfs / outside.relative_to("/")
    assert (landed / "one.txt").read_text() == "1"
    assert (landed / "a.txt").read_text() == "A"
    assert (landed / "secret").read_text() == "B"


def test_a_planted_symlink_at_the_final_name_is_replaced(ctx: Path, rootfs: Path, outside: Path) -> None:
    (rootfs / "app").mkdir()
    (rootfs / "app" / "one.txt").symlink_to(outside / "secret")
    (rootfs / "app" / "sub").symlink_to(outside)  # a directory link: followed, inside the root
    with pytest.raises(CopyError, match="cannot copy to non-directory: /app/sub"):
        do_copy(ctx, ["dir"], rootfs, "/app")  # /<outside> is not a directory of the image
    assert not (outside / "two.txt").exists()
    (rootfs / outside.relative_to("/")).mkdir(parents=True)
    do_copy(ctx, ["dir"], rootfs, "/app")
    assert (outside / "secret").read_text() == "keep"
    assert not (rootfs / "app" / "one.txt").is_symlink()
    assert (rootfs / "app" / "one.txt").read_text() == "1"
    assert not (outside / "two.txt").exists()
    assert (rootfs / outside.relative_to("/") / "two.txt").read_text() == "2"
    assert (rootfs / "app" / "sub").is_symlink()  # the image's link is kept (merged-usr /lib)


def test_a_dest_symlink_to_a_file_is_written_inside(ctx: Path, rootfs: Path, outside: Path) -> None:
    (rootfs / "conf").symlink_to(outside / "secret")  # absolute: /<outside>/secret in the image
    do_copy(ctx, ["a.txt"], rootfs, "/conf")
    assert (outside / "secret").read_text() == "keep"
    assert (rootfs / outside.relative_to("/") / "secret").read_text() == "A"


# --------------------------------------------------------------------------- checksum


def make_tree(base: Path) -> Path:
    write(base / "f.txt", "content", mode=0o644)
    write(base / "d" / "g.bin", b"\x00\x01", mode=0o755)
    (base / "d" / "link").symlink_to("../f.txt")
    (base / "empty").mkdir()
    return base


def digest_of(base: Path, paths: list[str] | None = None, excluded=None) -> str:
    tree = SourceTree(str(base), excluded)
    return checksum(tree, expand_sources(tree, paths or ["."]))


def test_checksum_is_the_same_for_the_same_content(tmp_path: Path) -> None:
    one, two = make_tree(tmp_path / "one"), make_tree(tmp_path / "two")
    os.utime(two / "f.txt", (1, 1))
    os.utime(two / "d", (2, 2))
    if ROOT:
        os.chown(two / "f.txt", 99, 99)
        os.lchown(two / "d" / "link", 5, 5)
    assert digest_of(one) == digest_of(two)
    assert digest_of(one).startswith("sha256:") and len(digest_of(one)) == 71


@pytest.mark.parametrize(
    "change",
    [
        lambda b: (b / "f.txt").write_text("contenT"),
        lambda b: (b / "f.txt").chmod(0o600),
        lambda b: (b / "d" / "g.bin").chmod(0o4755),
        lambda b: (b / "d").chmod(0o700),
        lambda b: (b / "f.txt").rename(b / "F.txt"),
        lambda b: ((b / "d" / "link").unlink(), (b / "d" / "link").symlink_to("../F.txt")),
        lambda b: (b / "empty" / "new").mkdir(),
        lambda b: os.mkfifo(b / "fifo"),
    ],
    ids=["content", "mode", "setuid", "dir-mode", "name", "symlink-target", "new-dir", "fifo"],
)
def test_checksum_changes_with_content_mode_name_and_link_target(tmp_path: Path, change) -> None:
    base = make_tree(tmp_path / "t")
    before = digest_of(base)
    change(base)
    assert digest_of(base) != before


def test_checksum_follows_a_top_level_symlink_and_hashes_the_rest_as_links(tmp_path: Path) -> None:
    base = make_tree(tmp_path / "t")
    (base / "top").symlink_to("d")
    assert digest_of(base, ["top"]) != digest_of(base, ["d"])  # the matched name is part of it
    assert digest_of(base, ["top"]) == digest_of(base, ["top"])
    before = digest_of(base, ["top"])
    (base / "d" / "g.bin").write_bytes(b"\x00\x02")
    assert digest_of(base, ["top"]) != before  # the target's content, not the link


def test_checksum_skips_excluded_paths(tmp_path: Path) -> None:
    base = make_tree(tmp_path / "t")
    patterns = parse("d/g.bin\n")
    before = digest_of(base, excluded=patterns.excluded)
    (base / "d" / "g.bin").write_bytes(b"changed")
    assert digest_of(base, excluded=patterns.excluded) == before
    (base / "d" / "g.bin").unlink()
    assert digest_of(base, excluded=patterns.excluded) == before


@needs_root
def test_checksum_of_a_stage_tree_includes_owners(tmp_path: Path) -> None:
    base = make_tree(tmp_path / "t")
    tree = SourceTree(str(base), keep_owner=True)
    before = checksum(tree, ["."])
    os.chown(base / "f.txt", 1000, 1000)
    assert checksum(tree, ["."]) != before


# --------------------------------------------------------------------------- memo


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file whose content the checksum reads."""
    seen: list[str] = []
    real = copying._file_sha256

    def counting(path: str) -> str:
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(copying, "_file_sha256", counting)
    return seen


def test_memo_rereads_only_changed_files_across_builds(tmp_path: Path, reads: list[str]) -> None:
    base = make_tree(tmp_path / "t")
    memo_path = str(tmp_path / "state" / "memo.json")
    tree = SourceTree(str(base))
    memo = HashMemo(memo_path)
    first = checksum(tree, ["."], memo)
    assert sorted(reads) == ["f.txt", "g.bin"]
    memo.save()

    reads.clear()
    memo = HashMemo(memo_path)  # the next build
    assert checksum(tree, ["."], memo) == first
    assert reads == []  # a no-op rebuild reads no content

    st = (base / "f.txt").stat()
    (base / "f.txt").write_text("CONTENT")  # same size
    os.utime(base / "f.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = checksum(tree, ["."], memo)
    assert reads == ["f.txt"] and second != first
    memo.save()
    reads.clear()
    assert checksum(tree, ["."], HashMemo(memo_path)) == second and reads == []


def test_memo_file_missing_or_corrupt_is_empty(tmp_path: Path, reads: list[str]) -> None:
    base = make_tree(tmp_path / "t")
    path = tmp_path / "memo.json"
    path.write_text("{not json")
    memo = HashMemo(str(path))
    checksum(SourceTree(str(base)), ["."], memo)
    assert len(reads) == 2
    memo.save()
    data = json.loads(path.read_text())
    assert data["version"] == 1 and len(data["entries"]) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".memo.json")]  # no temp left


def test_memo_keeps_what_the_last_build_touched_plus_a_bounded_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "MEMO_OTHERS", 3)
    path = str(tmp_path / "memo.json")
    base = tmp_path / "t"
    for i in range(6):
        write(base / f"old{i}", f"{i}")
    memo = HashMemo(path)
    checksum(SourceTree(str(base)), ["."], memo)
    memo.save()
    fresh = tmp_path / "u"
    for i in range(4):
        write(fresh / f"new{i}", f"n{i}")
    memo = HashMemo(path)
    checksum(SourceTree(str(fresh)), ["."], memo)
    memo.save()
    entries = json.loads(Path(path).read_text())["entries"]
    names = sorted(k.split("\0")[0].rsplit("/", 1)[-1] for k in entries)
    assert len(entries) == 4 + 3
    assert [n for n in names if n.startswith("new")] == ["new0", "new1", "new2", "new3"]


# --------------------------------------------------------------------------- ADD archives


def compress(kind: str, data: bytes) -> bytes:
    return {"tar": lambda d: d, "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](data)


FILE_ATTRS = {"mode": 0o4755, "uid": 1000, "gid": 1001, "mtime": 1_400_000_000}


@pytest.mark.parametrize("kind", ["tar", "gz", "bz2", "xz"])
def test_add_extracts_archives_by_magic(ctx: Path, rootfs: Path, kind: str) -> None:
    data = tar_bytes(
        ("top/", b"", {"type": tarfile.DIRTYPE, "mode": 0o750, "mtime": 1_500_000_000}),
        ("top/file", b"hello", FILE_ATTRS),
        ("top/link", b"", {"type": tarfile.SYMTYPE, "linkname": "file"}),
        ("top/hard", b"", {**FILE_ATTRS, "type": tarfile.LNKTYPE, "linkname": "top/file"}),  # tar repeats them
        ("implied/parent/x", b"x", {}),
    )
    write(ctx / "payload.bin", compress(kind, data))  # the name says nothing
    do_copy(ctx, ["payload.bin"], rootfs, "/opt", unpack_archives=True)
    top = rootfs / "opt" / "top"
    assert (top / "file").read_text() == "hello"
    st = (top / "file").stat()
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 1_400_000_000
    if ROOT:
        assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert os.readlink(top / "link") == "file"
    assert (top / "hard").stat().st_ino == st.st_ino
    assert stat.S_IMODE(top.stat().st_mode) == 0o750 and top.stat().st_mtime == 1_500_000_000
    assert stat.S_IMODE((rootfs / "opt" / "implied").stat().st_mode) == 0o755
    assert not (rootfs / "opt" / "payload.bin").exists()


@needs_root
def test_add_chown_overrides_the_archive_owners(ctx: Path, rootfs: Path) -> None:
    write(ctx / "a.tar", tar_bytes(("f", b"x", {"uid": 5, "gid": 6})))
    do_copy(ctx, ["a.tar"], rootfs, "/o/", unpack_archives=True, chown=(7, 8))
    assert (os.stat(rootfs / "o" / "f").st_uid, os.stat(rootfs / "o" / "f").st_gid) == (7, 8)


def test_add_copies_what_is_not_an_archive(ctx: Path, rootfs: Path) -> None:
    write(ctx / "notes.tar.gz", "plain text, whatever the name")
    write(ctx / "fake.gz", gzip.compress(b"gzip but not a tar" * 100))
    do_copy(ctx, ["notes.tar.gz", "fake.gz"], rootfs, "/o/", unpack_archives=True)
    assert (rootfs / "o" / "notes.tar.gz").read_text() == "plain text, whatever the name"
    assert gzip.decompress((rootfs / "o" / "fake.gz").read_bytes()).startswith(b"gzip but not")
    write(ctx / "real.tar", tar_bytes(("inside", b"i", {})))
    do_copy(ctx, ["real.tar"], rootfs, "/copied/")  # COPY never unpacks
    assert tarfile.is_tarfile(rootfs / "copied" / "real.tar")


def test_add_refuses_dotdot_entries(ctx: Path, rootfs: Path, outside: Path) -> None:
    before = snapshot(outside)
    write(ctx / "evil.tar", tar_bytes(("ok", b"1", {}), ("../../../outside/pwn", b"x", {})))
    with pytest.raises(CopyError, match="outside extraction root"):
        do_copy(ctx, ["evil.tar"], rootfs, "/x", unpack_archives=True)
    assert snapshot(outside) == before and not (rootfs.parent / "pwn").exists()


def test_add_keeps_absolute_entries_inside(ctx: Path, rootfs: Path, outside: Path) -> None:
    before = snapshot(outside)
    write(ctx / "abs.tar", tar_bytes((f"{outside}/secret", b"overwritten", {}), ("/etc/passwd", b"pw", {})))
    do_copy(ctx, ["abs.tar"], rootfs, "/x", unpack_archives=True)
    assert snapshot(outside) == before
    assert (rootfs / "x" / outside.relative_to("/") / "secret").read_text() == "overwritten"
    assert (rootfs / "x" / "etc" / "passwd").read_text() == "pw"
    assert (rootfs / "etc" / "passwd").read_text().startswith("root:")


def test_add_symlink_then_write_through_it_stays_inside(ctx: Path, rootfs: Path, outside: Path) -> None:
    before = snapshot(outside)
    write(
        ctx / "planted.tar",
        tar_bytes(
            ("evil", b"", {"type": tarfile.SYMTYPE, "linkname": str(outside)}),
            ("evil/secret", b"pwned", {}),
            ("evil/new", b"pwned", {}),
        ),
    )
    do_copy(ctx, ["planted.tar"], rootfs, "/x", unpack_archives=True)
    assert snapshot(outside) == before
    landed = rootfs / "x" / outside.relative_to("/")
    assert (landed / "secret").read_text() == "pwned" and (landed / "new").read_text() == "pwned"

    write(
        ctx / "climb.tar",
        tar_bytes(("up", b"", {"type": tarfile.SYMTYPE, "linkname": "../../../../../../../.."}), ("up/tmp/pwn", b"x", {})),
    )
    with pytest.raises(CopyError, match="points outside extraction root"):
        do_copy(ctx, ["climb.tar"], rootfs, "/y", unpack_archives=True)
    assert snapshot(outside) == before


def test_add_replaces_a_planted_symlink_instead_of_following_it(ctx: Path, rootfs: Path, outside: Path) -> None:
    (rootfs / "x").mkdir()
    (rootfs / "x" / "secret").symlink_to(outside / "secret")
    write(ctx / "a.tar", tar_bytes(("secret", b"new", {})))
    do_copy(ctx, ["a.tar"], rootfs, "/x", unpack_archives=True)
    assert (outside / "secret").read_text() == "keep"
    assert not (rootfs / "x" / "secret").is_symlink() and (rootfs / "x" / "secret").read_text() == "new"


def test_add_hard_links_only_inside(ctx: Path, rootfs: Path, outside: Path) -> None:
    write(ctx / "h.tar", tar_bytes(("h", b"", {"type": tarfile.LNKTYPE, "linkname": "../../outside/secret"})))
    with pytest.raises(CopyError, match="outside extraction root"):
        do_copy(ctx, ["h.tar"], rootfs, "/x", unpack_archives=True)
    write(ctx / "h2.tar", tar_bytes(("h", b"", {"type": tarfile.LNKTYPE, "linkname": str(outside / "secret")})))
    with pytest.raises(CopyError):  # /<outside>/secret is looked up inside, where it is not
        do_copy(ctx, ["h2.tar"], rootfs, "/x", unpack_archives=True)
    assert (outside / "secret").stat().st_nlink == 1


# --------------------------------------------------------------------------- ADD <url>


@pytest.fixture
async def http_server():
    from aiohttp import web

    payload = b"downloaded payload\n" * 1000

    async def file(request: web.Request) -> web.Response:
        return web.Response(body=payload, headers={"Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no")

    app = web.Application()
    app.router.add_get("/files/tool.tar.gz", file)
    app.router.add_get("/", file)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", payload
    finally:
        await runner.cleanup()


async def test_download_with_a_matching_checksum(http_server, tmp_path: Path) -> None:
    base, payload = http_server
    dest = tmp_path / "dl"
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    name, modified = await download(f"{base}/files/tool.tar.gz?x=1", str(dest), good)
    assert name == "tool.tar.gz"
    assert dest.read_bytes() == payload
    assert modified == 1445412480.0
    st = dest.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == 1445412480.0
    name, _ = await download(f"{base}/", str(tmp_path / "root"))
    assert name == "__unnamed__"


async def test_download_with_a_wrong_checksum_leaves_nothing(http_server, tmp_path: Path) -> None:
    base, payload = http_server
    wrong = "sha256:" + "0" * 64
    with pytest.raises(CopyError) as e:
        await download(f"{base}/files/tool.tar.gz", str(tmp_path / "dl"), wrong)
    assert str(e.value) == f"digest mismatch sha256:{hashlib.sha256(payload).hexdigest()}: {wrong}"
    assert list(tmp_path.iterdir()) == []


async def test_download_of_a_missing_url(http_server, tmp_path: Path) -> None:
    base, _ = http_server
    with pytest.raises(CopyError) as e:
        await download(f"{base}/missing", str(tmp_path / "dl"))
    assert str(e.value) == f"failed to load {base}/missing: HTTP 404"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url, name",
    [
        ("https://example.com/a/b/file.txt", "file.txt"),
        ("https://example.com/a/dir/", "dir"),
        ("https://example.com", "__unnamed__"),
        ("https://example.com/", "__unnamed__"),
        ("https://example.com/my%20file", "my file"),
    ],
)
def test_the_name_of_a_download(url: str, name: str) -> None:
    assert copying._url_file_name(url) == name


def test_module_import_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, dockyard.build.copying; print(sorted(m for m in ('aiohttp', 'tarfile', 'typing') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
