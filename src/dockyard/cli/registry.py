"""``dockyard registry serve|gc``: run and clean an OCI registry.

Only click is imported here; aiohttp and the server load when ``serve`` runs.
"""

from __future__ import annotations

import click


@click.group()
def registry() -> None:
    """Run and manage an OCI registry."""


@registry.command()
@click.option("--addr", help="Listen address HOST:PORT (default 127.0.0.1:5000; env DOCKYARD_REGISTRY_ADDR).")
@click.option("--root", help="Storage and index directory (env DOCKYARD_REGISTRY_ROOT).")
@click.option("--config", "config_file", help="YAML config file (env DOCKYARD_REGISTRY_CONFIG).")
@click.option("--htpasswd", help="htpasswd file with bcrypt entries: turns on basic auth.")
@click.option("--tls-cert", help="TLS certificate (PEM).")
@click.option("--tls-key", help="TLS private key (PEM).")
@click.option("--read-only", is_flag=True, default=None, help="Refuse pushes and deletes.")
@click.option("--delete/--no-delete", default=None, help="Allow deleting manifests and blobs (default on).")
@click.option("--anonymous-read", is_flag=True, default=None, help="With auth on, let anyone pull.")
@click.option("--storage", type=click.Choice(["filesystem", "s3"]), help="Storage driver.")
def serve(addr, root, config_file, htpasswd, tls_cert, tls_key, read_only, delete, anonymous_read, storage) -> None:
    """Serve the OCI distribution API."""
    from dockyard.registry import settings as registry_settings
    from dockyard.registry.server import run

    s = registry_settings.load(config_file, addr=addr, root=root, htpasswd=htpasswd, tls_cert=tls_cert,
                               tls_key=tls_key, read_only=read_only, delete=delete,
                               anonymous_read=anonymous_read, storage=storage)
    if s.ignored_env:  # a registry:2 setup moved here must not lose a setting without a word
        click.echo("registry: ignoring distribution settings this server does not support: "
                   + ", ".join(s.ignored_env), err=True)
    run(s)


@registry.command()
@click.option("--root", help="The registry's storage directory (env DOCKYARD_REGISTRY_ROOT).")
@click.option("--config", "config_file", help="YAML config file (env DOCKYARD_REGISTRY_CONFIG).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--delete-untagged", is_flag=True, help="Also remove manifests no tag reaches.")
@click.option("--grace-period", default=3600.0, show_default=True, type=float,
              help="Keep blobs used within this many seconds before the run (uploads not yet referenced).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def gc(root, config_file, dry_run, delete_untagged, grace_period, quiet) -> None:
    """Remove blobs no tag reaches, while the registry keeps serving."""
    from dockyard.registry import settings as registry_settings
    from dockyard.registry.gc import collect

    s = registry_settings.load(config_file, root=root)
    report = collect(s, dry_run=dry_run, delete_untagged=delete_untagged, grace=grace_period,
                     echo=None if quiet else click.echo)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{report.marked} blobs in use; {verb} {len(report.blobs)} blobs ({report.bytes} bytes) "
               f"and {len(report.manifests)} manifests in {report.seconds:.2f}s")
