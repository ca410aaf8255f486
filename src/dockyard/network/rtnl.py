"""A small rtnetlink client: links, bridges, veths, IPv4 addresses and routes.

pyroute2 costs 150-220 ms to import and this sits on the path of every ``run``, so we speak
the protocol ourselves: a raw ``NETLINK_ROUTE`` socket and ``struct``. The C ``_socket``
module is used instead of ``socket`` (whose enums cost ~10 ms to import). Every request
asks for an ack and reads it; a failure raises ``NetlinkError`` naming the operation.
Constants are those of the kernel's uapi headers (linux/netlink.h, rtnetlink.h, if_link.h,
if_addr.h, veth.h).
"""

from __future__ import annotations

import os
import struct

import _socket

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Iterator

# --- protocol constants ---------------------------------------------------------------
AF_NETLINK = 16
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10    # errors echo only the request's header, not the whole request
NETLINK_EXT_ACK = 11    # errors carry the kernel's own message text

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100    # on an error: the echoed request is its header only
NLM_F_ACK_TLVS = 0x200  # on an error: extended-ack attributes follow

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_IFALIAS = 20
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3   # link replies without their ~1 KiB of counters

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15

AF_UNSPEC = 0
AF_INET = 2
IFF_UP = 0x1
LOOPBACK_IFINDEX = 1       # "lo" is always index 1 in a namespace
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3            # what `ip route add` uses
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

IFNAMSIZ = 16
_BUFSIZE = 1 << 16         # >= the kernel's dump chunk, so no message is truncated

_HDR = struct.Struct("=IHHII")       # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")   # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")    # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI") # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTA = struct.Struct("=HH")          # rtattr: len, type
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


class NetlinkError(OSError):
    """A request the kernel refused: ``errno`` is its error, the message names what we tried."""

    def __str__(self) -> str:
        return str(self.strerror)


def _invalid(text: str) -> NetlinkError:
    return NetlinkError(22, text)   # EINVAL: refused before anything reached the kernel


def _error(err: int, what: str, detail: str = "") -> NetlinkError:
    text = f"{what}: {os.strerror(err)}"
    if detail:
        text += f" ({detail})"
    return NetlinkError(err, text)


# --- encoding -------------------------------------------------------------------------

def _attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _RTA.pack(n, kind) + data + b"\0" * (-n % 4)


def _name(name: str) -> bytes:
    data = name.encode()
    if not data or len(data) >= IFNAMSIZ or b"/" in data or b"\0" in data:
        raise _invalid(f"invalid interface name {name!r}")
    return data + b"\0"


def _mac(mac: str) -> bytes:
    try:
        data = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        data = b""
    if len(data) != 6:
        raise _invalid(f"invalid MAC address {mac!r}")
    return data


def _ipv4(address: str) -> bytes:
    # Dotted quad only: inet_aton would also take "10.1" and octal "010.0.0.1".
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return bytes(int(p) for p in parts)
    raise _invalid(f"invalid IPv4 address {address!r}")


def _cidr(cidr: str) -> tuple[bytes, int]:
    address, slash, length = cidr.partition("/")
    if not slash or not (length.isdigit() and length.isascii()) or int(length) > 32:
        raise _invalid(f"invalid IPv4 CIDR {cidr!r}")
    return _ipv4(address), int(length)


def _attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """The top-level attributes of a message body from ``offset`` (nested ones left packed)."""
    found = {}
    end = len(data)
    while offset + 4 <= end:
        n, kind = _RTA.unpack_from(data, offset)
        if n < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + n]   # without NLA_F_NESTED / BYTEORDER
        offset += (n + 3) & ~3
    return found


# --- the client -----------------------------------------------------------------------

