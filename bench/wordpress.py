"""Benchmark: the WordPress lab (MariaDB, WordPress on Apache + mod_php, Nginx in front) on
dockyard vs the same three images on podman, one run.

    .venv/bin/python bench/wordpress.py [--duration 10] [--rounds 3] [--skip-demo]

Parts:
  demo    ``examples/demo.py`` (what ``make demo`` runs: the images, the registry lab, the
          WordPress lab) timed with a fresh DOCKYARD_ROOT ("cold": empty root and build cache;
          the debootstrap tarball of debian:bookworm comes from /var/cache/dockyard-test when
          it is there, and the output says whether it was), then ``demo.py --down`` and the demo
          again ("warm": images and build cache kept). Dockyard only. The warm stack stays up
          for the rest. ``--skip-demo``: images.py and ``examples/wordpress/lab.sh ip`` instead.
  podman  ``dockyard save mariadb:10 wordpress:5 nginx:alpine`` loaded into podman, the same
          three containers run as lab.sh runs them (same env, a volume for the database, db and
          wp found by IP, nginx with the same wp.conf pointing at podman's wp), on podman's
          default network (netavark, bridge podman0, as bench/net.py uses it).
  http    WordPress installed on both through the published port (install.php?step=2), then
          Debian's ``wrk -t2 -c16 -d<duration>s --timeout 10s --latency`` on the front page,
          --rounds rounds interleaved dockyard, podman after a 2 s warm-up each: median
          requests/s and 99% latency (--timeout 10s so that slow PHP answers count in the
          latency instead of dropping out as wrk's 2 s timeouts). CPU used per request (each
          container's cpuacct cgroup, the monitors, the whole machine) is shown beside it.
  memory  the whole stack: every process in the three containers' PID namespaces plus the
          monitors (the parent of each container's init: dockyard's shim, podman's conmon),
          RSS and PSS summed, idle (after the install) and right after each stack's last wrk round.

Targets (issue): requests/s >= 1.0x podman; p99, the demo's cold and warm time and the stack's
memory beside podman's reported.

Everything lives under one temp dir: dockyard's root and runroot, the labs' wp.conf, podman's
--root/--runroot/--tmpdir. Ports are free ones of 127.0.0.1. The host's network state (links,
iptables, sysctls) is saved first and put back at the end as bench/net.py does; podman (crun)
gets the v1 hugetlb mount on this hybrid host if it is missing, removed again afterwards.
Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(BENCH))

from net import (  # noqa: E402  bench/net.py: podman on netavark, the host's network state, publish path
    WRK, HostNet, NetPodman, _interrupted, _listeners, _publish_path)
from run import _hugetlb_fix, _hugetlb_undo, _memory, _mounts_below, _parent, sh  # noqa: E402

from dockyard.fsutil import remove_cgroup  # noqa: E402
from dockyard.testing import debian  # noqa: E402
from dockyard.testing.servers import free_port  # noqa: E402

ROLES = ("db", "wp", "ng")
WHAT = {"db": "mariadb:10", "wp": "wordpress:5", "ng": "nginx:alpine"}
DB_ENV = {"MARIADB_DATABASE": "db", "MARIADB_USER": "wp", "MARIADB_PASSWORD": "123", "MARIADB_ROOT_PASSWORD": "123"}
WP_ENV = {"WORDPRESS_DB_USER": "wp", "WORDPRESS_DB_PASSWORD": "123", "WORDPRESS_DB_NAME": "db"}
INSTALL = {"weblog_title": "WP Lab", "user_name": "admin", "admin_password": "Lab-Passw0rd!",
           "admin_password2": "Lab-Passw0rd!", "pw_weak": "1", "admin_email": "admin@example.com",
           "blog_public": "0", "Submit": "Install WordPress", "language": ""}
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the two stacks

class Stack:
    """One engine's WordPress lab: its CLI, container names, published port, init PIDs."""

    name = ""
    env: dict[str, str]
    port: int
    names: dict[str, str]

    def cli(self, *args: str) -> list[str]:
        raise NotImplementedError

    def init_pids(self) -> dict[str, int]:
        return {role: int(sh(self.cli("inspect", "-f", "{{.State.Pid}}", name), self.env).strip())
                for role, name in self.names.items()}

    def ip(self, name: str) -> str:
        return sh(self.cli("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name), self.env).strip()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class DockyardStack(Stack):
    name = "dockyard"

    def __init__(self, base: Path) -> None:
        self.base = base / "dockyard"
        self.lab = base / "lab"
        self.cgroup = f"dockyard-bench-wp-{os.getpid()}"
        candidates = [ROOT / ".venv" / "bin" / "dockyard", Path(sys.executable).parent / "dockyard"]
        found = [c for c in candidates if c.exists()]
        self.exe = str(found[0]) if found else shutil.which("dockyard") or "dockyard"
        self.port = free_port()
        self.registry_port = free_port()
        while self.registry_port == self.port:
            self.registry_port = free_port()
        self.env = {**os.environ, "DOCKYARD_ROOT": str(self.base / "root"),
                    "DOCKYARD_RUNROOT": str(self.base / "run"), "DOCKYARD_CGROUP_PARENT": self.cgroup,
                    "HTTP_PORT": str(self.port), "REGISTRY_PORT": str(self.registry_port),
                    "LAB_DIR": str(self.lab), "DOCKYARD": self.exe}
        self.names = {role: role for role in ROLES}  # lab.sh's names
        self.bridges: set[str] = set()

    def cli(self, *args: str) -> list[str]:
        return [self.exe, *args]

    def demo(self, label: str) -> dict[str, Any]:
        """examples/demo.py, timed; its output kept in <base>/demo-<label>.log."""
        log = self.base.parent / f"demo-{label}.log"
        start = time.perf_counter()
        with open(log, "wb") as out:
            result = subprocess.run([sys.executable, str(EXAMPLES / "demo.py")], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=3600)
        seconds = time.perf_counter() - start
        text = log.read_text(errors="replace")
        if result.returncode != 0:
            raise RuntimeError(f"demo ({label}) exited {result.returncode}:\n{text[-2000:]}")
        built = re.search(r"^built: (.*)$", text, re.M)
        images = re.search(r"demo up in \d+ s \(images (\d+) s\)", text)
        return {"seconds": seconds, "images_s": int(images.group(1)) if images else None,
                "built": built.group(1) if built else ""}

    def demo_down(self) -> None:
        sh([sys.executable, str(EXAMPLES / "demo.py"), "--down"], self.env, timeout=300)

    def up_without_demo(self) -> None:
        for argv in ([sys.executable, str(EXAMPLES / "images.py"), "--progress", "quiet"],
                     [str(EXAMPLES / "wordpress" / "lab.sh"), "ip"]):
            result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=3600)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n"
                                   f"{(result.stdout + result.stderr)[-2000:]}")

    def record_bridges(self) -> None:
        """The host bridges of this root's networks (to tell its leftovers from another root's)."""
        ids = sh(self.cli("network", "ls", "-q"), self.env, check=False).split()
        for nid in ids:
            out = sh(self.cli("network", "inspect", nid), self.env, check=False)
            try:
                options = json.loads(out)[0].get("Options") or {}
            except (ValueError, IndexError, AttributeError):
                continue
            if options.get("com.docker.network.bridge.name"):
                self.bridges.add(options["com.docker.network.bridge.name"])

    def close(self) -> None:
        self.record_bridges()
        sh([sys.executable, str(EXAMPLES / "demo.py"), "--down"], self.env, check=False, timeout=300)
        sh(self.cli("system", "reset", "--force"), self.env, check=False, timeout=300)
        remove_cgroup(self.cgroup)


