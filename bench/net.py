"""Benchmark: container networking, dockyard vs podman vs docker, one run, each on its own bridge.

    .venv/bin/python bench/net.py [--runs 15] [--rounds 3] [--wrk-duration 5] [--skip podman,docker,dockyard,dns]

Operations (engines interleaved so machine noise hits all alike):
  run    ``run --rm busybox true`` on the default bridge network (no --network flag): median
         wall time of the CLI after a warm-up, as bench/run.py measures it
  http   busybox ``httpd`` in a container published with ``-p 127.0.0.1:<free port>:80``, loaded
         from the host by Debian's ``wrk`` (-t2 -c32 --latency): median requests/s and 99%
         latency over --rounds rounds; how each engine carries 127.0.0.1 to the container
         (kernel DNAT or a userland proxy) is printed beside it. busybox httpd listens with a
         backlog of 9 and serves one request per connection: at -c32 its 99% latency is mostly
         SYNs dropped beyond that backlog and retransmitted (~1 s); --connections 8 shows the
         path's own tail (a few ms) at about the same requests/s
  dns    bench/dns.py (container-name lookups/s against podman's aardvark-dns), run after the
         engines here are stopped, its table and JSON line taken into the summary

Targets (issue 10): run <= 0.5x podman and <= 0.5x docker; http req/s >= 1.0x both.

Everything lives under one temp dir: dockyard's root, podman's --root/--runroot (netavark
backend), and a dockerd started here with its own data-root, exec-root, pidfile and socket
but with its default networking this time (docker0, iptables, userland proxy), stopped by PID
at the end. The host's network state is saved first (iptables-save and ip6tables-save, nft
tables, links, forwarding sysctls) and put back at the end, even on failure: the engines'
bridges (docker0, podman0, cni-podman0) are deleted if they were not there before, the
chains and rules that appeared meanwhile are removed in one ``iptables-restore --noflush``
transaction per family (built-in policies reset: dockerd sets FORWARD to DROP), tables that
did not exist are dropped again, sysctls are written back, and the result is compared with
the saved state. Rules tagged dockyard that another dockyard root (a test running meanwhile)
added are left alone and reported. Needs root. Uses Debian's /usr/bin/docker (20.10).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import (  # noqa: E402  bench/run.py: the engines and the timing loop
    DOCKERD, Docker, Dockyard, Engine, Podman, _hugetlb_fix, close_all, measure, remove_base, sh)

from dockyard.testing.images import busybox_rootfs_tar  # noqa: E402

WRK = "wrk"
HTTP_NAME = "bench-http"
HTTPD = "mkdir /www; echo hello > /www/index.html; exec httpd -f -p 80 -h /www"
ENGINE_LINKS = ("docker0", "podman0", "cni-podman0")
SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/route_localnet")
FAMILIES = {"iptables": "ip", "ip6tables": "ip6"}  # command prefix -> nft family of its tables


# ------------------------------------------------------------------ engines with networking

class NetDockyard(Dockyard):
    def run_argv(self) -> list[str]:
        return self.cli("run", "--rm", "busybox", "true")

    def publish_note(self, port: int) -> str:
        return _publish_path(port, self)


class NetPodman(Podman):
    """bench/run.py's podman, on netavark (its default bridge ``podman0``, 10.88.0.0/16)."""

    def cli(self, *args: str) -> list[str]:
        cmd = super().cli(*args)
        return [cmd[0], "--network-backend", "netavark", *cmd[1:]]

    def run_argv(self) -> list[str]:
        return self.cli("run", "--rm", "busybox", "true")

    def backend(self) -> str:
        return sh(self.cli("info", "--format", "{{.Host.NetworkBackend}}"), self.env).strip()

    def publish_note(self, port: int) -> str:
        return _publish_path(port, self)


