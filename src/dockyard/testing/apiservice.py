"""``dockyard system service`` for tests and benches: started on a private unix socket with the
caller's dockyard root (``DOCKYARD_ROOT``/``DOCKYARD_RUNROOT`` from the environment), stopped by
PID. ``docker(...)`` runs Debian's docker CLI (20.10, API 1.41) against it.

    with DockyardService() as service:
        service.docker("ps", "-a")        # CompletedProcess, text
        docker.DockerClient(base_url=service.url)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

DOCKER = "/usr/bin/docker"


class DockyardService:
    def __init__(self, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.extra_args = extra_args
        self.base = Path(tempfile.mkdtemp(prefix="dy-api-", dir="/tmp"))   # a socket path must be short
        self.socket = self.base / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.env = {**os.environ, **(env or {}), "DOCKER_HOST": self.url,
                    "DOCKER_CONFIG": str(self.base / "docker-config")}
        self.process: subprocess.Popen | None = None
        self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        self._log = open(self.base / "service.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "system", "service", "--time", "0", *self.extra_args, self.url],
            stdout=self._log, stderr=self._log, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.logs()
                self.stop()
                raise RuntimeError(f"dockyard system service did not start: {log[-2000:]}")
            time.sleep(0.05)

    def ping(self) -> bool:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2)
            sock.connect(str(self.socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
        except OSError:
            return False
        finally:
            sock.close()

    def logs(self) -> str:
        try:
            return (self.base / "service.log").read_text(errors="replace")
        except OSError:
            return ""

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 120.0,
               text: bool = True) -> subprocess.CompletedProcess:
        """``docker ARGS`` through the service; never raises on a non-zero exit."""
        return subprocess.run([DOCKER, *args], env=self.env, input=input, capture_output=True, text=text,
                              timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.base, ignore_errors=True)
