"""What every command shares: settings from the global options and the engine.

Free of click at import: the fast path (``cli/fastpath.py``) uses ``State`` without it."""

from __future__ import annotations

from dockyard.records import field, record


TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any
    from dockyard.engine import Engine


@record
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
    import click

    return click.get_current_context().find_object(State).engine()


def print_json(value: Any) -> None:
    import json

    import click

    click.echo(json.dumps(value, indent=4))


def key_values(items: "Any") -> dict[str, str]:
    """``--label k=v``/``-o k=v`` values as a dict (a bare ``k`` maps to "")."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def parse_filters(values: "Any") -> "dict[str, list[str]]":
    """``--filter key=value`` (repeatable) into {key: [values]}, as every listing and prune takes it."""
    from dockyard.errors import DockyardError

    out: "dict[str, list[str]]" = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise DockyardError(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key.strip().lower(), []).append(rest)
    return out
