"""The DNS responder for container names (our aardvark-dns).

A daemonless engine has no daemon to answer a container's DNS queries, so one small
responder per data root is started on demand by the first container that needs it
(``ensure_running``) and leaves by itself when no container needs it any more. It binds
UDP and TCP port 53530 (``PORT``; the firewall redirects the containers' queries to <gateway>:53
there) on the gateway address of every DNS-enabled bridge network and answers
from the state DB: on network N, the names, short and full IDs and N-aliases of N's running
containers (also ``<name>.<network>``; not the full ID: over DNS's 63-byte label limit), PTR for their addresses; every other query goes to
the asking container's ``--dns`` servers, else to the host's non-loopback nameservers.

Files under ``<runroot>/dns``: ``dnsd.lock`` (flocked by the live responder for its whole
life: the one test of "is it running"), ``dnsd.pid``, ``wanted`` (touched by every
``ensure_running``: see ``Responder.relinquish``) and ``dnsd.log``.

This module is imported on the container start path: only cheap modules at top level;
asyncio, sqlite3 and dnslib are imported by the daemon itself.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

# signal is imported where used: with the enum module behind it, it costs ~6 ms.
TYPE_CHECKING = False  # importing typing costs start-up time on the container start path
if TYPE_CHECKING:
    import asyncio
    import socket
    import sqlite3
    from typing import Any

    from dnslib import DNSRecord

# Not 53 itself: the firewall redirects containers' queries to <gateway>:53 here, so a DNS
# server the host runs on port 53 of every address cannot keep the responder from binding.
PORT = 53530
TTL = 600                         # as Docker's embedded DNS
IDLE = 10.0                       # seconds without a container that needs us before leaving
ACTIVE = ("created", "running", "paused", "restarting")   # containers that keep us alive
ANSWERED = ("running", "paused")  # containers whose names we answer
RELOAD_EVERY = 0.25               # longest a stale name table is served while queries flow
FORWARD_TIMEOUT = 2.0
MAX_FORWARDS = 1024               # queries being forwarded at once; more are dropped (clients retry)
CACHE_MAX = 8192                  # encoded answers kept per network
ROTATIONS = 16                    # distinct orders kept for a name with many addresses
BATCH = 256                       # datagrams read per wake-up before other work gets a turn

LOCK, PID, WANTED, LOG = "dnsd.lock", "dnsd.pid", "wanted", "dnsd.log"


def _dir(runroot: str) -> str:
    return os.path.join(str(runroot), "dns")


# --------------------------------------------------------------------- process management

def ensure_running(root: str, runroot: str) -> None:
    """Start the responder of ``root`` unless it runs. Costs ~20 us when it runs: a touch
    and a failed non-blocking flock. Returns once spawned, before the responder binds."""
    d = _dir(runroot)
    wanted = os.path.join(d, WANTED)
    try:
        os.utime(wanted)   # first, before the lock test: the responder's exit re-checks it
    except FileNotFoundError:
        os.makedirs(d, exist_ok=True)
        os.close(os.open(wanted, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    if _lock_held(d):
        return
    _spawn(str(root), str(runroot), d)


def _lock_held(d: str) -> bool:
    """Whether a responder holds the lock (taking it for a moment when free)."""
    fd = os.open(os.path.join(d, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)   # drops the lock if we took it
    return False


def _spawn(root: str, runroot: str, d: str) -> None:
    """Double fork: the responder is nobody's child here (a long-lived caller such as the shim
    would otherwise collect a zombie), in a session of its own, stdio on the log.
    ``posix_spawn`` in the child keeps subprocess (~5 ms of imports) off this path."""
    import signal

    argv = [sys.executable, "-m", "dockyard.network.dnsd", "--root", root, "--runroot", runroot]
    log = os.path.join(d, LOG)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    reset = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2}
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True,
                           setsigdef=reset, setsigmask=set())
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _read_pid(d: str) -> int:
    try:
        with open(os.path.join(d, PID), "rb") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
    try:   # a stale file's PID may belong to another process by now
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid if b"dockyard.network.dnsd" in f.read() else 0
    except OSError:
        return 0


def rebind(runroot: str) -> None:
    """Ask a running responder to re-read the DB now and bind new gateways; no-op if none runs."""
    import signal

    pid = _read_pid(_dir(runroot))
    if pid:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            pass


def stop(runroot: str, timeout: float = 5.0) -> None:
    """Stop the responder (``system reset``): SIGTERM, then wait until its lock is free."""
    import signal

    d = _dir(runroot)
    if not os.path.exists(os.path.join(d, LOCK)):
        return
    deadline = time.monotonic() + timeout
    signalled: set[int] = set()
    while _lock_held(d):
        pid = _read_pid(d)   # read again each time: one that was starting has written it since
        if pid and pid not in signalled:
            signalled.add(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            for pid in signalled | {_read_pid(d)} - {0}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        time.sleep(0.01)


# --------------------------------------------------------------------- the name table

class Net:
    """What the responder answers on one network's gateway."""

    __slots__ = ("id", "name", "gateway", "internal", "names", "ptr", "dns_of", "cache", "cid_of", "address_of")

    def __init__(self, id: str, name: str, gateway: str, internal: bool) -> None:
        self.id, self.name, self.gateway, self.internal = id, name, gateway, internal
        self.names: dict[str, list[str]] = {}     # lower-case name -> addresses
        self.ptr: dict[str, str] = {}             # "2.0.17.172.in-addr.arpa" -> container name
        self.dns_of: dict[str, list[str]] = {}    # container address -> its --dns servers
        self.cid_of: dict[str, str] = {}          # container address -> container ID
        self.address_of: dict[str, str] = {}      # container ID -> its address here
        # Encoded answers by the query's bytes after its ID: bytes, or for a name with
        # several addresses [index, variant, variant, ...] served in turn (round robin).
        self.cache: dict[bytes, Any] = {}

    def add(self, name: str, address: str) -> None:
        addrs = self.names.setdefault(name.lower(), [])
        if address not in addrs:
            addrs.append(address)


