""".dockerignore: which file applies, its patterns, and the walk of the build context.

Semantics are Docker's (the CLI's ignore-file reader + moby/patternmatcher, as BuildKit
applies them); this is our own implementation:

- each line is trimmed; ``#`` in column 1 is a comment; ``!`` marks an exception; each
  pattern is cleaned like Go's ``filepath.Clean`` and loses a leading ``/``;
- a pattern is Go ``filepath.Match`` syntax per segment (``*``, ``?``, ``[...]`` with ``^``
  negation, ``\\`` escapes) plus ``**`` for any number of directories, even none;
- a pattern matches a path when it matches the path or any of its parent directories, and the
  last pattern that matches decides (patternmatcher's ``MatchesOrParentMatches``).

Every pattern becomes one regex, ``^<pattern>(?:/.*)?$``: the optional tail is the
parent-directory rule, so a path is tested with one ``fullmatch`` per pattern.
"""

from __future__ import annotations

import os
import re

from dockyard.errors import DockyardError

TYPE_CHECKING = False  # importing typing costs start-up; the annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["BadPattern", "IgnoreError", "Patterns", "find_ignore_file", "parse", "segment_token", "walk"]

_BAD_PATTERN = "syntax error in pattern"  # Go's filepath.ErrBadPattern, word for word
_SPECIAL = frozenset("*?[\\")  # what makes a segment more than a literal in filepath.Match


class IgnoreError(DockyardError):
    """A .dockerignore pattern Docker would refuse."""


class BadPattern(Exception):
    """The pattern is malformed (the caller adds its own wrapping: Docker's, or none)."""


