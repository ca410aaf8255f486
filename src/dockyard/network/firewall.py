"""Our iptables rules: egress NAT, forwarding, isolation and published ports of bridge networks.

Everything lives in chains of our own, shared by every dockyard root on the host, jumped to
from the top of the built-in chains; we never change a policy nor touch another tool's rule.
Each rule carries a comment naming what it serves, so one network's or one container's rules
can be found, removed and rebuilt without touching the others':

  dockyard                          a jump to one of our chains (shared by all roots)
  dockyard:net:<bridge>             a network's rules
  dockyard:ports:<owner>:<bridge>   a container's published ports (on that bridge)

filter                                         nat
  FORWARD -> DOCKYARD-FORWARD                    PREROUTING  -> DOCKYARD-DNS (gateway:53 redirect)
                                                 PREROUTING  (dst LOCAL) -> DOCKYARD-PORTS
    -> DOCKYARD-ISOLATION-1 (first rule)         OUTPUT      (dst LOCAL) -> DOCKYARD-PORTS
         -> DOCKYARD-ISOLATION-2                 POSTROUTING -> DOCKYARD-POSTROUTING
  INPUT   -> DOCKYARD-INPUT

Published ports are kernel NAT only (no userland proxy): DNAT from other hosts, from
containers and from the host itself (127.0.0.1 too: ``route_localnet`` on the bridge plus a
MASQUERADE of loopback sources going out to it), and a hairpin MASQUERADE for a container
reaching its own published port. The FORWARD accept of DNAT'ed traffic is one rule per
network (``--ctstate DNAT``), so publishing touches the nat table only.

Each call is one ``iptables-restore --noflush`` of a batch, after one ``iptables-save`` when
the current state must be read; a host-wide flock keeps two roots' read-modify-write cycles
from interleaving. Importing this module runs nothing.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError
from dockyard.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator

FORWARD = "DOCKYARD-FORWARD"
ISOLATION1 = "DOCKYARD-ISOLATION-1"
ISOLATION2 = "DOCKYARD-ISOLATION-2"
INPUT = "DOCKYARD-INPUT"
POSTROUTING = "DOCKYARD-POSTROUTING"
PORTS = "DOCKYARD-PORTS"
DNS = "DOCKYARD-DNS"

CHAINS = {"filter": (FORWARD, ISOLATION1, ISOLATION2, INPUT), "nat": (POSTROUTING, PORTS, DNS)}
TAG = "dockyard"
NET_TAG = "dockyard:net:"
PORTS_TAG = "dockyard:ports:"

# (table, chain, rule spec as iptables-save prints it): the jumps into our chains, each
# inserted at the top of its chain when missing. ISOLATION-1 must run before the ACCEPTs
# that follow it in DOCKYARD-FORWARD, hence a jump of its own at that chain's top.
JUMPS = (
    ("filter", "FORWARD", f"-m comment --comment {TAG} -j {FORWARD}"),
    ("filter", "INPUT", f"-m comment --comment {TAG} -j {INPUT}"),
    ("filter", FORWARD, f"-m comment --comment {TAG} -j {ISOLATION1}"),
    ("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -m comment --comment {TAG} -j {PORTS}"),
    ("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL -m comment --comment {TAG} -j {PORTS}"),
    ("nat", "POSTROUTING", f"-m comment --comment {TAG} -j {POSTROUTING}"),
    # Last: inserted after (so above) the ports' jump, a published port 53 cannot take the
    # containers' queries to their gateway.
    ("nat", "PREROUTING", f"-m comment --comment {TAG} -j {DNS}"),
)

LOCK = "/run/dockyard-firewall.lock"


class FirewallError(DockyardError):
    """iptables refused a batch (or is missing); the message is its own, on one line."""


@record(frozen=True)
class NetworkRules:
    bridge: str
    subnet: str        # "10.214.3.0/24"
    gateway: str       # "10.214.3.1"
    internal: bool = False
    # Where the DNS responder listens on the gateway: queries to <gateway>:53 from the bridge
    # are redirected there (so a host DNS server holding port 53 on every address does not
    # stand in its way); 0: it listens on 53 itself, no redirect.
    dns_port: int = 0


@record(frozen=True)
class PortRule:
    proto: str          # "tcp" | "udp" | "sctp"
    host_ip: str        # "" = every local address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


# ------------------------------------------------------------------------------- the API

def ensure_network(net: NetworkRules) -> None:
    """Our chains and jumps exist and exactly this network's rules are present (stale ones of
    its bridge replaced). Idempotent: one ``iptables-save`` and nothing else when all is in place."""
    _sysctls([net])
    with _locked():
        state = _save()
        batch = _Batch()
        _prelude(state, batch)
        tag = NET_TAG + net.bridge
        have = sorted(line for table, line in state.tagged(lambda t: t == tag))
        want = _network_rules(net)
        if not batch and have == sorted(line for _, line in want):
            return
        for table, line in state.tagged(lambda t: t == tag):
            batch.delete(table, line)
        batch.extend(want)
        _restore(batch)


def remove_network(bridge: str) -> None:
    """Every rule of this bridge, including the port rules on it; fine if there are none."""
    with _locked():
        state = _save()
        batch = _Batch()
        for table, line in state.tagged(_of_bridges({bridge})):
            batch.delete(table, line)
        if batch:
            _restore(batch)


def add_ports(owner: str, rules: "list[PortRule]") -> None:
    """Publish ``owner``'s (a container ID) ports: one ``iptables-restore`` without reading the
    state first. The DNAT rules go to the top of DOCKYARD-PORTS so that a stale rule for the same
    host port (a container that died without its tear-down) cannot shadow them."""
    if not rules:
        return
    batch = _Batch()
    batch.extend(_port_rules(owner, rules))
    with _locked():
        try:
            _restore(batch)
        except FirewallError:
            # Our chains are gone (flushed by hand, another root's reset, a firewall reload):
            # make them, then try once more.
            state = _save()
            prelude = _Batch()
            _prelude(state, prelude)
            if not prelude:
                raise
            prelude.extend(_port_rules(owner, rules))
            _restore(prelude)


def remove_ports(owner: str) -> None:
    """Every rule of ``owner``'s published ports; fine if there are none."""
    with _locked():
        state = _save("nat")
        batch = _Batch()
        for table, line in state.tagged(_of_owners({owner})):
            batch.delete(table, line)
        if batch:
            _restore(batch)


