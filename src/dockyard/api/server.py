"""``dockyard system service``: listen on unix, tcp or systemd sockets and serve the Docker
Engine API until stopped or, with ``--time N`` (N > 0), until nothing happened for N seconds.

The socket is root's power: a unix socket is created mode 0660 owned by root and the socket
group; TCP on an address other than loopback is refused unless TLS verifies client
certificates (``--tlsverify`` with ``--tlscacert``), as dockerd warns and podman refuses.
"""

from __future__ import annotations

import asyncio
import grp
import importlib
import ipaddress
import os
import signal
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dockyard import config
from dockyard.api import http
from dockyard.errors import DockyardError

DEFAULT_URI = "unix:///run/dockyard/docker.sock"
DEFAULT_SOCKET_GROUP = "docker"
DEFAULT_IDLE_SECONDS = 5   # podman system service's default
# The modules whose ``routes`` make up the API; a module not yet written is skipped.
ROUTE_MODULES = ("system", "events", "usage", "containers", "archive", "streams", "execs", "images", "build",
                 "networks", "volumes")
MAX_VERSION_ACCEPTED = (1, 49)   # requests at newer paths than we advertise are served at ours


class ServiceError(DockyardError):
    """A service that cannot start: a bad URI, a socket in use, a refused TCP address."""


@dataclass
class TLSOptions:
    cert: str | None = None
    key: str | None = None
    cacert: str | None = None
    verify: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.cert or self.key or self.verify)

    def context(self) -> ssl.SSLContext:
        if not (self.cert and self.key):
            raise ServiceError("TLS needs both --tlscert and --tlskey")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert, self.key)
            if self.verify:
                if not self.cacert:
                    raise ServiceError("--tlsverify needs --tlscacert: the CA that signs client certificates")
                ctx.load_verify_locations(self.cacert)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as e:
            raise ServiceError(f"cannot load the TLS files: {e}") from None
        return ctx


@dataclass
class Activity:
    """Requests in flight and when the last one ended: the idle timer reads these."""

    active: int = 0
    last: float = field(default_factory=time.monotonic)


ACTIVITY_KEY: web.AppKey[Activity] = web.AppKey("activity", Activity)


def _headers(response: web.StreamResponse) -> None:
    from dockyard.system.version import API_VERSION, version

    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers.setdefault("Ostype", "linux")
    response.headers["Server"] = f"Dockyard/{version()} (linux)"


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _headers(response)


@web.middleware
async def _middleware(request: web.Request, handler: http.Handler) -> web.StreamResponse:
    activity = request.app[ACTIVITY_KEY]
    activity.active += 1
    try:
        version = request.match_info.get("api_version")
        if version is not None:
            from dockyard.system.version import API_VERSION, MIN_API_VERSION

            major, minor = (int(p) for p in version.split("."))
            low = tuple(int(p) for p in MIN_API_VERSION.split("."))
            if (major, minor) > MAX_VERSION_ACCEPTED:
                return http.error_response(400, f"client version {version} is too new. "
                                                 f"Maximum supported API version is {API_VERSION}")
            if (major, minor) < low:
                return http.error_response(400, f"client version {version} is too old. "
                                                 f"Minimum supported API version is {MIN_API_VERSION}, "
                                                 "please upgrade your client to a newer version")
        try:
            return await handler(request)
        except http.ApiError as e:
            return http.error_response(e.status, e.message)
        except DockyardError as e:
            return http.error_response(http.status_for(e), e.message)
        except web.HTTPException as e:
            if e.status >= 400 and e.content_type != "application/json":
                # aiohttp's own 404/405 as Docker's JSON ("page not found")
                message = "page not found" if e.status == 404 else (e.reason or "error")
                return http.error_response(e.status, message)
            raise
    finally:
        activity.active -= 1
        activity.last = time.monotonic()


def make_app(settings: config.Settings, modules: tuple[str, ...] = ROUTE_MODULES) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=http.MAX_JSON_BODY)
    app[http.SETTINGS_KEY] = settings
    app[http.WORKERS_KEY] = http.Workers(settings)
    app[ACTIVITY_KEY] = Activity()
    app.on_response_prepare.append(_on_prepare)
    for name in modules:
        try:
            module = importlib.import_module(f"dockyard.api.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"dockyard.api.{name}":
                continue
            raise
        module.routes.install(app)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)

    async def close_workers(app: web.Application) -> None:
        app[http.WORKERS_KEY].close()

    app.on_cleanup.append(close_workers)
    return app


# ---------------------------------------------------------------- listeners

@dataclass
class Listener:
    uri: str
    sock: socket.socket
    tls: bool = False


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _socket_gid(group: str, explicit: bool) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        if explicit:
            raise ServiceError(f"socket group {group!r} does not exist") from None
        return 0   # dockerd's behaviour: no docker group, the socket stays root's