def find_ignore_file(context: str, dockerfile: str) -> str | None:
    """The ignore file for a build: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins
    over ``<context>/.dockerignore``; None when neither exists."""
    dockerfile = os.path.join(context, dockerfile)  # a relative Dockerfile is in the context
    for candidate in (dockerfile + ".dockerignore", os.path.join(context, ".dockerignore")):
        if os.path.isfile(candidate):
            return candidate
    return None


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` on a "/"-separated path (posixpath.normpath keeps "//")."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:  # ".." above a relative start stays; above "/" it vanishes
                out.append(part)
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def read_patterns(text: str) -> list[str]:
    """The pattern lines of an ignore file, as Docker's CLI reads them (``!`` kept in front)."""
    patterns = []
    text = text.removeprefix("\ufeff")  # a UTF-8 BOM at the start is dropped
    for line in text.split("\n"):  # not splitlines(): Go splits on "\n" only
        if line.startswith("#"):  # comments only in column 1, before trimming
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]  # the context is the root: "/foo" means "foo"
        patterns.append("!" + line if invert else line)
    return patterns


def parse(text: str) -> Patterns:
    """Patterns from an ignore file's contents; IgnoreError when one is malformed."""
    return Patterns(read_patterns(text))


class _Pattern:
    __slots__ = ("text", "exception", "fullmatch", "literal_dirs", "all_literal")

    def __init__(self, text: str, exception: bool) -> None:
        self.text = text
        self.exception = exception
        self.fullmatch = re.compile("(?s)" + _translate(text) + "(?:/.*)?").fullmatch
        # The leading whole literal segments: a path this pattern matches starts with them.
        segments = text.split("/")
        literal = []
        for seg in segments:
            if _SPECIAL.intersection(seg):
                break
            literal.append(seg)
        self.literal_dirs = literal
        self.all_literal = len(literal) == len(segments)

    def may_match_below(self, dirs: list[str]) -> bool:
        """Could this pattern match some path strictly below the directory ``dirs``?"""
        lit = self.literal_dirs
        n = min(len(lit), len(dirs))
        if lit[:n] != dirs[:n]:
            return False
        return not self.all_literal or len(lit) > len(dirs)


def _compile(line: str) -> _Pattern:
    line = clean(line.strip())
    exception = line.startswith("!")
    if exception:
        if len(line) == 1:
            raise BadPattern('illegal exclusion pattern: "!"')
        line = line[1:]
    return _Pattern(line, exception)


class Patterns:
    """A compiled .dockerignore: ask it whether a context path is excluded."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        lines = list(lines)
        try:
            self._patterns = [_compile(line) for line in lines if line.strip()]
        except BadPattern as e:
            # Docker: "invalid excludepatterns: [a b]: syntax error in pattern"
            raise IgnoreError(f"invalid excludepatterns: [{' '.join(lines)}]: {e}") from None
        self._exceptions = [p for p in self._patterns if p.exception]

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def excluded(self, path: str) -> bool:
        """Is ``path`` (relative to the context, "/"-separated) left out of the context?"""
        if path in ("", "."):
            return False  # the context itself is never excluded
        matched = False
        for pat in self._patterns:
            # An exclusion only matters while not matched, an exception only once matched.
            if pat.exception != matched:
                continue
            if pat.fullmatch(path):
                matched = not pat.exception
        return matched

    def may_include_below(self, dir_path: str) -> bool:
        """False when nothing below ``dir_path`` can be re-included by an exception, so a
        walker may skip the whole (excluded) directory.

        Sound because a pattern that matches a path only through ``dir_path`` or its
        ancestors also matches ``dir_path`` itself: only exceptions reaching strictly
        below it can make a descendant differ. BuildKit walks such directories too (it gives
        up on pruning when any exception has a wildcard); what is sent is the same."""
        if not self._exceptions:
            return False
        dirs = dir_path.split("/")
        return any(p.may_match_below(dirs) for p in self._exceptions)


def walk(context: str, patterns: Patterns, always: Iterable[str] = ()) -> Iterator[str]:
    """Relative paths of everything the build context sends: files, symlinks (never
    followed) and directories, depth first, each directory's entries sorted by name (the
    order of Go's filepath.Walk), a directory before its contents.

    An excluded directory is still descended when an exception (or an ``always`` path) may
    lie below it; it is listed only if something below it is. ``always`` paths (the
    Dockerfile, the ignore file) are listed even when excluded. OSError propagates."""
    keep = {clean(p) for p in always}
    keep_dirs = {k.rsplit("/", i)[0] for k in keep for i in range(1, k.count("/") + 1)}
    pending: list[str] = []  # excluded directories entered but not listed yet

    def visit(abs_dir: str, rel_dir: str) -> Iterator[str]:
        with os.scandir(abs_dir) as it:
            entries = sorted((e.name, e.path, e.is_dir(follow_symlinks=False)) for e in it)
        for name, abs_path, is_dir in entries:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in keep or not patterns.excluded(rel):
                if pending:  # the excluded directories above it carry it
                    yield from pending
                    pending.clear()
                yield rel
                if is_dir:
                    yield from visit(abs_path, rel)
            elif is_dir and (rel in keep_dirs or patterns.may_include_below(rel)):
                pending.append(rel)
                yield from visit(abs_path, rel)
                if pending and pending[-1] == rel:
                    pending.pop()  # nothing below was listed

    return visit(context, "")


def _translate(pattern: str) -> str:
    """The regex for one cleaned pattern (without the parent-directory tail).

    Follows patternmatcher's compile, including its quirks: ``**`` anywhere means "any
    directories" (``(.*/)?``, eating a following "/") or, at the end, anything at all; a
    leading ``**`` followed by literal text only is a suffix test (``**file`` matches
    ``dir/myfile``). Character classes follow filepath.Match (``[!x]`` is not a negation
    there, ``^`` is)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                start = i
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i == n:
                    out.append(".*")
                elif start == 0 and not _SPECIAL.intersection(pattern[i:]) and "]" not in pattern[i:]:
                    out.append(".*" if pattern[2] != "/" else "(?:.*/)?")
                else:
                    out.append("(?:.*/)?")
                continue
        token, i = segment_token(pattern, i)
        out.append(token)
    return "".join(out)


def segment_token(pattern: str, i: int) -> tuple[str, int]:
    """The regex of the filepath.Match token at ``pattern[i]`` (``*``, ``?``, an escape, a
    character class or a literal) and where the next token starts; BadPattern if malformed."""
    ch = pattern[i]
    if ch == "*":
        return "[^/]*", i + 1
    if ch == "?":
        return "[^/]", i + 1
    if ch == "\\":
        if i + 1 == len(pattern):
            raise BadPattern(_BAD_PATTERN)
        return re.escape(pattern[i + 1]), i + 2
    if ch == "[":
        return _char_class(pattern, i + 1)
    return re.escape(ch), i + 1


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One (possibly escaped) character of a class at ``i`` (filepath.Match's getEsc)."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise BadPattern(_BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise BadPattern(_BAD_PATTERN)
    if i + 1 >= n:  # a class must still be closed after it
        raise BadPattern(_BAD_PATTERN)
    return pattern[i], i + 1


def _class_escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]-^[" else ch


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class starting after its "[": the regex and the index after its "]"."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    members: list[str] = []
    count = 0
    while True:
        if count and i < len(pattern) and pattern[i] == "]":
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        if lo > hi:  # Go's regexp (which Docker compiles this into) refuses it
            raise BadPattern(_BAD_PATTERN)
        members.append(_class_escape(lo) if lo == hi else f"{_class_escape(lo)}-{_class_escape(hi)}")
        count += 1
    return f"[{'^' if negated else ''}{''.join(members)}]", i
