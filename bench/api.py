"""The Engine API service beside dockerd: the same docker CLI (Debian's 20.10) drives both.

    .venv/bin/python bench/api.py [--runs 9] [--containers 100] [--batch 20]

Rows (medians, engines interleaved so machine noise lands on both alike):
  run --network none   ``docker run --rm --network none busybox true``
  run (default net)    ``docker run --rm busybox true``: dockyard's bridge, and dockerd's on a
                       bridge made here for it (no iptables: dockerd runs with --iptables=false)
  ps, N containers     ``docker ps -a`` with N created containers on each side
  N concurrent run -d  N ``docker run -d ... sleep`` at once, then ``docker rm -f`` of all:
                       wall time and the number of failed commands
and the idle RSS of the service beside dockerd's (with its containerd).
Targets (issue 15): run <= 0.5x dockerd, ps <= 1.0x, the concurrent batch with 0 errors.

Everything under one temp dir: dockyard's root and its service's socket, and a private dockerd
(own data-root, exec-root, socket); both stopped by PID. Needs root.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import run as runbench  # noqa: E402  (bench/run.py: engines, helpers)

DOCKER = "/usr/bin/docker"
BRIDGE = "dyapibench0"
BRIDGE_CIDR = "172.31.254.1/24"


class Side:
    """One engine as the docker CLI sees it: a DOCKER_HOST and what to stop at the end."""

    name: str
    env: dict[str, str]
    pid: int

    def docker(self, *args: str) -> list[str]:
        return [DOCKER, *args]


class DockyardSide(Side):
    name = "dockyard"

    def __init__(self, base: Path, tar: Path) -> None:
        self.engine = runbench.Dockyard(base, tar)
        self.sock = base / "dockyard" / "docker.sock"
        self.env = {**self.engine.env, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(base / "dockyard" / "docker-config")}
        self.log = open(base / "dockyard" / "service.log", "wb")
        self.service = subprocess.Popen(self.engine.cli("system", "service", "--time", "0", f"unix://{self.sock}"),
                                        env=self.engine.env, stdout=self.log, stderr=self.log, start_new_session=True)
        self.pid = self.service.pid
        _wait_ready(self)

    def close(self) -> None:
        subprocess.run(self.docker("rm", "-f", *_ids(self)), env=self.env, capture_output=True)
        self.service.send_signal(signal.SIGTERM)
        try:
            self.service.wait(30)
        except subprocess.TimeoutExpired:
            self.service.kill()
            self.service.wait()
        self.engine.close()


class DockerdSide(Side):
    name = "dockerd"

    def __init__(self, base: Path, tar: Path) -> None:
        self.base = base / "docker"
        self.base.mkdir()
        self.sock = self.base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.base / "config")}
        _make_bridge()
        self.log = open(self.base / "dockerd.log", "wb")
        self.daemon = subprocess.Popen(
            [runbench.DOCKERD, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.sock}", "--bridge", BRIDGE,
             "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--storage-driver", "overlay2"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        self.pid = self.daemon.pid
        _wait_ready(self)
        runbench.sh(self.docker("import", "--change", 'CMD ["sh"]', str(tar), "busybox"), self.env)

    def close(self) -> None:
        ids = _ids(self)
        if ids:
            subprocess.run(self.docker("rm", "-f", *ids), env=self.env, capture_output=True)
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        for point in runbench._mounts_below(self.base):
            subprocess.run(["umount", "-l", point], check=False)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def _make_bridge() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)   # a crashed run's
    for argv in (["ip", "link", "add", BRIDGE, "type", "bridge"], ["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE],
                 ["ip", "link", "set", BRIDGE, "up"]):
        subprocess.run(argv, check=True)


def _wait_ready(side: Side, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(side.docker("version"), env=side.env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{side.name} did not answer docker version")
        time.sleep(0.2)


def _ids(side: Side) -> list[str]:
    return subprocess.run(side.docker("ps", "-aq"), env=side.env, capture_output=True, text=True).stdout.split()


def _rss_mib(pid: int) -> float:
    """RSS of ``pid`` and its non-container descendants (dockerd's containerd), MiB."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            comm = Path(f"/proc/{current}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("containerd-shim") or comm.startswith("python") and current != pid:
            continue   # per-container monitors are another row's (bench/run.py)
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) / 1024
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        pids += [int(c) for c in children]
    return total


