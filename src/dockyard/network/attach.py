"""One container's network: set up before the runtime's ``create``, torn down on its exit.

``attach`` runs in ``bundle.prepare`` at every start. For the modes that need no driver
(``none``, ``host``, ``container:<id>``) it only says which namespace to use. On bridge
networks it allocates the endpoints (kept from an earlier start: the address survives
restarts), creates a named network namespace under the run root, plugs a veth per
network into its bridge, publishes ports and starts the DNS responder if a network wants
names; the runtime then joins the namespace by path. The namespace outlives the
container's process, so the restart policy restarts into the same one.

``teardown`` undoes it: the shim calls it when the container is done for good, and so do
``rm`` and whoever notices a dead shim; every step tolerates what is already gone.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.containers.store import ContainerRecord
    from dockyard.engine import Engine
    from dockyard.network.store import Network

LOCALHOST_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


class NetworkError(DockyardError):
    exit_code = 125


class Attachment:
    """What one container's network looks like from inside, and what undoes it."""

    __slots__ = ("namespace", "hosts", "resolv_conf", "host_files", "env", "teardown")

    def __init__(self, namespace: str, hosts: "list[tuple[str, str]]", resolv_conf: str,
                 host_files: bool = False) -> None:
        self.namespace = namespace      # "none": a new netns; "host": the host's; else a netns path
        self.hosts = hosts              # /etc/hosts entries after localhost: (address, names)
        self.resolv_conf = resolv_conf
        self.host_files = host_files    # the host's own /etc/hosts, as Docker gives --network host
        self.env: "list[str]" = []      # --link's variables
        self.teardown: "dict[str, Any] | None" = None   # for the shim: what teardown() needs


def netns_path(runroot: str, cid: str) -> str:
    return os.path.join(runroot, "netns", cid)


def host_ifname(cid: str, index: int) -> str:
    """The host end of the container's veth on its ``eth<index>`` (15 bytes at most)."""
    return f"dy{cid[:11]}{index:x}"


def mode_of(host_config: "dict[str, Any]") -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def attach(engine: "Engine", record: "ContainerRecord", hostname: str) -> Attachment:
    host = record.host_config
    mode = mode_of(host)
    if mode == "host":
        attachment = Attachment("host", [], _read("/etc/resolv.conf"), host_files=True)
        attachment.teardown = _driverless(engine, mode)
        return attachment
    if mode == "none":
        attachment = Attachment("none", _extra_hosts(engine, host) + [("127.0.0.1", hostname)], _resolv(host, None))
        attachment.teardown = _driverless(engine, mode)
        return attachment
    if mode.startswith("container:"):
        other = engine.containers.get(mode.partition(":")[2])
        if other.status != "running" or not other.pid:
            raise NetworkError(f"cannot join network of a non running container: {other.id}")
        return Attachment(f"/proc/{other.pid}/ns/net", [],
                          _read(os.path.join(engine.containers.container_dir(other.id), "resolv.conf"))
                          or _resolv(host, None))
    return _attach_bridges(engine, record, hostname)


