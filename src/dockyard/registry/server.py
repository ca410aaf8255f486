"""Run the registry: bind, optional TLS, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from dockyard.errors import DockyardError
from dockyard.registry.settings import Settings

log = logging.getLogger("dockyard.registry")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise DockyardError(f"cannot load TLS certificate {cert} / key {key}: {e}") from None
    return ctx


async def serve(settings: Settings) -> None:
    from aiohttp import web

    from dockyard.registry.app import AccessLogger, create_app, setup_logging
    from dockyard.registry.core import Registry

    setup_logging(settings.access_log)
    ssl_ctx = tls_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    registry = Registry(settings)
    app = create_app(registry)
    runner = web.AppRunner(app, access_log_class=AccessLogger, handle_signals=False)
    await runner.setup()
    host, port = settings.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise DockyardError(f"cannot listen on {settings.addr}: {e}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0]
    where = settings.root if settings.storage == "filesystem" else f"s3://{settings.s3.get('bucket')}"
    log.info("listening on %s:%d (%s, storage %s%s)", bound[0], bound[1], "https" if ssl_ctx else "http", where,
             ", read-only" if settings.read_only else "")
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