def reload(networks: "list[NetworkRules]", ports: "dict[str, list[PortRule]]") -> None:
    """Rebuild from the DB: remove every rule of these bridges (port rules on them included) and
    of these owners, then add them all again, in one batch."""
    _sysctls(networks)
    with _locked():
        state = _save()
        batch = _Batch()
        _prelude(state, batch)
        bridges = _of_bridges({n.bridge for n in networks})
        owners = _of_owners(set(ports))
        for table, line in state.tagged(lambda t: bridges(t) or owners(t)):
            batch.delete(table, line)
        for net in networks:
            batch.extend(_network_rules(net))
        for owner, rules in ports.items():
            batch.extend(_port_rules(owner, rules))
        _restore(batch)


def reset(bridges: "list[str]", owners: "list[str]") -> None:
    """Remove the rules of these bridges and owners; then our chains and the jumps to them, but
    only if no other rule is left in them (another root, or a hand-made rule, still uses them)."""
    with _locked():
        state = _save()
        batch = _Batch()
        of_bridges, of_owners = _of_bridges(set(bridges)), _of_owners(set(owners))
        gone = set()
        for table, line in state.tagged(lambda t: of_bridges(t) or of_owners(t)):
            batch.delete(table, line)
            gone.add((table, line))
        gone |= {(table, f"-A {chain} {spec}") for table, chain, spec in JUMPS}
        left = [(table, line) for table, line in state.lines()
                if _chain_of(line) in CHAINS.get(table, ()) and (table, line) not in gone]
        if not left:
            for table, chain, spec in JUMPS:
                line = f"-A {chain} {spec}"
                if line in state.rules.get(table, ()):
                    for _ in range(state.rules[table].count(line)):
                        batch.delete(table, line)
            for table, chains in CHAINS.items():
                for chain in chains:
                    if chain in state.chains.get(table, ()):
                        batch.add(table, f"-X {chain}")
        if batch:
            _restore(batch)


