"""``dockyard.network.rtnl`` and ``dockyard.network.netns`` on the real kernel, with iproute2
(``ip``, through ``nsenter --net=PATH``) as the oracle.

Each test makes its own bridges and veths (``dyt<pid:06x><kind><rand>``: a later run sweeps
the leftovers of a crashed one, never another live run's), its namespaces under a temporary
``/tmp/dyt-rtnl-<pid>-*`` directory, and uses a 10.213.X.0/24 subnet no host route covers.
Traffic stays between those namespaces and the host.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Iterator

import pytest

from dockyard.errors import DockyardError
from dockyard.network import netns, rtnl
from dockyard.network.ipam import mac_for
from dockyard.network.rtnl import NetlinkError

pytestmark = pytest.mark.integration

PREFIX = f"dyt{os.getpid():06x}"
LINK_NAME = re.compile(r"^dyt([0-9a-f]{6})")
BASE_NAME = re.compile(r"/dyt-rtnl-(\d+)-[^/]*")
RULE_TAG = "dockyard-test"


def _sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _ip_json(*argv: str, netns_path: str | None = None) -> list[dict]:
    cmd = ["ip", "-j", *argv]
    if netns_path:
        cmd = ["nsenter", f"--net={netns_path}", *cmd]
    return json.loads(_sh(*cmd) or "[]")


def _name(kind: str) -> str:
    return f"{PREFIX}{kind}{secrets.token_hex(2)}"   # 14 characters: IFNAMSIZ allows 15


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _netns_inode() -> str:
    return os.readlink("/proc/thread-self/ns/net")


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", autouse=True)
def _host_ready() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the rtnetlink tests need root")
    missing = [t for t in ("ip", "nsenter") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install iproute2 util-linux")
    _sweep()
    yield


def _sweep() -> None:
    """What a crashed run left (its pid is gone): links first, then namespace mounts and their
    directories, then its FORWARD rules."""
    for line in _sh("ip", "-o", "link", "show").splitlines():
        name = line.split(": ", 2)[1].split("@", 1)[0]
        m = LINK_NAME.match(name)
        if m and _pid_gone(int(m[1], 16)):
            _sh("ip", "link", "del", name, check=False)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for point in reversed(mounts):
        m = BASE_NAME.search(point)
        if m and _pid_gone(int(m[1])):
            _sh("umount", "-l", point, check=False)
    for entry in os.listdir(tempfile.gettempdir()):
        m = re.match(r"dyt-rtnl-(\d+)-", entry)
        if m and _pid_gone(int(m[1])):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), entry), ignore_errors=True)
    if shutil.which("iptables"):
        for rule in _sh("iptables", "-w", "-S", "FORWARD", check=False).splitlines():
            m = re.search(r"-i (dyt[0-9a-f]{6}\w*) .*--comment " + RULE_TAG, rule)
            if m and LINK_NAME.match(m[1]) and _pid_gone(int(LINK_NAME.match(m[1])[1], 16)):
                _sh("iptables", "-w", *rule.replace("-A", "-D", 1).split(), check=False)


@pytest.fixture
def nsdir() -> Iterator[str]:
    """A directory for the test's namespaces; whatever is mounted below it is unmounted after."""
    base = tempfile.mkdtemp(prefix=f"dyt-rtnl-{os.getpid()}-")
    try:
        yield base
    finally:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in reversed(points):
            if point == base or point.startswith(base + "/"):
                _sh("umount", "-l", point, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def links() -> Iterator[list[str]]:
    """Names of host links the test makes, deleted (with ``ip``) after it."""
    made: list[str] = []
    try:
        yield made
    finally:
        for name in reversed(made):
            _sh("ip", "link", "del", name, check=False)


def _overlaps(a: str, b: str) -> bool:
    def span(cidr: str) -> tuple[int, int]:
        address, _, length = cidr.partition("/")
        start = int.from_bytes(bytes(int(x) for x in address.split(".")), "big")
        size = 1 << (32 - int(length))
        start -= start % size
        return start, start + size
    (s1, e1), (s2, e2) = span(a), span(b)
    return s1 < e2 and s2 < e1


@pytest.fixture
def subnet() -> str:
    """A 10.213.X.0/24 that no host route covers, so the test's addresses collide with nothing."""
    with rtnl.Netlink() as nl:
        used = [r for r in nl.routes() if not r.endswith("/0")]
    for third in sorted(range(256), key=lambda _: secrets.randbits(16)):
        candidate = f"10.213.{third}.0/24"
        if not any(_overlaps(candidate, r) for r in used):
            return candidate
    pytest.skip("no free 10.213.X.0/24 on this host")


def _prefix(subnet: str) -> str:
    return subnet.rsplit(".", 1)[0]


@pytest.fixture
def bridge(links: list[str], subnet: str) -> Iterator[tuple[str, str]]:
    """A test bridge, up, with the subnet's .1 on it: (name, gateway). Forwarding between its
    ports is accepted while it lives (bridged traffic crosses FORWARD: br_netfilter)."""
    name = _name("b")
    links.append(name)
    gateway = f"{_prefix(subnet)}.1"
    with rtnl.Netlink() as nl:
        nl.create_bridge(name)
        nl.add_address(name, f"{gateway}/24")
        nl.set_up(name)
    # Always, not only under a DROP policy: another suite may turn the policy to DROP meanwhile.
    rule = ["FORWARD", "-i", name, "-o", name, "-j", "ACCEPT", "-m", "comment", "--comment", RULE_TAG]
    ruled = bool(shutil.which("iptables")) and subprocess.run(
        ["iptables", "-w", "-I", *rule], capture_output=True).returncode == 0
    try:
        yield name, gateway
    finally:
        if ruled:
            _sh("iptables", "-w", "-D", *rule, check=False)


def _pinger() -> Callable[[str, str], subprocess.CompletedProcess]:
    if shutil.which("ping"):
        base = ["ping"]
    elif shutil.which("busybox"):
        base = ["busybox", "ping"]
    else:
        pytest.skip("no ping: apt-get install iputils-ping or busybox-static")

    def ping(netns_path: str, address: str) -> subprocess.CompletedProcess:
        # A few tries: a fresh bridge port may still be settling when the first packet goes.
        done = None
        for _ in range(3):
            done = subprocess.run(["nsenter", f"--net={netns_path}", *base, "-c1", "-W1", address],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                break
        return done
    return ping


# ------------------------------------------------------------------------------- pure parts

def test_mac_for_is_dockers() -> None:
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_for("10.213.255.1") == "02:42:0a:d5:ff:01"
    with pytest.raises(DockyardError):
        mac_for("172.17.0")


def test_imports_stay_cheap() -> None:
    """Neither module pulls typing, dataclasses, enum, ipaddress, socket or ctypes at import."""
    code = ("import sys; import dockyard.network.rtnl, dockyard.network.netns; "
            "print(' '.join(m for m in ('typing', 'dataclasses', 'enum', 'ipaddress', 'socket', 'ctypes', "
            "'pyroute2', 'subprocess') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


# ------------------------------------------------------------------------------- netns

def test_netns_create_exists_remove(nsdir: str) -> None:
    path = os.path.join(nsdir, "deep", "er", "ns1")   # parents made
    before = _netns_inode()
    netns.create(path)
    assert _netns_inode() == before, "create must leave the caller in its own namespace"
    assert netns.exists(path)
    assert f"net:[{os.stat(path).st_ino}]" != before
    lo = _ip_json("link", "show", "lo", netns_path=path)[0]
    assert "UP" in lo["flags"]
    addrs = _ip_json("-4", "addr", "show", "lo", netns_path=path)[0]["addr_info"]
    assert [a["local"] for a in addrs] == ["127.0.0.1"]
    assert [link["ifname"] for link in _ip_json("link", "show", netns_path=path)] == ["lo"]

    with pytest.raises(FileExistsError):
        netns.create(path)

    netns.remove(path)
    assert not netns.exists(path)
    assert not os.path.exists(path)
    assert not any(f" {path} " in line for line in open("/proc/self/mountinfo"))
    netns.remove(path)                                  # missing: fine
    plain = os.path.join(nsdir, "plain")
    open(plain, "w").close()
    assert not netns.exists(plain)                      # a file, not a namespace
    assert not netns.exists(nsdir)
    netns.remove(plain)                                 # not mounted: just unlinked
    assert not os.path.exists(plain)


def test_entered_switches_and_restores_even_on_error(nsdir: str) -> None:
    path = os.path.join(nsdir, "ns")
    netns.create(path)
    before = _netns_inode()
    with netns.entered(path):
        assert _netns_inode() == f"net:[{os.stat(path).st_ino}]"
        with rtnl.Netlink() as nl:   # a socket made here lives in the namespace
            assert nl.link_names() == ["lo"]
    assert _netns_inode() == before
    with pytest.raises(RuntimeError, match="boom"):
        with netns.entered(path):
            assert _netns_inode() != before
            raise RuntimeError("boom")
    assert _netns_inode() == before
    with pytest.raises(FileNotFoundError):
        with netns.entered(os.path.join(nsdir, "missing")):
            pass
    assert _netns_inode() == before


# ------------------------------------------------------------------------------- links

def test_bridge_lifecycle_and_errors(links: list[str]) -> None:
    name = _name("b")
    links.append(name)
    with rtnl.Netlink() as nl:
        assert nl.link_index(name) is None
        nl.create_bridge(name)
        index = nl.link_index(name)
        shown = _ip_json("-d", "link", "show", name)[0]
        assert index == shown["ifindex"]
        assert shown["linkinfo"]["info_kind"] == "bridge"
        assert name in nl.link_names()

        with pytest.raises(NetlinkError) as raised:
            nl.create_bridge(name)
        assert raised.value.errno == errno.EEXIST
        assert isinstance(raised.value, OSError)
        assert str(raised.value) == f"create bridge {name}: File exists"

        missing = _name("m")
        with pytest.raises(NetlinkError) as raised:
            nl.set_master(missing, name)
        assert raised.value.errno == errno.ENODEV and missing in str(raised.value)
        with pytest.raises(NetlinkError) as raised:
            nl.set_up(missing)
        assert raised.value.errno == errno.ENODEV and f"set {missing} up" in str(raised.value)
        with pytest.raises(NetlinkError) as raised:
            nl.add_address(missing, "10.213.0.1/24")
        assert raised.value.errno == errno.ENODEV
        with pytest.raises(NetlinkError) as raised:
            nl.create_bridge("x" * 16)                 # longer than IFNAMSIZ allows
        assert raised.value.errno == errno.EINVAL
        assert nl.link_index("x" * 16) is None

        assert nl.delete_link(name) is True
        assert nl.delete_link(name) is False
        assert nl.link_index(name) is None
    assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0


def test_generic_link_calls(nsdir: str, links: list[str], bridge: tuple[str, str], subnet: str) -> None:
    """create_veth / set_master / set_up / set_mac / add_address / add_default_route one by one,
    as the service layer may call them, each checked with ip."""
    br, gateway = bridge
    path = os.path.join(nsdir, "ns")
    netns.create(path)
    host_end, peer = _name("v"), "ceth0"
    links.append(host_end)
    peer_mac = "02:42:0a:d5:00:0a"
    address = f"{_prefix(subnet)}.10"
    with rtnl.Netlink() as nl:
        nl.create_veth(host_end, peer, peer_netns=path, peer_mac=peer_mac)
        with pytest.raises(NetlinkError) as raised:
            nl.create_veth(host_end, "other0")
        assert raised.value.errno == errno.EEXIST and f"create veth {host_end}" in str(raised.value)
        nl.set_master(host_end, br)
        nl.set_up(host_end)
        nl.set_mac(host_end, "02:00:00:00:00:aa")
    shown = _ip_json("-d", "link", "show", host_end)[0]
    assert shown["master"] == br
    assert "UP" in shown["flags"]
    assert shown["address"] == "02:00:00:00:00:aa"
    assert shown["linkinfo"]["info_kind"] == "veth"
    assert subprocess.run(["ip", "link", "show", peer], capture_output=True).returncode != 0   # not on the host

    with rtnl.Netlink(path) as inner:
        assert sorted(inner.link_names()) == ["ceth0", "lo"]
        inner.set_up(peer)
        inner.add_address(peer, f"{address}/24")
        inner.add_address(peer, f"{address}/24")        # already there: fine
        inner.add_default_route(gateway)
        with pytest.raises(NetlinkError) as raised:
            inner.add_default_route(gateway)
        assert raised.value.errno == errno.EEXIST
        assert inner.addresses(peer) == [(peer, f"{address}/24")]
        assert set(inner.routes()) == {"0.0.0.0/0", subnet}
    inside = _ip_json("-d", "addr", "show", peer, netns_path=path)[0]
    assert inside["address"] == peer_mac
    assert "UP" in inside["flags"]
    v4 = [a for a in inside["addr_info"] if a["family"] == "inet"]
    assert [(a["local"], a["prefixlen"], a["broadcast"]) for a in v4] == [(address, 24, f"{_prefix(subnet)}.255")]
    default = [r for r in _ip_json("route", "show", netns_path=path) if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in default] == [(gateway, peer)]

    # Both ends in the host namespace, then gone together.
    a, b = _name("v"), _name("w")
    links.extend([a, b])
    with rtnl.Netlink() as nl:
        nl.create_veth(a, b)
        assert nl.link_index(a) and nl.link_index(b)
        assert nl.delete_link(a)
        assert nl.link_index(b) is None


def test_attach_two_namespaces_and_ping(nsdir: str, links: list[str], bridge: tuple[str, str],
                                        subnet: str) -> None:
    br, gateway = bridge
    ping = _pinger()
    p = _prefix(subnet)
    a_path, b_path = os.path.join(nsdir, "a"), os.path.join(nsdir, "b")
    a_host, b_host = _name("a"), _name("c")
    links.extend([a_host, b_host])
    a_addr, b_addr = f"{p}.2", f"{p}.3"
    before = _netns_inode()
    for path, host_end, address, gw in ((a_path, a_host, a_addr, gateway), (b_path, b_host, b_addr, "")):
        netns.create(path)
        rtnl.attach_veth(path, host_end, br, "eth0", f"{address}/24", gw, mac_for(address))
    assert _netns_inode() == before

    for path, host_end, address in ((a_path, a_host, a_addr), (b_path, b_host, b_addr)):
        host_side = _ip_json("-d", "link", "show", host_end)[0]
        assert host_side["master"] == br and "UP" in host_side["flags"]
        eth0 = _ip_json("addr", "show", "eth0", netns_path=path)[0]
        assert eth0["address"] == mac_for(address)
        assert "UP" in eth0["flags"] and "LOWER_UP" in eth0["flags"]
        v4 = [(a["local"], a["prefixlen"], a.get("broadcast")) for a in eth0["addr_info"] if a["family"] == "inet"]
        assert v4 == [(address, 24, f"{p}.255")]
        with rtnl.Netlink(path) as inner:
            assert inner.addresses() == [("lo", "127.0.0.1/8"), ("eth0", f"{address}/24")]
    routes_a = {(r["dst"], r.get("gateway")) for r in _ip_json("route", "show", netns_path=a_path)}
    routes_b = {(r["dst"], r.get("gateway")) for r in _ip_json("route", "show", netns_path=b_path)}
    assert routes_a == {("default", gateway), (subnet, None)}
    assert routes_b == {(subnet, None)}                 # gateway "": no default route
    with rtnl.Netlink() as nl:
        assert subnet in nl.routes()
        assert nl.addresses(br) == [(br, f"{gateway}/24")]

    done = ping(a_path, b_addr)
    assert done.returncode == 0, done.stdout + done.stderr
    done = ping(b_path, a_addr)
    assert done.returncode == 0, done.stdout + done.stderr
    done = ping(a_path, gateway)
    assert done.returncode == 0, done.stdout + done.stderr

    with rtnl.Netlink() as nl:
        assert nl.delete_link(a_host) and nl.delete_link(b_host)
    assert [link["ifname"] for link in _ip_json("link", "show", netns_path=a_path)] == ["lo"]
    netns.remove(a_path)
    netns.remove(b_path)
    assert not netns.exists(a_path) and not netns.exists(b_path)


def test_teardown_then_same_names_at_once(nsdir: str, links: list[str], bridge: tuple[str, str],
                                          subnet: str) -> None:
    """Callers delete the host veth, then drop the namespace, and may re-create the same
    names straight away (a restart): no "File exists"."""
    br, gateway = bridge
    path = os.path.join(nsdir, "ns")
    host_end = _name("r")
    links.append(host_end)
    address = f"{_prefix(subnet)}.7"
    for _ in range(5):
        netns.create(path)
        rtnl.attach_veth(path, host_end, br, "eth0", f"{address}/24", gateway, mac_for(address))
        with rtnl.Netlink() as nl:
            assert nl.delete_link(host_end)
        netns.remove(path)
        assert not os.path.exists(path)
    with rtnl.Netlink() as nl:
        assert nl.link_index(host_end) is None


def test_attach_failures_leave_nothing_behind(nsdir: str, links: list[str], bridge: tuple[str, str],
                                              subnet: str) -> None:
    br, gateway = bridge
    path = os.path.join(nsdir, "ns")
    netns.create(path)
    host_end = _name("f")
    links.append(host_end)
    address = f"{_prefix(subnet)}.9"

    missing_bridge = _name("n")
    with pytest.raises(NetlinkError) as raised:
        rtnl.attach_veth(path, host_end, missing_bridge, "eth0", f"{address}/24", gateway, mac_for(address))
    assert raised.value.errno == errno.ENODEV and missing_bridge in str(raised.value)

    # A gateway outside the subnet: the route is refused after the pair exists; it is undone.
    with pytest.raises(NetlinkError) as raised:
        rtnl.attach_veth(path, host_end, br, "eth0", f"{address}/24", "10.213.0.254"
                         if not subnet.startswith("10.213.0.") else "10.213.1.254", mac_for(address))
    assert "default route" in str(raised.value)
    with rtnl.Netlink() as nl:
        assert nl.link_index(host_end) is None
    assert [link["ifname"] for link in _ip_json("link", "show", netns_path=path)] == ["lo"]

    with pytest.raises(OSError):
        rtnl.attach_veth(path, host_end, br, "eth0", "not-an-address", gateway, mac_for(address))
    with pytest.raises(FileNotFoundError):
        rtnl.attach_veth(os.path.join(nsdir, "missing"), host_end, br, "eth0", f"{address}/24", gateway,
                         mac_for(address))
    with rtnl.Netlink() as nl:
        assert nl.link_index(host_end) is None

    # The same names work once the failures are behind.
    rtnl.attach_veth(path, host_end, br, "eth0", f"{address}/24", gateway, mac_for(address))
    with rtnl.Netlink(path) as inner:
        assert inner.addresses("eth0") == [("eth0", f"{address}/24")]


def test_host_reads_agree_with_ip() -> None:
    """link_names / addresses / routes over the whole host namespace, against ip's view
    (read twice if another test changed the host in between)."""
    for _ in range(3):
        with rtnl.Netlink() as nl:
            names, addrs, routes = sorted(nl.link_names()), sorted(nl.addresses()), sorted(nl.routes())
        ip_names = sorted(link["ifname"] for link in _ip_json("link", "show"))
        ip_addrs = sorted((link["ifname"], f"{a['local']}/{a['prefixlen']}")
                          for link in _ip_json("-4", "addr", "show") for a in link["addr_info"])
        ip_routes = sorted({"0.0.0.0/0" if r["dst"] == "default" else
                            (r["dst"] if "/" in r["dst"] else r["dst"] + "/32")
                            for r in _ip_json("-4", "route", "show", "table", "main")})
        if (names, addrs, routes) == (ip_names, ip_addrs, ip_routes):
            break
    assert names == ip_names
    assert addrs == ip_addrs
    assert routes == ip_routes
