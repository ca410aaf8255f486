"""``engine.networks``: Docker's network verbs over the network store, the bridges and the
firewall.

Three networks always exist, as in Docker: ``bridge`` (the default, on the
``dockyard0`` Linux bridge), ``host`` and ``none``. A user network is a bridge of its
own (``dy-<id12>``) made at ``network create``; the default bridge's device is made at
its first use. A bridge that is missing when a container needs it (after a reboot) is
made again, with its firewall rules, from the DB.
"""

from __future__ import annotations

import os
import time

from dockyard.errors import ConflictError, DockyardError
from dockyard.network import ipam
from dockyard.network.store import ACTIVE, Endpoint, Network, NetworkNotFound, NetworkStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

    from dockyard.containers.store import ContainerRecord
    from dockyard.engine import Engine

BUILTIN = ("bridge", "host", "none")
LIST_FILTERS = frozenset({"driver", "id", "label", "name", "scope", "type", "dangling", "until"})
_LABEL_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class NetworkError(DockyardError):
    exit_code = 1


class Networks:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.store = NetworkStore(engine.db)

    # ------------------------------------------------------------------ lookup

    def get(self, typed: str) -> Network:
        net = self.store.find(typed)
        if net is None and typed in BUILTIN:
            net = self._builtin(typed)
        if net is None:
            raise NetworkNotFound(f"network {typed} not found")
        return net

    def _builtin(self, name: str) -> Network:
        """The predefined networks, made at their first use."""
        if name == "bridge":
            return self.default_bridge()
        net = Network(id=os.urandom(32).hex(), name=name, driver="host" if name == "host" else "null",
                      created=time.time(), dns=False)
        try:
            self.store.add(net)
        except ConflictError:
            pass
        found = self.store.find(name)
        assert found is not None
        return found

    def default_bridge(self) -> Network:
        net = self.store.find("bridge")
        if net is not None:
            return net
        for name in ("host", "none"):
            self._builtin(name)
        settings = self.engine.settings
        net = Network(id=os.urandom(32).hex(), name="bridge", driver="bridge", created=time.time(),
                      dns=settings.bridge_dns, options={"com.docker.network.bridge.default_bridge": "true"})

        def check(existing: "list[Network]") -> None:
            if settings.bip:
                gateway, _, prefix = settings.bip.partition("/")
                base = ipam.to_int(gateway) & ipam.mask(int(prefix or 16))
                net.subnet, net.gateway = ipam.cidr(base, int(prefix or 16)), gateway
            else:
                taken = _host_routes() + [n.subnet for n in existing if n.subnet]
                subnet = ipam.free_pool(taken)   # 172.17.0.0/16 first, as Docker
                if subnet is None:
                    raise NetworkError("could not find an available, non-overlapping IPv4 address pool "
                                       "among the defaults to assign to the network")
                net.subnet, net.gateway = subnet, ipam.to_str(ipam.parse_cidr(subnet)[0] + 1)
            ours = [n.bridge for n in existing]
            net.bridge = _free_bridge_name(settings.bridge_name, ours)
            if net.bridge not in ours:
                _reserve_bridge(net.bridge, settings.root)

        try:
            self.store.add_checked(net, check)
        except ConflictError:   # another command made it meanwhile
            pass
        found = self.store.find("bridge")
        assert found is not None
        return found

    def list(self, filters: "Mapping[str, Sequence[str]] | None" = None) -> list[Network]:
        self.default_bridge()
        filters = dict(filters or {})
        for key in filters:
            if key not in LIST_FILTERS:
                raise DockyardError(f"invalid filter '{key}'")
        out = []
        used = None
        for net in self.store.all():
            if "dangling" in filters:
                if used is None:
                    used = self._in_use()
                want = filters["dangling"][-1].lower() in ("true", "1")
                if want == (net.id in used or net.name in BUILTIN):
                    continue
            if not _matches(net, filters):
                continue
            out.append(net)
        return sorted(out, key=lambda n: n.name)   # Docker's order

    def _in_use(self) -> "set[str]":
        return {r[0] for r in self.engine.db.execute("SELECT DISTINCT network_id FROM endpoints")}

    # ------------------------------------------------------------------ create, remove, prune

    def create(self, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "", ip_range: str = "",
               internal: bool = False, labels: "Mapping[str, str] | None" = None,
               options: "Mapping[str, str] | None" = None, check_duplicate: bool = True) -> Network:
        if not name or not all(c in _LABEL_OK for c in name) or not name[0].isalnum():
            raise NetworkError(f"invalid network name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if driver != "bridge":
            if driver in ("host", "null"):
                raise NetworkError(f"only one instance of \"{driver}\" network is allowed")
            raise NetworkError(f"plugin \"{driver}\" not found")
        if name in BUILTIN:
            raise NetworkError(f"{name} is a pre-defined network and cannot be created")
        options = dict(options or {})
        for key in options:
            if key not in ("com.docker.network.bridge.name", "com.docker.network.bridge.enable_icc",
                           "com.docker.network.bridge.enable_ip_masquerade", "com.docker.network.driver.mtu",
                           "com.docker.network.bridge.host_binding_ipv4"):
                raise NetworkError(f"unsupported bridge option: {key}")
        net = Network(id=os.urandom(32).hex(), name=name, driver="bridge", internal=internal, created=time.time(),
                      labels=dict(labels or {}), options=options)
        net.bridge = options.get("com.docker.network.bridge.name") or f"dy-{net.id[:12]}"
        if len(net.bridge) > 15:
            raise NetworkError(f"bridge name {net.bridge} is too long (15 characters at most)")
        if subnet:
            base, prefix = ipam.parse_cidr(subnet)
            if prefix > 30:
                raise NetworkError(f"invalid subnet {subnet}: too small for containers")
            if gateway:
                if not ipam.contains((base, prefix), ipam.to_int(gateway)):
                    raise NetworkError(f"Invalid gateway {gateway}: it is not in the subnet {subnet}")
            else:
                gateway = ipam.to_str(base + 1)
            if ip_range:
                rbase, rprefix = ipam.parse_cidr(ip_range)
                if rprefix < prefix or not ipam.contains((base, prefix), rbase):
                    raise NetworkError(f"Invalid ip-range {ip_range}: it is not in the subnet {subnet}")
        elif gateway or ip_range:
            raise NetworkError("gateway and ip-range need a subnet (--subnet)")

        def check(existing: "list[Network]") -> None:
            if any(n.name == name for n in existing):
                raise ConflictError(f"network with name {name} already exists")
            if any(n.bridge == net.bridge for n in existing):
                raise NetworkError(f"bridge {net.bridge} is used by another network")
            taken = [n.subnet for n in existing if n.subnet] + _host_routes()
            if subnet:
                mine = ipam.parse_cidr(subnet)
                for other in taken:
                    if ipam.overlaps(mine, ipam.parse_cidr(other, strict=False)):
                        raise NetworkError("Pool overlaps with other one on this address space")
                net.subnet, net.gateway, net.ip_range = subnet, gateway, ip_range
            else:
                pool = ipam.free_pool(taken)
                if pool is None:
                    raise NetworkError("could not find an available, non-overlapping IPv4 address pool among "
                                       "the defaults to assign to the network")
                net.subnet, net.gateway = pool, ipam.to_str(ipam.parse_cidr(pool)[0] + 1)

        # a vanished root's bridges hold subnets (their routes) and names: freed first
        reclaim_orphans([n.bridge for n in self.store.all()])
        self.default_bridge()   # first: the default bridge takes 172.17.0.0/16 before any user network
        self.store.add_checked(net, check)
        try:
            self.ensure_bridge(net)
        except BaseException:
            self.store.delete(net.id)
            self._delete_bridge(net)
            raise
        self._event("create", net)
        return net

    def _event(self, action: str, net: Network, **extra: str) -> None:
        from dockyard import events

        events.record(self.engine.root, "network", action, net.id, {"name": net.name, "type": net.driver, **extra})

    def remove(self, typed: str) -> None:
        net = self.get(typed)
        if net.name in BUILTIN:
            raise NetworkError(f"{net.name} is a pre-defined network and cannot be removed")
        users = self.store.containers_on(net.id)
        if users:
            raise NetworkError(f"error while removing network: network {net.name} id {net.id} has active endpoints")
        self.store.delete(net.id)
        self._delete_bridge(net)
        self._event("destroy", net)

    def prune(self, filters: "Mapping[str, Sequence[str]] | None" = None) -> list[str]:
        filters = dict(filters or {})
        until = filters.pop("until", None)
        cutoff = None
        if until:
            from dockyard.containers.logs import parse_since

            cutoff = parse_since(until[-1])
        removed = []
        used = self._in_use()
        for net in self.list(filters):
            if net.name in BUILTIN or net.id in used or (cutoff is not None and net.created >= cutoff):
                continue
            try:
                self.remove(net.id)
            except DockyardError:
                continue
            removed.append(net.name)
        reclaim_orphans([n.bridge for n in self.store.all()])   # what vanished roots left
        return removed

    # ------------------------------------------------------------------ bridges and rules

    def ensure_bridge(self, net: Network) -> None:
        """The network's Linux bridge, with its address and firewall rules: made if missing
        (first use, or after a reboot wiped it)."""
        from dockyard.network import rtnl

        import errno

        with rtnl.Netlink() as nl:
            state = nl.link_state(net.bridge)
            if state is not None and state[1]:
                return   # made and up (a reserved name is a link still down: configured here)
            if state is None:
                try:
                    nl.create_bridge(net.bridge)
                except OSError as e:
                    if e.errno != errno.EEXIST:
                        raise NetworkError(f"failed to create bridge {net.bridge}: {e.strerror or e}") from None
            nl.add_address(net.bridge, f"{net.gateway}/{ipam.prefix_of(net.subnet)}")   # EEXIST is fine
            nl.set_up(net.bridge)
            nl.set_alias(net.bridge, _owner_alias(self.engine.settings.root))   # see reclaim_orphans
        self._rules(net)
        if net.dns:
            from dockyard.network import dnsd

            dnsd.rebind(self.engine.settings.runroot)

    def _rules(self, net: Network) -> None:
        from dockyard.network import firewall

        firewall.ensure_network(_rules_of(net))

    def _delete_bridge(self, net: Network) -> None:
        from dockyard.network import firewall, rtnl

        firewall.remove_network(net.bridge)
        with rtnl.Netlink() as nl:
            nl.delete_link(net.bridge)

    def reload(self) -> list[str]:
        """Rebuild every bridge and rule from the DB (``network reload``, or after a reboot)."""
        from dockyard.network import firewall, rtnl

        bridges = [n for n in self.store.all() if n.driver == "bridge"]
        with rtnl.Netlink() as nl:
            missing = [n for n in bridges if nl.link_index(n.bridge) is None]
        for net in missing:
            self.ensure_bridge(net)
        ports: "dict[str, list[Any]]" = {}
        running = {r[0] for r in self.engine.db.execute(
            "SELECT id FROM containers WHERE status IN (?, ?, ?)", ACTIVE)}
        by_id = {n.id: n for n in bridges}
        for cid, published in self.store.all_ports().items():
            if cid not in running:
                continue
            primary = self.store.endpoints(container_id=cid)
            bridge = next((by_id[e.network_id].bridge for e in primary if e.network_id in by_id), "")
            ports[cid] = [_port_rule(p, bridge) for p in published]
        firewall.reload([_rules_of(n) for n in bridges], ports)
        return [n.name for n in bridges]

    def reclaim(self) -> list[str]:
        """Tear down the network of every container that has a namespace here but does
        not run (its CLI or shim was killed before it could): IDs."""
        from dockyard.network.attach import teardown

        base = os.path.join(self.engine.settings.runroot, "netns")
        try:
            names = os.listdir(base)
        except OSError:
            return []
        running = {r[0] for r in self.engine.db.execute("SELECT id FROM containers WHERE status IN (?, ?, ?)", ACTIVE)}
        done = []
        for cid in names:
            if cid not in running and len(cid) == 64:
                teardown(self.engine.root, self.engine.settings.runroot, cid, None, engine=self.engine)
                done.append(cid)
        return done

    def reset(self) -> list[str]:
        """``system reset``: our bridges and rules, the DNS responder."""
        from dockyard.network import dnsd, firewall

        dnsd.stop(self.engine.settings.runroot)
        from dockyard.network import rtnl

        with rtnl.Netlink() as nl:
            # the default bridge's name is picked before its link exists, so another root may
            # have made a link of that name meanwhile: only a link with this root's gateway (or
            # none yet) is ours to delete, with its rules
            bridges = [n for n in self.store.all() if n.driver == "bridge" and _ours(nl, n)]
            owners = list(self.store.all_ports())
            firewall.reset([n.bridge for n in bridges], owners)
            for net in bridges:
                nl.delete_link(net.bridge)
            # a reservation this root made but never recorded (killed between the two)
            mine = _owner_alias(self.engine.settings.root)
            for name, (up, alias) in nl.link_aliases().items():
                if alias == mine and not up:
                    nl.delete_link(name)
        return [n.bridge for n in bridges]

    # ------------------------------------------------------------------ containers

    def wanted(self, record: "ContainerRecord") -> "list[tuple[Network, dict[str, Any]]]":
        """The bridge networks a container is on: its NetworkMode first, then those it
        was connected to, each with its endpoint settings (Aliases, IPAMConfig)."""
        from dockyard.network.attach import mode_of

        host = record.host_config
        primary = mode_of(host)
        configs = dict(((record.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}))
        out = []
        seen = set()
        for name in [primary] + [n for n in configs if n != primary]:
            net = self.get(name)
            if net.driver != "bridge" or net.id in seen:
                continue
            seen.add(net.id)
            out.append((net, configs.get(name) or {}))
        return out

    def endpoints_of(self, record: "ContainerRecord") -> "list[tuple[Network, Endpoint]]":
        """Allocate (or find) the container's endpoints on its networks, primary first."""
        out = []
        for net, conf in self.wanted(record):
            aliases = with_hostname(record, net, list(conf.get("Aliases") or []))
            address = ((conf.get("IPAMConfig") or {}).get("IPv4Address")) or ""
            mac = conf.get("MacAddress") or ""
            out.append((net, self.store.allocate(net, record.id, aliases, address, mac)))
        return out

    def address_of(self, cid: str, network_id: str) -> str:
        for ep in self.store.endpoints(network_id=network_id, container_id=cid):
            return ep.address
        return ""

    def publish(self, record: "ContainerRecord", net: Network, ep: Endpoint) -> "list[Any]":
        from dockyard.network import firewall
        from dockyard.network.ports import bindings_wanted

        wanted = bindings_wanted(record.host_config, record.container_config)

        def check_free(proto: str, host_ip: str, port: int) -> "str | None":
            error = firewall.bind_error(proto, host_ip, port)
            return f"Error starting userland proxy: {error}" if error else None

        try:
            published = self.store.publish(record.id, wanted, ep.address, check_free)
        except DockyardError as e:
            raise NetworkError(f"driver failed programming external connectivity on endpoint {record.name} "
                               f"({ep.id}): {e}", exit_code=125) from None
        firewall.add_ports(record.id, [_port_rule(p, net.bridge) for p in published])
        return published

    def connect(self, typed_net: str, typed_container: str, aliases: "Sequence[str]" = (), ip: str = "") -> None:
        """Docker's ``network connect``: recorded for the next start; plugged in at once if it runs."""
        net = self.get(typed_net)
        containers = self.engine.containers
        record = containers.get(typed_container)
        mode = record.host_config.get("NetworkMode") or "default"
        if net.driver != "bridge":
            raise NetworkError(f"container cannot be disconnected from host network or connected to {net.name} network")
        if mode in ("host", "none") or mode.startswith("container:"):
            raise NetworkError("container sharing network namespace with another container or host cannot be "
                               "connected to any other network")
        names = {n.name for n, _ in self.wanted(record)}
        if net.name in names or any(e.network_id == net.id for e in self.store.endpoints(container_id=record.id)):
            raise NetworkError(f"endpoint with name {record.name} already exists in network {net.name}")
        if ip:
            ipam.to_int(ip)
        for alias in aliases:
            ipam.check_dns_name(alias)
        conf = {"Aliases": list(aliases) or None, "IPAMConfig": {"IPv4Address": ip} if ip else None}
        config = dict(record.config)
        nc = dict(config.get("NetworkingConfig") or {})
        eps = dict(nc.get("EndpointsConfig") or {})
        eps[net.name] = conf
        nc["EndpointsConfig"] = eps
        config["NetworkingConfig"] = nc
        if record.status in ("running", "paused"):
            from dockyard.network import attach, rtnl

            ep = self.store.allocate(net, record.id, with_hostname(record, net, list(aliases)), ip)
            try:
                self.ensure_bridge(net)
                rtnl.attach_veth(attach.netns_path(self.engine.settings.runroot, record.id),
                                 attach.host_ifname(record.id, ep.index), net.bridge, ep.ifname,
                                 f"{ep.address}/{ipam.prefix_of(net.subnet)}", "", ep.mac)
                attach.hairpin(attach.host_ifname(record.id, ep.index))
            except BaseException:
                self.store.release(net.id, record.id)
                raise
            if net.dns:
                from dockyard.network import dnsd

                dnsd.ensure_running(self.engine.root, self.engine.settings.runroot)
            self._event("connect", net, container=record.id)
        containers.store.update(record.id, config=config)

    def disconnect(self, typed_net: str, typed_container: str, force: bool = False) -> None:
        net = self.get(typed_net)
        containers = self.engine.containers
        record = containers.get(typed_container)
        eps = [e for e in self.store.endpoints(container_id=record.id) if e.network_id == net.id]
        names = [n.name for n, _ in self.wanted(record)]
        if not eps and net.name not in names:
            raise NetworkError(f"container {record.id} is not connected to network {net.name}")
        config = dict(record.config)
        nc = dict(config.get("NetworkingConfig") or {})
        endpoints_config = dict(nc.get("EndpointsConfig") or {})
        endpoints_config.pop(net.name, None)
        nc["EndpointsConfig"] = endpoints_config
        config["NetworkingConfig"] = nc
        from dockyard.network.attach import host_ifname, mode_of

        if mode_of(record.host_config) in (net.name, net.id):
            # Docker lets the primary go too: the container is then on no network at all.
            host = dict(config.get("HostConfig") or {})
            host["NetworkMode"] = "none"
            config["HostConfig"] = host
        for ep in eps:
            if record.status in ("running", "paused"):
                from dockyard.network import rtnl

                with rtnl.Netlink() as nl:
                    nl.delete_link(host_ifname(record.id, ep.index))
                self._event("disconnect", net, container=record.id)
            self.store.release(net.id, record.id)
        containers.store.update(record.id, config=config)

    # ------------------------------------------------------------------ inspect

    def inspect(self, net: Network) -> "dict[str, Any]":
        from dockyard.timefmt import rfc3339_nano_utc

        containers = {}
        for ep in self.store.endpoints(network_id=net.id):
            record = self.engine.containers.store.get(ep.container_id)
            if record is None:
                continue
            containers[ep.container_id] = {
                "Name": record.name, "EndpointID": ep.id, "MacAddress": ep.mac,
                "IPv4Address": f"{ep.address}/{ipam.prefix_of(net.subnet)}", "IPv6Address": ""}
        ipam_config = []
        if net.subnet:
            entry = {"Subnet": net.subnet}
            if ipam.to_int(net.gateway) != ipam.parse_cidr(net.subnet)[0] + 1:
                entry["Gateway"] = net.gateway   # Docker shows a gateway only when it was chosen
            if net.ip_range:
                entry["IPRange"] = net.ip_range
            ipam_config = [entry]
        options = dict(net.options)
        if net.name == "bridge":
            options = {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       "com.docker.network.bridge.name": net.bridge, "com.docker.network.driver.mtu": "1500"}
        return {
            "Name": net.name, "Id": net.id, "Created": rfc3339_nano_utc(net.created),
            "Scope": "local", "Driver": net.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None if net.name in BUILTIN else {}, "Config": ipam_config},
            "Internal": net.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": options, "Labels": dict(net.labels),
        }

    def snapshot(self) -> "tuple[dict[str, Network], dict[str, list[Any]]]":
        """Every network by name and every endpoint by container, read at once: for listing many
        containers (two queries, not two per container)."""
        endpoints: "dict[str, list[Any]]" = {}
        for ep in self.store.endpoints():
            endpoints.setdefault(ep.container_id, []).append(ep)
        return {net.name: net for net in self.store.all()}, endpoints

    def container_networks(self, record: "ContainerRecord",
                           snapshot: "tuple[dict[str, Network], dict[str, list[Any]]] | None" = None
                           ) -> "dict[str, Any]":
        """NetworkSettings.Networks of a container (from ``snapshot`` when given)."""
        from dockyard.network.attach import mode_of

        running = record.status in ACTIVE
        networks: "dict[str, Any]" = {}
        if snapshot is None:
            found = self.store.endpoints(container_id=record.id)
            find = self.store.find
        else:
            by_name, by_container = snapshot
            found = by_container.get(record.id, [])
            find = lambda name: by_name.get(name) or self.store.find(name)  # noqa: E731 - an ID: rare
        eps = {e.network_id: e for e in found}
        configs = (record.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        mode = mode_of(record.host_config)
        names = [mode] + [n for n in configs if n != mode]
        for name in names:
            net = find(name)
            if net is None and name in BUILTIN:
                net = self._builtin(name)
            conf = configs.get(name) or {}
            ep = eps.get(net.id) if net is not None else None
            live = ep is not None and running
            networks[net.name if net is not None else name] = {
                "IPAMConfig": conf.get("IPAMConfig"), "Links": None,   # Docker keeps links in HostConfig
                # Docker lists the short ID among a user network's aliases (its DNS answers it).
                "Aliases": _inspect_aliases(record, net, ep.aliases if ep else list(conf.get("Aliases") or [])),
                "MacAddress": ep.mac if live else "",
                "NetworkID": net.id if net is not None else "", "EndpointID": ep.id if live else "",
                "Gateway": net.gateway if live else "", "IPAddress": ep.address if live else "",
                "IPPrefixLen": ipam.prefix_of(net.subnet) if live else 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": (
                    [record.name, record.id[:12], *(ep.aliases if ep else [])] if live and net.name != "bridge" else None),
            }
        return networks

    def container_settings(self, record: "ContainerRecord") -> "dict[str, Any]":
        """NetworkSettings.Networks, Ports and the primary's top-level fields for a container's inspect."""
        from dockyard.network.attach import mode_of, netns_path
        from dockyard.network.ports import ports_view

        running = record.status in ACTIVE
        networks = self.container_networks(record)
        ports = ports_view(record, self.store.ports(record.id) if running else [])
        primary = networks.get("bridge", {}) if mode_of(record.host_config) == "bridge" else {}
        has_endpoint = any(ep.get("EndpointID") for ep in networks.values())
        return {"Networks": networks, "Ports": ports, "Primary": primary,
                "SandboxKey": netns_path(self.engine.settings.runroot, record.id) if running and has_endpoint else ""}