def bind_error(proto: str, host_ip: str, port: int) -> "str | None":
    """None if no host process holds the port, else Docker's text for it:
    ``listen tcp4 0.0.0.0:8080: bind: address already in use``."""
    import socket

    six = ":" in host_ip
    family = socket.AF_INET6 if six else socket.AF_INET
    address = host_ip or "0.0.0.0"
    kind, number = {"udp": (socket.SOCK_DGRAM, 0), "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}.get(
        proto, (socket.SOCK_STREAM, 0))
    try:
        sock = socket.socket(family, kind, number)
    except OSError:
        return None   # no such protocol here (sctp not loaded): nothing can hold the port
    try:
        if kind == socket.SOCK_STREAM:
            # As a listener would: a connection in TIME_WAIT does not hold the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as e:
        shown = f"[{address}]" if six else address
        reason = os.strerror(e.errno) if e.errno else str(e)
        return f"listen {proto}{'6' if six else '4'} {shown}:{port}: bind: {reason[:1].lower()}{reason[1:]}"
    finally:
        sock.close()
    return None


# ------------------------------------------------------------------------------- the rules

def _network_rules(net: NetworkRules) -> "list[tuple[str, str]]":
    """(table, ``-A chain spec``) of one network, each spec as iptables-save prints it (so that
    ensure_network can tell that nothing changed)."""
    br, c = net.bridge, f'-m comment --comment "{NET_TAG}{net.bridge}"'
    gw = _cidr(net.gateway)
    dns = [("filter", f"-A {INPUT} -d {gw} -i {br} -p {p} -m {p} --dport {net.dns_port or 53} {c} -j ACCEPT")
           for p in ("udp", "tcp")]
    if net.dns_port:
        dns += [("nat", f"-A {DNS} -d {gw} -i {br} -p {p} -m {p} --dport 53 {c} -j REDIRECT --to-ports {net.dns_port}")
                for p in ("udp", "tcp")]
    if net.internal:
        # Nothing leaves the bridge, nor comes into it, except to/from the host's gateway address
        # (replies to the host's own connections still come back).
        return [
            ("filter", f"-A {ISOLATION1} -i {br} ! -o {br} {c} -j DROP"),
            ("filter", f"-A {ISOLATION1} ! -i {br} -o {br} {c} -j DROP"),
            ("filter", f"-A {FORWARD} -i {br} -o {br} {c} -j ACCEPT"),
            *dns,
            ("filter", f"-A {INPUT} ! -d {gw} -i {br} -m conntrack ! --ctstate RELATED,ESTABLISHED {c} -j DROP"),
        ]
    return [
        # Into another of our bridges: dropped in stage 2 (one rule per bridge per stage), unless
        # DNAT'ed (a published port of a container on another network, as the proxy would allow).
        ("filter", f"-A {ISOLATION1} -i {br} ! -o {br} -m conntrack ! --ctstate DNAT {c} -j {ISOLATION2}"),
        ("filter", f"-A {ISOLATION2} -o {br} {c} -j DROP"),
        ("filter", f"-A {FORWARD} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT"),
        ("filter", f"-A {FORWARD} -o {br} -m conntrack --ctstate DNAT {c} -j ACCEPT"),
        ("filter", f"-A {FORWARD} -i {br} {c} -j ACCEPT"),        # within the bridge and out of it
        *dns,
        # route_localnet lets 127/8 in from the bridge: only replies of the host's own (DNAT'ed)
        # connections, never a container's new packet to the host's loopback services.
        ("filter", f"-A {INPUT} -d 127.0.0.0/8 -i {br} -m conntrack ! --ctstate RELATED,ESTABLISHED {c} -j DROP"),
        ("nat", f"-A {POSTROUTING} -s {_cidr(net.subnet)} ! -o {br} {c} -j MASQUERADE"),
        # The host's 127.0.0.1:port DNAT'ed into the bridge: the container must answer the gateway.
        ("nat", f"-A {POSTROUTING} -s 127.0.0.0/8 -o {br} {c} -j MASQUERADE"),
    ]