class PodmanStack(NetPodman, Stack):
    """bench/net.py's podman (private root, cgroupfs, netavark) with the lab's three containers."""

    name = "podman"

    def __init__(self, base: Path) -> None:  # not Podman.__init__: that one imports busybox
        self.base = base / "podman"
        self.lab = self.base / "lab"
        self.env = dict(os.environ)
        self.flags = ["--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                      "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                      "--tmpdir", str(self.base / "tmp")]
        self.port = free_port()
        self.names = {role: f"benchwp-{role}" for role in ROLES}
        self.images: dict[str, str] = {}

    def load(self, archive: Path) -> None:
        sh(self.cli("load", "-i", str(archive)), self.env, timeout=600)
        listed = sh(self.cli("images", "--format", "{{.Repository}}:{{.Tag}}"), self.env).split()
        for role, ref in WHAT.items():
            match = [n for n in listed if n == ref or n.endswith("/" + ref)]
            if not match:
                raise RuntimeError(f"podman load gave no {ref}: {listed}")
            self.images[role] = match[0]

    def up(self, wp_conf: str) -> None:
        """lab.sh's ip variant, on podman: db, wp told db's address, nginx proxying to wp's."""
        env = [a for k, v in DB_ENV.items() for a in ("--env", f"{k}={v}")]
        sh(self.cli("run", "-d", "--name", self.names["db"], *env, "-v", "benchwp-db:/var/lib/mysql",
                    self.images["db"]), self.env)
        _retry("MariaDB on podman", 90, lambda: sh(self.cli("exec", self.names["db"], "mysql", "-u", "wp", "-p123",
                                                            "db", "-e", "SELECT 1"), self.env, timeout=30))
        db_ip = self.ip(self.names["db"])
        env = [a for k, v in {"WORDPRESS_DB_HOST": db_ip, **WP_ENV}.items() for a in ("--env", f"{k}={v}")]
        sh(self.cli("run", "-d", "--name", self.names["wp"], *env, self.images["wp"]), self.env)
        wp_ip = self.ip(self.names["wp"])
        if not db_ip or not wp_ip:
            raise RuntimeError(f"podman gave no IP address: db {db_ip!r}, wp {wp_ip!r}")
        self.lab.mkdir(parents=True, exist_ok=True)
        conf = self.lab / "wp.conf"
        conf.write_text(re.sub(r"proxy_pass http://[^;]+;", f"proxy_pass http://{wp_ip};", wp_conf))
        sh(self.cli("run", "-d", "--name", self.names["ng"], "-p", f"{self.port}:80",
                    "-v", f"{conf}:/etc/nginx/conf.d/default.conf", self.images["ng"]), self.env)
        print(f"  podman: db {db_ip}, wp {wp_ip}, nginx on :{self.port} ({', '.join(self.images.values())})")
        _retry(f"the site on {self.url()}", 60, lambda: _get(self.url(), timeout=10))


