"""Networks, endpoints and published ports in the state DB.

This module owns the ``networks``, ``endpoints`` and ``published_ports`` tables. Address
management happens here, inside one write transaction per allocation: concurrent
``run``s serialise on sqlite's write lock, and the UNIQUE (network, address) constraint
makes a duplicate impossible even so. An endpoint lives from a container's first start to
its removal (the address is kept across restarts); deleting the container's row deletes
its endpoints and ports (ON DELETE CASCADE), so a removal cannot leak an address.
Published ports live while the container runs: the shim's tear-down deletes them; those
of a shim killed -9 go when the next command notices its death.
"""

from __future__ import annotations

import json
import time

from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.network import ipam
from dockyard.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any, Iterable

ACTIVE = ("running", "paused", "restarting")


class NetworkNotFound(NotFoundError):
    exit_code = 1


class AddressError(DockyardError):
    exit_code = 125


@record
class Network:
    id: str
    name: str
    driver: str                   # bridge | host | null
    bridge: str = ""
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    dns: bool = True
    created: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@record
class Endpoint:
    id: str
    network_id: str
    container_id: str
    address: str
    mac: str
    aliases: list[str]
    ifname: str
    static: bool = False

    @property
    def index(self) -> int:
        return int(self.ifname[3:] or 0)   # eth<N>


@record
class PublishedPort:
    proto: str
    host_ip: str
    host_port: int
    container_port: int
    container_ip: str


