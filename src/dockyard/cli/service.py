"""``dockyard system service``: the Docker Engine API front end (dockyard.api)."""

from __future__ import annotations

import click


@click.command()
@click.option("-t", "--time", "idle_seconds", type=int, default=5, show_default=True, metavar="SECONDS",
              help="Exit after this many seconds without a request or connection (0: serve forever).")
@click.option("--socket-group", metavar="GROUP", default=None,
              help="Group of the unix socket (mode 0660) [default: docker, or root when no such group].")
@click.option("--tls", "use_tls", is_flag=True, help="Serve TCP listeners over TLS (--tlscert, --tlskey).")
@click.option("--tlscert", metavar="FILE", help="The server's TLS certificate.")
@click.option("--tlskey", metavar="FILE", help="The server's TLS key.")
@click.option("--tlscacert", metavar="FILE", help="Trust client certificates signed by this CA only.")
@click.option("--tlsverify", is_flag=True, help="Require and verify client certificates (implies --tls).")
@click.argument("uris", nargs=-1, metavar="[URI]...")
def service(idle_seconds: int, socket_group: str | None, use_tls: bool, tlscert: str | None, tlskey: str | None,
            tlscacert: str | None, tlsverify: bool, uris: tuple[str, ...]) -> None:
    """Serve the Docker Engine API on URI: unix:///run/dockyard/docker.sock by default,
    tcp://HOST:PORT or fd:// (systemd socket activation)."""
    from dockyard.api.server import TLSOptions, serve
    from dockyard.cli.common import engine

    if idle_seconds < 0:
        raise click.BadParameter("must be 0 or more", param_hint="'--time'")
    if (use_tls or tlsverify) and not (tlscert and tlskey):
        raise click.UsageError("--tls and --tlsverify need --tlscert and --tlskey")
    tls = TLSOptions(cert=tlscert, key=tlskey, cacert=tlscacert, verify=tlsverify)
    serve(list(uris), idle_seconds=idle_seconds, socket_group=socket_group, tls=tls, settings=engine().settings)
