"""Build progress: BuildKit's plain format (``--progress plain``, and ``auto`` off a terminal),
a live view on a terminal (``tty``, and ``auto`` on one), or nothing (``quiet``).

Plain:

    #5 [build 2/4] RUN apt-get update
    #5 0.512 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
    #5 DONE 3.2s

    #6 [build 3/4] COPY tree/ /data/
    #6 CACHED

Each step is a numbered vertex; its output lines carry the seconds since it started. The
last lines of every vertex are kept, so a failure can show what the step said last.
"""

from __future__ import annotations

import _thread   # a lock is all it takes: threading costs a cached build's start-up
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

TAIL_LINES = 10
LIVE_LINES = 6   # output lines the live view shows under a running step


class Vertex:
    def __init__(self, progress: "Progress", number: int, name: str) -> None:
        self.progress = progress
        self.number = number
        self.name = name
        self.started = time.monotonic()
        self.ended: float | None = None
        self.status = ""              # "" running | DONE | CACHED | ERROR
        self.tail: list[str] = []
        self._partial = b""

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def log(self, data: bytes) -> None:
        """Output of the step: complete lines are shown, the rest waits for its newline."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, text: str) -> None:
        self.tail = (self.tail + [text])[-TAIL_LINES:]
        self.progress.line(self, text)

    def _flush(self) -> None:
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def cached(self) -> None:
        self._end("CACHED", "")

    def done(self) -> None:
        self._flush()
        self._end("DONE", "")

    def error(self, message: str) -> None:
        self._flush()
        self.progress.failed = self
        self._end("ERROR", message)

    def _end(self, status: str, message: str) -> None:
        self.ended = time.monotonic()
        self.status = status
        self.progress.end(self, message)


class Progress:
    """The plain printer (``out`` None: quiet)."""

    def __init__(self, out: "TextIO | None") -> None:
        self.out = out
        self.vertices: list[Vertex] = []
        self.started = time.monotonic()
        self.failed: Vertex | None = None
        self._lock = _thread.allocate_lock()   # stages may build concurrently: whole lines, one at a time

    def vertex(self, name: str) -> Vertex:
        with self._lock:
            vertex = Vertex(self, len(self.vertices) + 1, name)
            self.vertices.append(vertex)
        self.write(f"#{vertex.number} {name}\n")
        return vertex

    def line(self, vertex: Vertex, text: str) -> None:
        self.write(f"#{vertex.number} {vertex.elapsed:.3f} {text}\n")

    def end(self, vertex: Vertex, message: str) -> None:
        if vertex.status == "CACHED":
            self.write(f"#{vertex.number} CACHED\n\n")
        elif vertex.status == "DONE":
            self.write(f"#{vertex.number} DONE {vertex.elapsed:.1f}s\n\n")
        else:
            self.write(f"#{vertex.number} ERROR: {message}\n")

    def warning(self, text: str) -> None:
        self.write(f"{text}\n")

    def write(self, text: str) -> None:
        if self.out is not None:
            with self._lock:
                self.out.write(text)
                self.out.flush()

    def close(self) -> None:
        """The build is over (either way)."""

    def failure_report(self, dockerfile_text: str, line: int | None) -> str:
        """BuildKit's box after a failed step: its last output lines and the Dockerfile
        lines around the one to blame."""
        out = []
        if self.failed is not None:
            out.append("------\n")
            out.append(f" > {self.failed.name}:\n")
            out += [f"#{self.failed.number} {t}\n" for t in self.failed.tail]
            out.append("------\n")
        if line:
            lines = dockerfile_text.splitlines()
            first = max(1, line - 2)
            out.append("--------------------\n")
            for n in range(first, min(len(lines), line + 2) + 1):
                mark = ">>>" if n == line else "   "
                out.append(f"{n:>4} | {mark} {lines[n - 1]}\n")
            out.append("--------------------\n")
        return "".join(out)


class LiveProgress(Progress):
    """A live view for a terminal (rich): a header with the elapsed time and steps done, one
    line per step with its state and time, and the last lines of the steps still running."""

    def __init__(self, out: "TextIO") -> None:
        super().__init__(out)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out, highlight=False)
        self.live = Live(console=self.console, refresh_per_second=8, transient=False,
                         get_renderable=self._render)
        self.live.start()

    def line(self, vertex: Vertex, text: str) -> None:
        pass   # kept in vertex.tail; drawn by _render

    def end(self, vertex: Vertex, message: str) -> None:
        pass

    def warning(self, text: str) -> None:
        self.console.print(text, markup=False)

    def close(self) -> None:
        if self.live.is_started:
            self.live.refresh()
            self.live.stop()

    def _render(self) -> "Any":
        from rich.text import Text

        with self._lock:
            vertices = list(self.vertices)
        done = sum(1 for v in vertices if v.status in ("DONE", "CACHED"))
        text = Text()
        state = "Building" if self.failed is None else "Failed"
        text.append(f"[+] {state} {time.monotonic() - self.started:.1f}s ({done}/{len(vertices)})\n", style="bold")
        for v in vertices:
            style = {"ERROR": "red", "": "cyan"}.get(v.status, "blue")
            suffix = " CACHED" if v.status == "CACHED" else f" {v.elapsed:.1f}s"
            text.append(f" => {v.name}{suffix}\n", style=style)
            if v.status in ("", "ERROR"):
                for line in v.tail[-LIVE_LINES:]:
                    text.append(f" => => # {line}\n", style="dim")
        return text


def open_progress(mode: str, out: "TextIO") -> Progress:
    """``mode``: auto | plain | tty | quiet."""
    if mode == "quiet":
        return Progress(None)
    if mode == "tty" or (mode == "auto" and out.isatty()):
        return LiveProgress(out)
    return Progress(out)
