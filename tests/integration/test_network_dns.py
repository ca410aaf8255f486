"""The DNS responder for container names (dockyard.network.dnsd), as containers meet it.

No bridges or containers: the tests write networks, containers and endpoints into a fresh
root's DB themselves and give each network a gateway on 127/8 (every 127.x address is local,
so the responder can bind it without an interface). Queries come from dnslib and from
busybox's nslookup; "upstream" resolvers are small fake servers on other 127.x addresses.
Every responder is stopped by its PID at the end of its test."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from dnslib import PTR, QTYPE, RCODE, RR, A, DNSRecord

from dockyard.network import dnsd
from dockyard.store import db

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _answer_on_port_53(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests talk to the responder itself on loopback addresses, where no firewall
    redirect brings <gateway>:53 to its own port (dnsd.PORT): it listens on 53 here."""
    monkeypatch.setenv("DOCKYARD_DNS_PORT", "53")

BUSYBOX = "/bin/busybox"


def wait_for(check: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_subnet() -> str:
    """A random 127.x.y prefix whose .1 has nothing on port 53 (tests may run side by side)."""
    for _ in range(100):
        prefix = f"127.{random.randint(80, 250)}.{random.randint(0, 255)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((f"{prefix}.1", 53))
            except OSError:
                continue
        return prefix
    raise AssertionError("no free 127.x address")


def query(server: str, name: str, qtype: str = "A", source: str = "", tcp: bool = False,
          timeout: float = 3.0) -> DNSRecord:
    """One query; ``source`` picks the client's address (the responder tells containers by it)."""
    packet = DNSRecord.question(name, qtype).pack()
    if tcp:
        with socket.create_connection((server, 53), timeout=timeout,
                                      source_address=(source, 0) if source else None) as s:
            s.sendall(len(packet).to_bytes(2, "big") + packet)
            data = b""
            while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                chunk = s.recv(65535)
                if not chunk:
                    raise AssertionError("connection closed")
                data += chunk
            return DNSRecord.parse(data[2:])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.sendto(packet, (server, 53))
        reply, _ = s.recvfrom(65535)
        return DNSRecord.parse(reply)


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


class FakeUpstream:
    """A resolver on ``address``:53 (UDP and TCP) answering every A query with ``answer``
    and remembering the names it was asked."""

    def __init__(self, address: str, answer: str = "10.99.99.99") -> None:
        self.address, self.answer = address, answer
        self.asked: list[tuple[str, str]] = []   # (transport, name)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, 53))
        self.tcp.listen(8)
        self.closed = False
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def _reply(self, data: bytes, transport: str) -> bytes:
        req = DNSRecord.parse(data)
        self.asked.append((transport, str(req.q.qname).rstrip(".")))
        reply = req.reply()
        reply.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(self.answer), ttl=60))
        return reply.pack()

    def _serve_udp(self) -> None:
        while not self.closed:
            try:
                data, addr = self.udp.recvfrom(4096)
                if self.closed or not data:
                    return
                self.udp.sendto(self._reply(data, "udp"), addr)
            except OSError:
                return

    def _serve_tcp(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    size = int.from_bytes(conn.recv(2), "big")
                    data = b""
                    while len(data) < size:
                        data += conn.recv(size - len(data))
                    out = self._reply(data, "tcp")
                    conn.sendall(len(out).to_bytes(2, "big") + out)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        for s in (self.udp, self.tcp):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class DnsLab:
    """A root's DB filled by hand, and the responder started on it."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root, self.runroot = str(root), str(runroot)
        self.conn = db.connect(root)
        self.pids: set[int] = set()
        self.upstreams: list[FakeUpstream] = []

    def network(self, name: str, prefix: str = "", dns: bool = True, internal: bool = False) -> str:
        """A bridge network on ``prefix``.0/24 with gateway ``prefix``.1: the gateway."""
        prefix = prefix or free_subnet()
        self.conn.execute(
            "INSERT INTO networks (id, name, driver, bridge, subnet, gateway, internal, dns, created)"
            " VALUES (?, ?, 'bridge', '', ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex * 2, name, f"{prefix}.0/24", f"{prefix}.1", int(internal), int(dns), time.time()))
        return f"{prefix}.1"

    def container(self, name: str, endpoints: dict[str, tuple[str, list[str]]], status: str = "running",
                  dns: list[str] | None = None) -> str:
        """A container with an endpoint per network name: {network: (address, aliases)}."""
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        config = {"Config": {}, "HostConfig": {"NetworkMode": "bridge"}}
        if dns is not None:
            config["HostConfig"]["Dns"] = dns
        self.conn.execute(
            "INSERT INTO containers (id, name, image_id, image, created, status, config) VALUES (?,?,?,?,?,?,?)",
            (cid, name, "sha256:" + "0" * 64, "busybox", time.time(), status, json.dumps(config)))
        for net, (address, aliases) in endpoints.items():
            nid = self.conn.execute("SELECT id FROM networks WHERE name = ?", (net,)).fetchone()[0]
            self.conn.execute(
                "INSERT INTO endpoints (id, network_id, container_id, address, mac, aliases, ifname, created)"
                " VALUES (?, ?, ?, ?, '02:42:00:00:00:01', ?, 'eth0', ?)",
                (uuid.uuid4().hex * 2, nid, cid, address, json.dumps(aliases), time.time()))
        return cid

    def set_status(self, cid: str, status: str) -> None:
        self.conn.execute("UPDATE containers SET status = ? WHERE id = ?", (status, cid))

    def upstream(self, address: str) -> FakeUpstream:
        up = FakeUpstream(address)
        self.upstreams.append(up)
        return up

    # ------------------------------------------------------------ the responder

    @property
    def dns_dir(self) -> str:
        return os.path.join(self.runroot, "dns")

    def pid(self) -> int:
        return dnsd._read_pid(self.dns_dir)

    def start(self, *gateways: str) -> int:
        """ensure_running, then wait until it answers on every gateway: its PID."""
        dnsd.ensure_running(self.root, self.runroot)
        pid = int(wait_for(self.pid, what="the responder's pid file"))
        self.pids.add(pid)
        for gw in gateways:
            self.wait_bound(gw)
        return pid

    def wait_bound(self, gateway: str) -> None:
        def answers() -> bool:
            try:
                query(gateway, "probe.invalid", timeout=0.2)   # any reply will do
                return True
            except OSError:
                return False
        wait_for(answers, what=f"the responder on {gateway}")

    def close(self) -> None:
        try:
            for pid in self.pids | {self.pid()} - {0}:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        finally:
            for up in self.upstreams:
                up.close()
            # Nothing here is a real bridge: leave the root's network reset nothing to undo.
            self.conn.execute("DELETE FROM endpoints")
            self.conn.execute("DELETE FROM networks")
            self.conn.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def lab(dockyard_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DnsLab]:
    if os.geteuid() != 0:
        pytest.skip("binding port 53 needs root")
    # The responder inherits the environment: a resolv.conf of our own, so no test's query
    # ever leaves for the host's real nameservers.
    resolv = dockyard_root / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    monkeypatch.setenv("DOCKYARD_DNS_RESOLV_CONF", str(resolv))
    lab = DnsLab(dockyard_root, Path(os.environ["DOCKYARD_RUNROOT"]))
    try:
        yield lab
    finally:
        lab.close()


# --------------------------------------------------------------------- names

def test_names_short_id_alias_and_case(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    cid = lab.container("web", {"front": (f"{prefix}.2", ["www", "Site", "my_app-web-1"])})
    lab.start(gw)
    # (Not the full ID: 64 characters, over DNS's 63-byte label limit: no client can ask.)
    for name in ("web", "WEB", "Web.", cid[:12], cid[:12].upper(), "www", "site", "SITE", "web.front",
                 "my_app-web-1"):
        reply = query(gw, name)
        assert reply.header.rcode == RCODE.NOERROR, name
        assert reply.header.aa == 1, name
        assert addresses(reply) == [f"{prefix}.2"], name
        assert str(reply.q.qname).rstrip(".") == name.rstrip("."), "the question comes back as asked"
    # A known name without an address of that type: NOERROR and no answer (nobody waits).
    for qtype in ("AAAA", "MX", "TXT"):
        reply = query(gw, "web", qtype)
        assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, []), qtype
    # The hot path (cached answers) patches each query's own ID in.
    for _ in range(3):
        question = DNSRecord.question("web")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(question.pack(), (gw, 53))
            reply = DNSRecord.parse(s.recv(4096))
        assert reply.header.id == question.header.id and addresses(reply) == [f"{prefix}.2"]


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed")
def test_busybox_nslookup(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    lab.container("db", {"front": (f"{prefix}.7", ["postgres"])})
    lab.start(gw)
    for name in ("db", "postgres"):
        out = subprocess.run([BUSYBOX, "nslookup", name, gw], capture_output=True, text=True, timeout=20)
        assert f"Address: {prefix}.7" in out.stdout, out.stdout + out.stderr


def test_round_robin(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    lab.container("api1", {"front": (f"{prefix}.11", ["api"])})
    lab.container("api2", {"front": (f"{prefix}.12", ["api"])})
    lab.container("api3", {"front": (f"{prefix}.13", ["api"])})
    lab.start(gw)
    orders = [addresses(query(gw, "api")) for _ in range(6)]
    both = sorted(f"{prefix}.{n}" for n in (11, 12, 13))
    assert all(sorted(order) == both for order in orders), orders
    assert len({order[0] for order in orders}) == 3, f"the first address rotates: {orders}"
    assert orders[0] != orders[1] and orders[0] == orders[3], orders
    assert addresses(query(gw, "api1")) == [f"{prefix}.11"]


def test_stopped_container_disappears_and_new_one_appears(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    up = lab.upstream(f"{free_subnet()}.53")
    client = lab.container("client", {"front": (f"{prefix}.100", [])}, dns=[up.address])
    cid = lab.container("worker", {"front": (f"{prefix}.5", [])})
    lab.start(gw)
    assert addresses(query(gw, "worker")) == [f"{prefix}.5"]
    # A name that comes with a new container resolves at once (a miss reads the DB again).
    lab.container("late", {"front": (f"{prefix}.6", [])})
    assert addresses(query(gw, "late", source=f"{prefix}.100")) == [f"{prefix}.6"]
    lab.set_status(cid, "exited")
    # Gone within the reload period: then forwarded like any unknown name.
    wait_for(lambda: addresses(query(gw, "worker", source=f"{prefix}.100")) == [up.answer],
             timeout=3, what="the stopped container's name to go")
    assert ("udp", "worker") in up.asked
    lab.set_status(cid, "paused")   # a paused container still has its name
    wait_for(lambda: addresses(query(gw, "worker")) == [f"{prefix}.5"], timeout=3, what="the name to come back")
    assert client


def test_isolation_and_forwarding_to_the_containers_dns(lab: DnsLab) -> None:
    gw_a = lab.network("neta")
    gw_b = lab.network("netb")
    pa, pb = gw_a.rsplit(".", 1)[0], gw_b.rsplit(".", 1)[0]
    up = lab.upstream(f"{free_subnet()}.53")
    lab.container("alpha", {"neta": (f"{pa}.2", [])})
    lab.container("beta", {"netb": (f"{pb}.2", [])}, dns=[up.address])
    lab.container("both", {"neta": (f"{pa}.3", ["shared"]), "netb": (f"{pb}.3", [])})
    lab.start(gw_a, gw_b)
    assert addresses(query(gw_a, "alpha")) == [f"{pa}.2"]
    # Asked on B's gateway by beta: alpha is not B's, so it goes to beta's --dns server.
    reply = query(gw_b, "alpha", source=f"{pb}.2")
    assert addresses(reply) == [up.answer]
    assert up.asked == [("udp", "alpha")]
    assert addresses(query(gw_b, "example.org", source=f"{pb}.2")) == [up.answer]
    assert ("udp", "example.org") in up.asked
    # A container on both answers on each network with that network's address; an alias
    # is per network.
    assert addresses(query(gw_a, "both")) == [f"{pa}.3"]
    assert addresses(query(gw_b, "both")) == [f"{pb}.3"]
    assert addresses(query(gw_a, "shared")) == [f"{pa}.3"]
    n = len(up.asked)
    assert addresses(query(gw_b, "shared", source=f"{pb}.2")) == [up.answer] and len(up.asked) == n + 1
    # A client without --dns falls back to the host's resolvers: here only a loopback one,
    # which a container could not reach: SERVFAIL, and nothing reached the upstream.
    reply = query(gw_b, "alpha", source=f"{pb}.200")
    assert reply.header.rcode == RCODE.SERVFAIL and len(up.asked) == n + 1


def test_host_nameservers_without_loopback_ones(lab: DnsLab, dockyard_root: Path) -> None:
    """A container without --dns is forwarded to the host's resolv.conf nameservers, the
    loopback ones skipped (a container could not reach them). The upstream listens on a
    non-loopback address of a port-less bridge of our own."""
    link = f"dydns{random.randint(0, 0xFFFF):04x}"
    address = f"198.18.{random.randint(0, 255)}.{random.randint(2, 254)}"
    subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        up = lab.upstream(address)
        (dockyard_root / "resolv.conf").write_text(
            f"# copied\nsearch example.com\nnameserver 127.0.0.53\nnameserver ::1\nnameserver {address}\n")
        gw = lab.network("front")
        prefix = gw.rsplit(".", 1)[0]
        lab.container("web", {"front": (f"{prefix}.2", [])})
        lab.start(gw)
        assert addresses(query(gw, "debian.org", source=f"{prefix}.2")) == [up.answer]
        assert ("udp", "debian.org") in up.asked
    finally:
        subprocess.run(["ip", "link", "del", link], check=False)


def test_internal_network_does_not_forward(lab: DnsLab) -> None:
    gw = lab.network("inside", internal=True)
    prefix = gw.rsplit(".", 1)[0]
    up = lab.upstream(f"{free_subnet()}.53")
    lab.container("vault", {"inside": (f"{prefix}.2", [])}, dns=[up.address])
    lab.start(gw)
    assert addresses(query(gw, "vault")) == [f"{prefix}.2"]
    assert query(gw, "example.org", source=f"{prefix}.2").header.rcode == RCODE.SERVFAIL
    assert up.asked == []


def test_network_without_dns_is_not_served(lab: DnsLab) -> None:
    gw_on = lab.network("on")
    gw_off = lab.network("off", dns=False)
    lab.container("c", {"on": (f"{gw_on.rsplit('.', 1)[0]}.2", []), "off": (f"{gw_off.rsplit('.', 1)[0]}.2", [])})
    lab.start(gw_on)
    with pytest.raises(OSError):
        query(gw_off, "c", timeout=0.5)


def test_ptr(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    lab.container("web", {"front": (f"{prefix}.9", [])})
    up = lab.upstream(f"{free_subnet()}.53")
    lab.container("client", {"front": (f"{prefix}.10", [])}, dns=[up.address])
    lab.start(gw)
    reverse = ".".join(reversed(f"{prefix}.9".split("."))) + ".in-addr.arpa"
    reply = query(gw, reverse, "PTR")
    assert [(rr.rtype, str(rr.rdata)) for rr in reply.rr] == [(QTYPE.PTR, "web.")]
    assert isinstance(reply.rr[0].rdata, PTR)
    # An address that is no container's: not ours to answer.
    query(gw, ".".join(reversed(f"{prefix}.77".split("."))) + ".in-addr.arpa", "PTR", source=f"{prefix}.10")
    assert up.asked and up.asked[-1][1].endswith(".in-addr.arpa")


def test_tcp(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    up = lab.upstream(f"{free_subnet()}.53")
    lab.container("web", {"front": (f"{prefix}.2", ["www"])}, dns=[up.address])
    lab.start(gw)
    assert addresses(query(gw, "www", tcp=True)) == [f"{prefix}.2"]
    reply = query(gw, "example.com", tcp=True, source=f"{prefix}.2")
    assert addresses(reply) == [up.answer]
    assert up.asked == [("tcp", "example.com")], "a TCP query goes upstream over TCP"


def test_large_alias_truncated_over_udp_complete_over_tcp(lab: DnsLab) -> None:
    gw = lab.network("front")
    prefix = gw.rsplit(".", 1)[0]
    for n in range(40):
        lab.container(f"r{n}", {"front": (f"{prefix}.{20 + n}", ["many"])})
    lab.start(gw)
    udp = query(gw, "many")
    assert udp.header.tc == 1 and 0 < len(addresses(udp)) < 40
    assert len(DNSRecord.question("many").pack()) and len(udp.pack()) <= 512
    assert len(addresses(query(gw, "many", tcp=True))) == 40


def test_garbage_does_not_kill_it(lab: DnsLab) -> None:
    gw = lab.network("front")
    lab.container("web", {"front": (f"{gw.rsplit('.', 1)[0]}.2", [])})
    pid = lab.start(gw)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        for junk in (b"", b"\x00", b"\x12\x34" + b"\xff" * 40, os.urandom(300)):
            s.sendto(junk, (gw, 53))
    assert addresses(query(gw, "web")) and _alive(pid)


# --------------------------------------------------------------------- the process

def test_ensure_running_twice_starts_one_and_is_cheap(lab: DnsLab) -> None:
    gw = lab.network("front")
    lab.container("web", {"front": (f"{gw.rsplit('.', 1)[0]}.2", [])})
    # Eight container starts at once, each in its own process: one responder.
    code = f"from dockyard.network import dnsd; dnsd.ensure_running({lab.root!r}, {lab.runroot!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(8)]
    assert [p.wait(timeout=30) for p in procs] == [0] * 8
    dnsd.ensure_running(lab.root, lab.runroot)
    pid = lab.start(gw)
    lab.pids.add(pid)
    time.sleep(0.3)   # a second one would have started and bound by now
    mine = [p for p in os.listdir("/proc") if p.isdigit() and _is_ours(int(p), lab.runroot)]
    assert mine == [str(pid)], mine
    # Already running: the cost on every container start.
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        dnsd.ensure_running(lab.root, lab.runroot)
    each = (time.perf_counter() - start) / n
    assert each < 0.001, f"ensure_running costs {each * 1e6:.0f} us when running"
    assert lab.pid() == pid


def _is_ours(pid: int, runroot: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"dockyard.network.dnsd" in argv and runroot.encode() in argv and _alive(pid)


def test_leaves_when_no_container_needs_it(lab: DnsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_DNS_IDLE", "1")
    gw = lab.network("front")
    cid = lab.container("web", {"front": (f"{gw.rsplit('.', 1)[0]}.2", [])})
    pid = lab.start(gw)
    time.sleep(1.6)   # idle period over, but a container runs
    assert _alive(pid)
    lab.set_status(cid, "exited")
    started = time.monotonic()
    wait_for(lambda: not _alive(pid), timeout=5, what="the responder to leave")
    assert 0.7 < time.monotonic() - started < 4
    assert not os.path.exists(os.path.join(lab.dns_dir, dnsd.PID))
    assert not dnsd._lock_held(lab.dns_dir)
    # The next container brings it back.
    lab.set_status(cid, "running")
    assert lab.start(gw) != pid
    assert addresses(query(gw, "web"))


def test_a_recent_ensure_running_keeps_it(lab: DnsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """No container yet (its row comes after ensure_running): ``wanted`` holds it."""
    monkeypatch.setenv("DOCKYARD_DNS_IDLE", "1")
    gw = lab.network("front")
    pid = lab.start()
    for _ in range(8):   # 2 s: twice the idle period
        dnsd.ensure_running(lab.root, lab.runroot)
        time.sleep(0.25)
    assert lab.pid() == pid and _alive(pid)
    wait_for(lambda: not _alive(pid), timeout=5, what="the responder to leave")
    assert gw


def test_stop(lab: DnsLab) -> None:
    gw = lab.network("front")
    lab.container("web", {"front": (f"{gw.rsplit('.', 1)[0]}.2", [])})
    pid = lab.start(gw)
    started = time.monotonic()
    dnsd.stop(lab.runroot)
    assert time.monotonic() - started < 5
    assert not dnsd._lock_held(lab.dns_dir)
    wait_for(lambda: not _alive(pid), timeout=2, what="its process to end")   # it was finishing
    assert not os.path.exists(os.path.join(lab.dns_dir, dnsd.PID))
    dnsd.stop(lab.runroot)   # not running: nothing to do
    dnsd.rebind(lab.runroot)


def test_rebind_binds_a_new_network(lab: DnsLab) -> None:
    gw_a = lab.network("neta")
    lab.container("alpha", {"neta": (f"{gw_a.rsplit('.', 1)[0]}.2", [])})
    pid = lab.start(gw_a)
    gw_b = lab.network("netb")
    pb = gw_b.rsplit(".", 1)[0]
    lab.container("beta", {"netb": (f"{pb}.2", [])})
    dnsd.rebind(lab.runroot)
    lab.wait_bound(gw_b)
    assert addresses(query(gw_b, "beta")) == [f"{pb}.2"]
    assert lab.pid() == pid, "SIGHUP reloads, it does not kill"


def test_leaves_when_its_root_is_removed(lab: DnsLab) -> None:
    gw = lab.network("front")
    lab.container("web", {"front": (f"{gw.rsplit('.', 1)[0]}.2", [])})
    pid = lab.start(gw)
    db_path = os.path.join(lab.root, "dockyard.db")
    moved = db_path + ".away"
    os.rename(db_path, moved)
    try:
        wait_for(lambda: not _alive(pid), timeout=5, what="the responder to leave")
    finally:
        os.rename(moved, db_path)