def _port_rule(p: "Any", bridge: str) -> "Any":
    from dockyard.network import firewall

    return firewall.PortRule(proto=p.proto, host_ip=p.host_ip, host_port=p.host_port,
                             container_ip=p.container_ip, container_port=p.container_port, bridge=bridge)


def _rules_of(net: Network) -> "Any":
    from dockyard.network import firewall

    from dockyard.network import dnsd

    return firewall.NetworkRules(bridge=net.bridge, subnet=net.subnet, gateway=net.gateway, internal=net.internal,
                                 dns_port=dnsd.PORT if net.dns else 0)


def _host_routes() -> "list[str]":
    """Subnets the host routes already (another engine's bridge, a VPN, another root's
    network): not ours to take."""
    from dockyard.network import rtnl

    with rtnl.Netlink() as nl:
        return [r for r in nl.routes() if not r.endswith("/0")]


def _extra_hostname(record: "ContainerRecord", net: "Network | None") -> str:
    """The container's own hostname, where dockerd adds it to a user network's aliases: set,
    and other than its name and short ID."""
    if net is None or net.name in BUILTIN:
        return ""
    hostname = record.container_config.get("Hostname") or ""
    return hostname if hostname not in ("", record.name, record.id[:12]) else ""


def with_hostname(record: "ContainerRecord", net: "Network", aliases: "list[str]") -> "list[str]":
    """The endpoint's DNS aliases: those asked for, then the hostname (dockerd answers a
    container's ``--hostname``/compose ``hostname:`` on its user networks)."""
    extra = _extra_hostname(record, net)
    return aliases + [extra] if extra and extra not in aliases else aliases


