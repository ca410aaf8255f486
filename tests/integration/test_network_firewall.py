"""``dockyard.network.firewall`` on the real kernel: what a user sees of our iptables rules.

Each test builds its own topology with iproute2: test bridges (``dyt...``, 10.214.X.0/24) with
network namespaces on them ("containers"), and one namespace on a plain routed veth pair
(10.215.X.Y/30) standing for the outside world. Traffic stays between those namespaces and
the host; the FORWARD policy is DROP during a test (as dockerd leaves it), restored after.

Names carry the test process's pid (``dyt<pid:06x><kind><rand>``), so a later run sweeps the
leftovers of a crashed one and never another live run's.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.network import firewall
from dockyard.network.firewall import NetworkRules, PortRule

pytestmark = pytest.mark.integration

PREFIX = f"dyt{os.getpid():06x}"
NAME = re.compile(r"^dyt([0-9a-f]{6})")


def _sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _name(kind: str) -> str:
    return f"{PREFIX}{kind}{secrets.token_hex(2)}"


def _dead(name: str) -> bool:
    m = NAME.match(name)
    if not m:
        return False
    try:
        os.kill(int(m[1], 16), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _save(counters: bool = False) -> str:
    return _sh("iptables-save", *(["-c"] if counters else []))


def _tagged(text: str, bridge: str) -> list[str]:
    """The lines of one bridge's rules (its network's and the port rules on it)."""
    return [line for line in text.splitlines()
            if f'"dockyard:net:{bridge}"' in line or re.search(rf'"dockyard:ports:[0-9a-f]+:{bridge}"', line)]


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", autouse=True)
def _host_ready() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the firewall tests need root")
    missing = [t for t in ("ip", "iptables", "iptables-save", "iptables-restore", "nsenter") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install iptables iproute2 util-linux")
    _sweep()
    yield


def _sweep() -> None:
    """Leftovers of a crashed run (its pid is gone): links first (a netns frees its veth
    asynchronously), then namespaces, then the rules of its bridges."""
    for line in _sh("ip", "-o", "link", "show").splitlines():
        name = line.split(": ", 2)[1].split("@", 1)[0]
        if _dead(name):
            _sh("ip", "link", "del", name, check=False)
    for line in _sh("ip", "netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        if _dead(name):
            _sh("ip", "netns", "del", name, check=False)
    stale = set()
    for tag in re.findall(r'"dockyard:(?:net:|ports:[0-9a-f]+:)(dyt[0-9a-f]+\w*)"', _save()):
        if _dead(tag):
            stale.add(tag)
    if stale:
        firewall.reset(sorted(stale), [])


@pytest.fixture
def forward_drop() -> Iterator[None]:
    """FORWARD's policy DROP for the test (dockerd sets it so): the one policy change allowed,
    restored even on failure."""
    first = _sh("iptables", "-w", "-S", "FORWARD").splitlines()[0]   # "-P FORWARD ACCEPT"
    before = first.split()[2]
    _sh("iptables", "-w", "-P", "FORWARD", "DROP")
    try:
        yield
    finally:
        _sh("iptables", "-w", "-P", "FORWARD", before)


class Net:
    def __init__(self, bridge: str, third: int, internal: bool) -> None:
        self.bridge = bridge
        self.prefix = f"10.214.{third}"
        self.subnet = f"{self.prefix}.0/24"
        self.gateway = f"{self.prefix}.1"
        self.rules = NetworkRules(bridge=bridge, subnet=self.subnet, gateway=self.gateway, internal=internal)
        self.hosts = 1


class Ns:
    def __init__(self, name: str, address: str, host_side: str = "") -> None:
        self.name = name
        self.address = address
        self.host_side = host_side   # the host's own address on a routed link ("outside")

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.name}", *cmd]


SERVER = textwrap.dedent("""
    import socket, sys
    proto, port = sys.argv[1], int(sys.argv[2])
    if proto == "tcp":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(16)
        print("ready", flush=True)
        while True:
            c, peer = s.accept()
            c.settimeout(2)
            try:
                c.recv(4096)    # the request first: closing with it unread would reset the connection
                c.sendall(("peer=%s\\n" % peer[0]).encode())
            except OSError:
                pass
            c.close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        print("ready", flush=True)
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(("peer=%s got=%s\\n" % (peer[0], data.decode())).encode(), peer)
""")

PROBE = textwrap.dedent("""
    import socket, sys
    host, port, proto, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=timeout)
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(timeout)
            s.sendto(b"ping", (host, port))
            out = s.recv(2048)
    except OSError as e:
        print(type(e).__name__, e, file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(out.decode())
""")


class Topology:
    """Bridges, namespaces, servers and rules a test makes; all removed at the end."""

    def __init__(self) -> None:
        self.nets: list[Net] = []
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.owners: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="dyt-fw-"))

    # --- building
    @staticmethod
    def _free_third(prefix: str) -> int:
        taken = _sh("ip", "-4", "route", "show", "table", "all")
        for _ in range(200):
            third = secrets.randbelow(250) + 2
            if f"{prefix}.{third}." not in taken:
                return third
        raise AssertionError(f"no free {prefix}.X.0/24 subnet")

    def network(self, internal: bool = False) -> Net:
        """A bridge with its gateway address, up (what the network service makes)."""
        net = Net(_name("b"), self._free_third("10.214"), internal)
        self.links.append(net.bridge)
        self.nets.append(net)
        _sh("ip", "link", "add", net.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        _sh("ip", "link", "set", net.bridge, "up")
        return net

    def _netns(self) -> str:
        name = _name("n")
        _sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def container(self, net: Net) -> Ns:
        """A namespace on the bridge, with the next address and a default route to the gateway."""
        ns, veth = self._netns(), _name("v")
        net.hosts += 1
        address = f"{net.prefix}.{net.hosts}"
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.insert(0, veth)
        _sh("ip", "link", "set", veth, "master", net.bridge, "up")
        # As the attach layer must: with br_netfilter the DNAT of a container's packet to its own
        # published port happens while the frame is being bridged, so it goes back out the port
        # it came in on.
        _sh("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        _sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", net.gateway)
        return Ns(ns, address)

    def outside(self) -> Ns:
        """The outside world: a namespace on a routed veth pair, no bridge, no rule of ours."""
        ns, veth = self._netns(), _name("o")
        third = self._free_third("10.215")
        quad = secrets.randbelow(60) * 4
        host, peer = f"10.215.{third}.{quad + 1}", f"10.215.{third}.{quad + 2}"
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.insert(0, veth)
        _sh("ip", "addr", "add", f"{host}/30", "dev", veth)
        _sh("ip", "link", "set", veth, "up")
        _sh("ip", "-n", ns, "addr", "add", f"{peer}/30", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", host)
        return Ns(ns, peer, host_side=host)

    def ensure(self, *nets: Net) -> None:
        for net in nets:
            firewall.ensure_network(net.rules)

    # --- serving and probing
    def serve(self, ns: Ns, port: int, proto: str = "tcp") -> None:
        """A server answering ``peer=<the address it sees>``."""
        proc = subprocess.Popen(ns.argv(sys.executable, "-c", SERVER, proto, str(port)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line

    def httpd(self, ns: Ns, port: int, body: str) -> None:
        """busybox httpd in the namespace, serving ``body`` as /index.html."""
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.skip("busybox not installed: apt-get install busybox-static")
        root = self.dir / f"www-{ns.name}"
        root.mkdir()
        (root / "index.html").write_text(body)
        self.procs.append(subprocess.Popen(ns.argv(busybox, "httpd", "-f", "-p", str(port), "-h", str(root)),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 5
        while probe(None, ns.address, port, timeout=0.5) is None:   # the host reaches its bridges directly
            assert time.monotonic() < deadline, "busybox httpd did not start"
            time.sleep(0.05)

    # --- tear-down
    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for link in self.links:            # veths before namespaces (async free), bridges last
            _sh("ip", "link", "del", link, check=False)
        for ns in self.namespaces:
            _sh("ip", "netns", "del", ns, check=False)
        try:
            firewall.reset([n.bridge for n in self.nets], self.owners)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def topo() -> Iterator[Topology]:
    t = Topology()
    try:
        yield t
    finally:
        t.close()


def probe(ns: Ns | None, host: str, port: int, proto: str = "tcp", timeout: float = 1.0) -> str | None:
    """What a client gets from ``host:port`` (an HTTP GET for tcp, a datagram for udp), from a
    namespace or from the host (``ns`` None); None if nothing answered."""
    argv = [sys.executable, "-c", PROBE, host, str(port), proto, str(timeout)]
    done = subprocess.run(ns.argv(*argv) if ns else argv, capture_output=True, text=True, timeout=timeout + 10)
    return done.stdout if done.returncode == 0 else None


def _host_address() -> str | None:
    """The host's own address its default route leaves from (eth0), if it has one."""
    out = _sh("ip", "-4", "-o", "route", "get", "1.1.1.1", check=False)
    m = re.search(r"\bsrc (\S+)", out)
    return m[1] if m else None


def _free_port(proto: str = "tcp") -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
        if port not in _ports_in_use():
            return port


def _ports_in_use() -> set[int]:
    """Host ports some root's DNAT rules already take (no socket shows them)."""
    return {int(p) for p in re.findall(r"--dport (\d+) .*-j DNAT", _sh("iptables-save", "-t", "nat"))}


# ------------------------------------------------------------------------------- the tests

def test_egress_masquerade_and_isolation_under_forward_drop(topo: Topology, forward_drop: None) -> None:
    a, b = topo.network(), topo.network()
    a1, a2, b1 = topo.container(a), topo.container(a), topo.container(b)
    world = topo.outside()
    for ns in (a2, b1, world):
        topo.serve(ns, 7000)

    # Without our rules the DROP policy stops egress (the test would prove nothing otherwise).
    assert probe(a1, world.address, 7000) is None

    topo.ensure(a, b)
    # Within the bridge: direct, the peer sees the container's own address.
    assert probe(a1, a2.address, 7000) == f"peer={a1.address}\n"
    assert probe(a2, a1.address, 7001, timeout=1) is None          # nothing there: refused, not hung
    # Out to the world: masqueraded to the host's address on the way out.
    assert probe(a1, world.address, 7000) == f"peer={world.host_side}\n"
    assert probe(b1, world.address, 7000) == f"peer={world.host_side}\n"
    # Between two of our bridges: dropped, both ways.
    assert probe(a1, b1.address, 7000) is None
    assert probe(b1, a2.address, 7000) is None
    # The host itself still reaches both (OUTPUT/INPUT, not ours to filter).
    assert probe(None, b1.address, 7000) == f"peer={b.gateway}\n"


def test_internal_network_keeps_everything_on_its_bridge(topo: Topology, forward_drop: None) -> None:
    net = topo.network(internal=True)
    i1, i2 = topo.container(net), topo.container(net)
    world = topo.outside()
    topo.serve(i2, 7000)
    topo.serve(world, 7000)
    topo.ensure(net)

    assert probe(i1, i2.address, 7000) == f"peer={i1.address}\n"
    assert probe(i1, world.address, 7000) is None
    assert "MASQUERADE" not in "\n".join(_tagged(_save(), net.bridge))

    # The host: its gateway address answers (DNS on 53 above all), its other addresses do not.
    with host_server(net.gateway) as gw_port, host_server(world.host_side) as other_port, \
            host_server(net.gateway, 53, "udp"):
        assert probe(i1, net.gateway, gw_port) == f"peer={i1.address}\n"
        assert probe(i1, net.gateway, 53, "udp") == f"peer={i1.address} got=ping\n"
        assert probe(i1, world.host_side, other_port) is None


@contextlib.contextmanager
def host_server(address: str, port: int = 0, proto: str = "tcp") -> Iterator[int]:
    """A server in the host's own namespace (INPUT, not FORWARD), answering like SERVER: its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    sock.bind((address, port))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                if proto == "tcp":
                    conn, peer = sock.accept()
                    with conn:
                        conn.settimeout(2)
                        conn.recv(4096)     # read the request: closing with it unread resets
                        conn.sendall(f"peer={peer[0]}\n".encode())
                else:
                    data, peer = sock.recvfrom(2048)
                    sock.sendto(f"peer={peer[0]} got={data.decode()}\n".encode(), peer)
            except OSError:
                continue

    if proto == "tcp":
        sock.listen()
    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        worker.join()
        sock.close()


def test_published_ports(topo: Topology, forward_drop: None) -> None:
    net = topo.network()
    web, other = topo.container(net), topo.container(net)
    world = topo.outside()
    topo.ensure(net)
    topo.httpd(web, 80, "hello from web\n")
    topo.serve(web, 5300, "udp")
    local, anywhere, udp = _free_port(), _free_port(), _free_port("udp")
    owner = secrets.token_hex(32)
    topo.owners.append(owner)
    rules = [PortRule("tcp", "127.0.0.1", local, web.address, 80, net.bridge),
             PortRule("tcp", "", anywhere, web.address, 80, net.bridge),
             PortRule("udp", "", udp, web.address, 5300, net.bridge)]
    firewall.add_ports(owner, rules)
    host = _host_address() or world.host_side

    def answers(ns: Ns | None, address: str, port: int) -> bool:
        got = probe(ns, address, port, timeout=2)
        return got is not None and "hello from web" in got

    # From the host: loopback (route_localnet + MASQUERADE) and its own address, with urllib too.
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=5) as r:
        assert r.read() == b"hello from web\n"
    assert answers(None, "127.0.0.1", anywhere)
    assert answers(None, host, anywhere)
    assert not answers(None, host, local)                    # published on 127.0.0.1 only
    # From another host (the outside namespace, to the host's address on its link).
    assert answers(world, world.host_side, anywhere)
    # Hairpin: another container, and the container itself, through the host's address.
    assert answers(other, host, anywhere)
    assert answers(web, host, anywhere)
    # UDP: a datagram to 127.0.0.1 gets the server's reply (seen coming from the gateway).
    assert probe(None, "127.0.0.1", udp, "udp", timeout=3) == f"peer={net.gateway} got=ping\n"
    # A container on another of our networks reaches the published port too (as through a proxy).
    b = topo.network()
    b1 = topo.container(b)
    topo.ensure(b)
    assert answers(b1, host, anywhere)

    firewall.remove_ports(owner)
    assert owner not in _save()
    assert not answers(None, "127.0.0.1", local)
    assert not answers(None, "127.0.0.1", anywhere)
    assert not answers(world, world.host_side, anywhere)
    assert probe(None, "127.0.0.1", udp, "udp", timeout=0.5) is None
    firewall.remove_ports(owner)                             # none left: fine


def test_bind_error() -> None:
    with socket.socket() as held, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held_udp:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert firewall.bind_error("tcp", "127.0.0.1", port) == \
            f"listen tcp4 127.0.0.1:{port}: bind: address already in use"
        assert firewall.bind_error("tcp", "", port) == f"listen tcp4 0.0.0.0:{port}: bind: address already in use"
        held_udp.bind(("0.0.0.0", 0))
        uport = held_udp.getsockname()[1]
        assert firewall.bind_error("udp", "", uport) == f"listen udp4 0.0.0.0:{uport}: bind: address already in use"
    free = _free_port()
    assert firewall.bind_error("tcp", "", free) is None
    assert firewall.bind_error("udp", "127.0.0.1", free) is None
    if Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() == "0":
        assert firewall.bind_error("tcp", "203.0.113.254", free) == \
            f"listen tcp4 203.0.113.254:{free}: bind: cannot assign requested address"   # not a host address


def test_ensure_network_is_idempotent_and_replaces_stale_rules(topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    net = topo.network()
    topo.ensure(net)
    first = _tagged(_save(), net.bridge)
    assert len(first) == 10
    with monkeypatch.context() as m:      # all in place: read once, write nothing
        writes: list[object] = []
        m.setattr(firewall, "_restore", writes.append)
        topo.ensure(net)
        assert writes == []
    assert _tagged(_save(), net.bridge) == first
    # The same bridge now with another subnet (the DB changed): the old rules go.
    moved = NetworkRules(bridge=net.bridge, subnet="10.214.1.0/24", gateway="10.214.1.1", internal=False)
    firewall.ensure_network(moved)
    now = "\n".join(_tagged(_save(), net.bridge))
    assert "10.214.1.0/24" in now and net.subnet not in now
    # ip_forward and route_localnet are on.
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"


def test_reload_remove_network_and_reset(topo: Topology, forward_drop: None) -> None:
    a, b = topo.network(), topo.network()
    a1, b1 = topo.container(a), topo.container(b)
    world = topo.outside()
    topo.serve(world, 7000)
    topo.serve(a1, 80)
    topo.ensure(a, b)
    owner = secrets.token_hex(32)
    topo.owners.append(owner)
    port = _free_port()
    ports = {owner: [PortRule("tcp", "", port, a1.address, 80, a.bridge)]}
    firewall.add_ports(owner, ports[owner])
    assert probe(a1, world.address, 7000) and probe(b1, world.address, 7000)   # B's counters move
    assert probe(None, "127.0.0.1", port) == f"peer={a.gateway}\n"

    # A's rules deleted by hand (only A's: the chains are shared with every other root).
    for line in _tagged(_save(), a.bridge):
        table = "nat" if "DOCKYARD-PORTS" in line or "DOCKYARD-POSTROUTING" in line else "filter"
        _sh("iptables", "-w", "-t", table, "-D", *_split(line[3:]))
    assert probe(a1, world.address, 7000, timeout=0.5) is None
    assert probe(None, "127.0.0.1", port, timeout=0.5) is None
    b_before = _tagged(_save(counters=True), b.bridge)

    firewall.reload([a.rules], ports)
    assert probe(a1, world.address, 7000) == f"peer={world.host_side}\n"
    assert probe(None, "127.0.0.1", port) == f"peer={a.gateway}\n"
    assert _tagged(_save(counters=True), b.bridge) == b_before          # not touched (counters kept)
    reloaded = _tagged(_save(), a.bridge)
    firewall.reload([a.rules], ports)                                    # again: no duplicates
    assert sorted(_tagged(_save(), a.bridge)) == sorted(reloaded)

    # remove_network takes the port rules on the bridge too.
    firewall.remove_network(a.bridge)
    assert a.bridge not in _save() and owner not in _save()
    assert probe(b1, world.address, 7000) == f"peer={world.host_side}\n"
    firewall.remove_network(a.bridge)                                    # nothing left: fine

    # reset with another bridge still using the chains keeps them.
    firewall.ensure_network(a.rules)
    firewall.add_ports(owner, ports[owner])
    firewall.reset([a.bridge], [owner])
    text = _save()
    assert a.bridge not in text and owner not in text
    assert _tagged(text, b.bridge) and ":DOCKYARD-FORWARD" in text and ":DOCKYARD-PORTS" in text

    firewall.reset([b.bridge], [])
    text = _save()
    assert b.bridge not in text
    others = re.findall(r'--comment "dockyard:[^"]+"', text)       # another root's rules, if any run now
    if others:
        assert ":DOCKYARD-FORWARD" in text
    else:
        assert "DOCKYARD" not in text and "--comment dockyard" not in text


def _split(spec: str) -> list[str]:
    import shlex

    return shlex.split(spec)


def test_import_is_cheap() -> None:
    code = "import sys, dockyard.network.firewall; print(sorted({'subprocess', 're'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "subprocess" not in out


def test_iptables_refusal_is_one_clear_line() -> None:
    bridge = "dytxxxxxxxxxxxxxxxxx"            # longer than IFNAMSIZ: iptables refuses the batch
    with pytest.raises(firewall.FirewallError) as caught:
        firewall.ensure_network(NetworkRules(bridge=bridge, subnet="10.214.1.0/24", gateway="10.214.1.1",
                                             internal=False))
    message = str(caught.value)
    assert "\n" not in message and "IFNAMSIZ" in message and bridge in message
    assert bridge not in _save()                  # one batch: nothing of it went in