def median_ms(sides: list[Side], runs: int, argv: list[str]) -> dict[str, float]:
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    for side in sides:
        runbench._time(side.docker(*argv), side.env)   # warm-up
    for _ in range(runs):
        for side in sides:
            times[side.name].append(runbench._time(side.docker(*argv), side.env))
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def batch(side: Side, n: int) -> tuple[float, int]:
    """N concurrent ``run -d`` then ``rm -f`` of them: (seconds, failed commands)."""
    def one(i: int) -> int:
        result = subprocess.run(side.docker("run", "-d", "--name", f"batch-{i}", "--network", "none", "busybox",
                                            "sleep", "300"), env=side.env, capture_output=True)
        return result.returncode

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        failures = sum(1 for code in pool.map(one, range(n)) if code != 0)
    removed = subprocess.run(side.docker("rm", "-f", *[f"batch-{i}" for i in range(n)]), env=side.env,
                             capture_output=True)
    elapsed = time.perf_counter() - start
    return elapsed, failures + (1 if removed.returncode != 0 else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dy-bench-api-", dir="/tmp"))
    tar = runbench.busybox_rootfs_tar(base / "busybox.tar")
    hugetlb = runbench._hugetlb_fix()
    sides: list[Side] = []
    try:
        sides.append(DockyardSide(base, tar))
        sides.append(DockerdSide(base, tar))
        time.sleep(2)
        idle = {s.name: _rss_mib(s.pid) for s in sides}
        rows: list[tuple[str, dict[str, float]]] = []
        rows.append(("run --rm --network none", median_ms(sides, args.runs,
                                                          ["run", "--rm", "--network", "none", "busybox", "true"])))
        rows.append(("run --rm (default network)", median_ms(sides, args.runs, ["run", "--rm", "busybox", "true"])))
        for side in sides:
            for i in range(args.containers):
                runbench.sh(side.docker("create", "--network", "none", "busybox", "true"), side.env)
        rows.append((f"ps -a, {args.containers} containers", median_ms(sides, args.runs, ["ps", "-a"])))
        for side in sides:
            subprocess.run(side.docker("rm", "-f", *_ids(side)), env=side.env, capture_output=True)
        batches = {s.name: batch(s, args.batch) for s in sides}
        print(f"\n{'':34} {'dockyard':>10} {'dockerd':>10} {'ratio':>7}")
        for label, ms in rows:
            print(f"{label:34} {ms['dockyard']:8.0f}ms {ms['dockerd']:8.0f}ms {ms['dockyard'] / ms['dockerd']:6.2f}x")
        dy_t, dy_fail = batches["dockyard"]
        dk_t, dk_fail = batches["dockerd"]
        print(f"{f'{args.batch} concurrent run -d + rm -f':34} {dy_t:9.2f}s {dk_t:9.2f}s {dy_t / dk_t:6.2f}x"
              f"   errors: dockyard {dy_fail}, dockerd {dk_fail}")
        print(f"{'idle RSS (service / dockerd+containerd)':34} {idle['dockyard']:7.1f}MiB {idle['dockerd']:7.1f}MiB "
              f"{idle['dockyard'] / idle['dockerd']:6.2f}x")
        return 0
    finally:
        for side in reversed(sides):
            try:
                side.close()
            except Exception as e:  # noqa: BLE001 - the next side still stops
                print(f"closing {side.name}: {e}", file=sys.stderr)
        if hugetlb:
            runbench._hugetlb_undo()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    sys.exit(main())
