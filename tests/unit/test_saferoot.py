"""saferoot: paths resolved inside a root to a descriptor, by openat2 and by the O_NOFOLLOW
walk (forced with ``USE_OPENAT2 = False``); the copier that walks both trees by descriptor."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from dockyard import saferoot


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(saferoot, "USE_OPENAT2", False)
    else:
        monkeypatch.setattr(saferoot, "USE_OPENAT2", None)
        probe = saferoot.open_root("/")
        try:
            os.close(saferoot.resolve(probe, "/"))
        finally:
            os.close(probe)
        if saferoot.USE_OPENAT2 is not True:
            pytest.skip("this kernel has no openat2")
    return request.param


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): a root with links that aim out of it, and a host dir they aim at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "secret").write_text("root\n")
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")                     # absolute: the root's /etc
    (root / "up").symlink_to("../../../../../etc")        # climbs: clamped at the root
    (root / "host").symlink_to(str(outside))              # a host path: resolved inside the root
    (root / "chain").symlink_to("abs")
    (root / "loop").symlink_to("loop")
    (root / "file").write_text("f\n")
    (root / "dangling").symlink_to("/made/here")
    return root, outside


def where(fd: int) -> str:
    try:
        return saferoot.real_path(fd)
    finally:
        os.close(fd)


def test_symlinks_stay_inside_the_root(mode: str, tree: tuple[Path, Path]) -> None:
    root, outside = tree
    rfd = saferoot.open_root(root)
    try:
        for path in ("/abs/secret", "up/secret", "/chain/secret", "dir/sub/../../etc/secret", "/../../etc/secret"):
            assert where(saferoot.resolve(rfd, path)) == f"{root}/etc/secret", path
        with pytest.raises(FileNotFoundError):
            saferoot.resolve(rfd, "/host/secret")  # the host's path, looked up in the root
        with pytest.raises(OSError) as loop:
            saferoot.resolve(rfd, "/loop/x")
        assert loop.value.errno == errno.ELOOP
        with pytest.raises(NotADirectoryError):
            saferoot.resolve(rfd, "/file/x")
        assert where(saferoot.resolve(rfd, "/")) == str(root)
        assert where(saferoot.resolve(rfd, "/dir/..")) == str(root)
    finally:
        os.close(rfd)


def test_final_symlink_followed_or_not(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    rfd = saferoot.open_root(root)
    try:
        link = saferoot.resolve(rfd, "/abs", follow=False)
        try:
            assert stat.S_ISLNK(os.fstat(link).st_mode) and os.readlink("", dir_fd=link) == "/etc"
        finally:
            os.close(link)
        with pytest.raises(OSError) as e:
            saferoot.resolve(rfd, "/abs", os.O_RDONLY, follow=False)
        assert e.value.errno == errno.ELOOP
        fd = saferoot.resolve(rfd, "/abs/secret", os.O_RDONLY)
        with os.fdopen(fd) as f:
            assert f.read() == "root\n"
    finally:
        os.close(rfd)


def test_create_through_a_dangling_link_creates_inside(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    rfd = saferoot.open_root(root)
    try:
        os.close(saferoot.mkdirs(rfd, "/made"))
        fd = saferoot.resolve(rfd, "/dangling", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)
        assert (root / "made" / "here").read_text() == "x"
        assert where(saferoot.mkdirs(rfd, "/host/new/deeper")) == f"{root}{tree[1]}/new/deeper"
        assert not (tree[1] / "new").exists()
        assert where(saferoot.make_file(rfd, "/abs/newfile")) == f"{root}/etc/newfile"
        assert (root / "etc" / "newfile").is_file()
        assert where(saferoot.make_file(rfd, "/etc/secret")) == f"{root}/etc/secret"  # an existing one
    finally:
        os.close(rfd)


def test_magic_links_do_not_lead_out(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/self/cwd is a magic link: openat2 refuses it (RESOLVE_NO_MAGICLINKS), the walk
    reads its text and looks that up inside the root; neither reaches the real cwd."""
    (tmp_path / "marker").write_text("cwd\n")
    monkeypatch.chdir(tmp_path)
    rfd = saferoot.open_root("/proc/self")
    try:
        with pytest.raises(OSError) as e:
            os.close(saferoot.resolve(rfd, "cwd/marker"))
        assert e.value.errno in (errno.ELOOP, errno.ENOENT, errno.EXDEV)
    finally:
        os.close(rfd)


