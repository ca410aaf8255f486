"""The lifecycle every test server shares: a temp dir, a free port of 127.0.0.1, a log,
start and wait until ready, stop by PID (and at exit), remove what it made.

A subclass says what to run (``command``, ``env``), what to write first
(``configure``) and how it knows the server is up (``ready``)::

    class Echo(ServerProcess):
        name = "echo"
        def command(self) -> list[str]: ...
        def ready(self) -> bool: ...

    with Echo() as server:
        ...  # server.address, server.port, server.dir, server.logs()
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

ATTEMPTS = 5  # a free port can be taken before the server binds it: try another


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; always reaped."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET path`` on 127.0.0.1:port, or None if nothing answers."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()
    except OSError:
        return None


class ServerProcess:
    """One server process; ``start()``/``stop()`` or use it as a context manager."""

    name = "server"  # in error messages
    dir_prefix = "dockyard-server-"
    log_name = "server.log"
    start_timeout = 20.0

    def __init__(self, port: int | None = None) -> None:
        self.port = port or 0
        self._fixed_port = bool(port)
        self.dir: Path | None = None  # config, data and log; removed by stop()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where the current process's output begins in the log

    # --- what subclasses provide ---

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def configure(self) -> None:
        """Write what the process reads (called before every launch: the port may change)."""

    def ready(self) -> bool:
        """The process serves (checked every 50 ms while it starts)."""
        raise NotImplementedError

    def check(self) -> None:
        """Refuse to start, with a clear error, when something the server needs is missing."""

    # --- what tests use ---

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self.dir / self.log_name if self.dir is not None else None

    def logs(self) -> str:
        path = self.log_path
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def new_logs(self) -> str:
        """The output of the current process only (a restart appends to the log)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    # --- lifecycle ---

    def start(self) -> Self:
        if self.proc is not None:
            return self
        self.check()
        self.dir = Path(tempfile.mkdtemp(prefix=self.dir_prefix))
        atexit.register(self.stop)  # no orphan server if a test run ends early
        try:
            for _attempt in range(ATTEMPTS):
                if not self._fixed_port:
                    self.port = free_port()
                self._launch()
                if self._wait_ready():
                    return self
                if self._fixed_port or "address already in use" not in self.new_logs().lower():
                    break
            raise RuntimeError(f"{self.name} did not start on {self.address}:\n{self.logs()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Stop the process and start it again on the same port and data."""
        terminate(self.proc)
        self._launch()
        if not self._wait_ready():
            raise RuntimeError(f"{self.name} did not restart on {self.address}:\n{self.logs()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (``restart`` brings it back)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Terminate the process (by its PID) and remove its dir; idempotent."""
        proc, self.proc = self.proc, None
        terminate(proc)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ---

    def _launch(self) -> None:
        assert self.dir is not None and self.log_path is not None
        self.configure()
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if self.ready():
                return True
            time.sleep(0.05)
        terminate(self.proc)
        self.proc = None
        return False


class Balancer(ServerProcess):
    """A load balancer (a Debian binary) on a free port of 127.0.0.1, round-robin over
    ``upstreams`` (``host:port`` each): ``testing.nginx`` and ``testing.haproxy``."""

    binary_name = ""   # the executable, looked up on PATH

    def __init__(self, upstreams: list[str], *, workers: int | None = None, binary: str | None = None,
                 fail_timeout: float = 2.0) -> None:
        super().__init__()
        self.upstreams = list(upstreams)
        self.workers = workers or max(1, min(os.cpu_count() or 1, 4))
        self.fail_timeout = fail_timeout   # seconds an upstream that refused a connection sits out
        self.binary = binary or shutil.which(self.binary_name) or f"/usr/sbin/{self.binary_name}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def check(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"{self.binary} not found: apt-get install {self.binary_name}")

    def ready(self) -> bool:
        return http_status(self.port, "/healthz") == 200
