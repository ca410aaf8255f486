"""Published ports: Docker's ``-p``/``--expose`` grammar, and the views of what is published.

``-p [ip:][hostPort:]containerPort[/proto]``, each port may be a range (``8000-8010:80``
takes the first free port of the host range; equal-length ranges pair up). The parsed
form is Docker's: ``ExposedPorts {"80/tcp": {}}`` and ``PortBindings {"80/tcp":
[{"HostIp": "", "HostPort": "8080"}]}``; host ports are chosen when the container starts.
"""

from __future__ import annotations

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

    from dockyard.containers.store import ContainerRecord

PROTOS = ("tcp", "udp", "sctp")


class PortSpecError(DockyardError):
    exit_code = 125


def _proto(spec: str) -> tuple[str, str]:
    """``80/udp`` -> ("80", "udp"); tcp when none is given."""
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOS:
        raise PortSpecError(f"invalid proto: {proto}")
    return body, proto


def _range(text: str, what: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise PortSpecError(f"invalid {what}: {text}" if what != "containerPort" else
                            f"invalid containerPort: {text}") from None
    if not (0 < first <= 65535 and 0 < last <= 65535) or last < first:
        raise PortSpecError(f"invalid {what}: {text}")
    return first, last


def parse_publish(specs: "Iterable[str]") -> "tuple[dict[str, dict], dict[str, list[dict[str, str]]]]":
    """(ExposedPorts, PortBindings) from ``-p`` values."""
    exposed: "dict[str, dict]" = {}
    bindings: "dict[str, list[dict[str, str]]]" = {}
    for spec in specs:
        body, proto = _proto(spec)
        if body.startswith("["):   # [::1]:80:80: IPv6 host addresses are not published here
            raise PortSpecError(f"IPv6 host addresses are not supported: {spec}")
        parts = body.split(":")
        if len(parts) == 1:
            host_ip, host_port, cport = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, host_port, cport = "", parts[0], parts[1]
        elif len(parts) == 3:
            host_ip, host_port, cport = parts
        else:
            raise PortSpecError(f"invalid port format for --publish: {spec}")
        if not cport:
            raise PortSpecError(f"no port specified: {spec}<empty>")
        if host_ip:
            from dockyard.network import ipam

            try:
                ipam.to_int(host_ip)
            except DockyardError:
                raise PortSpecError(f"invalid IP address: {host_ip}") from None
            if host_ip == "0.0.0.0":
                host_ip = ""
        cfirst, clast = _range(cport, "containerPort", spec)
        if host_port:
            hfirst, hlast = _range(host_port, "hostPort", spec)
            if clast != cfirst and (hlast - hfirst) != (clast - cfirst):
                raise PortSpecError(f"invalid ranges specified for container and host Ports: {cport} and {host_port}")
        for i, port in enumerate(range(cfirst, clast + 1)):
            key = f"{port}/{proto}"
            exposed[key] = {}
            if not host_port:
                hp = ""
            elif clast != cfirst:
                hp = str(hfirst + i)
            elif hlast != hfirst:
                hp = f"{hfirst}-{hlast}"
            else:
                hp = str(hfirst)
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": hp})
    return exposed, bindings


def parse_expose(specs: "Iterable[str]") -> "dict[str, dict]":
    exposed: "dict[str, dict]" = {}
    for spec in specs:
        port, proto = _proto(spec)
        first, last = _range(port, "range for --expose", spec)
        for p in range(first, last + 1):
            exposed[f"{p}/{proto}"] = {}
    return exposed


def bindings_wanted(host: "dict[str, Any]", config: "dict[str, Any]") -> "list[tuple[str, str, int, int, int]]":
    """(proto, host_ip, first host port, last host port, container port) to publish at a start; 0 = random."""
    bindings = dict(host.get("PortBindings") or {})
    if host.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    out = []
    for key, entries in bindings.items():
        port, _, proto = key.partition("/")
        for entry in entries or [{"HostIp": "", "HostPort": ""}]:
            hp = (entry or {}).get("HostPort") or ""
            lo, _, hi = hp.partition("-")
            first = int(lo) if lo else 0
            last = int(hi) if hi else first
            host_ip = (entry or {}).get("HostIp") or ""
            out.append((proto or "tcp", "" if host_ip == "0.0.0.0" else host_ip, first, last, int(port)))
    return out


def ports_view(record: "ContainerRecord", published: "list[Any]") -> "dict[str, Any]":
    """NetworkSettings.Ports: every exposed port, with its host bindings while it runs."""
    view: "dict[str, Any]" = {key: None for key in record.container_config.get("ExposedPorts") or {}}
    for p in published:
        key = f"{p.container_port}/{p.proto}"
        view[key] = (view.get(key) or []) + [{"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}]
    return view


def ps_column(published: "list[Any]", exposed: "Iterable[str]" = ()) -> str:
    """``docker ps``'s PORTS: ``0.0.0.0:8080->80/tcp, 443/tcp``."""
    items = []
    bound = set()
    for p in sorted(published, key=lambda p: (p.container_port, p.proto, p.host_ip)):
        items.append(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.proto}")
        bound.add(f"{p.container_port}/{p.proto}")
    items += [k for k in sorted(exposed, key=lambda k: (int(k.partition('/')[0]), k)) if k not in bound]
    return ", ".join(items)


def port_lines(published: "list[Any]", wanted: str | None = None) -> "list[str]":
    """``docker port``: ``80/tcp -> 0.0.0.0:8080``; with a port asked for, only ``0.0.0.0:8080``."""
    if wanted:
        port, _, proto = wanted.partition("/")
        proto = proto or "tcp"
        hits = [p for p in published if str(p.container_port) == port and p.proto == proto]
        if not hits:
            raise DockyardError(f"No public port '{port}/{proto}' published for this container", exit_code=1)
        return [f"{p.host_ip or '0.0.0.0'}:{p.host_port}" for p in hits]
    return [f"{p.container_port}/{p.proto} -> {p.host_ip or '0.0.0.0'}:{p.host_port}"
            for p in sorted(published, key=lambda p: (p.container_port, p.proto))]
