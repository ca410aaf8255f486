"""Benchmark: container-name lookups/s, dockyard's DNS responder vs podman's aardvark-dns.

    .venv/bin/python bench/dns.py [--rounds 4] [--seconds 5] [--containers 20] [--skip podman|dockyard]

Both servers answer the same name table (``--containers`` running containers on one network,
looked up by name and by short ID, A queries), each on port 53 of its own loopback address,
and are loaded by the same client: ``dnsperf`` (Debian package dnsperf) with --outstanding
queries in flight, else a Python client doing the same over UDP (it may then be the
bottleneck: the ratio still holds, the absolute figures less so). Rounds alternate (aardvark,
dockyard, aardvark, ...) so machine noise hits both alike; the table gives the median
lookups/s, CPU time per lookup of the server process, and the ratio. Also measured: the
cost of ``ensure_running`` when the responder runs (paid at every container start on a DNS
network) and the responder's cold start (ensure_running until the first answer).

dockyard's responder gets a fresh root whose DB is filled by hand (no bridge is needed: any
127/8 address is local) and is started with ``ensure_running``, as a container start does;
aardvark-dns (``/usr/lib/podman/aardvark-dns``, Debian's aardvark-dns 1.4) gets a config dir
in its own format (one file per network: the gateway on the first line, then ``<id> <ipv4>
<ipv6> <names>`` per container) and daemonizes itself, leaving its PID in that dir. Both are
stopped by PID at the end. Needs root (port 53). Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

AARDVARK = "/usr/lib/podman/aardvark-dns"


def free_prefix() -> str:
    """A 127.x.y prefix whose .1 has nothing on port 53."""
    for _ in range(100):
        prefix = f"127.{random.randint(80, 250)}.{random.randint(0, 255)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((f"{prefix}.1", 53))
            except OSError:
                continue
        return prefix
    raise RuntimeError("no free 127.x address")


def wait_answer(server: str, name: str, timeout: float = 10.0) -> float:
    """Seconds until ``server`` answers an A query for ``name`` with an address."""
    from dnslib import DNSRecord

    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            try:
                s.sendto(DNSRecord.question(name).pack(), (server, 53))
                if DNSRecord.parse(s.recv(4096)).rr:
                    return time.perf_counter() - start
            except OSError:
                pass
        time.sleep(0.005)
    raise RuntimeError(f"{server} did not answer {name} within {timeout:.0f}s")


def check_answers(server: str, names: list[str], containers: int) -> None:
    """Every name must resolve to one of the containers' addresses: the figures count answers,
    and an error answer is as fast as a right one."""
    from dnslib import DNSRecord

    prefix = server.rsplit(".", 1)[0]
    valid = {f"{prefix}.{10 + n}" for n in range(containers)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for name in names:
            s.sendto(DNSRecord.question(name).pack(), (server, 53))
            got = [str(rr.rdata) for rr in DNSRecord.parse(s.recv(4096)).rr]
            if len(got) != 1 or got[0] not in valid:
                raise RuntimeError(f"{server} answered {name} with {got}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads (aardvark runs several)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_is(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return needle in f.read()
    except OSError:
        return False


class Server:
    name = ""
    address = ""
    pid = 0

    def stop(self) -> None:
        raise NotImplementedError


class Dockyard(Server):
    name = "dockyard"

    def __init__(self, base: Path, containers: list[tuple[str, str]]) -> None:
        from dockyard.network import dnsd
        from dockyard.store import db

        self.dnsd = dnsd
        self.root, self.runroot = str(base / "dockyard" / "root"), str(base / "dockyard" / "run")
        os.makedirs(self.runroot)
        prefix = free_prefix()
        self.address = f"{prefix}.1"
        conn = db.connect(self.root)
        nid = uuid.uuid4().hex * 2
        conn.execute("INSERT INTO networks (id, name, driver, bridge, subnet, gateway, dns, created)"
                     " VALUES (?, 'bench', 'bridge', '', ?, ?, 1, ?)", (nid, f"{prefix}.0/24", self.address, time.time()))
        config = json.dumps({"Config": {}, "HostConfig": {"NetworkMode": "bench"}})
        for n, (cid, name) in enumerate(containers):
            conn.execute("INSERT INTO containers (id, name, image_id, image, created, status, config)"
                         " VALUES (?, ?, ?, 'busybox', ?, 'running', ?)", (cid, name, "sha256:" + "0" * 64, time.time(), config))
            conn.execute("INSERT INTO endpoints (id, network_id, container_id, address, mac, aliases, ifname, created)"
                         " VALUES (?, ?, ?, ?, '02:42:00:00:00:01', '[]', 'eth0', ?)",
                         (uuid.uuid4().hex * 2, nid, cid, f"{prefix}.{10 + n}", time.time()))
        conn.close()
        # On loopback no firewall redirect brings <address>:53 to dnsd.PORT: it listens on 53 here.
        os.environ["DOCKYARD_DNS_PORT"] = "53"
        start = time.perf_counter()
        dnsd.ensure_running(self.root, self.runroot)
        spawned = time.perf_counter() - start
        self.cold_start = spawned + wait_answer(self.address, containers[0][1])
        self.spawn_cost = spawned
        self.pid = dnsd._read_pid(os.path.join(self.runroot, "dns"))
        # What every later container start on a DNS network pays.
        times = []
        for _ in range(2000):
            t = time.perf_counter()
            dnsd.ensure_running(self.root, self.runroot)
            times.append(time.perf_counter() - t)
        self.ensure_cost = statistics.median(times)

    def stop(self) -> None:
        pid = self.pid
        self.dnsd.stop(self.runroot)
        if pid and pid_is(pid, b"dockyard.network.dnsd"):
            os.kill(pid, signal.SIGKILL)


class Aardvark(Server):
    name = "aardvark-dns"

    def __init__(self, base: Path, containers: list[tuple[str, str]]) -> None:
        self.config = base / "aardvark"
        self.config.mkdir()
        prefix = free_prefix()
        self.address = f"{prefix}.1"
        # No upstream column: queries stay local (all of them are for known names anyway).
        lines = [self.address] + [f"{cid} {prefix}.{10 + n}  {name},{cid[:12]}"
                                  for n, (cid, name) in enumerate(containers)]
        (self.config / "bench").write_text("\n".join(lines) + "\n")
        start = time.perf_counter()
        # `run` forks: the parent returns once the server listens, the child's PID is left
        # in aardvark.pid in the config dir.
        subprocess.run([AARDVARK, "--config", str(self.config), "-p", "53", "run"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        self.cold_start = time.perf_counter() - start + wait_answer(self.address, containers[0][1])
        self.pid = int((self.config / "aardvark.pid").read_text().strip())

    def stop(self) -> None:
        if self.pid and pid_is(self.pid, b"aardvark-dns"):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while pid_is(self.pid, b"aardvark-dns") and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_is(self.pid, b"aardvark-dns"):
                os.kill(self.pid, signal.SIGKILL)


# ------------------------------------------------------------------ clients

def dnsperf(server: str, queries: Path, seconds: float, outstanding: int) -> tuple[float, float]:
    """(lookups/s, fraction lost) from one dnsperf run."""
    out = subprocess.run(["dnsperf", "-s", server, "-p", "53", "-d", str(queries), "-l", f"{seconds:g}",
                          "-c", "1", "-T", "1", "-q", str(outstanding), "-t", "2"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    codes = re.search(r"Response codes:\s+(.*)", out)   # "NOERROR 123 (100.00%)[, NXDOMAIN ...]"
    if codes and (codes.group(1).split()[0] != "NOERROR" or "," in codes.group(1)):
        raise RuntimeError(f"{server}: not only NOERROR answers: {codes.group(1)}")
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out)
    return qps, float(lost.group(1)) / 100 if lost else 0.0


def python_client(server: str, names: list[str], seconds: float, outstanding: int) -> tuple[float, float]:
    """The fallback client: ``outstanding`` queries in flight over one UDP socket; a query
    unanswered for 1 s counts as lost and is replaced."""
    from dnslib import DNSRecord

    packets = [DNSRecord.question(n).pack() for n in names]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    s.settimeout(1.0)
    next_id, sent, answered, lost = 0, 0, 0, 0
    start = time.perf_counter()
    deadline = start + seconds

    def send() -> None:
        nonlocal next_id, sent
        p = packets[sent % len(packets)]
        s.send(next_id.to_bytes(2, "big") + p[2:])
        next_id = (next_id + 1) & 0xFFFF
        sent += 1

    for _ in range(outstanding):
        send()
    while time.perf_counter() < deadline:
        try:
            s.recv(4096)
        except socket.timeout:   # everything in flight is gone: count it, start over
            lost += outstanding
            for _ in range(outstanding):
                send()
            continue
        answered += 1
        send()
    elapsed = time.perf_counter() - start
    s.close()
    return answered / elapsed, lost / max(sent, 1)


# ------------------------------------------------------------------ main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--outstanding", type=int, default=100, help="queries in flight")
    parser.add_argument("--skip", default="", help="podman (aardvark-dns) or dockyard")
    parser.add_argument("--client", choices=("auto", "dnsperf", "python"), default="auto")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/dns.py needs root (port 53)", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    client = args.client
    if client == "auto":
        client = "dnsperf" if shutil.which("dnsperf") else "python"
    if client == "dnsperf" and not shutil.which("dnsperf"):
        print("dnsperf is not installed (apt-get install dnsperf)", file=sys.stderr)
        return 2
    # The responder runs from the source tree: compile it once, as an installed package is,
    # and let the spawned responder (it inherits our environment) keep its bytecode.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "dockyard")],
                   stdout=subprocess.DEVNULL, check=False)

    containers = [(uuid.uuid4().hex + uuid.uuid4().hex, f"c{n:02d}") for n in range(args.containers)]
    names = [name for _, name in containers] + [cid[:12] for cid, _ in containers]
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-dns-"))
    queries = base / "queries.txt"
    queries.write_text("".join(f"{n} A\n" for n in names))
    servers: list[Server] = []
    try:
        if "podman" not in skip and "aardvark-dns" not in skip:
            if os.access(AARDVARK, os.X_OK):
                servers.append(Aardvark(base, containers))
            else:
                print(f"{AARDVARK} missing (apt-get install aardvark-dns): skipped")
        if "dockyard" not in skip:
            servers.append(Dockyard(base, containers))
        if not servers:
            print("nothing to measure", file=sys.stderr)
            return 2
        print(f"client: {client}, {args.outstanding} queries in flight; {len(names)} names "
              f"({args.containers} containers: names and short IDs); {args.rounds} rounds x {args.seconds:g} s, interleaved")
        for server in servers:   # check, and warm both up (dockyard fills its answer cache)
            check_answers(server.address, names, args.containers)
            measure(server, client, queries, names, 1.0, args.outstanding)
        rates: dict[str, list[float]] = {s.name: [] for s in servers}
        cpu: dict[str, list[float]] = {s.name: [] for s in servers}
        losses: dict[str, list[float]] = {s.name: [] for s in servers}
        for r in range(args.rounds):
            for server in servers:
                before = cpu_seconds(server.pid)
                qps, lost = measure(server, client, queries, names, args.seconds, args.outstanding)
                used = cpu_seconds(server.pid) - before
                rates[server.name].append(qps)
                cpu[server.name].append(used / max(qps * args.seconds, 1) * 1e6)
                losses[server.name].append(lost)
                print(f"  round {r + 1}: {server.name:<13} {qps:>9.0f}/s  lost {lost:.2%}")
        print()
        print(f"{'server':<14} {'lookups/s':>10} {'min':>9} {'max':>9} {'CPU us/lookup':>14} {'lost':>7}")
        medians = {}
        for server in servers:
            medians[server.name] = statistics.median(rates[server.name])
            print(f"{server.name:<14} {medians[server.name]:>10.0f} {min(rates[server.name]):>9.0f} "
                  f"{max(rates[server.name]):>9.0f} {statistics.median(cpu[server.name]):>14.1f} "
                  f"{max(losses[server.name]):>7.2%}")
        print()
        ratio = None
        if "dockyard" in medians and "aardvark-dns" in medians:
            ratio = medians["dockyard"] / medians["aardvark-dns"]
            print(f"lookups/s: dockyard/aardvark-dns = {ratio:.2f} (target >= 1.00)")
        extra: dict[str, float] = {}
        for server in servers:
            print(f"cold start ({server.name}): {server.cold_start * 1e3:.0f} ms to the first answer")
            extra[f"cold_start_ms_{server.name}"] = round(server.cold_start * 1e3, 1)
            if isinstance(server, Dockyard):
                print(f"ensure_running when running: {server.ensure_cost * 1e6:.1f} us (median of 2000); "
                      f"spawning: {server.spawn_cost * 1e3:.1f} ms")
                extra["ensure_running_us"] = round(server.ensure_cost * 1e6, 1)
        print(json.dumps({"bench": "dns", "client": client, "qps": {k: round(v) for k, v in medians.items()},
                          "ratio": round(ratio, 3) if ratio else None, **extra}))
        return 0
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                print(f"{server.name}: stop failed: {e}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)


def measure(server: Server, client: str, queries: Path, names: list[str], seconds: float,
            outstanding: int) -> tuple[float, float]:
    if client == "dnsperf":
        return dnsperf(server.address, queries, seconds, outstanding)
    return python_client(server.address, names, seconds, outstanding)


if __name__ == "__main__":
    sys.exit(main())
