"""ComposeError and the source positions that let an error name `file:line`."""

from __future__ import annotations

from typing import Iterable

from dockyard.errors import DockyardError

Path = tuple  # of str (mapping keys) and int (sequence indexes)


class ComposeError(DockyardError):
    """A compose file we cannot use; the message names file:line and the path when known."""


class PathError(ComposeError):
    """A ComposeError about a node of the merged document; the loader adds file:line."""

    def __init__(self, path: Iterable[object], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)


def format_path(path: Iterable[object]) -> str:
    """('services', 'web', 'ports', 0) -> 'services.web.ports[0]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class Positions:
    """Line numbers of every node of the files loaded, by document path.

    Files are searched newest first: a later -f file overrides an earlier one, so the
    value a message is about most likely came from it.
    """

    def __init__(self) -> None:
        self._files: list[tuple[str, dict[Path, int]]] = []

    def add(self, filename: str, marks: dict[Path, int]) -> None:
        self._files.append((filename, marks))

    def lookup(self, path: Iterable[object]) -> tuple[str, int] | None:
        path = tuple(path)
        while True:
            for filename, marks in reversed(self._files):
                if path in marks:
                    return filename, marks[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Iterable[object], message: str) -> ComposeError:
        """A ComposeError 'file:line: message' placed at the node of path (or its nearest parent)."""
        where = self.lookup(path)
        if where is None:
            return ComposeError(message)
        return ComposeError(f"{where[0]}:{where[1]}: {message}")