_QUERY = """
SELECT n.id, n.name, n.gateway, n.internal, e.address, e.aliases, c.id, c.name, c.status,
       CASE WHEN json_valid(c.config) THEN json_extract(c.config, '$.HostConfig.Dns') END
FROM networks n
LEFT JOIN endpoints e ON e.network_id = n.id
LEFT JOIN containers c ON c.id = e.container_id
WHERE n.driver = 'bridge' AND n.dns = 1 AND n.gateway != ''
"""


def load_table(conn: "sqlite3.Connection") -> tuple[dict[str, Net], bool]:
    """The networks by gateway, and whether any container still needs the responder."""
    import json

    nets: dict[str, Net] = {}
    needed = False
    for nid, nname, gateway, internal, address, aliases, cid, cname, status, dns in conn.execute(_QUERY):
        net = nets.get(gateway)
        if net is None:
            net = nets[gateway] = Net(nid, nname, gateway, bool(internal))
        elif net.id != nid:
            continue   # two networks on one gateway (should not happen): the first one answers
        if cid is None or not address:
            continue
        if status in ACTIVE:
            needed = True
        if status not in ANSWERED:
            continue
        try:
            extra = [a for a in json.loads(aliases or "[]") if isinstance(a, str) and a]
        except ValueError:
            extra = []
        # Not the full ID: 64 characters are over DNS's 63-byte label limit, no client can ask.
        for name in (cname, cid[:12], *extra):
            net.add(name, address)
            net.add(f"{name}.{nname}", address)
        net.cid_of[address] = cid
        net.address_of[cid] = address
        if address.count(".") == 3:
            net.ptr[".".join(reversed(address.split("."))) + ".in-addr.arpa"] = cname
        try:
            servers = json.loads(dns) if dns else None
        except ValueError:
            servers = None
        if servers:
            net.dns_of[address] = [s for s in servers if isinstance(s, str) and s]
    return nets, needed


def host_nameservers(path: str) -> list[str]:
    """The nameservers of a resolv.conf a container could also reach: loopback ones skipped."""
    import ipaddress

    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                ip = ipaddress.ip_address(words[1])
            except ValueError:
                continue
            if not ip.is_loopback and not ip.is_unspecified:
                found.append(str(ip))
    return found


# --------------------------------------------------------------------- the responder

def _log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} dnsd[{os.getpid()}]: {msg}", flush=True)


