"""The build context: a directory, a tar on stdin (``-``), or only a Dockerfile on stdin.

A directory is used in place (nothing is copied; .dockerignore'd paths are invisible to COPY
through ``excluded``). A tar on stdin is unpacked into a staging dir under ``<root>/tmp``
(flocked while the build runs, so a kill -9 leaves something prune knows is dead).
"""

from __future__ import annotations

import contextlib
import io
import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator

    from dockyard.build.ignore import Patterns
    from dockyard.engine import Engine

MAX_DOCKERFILE = 16 << 20
_TAR_MAGICS = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00")


class ContextError(DockyardError):
    """The context or the Dockerfile cannot be read (docker: "unable to prepare context")."""


class BuildContext:
    def __init__(self, root: str | None, dockerfile_text: str, dockerfile_name: str, ignore: "Patterns") -> None:
        self.root = root                        # None: no context (a Dockerfile from stdin alone)
        self.dockerfile_text = dockerfile_text
        self.dockerfile_name = dockerfile_name  # as messages name it: "Dockerfile"
        self.ignore = ignore

    @property
    def excluded(self) -> "Callable[[str], bool] | None":
        """The .dockerignore predicate for COPY's source tree; None when nothing is ignored.
        It is the Patterns' own method, so the tree walk can also ask it which excluded
        directories may hold an exception (and skip the others)."""
        return self.ignore.excluded if self.ignore else None


@contextlib.contextmanager
def open_context(engine: "Engine", context: str, dockerfile: str | None = None,
                 stdin: "BinaryIO | None" = None) -> "Iterator[BuildContext]":
    from dockyard.build import ignore

    if context == "-":
        if dockerfile == "-":
            raise ContextError("invalid argument: can't use stdin for both build context and dockerfile")
        data_stream = stdin if stdin is not None else _stdin()
        from dockyard.images.importer import Prefixed

        head = data_stream.read(512)
        stream = io.BufferedReader(Prefixed(head, data_stream))  # type: ignore[arg-type]
        if not _is_archive(head):
            text = _decode(head + stream.read(MAX_DOCKERFILE))
            yield BuildContext(None, text, "Dockerfile", ignore.Patterns())
            return
        from dockyard.store.owned import scratch

        with scratch(engine.root).new_dir("context-") as staging:
            root = os.path.join(staging, "context")
            os.mkdir(root, 0o755)
            _unpack(stream, root)
            yield _from_dir(root, dockerfile, stdin, in_context_only=True)
        return
    if "://" in context or context.startswith("git@"):
        raise ContextError(f"unable to prepare context: remote contexts are not supported: {context}")
    root = os.path.abspath(context)
    if not os.path.exists(root):
        raise ContextError(f'unable to prepare context: path "{context}" not found')
    if not os.path.isdir(root):
        raise ContextError(f"unable to prepare context: context must be a directory: {root}")
    yield _from_dir(root, dockerfile, stdin)


def _from_dir(root: str, dockerfile: str | None, stdin: "BinaryIO | None",
              in_context_only: bool = False) -> BuildContext:
    from dockyard.build import ignore

    if dockerfile == "-":
        text = _decode((stdin if stdin is not None else _stdin()).read(MAX_DOCKERFILE + 1))
        name = "Dockerfile"
        rel = "Dockerfile"
    else:
        name = dockerfile or "Dockerfile"
        path = _dockerfile_path(root, name, in_context_only)
        try:
            with open(path, "rb") as f:
                text = _decode(f.read(MAX_DOCKERFILE + 1))
        except IsADirectoryError:
            raise ContextError(f"unable to prepare context: the Dockerfile ({name}) is a directory") from None
        except OSError as e:
            raise ContextError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                               f"lstat {path}: {(e.strerror or str(e)).lower()}") from None
        rel = os.path.relpath(path, root)
        name = os.path.basename(path)   # messages name the file as BuildKit does: Dockerfile:LINE
    ignore_file = ignore.find_ignore_file(root, rel)
    patterns = ignore.Patterns()
    if ignore_file is not None:
        with open(ignore_file, encoding="utf-8", errors="replace") as f:
            patterns = ignore.parse(f.read())
    return BuildContext(root, text, name, patterns)


def _dockerfile_path(root: str, name: str, in_context_only: bool) -> str:
    """``-f`` as docker reads it: relative to the current directory when it exists there,
    else to the context."""
    if os.path.isabs(name):
        return name
    if not in_context_only and os.path.exists(name) and name != "Dockerfile":
        return os.path.abspath(name)
    return os.path.join(root, name)


def _decode(data: bytes) -> str:
    if len(data) > MAX_DOCKERFILE:
        raise ContextError(f"the Dockerfile is larger than {MAX_DOCKERFILE >> 20} MiB")
    return data.decode("utf-8", errors="replace")


def _is_archive(head: bytes) -> bool:
    return head.startswith(_TAR_MAGICS) or head[257:262] == b"ustar"


def _stdin() -> "BinaryIO":
    import sys

    return sys.stdin.buffer


def _unpack(stream: "BinaryIO", root: str) -> None:
    """Unpack a context tar safely (never outside ``root``; owners kept as they come)."""
    from pathlib import Path

    from dockyard.images.importer import decompressed
    from dockyard.store import archive

    try:
        archive.extract(decompressed(stream), Path(root))
    except DockyardError as e:
        raise ContextError(f"unable to prepare context: {e.message}") from None
