"""What every command shares: settings from the global options and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dockyard.engine import Engine


@dataclass
class State:
    root: str | None
    runroot: str | None
    debug: bool
    _engine: Any = field(default=None, repr=False)

    def engine(self) -> "Engine":
        if self._engine is None:
            from dockyard import config
            from dockyard.engine import Engine

            settings = config.load(self.root, self.runroot)
            settings.debug = self.debug
            self._engine = Engine(settings)
        return self._engine


def engine() -> "Engine":
    """The engine of the running command (opened on first use)."""
    return click.get_current_context().find_object(State).engine()


def print_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=4))
