"""Benchmark: ``kube play`` of the WordPress lab's YAML, dockyard vs podman 4.3, same file.

    .venv/bin/python bench/kube.py [--runs 5]

The YAML: the lab's compose project (examples/wordpress/compose.yaml: mariadb, wordpress,
nginx) brought up once by ``dockyard compose up -d --wait``, then ``dockyard kube generate
--service --type deployment`` of the project (three Deployments, three Services, the database's
PersistentVolumeClaim), then ``compose down -v``. The images are built by examples/images.py
in dockyard's root and loaded into podman's private root with ``dockyard save | podman load``.

Timed, engines interleaved round by round (one warm-up round first, in which each engine's site
must answer through nginx on the published port), medians of --runs:
  play   ``dockyard kube play FILE``  /  ``podman kube play --network N FILE`` (each returns with every
         container started; N: a bridge with DNS made beforehand, untimed: podman 4.3's default
         network has none, dockyard's play makes its network itself)
  down   ``dockyard kube play --down FILE``  /  ``podman kube down FILE``; podman keeps the claim's
         volume on down: it is removed after the timed part (untimed, in podman's favour)

Target (issue 17): play <= 0.5x podman. Everything under one temp dir (dockyard's root, podman's
root/runroot/tmpdir, its containers.conf and network config dir); the host's links, iptables and
sysctls are saved first and put back at the end as bench/net.py does; podman (crun) gets the v1
hugetlb mount on this hybrid host when it is missing. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(BENCH))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from net import HostNet, _interrupted  # noqa: E402  (bench/net.py: the host's network state)
from run import _hugetlb_fix, _mounts_below, private_podman, remove_base, sh  # noqa: E402

from dockyard.fsutil import remove_cgroup  # noqa: E402
from dockyard.testing.servers import free_port  # noqa: E402

PROJECT = "wpkube"
NETWORK = "wpkube-net"   # podman's pods' network (DNS on): podman 4.3's default one has no DNS
IMAGES = ("mariadb:10", "wordpress:5", "nginx:alpine")


def wait_site(url: str, timeout: float) -> float:
    """Seconds until the URL answers 200 (WordPress's install page), or an error after timeout."""
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if b"WordPress" in response.read():
                    return time.monotonic() - start
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


class Side:
    name = ""
    env: dict[str, str]

    def play(self, file: Path) -> None:
        raise NotImplementedError

    def down(self, file: Path) -> None:
        raise NotImplementedError

    def close(self, file: Path) -> None:
        pass


class Dockyard(Side):
    name = "dockyard"

    def __init__(self, base: Path) -> None:
        self.cgroup = f"dockyard-bench-kube-{os.getpid()}"
        candidates = [ROOT / ".venv" / "bin" / "dockyard", Path(sys.executable).parent / "dockyard"]
        self.exe = str(next((c for c in candidates if c.exists()), "dockyard"))
        self.env = {**os.environ, "DOCKYARD_ROOT": str(base / "dockyard" / "root"),
                    "DOCKYARD_RUNROOT": str(base / "dockyard" / "run"), "DOCKYARD_CGROUP_PARENT": self.cgroup}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "dockyard")],
                       stdout=subprocess.DEVNULL, check=False)

    def cli(self, *args: str) -> list[str]:
        return [self.exe, *args]

    def generate(self, port: int, out: Path) -> None:
        """Images built, the lab up by compose, its project's YAML written to ``out``, the lab down."""
        result = subprocess.run([sys.executable, str(EXAMPLES / "images.py"), "--progress", "quiet"], env=self.env,
                                capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise RuntimeError(f"images.py exited {result.returncode}: {(result.stdout + result.stderr)[-2000:]}")
        compose = self.cli("compose", "-p", PROJECT, "-f", str(EXAMPLES / "wordpress" / "compose.yaml"))
        env = {**self.env, "HTTP_PORT": str(port)}
        sh([*compose, "up", "-d", "--wait"], env, timeout=600)
        try:
            out.write_text(sh(self.cli("kube", "generate", "--service", "--type", "deployment", PROJECT), env))
        finally:
            sh([*compose, "down", "-v"], env, timeout=300)

    def play(self, file: Path) -> None:
        sh(self.cli("kube", "play", str(file)), self.env, timeout=300)

    def down(self, file: Path) -> None:
        sh(self.cli("kube", "play", "--down", str(file)), self.env, timeout=300)

    def close(self, file: Path) -> None:
        sh(self.cli("kube", "play", "--down", str(file)), self.env, check=False, timeout=300)
        sh(self.cli("system", "reset", "--force"), self.env, check=False, timeout=300)
        remove_cgroup(self.cgroup)


class Podman(Side):
    name = "podman"

    def __init__(self, base: Path) -> None:
        self.base = base / "podman"
        self.base.mkdir()
        self.env, self.flags = private_podman(self.base)

    def cli(self, *args: str) -> list[str]:
        return ["podman", *self.flags, *args]

    def load(self, dockyard: Dockyard) -> None:
        archive = self.base / "lab.tar"
        sh(dockyard.cli("save", *IMAGES, "-o", str(archive)), dockyard.env, timeout=600)
        sh(self.cli("load", "-i", str(archive)), self.env, timeout=600)
        archive.unlink()

    def network(self) -> None:
        """A bridge with DNS (aardvark) for the pods, made untimed: dockyard's play makes its own."""
        sh(self.cli("network", "create", NETWORK), self.env)

    def play(self, file: Path) -> None:
        sh(self.cli("kube", "play", "--network", NETWORK, str(file)), self.env, timeout=300)

    def down(self, file: Path) -> None:
        sh(self.cli("kube", "down", str(file)), self.env, timeout=300)

    def why(self) -> str:
        """The containers' states and nginx's last log line: why the site did not answer."""
        states = sh(self.cli("ps", "-a", "--format", "{{.Names}} {{.Status}}"), self.env, check=False)
        names = [line.split()[0] for line in states.splitlines() if line.split() and "nginx" in line.split()[0]]
        log = sh(self.cli("logs", "--tail", "1", names[0]), self.env, check=False) if names else ""
        return ("states: " + "; ".join(states.strip().splitlines()) + f"; nginx's last log line: {log.strip()[-300:]}")

    def volumes(self) -> None:
        """What podman's kube down keeps: the claim's volume (removed untimed)."""
        sh(self.cli("volume", "prune", "-f"), self.env, check=False)

    def close(self, file: Path) -> None:
        sh(self.cli("kube", "down", str(file)), self.env, check=False, timeout=300)
        sh(self.cli("system", "reset", "-f"), self.env, check=False, timeout=300)
        for point in _mounts_below(self.base):
            subprocess.run(["umount", "-l", point], check=False)


def _timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(sides: list[Side], file: Path, port: int, runs: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {s.name: {"play": [], "down": []} for s in sides}
    for round_ in range(runs + 1):
        for side in sides:
            play = _timed(lambda: side.play(file))
            if round_ == 0:
                try:
                    site = wait_site(f"http://127.0.0.1:{port}/", 180 if isinstance(side, Dockyard) else 60)
                    print(f"  warm-up: {side.name}'s site answered {site:.1f} s after its play returned", flush=True)
                except RuntimeError as e:
                    if isinstance(side, Dockyard):
                        raise
                    print(f"  warm-up: {side.name}: {e}; {side.why()}", flush=True)
            down = _timed(lambda: side.down(file))
            if isinstance(side, Podman):
                side.volumes()
            if round_:
                times[side.name]["play"].append(play)
                times[side.name]["down"].append(down)
        if round_:
            print(f"  round {round_}: " + ", ".join(
                f"{n} play {t['play'][-1]:.2f} s down {t['down'][-1]:.2f} s" for n, t in times.items()), flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (after one warm-up round)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/kube.py needs root", file=sys.stderr)
        return 2
    if not shutil.which("podman"):
        print("podman is missing (apt-get install podman)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)
    host = HostNet()
    base = Path(tempfile.mkdtemp(prefix="dy-bench-kube-", dir="/tmp"))
    file = base / "wordpress.yaml"
    port = free_port()
    mounted = False
    sides: list[Side] = []
    times: dict[str, dict[str, list[float]]] = {}
    failed = False
    try:
        mounted = _hugetlb_fix()
        dockyard = Dockyard(base)
        sides.append(dockyard)
        print(f"dockyard: {dockyard.exe}; the lab's images, compose up, kube generate (HTTP_PORT={port})", flush=True)
        dockyard.generate(port, file)
        kinds = [(d["kind"], d["metadata"]["name"]) for d in _documents(file)]
        print(f"  {file.name}: " + ", ".join(f"{k} {n}" for k, n in kinds))
        podman = Podman(base)
        podman.load(dockyard)
        podman.network()
        sides.append(podman)
        print(f"podman: {sh(podman.cli('version', '--format', '{{.Client.Version}}'), podman.env).strip()}, "
              "images loaded from dockyard save", flush=True)
        print(f"\n{args.runs} rounds after a warm-up, interleaved")
        times = measure(sides, file, port, args.runs)
    except Exception as e:  # noqa: BLE001 - report, clean up, then the summary of what was measured
        print(f"benchmark failed: {e}", file=sys.stderr)
        failed = True
    finally:
        for side in reversed(sides):
            try:
                side.close(file)
            except Exception as ex:  # noqa: BLE001 - the next one still closes
                print(f"{side.name}: clean-up failed: {ex}", file=sys.stderr)
        remove_base(base, mounted)
        host.restore_and_report()
    medians = {name: {op: statistics.median(ts) if ts else None for op, ts in ops.items()}
               for name, ops in times.items()}
    if "dockyard" in medians and "podman" in medians:
        print(f"\n{'medians (s)':<12} {'dockyard':>9} {'podman':>9} {'dy/podman':>10}  target")
        for op in ("play", "down"):
            mine, theirs = medians["dockyard"][op], medians["podman"][op]
            if mine is None or theirs is None:
                continue
            print(f"{'kube ' + op:<12} {mine:>9.2f} {theirs:>9.2f} {mine / theirs:>10.2f}  "
                  + ("<= 0.50" if op == "play" else "(shown)"))
    print(json.dumps({"medians_s": medians}))
    return 1 if failed else 0


def _documents(file: Path) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(file.read_text()) if d]


if __name__ == "__main__":
    sys.exit(main())