class NetDocker(Docker):
    """bench/run.py's private dockerd, but with dockerd's default networking: docker0,
    iptables rules, ip forwarding and the userland proxy for published ports."""

    def __init__(self, base: Path, tar: Path) -> None:  # not super().__init__: that one has no bridge
        self.base = base / "docker"
        self.base.mkdir()
        self.sock = self.base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        log = open(self.base / "dockerd.log", "wb")
        self.daemon = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.sock}",
             "--storage-driver", "overlay2"],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(self.cli("version"), env=self.env, capture_output=True).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {self.base / 'dockerd.log'}")
            time.sleep(0.2)
        sh(self.cli("import", "--change", "CMD [\"sh\"]", str(tar), "busybox"), self.env)

    def run_argv(self) -> list[str]:
        return self.cli("run", "--rm", "busybox", "true")

    @staticmethod
    def userland_proxy() -> bool:
        """dockerd's userland-proxy setting: on unless /etc/docker/daemon.json turns it off."""
        try:
            return bool(json.loads(Path("/etc/docker/daemon.json").read_text()).get("userland-proxy", True))
        except (OSError, ValueError):
            return True

    def publish_note(self, port: int) -> str:
        return _publish_path(port, self)

    def close(self) -> None:
        sh(self.cli("rm", "-f", HTTP_NAME), self.env, check=False)
        super().close()


# ------------------------------------------------------------------ host network state

def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def _links() -> list[str]:
    out = sh(["ip", "-o", "link", "show"])
    return sorted(line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if line.strip())


def _nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    out = sh(["nft", "list", "tables"], check=False)
    return {line.strip() for line in out.splitlines() if line.startswith("table ")}


def _parse_save(text: str) -> dict[str, dict[str, Any]]:
    """iptables-save text -> {table: {"chains": {name: policy}, "rules": Counter(rule lines)}}."""
    tables: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), {"chains": {}, "rules": Counter()})
        elif current is None or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current["chains"][name] = policy
        elif line.startswith("-A "):
            current["rules"][line] += 1
    return tables


def _ours_to_keep(text: str) -> bool:
    """A chain or rule another dockyard root made meanwhile (a test running on this host)."""
    return "dockyard" in text.lower()