def unix_listener(path: str, group: str, explicit_group: bool) -> Listener:
    if not path.startswith("/"):
        raise ServiceError(f"unix socket path must be absolute: {path!r}")
    gid = _socket_gid(group, explicit_group)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except FileNotFoundError:
        pass
    except ConnectionRefusedError:
        os.unlink(path)   # a dead service's socket
    except OSError:
        pass
    else:
        probe.close()
        raise ServiceError(f"{path} is in use: another service answers on it")
    finally:
        probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)   # never world-writable, not even between bind and chmod
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise ServiceError(f"cannot listen on {path}: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(512)
    return Listener(f"unix://{path}", sock)


def tcp_listener(address: str, tls: TLSOptions) -> Listener:
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ServiceError(f"tcp address needs host:port: {address!r}")
    host = host.strip("[]") or "0.0.0.0"
    if not _is_loopback(host) and not (tls.verify and tls.cacert):
        raise ServiceError(f"refusing to listen on tcp://{address} without TLS client verification: "
                           "anyone who reaches it would be root here (give --tlsverify, --tlscacert, "
                           "--tlscert and --tlskey, or listen on 127.0.0.1)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port_text)))
    except OSError as e:
        sock.close()
        raise ServiceError(f"cannot listen on tcp://{address}: {e.strerror}") from None
    sock.listen(512)
    return Listener(f"tcp://{address}", sock, tls=tls.enabled)


def fd_listeners(spec: str) -> list[Listener]:
    """systemd socket activation: LISTEN_FDS sockets from fd 3 on (``fd://`` takes them all)."""
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        raise ServiceError("fd://: LISTEN_FDS was passed to another process")
    count = int(os.environ.get("LISTEN_FDS") or 0)
    if count <= 0:
        raise ServiceError("fd://: no sockets were passed (LISTEN_FDS is not set): start through systemd")
    names = (os.environ.get("LISTEN_FDNAMES") or "").split(":")
    listeners = []
    for index in range(count):
        fd = 3 + index
        if spec and spec != str(fd) and (index >= len(names) or names[index] != spec):
            continue
        os.set_inheritable(fd, False)
        listeners.append(Listener(f"fd://{fd}", socket.socket(fileno=fd)))
    if not listeners:
        raise ServiceError(f"fd://{spec}: no such socket was passed")
    return listeners


def listeners_for(uris: list[str], group: str, explicit_group: bool, tls: TLSOptions) -> list[Listener]:
    opened: list[Listener] = []
    try:
        for uri in uris or [DEFAULT_URI]:
            scheme, sep, rest = uri.partition("://")
            if not sep:
                raise ServiceError(f"invalid URI {uri!r}: expected unix://PATH, tcp://HOST:PORT or fd://")
            if scheme == "unix":
                opened.append(unix_listener(rest, group, explicit_group))
            elif scheme == "tcp":
                opened.append(tcp_listener(rest, tls))
            elif scheme == "fd":
                opened.extend(fd_listeners(rest))
            else:
                raise ServiceError(f"invalid URI {uri!r}: unsupported scheme {scheme!r}")
    except BaseException:
        for listener in opened:
            listener.sock.close()
        raise
    return opened


# ---------------------------------------------------------------- running

async def _serve(settings: config.Settings, listeners: list[Listener], idle_seconds: float,
                 tls: TLSOptions, ready: Any = None) -> None:
    app = make_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    context = tls.context() if any(listener.tls for listener in listeners) else None
    for listener in listeners:
        site = web.SockSite(runner, listener.sock, ssl_context=context if listener.tls else None)
        await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    activity = app[ACTIVITY_KEY]
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            if idle_seconds > 0 and activity.active == 0 and time.monotonic() - activity.last >= idle_seconds \
                    and not _open_connections(runner):
                break
    finally:
        await runner.cleanup()


def _open_connections(runner: web.AppRunner) -> bool:
    server = runner.server
    return bool(server is not None and server.connections)


def serve(uris: list[str], idle_seconds: float = DEFAULT_IDLE_SECONDS, socket_group: str | None = None,
          tls: TLSOptions | None = None, settings: config.Settings | None = None) -> None:
    """Open every listener first (so errors come before anything is served), then serve."""
    tls = tls or TLSOptions()
    settings = settings or config.load()
    group = socket_group or DEFAULT_SOCKET_GROUP
    listeners = listeners_for(list(uris), group, socket_group is not None, tls)
    if any(listener.tls for listener in listeners):
        tls.context()   # fail on bad TLS files before serving
    try:
        asyncio.run(_serve(settings, listeners, idle_seconds, tls))
    finally:
        for listener in listeners:
            listener.sock.close()
            if listener.uri.startswith("unix://"):
                try:
                    os.unlink(listener.uri[len("unix://"):])
                except OSError:
                    pass