def _inspect_aliases(record: "ContainerRecord", net: "Network | None", aliases: "list[str]") -> "list[str] | None":
    """Docker's order: the aliases asked for, the short ID, the hostname (user networks only)."""
    if net is None or net.name in BUILTIN:
        return list(aliases) or None
    extra = _extra_hostname(record, net)
    asked = [a for a in aliases if a != extra or not extra]
    return asked + [record.id[:12]] + ([extra] if extra else [])


def _ours(nl: "Any", net: Network) -> bool:
    held = [cidr.split("/")[0] for _, cidr in nl.addresses(net.bridge)]
    return not held or net.gateway in held


_ALIAS_PREFIX = "dockyard root "


def _owner_alias(root: str) -> str:
    return _ALIAS_PREFIX + os.path.abspath(root)


def _reserve_bridge(name: str, root: str) -> None:
    """Make the default bridge's link (down, no address) as its name is recorded: another root
    picking a name meanwhile sees it taken. Before, two roots could record one name and share,
    then delete, one link. The link's alias names the root, so that a reservation whose root
    was deleted without ``system reset`` is reclaimed (``_free_bridge_name``)."""
    import errno

    from dockyard.network import rtnl

    with rtnl.Netlink() as nl:
        try:
            nl.create_bridge(name)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise NetworkError(f"failed to create bridge {name}: {e.strerror or e}") from None
        nl.set_alias(name, _owner_alias(root))