def _attach_bridges(engine: "Engine", record: "ContainerRecord", hostname: str) -> Attachment:
    from dockyard.network import ipam, netns, rtnl

    networks = engine.networks
    cid = record.id
    runroot = engine.settings.runroot
    joined = networks.endpoints_of(record)   # [(network, endpoint)], the primary first
    path = netns_path(runroot, cid)
    if netns.exists(path):   # left by a shim killed -9: start afresh
        teardown(engine.root, runroot, cid, {"veths": [host_ifname(cid, ep.index) for _, ep in joined]})
    info: "dict[str, Any]" = {"netns": path, "veths": [], "ports": False}
    try:
        netns.create(path)
        for n, (net, ep) in enumerate(joined):
            networks.ensure_bridge(net)
            veth = host_ifname(cid, ep.index)
            info["veths"].append(veth)
            rtnl.attach_veth(path, veth, net.bridge, ep.ifname, f"{ep.address}/{ipam.prefix_of(net.subnet)}",
                             net.gateway if n == 0 else "", ep.mac)
            hairpin(veth)
        primary_net, primary_ep = joined[0]
        host = record.host_config
        if (host.get("PortBindings") or host.get("PublishAllPorts")) and not primary_net.internal:
            info["ports"] = True
            published = networks.publish(record, primary_net, primary_ep)
            # The shim holds each host port bound while the container runs (as podman's conmon
            # does): DNAT takes the traffic before it reaches a socket, but no host process can
            # take the port meanwhile and lose its traffic to the container unknowingly.
            info["reserve"] = [[p.proto, p.host_ip, p.host_port] for p in published]
        attachment = Attachment(path, [], "")
        if any(net.dns for net, _ in joined):
            from dockyard.network import dnsd

            dnsd.ensure_running(engine.root, runroot)
        links = _links(engine, record, primary_net)
        attachment.hosts = (_extra_hosts(engine, record.host_config) + _link_hosts(links)
                            + [(primary_ep.address, _own_names(record, hostname))])
        attachment.env = _link_env(record, links)
        attachment.resolv_conf = _resolv(record.host_config, primary_net if primary_net.dns else None)
    except BaseException:
        teardown(engine.root, runroot, cid, info, engine=engine)
        raise
    # For Docker's network events: the shim says connect before start, teardown disconnect.
    info["events"] = [[net.id, net.name, net.driver] for net, _ in joined]
    attachment.teardown = info
    return attachment


def _driverless(engine: "Engine", name: str) -> "dict[str, Any]":
    """A container on the host or none network has nothing to undo, but Docker says it joins and
    leaves that network (connect before each start, disconnect after each end): what the shim
    needs for those events. ``events_only``: teardown has nothing to do."""
    from dockyard.network.store import NetworkStore

    net = NetworkStore(engine.db).find(name) or engine.networks.get(name)   # made at its first use
    return {"events": [[net.id, net.name, net.driver]], "events_only": True}


def traffic(cid: str) -> "tuple[int, int]":
    """(bytes received, bytes sent) by the container on its networks, from the host ends of
    its veths (what one end sends the other receives)."""
    rx = tx = 0
    for index in range(16):
        base = f"/sys/class/net/{host_ifname(cid, index)}/statistics/"
        try:
            with open(base + "tx_bytes") as f:
                rx += int(f.read())
            with open(base + "rx_bytes") as f:
                tx += int(f.read())
        except (OSError, ValueError):
            continue
    return rx, tx


