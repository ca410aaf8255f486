"""A private dockerd for tests and benches that compare dockyard with Docker.

It changes nothing on the host: its own data-root, exec-root, pidfile and socket under one
temp dir, no bridge, no iptables, no IP forwarding; stopped by PID and its mounts removed at
the end. Uses Debian's ``/usr/bin/docker`` (20.10, the docker.io package ``make test``
installs): ``/usr/local/bin/docker`` may be a newer client that is not on every machine.

    with PrivateDockerd() as docker:
        docker.cli("import", ...)
        result = docker.run("ps", "-a")   # CompletedProcess, text
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"


def available() -> bool:
    return os.path.exists(DOCKER) and os.path.exists(DOCKERD) and os.geteuid() == 0


class PrivateDockerd:
    def __init__(self) -> None:
        self.base: Path | None = None
        self.daemon: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dy-docker-", dir="/tmp"))  # a socket path must be short
        sock = self.base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(self.base / "config")}
        self._log = open(self.base / "dockerd.log", "wb")
        self.daemon = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge", "none",
             "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--storage-driver", "overlay2"],
            stdout=self._log, stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.run("version").returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                log = self.logs()
                self.stop()
                raise RuntimeError(f"dockerd did not start: {log[-2000:]}")
            time.sleep(0.2)

    def logs(self) -> str:
        assert self.base is not None
        try:
            return (self.base / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def run(self, *args: str, input: str | bytes | None = None, timeout: float = 120.0,
            text: bool = True) -> subprocess.CompletedProcess:
        """``docker ARGS`` against this daemon; never raises on a non-zero exit."""
        return subprocess.run([DOCKER, *args], env=self.env, input=input, capture_output=True, text=text,
                              timeout=timeout)

    def cli(self, *args: str, **kw) -> str:  # noqa: ANN003
        """``docker ARGS``; its stdout, or RuntimeError with its stderr when it fails."""
        result = self.run(*args, **kw)
        if result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        if self.daemon is not None:
            # containers first: dockerd leaves their shims running when it is stopped
            alive = self.daemon.poll() is None
            ids = self.run("ps", "-aq", timeout=30).stdout.split() if alive else []
            if ids:
                self.run("rm", "-f", *ids, timeout=60)
            # user networks next: dockerd leaves their br-<id> bridges on the host when it stops
            networks = self.run("network", "ls", "-q", "--no-trunc", "--filter", "type=custom",
                                timeout=30).stdout.split() if alive else []
            if networks:
                self.run("network", "rm", *networks, timeout=60)
            self.daemon.terminate()
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon = None
            for network_id in networks:   # whatever `network rm` could not take
                subprocess.run(["ip", "link", "del", f"br-{network_id[:12]}"], capture_output=True, check=False)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.base is not None:
            for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
                point = line.split()[4]
                if point.startswith(str(self.base) + "/"):
                    subprocess.run(["umount", "-l", point], check=False)
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
