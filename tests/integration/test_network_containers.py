"""Containers on networks, as a user sees them: the default bridge, user networks with names,
--link, published ports, isolation, egress, connect/disconnect, and the clean-up.

Traffic goes only between the host and namespaces these tests create, plus one request
to the Debian mirror the machine's apt uses (the one outside destination allowed). The
tests on ``rt`` run under pyrunc and crun."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, dockyard_env, dy, rt, wait_for)
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - mounts crun's hugetlb fix

pytestmark = pytest.mark.integration


def _inspect(dy: Dockyard, name: str) -> dict:
    return json.loads(dy.cli("inspect", name, check=True).stdout)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_address() -> str:
    """The host's own non-loopback address (the one its default route leaves from)."""
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout
    return re.search(r"\bsrc (\S+)", out).group(1)


def _http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def _links_named(prefix: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in
            subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
            if line.split(":")[1].strip().startswith(prefix)]


def _rules_mentioning(text: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line]


# ---------------------------------------------------------------------------- the default bridge

def test_default_bridge_addresses_etc_files_and_names(rt: Dockyard) -> None:
    rt.cli("run", "-d", "--name", "db1", "busybox", "sleep", "60", check=True)
    rt.cli("run", "-d", "--name", "web1", "--hostname", "web", "--domainname", "example.org",
           "--add-host", "extra.test:10.1.2.3", "--dns-search", "corp.test", "--dns-option", "ndots:2",
           "busybox", "sleep", "60", check=True)
    db, web = _inspect(rt, "db1"), _inspect(rt, "web1")
    net = db["NetworkSettings"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", net["IPAddress"]) and net["IPPrefixLen"] > 0
    bridge = json.loads(rt.cli("network", "inspect", "bridge", check=True).stdout)[0]
    subnet, gateway = bridge["IPAM"]["Config"][0]["Subnet"], net["Gateway"]
    base = subnet.split("/")[0].rsplit(".", 1)
    assert gateway == f"{base[0]}.{int(base[1]) + 1}"   # (Docker shows a gateway only when one was chosen)
    assert net["Networks"]["bridge"]["NetworkID"] == bridge["Id"] and "Gateway" not in bridge["IPAM"]["Config"][0]
    assert net["MacAddress"] == "02:42:" + ":".join(f"{int(p):02x}" for p in net["IPAddress"].split("."))
    assert web["NetworkSettings"]["IPAddress"] != net["IPAddress"]
    assert set(bridge["Containers"]) == {db["Id"], web["Id"]}
    # inside: the address and route, the /etc files Docker writes
    addr = rt.cli("exec", "db1", "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
    assert f"{net['IPAddress']}/{net['IPPrefixLen']}" in addr
    assert f"default via {gateway}" in rt.cli("exec", "db1", "ip", "route", check=True).stdout
    hosts = rt.cli("exec", "web1", "cat", "/etc/hosts", check=True).stdout
    assert "10.1.2.3\textra.test" in hosts
    assert f"{web['NetworkSettings']['IPAddress']}\tweb.example.org web" in hosts
    assert rt.cli("exec", "web1", "hostname", check=True).stdout == "web\n"
    resolv = rt.cli("exec", "web1", "cat", "/etc/resolv.conf", check=True).stdout
    assert f"nameserver {gateway}" in resolv and "search corp.test" in resolv and "options ndots:2" in resolv
    # by IP, as the lesson does, and (beyond Docker) by name
    assert rt.cli("exec", "web1", "ping", "-c1", "-W2", net["IPAddress"]).returncode == 0
    lookup = rt.cli("exec", "db1", "nslookup", "web1")   # (busybox nslookup tries only web1's search domain)
    assert web["NetworkSettings"]["IPAddress"] in lookup.stdout, lookup.stdout + lookup.stderr
    assert rt.cli("exec", "db1", "ping", "-c1", "-W2", "web1").returncode == 0


def test_restart_keeps_address_rm_releases_it_and_leaves_nothing(rt: Dockyard) -> None:
    rt.cli("run", "-d", "--name", "ra", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 1", check=True)
    first = _inspect(rt, "ra")
    address, cid = first["NetworkSettings"]["IPAddress"], first["Id"]
    assert wait_for(lambda: _inspect(rt, "ra")["RestartCount"] >= 2, timeout=15)
    assert wait_for(lambda: _inspect(rt, "ra")["State"]["Running"], timeout=5)
    assert _inspect(rt, "ra")["NetworkSettings"]["IPAddress"] == address
    rt.cli("stop", "ra", check=True)
    assert _inspect(rt, "ra")["NetworkSettings"]["IPAddress"] == ""   # Docker shows none while stopped
    assert not _links_named(f"dy{cid[:11]}")
    rt.cli("start", "ra", check=True)
    assert _inspect(rt, "ra")["NetworkSettings"]["IPAddress"] == address
    rt.cli("rm", "-f", "ra", check=True)
    assert not _links_named(f"dy{cid[:11]}")
    assert not (rt.runroot / "netns" / cid).exists()
    engine = rt.engine()
    try:
        assert engine.db.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 0
    finally:
        engine.close()
    # the address is free again
    rt.cli("run", "-d", "--name", "rb", "busybox", "sleep", "60", check=True)
    assert _inspect(rt, "rb")["NetworkSettings"]["IPAddress"] == address


def test_run_rm_leaves_no_veth_or_namespace(dy: Dockyard) -> None:
    result = dy.cli("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0")
    assert result.returncode == 0 and "inet " in result.stdout, result.stderr
    assert [n for n in _links_named("dy") if not n.startswith("dy-")] == []   # no container veth (dy<id>)
    assert os.listdir(dy.runroot / "netns") == []


# ---------------------------------------------------------------------------- user networks

def test_user_network_names_aliases_and_isolation(rt: Dockyard) -> None:
    rt.cli("network", "create", "front", check=True)
    rt.cli("network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254", "back", check=True)
    rt.cli("run", "-d", "--name", "db", "--network", "back", "--network-alias", "database", "--ip", "10.231.7.9",
           "busybox", "sh", "-c", "echo hello-from-db > /tmp/i; httpd -f -p 80 -h /tmp", check=True)
    rt.cli("run", "-d", "--name", "app", "--network", "back", "busybox", "sleep", "60", check=True)
    rt.cli("run", "-d", "--name", "outsider", "--network", "front", "busybox", "sleep", "60", check=True)
    db = _inspect(rt, "db")["NetworkSettings"]["Networks"]["back"]
    assert db["IPAddress"] == "10.231.7.9" and db["Gateway"] == "10.231.7.254" and "database" in db["Aliases"]
    for name in ("db", "database", _inspect(rt, "db")["Id"][:12]):
        got = rt.cli("exec", "app", "wget", "-q", "-O", "-", f"http://{name}/i")
        assert got.stdout == "hello-from-db\n", (name, got.stderr)
    assert "10.231.7.9" in rt.cli("exec", "app", "nslookup", "database").stdout
    # isolation: another network neither resolves nor reaches it
    assert rt.cli("exec", "outsider", "nslookup", "db").returncode != 0
    assert rt.cli("exec", "outsider", "wget", "-q", "-T", "2", "-O", "-", "http://10.231.7.9/i").returncode != 0
    # in use: refused; the name disappears when the container stops
    rm = rt.cli("network", "rm", "back")
    assert rm.returncode == 1 and "has active endpoints" in rm.stderr
    rt.cli("stop", "-t", "1", "db", check=True)
    assert wait_for(lambda: rt.cli("exec", "app", "nslookup", "db").returncode != 0, timeout=5)


def test_a_hostname_is_a_name_on_user_networks(dy: Dockyard) -> None:
    """dockerd adds a container's own hostname (other than its name) to its user networks'
    aliases, after the short ID: compose's `hostname: mainhost` is reachable by it."""
    dy.cli("network", "create", "hn", check=True)
    dy.cli("run", "-d", "--name", "named", "--hostname", "mainhost", "--network", "hn", "--network-alias", "al",
           "busybox", "sleep", "60", check=True)
    inspected = _inspect(dy, "named")
    assert inspected["NetworkSettings"]["Networks"]["hn"]["Aliases"] == ["al", inspected["Id"][:12], "mainhost"]
    assert dy.cli("run", "--rm", "--network", "hn", "busybox", "ping", "-c1", "-W2", "mainhost").returncode == 0
    # joining its network namespace gives its hostname too, as dockerd does
    assert dy.cli("run", "--rm", "--network", "container:named", "busybox", "sh", "-c", "hostname; cat /etc/hostname",
                  check=True).stdout == "mainhost\nmainhost\n"
    dy.cli("run", "-d", "--name", "plain", "--network", "hn", "busybox", "sleep", "60", check=True)
    plain = _inspect(dy, "plain")
    assert plain["NetworkSettings"]["Networks"]["hn"]["Aliases"] == [plain["Id"][:12]]
    dy.cli("network", "connect", "bridge", "named", check=True)
    assert _inspect(dy, "named")["NetworkSettings"]["Networks"]["bridge"]["Aliases"] is None
    dy.cli("rm", "-f", "named", "plain", check=True)
    dy.cli("network", "rm", "hn", check=True)


def test_link_gives_hosts_entry_and_environment(rt: Dockyard) -> None:
    rt.cli("run", "-d", "--name", "db1", "--expose", "3306", "-e", "MARIADB_DATABASE=db", "busybox", "sleep", "60",
           check=True)
    address = _inspect(rt, "db1")["NetworkSettings"]["IPAddress"]
    out = rt.cli("run", "--rm", "--name", "wp", "--link", "db1:mysql", "busybox", "sh", "-c",
                 "grep mysql /etc/hosts; env | grep ^MYSQL_ | sort", check=True).stdout
    assert re.search(rf"^{re.escape(address)}\tmysql\b", out, re.M)
    assert f"MYSQL_PORT=tcp://{address}:3306" in out and f"MYSQL_PORT_3306_TCP_ADDR={address}" in out
    assert "MYSQL_ENV_MARIADB_DATABASE=db" in out and "MYSQL_NAME=/wp/mysql" in out
    missing = rt.cli("run", "--rm", "--link", "nope:x", "busybox", "true")
    assert missing.returncode == 125 and "could not get container for nope" in missing.stderr


def test_connect_and_disconnect_live(rt: Dockyard) -> None:
    rt.cli("network", "create", "extra", check=True)
    rt.cli("run", "-d", "--name", "srv", "--network", "extra", "busybox", "sleep", "60", check=True)
    rt.cli("run", "-d", "--name", "cc", "busybox", "sleep", "60", check=True)
    assert rt.cli("exec", "cc", "ping", "-c1", "-W1", "srv").returncode != 0
    rt.cli("network", "connect", "--alias", "side", "extra", "cc", check=True)
    assert "eth1" in rt.cli("exec", "cc", "ip", "-o", "link", check=True).stdout
    assert rt.cli("exec", "cc", "ping", "-c1", "-W2", "srv").returncode == 0
    assert rt.cli("exec", "srv", "ping", "-c1", "-W2", "side").returncode == 0
    nets = _inspect(rt, "cc")["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", "extra"}
    rt.cli("network", "disconnect", "extra", "cc", check=True)
    assert "eth1" not in rt.cli("exec", "cc", "ip", "-o", "link", check=True).stdout
    assert set(_inspect(rt, "cc")["NetworkSettings"]["Networks"]) == {"bridge"}


def test_internal_network_has_no_egress(rt: Dockyard) -> None:
    rt.cli("network", "create", "--internal", "sealed", check=True)
    rt.cli("run", "-d", "--name", "in1", "--network", "sealed", "busybox", "sleep", "60", check=True)
    rt.cli("run", "-d", "--name", "in2", "--network", "sealed", "busybox", "sleep", "60", check=True)
    assert rt.cli("exec", "in1", "ping", "-c1", "-W2", "in2").returncode == 0
    host = _host_address()
    port = _free_port()
    with socket.socket() as listener:   # a host service the container must not reach
        listener.bind(("0.0.0.0", port))
        listener.listen()
        assert rt.cli("exec", "in1", "nc", "-w", "2", host, str(port)).returncode != 0


# ---------------------------------------------------------------------------- published ports

def test_published_port_from_host_loopback_host_address_and_containers(rt: Dockyard) -> None:
    port = _free_port()
    rt.cli("run", "-d", "--name", "web", "-p", f"{port}:80", "-p", "127.0.0.1::81", "busybox", "sh", "-c",
           "echo hi > /tmp/index.html; httpd -p 81 -h /tmp; httpd -f -p 80 -h /tmp", check=True)
    web = _inspect(rt, "web")
    ports = web["NetworkSettings"]["Ports"]
    assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}]
    random_port = int(ports["81/tcp"][0]["HostPort"])
    assert ports["81/tcp"][0]["HostIp"] == "127.0.0.1"
    assert wait_for(lambda: _try(f"http://127.0.0.1:{port}/"), timeout=5) == "hi\n"
    assert _http_get(f"http://{_host_address()}:{port}/") == "hi\n"
    assert _http_get(f"http://127.0.0.1:{random_port}/") == "hi\n"
    assert rt.cli("port", "web", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n81/tcp -> 127.0.0.1:{random_port}\n"
    assert rt.cli("port", "web", "80", check=True).stdout == f"0.0.0.0:{port}\n"
    assert f"0.0.0.0:{port}->80/tcp" in rt.cli("ps", check=True).stdout
    with socket.socket() as late, pytest.raises(OSError):   # held for the container: nobody takes it
        late.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        late.bind(("0.0.0.0", port))
    # from another container, through the host's address
    got = rt.cli("run", "--rm", "busybox", "wget", "-q", "-O", "-", f"http://{_host_address()}:{port}/")
    assert got.stdout == "hi\n", got.stderr
    # a port already published, and one a host process holds: refused before the start
    taken = rt.cli("run", "-d", "--name", "web2", "-p", f"{port}:80", "busybox", "sleep", "60")
    assert taken.returncode == 125 and f"Bind for 0.0.0.0:{port} failed: port is already allocated" in taken.stderr
    assert _inspect(rt, "web2")["State"]["Status"] == "created"
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        busy = held.getsockname()[1]
        result = rt.cli("run", "-d", "-p", f"{busy}:80", "busybox", "sleep", "60")
        assert result.returncode == 125 and "address already in use" in result.stderr
    # released on stop
    rt.cli("stop", "-t", "1", "web", check=True)
    assert _try(f"http://127.0.0.1:{port}/") is None
    assert not _rules_mentioning(web["Id"])
    with socket.socket() as free_again:
        free_again.bind(("0.0.0.0", port))
    assert rt.cli("port", "web", check=True).stdout == ""


def _try(url: str) -> str | None:
    try:
        return _http_get(url, timeout=2)
    except OSError:
        return None


def test_stats_count_network_traffic(dy: Dockyard) -> None:
    port = _free_port()
    dy.cli("run", "-d", "--name", "talker", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
           "head -c 200000 /dev/zero > /tmp/big; httpd -f -p 80 -h /tmp", check=True)
    assert wait_for(lambda: _try(f"http://127.0.0.1:{port}/big") is not None, timeout=5)
    out = dy.cli("stats", "--no-stream", "--format", "{{.NetIO}}", "talker", check=True).stdout.strip()
    received, sent = out.split(" / ")
    assert sent.endswith("kB") and float(sent[:-2]) >= 200, out   # the 200 kB file went out


def test_udp_publish(rt: Dockyard) -> None:
    """busybox has no UDP server: the echo server runs in the container's network namespace
    (its SandboxKey), which is where the published port leads."""
    port = _free_port()
    rt.cli("run", "-d", "--name", "echo", "-p", f"127.0.0.1:{port}:5353/udp", "busybox", "sleep", "60", check=True)
    sandbox = _inspect(rt, "echo")["NetworkSettings"]["SandboxKey"]
    server = subprocess.Popen(["nsenter", f"--net={sandbox}", sys.executable, "-c",
                               "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                               "s.bind(('0.0.0.0', 5353))\nwhile True:\n    d, a = s.recvfrom(100)\n"
                               "    s.sendto(d, a)\n"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)

            def echoed() -> bool:
                s.sendto(b"ping\n", ("127.0.0.1", port))
                try:
                    return s.recvfrom(100)[0] == b"ping\n"
                except OSError:
                    return False

            assert wait_for(echoed, timeout=8)
    finally:
        server.kill()
        server.wait()


def test_publish_all_uses_expose(dy: Dockyard) -> None:
    dy.cli("run", "-d", "--name", "pa", "-P", "--expose", "7000", "--expose", "7001/udp", "busybox", "sleep", "60",
           check=True)
    ports = _inspect(dy, "pa")["NetworkSettings"]["Ports"]
    assert set(ports) == {"7000/tcp", "7001/udp"} and all(int(v[0]["HostPort"]) > 1024 for v in ports.values())


# ---------------------------------------------------------------------------- egress, many at once, faults

def _mirror() -> tuple[str, str]:
    """(host, path) of the Debian mirror this machine's apt uses."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        match = re.search(r"(?:URIs:|^deb)\s+(?:\[[^]]*\]\s+)?http://([^/\s]+)(/\S*)", text, re.M)
        if match:
            return match.group(1), match.group(2).rstrip("/")
    pytest.skip("no http Debian mirror configured for apt")


def test_egress_reaches_the_package_mirror_under_forward_drop(rt: Dockyard) -> None:
    host, path = _mirror()
    policy = re.search(r"^-P FORWARD (\w+)", subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True,
                                                            text=True).stdout, re.M).group(1)
    subprocess.run(["iptables", "-P", "FORWARD", "DROP"], check=True)   # as dockerd leaves it
    try:
        # (busybox-static's wget crashes with -T or -q --spider: plain --spider -S it is)
        result = rt.cli("run", "--rm", "busybox", "wget", "-S", "--spider", f"http://{host}{path}/dists/bookworm/Release")
        assert result.returncode == 0 and "200 OK" in result.stderr, result.stderr
    finally:
        subprocess.run(["iptables", "-P", "FORWARD", policy], check=True)


def test_twenty_at_once_get_distinct_addresses_and_resolve(dy: Dockyard) -> None:
    dy.cli("network", "create", "many", check=True)
    procs = [dy.popen("run", "-d", "--name", f"m{i}", "--network", "many", "busybox", "sleep", "60",
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(20)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    addresses = {_inspect(dy, f"m{i}")["NetworkSettings"]["Networks"]["many"]["IPAddress"] for i in range(20)}
    assert len(addresses) == 20
    names = " ".join(f"m{i}" for i in range(20))
    out = dy.cli("exec", "m0", "sh", "-c", f"for n in {names}; do nslookup $n >/dev/null || echo FAIL $n; done")
    assert out.returncode == 0 and "FAIL" not in out.stdout, out.stdout


def test_cli_killed_mid_run_is_reclaimed(dy: Dockyard) -> None:
    """kill -9 of `run` at points along the start: whatever it left, `rm`/`system prune` take."""
    for delay in (0.05, 0.1, 0.15, 0.2, 0.3):
        p = dy.popen("run", "-d", "--name", "victim", "-p", "127.0.0.1::80", "busybox", "sleep", "60",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        dy.cli("rm", "-f", "victim")
        dy.cli("system", "prune", "-f", check=True)
        engine = dy.engine()
        try:
            assert engine.db.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 0
            assert engine.db.execute("SELECT COUNT(*) FROM published_ports").fetchone()[0] == 0
        finally:
            engine.close()
        netns_dir = dy.runroot / "netns"
        assert not netns_dir.exists() or os.listdir(netns_dir) == []
        assert [n for n in _links_named("dy") if not n.startswith("dy-")] == []


def test_bad_input_gets_one_line_and_nothing_half_made(dy: Dockyard) -> None:
    dy.cli("network", "create", "--subnet", "10.232.0.0/16", "one", check=True)
    overlap = dy.cli("network", "create", "--subnet", "10.232.5.0/24", "two")
    assert overlap.returncode == 1 and overlap.stderr.count("\n") == 1 and "overlaps" in overlap.stderr
    assert dy.cli("network", "inspect", "two").returncode == 1
    outside = dy.cli("run", "-d", "--network", "one", "--ip", "10.9.9.9", "busybox", "sleep", "60")
    assert outside.returncode == 125 and "10.9.9.9" in outside.stderr
    unknown = dy.cli("run", "--rm", "--network", "nowhere", "busybox", "true")
    assert unknown.returncode == 125 and "network nowhere not found" in unknown.stderr
    bad_name = dy.cli("network", "create", "bad name")
    assert bad_name.returncode == 1 and "invalid network name" in bad_name.stderr
    bad_alias = dy.cli("run", "--rm", "--network", "one", "--network-alias", "-db", "busybox", "true")
    assert bad_alias.returncode == 125 and "not a valid DNS name" in bad_alias.stderr
    for mode in ("none", "bridge"):
        alias = dy.cli("run", "--rm", "--network", mode, "--network-alias", "db", "busybox", "true")
        assert alias.returncode == 125 and "supported only for containers in user defined networks" in alias.stderr
    bad_port = dy.cli("run", "--rm", "-p", "99999:80", "busybox", "true")
    assert bad_port.returncode == 125 and "invalid hostPort" in bad_port.stderr
    assert dy.cli("network", "rm", "bridge").returncode == 1
    listed = dy.cli("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout.split("\n")
    assert {"bridge bridge", "host host", "none null", "one bridge"} <= set(listed)


def test_host_and_none_modes(dy: Dockyard) -> None:
    none = dy.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link", check=True).stdout
    assert "eth0" not in none and "lo" in none
    host = dy.cli("run", "--rm", "--network", "host", "busybox", "hostname", check=True).stdout
    assert host.strip() == os.uname().nodename
    dy.cli("run", "-d", "--name", "holder", "busybox", "sleep", "60", check=True)
    shared = dy.cli("run", "--rm", "--network", "container:holder", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
                    check=True).stdout
    assert _inspect(dy, "holder")["NetworkSettings"]["IPAddress"] in shared


def test_reload_rebuilds_rules_and_a_lost_bridge_comes_back(dy: Dockyard) -> None:
    """After a firewall flush, `network reload` puts our rules back from the state; after a
    reboot (the bridge gone), the next container makes it again."""
    from dockyard.network import firewall

    port = _free_port()
    dy.cli("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
           "echo up > /tmp/index.html; httpd -f -p 80 -h /tmp", check=True)
    assert wait_for(lambda: _try(f"http://127.0.0.1:{port}/"), timeout=5) == "up\n"
    bridge = json.loads(dy.cli("network", "inspect", "bridge", check=True).stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    firewall.remove_network(bridge)          # as a firewall reload by another tool would
    assert not _rules_mentioning(f"dockyard:net:{bridge}")
    assert _try(f"http://127.0.0.1:{port}/") is None
    assert "bridge" in dy.cli("network", "reload", check=True).stdout.split()
    assert _try(f"http://127.0.0.1:{port}/") == "up\n"
    dy.cli("rm", "-f", "web", check=True)
    subprocess.run(["ip", "link", "del", bridge], check=True)
    firewall.remove_network(bridge)
    out = dy.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
    assert "inet " in out and bridge in _links_named(bridge)
    assert _rules_mentioning(f"dockyard:net:{bridge}")


def test_system_reset_removes_bridges_rules_and_the_responder(dy: Dockyard, busybox_tar: Path) -> None:
    dy.cli("network", "create", "gone", check=True)
    dy.cli("run", "-d", "--name", "r1", "--network", "gone", "-p", "127.0.0.1::80", "busybox", "sleep", "60",
           check=True)
    engine = dy.engine()
    try:
        bridges = [engine.networks.get(n).bridge for n in ("bridge", "gone")]
    finally:
        engine.close()
    assert all(_links_named(b) for b in bridges)
    pid_file = dy.runroot / "dns" / "dnsd.pid"
    assert wait_for(pid_file.exists, timeout=5)
    pid = int(pid_file.read_text())
    dy.cli("system", "reset", "--force", check=True)
    for bridge in bridges:
        assert not _links_named(bridge) and not _rules_mentioning(f"dockyard:net:{bridge}")
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or b"dnsd" not in Path(f"/proc/{pid}/cmdline")
                    .read_bytes(), timeout=5)
    engine = dy.engine()   # the module's later tests need their image back
    try:
        engine.images.import_(str(busybox_tar), "busybox", ['CMD ["sh"]'])
    finally:
        engine.close()


def test_bip_setting_places_the_default_bridge(dy: Dockyard, tmp_path: Path, busybox_tar: Path) -> None:
    """`bip` in settings.json (Docker's daemon.json word) sets the default bridge's gateway and
    subnet, for a root whose default bridge is not made yet."""
    from tests.integration.test_containers_harness import Dockyard as Root

    other = Root(tmp_path / "bip")
    other.root.mkdir(parents=True)
    (other.root / "settings.json").write_text(json.dumps({"bip": "10.233.44.1/24", "bridge": "dybip0"}))
    engine = other.engine()
    try:
        engine.images.import_(str(busybox_tar), "busybox", ['CMD ["sh"]'])
        out = other.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
        assert "inet 10.233.44.2/24" in out
        assert "dybip0" in _links_named("dybip0")
    finally:
        engine.networks.reset()
        engine.close()


def test_a_deleted_roots_bridge_reservation_is_reclaimed(tmp_path: Path) -> None:
    """A root records its default bridge's name with a down link named after it (another root
    sees the name taken). The root deleted without `system reset` leaves that link; the next
    root picking a name deletes it and takes the name, as it would a free one."""
    import shutil

    from tests.integration.test_containers_harness import Dockyard as Root

    first, second = Root(tmp_path / "first"), Root(tmp_path / "second")
    for root in (first, second):
        root.root.mkdir(parents=True)
        (root.root / "settings.json").write_text(json.dumps({"bridge": "dyreclaim0"}))
    try:
        first.cli("network", "ls", check=True)
        shown = subprocess.run(["ip", "link", "show", "dyreclaim0"], capture_output=True, text=True).stdout
        assert f"alias dockyard root {first.root}" in shown and ",UP" not in shown
        shutil.rmtree(first.root)
        second.cli("network", "ls", check=True)
        shown = subprocess.run(["ip", "link", "show", "dyreclaim0"], capture_output=True, text=True).stdout
        assert f"alias dockyard root {second.root}" in shown
        assert not _links_named("dyreclaim1")
        second.cli("system", "reset", "--force", check=True)
        assert not _links_named("dyreclaim0")
    finally:
        for name in ("dyreclaim0", "dyreclaim1"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_a_deleted_roots_user_bridges_are_reclaimed(tmp_path: Path) -> None:
    """A root deleted without `system reset` leaves its user networks' bridges up, with their
    addresses (routes that keep their subnets from new networks) and firewall rules. The next
    `network create` or `network prune` of any root deletes them, rules and all; a bridge that
    still has a port (a container of the vanished root runs on) is left alone."""
    import shutil

    from tests.integration.test_containers_harness import Dockyard as Root

    gone, other = Root(tmp_path / "gone"), Root(tmp_path / "other")
    for root in (gone, other):
        root.root.mkdir(parents=True)
    try:
        for name in ("dyorphan1", "dyorphan2"):
            gone.cli("network", "create", "-o", f"com.docker.network.bridge.name={name}", name, check=True)
            assert ",UP" in subprocess.run(["ip", "link", "show", name], capture_output=True, text=True).stdout
            assert _rules_mentioning(f"dockyard:net:{name}")
        # a port on dyorphan2, as a still-running container of the deleted root would hold
        subprocess.run(["ip", "link", "add", "dyorphanv0", "type", "veth", "peer", "name", "dyorphanv1"], check=True)
        subprocess.run(["ip", "link", "set", "dyorphanv0", "master", "dyorphan2"], check=True)
        shutil.rmtree(gone.root)
        other.cli("network", "create", "fresh", check=True)
        assert not _links_named("dyorphan1") and not _rules_mentioning("dockyard:net:dyorphan1")
        assert _links_named("dyorphan2") and _rules_mentioning("dockyard:net:dyorphan2")
        subprocess.run(["ip", "link", "del", "dyorphanv0"], check=True)
        other.cli("network", "prune", "-f", check=True)
        assert not _links_named("dyorphan2") and not _rules_mentioning("dockyard:net:dyorphan2")
        other.cli("system", "reset", "--force", check=True)
    finally:
        for name in ("dyorphanv0", "dyorphan1", "dyorphan2"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        from dockyard.network import firewall

        for name in ("dyorphan1", "dyorphan2"):
            firewall.remove_network(name)


def test_shim_killed_leaves_nothing_the_next_command_keeps(dy: Dockyard) -> None:
    port = _free_port()
    cid = dy.cli("run", "-d", "--name", "orphan", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60",
                 check=True).stdout.strip()
    pid = _inspect(dy, "orphan")["State"]["Pid"]
    shim = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(shim, signal.SIGKILL)
    assert wait_for(lambda: _inspect(dy, "orphan")["State"]["Status"] == "exited", timeout=10)
    assert not (dy.runroot / "netns" / cid).exists()
    assert not _rules_mentioning(cid) and not _links_named(f"dy{cid[:11]}")
    with socket.socket() as s:   # the port is free again
        s.bind(("127.0.0.1", port))
    dy.cli("start", "orphan", check=True)   # and it starts again with its address
    assert _inspect(dy, "orphan")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)


def test_names_resolve_while_a_host_dns_server_holds_port_53(dy: Dockyard) -> None:
    """The responder listens on its own port; the firewall redirects <gateway>:53 to it, so a
    DNS server the host runs on every address (bind, dnsmasq) does not stand in its way."""
    udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
    try:
        try:
            udp.bind(("0.0.0.0", 53))
            tcp.bind(("0.0.0.0", 53))
            tcp.listen()
        except OSError:
            pytest.skip("port 53 is taken on this host already")
        dy.cli("network", "create", "dnsheld", check=True)
        dy.cli("run", "-d", "--name", "named1", "--network", "dnsheld", "busybox", "sleep", "60", check=True)
        address = _inspect(dy, "named1")["NetworkSettings"]["Networks"]["dnsheld"]["IPAddress"]
        out = dy.cli("run", "--rm", "--network", "dnsheld", "busybox", "nslookup", "named1")
        assert address in out.stdout, out.stdout + out.stderr
    finally:
        udp.close()
        tcp.close()


def _key_paths(value: object, prefix: str = "") -> dict[str, str]:
    """Every key path of a JSON document with its value's type (lists by their first item)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            key = re.sub(r"^[0-9a-f]{64}$", "<id>", key)
            out.update(_key_paths(item, f"{prefix}.{key}"))
    elif isinstance(value, list):
        out[prefix] = "list"
        for item in value[:1]:
            out.update(_key_paths(item, prefix + "[]"))
    else:
        out[prefix] = type(value).__name__
    return out


def test_inspect_shapes_match_dockers(dy: Dockyard) -> None:
    """The recorded scenario (tests/compat/docker20.10-networks.json) run here: NetworkSettings
    and network inspect carry docker's key paths with docker's value types; /etc/hosts and the
    link variables read the same."""
    docker = json.loads((Path(__file__).parents[1] / "compat" / "docker20.10-networks.json").read_text())
    dy.cli("network", "create", "--subnet", "10.240.3.0/24", "front", check=True)
    dy.cli("run", "-d", "--name", "db1", "--expose", "3306", "busybox", "sleep", "300", check=True)
    dy.cli("run", "-d", "--name", "web", "-p", "127.0.0.1:18080:80", "--link", "db1:db", "--dns", "1.1.1.1",
           "--add-host", "x:10.0.0.1", "busybox", "sleep", "300", check=True)
    dy.cli("run", "-d", "--name", "app", "--network", "front", "--network-alias", "appalias", "busybox", "sleep",
           "300", check=True)
    mine = {"web": _inspect(dy, "web"), "app": _inspect(dy, "app"),
            "net_bridge": json.loads(dy.cli("network", "inspect", "bridge", check=True).stdout)[0],
            "net_front": json.loads(dy.cli("network", "inspect", "front", check=True).stdout)[0]}
    for key in mine:
        theirs, ours = _key_paths(docker[key]), _key_paths(mine[key])
        if key in ("web", "app"):
            theirs = {k: v for k, v in theirs.items() if k.startswith(".NetworkSettings")}
            ours = {k: v for k, v in ours.items() if k.startswith(".NetworkSettings")}
        missing = {k: v for k, v in theirs.items() if ours.get(k) != v and "DNSNames" not in k}
        assert not missing, (key, missing, {k: ours.get(k) for k in missing})
    assert mine["web"]["HostConfig"]["Links"] == docker["web"]["HostConfig"]["Links"]
    assert mine["app"]["NetworkSettings"]["Networks"]["front"]["Aliases"] == ["appalias", mine["app"]["Id"][:12]]

    def shape(hosts: str) -> list[str]:   # addresses and IDs differ between runs
        return [re.sub(r"\b[0-9a-f]{12}\b", "<id>", re.sub(r"\d+\.\d+\.\d+\.\d+", "<ip>", line))
                for line in hosts.splitlines()]

    assert shape(dy.cli("exec", "web", "cat", "/etc/hosts", check=True).stdout) == shape(docker["hosts"])
    def link_env(env: str) -> list[str]:
        return [re.sub(r"\d+\.\d+\.\d+\.\d+", "<ip>", v) for v in env.splitlines() if v.startswith("DB_")]

    assert link_env(dy.cli("exec", "web", "env", check=True).stdout) == link_env(docker["env"])
