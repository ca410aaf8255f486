"""Build progress in BuildKit's plain format (``--progress plain``), or nothing (``quiet``).

    #5 [build 2/4] RUN apt-get update
    #5 0.512 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
    #5 DONE 3.2s

    #6 [build 3/4] COPY tree/ /data/
    #6 CACHED

Each step is a numbered vertex; its output lines carry the seconds since it started. The
last lines of every vertex are kept, so a failure can show what the step said last.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

TAIL_LINES = 10


class Vertex:
    def __init__(self, progress: "Progress", number: int, name: str) -> None:
        self.progress = progress
        self.number = number
        self.name = name
        self.started = time.monotonic()
        self.tail: list[str] = []
        self._partial = b""

    def log(self, data: bytes) -> None:
        """Output of the step: complete lines are printed, the rest waits for its newline."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, text: str) -> None:
        self.tail = (self.tail + [text])[-TAIL_LINES:]
        self.progress.write(f"#{self.number} {time.monotonic() - self.started:.3f} {text}\n")

    def _flush(self) -> None:
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def cached(self) -> None:
        self.progress.write(f"#{self.number} CACHED\n\n")

    def done(self) -> None:
        self._flush()
        self.progress.write(f"#{self.number} DONE {time.monotonic() - self.started:.1f}s\n\n")

    def error(self, message: str) -> None:
        self._flush()
        self.progress.failed = self
        self.progress.write(f"#{self.number} ERROR: {message}\n")


class Progress:
    def __init__(self, out: "TextIO | None") -> None:
        self.out = out          # None: quiet
        self.count = 0
        self.started = time.monotonic()
        self.failed: Vertex | None = None
        self._lock = threading.Lock()   # stages may build concurrently: whole lines, one at a time

    def vertex(self, name: str) -> Vertex:
        with self._lock:
            self.count += 1
            vertex = Vertex(self, self.count, name)
        self.write(f"#{vertex.number} {name}\n")
        return vertex

    def warning(self, text: str) -> None:
        self.write(f"{text}\n")

    def write(self, text: str) -> None:
        if self.out is not None:
            with self._lock:
                self.out.write(text)
                self.out.flush()

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
