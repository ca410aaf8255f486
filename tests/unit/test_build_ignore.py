"""build/ignore.py: .dockerignore patterns as Docker applies them, the file lookup, the walk.

The tables mirror Docker's documentation and moby/patternmatcher's own tests (its
MatchesOrParentMatches table and the filepath.Match table it borrows from Go)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.ignore import IgnoreError, Patterns, find_ignore_file, parse, walk
from dockyard.errors import DockyardError


def excluded(lines: list[str], path: str) -> bool:
    return parse("\n".join(lines)).excluded(path)


# (pattern, path, excluded?) -- patternmatcher's TestMatches, clean paths only (ours never
# end in "/"); "inexact" rows are the ones that match through a parent directory.
SINGLE = [
    ("**", "file", True),
    ("**/", "file", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    (r"a\\", "a\\", True),
    (r"a\*b", "a*b", True),
    # patternmatcher's suffix test: a leading ** before plain text is "ends with"
    ("**file", "dir/myfile", True),
    ("**/file", "dir/myfile", False),
    # Go's filepath.Match table (as patternmatcher runs it, parents included)
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    (r"a\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    (r"[\]a]", "]", True),
    (r"[\-]", "-", True),
    (r"[x\-]", "x", True),
    (r"[x\-]", "-", True),
    (r"[x\-]", "z", False),
    (r"[\-x]", "x", True),
    (r"[\-x]", "-", True),
    (r"[\-x]", "a", False),
    ("*x", "xxx", True),
    # filepath.Match negates with "^" only: "[!a]" is the set {"!", "a"}
    ("[!a]", "!", True),
    ("[!a]", "b", False),
    ("[a-c]?", "b1", True),
    ("[a-c]?", "d1", False),
    ("[a-c]?", "b", False),
    # Docker's documentation
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temporary.txt", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "tempab", False),
    ("temp?", "dir/tempa", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "cmd/app/main.go", True),
    ("**/*.go", "cmd/app/main.gox", False),
    ("docs/**", "docs/a/b.md", True),
    ("docs/**", "docs", False),
    ("docs", "docs/a/b.md", True),  # a directory excludes what is below it
    ("docs", "documents", False),
    ("foo/bar", "foo/bar/baz", True),
    ("foo/bar", "x/foo/bar", False),  # anchored at the context root, unlike .gitignore
    ("bar", "foo/bar", False),
    # cleaning: trailing slash, leading slash, "./", "..", doubled slashes
    ("dir/", "dir", True),
    ("dir/", "dir/file", True),
    ("/foo/bar", "foo/bar", True),
    ("./foo", "foo", True),
    ("a/../b", "b", True),
    ("a/../b", "a/b", False),
    ("/../foo", "foo", True),
    ("a//b/./c", "a/b/c", True),
    ("../foo", "foo", False),  # a relative ".." stays and matches nothing in the context
    ("  spaced  ", "spaced", True),
]


@pytest.mark.parametrize("pattern,path,expected", SINGLE)
def test_single_pattern(pattern: str, path: str, expected: bool) -> None:
    assert excluded([pattern], path) is expected


MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["*", "!src"], "src/app/main.py", False),
    (["*", "!src"], "Makefile", True),
    (["dir", "!dir/keep.txt"], "dir", True),
    (["**", "!**/*.txt"], "a/b/c.txt", False),
    (["*.go"], ".", False),  # the context itself is never excluded
]


@pytest.mark.parametrize("lines,path,expected", MULTI)
def test_last_matching_pattern_wins(lines: list[str], path: str, expected: bool) -> None:
    assert excluded(lines, path) is expected


def test_comments_blank_lines_and_bom() -> None:
    text = "\ufeff# comment\n\n   \n*.log\r\n #notcomment\n!  keep.log  \n"
    pats = parse(text)
    assert pats.excluded("a.log")
    assert not pats.excluded("keep.log")
    assert not pats.excluded("# comment")
    assert pats.excluded("#notcomment")  # "#" counts only in column 1
    assert not parse("").excluded("anything")
    assert not Patterns().excluded("anything")


@pytest.mark.parametrize(
    "bad", ["[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "a\\", "[a-b-c]", "[z-a]", "!", "! ", "ok\n!"]
)
def test_bad_pattern_raises_one_line(bad: str) -> None:
    with pytest.raises(IgnoreError) as info:
        parse(bad)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("invalid excludepatterns: [")
    assert message.endswith(("syntax error in pattern", 'illegal exclusion pattern: "!"'))
    assert isinstance(info.value, DockyardError) and info.value.exit_code == 1


def test_bad_pattern_messages() -> None:
    with pytest.raises(IgnoreError, match=r"^invalid excludepatterns: \[a \[\]: syntax error in pattern$"):
        parse("a\n[\n")
    with pytest.raises(IgnoreError, match=r'^invalid excludepatterns: \[!\]: illegal exclusion pattern: "!"$'):
        parse("!")


def test_may_include_below() -> None:
    assert not parse("dir").may_include_below("dir")  # no exceptions at all
    pats = parse("dir\nbuild\n!dir/keep.txt\n!other/x")
    assert pats.may_include_below("dir")
    assert not pats.may_include_below("build")
    assert not pats.may_include_below("dir/keep.txt")  # the exception is the path itself
    wild = parse("node_modules\n!node_modules/*/README.md\n")
    assert wild.may_include_below("node_modules")
    assert wild.may_include_below("node_modules/pkg")
    assert not wild.may_include_below("vendor")
    assert parse("*\n!**/*.md").may_include_below("anything/below")
    assert parse("*\n!**file").may_include_below("x")


# --------------------------------------------------------------------------- lookup


def test_find_ignore_file_precedence(tmp_path: Path) -> None:
    ctx = tmp_path
    (ctx / "build").mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "build" / "app.Dockerfile").write_text("FROM scratch\n")
    assert find_ignore_file(str(ctx), str(ctx / "Dockerfile")) is None
    (ctx / ".dockerignore").write_text("*\n")
    assert find_ignore_file(str(ctx), str(ctx / "Dockerfile")) == str(ctx / ".dockerignore")
    (ctx / "Dockerfile.dockerignore").write_text("x\n")
    assert find_ignore_file(str(ctx), str(ctx / "Dockerfile")) == str(ctx / "Dockerfile.dockerignore")
    # a Dockerfile in a subdirectory: its own ignore file sits beside it
    sub = str(ctx / "build" / "app.Dockerfile")
    assert find_ignore_file(str(ctx), sub) == str(ctx / ".dockerignore")
    (ctx / "build" / "app.Dockerfile.dockerignore").write_text("y\n")
    assert find_ignore_file(str(ctx), sub) == str(ctx / "build" / "app.Dockerfile.dockerignore")
    # a Dockerfile given relative to the context
    assert find_ignore_file(str(ctx), "build/app.Dockerfile") == str(ctx / "build" / "app.Dockerfile.dockerignore")
    # a directory by that name is not an ignore file
    (ctx / "other.Dockerfile.dockerignore").mkdir()
    assert find_ignore_file(str(ctx), str(ctx / "other.Dockerfile")) == str(ctx / ".dockerignore")


# --------------------------------------------------------------------------- walk


def make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rel)


def test_walk_without_patterns_lists_everything_in_walk_order(tmp_path: Path) -> None:
    make_tree(tmp_path, ["a/x", "a.txt", "b/", "c/d/e"])
    assert list(walk(str(tmp_path), parse(""))) == ["a", "a/x", "a.txt", "b", "c", "c/d", "c/d/e"]


def test_walk_exceptions_inside_excluded_dirs(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        [
            "Dockerfile",
            ".dockerignore",
            "app.py",
            "notes.md",
            "README.md",
            "dir/keep.txt",
            "dir/drop.txt",
            "dir/sub/deep.txt",
            "build/out.bin",
            "node_modules/pkg/index.js",
            "node_modules/pkg/README.md",
            "empty/",
        ],
    )
    text = "*.md\n!README.md\ndir\n!dir/keep.txt\nbuild\nnode_modules\n!node_modules/*/README.md\nDockerfile\n.dockerignore\n"
    pats = parse(text)
    got = list(walk(str(tmp_path), pats, always=("Dockerfile", ".dockerignore")))
    assert got == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "app.py",
        "dir",
        "dir/keep.txt",
        "empty",
        "node_modules",
        "node_modules/pkg",
        "node_modules/pkg/README.md",
    ]
    # without "always" the Dockerfile and the ignore file go like anything else
    assert "Dockerfile" not in list(walk(str(tmp_path), pats))


def test_walk_prunes_dirs_no_exception_can_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, ["big/a", "big/b/c", "dir/keep.txt", "dir/drop", "keep"])
    entered: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str):  # type: ignore[no-untyped-def]
        entered.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    assert list(walk(str(tmp_path), parse("big\ndir\n!dir/keep.txt\n!keep"))) == ["dir", "dir/keep.txt", "keep"]
    assert entered == [".", "dir"]  # "big" was never opened


def test_walk_always_reaches_into_excluded_dirs(tmp_path: Path) -> None:
    make_tree(tmp_path, ["docker/app.Dockerfile", "docker/other", "src/main.c"])
    got = list(walk(str(tmp_path), parse("docker"), always=["./docker/app.Dockerfile"]))
    assert got == ["docker", "docker/app.Dockerfile", "src", "src/main.c"]


def test_walk_lists_symlinks_without_following(tmp_path: Path) -> None:
    make_tree(tmp_path, ["real/file", "outside/secret"])
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "dangling").symlink_to("nowhere")
    got = list(walk(str(tmp_path), parse("outside")))
    assert got == ["dangling", "link", "real", "real/file"]  # nothing listed below "link"
    assert list(walk(str(tmp_path), parse("link\ndangling\noutside"))) == ["real", "real/file"]


def test_walk_many_files(tmp_path: Path) -> None:
    names = [f"d{i}/f{j}.{'log' if j % 2 else 'txt'}" for i in range(50) for j in range(40)]
    make_tree(tmp_path, names)
    got = list(walk(str(tmp_path), parse("**/*.log\n!d7/f1.log")))
    assert len(got) == 50 + 50 * 20 + 1
    assert "d7/f1.log" in got and "d7/f3.log" not in got


def test_patterns_from_lines_checks_them_too() -> None:
    assert Patterns(["*.md", "!README.md"]).excluded("a.md")
    with pytest.raises(IgnoreError, match="syntax error in pattern"):
        Patterns(["ok", "a["])