class Netlink:
    """One NETLINK_ROUTE socket, made in the calling thread's netns or in ``netns_path``'s
    (a socket stays in the namespace it was made in, whatever the thread does later)."""

    def __init__(self, netns_path: str | None = None) -> None:
        self._seq = 0
        if netns_path is None:
            self._sock = self._open()
        else:
            from dockyard.network import netns

            with netns.entered(netns_path):
                self._sock = self._open()

    @staticmethod
    def _open() -> "_socket.socket":
        sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:   # older kernels: plain errors still work
            pass
        return sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport

    def _request(self, kind: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one request and read up to its ack (or a dump's end): the replies before it
        as (type, body). Raises NetlinkError on a refusal."""
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
        self._sock.send(_HDR.pack(16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        interrupted = False
        while True:
            data = self._sock.recv(_BUFSIZE)
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, mflags, mseq, _ = _HDR.unpack_from(data, offset)
                if length < 16:
                    break
                if mseq == seq:   # anything else is left over from an earlier, failed request
                    if mtype == NLMSG_ERROR:
                        err = -_I32.unpack_from(data, offset + 16)[0]
                        if err:
                            raise _error(err, what, _ext_message(data[offset:offset + length], mflags))
                        return replies
                    if mtype == NLMSG_DONE:
                        err = -_I32.unpack_from(data, offset + 16)[0] if length >= 20 else 0
                        if err:
                            raise _error(err, what)
                        if interrupted:   # the table changed during the dump: it may miss entries
                            raise _error(4, what, "dump interrupted")   # EINTR
                        return replies
                    if mtype != NLMSG_NOOP:
                        replies.append((mtype, data[offset + 16:offset + length]))
                        interrupted |= bool(mflags & NLM_F_DUMP_INTR)
                offset += (length + 3) & ~3

    def _dump(self, kind: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        for _ in range(4):
            try:
                return self._request(kind, NLM_F_DUMP, body, what)
            except NetlinkError as e:
                if e.errno != 4:
                    raise
        return self._request(kind, NLM_F_DUMP, body, what)

    # --- links

    def link_index(self, name: str) -> int | None:
        """The index of link ``name`` in this socket's namespace; None if there is none."""
        state = self.link_state(name)
        return state[0] if state is not None else None

    def link_state(self, name: str) -> "tuple[int, bool] | None":
        """(index, administratively up) of link ``name``; None if there is none."""
        try:
            body = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)) \
                + _attr(IFLA_EXT_MASK, _U32.pack(RTEXT_FILTER_SKIP_STATS))
        except NetlinkError:
            return None   # a name no link can have
        try:
            replies = self._request(RTM_GETLINK, 0, body, f"look up link {name}")
        except NetlinkError as e:
            if e.errno == 19:   # ENODEV
                return None
            raise
        for mtype, reply in replies:
            if mtype == RTM_NEWLINK:
                _, _, index, flags, _ = _IFINFO.unpack_from(reply)
                return index, bool(flags & IFF_UP)
        return None

    def _index(self, name: str, what: str) -> int:
        index = self.link_index(name)
        if index is None:
            raise _error(19, what, f"no link named {name}")
        return index

    def links(self) -> "Iterator[tuple[int, str]]":
        """(index, name) of every link in this socket's namespace."""
        for reply, attrs in self._link_dump():
            yield _IFINFO.unpack_from(reply)[2], attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")

    def link_names(self) -> list[str]:
        return [name for _, name in self.links()]

    def _link_dump(self) -> "Iterator[tuple[bytes, dict[int, bytes]]]":
        """(ifinfomsg reply, its attributes) of every link in this socket's namespace."""
        body = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_EXT_MASK, _U32.pack(RTEXT_FILTER_SKIP_STATS))
        for mtype, reply in self._dump(RTM_GETLINK, body, "list links"):
            if mtype == RTM_NEWLINK:
                yield reply, _attrs(reply, 16)

    def link_aliases(self) -> "dict[str, tuple[bool, str]]":
        """name -> (administratively up, alias) of every link in this socket's namespace."""
        found = {}
        for reply, attrs in self._link_dump():
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
            alias = attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode(errors="replace")
            found[name] = (bool(_IFINFO.unpack_from(reply)[3] & IFF_UP), alias)
        return found

    def link_masters(self) -> "dict[str, int]":
        """name -> index of the bridge it is a port of, for every enslaved link."""
        return {attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"):
                _U32.unpack(attrs[IFLA_MASTER][:4])[0]
                for _reply, attrs in self._link_dump() if IFLA_MASTER in attrs}

    def set_alias(self, name: str, alias: str) -> None:
        """The link's free-text alias (``ip link show`` prints it): who made the link."""
        data = alias.encode()
        if len(data) > 255:   # IFALIASZ - 1
            raise _invalid(f"link alias longer than 255 bytes: {alias!r}")
        body = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)) \
            + _attr(IFLA_IFALIAS, data + b"\0")
        self._request(RTM_NEWLINK, 0, body, f"set alias of {name}")

    def _newlink(self, name: str, what: str, *, create: str = "", up: bool = False, master: int = 0,
                 mac: str | None = None, info_data: bytes = b"") -> None:
        """One RTM_NEWLINK: create a link of kind ``create``, or change link ``name`` (found by
        name: no look-up first). ``up`` and ``master`` ride along in the same message."""
        attrs = [_attr(IFLA_IFNAME, _name(name))]
        if mac is not None:
            attrs.append(_attr(IFLA_ADDRESS, _mac(mac)))
        if master:
            attrs.append(_attr(IFLA_MASTER, _U32.pack(master)))
        if create:
            info = _attr(IFLA_INFO_KIND, create.encode())
            if info_data:
                info += _attr(IFLA_INFO_DATA, info_data)
            attrs.append(_attr(IFLA_LINKINFO, info))
        flag = IFF_UP if up else 0
        body = _IFINFO.pack(AF_UNSPEC, 0, 0, flag, flag) + b"".join(attrs)
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL if create else 0, body, what)

    def create_bridge(self, name: str) -> None:
        self._newlink(name, f"create bridge {name}", create="bridge")

    def _create_veth(self, name: str, peer: str, peer_netns_fd: int = -1, peer_mac: str | None = None,
                     up: bool = False, master: int = 0) -> None:
        peer_attrs = _attr(IFLA_IFNAME, _name(peer))
        if peer_mac is not None:
            peer_attrs += _attr(IFLA_ADDRESS, _mac(peer_mac))
        if peer_netns_fd >= 0:
            peer_attrs += _attr(IFLA_NET_NS_FD, _U32.pack(peer_netns_fd))
        # The peer cannot be brought up here: veth refuses to open an end whose pair is not
        # linked yet (ENOTCONN), and the pair is linked after both are registered.
        peer_info = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + peer_attrs
        self._newlink(name, f"create veth {name}", create="veth", up=up, master=master,
                      info_data=_attr(VETH_INFO_PEER, peer_info))

    def create_veth(self, name: str, peer: str, peer_netns: str | None = None,
                    peer_mac: str | None = None) -> None:
        """A veth pair; the ``peer`` end made directly inside the namespace at ``peer_netns``."""
        if peer_netns is None:
            self._create_veth(name, peer, -1, peer_mac)
            return
        fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._create_veth(name, peer, fd, peer_mac)
        finally:
            os.close(fd)

    def set_master(self, name: str, bridge: str) -> None:
        what = f"attach {name} to bridge {bridge}"
        self._newlink(name, what, master=self._index(bridge, what))

    def set_up(self, name: str) -> None:
        self._newlink(name, f"set {name} up", up=True)

    def set_mac(self, name: str, mac: str) -> None:
        self._newlink(name, f"set MAC address of {name}", mac=mac)

    def retire_link(self, name: str) -> bool:
        """Take link ``name`` down and give it a throwaway name; False if none. For a veth
        whose other end's namespace is about to go: the kernel then frees the pair with the
        namespace, without the ~30 ms a delete waits here, and the name is free at once."""
        index = self.link_index(name)
        if index is None:
            return False
        what = f"retire {name}"
        self._request(RTM_NEWLINK, 0, _IFINFO.pack(AF_UNSPEC, 0, index, 0, IFF_UP), what)
        spare = "dz" + os.urandom(6).hex()
        self._request(RTM_NEWLINK, 0, _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0) + _attr(IFLA_IFNAME, _name(spare)),
                      what)
        return True

    def delete_link(self, name: str) -> bool:
        """Delete link ``name`` (a veth takes its peer with it, at once); False if none."""
        try:
            body = _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
        except NetlinkError:
            return False
        try:
            self._request(RTM_DELLINK, 0, body, f"delete link {name}")
        except NetlinkError as e:
            if e.errno == 19:
                return False
            raise
        return True

    # --- addresses

    def _add_address(self, index: int, cidr: str, what: str) -> None:
        address, length = _cidr(cidr)
        attrs = _attr(IFA_LOCAL, address) + _attr(IFA_ADDRESS, address)
        if length < 31:   # /31 and /32 have no broadcast address
            host_bits = (1 << (32 - length)) - 1
            broadcast = (int.from_bytes(address, "big") | host_bits).to_bytes(4, "big")
            attrs += _attr(IFA_BROADCAST, broadcast)
        body = _IFADDR.pack(AF_INET, length, 0, RT_SCOPE_UNIVERSE, index) + attrs
        try:
            self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)
        except NetlinkError as e:
            if e.errno != 17:   # EEXIST: already there, as wanted
                raise

    def add_address(self, name: str, cidr: str) -> None:
        """Add IPv4 ``cidr`` ("172.17.0.1/16") to ``name``, with its broadcast address."""
        what = f"add address {cidr} to {name}"
        self._add_address(self._index(name, what), cidr, what)

    def addresses(self, name: str | None = None) -> list[tuple[str, str]]:
        """[(link name, "a.b.c.d/len")] of the IPv4 addresses on ``name``, or on every link."""
        if name is None:
            names = dict(self.links())
        else:
            index = self.link_index(name)
            if index is None:
                return []
            names = {index: name}
        found = []
        body = _IFADDR.pack(AF_INET, 0, 0, 0, 0)
        for mtype, reply in self._dump(RTM_GETADDR, body, "list addresses"):
            if mtype != RTM_NEWADDR:
                continue
            family, length, _, _, index = _IFADDR.unpack_from(reply)
            if family != AF_INET or index not in names:
                continue
            attrs = _attrs(reply, _IFADDR.size)
            address = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if address and len(address) == 4:
                found.append((names[index], f"{_socket.inet_ntoa(address)}/{length}"))
        return found

    # --- routes

    def _add_default_route(self, gateway: str) -> None:
        body = _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0) \
            + _attr(RTA_GATEWAY, _ipv4(gateway))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"add default route via {gateway}")

    def add_default_route(self, gateway: str) -> None:
        """IPv4 default route via ``gateway`` in the main table (EEXIST if there is one)."""
        self._add_default_route(gateway)

    def routes(self) -> list[str]:
        """The IPv4 destinations of the main table as CIDRs ("172.17.0.0/16", "0.0.0.0/0")."""
        found: list[str] = []
        body = _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        for mtype, reply in self._dump(RTM_GETROUTE, body, "list routes"):
            family, dst_len, _, _, table = _RTMSG.unpack_from(reply)[:5]
            if mtype != RTM_NEWROUTE or family != AF_INET:
                continue
            attrs = _attrs(reply, _RTMSG.size)
            if RTA_TABLE in attrs:   # tables above 255 only fit here
                table = _U32.unpack(attrs[RTA_TABLE])[0]
            if table != RT_TABLE_MAIN:
                continue
            dst = attrs.get(RTA_DST, b"\0\0\0\0")
            cidr = f"{_socket.inet_ntoa(dst)}/{dst_len}"
            if cidr not in found:
                found.append(cidr)
        return found


