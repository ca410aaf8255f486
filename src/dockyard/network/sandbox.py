"""A build's network: one namespace on the default bridge, shared by the build's RUN steps.

Build steps are not containers (they have no row in ``containers``), so their address is a
*lease*: a ``build_leases`` row owned by the build's work dir, which the build holds flocked
while it runs. Container endpoints and leases share one address space (``NetworkStore.allocate``
counts both). A build killed -9 leaves its lease, namespace and veth; ``reclaim`` takes those
whose owner no live process holds.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from dockyard.engine import Engine

PREFIX = "b-"   # netns names of builds under <runroot>/netns, beside the containers' IDs


def _veth(owner: str) -> str:
    # "dyz" + 11 hex: never a container's host end (dy + hex ID), 14 bytes (the limit is 15)
    return f"dyz{owner[:11]}"


def netns_path(runroot: str, owner: str) -> str:
    return os.path.join(runroot, "netns", PREFIX + owner)


class Sandbox:
    __slots__ = ("namespace", "address")

    def __init__(self, namespace: str, address: str) -> None:
        self.namespace = namespace
        self.address = address


def open_sandbox(engine: "Engine", owner: str) -> Sandbox:
    """Lease an address on the default bridge for ``owner`` and plug a namespace into it."""
    from dockyard.network import ipam, netns, rtnl
    from dockyard.network.store import AddressError
    from dockyard.store.db import transaction

    networks = engine.networks
    net = networks.default_bridge()
    conn = engine.db
    with transaction(conn):
        taken = {ipam.to_int(r[0]) for r in conn.execute(
            "SELECT address FROM endpoints WHERE network_id = ? UNION SELECT address FROM build_leases"
            " WHERE network_id = ?", (net.id, net.id))}
        taken.add(ipam.to_int(net.gateway))
        value = ipam.first_free(net.subnet, net.ip_range, taken)
        if value is None:
            raise AddressError(f"no available IPv4 addresses on network {net.name}: the address pool is exhausted")
        address = ipam.to_str(value)
        conn.execute("INSERT INTO build_leases (owner, network_id, address, created) VALUES (?, ?, ?, ?)",
                     (owner, net.id, address, time.time()))
    path = netns_path(engine.settings.runroot, owner)
    try:
        networks.ensure_bridge(net)
        netns.create(path)
        rtnl.attach_veth(path, _veth(owner), net.bridge, "eth0", f"{address}/{ipam.prefix_of(net.subnet)}",
                         net.gateway, ipam.mac_for(address))
    except BaseException:
        close_sandbox(engine, owner)
        raise
    return Sandbox(path, address)


def close_sandbox(engine: "Engine", owner: str) -> None:
    """Undo ``open_sandbox`` (each step tolerates what is already gone)."""
    from dockyard.network import netns, rtnl
    from dockyard.store.db import transaction

    try:
        with rtnl.Netlink() as nl:
            nl.retire_link(_veth(owner))
    except OSError:
        pass
    netns.remove(netns_path(engine.settings.runroot, owner))
    with transaction(engine.db):
        engine.db.execute("DELETE FROM build_leases WHERE owner = ?", (owner,))


def reclaim(engine: "Engine", alive: "Callable[[str], bool]") -> list[str]:
    """Close the sandboxes whose owner ``alive`` says is gone; their owners."""
    owners = {r[0] for r in engine.db.execute("SELECT owner FROM build_leases")}
    base = os.path.join(engine.settings.runroot, "netns")
    try:
        owners |= {n[len(PREFIX):] for n in os.listdir(base) if n.startswith(PREFIX)}
    except FileNotFoundError:
        pass
    gone = sorted(o for o in owners if not alive(o))
    for owner in gone:
        close_sandbox(engine, owner)
    return gone