def _port_rules(owner: str, rules: "Iterable[PortRule]") -> "list[tuple[str, str]]":
    out: "list[tuple[str, str]]" = []
    for r in rules:
        c = f'-m comment --comment "{PORTS_TAG}{owner}:{r.bridge}"'
        dest = f"-d {_cidr(r.host_ip)} " if r.host_ip and r.host_ip != "0.0.0.0" else ""
        p = r.proto
        # Inserted at the top (see add_ports); the restore's "-I" is not how iptables-save prints
        # it, but nothing compares port rules with the saved text.
        out.append(("nat", f"-I {PORTS} 1 {dest}-p {p} -m {p} --dport {r.host_port} {c} "
                           f"-j DNAT --to-destination {r.container_ip}:{r.container_port}"))
        cip = _cidr(r.container_ip)
        hairpin = ("nat", f"-A {POSTROUTING} -s {cip} -d {cip} -p {p} -m {p} --dport {r.container_port} {c} "
                          f"-j MASQUERADE")
        if hairpin not in out:
            out.append(hairpin)
    return out


def _cidr(address: str) -> str:
    """``10.1.2.3`` -> ``10.1.2.3/32``, ``10.1.2.9/24`` -> ``10.1.2.0/24``: iptables-save's form."""
    ip, _, bits = address.partition("/")
    try:
        n = int(bits) if bits else 32
        parts = [int(x) for x in ip.split(".")]
        if len(parts) != 4 or not all(0 <= x <= 255 for x in parts) or not 0 <= n <= 32:
            raise ValueError
    except ValueError:
        raise FirewallError(f"not an IPv4 address: {address!r}") from None
    value = (parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]) & (((1 << n) - 1) << (32 - n))
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/{n}"


def _of_bridges(bridges: "set[str]") -> "Callable[[str], bool]":
    def match(tag: str) -> bool:
        if tag.startswith(NET_TAG):
            return tag[len(NET_TAG):] in bridges
        if tag.startswith(PORTS_TAG):
            return tag[len(PORTS_TAG):].partition(":")[2] in bridges
        return False
    return match


def _of_owners(owners: "set[str]") -> "Callable[[str], bool]":
    def match(tag: str) -> bool:
        return tag.startswith(PORTS_TAG) and tag[len(PORTS_TAG):].partition(":")[0] in owners
    return match


def _sysctls(networks: "Iterable[NetworkRules]") -> None:
    """Routing between the bridge and the rest (egress), and 127.0.0.1 DNAT'ed into the bridge."""
    _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    for net in networks:
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet", "1")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "r+") as f:
            if f.read().strip() != value:
                f.seek(0)
                f.write(value)
    except FileNotFoundError:
        pass   # the bridge is not there (yet): the next ensure_network/reload sets it
    except OSError as e:
        raise FirewallError(f"cannot set {path[len('/proc/sys/'):].replace('/', '.')}: {e.strerror or e}") from None


# ------------------------------------------------------------------------------- iptables