def test_resolve_parent_follows_a_final_link(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    rfd = saferoot.open_root(root)
    try:
        pfd, name = saferoot.resolve_parent(rfd, "/chain/secret")
        assert (where(pfd), name) == (f"{root}/etc", "secret")
        (root / "etc" / "tolink").symlink_to("../dir/sub/target")
        pfd, name = saferoot.resolve_parent(rfd, "/etc/tolink")
        assert (where(pfd), name) == (f"{root}/dir/sub", "target")
        pfd, name = saferoot.resolve_parent(rfd, "/")
        assert (where(pfd), name) == (str(root), None)
    finally:
        os.close(rfd)


def test_enosys_falls_back_to_the_walk(tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_openat2(*args: object) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(saferoot, "USE_OPENAT2", None)
    monkeypatch.setattr(saferoot, "_openat2", no_openat2)
    walked = []
    real_walk = saferoot._walk
    monkeypatch.setattr(saferoot, "_walk", lambda *a, **k: walked.append(a[1]) or real_walk(*a, **k))
    root, _ = tree
    rfd = saferoot.open_root(root)
    try:
        assert where(saferoot.resolve(rfd, "/abs/secret")) == f"{root}/etc/secret"
    finally:
        os.close(rfd)
    assert saferoot.USE_OPENAT2 is False and walked == ["/abs/secret"]


def test_descriptors_are_cloexec(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    rfd = saferoot.open_root(root)
    try:
        for fd in (saferoot.resolve(rfd, "/abs/secret", os.O_RDONLY), saferoot.mkdirs(rfd, "/x/y"),
                   saferoot.make_file(rfd, "/x/y/z")):
            assert not os.get_inheritable(fd)
            os.close(fd)
    finally:
        os.close(rfd)


def test_swapped_component_never_leads_out(mode: str, tree: tuple[Path, Path]) -> None:
    """CVE-2018-15664's shape: a component swapped for a symlink to the host's dir while we
    resolve through it, again and again: every answer is inside the root or an error."""
    root, outside = tree
    (root / "dir" / "sub" / "secret").write_text("inside\n")
    stop = threading.Event()

    def swap() -> None:
        real, link, tmp = root / "dir" / "sub", root / "dir" / "link", root / "dir" / "sub.real"
        link.symlink_to(str(outside))
        while not stop.is_set():
            os.rename(real, tmp)
            os.rename(link, real)      # sub is now a symlink to the host dir
            os.rename(real, link)
            os.rename(tmp, real)       # and a directory again

    swapper = threading.Thread(target=swap)
    swapper.start()
    rfd = saferoot.open_root(root)
    seen = set()
    try:
        for _ in range(3000):
            try:
                fd = saferoot.resolve(rfd, "/dir/sub/secret", os.O_RDONLY)
            except OSError:
                seen.add("error")
                continue
            with os.fdopen(fd) as f:
                seen.add(f.read())
    finally:
        stop.set()
        swapper.join()
        os.close(rfd)
    assert "host\n" not in seen and "inside\n" in seen


def test_copy_entry_replaces_links_at_the_destination(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    (src / "d" / "f").chmod(0o640)
    (src / "d" / "l").symlink_to("/etc/passwd")
    os.mkfifo(src / "d" / "p")
    outside = tmp_path / "outside"
    outside.mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "d").symlink_to(str(outside))  # planted: the copy must replace it, not write through it
    sfd = os.open(src / "d", os.O_PATH | os.O_CLOEXEC)
    dfd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        saferoot.copy_entry(sfd, dfd, "d", saferoot.KEEP)
    finally:
        os.close(sfd)
        os.close(dfd)
    assert list(outside.iterdir()) == []
    assert (dst / "d").is_dir() and not (dst / "d").is_symlink()
    assert (dst / "d" / "f").read_text() == "data" and stat.S_IMODE((dst / "d" / "f").stat().st_mode) == 0o640
    assert os.readlink(dst / "d" / "l") == "/etc/passwd"
    assert stat.S_ISFIFO((dst / "d" / "p").lstat().st_mode)
    assert (dst / "d" / "f").stat().st_mtime_ns == (src / "d" / "f").stat().st_mtime_ns


def test_split() -> None:
    assert saferoot.split("/a/b/c") == ("/a/b", "c")
    assert saferoot.split("a") == ("/", "a")
    assert saferoot.split("/") == ("/", None)
    assert saferoot.split("/a/..") == ("/a/..", None)


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_cwd_check_without_getcwd(tmp_path: Path) -> None:
    """Under a seccomp profile that denies getcwd, the check walks ".." instead: a cwd inside
    the root passes, one through a descriptor of a directory outside it does not."""
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    outside = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:  # the child chroots; the test process keeps its root
        code = 0
        try:
            os.chroot(root)
            os.chdir("/a/b")
            code |= 0 if saferoot._reaches_root() else 1
            os.fchdir(outside)
            code |= 2 if saferoot._reaches_root() else 0
        except BaseException:
            code = 4
        os._exit(code)
    os.close(outside)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