class HostNet:
    """The host's network state before the engines touch it, and the way back to it."""

    def __init__(self) -> None:
        self.links = _links()
        self.sysctls = {name: _read_sysctl(name) for name in SYSCTLS}
        self.nft = _nft_tables()
        self.saved = {cmd: self._save(cmd) for cmd in FAMILIES}

    @staticmethod
    def _save(cmd: str) -> str:
        if not shutil.which(f"{cmd}-save"):
            return ""
        return sh([f"{cmd}-save"], check=False)

    def restore_and_report(self, lead: str = "") -> None:
        """``restore``, then say whether the host is as it was (what differs goes to stderr)."""
        left = self.restore()
        if left:
            print("host network state NOT as it was:", file=sys.stderr)
            for line in left:
                print(f"  {line}", file=sys.stderr)
        else:
            print(f"{lead}host network state restored (links, iptables, ip6tables, sysctls as before)")

    def restore(self) -> list[str]:
        """Put the saved state back; what still differs afterwards, as lines to print."""
        for link in ENGINE_LINKS:
            if link not in self.links and link in _links():
                subprocess.run(["ip", "link", "del", link], check=False)
        for cmd, family in FAMILIES.items():
            before = _parse_save(self.saved[cmd])
            now = _parse_save(self._save(cmd))
            script = []
            for table, state in now.items():
                old = before.get(table, {"chains": {}, "rules": Counter()})
                new_chains = [c for c in state["chains"] if c not in old["chains"] and not _ours_to_keep(c)]
                lines = []
                for rule, count in state["rules"].items():
                    chain = rule.split()[1]
                    extra = count - old["rules"].get(rule, 0)
                    if extra > 0 and chain not in new_chains and not _ours_to_keep(rule):
                        lines += ["-D " + rule[3:]] * extra
                lines += [f"-F {c}" for c in new_chains] + [f"-X {c}" for c in new_chains]
                for chain, policy in state["chains"].items():
                    if policy != "-":  # a built-in chain: its policy as it was (ACCEPT if the table was not there)
                        want = old["chains"].get(chain, "ACCEPT")
                        if want != policy:
                            lines.append(f"-P {chain} {want}")
                if lines:
                    script += [f"*{table}", *lines, "COMMIT"]
            if script:
                result = subprocess.run([f"{cmd}-restore", "--noflush"], input="\n".join(script) + "\n",
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    print(f"{cmd}-restore failed: {result.stderr.strip()}", file=sys.stderr)
            # tables the engines brought into being go again once nothing is left in them
            after = _parse_save(self._save(cmd))
            for table, state in after.items():
                if f"table {family} {table}" in self.nft or table in before:
                    continue
                if not state["rules"] and all(p in ("ACCEPT",) for p in state["chains"].values()):
                    subprocess.run(["nft", "delete", "table", family, table], check=False)
        for name, value in self.sysctls.items():
            if value is not None and _read_sysctl(name) != value:
                Path("/proc/sys", name).write_text(value + "\n")
        return self.differences()

    def differences(self) -> list[str]:
        out = []
        links = _links()
        out += [f"link {name} appeared" for name in links if name not in self.links]
        out += [f"link {name} is gone" for name in self.links if name not in links]
        for name, value in self.sysctls.items():
            if _read_sysctl(name) != value:
                out.append(f"sysctl {name}: {value} -> {_read_sysctl(name)}")
        for cmd in FAMILIES:
            before, now = _parse_save(self.saved[cmd]), _parse_save(self._save(cmd))
            for table in sorted(set(before) | set(now)):
                old = before.get(table, {"chains": {}, "rules": Counter()})
                new = now.get(table, {"chains": {}, "rules": Counter()})
                if table not in now or table not in before:
                    out.append(f"{cmd} table {table} {'appeared' if table not in before else 'is gone'}")
                for chain in sorted(set(old["chains"]) | set(new["chains"])):
                    if old["chains"].get(chain) != new["chains"].get(chain):
                        out.append(f"{cmd} -t {table} chain {chain}: {old['chains'].get(chain)} -> "
                                   f"{new['chains'].get(chain)}")
                for rule in sorted(set(old["rules"]) | set(new["rules"])):
                    if old["rules"].get(rule, 0) != new["rules"].get(rule, 0):
                        sign = "+" if new["rules"].get(rule, 0) > old["rules"].get(rule, 0) else "-"
                        out.append(f"{cmd} -t {table} {sign} {rule}")
        return out


# ------------------------------------------------------------------ HTTP through a published port

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listeners(port: int) -> list[str]:
    """'comm(pid)' of every process holding a listening TCP socket on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.append(f"{Path(f'/proc/{pid}/comm').read_text().strip()}({pid})")
                    break
        except OSError:
            continue
    return found


def _publish_path(port: int, engine: Engine) -> str:
    """How 127.0.0.1:<port> reaches the container: a userland proxy or kernel DNAT (and who holds the port)."""
    nat = sh(["iptables-save", "-t", "nat"], check=False)
    dnat = [r for r in nat.splitlines() if r.startswith("-A ") and "DNAT" in r and re.search(rf"\b{port}\b", r)]
    holders = _listeners(port)
    proxies = [h for h in holders if "proxy" in h]
    if proxies:
        how = f"userland proxy {', '.join(proxies)}"
    elif dnat:
        how = "kernel DNAT" + (f", port held by {', '.join(holders)}" if holders else "")
    else:
        how = f"no DNAT rule for the port; listening: {', '.join(holders) or 'nobody'}"
    chains = sorted({r.split()[1] for r in dnat})
    return how + (f" (nat chains {', '.join(chains)})" if chains else "")


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.read() == b"hello\n":
                    return
        except Exception as e:  # noqa: BLE001 - not up yet (a proxy may accept and close)
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s: {last}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(url: str, duration: int, threads: int, connections: int) -> dict[str, float]:
    out = sh([WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url], timeout=duration + 60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if not rps or not p99:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}


def measure_http(engines: list[Engine], rounds: int, duration: int, conns: int) -> dict[str, dict[str, Any]]:
    ports = {}
    for e in engines:
        port = _free_port()
        sh(e.cli("run", "-d", "--name", HTTP_NAME, "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD),
           e.env)
        ports[e.name] = port
    results: dict[str, dict[str, Any]] = {}
    for e in engines:
        url = f"http://127.0.0.1:{ports[e.name]}/index.html"
        _wait_http(url)
        results[e.name] = {"port": ports[e.name], "path": e.publish_note(ports[e.name]), "rounds": []}
        print(f"  {e.name}: {url} via {results[e.name]['path']}")
    for e in engines:  # warm-up
        _wrk(f"http://127.0.0.1:{ports[e.name]}/index.html", 1, 2, conns)
    for n in range(rounds):
        for e in engines:
            r = _wrk(f"http://127.0.0.1:{ports[e.name]}/index.html", duration, 2, conns)
            results[e.name]["rounds"].append(r)
            print(f"  round {n + 1} {e.name:<9} {r['rps']:>9.0f} req/s  p99 {r['p99_ms']:>7.2f} ms"
                  + (f"  {r['errors']:.0f} errors" if r["errors"] else ""))
    for e in engines:
        sh(e.cli("rm", "-f", HTTP_NAME), e.env, check=False)
        rs = results[e.name]["rounds"]
        results[e.name].update(rps=statistics.median(r["rps"] for r in rs),
                               p99_ms=statistics.median(r["p99_ms"] for r in rs),
                               errors=sum(r["errors"] for r in rs))
    return results


# ------------------------------------------------------------------ DNS (bench/dns.py)

def run_dns_bench(skip: set[str]) -> dict[str, Any] | None:
    """bench/dns.py in a subprocess (its own engines and clean-up); its output shown, its last
    JSON line returned."""
    script = BENCH / "dns.py"
    if not script.exists():
        print("dns: bench/dns.py is missing (not written yet): no DNS figures")
        return None
    argv = [sys.executable, str(script)]
    source = script.read_text()
    passed = sorted(skip & {"podman", "docker", "dockyard"})
    if passed and "--skip" in source:
        argv += ["--skip", ",".join(passed)]
    print(f"dns: {' '.join(argv[1:])}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    for line in result.stdout.splitlines():
        print(f"  | {line}")
    if result.returncode != 0:
        print(f"dns: bench/dns.py exited {result.returncode}: {result.stderr.strip()[-500:]}")
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return {"exit": result.returncode, **json.loads(line)}
            except ValueError:
                break
    return {"exit": result.returncode}


def _dns_rates(data: dict[str, Any] | None) -> dict[str, float]:
    """Lookups/s per engine from dns.py's JSON, whatever its exact shape: the first mapping of
    engine names to numbers (or to mappings with one number) found."""
    if not data:
        return {}
    engines = ("dockyard", "podman", "docker", "aardvark", "aardvark-dns")

    def number(v: Any) -> float | None:
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, dict):
            for key in ("qps", "lookups_per_s", "rate", "per_s", "rps"):
                if isinstance(v.get(key), (int, float)):
                    return float(v[key])
        return None

    def walk(v: Any) -> dict[str, float]:
        if isinstance(v, dict):
            found = {k: number(x) for k, x in v.items() if k in engines}
            found = {k: x for k, x in found.items() if x is not None}
            if found:
                return found
            for x in v.values():
                sub = walk(x)
                if sub:
                    return sub
        return {}

    rates = walk(data)
    if "podman" not in rates:
        for alias in ("aardvark", "aardvark-dns"):
            if alias in rates:
                rates["podman"] = rates.pop(alias)
    return rates


# ------------------------------------------------------------------ main

def _interrupted(signum: int, frame: object) -> None:
    """A SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so the finally of main restores
    the host; a second one does not cut that clean-up short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _ratio(mine: float | None, other: float | None) -> str:
    return f"{mine / other:.2f}" if mine and other else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed run --rm per engine (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per engine")
    parser.add_argument("--wrk-duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections (-c), 2 threads")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: dockyard,podman,docker,dns")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/net.py needs root", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    # Every timed process runs with bytecode, as an installed package does (MACHINE.md, Python).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not shutil.which(WRK):
        print("wrk: installing (apt-get install wrk)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL, check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if not shutil.which(WRK):
            print("wrk is missing and could not be installed", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _interrupted)
    host = HostNet()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-net-"))
    mounted = _hugetlb_fix() if "podman" not in skip else False
    engines: list[Engine] = []
    notes: dict[str, str] = {}
    run_ms: dict[str, float] = {}
    http: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        tar = busybox_rootfs_tar(base / "busybox.tar")
        makers: list[tuple[str, Callable[[], Engine] | None, str]] = []
        if "dockyard" not in skip:
            makers.append(("dockyard", lambda: NetDockyard(base, tar), ""))
        if "podman" not in skip:
            why = ("not installed (apt-get install podman)" if not shutil.which("podman") else
                   "podman0 exists: another podman's default network is on it" if "podman0" in host.links else "")
            makers.append(("podman", lambda: NetPodman(base, tar), why))
        if "docker" not in skip:
            why = ("not installed (apt-get install docker.io)" if not Path(DOCKERD).exists() else
                   "docker0 exists: another dockerd owns it" if "docker0" in host.links else "")
            makers.append(("docker", lambda: NetDocker(base, tar), why))
        for name, make, why in makers:
            if why:
                print(f"{name}: {why}; skipped")
                continue
            try:
                engine = make()
            except Exception as e:  # noqa: BLE001 - one engine failing must not hide the others
                print(f"{name}: set-up failed, skipped: {e}")
                continue
            try:  # the default network must work: one run decides whether this engine takes part
                sh(engine.run_argv(), engine.env, timeout=60)
            except Exception as e:  # noqa: BLE001
                print(f"{name}: run on the default network failed, skipped: {e}")
                engine.close()
                continue
            engines.append(engine)
        for e in engines:
            if isinstance(e, NetPodman):
                notes["podman"] = f"network backend {e.backend()}, default network podman (bridge podman0)"
            elif isinstance(e, NetDocker):
                proxy = "on" if e.userland_proxy() else "off"
                notes["docker"] = f"dockerd defaults: bridge docker0, iptables on, userland-proxy {proxy}"
            elif isinstance(e, NetDockyard):
                notes["dockyard"] = "default network bridge"
        for name, note in notes.items():
            print(f"{name}: {note}")
        if not engines:
            print("no engine could be set up", file=sys.stderr)
        else:
            print(f"\nrun --rm busybox true (default network): {len(engines)} engines, {args.runs} runs each, "
                  "interleaved; medians in ms")
            run_ms = measure(engines, args.runs, lambda e: e.run_argv())
            for name, ms in run_ms.items():
                print(f"  {name:<9} {ms:>7.0f} ms")
            print(f"\nHTTP via -p 127.0.0.1:<port>:80 to busybox httpd: wrk -t2 -c{args.connections} "
                  f"-d{args.wrk_duration}s, {args.rounds} rounds, interleaved")
            http = measure_http(engines, args.rounds, args.wrk_duration, args.connections)
    except Exception as e:  # noqa: BLE001 - report, clean up, then the summary of what was measured
        print(f"benchmark failed: {e}", file=sys.stderr)
        failed = True
    finally:
        close_all(engines)
        remove_base(base, mounted)
        host.restore_and_report("\n")

    print()
    dns = None if "dns" in skip else run_dns_bench(skip)
    dns_rates = _dns_rates(dns)

    names = ("dockyard", "podman", "docker")
    print()
    print(f"{'operation':<34} {'dockyard':>9} {'podman':>9} {'docker':>9} {'dy/podman':>10} {'dy/docker':>10}  target")

    def row(label: str, values: dict[str, float], fmt: str, target: str) -> None:
        cells = [format(values[n], fmt) if n in values else "-" for n in names]
        mine = values.get("dockyard")
        print(f"{label:<34} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {_ratio(mine, values.get('podman')):>10} "
              f"{_ratio(mine, values.get('docker')):>10}  {target}")

    row("run --rm busybox true (ms)", run_ms, ".0f", "<= 0.50")
    row("HTTP published port (req/s)", {k: v["rps"] for k, v in http.items()}, ".0f", ">= 1.00")
    row("HTTP published port p99 (ms)", {k: v["p99_ms"] for k, v in http.items()}, ".2f", "(info)")
    if dns_rates:
        row("DNS lookups (per s)", dns_rates, ".0f", "see bench/dns.py")
    else:
        print(f"{'DNS lookups (per s)':<34} {'bench/dns.py missing' if dns is None else 'no figures parsed'}")
    for name, h in http.items():
        print(f"  {name} publishes 127.0.0.1 by {h['path']}")
    print(json.dumps({"run_ms": run_ms,
                      "http": {k: {x: v[x] for x in ("rps", "p99_ms", "errors", "path")} for k, v in http.items()},
                      "notes": notes, "dns": dns}))
    return 1 if failed or "dockyard" not in run_ms and "dockyard" not in skip else 0


if __name__ == "__main__":
    sys.exit(main())
