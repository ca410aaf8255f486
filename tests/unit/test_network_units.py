"""Address management, the -p grammar and the network store, without the kernel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.network import ipam, ports
from dockyard.network.store import Network, NetworkStore
from dockyard.store import db

pytestmark = pytest.mark.unit


def test_cidr_arithmetic() -> None:
    assert ipam.parse_cidr("172.17.0.0/16") == (ipam.to_int("172.17.0.0"), 16)
    with pytest.raises(DockyardError, match="it should be 10.1.0.0/16"):
        ipam.parse_cidr("10.1.2.3/16")
    for bad in ("10.1.2/24", "10.1.2.300/24", "10.1.2.0/33", "10.1.2.0"):
        with pytest.raises(DockyardError):
            ipam.parse_cidr(bad)
    assert ipam.overlaps(ipam.parse_cidr("10.0.0.0/8"), ipam.parse_cidr("10.3.0.0/16"))
    assert not ipam.overlaps(ipam.parse_cidr("10.4.0.0/16"), ipam.parse_cidr("10.3.0.0/16"))
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_dns_names() -> None:
    for good in ("db", "my-db", "db.example", "a1", "my_db", "my_app-web-1", "_svc"):
        assert ipam.check_dns_name(good) == good
    for bad in ("-db", "db-", "my db", "db..x", "x" * 64, "ü"):
        with pytest.raises(DockyardError, match="not a valid DNS name"):
            ipam.check_dns_name(bad)


def test_pool_skips_what_the_host_routes() -> None:
    assert ipam.free_pool([]) == "172.17.0.0/16"
    assert ipam.free_pool(["172.17.0.0/16", "172.18.5.0/24"]) == "172.19.0.0/16"
    assert ipam.free_pool([f"172.{n}.0.0/16" for n in range(17, 32)]) == "192.168.0.0/20"


def test_first_free_respects_range_gateway_and_broadcast() -> None:
    gw = ipam.to_int("10.9.0.1")
    assert ipam.to_str(ipam.first_free("10.9.0.0/24", "", {gw})) == "10.9.0.2"
    assert ipam.to_str(ipam.first_free("10.9.0.0/24", "10.9.0.128/25", {gw})) == "10.9.0.128"
    full = {ipam.to_int(f"10.9.0.{n}") for n in range(1, 255)}
    assert ipam.first_free("10.9.0.0/24", "", full) is None   # .255 is the broadcast address


def test_publish_grammar() -> None:
    exposed, bindings = ports.parse_publish(["80", "8080:80", "127.0.0.1:5000:5000", "127.0.0.1::53/udp",
                                             "9000-9001:90-91", "7000-7010:70"])
    assert set(exposed) == {"80/tcp", "5000/tcp", "53/udp", "90/tcp", "91/tcp", "70/tcp"}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": ""}, {"HostIp": "", "HostPort": "8080"}]
    assert bindings["5000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "5000"}]
    assert bindings["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert bindings["91/tcp"] == [{"HostIp": "", "HostPort": "9001"}]
    assert bindings["70/tcp"] == [{"HostIp": "", "HostPort": "7000-7010"}]
    for bad, message in (("80/xyz", "invalid proto"), ("1:2:3:4", "invalid port format"), ("abc", "invalid containerPort"),
                         ("70000:80", "invalid hostPort"), ("8000-8002:80-81", "invalid ranges")):
        with pytest.raises(DockyardError, match=message):
            ports.parse_publish([bad])
    wanted = ports.bindings_wanted({"PortBindings": bindings, "PublishAllPorts": False}, {})
    assert ("tcp", "", 7000, 7010, 70) in wanted and ("udp", "127.0.0.1", 0, 0, 53) in wanted


def _store(tmp_path: Path) -> NetworkStore:
    conn = db.connect(tmp_path)
    for cid in ("a" * 64, "b" * 64, "c" * 64):
        conn.execute("INSERT INTO containers (id, name, image_id, image, created, status, config) VALUES (?,?,?,?,?,?,?)",
                     (cid, cid[:3], "sha256:x", "x", 0, "created", "{}"))
    return NetworkStore(conn)


def test_allocation_is_stable_unique_and_released(tmp_path: Path) -> None:
    store = _store(tmp_path)
    net = Network(id="n" * 64, name="n1", driver="bridge", bridge="dyt", subnet="10.9.0.0/29", gateway="10.9.0.1")
    store.add(net)
    a = store.allocate(net, "a" * 64)
    assert (a.address, a.ifname, a.mac) == ("10.9.0.2", "eth0", "02:42:0a:09:00:02")
    assert store.allocate(net, "a" * 64).address == "10.9.0.2"        # kept across starts
    with pytest.raises(DockyardError, match="already in use"):
        store.allocate(net, "b" * 64, address="10.9.0.2")
    with pytest.raises(DockyardError, match="no configured subnet"):
        store.allocate(net, "b" * 64, address="10.8.0.9")
    assert store.allocate(net, "b" * 64, address="10.9.0.5").address == "10.9.0.5"
    store.conn.execute("DELETE FROM containers WHERE id = ?", ("a" * 64,))   # rm: the address goes with it
    assert store.allocate(net, "c" * 64).address == "10.9.0.2"


def test_concurrent_allocations_never_collide(tmp_path: Path) -> None:
    store = _store(tmp_path)
    net = Network(id="n" * 64, name="n1", driver="bridge", bridge="dyt", subnet="10.9.0.0/24", gateway="10.9.0.1")
    store.add(net)
    cids = [f"{n:064x}" for n in range(20)]
    for cid in cids:
        store.conn.execute("INSERT INTO containers (id, name, image_id, image, created, status, config) "
                           "VALUES (?,?,?,?,?,?,?)", (cid, "c" + cid[-4:], "sha256:x", "x", 0, "created", "{}"))
    got: list[str] = []

    def take(cid: str) -> None:
        got.append(NetworkStore(db.connect(tmp_path)).allocate(net, cid).address)

    threads = [threading.Thread(target=take, args=(cid,)) for cid in cids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 20 and len(set(got)) == 20


def test_published_ports_conflicts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    free = lambda proto, ip, port: None  # noqa: E731
    store.publish("a" * 64, [("tcp", "", 8080, 8080, 80)], "10.9.0.2", free)
    with pytest.raises(DockyardError, match="Bind for 127.0.0.1:8080 failed: port is already allocated"):
        store.publish("b" * 64, [("tcp", "127.0.0.1", 8080, 8080, 80)], "10.9.0.3", free)
    # another protocol, or a range with a free port, is fine
    store.publish("b" * 64, [("udp", "", 8080, 8080, 80), ("tcp", "", 8080, 8082, 81)], "10.9.0.3", free)
    assert [(p.proto, p.host_port) for p in store.ports("b" * 64)] == [("udp", 8080), ("tcp", 8081)]
    held = lambda proto, ip, port: "listen tcp4 0.0.0.0:9999: bind: address already in use"  # noqa: E731
    with pytest.raises(DockyardError, match="address already in use"):
        store.publish("c" * 64, [("tcp", "", 9999, 9999, 80)], "10.9.0.4", held)
    assert store.ports("c" * 64) == []   # all or nothing
    random_port = store.publish("c" * 64, [("tcp", "", 0, 0, 80)], "10.9.0.4", free)[0].host_port
    assert 1024 < random_port < 65536