def hairpin(veth: str) -> None:
    """Let the bridge send a packet back out of the port it came in on: a container reaching
    its own published port through the host's address (DNAT turns it around) needs it."""
    try:
        with open(f"/sys/class/net/{veth}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except OSError:
        pass


def teardown(root: str, runroot: str, cid: str, info: "dict[str, Any] | None" = None,
             engine: "Engine | None" = None) -> None:
    """Undo ``attach``: unpublish, unplug the veths (renamed first: they go asynchronously
    with the namespace, and a quick restart re-creates the same names), drop the namespace.
    ``info``: what attach recorded; None means look for everything."""
    from dockyard.network import netns

    info = info or {}
    if info.get("events_only"):   # host or none: nothing was set up (and no connect said)
        return
    veths = info.get("veths")
    if veths is None:
        veths = [host_ifname(cid, i) for i in range(4)]
    if info.get("ports", True):
        _unpublish(root, cid, engine)
    if veths:
        from dockyard.network import rtnl

        try:
            with rtnl.Netlink() as nl:
                for veth in veths:
                    nl.retire_link(veth)   # freed with the namespace below
        except OSError:
            pass
    netns.remove(info.get("netns") or netns_path(runroot, cid))
    if info.get("events"):
        from dockyard import events

        for net_id, name, driver in info["events"]:
            events.record(root, "network", "disconnect", net_id, {"container": cid, "name": name, "type": driver})


def _unpublish(root: str, cid: str, engine: "Engine | None") -> None:
    if engine is not None:
        conn = engine.db
    else:
        from dockyard.store import db

        conn = db.connect(root)
    from dockyard.network.store import NetworkStore

    store = NetworkStore(conn)
    if store.ports(cid):
        from dockyard.network import firewall

        firewall.remove_ports(cid)
        store.unpublish(cid)


# ---------------------------------------------------------------------------- /etc files

def _own_names(record: "ContainerRecord", hostname: str) -> str:
    domain = record.container_config.get("Domainname") or ""
    names = f"{hostname}.{domain} {hostname}" if domain else hostname
    if hostname != record.id[:12]:
        names += " " + record.id[:12]
    return names


def _extra_hosts(engine: "Engine", host: "dict[str, Any]") -> "list[tuple[str, str]]":
    out = []
    for item in host.get("ExtraHosts") or []:
        name, _, address = item.partition(":")
        if address == "host-gateway":   # the host as containers see it: the default bridge's gateway
            address = engine.networks.default_bridge().gateway
        out.append((address, name))
    return out


def _links(engine: "Engine", record: "ContainerRecord", net: "Network") -> "list[tuple[Any, str, str]]":
    """[(linked container record, alias, its address on ``net``)] from HostConfig.Links
    ("/db1:/wp/db1")."""
    out = []
    for link in record.host_config.get("Links") or []:
        target, _, alias = link.partition(":")
        other = engine.containers.find(target.lstrip("/"))
        if other is None:
            raise NetworkError(f"could not get container for {target.lstrip('/')}")
        if other.status != "running":
            raise NetworkError(f"Cannot link to a non running container: /{other.name} AS {alias}")
        out.append((other, alias.rpartition("/")[2], engine.networks.address_of(other.id, net.id)))
    return out


def _link_hosts(links: "list[tuple[Any, str, str]]") -> "list[tuple[str, str]]":
    out = []
    for other, alias, address in links:
        if address:
            names = [alias] + [n for n in (other.id[:12], other.name) if n != alias]
            out.append((address, " ".join(names)))
    return out


def _link_env(record: "ContainerRecord", links: "list[tuple[Any, str, str]]") -> "list[str]":
    """Docker's legacy link variables: <ALIAS>_PORT_<port>_<PROTO>... and <ALIAS>_ENV_..."""
    env = []
    for other, alias, address in links:
        prefix = alias.upper().replace("-", "_").replace(".", "_")
        ports = sorted((other.container_config.get("ExposedPorts") or {}),
                       key=lambda p: (int(p.partition("/")[0]), p))
        for i, spec in enumerate(ports):
            port, _, proto = spec.partition("/")
            proto = proto or "tcp"
            url = f"{proto}://{address}:{port}"
            if i == 0:
                env.append(f"{prefix}_PORT={url}")
            key = f"{prefix}_PORT_{port}_{proto.upper()}"
            env += [f"{key}={url}", f"{key}_ADDR={address}", f"{key}_PORT={port}", f"{key}_PROTO={proto}"]
        for item in other.container_config.get("Env") or []:
            name, _, value = item.partition("=")
            if name not in ("HOME", "PATH", "HOSTNAME"):
                env.append(f"{prefix}_ENV_{name}={value}")
        env.append(f"{prefix}_NAME=/{record.name}/{alias}")
    return env


def _resolv(host: "dict[str, Any]", dns_net: "Network | None") -> str:
    """resolv.conf as Docker writes it: the host's, less loopback servers, with --dns,
    --dns-search and --dns-option applied; on a network with names, our responder on its
    gateway is the nameserver (it forwards the rest to --dns or the host's servers)."""
    servers, search, options = [], [], []
    for line in _read("/etc/resolv.conf").splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1 and not _loopback(words[1]):
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    if host.get("Dns"):
        servers = list(host["Dns"])
    if dns_net is not None:
        servers = [dns_net.gateway]
    elif not servers:
        servers = ["8.8.8.8", "8.8.4.4"]   # Docker's fallback when the host has only loopback servers
    if host.get("DnsSearch"):
        search = [s for s in host["DnsSearch"] if s != "."]
    if host.get("DnsOptions"):
        options = list(host["DnsOptions"])
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def hosts_file(attachment: Attachment) -> str:
    if attachment.host_files:
        return _read("/etc/hosts")
    return LOCALHOST_HOSTS + "".join(f"{address}\t{names}\n" for address, names in attachment.hosts)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