class NetworkStore:
    def __init__(self, conn: "sqlite3.Connection") -> None:
        self.conn = conn

    # ------------------------------------------------------------------ networks

    def add(self, net: Network) -> None:
        import sqlite3

        try:
            self.conn.execute(
                "INSERT INTO networks (id, name, driver, bridge, subnet, gateway, ip_range, internal, dns, created,"
                " labels, options) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (net.id, net.name, net.driver, net.bridge, net.subnet, net.gateway, net.ip_range, int(net.internal),
                 int(net.dns), net.created, json.dumps(net.labels), json.dumps(net.options)))
        except sqlite3.IntegrityError:
            raise ConflictError(f"network with name {net.name} already exists") from None

    def add_checked(self, net: Network, check: "Any") -> None:
        """Insert ``net`` after ``check(existing networks)`` passed, in one transaction: two
        creates cannot both take one subnet or bridge name."""
        from dockyard.store.db import transaction

        with transaction(self.conn):
            check(self.all())
            self.add(net)

    def all(self) -> list[Network]:
        return [_network(r) for r in self.conn.execute("SELECT * FROM networks ORDER BY created")]

    def get(self, network_id: str) -> Network | None:
        row = self.conn.execute("SELECT * FROM networks WHERE id = ?", (network_id,)).fetchone()
        return _network(row) if row is not None else None

    def find(self, typed: str) -> Network | None:
        """By full name, full ID, or unique ID prefix (Docker's order)."""
        row = self.conn.execute("SELECT * FROM networks WHERE name = ? OR id = ?", (typed, typed)).fetchone()
        if row is not None:
            return _network(row)
        if typed and all(c in "0123456789abcdef" for c in typed):
            rows = self.conn.execute("SELECT * FROM networks WHERE id LIKE ?", (typed + "%",)).fetchall()
            if len(rows) == 1:
                return _network(rows[0])
            if len(rows) > 1:
                raise DockyardError(f"network {typed} is ambiguous ({len(rows)} matches found on name)")
        return None

    def delete(self, network_id: str) -> None:
        self.conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    # ------------------------------------------------------------------ endpoints

    def endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[Endpoint]:
        sql, args = "SELECT * FROM endpoints", []
        where = []
        if network_id is not None:
            where.append("network_id = ?")
            args.append(network_id)
        if container_id is not None:
            where.append("container_id = ?")
            args.append(container_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_endpoint(r) for r in self.conn.execute(sql + " ORDER BY ifname", args)]

    def allocate(self, net: Network, container_id: str, aliases: "Iterable[str]" = (), address: str = "",
                 mac: str = "") -> Endpoint:
        """The container's endpoint on ``net``: the one it has, or a new one with the lowest
        free address (``address`` when asked for) and the next free interface name."""
        from dockyard.store.db import transaction

        import os

        with transaction(self.conn):
            row = self.conn.execute("SELECT * FROM endpoints WHERE network_id = ? AND container_id = ?",
                                    (net.id, container_id)).fetchone()
            if row is not None:
                return _endpoint(row)
            # Builds lease addresses too (network/sandbox.py): one address space for both.
            taken = {ipam.to_int(r[0]) for r in
                     self.conn.execute("SELECT address FROM endpoints WHERE network_id = ? UNION SELECT address"
                                       " FROM build_leases WHERE network_id = ?", (net.id, net.id))}
            taken.add(ipam.to_int(net.gateway))
            if address:
                value = ipam.to_int(address)
                if not ipam.contains(ipam.parse_cidr(net.subnet), value):
                    raise AddressError(f"no configured subnet or ip-range contain the IP address {address}")
                if value in taken:
                    raise AddressError(f"Address already in use: {address} is taken on network {net.name}")
            else:
                value = ipam.first_free(net.subnet, net.ip_range, taken)
                if value is None:
                    raise AddressError(f"no available IPv4 addresses on network {net.name}: the address pool is exhausted")
            used_if = {r[0] for r in self.conn.execute("SELECT ifname FROM endpoints WHERE container_id = ?",
                                                      (container_id,))}
            n = 0
            while f"eth{n}" in used_if:
                n += 1
            addr = ipam.to_str(value)
            endpoint = Endpoint(id=os.urandom(32).hex(), network_id=net.id, container_id=container_id, address=addr,
                                mac=mac or ipam.mac_for(addr), aliases=list(aliases), ifname=f"eth{n}",
                                static=bool(address))
            self.conn.execute(
                "INSERT INTO endpoints (id, network_id, container_id, address, mac, aliases, ifname, static, created)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (endpoint.id, net.id, container_id, addr, endpoint.mac, json.dumps(endpoint.aliases), endpoint.ifname,
                 int(endpoint.static), time.time()))
            return endpoint

    def release(self, network_id: str, container_id: str) -> None:
        self.conn.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id))

    def containers_on(self, network_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT container_id FROM endpoints WHERE network_id = ?", (network_id,))]

    # ------------------------------------------------------------------ published ports

    def publish(self, container_id: str, wanted: "list[tuple[str, str, int, int, int]]", container_ip: str,
                check_free: "Any") -> list[PublishedPort]:
        """Record the container's published ports: ``wanted`` is (proto, host_ip, first host
        port, last host port, container port); a range takes its first free port, 0 a random
        one. ``check_free(proto, host_ip, port)`` is None for a port no host process holds,
        else the error text. All or nothing."""
        from dockyard.store.db import transaction

        out: list[PublishedPort] = []
        with transaction(self.conn):
            # Its own rows are left from a start whose shim died (kill -9): this start replaces them.
            self.conn.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))
            held = [(r[0], r[1], r[2]) for r in self.conn.execute("SELECT proto, host_ip, host_port FROM published_ports")]
            for proto, host_ip, first, last, cport in wanted:
                port = self._pick(proto, host_ip, first, last, held + [(p.proto, p.host_ip, p.host_port) for p in out],
                                  check_free)
                out.append(PublishedPort(proto, host_ip, port, cport, container_ip))
            for p in out:
                self.conn.execute(
                    "INSERT INTO published_ports (container_id, proto, host_ip, host_port, container_port, container_ip)"
                    " VALUES (?,?,?,?,?,?)", (container_id, p.proto, p.host_ip, p.host_port, p.container_port,
                                              p.container_ip))
        return out

    @staticmethod
    def _pick(proto: str, host_ip: str, first: int, last: int, held: "list[tuple[str, str, int]]",
              check_free: "Any") -> int:
        def clash(port: int) -> bool:
            return any(p == proto and hp == port and (not hi or not host_ip or hi == host_ip) for p, hi, hp in held)

        shown = host_ip or "0.0.0.0"
        if first == 0:  # a random port from the kernel's ephemeral range, as Docker takes
            import random

            lo, hi = _ephemeral_range()
            candidates = list(range(lo, hi + 1))
            random.shuffle(candidates)
        else:
            candidates = list(range(first, last + 1))
        last_error = ""
        for port in candidates[:2000]:
            if clash(port):
                last_error = f"Bind for {shown}:{port} failed: port is already allocated"
                continue
            error = check_free(proto, host_ip, port)
            if error:
                last_error = error
                continue
            return port
        raise PortError(last_error or f"no free host port for {shown}")

    def ports(self, container_id: str) -> list[PublishedPort]:
        return [PublishedPort(r[0], r[1], r[2], r[3], r[4]) for r in self.conn.execute(
            "SELECT proto, host_ip, host_port, container_port, container_ip FROM published_ports WHERE container_id = ?"
            " ORDER BY container_port, proto, host_ip", (container_id,))]

    def all_ports(self) -> dict[str, list[PublishedPort]]:
        out: dict[str, list[PublishedPort]] = {}
        for r in self.conn.execute("SELECT container_id, proto, host_ip, host_port, container_port, container_ip "
                                   "FROM published_ports"):
            out.setdefault(r[0], []).append(PublishedPort(r[1], r[2], r[3], r[4], r[5]))
        return out

    def unpublish(self, container_id: str) -> None:
        self.conn.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))


class PortError(DockyardError):
    exit_code = 125


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _network(row: "Any") -> Network:
    return Network(id=row["id"], name=row["name"], driver=row["driver"], bridge=row["bridge"], subnet=row["subnet"],
                   gateway=row["gateway"], ip_range=row["ip_range"], internal=bool(row["internal"]),
                   dns=bool(row["dns"]), created=row["created"], labels=json.loads(row["labels"]),
                   options=json.loads(row["options"]))


def _endpoint(row: "Any") -> Endpoint:
    return Endpoint(id=row["id"], network_id=row["network_id"], container_id=row["container_id"],
                    address=row["address"], mac=row["mac"], aliases=json.loads(row["aliases"]), ifname=row["ifname"],
                    static=bool(row["static"]))