def _error_reply(data: bytes, rcode: int) -> bytes:
    """A header-only error answer built from the raw query (when dnslib cannot parse it)."""
    return data[:2] + bytes([0x80 | (data[2] & 0x79), 0x80 | rcode]) + bytes(8)


class Responder:
    def __init__(self, root: str, runroot: str, idle: float, port: int, resolv_conf: str, lock_fd: int) -> None:
        import asyncio

        self.root, self.runroot, self.idle, self.port = root, runroot, idle, port
        self.dir = _dir(runroot)
        self.db_path = os.path.join(root, "dockyard.db")
        self.resolv_conf = resolv_conf
        self.lock_fd = lock_fd
        self.conn: sqlite3.Connection | None = None
        self.version = -1
        self.db_error = ""
        self.checked = 0.0
        self.nets: dict[str, Net] = {}
        self.needed = True
        self.idle_since: float | None = None
        self.udp: dict[str, socket.socket] = {}
        self.tcp: dict[str, asyncio.base_events.Server] = {}
        self.bind_errors: dict[str, int] = {}     # gateway -> errno last logged
        self.hup = False
        self.stopping = False
        self.wake = asyncio.Event()
        self.resolv_seen: tuple[float, list[str]] = (-1.0, [])
        self.tasks: set[asyncio.Task[Any]] = set()   # forwards under way

    # ------------------------------------------------------------ the DB

    def open_db(self) -> bool:
        import sqlite3

        try:
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 200")   # never hold the loop long
            self.conn = conn
            return True
        except sqlite3.Error as e:
            _log(f"cannot open {self.db_path}: {e}")
            return False

    def maybe_reload(self, force: bool = False) -> None:
        """Read the name table again if the DB changed (PRAGMA data_version: a few us)."""
        import sqlite3

        self.checked = time.monotonic()
        if self.conn is None and not self.open_db():
            return
        assert self.conn is not None
        try:
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self.version and not force:
                return
            nets, needed = load_table(self.conn)
        except sqlite3.Error as e:   # locked for a moment, or a schema being migrated: next time
            if str(e) != self.db_error:   # once, not at every query while it lasts
                self.db_error = str(e)
                _log(f"reading the DB failed: {e}")
            return
        self.db_error = ""
        self.version = version
        if set(nets) != set(self.nets):
            self.wake.set()   # bind or close sockets in the main loop
        self.nets, self.needed = nets, needed

    # ------------------------------------------------------------ sockets

    async def bind(self) -> None:
        import asyncio
        import errno
        import socket

        loop = asyncio.get_running_loop()
        for gw in [g for g in self.udp if g not in self.nets]:
            self.close_gateway(gw)
            _log(f"closed {gw}")
        for gw in self.nets:
            if gw in self.udp:
                continue
            family = socket.AF_INET6 if ":" in gw else socket.AF_INET
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                # No SO_REUSEADDR on UDP: there it lets a second responder (another root on the
                # same subnet) bind the same address silently. TCP needs it for TIME_WAIT.
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                udp.bind((gw, self.port))
                tcp.bind((gw, self.port))
                tcp.listen(64)
                udp.setblocking(False)
                tcp.setblocking(False)
                server = await asyncio.start_server(lambda r, w, gw=gw: self.serve_tcp(gw, r, w), sock=tcp)
            except OSError as e:
                udp.close()
                tcp.close()
                if self.bind_errors.get(gw) != e.errno:   # log once; retried every tick
                    self.bind_errors[gw] = e.errno or 0
                    hint = " (no such address on the host yet)" if e.errno == errno.EADDRNOTAVAIL else ""
                    _log(f"cannot bind {gw}:{self.port}: {e.strerror or e}{hint}")
                continue
            self.bind_errors.pop(gw, None)
            self.udp[gw] = udp
            self.tcp[gw] = server
            loop.add_reader(udp.fileno(), self.udp_reader(gw, udp))
            _log(f"listening on {gw}:{self.port} (network {self.nets[gw].name})")

    def close_gateway(self, gw: str) -> None:
        import asyncio

        udp = self.udp.pop(gw, None)
        if udp is not None:
            asyncio.get_running_loop().remove_reader(udp.fileno())
            udp.close()
        server = self.tcp.pop(gw, None)
        if server is not None:
            server.close()

    def close_all(self) -> None:
        for gw in list(self.udp):
            self.close_gateway(gw)

    # ------------------------------------------------------------ UDP: the hot path

    def udp_reader(self, gw: str, sock: "socket.socket") -> Any:
        recvfrom, sendto = sock.recvfrom, sock.sendto
        monotonic = time.monotonic

        def on_readable() -> None:
            if monotonic() - self.checked > RELOAD_EVERY:
                self.maybe_reload()
            for _ in range(BATCH):
                try:
                    data, addr = recvfrom(4096)
                except BlockingIOError:
                    return
                except OSError:
                    continue
                net = self.nets.get(gw)
                if net is None:
                    continue
                entry = net.cache.get(data[2:])   # the question as sent, flags, EDNS: all after the ID
                if entry is None:
                    self.udp_slow(gw, sock, data, addr)
                    continue
                if entry.__class__ is bytes:
                    out = data[:2] + entry
                else:                              # round robin over the kept orders
                    i = entry[0] + 1
                    if i == len(entry):
                        i = 1
                    entry[0] = i
                    out = data[:2] + entry[i]
                try:
                    sendto(out, addr)
                except OSError:
                    pass

        return on_readable

    def udp_slow(self, gw: str, sock: "socket.socket", data: bytes, addr: Any) -> None:
        if len(data) < 12:
            return
        # A miss looks at the DB first (data_version: a few us, small beside dnslib's parse):
        # a peer that started a moment ago resolves at once.
        self.maybe_reload()
        net = self.nets.get(gw)
        if net is None:
            return
        out, req = self.local(net, data, tcp=False, source=addr[0])
        if out is None and req is not None:
            if len(self.tasks) >= MAX_FORWARDS:
                return
            self.spawn(self.forward_udp(net, sock, req, data, addr))
            return
        if out is not None:
            try:
                sock.sendto(out, addr)
            except OSError:
                pass

    def spawn(self, coro: Any) -> None:
        import asyncio

        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)   # a task nobody references may be collected mid-flight
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------ answers

    def local(self, net: Net, data: bytes, tcp: bool, source: str = "") -> "tuple[bytes | None, DNSRecord | None]":
        """The answer from N's table (cached for UDP), or (None, request) to forward it.
        (None, None): drop the packet. A name on another network the asking container is
        also on (``network connect``) is answered too, as Docker does, but never cached:
        N's other containers are not on that network."""
        from dnslib import QTYPE, DNSRecord

        try:
            req = DNSRecord.parse(data)
        except Exception:   # dnslib raises assorted errors on garbage
            return (None if data[2] & 0x80 else _error_reply(data, 1)), None   # FORMERR
        h = req.header
        if h.qr:
            return None, None
        if h.opcode != 0:
            return self.rcode(req, 4), None     # NOTIMP
        if len(req.questions) != 1:
            return self.rcode(req, 1), None     # FORMERR
        q = req.q
        name = str(q.qname).rstrip(".").lower()
        if q.qclass not in (1, 255):
            return None, req
        if q.qtype == QTYPE.PTR and name in net.ptr:
            variants = self.build(req, [], net.ptr[name], tcp)
        else:
            addrs = net.names.get(name)
            if addrs is None:
                addrs = self.other_networks(net, source, name)
                if addrs is None:
                    return None, req
                return self.build(req, addrs if q.qtype in (QTYPE.A, QTYPE.ANY) else [], "", tcp)[0], req
            variants = self.build(req, addrs if q.qtype in (QTYPE.A, QTYPE.ANY) else [], "", tcp)
        if not tcp:
            if len(net.cache) >= CACHE_MAX:
                net.cache.clear()
            if len(variants) == 1:
                net.cache[data[2:]] = variants[0][2:]
            else:   # the next query gets the second order: this one gets the first
                net.cache[data[2:]] = [1] + [v[2:] for v in variants]
        return variants[0], req

    def other_networks(self, net: Net, source: str, name: str) -> "list[str] | None":
        cid = net.cid_of.get(source)
        if cid is None:
            return None
        for other in self.nets.values():
            if other is not net and cid in other.address_of:
                addrs = other.names.get(name)
                if addrs is not None:
                    return addrs
        return None

    def build(self, req: "DNSRecord", addrs: list[str], ptr: str, tcp: bool) -> list[bytes]:
        """Encoded answers: one per kept order of ``addrs`` (a name's several addresses are
        served in turn), each cut to what the client can take over UDP."""
        from dnslib import PTR, QTYPE, RR, A

        limit = 65535 if tcp else 512
        opt = next((r for r in req.ar if r.rtype == QTYPE.OPT), None)
        if opt is not None and not tcp:
            limit = min(max(opt.rclass, 512), 4096)   # the client's EDNS buffer size
        n = len(addrs)
        count = min(n, ROTATIONS) if n > 1 else 1
        variants = []
        for k in range(count):
            off = k * n // count
            reply = req.reply()
            if ptr:
                reply.add_answer(RR(req.q.qname, QTYPE.PTR, rdata=PTR(ptr + "."), ttl=TTL))
            for a in addrs[off:] + addrs[:off]:
                reply.add_answer(RR(req.q.qname, QTYPE.A, rdata=A(a), ttl=TTL))
            out = reply.pack()
            if len(out) > limit:   # keep what fits and say so (the client may ask over TCP)
                reply.header.tc = 1
                while reply.rr and len(out) > limit:
                    del reply.rr[min(len(reply.rr) - 1, len(reply.rr) * limit // len(out)):]
                    out = reply.pack()
            variants.append(bytes(out))   # dnslib packs into a bytearray: the hot path tests for bytes
        return variants

    def rcode(self, req: "DNSRecord", code: int) -> bytes:
        reply = req.reply()
        reply.header.aa = 0
        reply.header.rcode = code
        return bytes(reply.pack())

    # ------------------------------------------------------------ forwarding

    def upstreams(self, net: Net, source: str) -> list[str]:
        if net.internal:   # no egress from an internal network, not even through us
            return []
        servers = net.dns_of.get(source)
        if servers:
            return servers
        try:
            mtime = os.stat(self.resolv_conf).st_mtime
        except OSError:
            mtime = 0.0
        if mtime != self.resolv_seen[0]:
            self.resolv_seen = (mtime, host_nameservers(self.resolv_conf))
        return self.resolv_seen[1]

    async def forward_udp(self, net: Net, sock: "socket.socket", req: "DNSRecord", data: bytes, addr: Any) -> None:
        reply = await self.ask(self.upstreams(net, addr[0]), data, tcp=False)
        out = data[:2] + reply[2:] if reply else self.rcode(req, 2)   # SERVFAIL
        try:
            sock.sendto(out, addr)
        except OSError:
            pass

    async def ask(self, servers: list[str], data: bytes, tcp: bool) -> bytes | None:
        """The upstream's reply (with our random ID; the caller puts the client's back), or None."""
        import asyncio

        if not servers:
            return None
        tries = servers[:2] if len(servers) > 1 else servers * 2   # one retry, on the next server
        for server in tries:
            try:
                reply = await asyncio.wait_for(self.ask_one(server, data, tcp), FORWARD_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                continue
            if reply:
                return reply
        return None

    async def ask_one(self, server: str, data: bytes, tcp: bool) -> bytes | None:
        import asyncio
        import socket

        msg = os.urandom(2) + data[2:]   # our own ID (and a fresh port): harder to spoof
        if tcp:
            reader, writer = await asyncio.open_connection(server, 53)
            try:
                writer.write(len(msg).to_bytes(2, "big") + msg)
                await writer.drain()
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = await reader.readexactly(size)
                return reply if len(reply) >= 12 and reply[:2] == msg[:2] else None
            finally:
                writer.close()
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.connect((server, 53))
            s.send(msg)
            while True:
                reply = await loop.sock_recv(s, 65535)
                if len(reply) >= 12 and reply[:2] == msg[:2] and reply[2] & 0x80:
                    return reply
        finally:
            s.close()

    # ------------------------------------------------------------ TCP

    async def serve_tcp(self, gw: str, reader: "asyncio.StreamReader", writer: "asyncio.StreamWriter") -> None:
        import asyncio

        peer = (writer.get_extra_info("peername") or ("",))[0]
        try:
            while True:
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
                data = await asyncio.wait_for(reader.readexactly(size), 10)
                if len(data) < 12:
                    break
                self.maybe_reload()
                net = self.nets.get(gw)
                if net is None:
                    break
                out, req = self.local(net, data, tcp=True, source=peer)
                if out is None and req is not None:
                    reply = await self.ask(self.upstreams(net, peer), data, tcp=True)
                    out = data[:2] + reply[2:] if reply else self.rcode(req, 2)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------ life

    def wanted_recently(self) -> bool:
        try:
            return time.time() - os.stat(os.path.join(self.dir, WANTED)).st_mtime < self.idle
        except OSError:
            return False

    def idle_expired(self) -> bool:
        if self.needed:
            self.idle_since = None
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.idle and not self.wanted_recently()

    def relinquish(self) -> bool:
        """Leave, closing the race with a container that starts just now: its
        ``ensure_running`` touches ``wanted`` and then tests the lock. We close our sockets
        and drop the lock first, then look at ``wanted`` again: a touch before that look keeps
        us (we take the lock back, unless a new responder has it); a touch after it finds the
        lock free and spawns a new responder. True: keep running."""
        self.close_all()
        _remove_pid(self.dir)
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        if not self.wanted_recently():
            return False
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False   # a new responder took over
        _write_pid(self.dir)
        self.idle_since = None
        _log("wanted again: staying")
        return True

    def on_hup(self) -> None:
        self.hup = True
        self.wake.set()

    def on_term(self) -> None:
        self.stopping = True
        self.wake.set()

    async def run(self) -> int:
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.on_hup)
        loop.add_signal_handler(signal.SIGTERM, self.on_term)
        loop.add_signal_handler(signal.SIGINT, self.on_term)
        if not self.open_db():
            return 1
        self.maybe_reload(force=True)
        tick = max(0.05, min(1.0, self.idle / 4))
        code = 0
        while True:
            await self.bind()   # new gateways; those that failed before are tried again each tick
            try:
                await asyncio.wait_for(self.wake.wait(), tick)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            if self.stopping:
                _log("stopping (SIGTERM)")
                break
            if not os.path.exists(self.db_path):
                _log(f"{self.db_path} is gone: leaving")
                break
            hup, self.hup = self.hup, False
            self.maybe_reload(force=hup)
            if self.idle_expired():
                if not self.relinquish():
                    _log(f"no container needs DNS for {self.idle:g}s: leaving")
                    break
        self.close_all()
        for task in list(self.tasks):
            task.cancel()
        return code


def _write_pid(d: str) -> None:
    tmp = os.path.join(d, f"{PID}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, os.path.join(d, PID))


def _remove_pid(d: str) -> None:
    path = os.path.join(d, PID)
    try:
        with open(path) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.unlink(path)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """The daemon: ``python -m dockyard.network.dnsd --root R --runroot RR``."""
    import argparse
    import signal

    p = argparse.ArgumentParser(prog="python -m dockyard.network.dnsd", description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--runroot", required=True)
    p.add_argument("--idle", type=float, default=float(os.environ.get("DOCKYARD_DNS_IDLE") or IDLE),
                   help="seconds without a container on a DNS network before leaving (DOCKYARD_DNS_IDLE)")
    p.add_argument("--port", type=int, default=int(os.environ.get("DOCKYARD_DNS_PORT") or PORT))
    p.add_argument("--resolv-conf", default=os.environ.get("DOCKYARD_DNS_RESOLV_CONF") or "/etc/resolv.conf",
                   help="where the host's upstream nameservers are read (DOCKYARD_DNS_RESOLV_CONF)")
    args = p.parse_args(argv)
    # A SIGHUP from rebind() before the loop's handler exists must not kill us: the first
    # load below reads everything anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    root, runroot = os.path.abspath(args.root), os.path.abspath(args.runroot)
    d = _dir(runroot)
    os.makedirs(d, exist_ok=True)
    os.chdir("/")   # hold no test or user directory busy
    lock_fd = os.open(os.path.join(d, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0   # one runs already
    try:   # the log only ever grows by appends: start afresh when it got big
        if os.fstat(1).st_size > 1 << 20:
            os.ftruncate(1, 0)
    except OSError:
        pass
    _write_pid(d)
    import asyncio

    _log(f"started for {root} (idle {args.idle:g}s, port {args.port})")
    responder = Responder(root, runroot, args.idle, args.port, args.resolv_conf, lock_fd)
    try:
        return asyncio.run(responder.run())
    finally:
        _remove_pid(d)
        os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