class _State:
    """One ``iptables-save``: per table, its chains and its ``-A`` lines in order."""

    __slots__ = ("chains", "rules")

    def __init__(self, text: str) -> None:
        self.chains: "dict[str, set[str]]" = {}
        self.rules: "dict[str, list[str]]" = {}
        table = ""
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
                self.chains.setdefault(table, set())
                self.rules.setdefault(table, [])
            elif line.startswith(":") and table:
                self.chains[table].add(line[1:].split(" ", 1)[0])
            elif line.startswith("-A ") and table:
                self.rules[table].append(line)

    def lines(self) -> "Iterator[tuple[str, str]]":
        for table, lines in self.rules.items():
            for line in lines:
                yield table, line

    def tagged(self, wanted: "Callable[[str], bool]") -> "Iterator[tuple[str, str]]":
        """(table, line) of our rules whose tag ``wanted`` accepts."""
        for table, line in self.lines():
            tag = _tag_of(line)
            if tag and wanted(tag):
                yield table, line


def _tag_of(line: str) -> str:
    at = line.find("--comment ")
    if at < 0:
        return ""
    rest = line[at + 10:]
    if rest.startswith('"'):
        tag = rest[1:].split('"', 1)[0]
    else:
        tag = rest.split(" ", 1)[0]
    return tag if tag.startswith(TAG) else ""


def _chain_of(line: str) -> str:
    return line.split(" ", 2)[1]


class _Batch:
    """Lines for ``iptables-restore --noflush``, per table, in order."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: "dict[str, list[str]]" = {}

    def __bool__(self) -> bool:
        return any(self.tables.values())

    def add(self, table: str, line: str) -> None:
        self.tables.setdefault(table, []).append(line)

    def delete(self, table: str, line: str) -> None:
        self.add(table, "-D" + line[2:])

    def extend(self, lines: "Iterable[tuple[str, str]]") -> None:
        for table, line in lines:
            self.add(table, line)

    def text(self) -> str:
        out = []
        for table, lines in self.tables.items():
            if lines:
                out += [f"*{table}", *lines, "COMMIT"]
        return "\n".join(out) + "\n"


def _prelude(state: _State, batch: _Batch) -> None:
    """Our chains and the jumps into them, where missing."""
    for table, chains in CHAINS.items():
        have = state.chains.get(table, set())
        for chain in chains:
            if chain not in have:
                batch.add(table, f"-N {chain}")
    for table, chain, spec in JUMPS:
        if f"-A {chain} {spec}" not in state.rules.get(table, ()):
            batch.add(table, f"-I {chain} 1 {spec}")


def _save(table: str = "") -> _State:
    """The current rules: of one table, or of all (one exec either way)."""
    return _State(_run(["iptables-save", "-t", table] if table else ["iptables-save"]))


def _restore(batch: _Batch) -> None:
    text = batch.text()
    try:
        _run(["iptables-restore", "--noflush", "-w"], text)
    except FirewallError as e:
        # "iptables-restore: line 3 failed: Bad rule ...": name the line, it says what failed.
        import re

        m = re.search(r"line:? (\d+)", e.message)
        lines = text.splitlines()
        if m and 0 < int(m[1]) <= len(lines):
            raise FirewallError(f"{e.message} ({lines[int(m[1]) - 1]})") from None
        raise


def _run(argv: "list[str]", stdin: "str | None" = None) -> str:
    import subprocess

    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"})
    except FileNotFoundError:
        raise FirewallError(f"{argv[0]} not found: install iptables") from None
    if done.returncode != 0:
        said = [line.strip() for line in done.stderr.splitlines()
                if line.strip() and not line.startswith("Try `")]
        raise FirewallError("; ".join(said) or f"{argv[0]} exited with {done.returncode}")
    return done.stdout


class _locked:
    """A host-wide flock around a read-modify-write of our chains (they are shared by every
    root); iptables' own lock does not cover the gap between our save and our restore."""

    __slots__ = ("fd",)

    def __enter__(self) -> None:
        import fcntl

        try:
            self.fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            self.fd = -1   # no /run to lock in: go on unlocked, iptables still serialises each batch
            return
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
