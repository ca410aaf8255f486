"""``events`` / ``system events`` (click); the body is ``eventviews.show``."""

from __future__ import annotations

import click

from dockyard.cli import common
from dockyard.cli.eventviews import _go_message, _stamp, _time, formatter, parse_filters  # noqa: F401 - tests use them

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence


def _check_filter(ctx: click.Context, param: click.Parameter, values: "Sequence[str]") -> "Sequence[str]":
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f'invalid argument "{value}" for "-f, --filter" flag: '
                                   "bad format of filter (expected name=value)", ctx)
    return values


@click.command()
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER", callback=_check_filter,
              help="Filter output based on conditions provided")
@click.option("--format", "format_", metavar="STRING", help="Format the output using the given Go template")
@click.option("--since", metavar="STRING", help="Show all events created since timestamp")
@click.option("--until", metavar="STRING", help="Stream events until this timestamp")
def events(filters: "Sequence[str]", format_: str | None, since: str | None, until: str | None) -> None:
    """Get real time events from the server."""
    from dockyard.cli import eventviews

    eventviews.show(common.engine().root, filters, format_, since, until)
