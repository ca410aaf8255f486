"""What a pull or push shows while it works, in Docker's words.

Three renderings of one small interface:
- ``Progress``: silent (the library default, and ``-q``).
- ``LineProgress``: one line per status change (``a3ed95caeb02: Pull complete``), what
  Docker prints when stdout is not a terminal; byte counts are not shown.
- ``BarProgress``: rich bars per layer on a terminal. rich is imported only here, lazily.

Every method may be called from the event loop or from the unpack worker thread.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO


class Progress:
    """Silent progress: the interface, and what the library uses when nobody watches."""

    def message(self, text: str) -> None:
        """A line of its own: ``latest: Pulling from library/nginx``, ``Digest: ...``."""

    def status(self, id: str, text: str) -> None:
        """A layer's new state: ``Pulling fs layer``, ``Download complete``, ``Pull complete``."""

    def transfer(self, id: str, action: str, current: int, total: int | None) -> None:
        """Bytes moved so far for a layer (``Downloading``, ``Pushing``)."""

    def close(self) -> None:
        """Stop drawing; safe to call twice."""


# States Docker shows only as a bar: they carry progress, so a log has no line for them.
QUIET_STATUSES = frozenset({"Extracting", "Downloading", "Pushing"})


class LineProgress(Progress):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        self._write(text)

    def status(self, id: str, text: str) -> None:
        if text in QUIET_STATUSES:
            return
        with self._lock:
            if self._last.get(id) == text:
                return
            self._last[id] = text
        self._write(f"{id}: {text}")


class BarProgress(Progress):
    """Per-layer rows with a bar while bytes move; lines printed above them by ``message``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._live = False

    def _ensure(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, ProgressColumn, TextColumn
            from rich.text import Text

            class WhileMoving(ProgressColumn):
                """A column drawn only while the layer's bytes are moving."""

                def __init__(self, inner: ProgressColumn) -> None:
                    super().__init__()
                    self.inner = inner

                def render(self, task: Any) -> Any:
                    return self.inner.render(task) if task.fields.get("bar") else Text("")

            console = Console(file=self.stream, highlight=False)
            self._progress = RichProgress(
                TextColumn("{task.fields[id]}: {task.fields[status]}"),
                WhileMoving(BarColumn(bar_width=40)),
                WhileMoving(DownloadColumn()),
                console=console,
                redirect_stdout=False,
                redirect_stderr=False,
            )
        if not self._live:
            self._progress.start()
            self._live = True
        return self._progress

    def _task(self, id: str) -> Any:
        progress = self._ensure()
        task = self._tasks.get(id)
        if task is None:
            task = progress.add_task("", id=id, status="", bar=False, total=None)
            self._tasks[id] = task
        return task

    def message(self, text: str) -> None:
        with self._lock:
            if self._progress is not None and self._live:
                # Lines after the layers (Digest:, Status:) go below the finished bars.
                self._progress.stop()
                self._live = False
                self._tasks.clear()
                self._progress = None
            print(text, file=self.stream, flush=True)

    def status(self, id: str, text: str) -> None:
        with self._lock:
            task = self._task(id)
            self._progress.update(task, status=text, bar=False)

    def transfer(self, id: str, action: str, current: int, total: int | None) -> None:
        with self._lock:
            task = self._task(id)
            self._progress.update(task, status=action, bar=True, completed=current, total=total)

    def close(self) -> None:
        with self._lock:
            if self._progress is not None and self._live:
                self._progress.stop()
            self._live = False


def for_output(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Bars on a terminal, Docker's plain lines otherwise, nothing with ``-q``."""
    if quiet:
        return Progress()
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return BarProgress(stream) if tty else LineProgress(stream)


def short_id(digest: str) -> str:
    """The 12 hex characters Docker shows for a layer."""
    return digest.partition(":")[2][:12]