# ------------------------------------------------------------------ HTTP

def _retry(what: str, seconds: float, attempt: Any) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return attempt()
        except Exception as e:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {seconds:.0f} s: {e}") from e
            time.sleep(0.5)


def _get(url: str, timeout: float = 30) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode(errors="replace")


def install_wordpress(stack: Stack) -> int:
    """The installer's second step posted through nginx; the size of the front page after it."""
    data = urllib.parse.urlencode(INSTALL).encode()
    request = urllib.request.Request(stack.url("/wp-admin/install.php?step=2"), data=data)
    with urllib.request.urlopen(request, timeout=300) as resp:
        body = resp.read().decode(errors="replace")
    if "Success!" not in body:
        raise RuntimeError(f"{stack.name}: WordPress install did not succeed: {body[:600]}")
    page = _get(stack.url())
    if "WP Lab" not in page:
        raise RuntimeError(f"{stack.name}: the front page is not the installed blog: {page[:600]}")
    return len(page)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(url: str, duration: float, connections: int) -> dict[str, float]:
    out = sh([WRK, "-t2", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency", url],
             timeout=duration + 120)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    count = re.search(r"^\s*(\d+) requests in", out, re.M)
    if not rps or not p99 or not count:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
            "requests": int(count.group(1)), "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}


# ------------------------------------------------------------------ CPU and memory of a stack

def _cgroup_usage_ms(pid: int) -> float | None:
    """CPU time of the cgroup ``pid`` is in (cpuacct on v1, cpu.stat on v2), in ms."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                usage = Path(f"/sys/fs/cgroup/{mount}{path}/cpuacct.usage")
                if usage.exists():
                    return int(usage.read_text()) / 1e6
    for line in lines:
        if line.startswith("0::"):
            stat = Path(f"/sys/fs/cgroup{line[3:]}/cpu.stat")
            if stat.exists():
                for row in stat.read_text().splitlines():
                    if row.startswith("usage_usec "):
                        return int(row.split()[1]) / 1000
    return None


def _proc_cpu_ms(pid: int) -> float:
    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def _machine_cpu_ms() -> tuple[float, float]:
    """(busy, softirq) CPU time of the whole machine so far, in ms."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * 1000 / TICK, softirq * 1000 / TICK


def cpu_snapshot(inits: dict[str, int]) -> dict[str, float]:
    snap: dict[str, float] = {}
    for role, pid in inits.items():
        snap[role] = _cgroup_usage_ms(pid) or 0.0
    snap["monitors"] = sum(_proc_cpu_ms(_parent(pid)) for pid in inits.values())
    snap["machine"], snap["softirq"] = _machine_cpu_ms()
    return snap


def _pid_ns_members(init: int) -> list[int]:
    ns = os.readlink(f"/proc/{init}/ns/pid")
    if ns == os.readlink("/proc/self/ns/pid"):
        raise RuntimeError(f"PID {init} shares the host's PID namespace")
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    members.append(int(entry))
            except OSError:
                continue
    return members


def stack_memory(stack: Stack, inits: dict[str, int]) -> dict[str, Any]:
    """RSS and PSS (MiB) of each container's processes, of the monitors, and of anything else
    holding the published port (a userland proxy), summed."""
    parts: dict[str, dict[str, Any]] = {}
    seen: set[int] = set()

    def add(part: str, pids: list[int]) -> None:
        entry = parts.setdefault(part, {"rss": 0.0, "pss": 0.0, "procs": 0, "names": []})
        for pid in pids:
            if pid in seen:
                continue
            try:
                name, rss, pss = _memory(pid)
            except OSError:
                continue  # gone meanwhile
            seen.add(pid)
            entry["rss"] += rss
            entry["pss"] += pss
            entry["procs"] += 1
            if name not in entry["names"]:
                entry["names"].append(name)

    for role, init in inits.items():
        add(role, _pid_ns_members(init))
    add("monitors", [_parent(pid) for pid in inits.values()])
    holders = [int(h[h.rindex("(") + 1:-1]) for h in _listeners(stack.port)]
    add("port holders", [pid for pid in holders if pid not in seen])
    containers = {k: sum(parts[r][k] for r in ROLES) for k in ("rss", "pss", "procs")}
    total = {k: containers[k] + parts["monitors"][k] + parts["port holders"][k] for k in ("rss", "pss", "procs")}
    return {"parts": parts, "containers": containers, "total": total}


# ------------------------------------------------------------------ the load

def measure_http(stacks: list[Stack], inits: dict[str, dict[str, int]], rounds: int, duration: float,
                 connections: int, after_load: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """wrk rounds, interleaved; each stack's memory taken into ``after_load`` right after its own
    last round (Apache lets idle children go about one a second: a stack measured later would
    look smaller)."""
    results: dict[str, dict[str, Any]] = {s.name: {"rounds": []} for s in stacks}
    for s in stacks:  # warm-up
        _wrk(s.url(), 2, connections)
    for n in range(rounds):
        for s in stacks:
            before = cpu_snapshot(inits[s.name])
            r = _wrk(s.url(), duration, connections)
            after = cpu_snapshot(inits[s.name])
            per_request = {k: (after[k] - before[k]) / max(r["requests"], 1) for k in before}
            r["cpu_ms_per_req"] = per_request
            results[s.name]["rounds"].append(r)
            print(f"  round {n + 1} {s.name:<9} {r['rps']:>7.1f} req/s  p99 {r['p99_ms']:>7.1f} ms"
                  f"  CPU ms/req: ng {per_request['ng']:.1f} wp {per_request['wp']:.1f} db {per_request['db']:.1f}"
                  f" monitors {per_request['monitors']:.2f} machine {per_request['machine']:.1f}"
                  + (f"  {r['errors']} errors" if r["errors"] else ""), flush=True)
            if n == rounds - 1:
                after_load[s.name] = stack_memory(s, inits[s.name])
    for s in stacks:
        rs = results[s.name]["rounds"]
        results[s.name].update(
            rps=statistics.median(r["rps"] for r in rs), p99_ms=statistics.median(r["p99_ms"] for r in rs),
            errors=sum(r["errors"] for r in rs),
            cpu_ms_per_req={k: statistics.median(r["cpu_ms_per_req"][k] for r in rs) for k in rs[0]["cpu_ms_per_req"]})
    return results


# ------------------------------------------------------------------ report

def _split_differences(lines: list[str], mine: set[str]) -> tuple[list[str], list[str]]:
    """HostNet's differences: (this run's, another dockyard root's). Other dockyard roots (tests,
    a lab) may come and go meanwhile: their tagged rules and their links are theirs unless they
    name one of this root's bridges."""
    ours: list[str] = []
    theirs: list[str] = []
    for line in lines:
        link = re.match(r"link (\S+) (appeared|is gone)$", line)
        if link:
            name, how = link.groups()
            master = re.search(r" master (\S+)", sh(["ip", "-o", "link", "show", "dev", name], check=False))
            if name in mine or (master and master.group(1) in mine):
                ours.append(line)
            elif how == "is gone" or name.startswith(("dockyard", "dy", "dz")):
                theirs.append(line)
            else:
                ours.append(line)
        elif "dockyard" in line and not any(re.search(rf"\b{re.escape(b)}\b", line) for b in mine):
            theirs.append(line)
        else:
            ours.append(line)
    return ours, theirs


def _ratio(mine: float | None, other: float | None) -> str:
    return f"{mine / other:.2f}" if mine and other else "-"


def print_memory(label: str, mem: dict[str, dict[str, Any]]) -> None:
    names = [n for n in ("dockyard", "podman") if n in mem]
    print(f"\nmemory, {label} (MiB)")
    print(f"  {'':<26}" + "".join(f"{n + ' RSS':>14} {n + ' PSS':>12} {'procs':>5}" for n in names)
          + f"{'PSS dy/podman':>15}")
    rows = [*ROLES, "containers", "monitors", "port holders", "total"]
    for row in rows:
        cells = []
        values = {}
        for n in names:
            m = mem[n]
            entry = m["parts"][row] if row in m["parts"] else m[row]
            values[n] = entry["pss"]
            cells.append(f"{entry['rss']:>14.1f} {entry['pss']:>12.1f} {entry['procs']:>5}")
        label_row = {"db": "db (mariadb)", "wp": "wp (apache+php)", "ng": "ng (nginx)",
                     "monitors": "monitors (shim / conmon)"}.get(row, row)
        print(f"  {label_row:<26}" + "".join(cells) + f"{_ratio(values.get('dockyard'), values.get('podman')):>15}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per engine, interleaved")
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections (-c), 2 threads")
    parser.add_argument("--skip-demo", action="store_true",
                        help="no make demo timing: images.py and lab.sh ip bring the stack up")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/wordpress.py needs root", file=sys.stderr)
        return 2
    for tool in (WRK, "podman"):
        if not shutil.which(tool):
            print(f"{tool} is missing (apt-get install {tool})", file=sys.stderr)
            return 2
    # Every timed process runs with bytecode, as an installed package does.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "dockyard")],
                   stdout=subprocess.DEVNULL, check=False)
    signal.signal(signal.SIGTERM, _interrupted)
    host = HostNet()
    if "podman0" in host.links:
        print("podman0 exists: another podman's default network is on it; not run", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-wp-"))
    print(f"temp dir: {base}")
    mounted = False
    dy: DockyardStack | None = None
    pm: PodmanStack | None = None
    demo: dict[str, Any] = {}
    http: dict[str, dict[str, Any]] = {}
    mem_idle: dict[str, dict[str, Any]] = {}
    mem_load: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    page_bytes: dict[str, int] = {}
    failed = False
    try:
        mounted = _hugetlb_fix()
        print("hugetlb (v1, for crun): " + ("mounted for this run, removed at the end" if mounted else
                                             "already there or not needed, left as it is"))
        dy = DockyardStack(base)
        print(f"dockyard: {dy.exe}, root {dy.env['DOCKYARD_ROOT']}")
        if args.skip_demo:
            print("\nimages.py + examples/wordpress/lab.sh ip (--skip-demo)", flush=True)
            dy.up_without_demo()
        else:
            tarball = Path(debian.DEFAULT_CACHE) / debian.TARBALL
            cached = debian._fresh(tarball, debian.MAX_AGE)
            notes["debootstrap_tarball"] = (f"{tarball} cached beforehand (not rebuilt by the cold demo)" if cached
                                            else f"{tarball} missing or stale: the cold demo includes debootstrap")
            print(f"\nmake demo (examples/demo.py), HTTP_PORT={dy.port} REGISTRY_PORT={dy.registry_port}")
            print(f"  debootstrap tarball: {notes['debootstrap_tarball']}", flush=True)
            demo["cold"] = dy.demo("cold")
            print(f"  cold (empty root and build cache): {demo['cold']['seconds']:.1f} s "
                  f"(images {demo['cold']['images_s']} s: {demo['cold']['built']})", flush=True)
            dy.demo_down()
            demo["warm"] = dy.demo("warm")
            print(f"  warm (after demo --down):          {demo['warm']['seconds']:.1f} s "
                  f"(images {demo['warm']['images_s']} s: {demo['warm']['built']})", flush=True)
        page_bytes["dockyard"] = install_wordpress(dy)
        print(f"  dockyard: WordPress installed on {dy.url()}", flush=True)

        print("\npodman: the same images (dockyard save | podman load), the same containers", flush=True)
        pm = PodmanStack(base)
        archive = base / "lab.tar"
        sh(dy.cli("save", *WHAT.values(), "-o", str(archive)), dy.env, timeout=600)
        pm.load(archive)
        archive.unlink()
        pm.up((dy.lab / "wp.conf").read_text())
        page_bytes["podman"] = install_wordpress(pm)
        print(f"  podman: WordPress installed on {pm.url()} (network backend {pm.backend()})", flush=True)

        stacks: list[Stack] = [dy, pm]
        for s in stacks:
            notes[f"{s.name}_publish"] = _publish_path(s.port, s)  # type: ignore[arg-type]
            print(f"  {s.name} publishes :{s.port} by {notes[f'{s.name}_publish']}; "
                  f"front page {page_bytes[s.name]} bytes")
        inits = {s.name: s.init_pids() for s in stacks}
        mem_idle = {s.name: stack_memory(s, inits[s.name]) for s in stacks}

        print(f"\nwrk -t2 -c{args.connections} -d{args.duration:g}s --timeout 10s --latency <front page>: "
              f"{args.rounds} rounds, interleaved, after a 2 s warm-up each", flush=True)
        http = measure_http(stacks, inits, args.rounds, args.duration, args.connections, mem_load)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - report, clean up, then what was measured
        print(f"benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
        failed = True
    finally:
        print("\nclean-up", flush=True)
        for stack in (pm, dy):
            if stack is not None:
                try:
                    stack.close()
                except Exception as ex:  # noqa: BLE001
                    print(f"{stack.name}: clean-up failed: {ex}", file=sys.stderr)
        if mounted:
            _hugetlb_undo()
        for point in _mounts_below(base):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)
        left, others = _split_differences(host.restore(), dy.bridges if dy else set())
        if others:
            print("changed meanwhile by another dockyard root (not this run's, left alone):")
            for line in others:
                print(f"  {line}")
        if left:
            print("host network state NOT as it was:", file=sys.stderr)
            for line in left:
                print(f"  {line}", file=sys.stderr)
        else:
            print("host network state restored (links, iptables, ip6tables, sysctls as before); "
                  f"{base} removed")

    if mem_idle:
        print_memory("idle, after the install", mem_idle)
    if mem_load:
        print_memory("right after each stack's last wrk round", mem_load)
    if http:
        print("\nCPU ms per request (medians)   " + "".join(f"{n:>10}" for n in http))
        for key in ("ng", "wp", "db", "monitors", "machine", "softirq"):
            print(f"  {key:<29}" + "".join(f"{http[n]['cpu_ms_per_req'][key]:>10.2f}" for n in http))

    print(f"\n{'':<34} {'dockyard':>9} {'podman':>9} {'dy/podman':>10}  target")

    def row(label: str, values: dict[str, float | None], fmt: str, target: str) -> None:
        cells = [format(values[n], fmt) if values.get(n) is not None else "-" for n in ("dockyard", "podman")]
        print(f"{label:<34} {cells[0]:>9} {cells[1]:>9} {_ratio(values.get('dockyard'), values.get('podman')):>10}  "
              f"{target}")

    row("requests/s (median)", {k: v["rps"] for k, v in http.items()}, ".1f", ">= 1.00")
    row("p99 latency ms (median)", {k: v["p99_ms"] for k, v in http.items()}, ".0f", "(lower is better)")
    for label in ("cold", "warm"):
        if label in demo:
            row(f"make demo {label} (s)", {"dockyard": demo[label]["seconds"]}, ".1f", "(info)")
    for label, mem in (("idle", mem_idle), ("after load", mem_load)):
        if mem:
            row(f"stack PSS MiB, {label}", {k: v["total"]["pss"] for k, v in mem.items()}, ".1f", "(info)")
            row(f"stack RSS MiB, {label}", {k: v["total"]["rss"] for k, v in mem.items()}, ".1f", "(info)")
    if "debootstrap_tarball" in notes:
        print(f"cold demo: {notes['debootstrap_tarball']}")

    def mem_json(mem: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {k: {"total": v["total"], "containers": v["containers"],
                    "parts": {p: {x: e[x] for x in ("rss", "pss", "procs", "names")} for p, e in v["parts"].items()}}
                for k, v in mem.items()}

    print(json.dumps({
        "http": {k: {x: v[x] for x in ("rps", "p99_ms", "errors", "cpu_ms_per_req", "rounds")}
                 for k, v in http.items()},
        "rps_ratio": (http["dockyard"]["rps"] / http["podman"]["rps"]) if len(http) == 2 else None,
        "p99_ratio": (http["dockyard"]["p99_ms"] / http["podman"]["p99_ms"]) if len(http) == 2 else None,
        "demo": demo, "memory_idle": mem_json(mem_idle), "memory_after_load": mem_json(mem_load),
        "front_page_bytes": page_bytes, "notes": notes,
        "settings": {"duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
                     "skip_demo": args.skip_demo}}))
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
