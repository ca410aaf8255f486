"""``version`` and ``info`` (also ``system info``): click's parsing over the click-free bodies
in ``infoviews.py``."""

from __future__ import annotations

import click

from dockyard.cli import common
from dockyard.cli.formatting import bytes_size  # noqa: F401 - the names tests know
from dockyard.cli.infoviews import render_info, render_version  # noqa: F401 - the names tests know


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-f", "--format", "format_", metavar="string", help="Format the output using the given Go template.")
def version(format_: str | None) -> None:
    """Show the dockyard version information."""
    from dockyard.cli.infoviews import show_version

    show_version(format_)


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-f", "--format", "format_", metavar="string", help="Format the output using the given Go template.")
@click.pass_context
def info(ctx: click.Context, format_: str | None) -> None:
    """Display system-wide information."""
    from dockyard.cli.infoviews import show_info

    state = ctx.find_object(common.State)
    show_info(common.engine(), format_, bool(state and state.debug))
