"""Volume commands: ``volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import sys

import click

from dockyard.cli import common

from dockyard.cli.quick import VOLUME_HEADERS  # noqa: F401 - the name other modules use


@click.command()
@click.option("-d", "--driver", default="local", help="Specify volume driver name.")
@click.option("--label", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options.")
@click.argument("name", required=False)
def create(driver: str, label: tuple[str, ...], opt: tuple[str, ...], name: str | None) -> None:
    """Create a volume."""
    volume = common.engine().volumes.create(name, driver=driver, labels=common.key_values(label),
                                            options=common.key_values(opt))
    click.echo(volume.name)


@click.command(name="ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true').")
@click.option("--format", "format_", help="Format output using a custom template.")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
def ls(filters: tuple[str, ...], format_: str | None, quiet: bool) -> None:
    """List volumes."""
    from dockyard.cli import quick

    quick.volume_ls(common.engine(), filters, format_, quiet)


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a custom template.")
@click.argument("names", nargs=-1, required=True)
def inspect(format_: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    from dockyard.cli import quick

    quick.volume_inspect(common.engine(), names, format_)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
def rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes."""
    from dockyard.cli.ops import each as _each

    volumes = common.engine().volumes
    _each(names, lambda n: volumes.remove(n, force=force))


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>').")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused local volumes."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import confirm, parse_filters

    if not force and not confirm("WARNING! This will remove anonymous local volumes not used by at least one "
                                 "container.\nAre you sure you want to continue?"):
        return
    removed, freed = common.engine().volumes.prune(all=all_, filters=parse_filters(filters))
    out = ""
    if removed:
        out = "Deleted Volumes:\n" + "".join(r + "\n" for r in removed) + "\n"
    sys.stdout.write(out + f"Total reclaimed space: {fmt.human_size(freed)}\n")