def reclaim_orphans(ours: "list[str]") -> list[str]:
    """Delete the bridges, and their firewall rules, of roots that no longer exist: a root
    removed without ``system reset`` leaves its bridges up and its rules in place. A bridge's
    alias names its root (``_owner_alias``); one that still has ports (a container of the
    vanished root still runs) is left alone. Returns the names deleted."""
    from dockyard.network import firewall, rtnl

    deleted = []
    with rtnl.Netlink() as nl:
        orphans = [name for name, (_up, alias) in nl.link_aliases().items()
                   if alias.startswith(_ALIAS_PREFIX) and name not in ours
                   and not os.path.isdir(alias[len(_ALIAS_PREFIX):])]
        if not orphans:
            return deleted
        in_use = set(nl.link_masters().values())
        for name in orphans:
            if nl.link_index(name) in in_use:
                continue
            firewall.remove_network(name)
            nl.delete_link(name)
            deleted.append(name)
    return deleted


def _free_bridge_name(wanted: str, ours: "list[str]") -> str:
    """``wanted``, unless a device of that name exists that no network of this root made
    (another root's, another tool's): then the next number. The bridges of a root that no
    longer exists are deleted first (``reclaim_orphans``) and their names reused."""
    from dockyard.network import rtnl

    reclaim_orphans(ours)
    with rtnl.Netlink() as nl:
        links = nl.link_aliases()
    if wanted not in links or wanted in ours:
        return wanted
    stem = wanted.rstrip("0123456789")
    n = 1
    while f"{stem}{n}" in links or f"{stem}{n}" in ours:
        n += 1
    return f"{stem}{n}"


def _matches(net: Network, filters: "Mapping[str, Sequence[str]]") -> bool:
    for key, values in filters.items():
        if key == "driver" and net.driver not in values:
            return False
        if key == "id" and not any(net.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v in net.name for v in values):
            return False
        if key == "scope" and "local" not in values:
            return False
        if key == "type":
            kind = "builtin" if net.name in BUILTIN else "custom"
            if kind not in values:
                return False
        if key == "label":
            for v in values:
                k, sep, val = v.partition("=")
                if k not in net.labels or (sep and net.labels[k] != val):
                    return False
    return True

