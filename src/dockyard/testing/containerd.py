"""A private containerd (Debian's 1.6) as a test peer: the daemon a Kubernetes node pulls through.

Its own config, root, state dir and gRPC socket under one temp dir; the overlayfs
snapshotter; no CRI plugin. ``ctr(...)`` runs Debian's ``ctr`` against it in the
``dockyard-test`` namespace::

    with PrivateContainerd() as containerd:
        containerd.ctr("images", "pull", "--plain-http", "127.0.0.1:5000/app:1")
        out = containerd.ctr("run", "--rm", "127.0.0.1:5000/app:1", "c1", "cat", "/marker").stdout

Stopping it (by PID) first removes the namespace's tasks and containers, then ends the daemon
and any shim it left (found by our socket's path in their command line), unmounts whatever
is mounted below the dir and removes it. A dir a crashed run left behind (its daemon dead) is
cleaned the same way on the next start.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from dockyard.testing.servers import ServerProcess

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
NAMESPACE = "dockyard-test"
DIR_PREFIX = "dy-ctd-"  # short: the socket path must fit in sun_path (108 bytes)
PID_FILE = "containerd.pid"


def available() -> bool:
    return os.path.exists(CONTAINERD) and os.path.exists(CTR) and os.geteuid() == 0


def _mount_points_below(path: Path) -> list[str]:
    prefix = str(path) + "/"
    points = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)  # deepest first


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (our dir's unique path: our daemon's shims)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _remove_dir(path: Path) -> None:
    """Unmount everything below ``path`` (snapshots, shim bind mounts), then remove it."""
    for point in _mount_points_below(path):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _remove_empty_run_dirs() -> None:
    """The shim keeps runc state and sockets under /run/containerd whatever our state dir is: remove
    what it left there, directory by directory, only when empty (a system containerd keeps its own)."""
    run = Path("/run/containerd")
    for d in (run / "runc" / NAMESPACE, run / "runc", run / "fifo", run / "s", run):
        try:
            d.rmdir()
        except OSError:
            pass


def clean_stale(tmp: Path | None = None) -> None:
    """Remove the dirs of earlier runs whose containerd is gone (a crashed test run)."""
    base = tmp or Path(tempfile.gettempdir())
    for d in base.glob(f"{DIR_PREFIX}*"):
        pid_file = d / PID_FILE
        try:
            pid = int(pid_file.read_text())
            alive = str(d) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            alive = False
            # no pid file yet: a helper may be starting this very moment; leave young dirs alone
            if not pid_file.exists() and time.time() - d.stat().st_mtime < 600:
                continue
        if alive:
            continue
        _kill(_pids_naming(str(d) + "/"))  # its shims
        _remove_dir(d)


class PrivateContainerd(ServerProcess):
    """One containerd process; ``ctr()`` runs the client against it."""

    name = "containerd"
    dir_prefix = DIR_PREFIX
    log_name = "containerd.log"
    start_timeout = 30.0

    @property
    def socket(self) -> Path:
        assert self.dir is not None, "containerd not started"
        return self.dir / "c.sock"

    def check(self) -> None:
        if not available():
            raise FileNotFoundError(f"{CONTAINERD} and {CTR} needed (apt-get install containerd), as root")
        clean_stale()

    def configure(self) -> None:
        assert self.dir is not None
        d = self.dir
        if len(f"{self.socket}.ttrpc") >= 104:  # sun_path is 108 bytes with the terminator
            raise RuntimeError(f"socket path {self.socket} too long for a unix socket: use a shorter TMPDIR")
        config = f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.service.v1.diff-service"]
  default = ["walking"]
"""
        (d / "config.toml").write_text(config)

    def command(self) -> list[str]:
        assert self.dir is not None
        return [CONTAINERD, "--config", str(self.dir / "config.toml"), "--log-level", "info"]

    def env(self) -> dict[str, str]:
        # containerd finds containerd-shim-runc-v2 and runc on PATH
        return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self.dir), "TMPDIR": str(self.dir)}

    def ready(self) -> bool:
        assert self.dir is not None and self.proc is not None
        if not self.socket.exists():
            return False
        if not (self.dir / PID_FILE).exists():
            (self.dir / PID_FILE).write_text(str(self.proc.pid))
        return self.ctr("version", check=False, timeout=10).returncode == 0

    def ctr(self, *args: str, check: bool = True, timeout: float = 180.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``ctr --address SOCK --namespace dockyard-test ARGS``; raises with its output if it
        fails and ``check``."""
        result = subprocess.run([CTR, "--address", str(self.socket), "--namespace", NAMESPACE, *args],
                                capture_output=True, text=True, timeout=timeout, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def stop(self) -> None:
        d = self.dir
        if d is not None and self.proc is not None and self.proc.poll() is None:
            self._remove_tasks()
        if d is not None:
            self._stop_daemon()
            _kill(_pids_naming(str(d) + "/"))  # shims of tasks that would not go
            _remove_dir(d)
            self.dir = None
            _remove_empty_run_dirs()
        super().stop()

    def _stop_daemon(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _remove_tasks(self) -> None:
        tasks = self.ctr("tasks", "ls", "-q", check=False, timeout=30).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False, timeout=30)
        for task in tasks:
            self.ctr("tasks", "delete", "-f", task, check=False, timeout=30)
        containers = self.ctr("containers", "ls", "-q", check=False, timeout=30).stdout.split()
        if containers:
            self.ctr("containers", "delete", *containers, check=False, timeout=30)
