"""``events`` without click (the fast path and the click command share it): the engine's event
log as ``docker events`` shows it.

Without ``--since``/``--until`` only new events are shown, until ^C; ``--since`` first shows
the logged ones from then on; ``--until`` stops at that time (at once when it has passed).
"""

from __future__ import annotations

import sys
import time

from dockyard.cli.common import parse_filters  # noqa: F401 - one parser for every --filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence


def show(root: "Any", filters: "Sequence[str]", format_: "str | None", since: "str | None",
         until: "str | None") -> None:
    from dockyard import events as log
    from dockyard.cli.formatting import TemplateError
    from dockyard.errors import DockyardError

    now = time.time_ns()
    since_ns = _time(since, now) if since else None
    until_ns = _time(until, now) if until else None
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise DockyardError(f"`since` time ({_stamp(since, since_ns)}) cannot be after "
                            f"`until` time ({_stamp(until, until_ns)})")
    wanted = parse_filters(filters)  # Docker ignores keys it does not know
    try:
        show = formatter(format_)
    except TemplateError as e:
        raise DockyardError(f"Error parsing format: {e.message}", 64) from None
    stream = log.read(root, since=since_ns, until=until_ns, filters=wanted,
                      follow=until_ns is None or until_ns > now, history=since_ns is not None or until_ns is not None)
    out = sys.stdout
    try:
        for message in stream:
            try:
                line = show(message)
            except TemplateError as e:
                raise DockyardError(f"Error parsing format: {e.message}", 64) from None
            out.write(line + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `dockyard events | head`
        sys.stderr.close()


def _time(value: str, now: int) -> int:
    from dockyard import events as log
    from dockyard.errors import DockyardError

    try:
        return log.parse_time(value, now)
    except ValueError as e:
        raise DockyardError(str(e)) from None


def _stamp(typed: str, nanos: int) -> str:
    """How Docker's client passes a time on: a Unix timestamp as typed, else ``secs.nanos``."""
    text = typed.strip()
    if "-" not in text and text.replace(".", "", 1).isdigit():
        return text
    return "%d.%09d" % divmod(nanos, 1_000_000_000)


def formatter(format_: str | None) -> "Callable[[dict[str, Any]], str]":
    """The line for one event: Docker's default, ``json`` / ``{{json .}}`` (the message in
    its Go struct's field order), or a Go template over the message."""
    from dockyard import events as log

    if not format_:
        return log.pretty
    text = format_.strip()
    if text in ("json", "{{json .}}", "{{ json . }}"):
        import json

        return lambda m: json.dumps(_go_message(m), separators=(",", ":"), ensure_ascii=False)
    from dockyard.cli.formatting import Template, TemplateError, expand_escapes
    from dockyard.cli.gotemplate import GoMap

    template = Template(expand_escapes(format_), prefix="")
    # Not strict: a missing attribute is "<no value>" (a Go map); a field the message lacks is
    # an error, as Go's for a struct.
    unknown = sorted(template.fields_used() - set(_FIELDS))
    if unknown:
        column = max(format_.find("." + unknown[0]), 0)
        raise TemplateError(f'template: :1:{column}: executing "" at <.{unknown[0]}>: '
                            f"can't evaluate field {unknown[0]} in type *events.Message")

    def render(message: "dict[str, Any]") -> str:
        data = _go_message(message)
        data["Actor"] = {"ID": data["Actor"]["ID"], "Attributes": GoMap(data["Actor"]["Attributes"])}
        return template.render(data)

    return render


_FIELDS = ("status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano")


def _go_message(message: "dict[str, Any]") -> "dict[str, Any]":
    from dockyard.events import go_message   # the API's /events writes the same

    return go_message(message)