def _ext_message(message: bytes, flags: int) -> str:
    """The kernel's own words in an error ack (extended ack), if it sent any."""
    if not flags & NLM_F_ACK_TLVS or len(message) < 36:
        return ""
    echoed = 16 if flags & NLM_F_CAPPED else _HDR.unpack_from(message, 20)[0]
    text = _attrs(message, 20 + ((echoed + 3) & ~3)).get(NLMSGERR_ATTR_MSG, b"")
    return text.rstrip(b"\0").decode(errors="replace")


def attach_veth(netns_path: str, host_ifname: str, bridge: str, ifname: str, cidr: str,
                gateway: str, mac: str) -> None:
    """Plug the namespace at ``netns_path`` into ``bridge``: a veth pair whose host end
    ``host_ifname`` is enslaved to the bridge and up, and whose other end is made inside the
    namespace as ``ifname`` with ``mac``, address ``cidr``, up; a default route via ``gateway``
    unless it is "" (a second network adds no default route).

    Two sockets, one setns round trip: the pair is made in one message from the host (peer
    name, MAC, namespace, master and both ends' IFF_UP together); the address and route are
    added through a socket opened inside the namespace."""
    what = f"create veth {host_ifname}"
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        address, _ = _cidr(cidr)   # refuse bad input before anything is made
        if gateway:
            _ipv4(gateway)
        with Netlink() as host:
            host._create_veth(host_ifname, ifname, fd, mac, up=True, master=host._index(bridge, what))
            try:
                from dockyard.network import netns

                with netns._Entered(fd):
                    inner = Netlink()
                with inner:
                    inner._newlink(ifname, f"set {ifname} up in {netns_path}", up=True)
                    index = inner._index(ifname, f"configure {ifname} in {netns_path}")
                    inner._add_address(index, cidr, f"add address {cidr} to {ifname} in {netns_path}")
                    if gateway:
                        inner._add_default_route(gateway)
            except BaseException:
                host.delete_link(host_ifname)   # takes the peer with it
                raise
    finally:
        os.close(fd)
