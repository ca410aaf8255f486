"""IPv4 arithmetic for address management: subnets as (base, prefix) integers.

The ``ipaddress`` module is not used: it costs the commands that start containers
several milliseconds to import, and these few operations are all IPAM needs.
"""

from __future__ import annotations

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

# Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 cut into /20s.
DEFAULT_POOLS = [(f"172.{n}.0.0/16") for n in range(17, 32)] + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]


class InvalidAddress(DockyardError):
    exit_code = 125


def to_int(address: str) -> int:
    parts = address.split(".")
    if len(parts) != 4:
        raise InvalidAddress(f"invalid IP address: {address}")
    value = 0
    for part in parts:
        if not part.isdigit() or int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            raise InvalidAddress(f"invalid IP address: {address}")
        value = value << 8 | int(part)
    return value


def to_str(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def parse_cidr(cidr: str, strict: bool = True) -> tuple[int, int]:
    """(network base, prefix length); ``strict``: host bits must be zero (Docker refuses
    ``--subnet 10.1.2.3/16`` too)."""
    address, sep, length = cidr.partition("/")
    if not sep or not length.isdigit() or not 0 <= int(length) <= 32:
        raise InvalidAddress(f"invalid CIDR address: {cidr}")
    prefix = int(length)
    value = to_int(address)
    base = value & mask(prefix)
    if strict and base != value:
        raise InvalidAddress(f"invalid subnet {cidr}: it should be {to_str(base)}/{prefix}")
    return base, prefix


def mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def cidr(base: int, prefix: int) -> str:
    return f"{to_str(base)}/{prefix}"


def contains(net: tuple[int, int], address: int) -> bool:
    return address & mask(net[1]) == net[0]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    shorter = min(a[1], b[1])
    return a[0] & mask(shorter) == b[0] & mask(shorter)


def prefix_of(subnet: str) -> int:
    return int(subnet.partition("/")[2])


def free_pool(taken: "Iterable[str]", pools: "Iterable[str]" = DEFAULT_POOLS) -> str | None:
    """The first pool subnet that overlaps none of ``taken`` (host routes, our networks)."""
    used = [parse_cidr(t, strict=False) for t in taken]
    for pool in pools:
        net = parse_cidr(pool)
        if not any(overlaps(net, u) for u in used):
            return pool
    return None


def first_free(subnet: str, ip_range: str, taken: "set[int]") -> int | None:
    """The lowest free host address of ``ip_range`` (or the subnet), never the subnet's own
    network or broadcast address."""
    base, prefix = parse_cidr(subnet)
    lo, hi = base + 1, base + (1 << (32 - prefix)) - 2
    if ip_range:
        rbase, rprefix = parse_cidr(ip_range, strict=False)
        lo, hi = max(lo, rbase), min(hi, rbase + (1 << (32 - rprefix)) - 1)
    for value in range(lo, hi + 1):
        if value not in taken:
            return value
    return None


def mac_for(address: str) -> str:
    """Docker's MAC for an address: 02:42 and the address's four bytes."""
    value = to_int(address)
    return "02:42:" + ":".join(f"{value >> shift & 255:02x}" for shift in (24, 16, 8, 0))


def check_mac(mac: str) -> str:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InvalidAddress(f"invalid MAC address: {mac}")
    return mac.lower()


def check_dns_name(name: str) -> str:
    """A name the DNS responder can answer: dot-separated labels of letters, digits,
    underscores and inner hyphens, 63 bytes each (RFC 1123, plus the underscore dockerd's
    resolver answers too: Docker Compose names containers ``my_app-web-1``)."""
    labels = name.split(".")
    for label in labels:
        if not (0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
                and all(c.isalnum() or c in "-_" for c in label) and label.isascii()):
            raise InvalidAddress(f"invalid network alias \"{name}\": not a valid DNS name "
                                 "(letters, digits, underscores and inner hyphens, dot-separated, "
                                 "63 characters a label)")
    return name
