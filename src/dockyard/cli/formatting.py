"""Presentation helpers shared by the CLI: Docker's human sizes and ages, its tab-aligned
tables, and ``--format`` / ``-f`` run as Docker's formatter and ``inspect`` run them (the Go
template language itself is dockyard.cli.gotemplate).

Everything here is pure (no engine, no I/O) so it is cheap to import and easy to test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping  # not typing: ~3 ms of every listing's start-up

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Sequence

from dockyard.errors import DockyardError

_TIME_NAMES = ("go_time_string", "parse_timestamp", "rfc3339", "rfc3339_nano_utc")


def __getattr__(name: str):  # noqa: ANN202 - the CLI's time helpers, loaded on first use (datetime: ~1.5 ms)
    if name in _TIME_NAMES:
        from dockyard import timefmt

        return getattr(timefmt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# ---- sizes and durations (github.com/docker/go-units) --------------------------------

from dockyard.units import bytes_size, human_duration, human_size  # noqa: E402,F401 - the CLI's names for them




def time_ago(epoch: float | None, now: float | None = None) -> str:
    """``About a minute ago``; ``N/A`` when the time is unknown."""
    if epoch is None:
        return "N/A"
    now = time.time() if now is None else now
    return human_duration(now - epoch) + " ago"


def ellipsis(text: str, width: int) -> str:
    """Docker's formatter.Ellipsis: cut to ``width`` characters, the last being ``…``."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def short_id(image_id: str) -> str:
    """stringid.TruncateID: the first 12 hex characters, algorithm dropped."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


# ---- tables (Go's text/tabwriter as Docker configures it) -----------------------------


def tabulate(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Align cells like ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``.

    Every cell but a line's last is padded to its column's width, which is the widest
    cell plus ``padding`` and at least ``minwidth``; the last cell is written as is.
    """
    widths: list[int] = []
    for row in rows:
        for j, cell in enumerate(row[:-1]):
            w = max(len(cell) + padding, minwidth)
            if j == len(widths):
                widths.append(w)
            elif w > widths[j]:
                widths[j] = w
    lines = []
    for row in rows:
        parts = [cell.ljust(widths[j]) for j, cell in enumerate(row[:-1])]
        if row:
            parts.append(row[-1])
        lines.append("".join(parts))
    return "".join(line + "\n" for line in lines)


# ---- Go templates (dockyard.cli.gotemplate) --------------------------------------------

from dockyard.cli.gotemplate import MISSING, GoTemplate, TemplateError, go_value  # noqa: E402,F401 - the CLI's names

# Docker's message prefixes: its formatter and ``inspect`` say "template parsing error" for
# parse and execution errors alike; ``ps`` first runs the template on an empty row.
PARSE_PREFIX = "template parsing error: "


def go_json(value: Any) -> str:
    """Go's json.Marshal: compact, with ``<``, ``>`` and ``&`` escaped (``--format json`` rows)."""
    if value is MISSING:
        value = None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _row_json(value: Any) -> str:
    """The template ``json`` of a row is its context's MarshalJSON (sorted keys, HTML escaped)."""
    from dockyard.cli.gotemplate import go_json as template_json

    if isinstance(value, _Row) or (isinstance(value, Mapping) and any(callable(v) for v in value.values())):
        return go_json({k: v for k, v in sorted(value.items()) if not callable(v)})
    return template_json(value)


class _Row(dict):
    """A --format row: a Docker formatter context (its ``json`` is its MarshalJSON)."""


def _fail(e: TemplateError, prefix: str, exit_code: int = 1) -> TemplateError:
    failed = TemplateError(prefix + e.message, parse=e.parse)
    failed.exit_code = exit_code
    return failed


class Template:
    """A Go template as Docker's ``--format`` / ``-f`` run it (see dockyard.cli.gotemplate).

    ``strict`` makes an unknown field an error naming ``type_name`` (Docker's typed
    contexts: ``can't evaluate field X in type *formatter.ContainerContext``); otherwise the
    data is inspect's JSON (a missing struct field is ``map has no entry for key``, a missing
    map key ``<no value>``). ``nil`` says how a null field prints, per name. Errors come as
    TemplateError with Docker's ``template parsing error: `` prefix (``prefix`` to change it);
    one that does not parse exits ``parse_exit_code`` (64 for inspect, 1 for the formatter).
    """

    def __init__(self, text: str, strict: bool = False, nil: Mapping[str, str] | None = None,
                 type_name: str = "", prefix: str = PARSE_PREFIX, parse_exit_code: int = 64) -> None:
        self.text = text
        self.strict = strict
        self.prefix = prefix
        try:
            self._tmpl = GoTemplate(text, strict=strict, type_name=type_name, nil=nil)
        except TemplateError as e:
            raise _fail(e, prefix, parse_exit_code) from None

    def fields_used(self) -> set[str]:
        """Top-level fields the template reads (Docker computes ps sizes only for ``.Size``)."""
        return self._tmpl.fields_used()

    def render(self, data: Any, prefix: str | None = None) -> str:
        try:
            return self._tmpl.execute(data, {"json": _row_json} if isinstance(data, _Row) else None)
        except TemplateError as e:
            raise _fail(e, self.prefix if prefix is None else prefix) from None


def render_inspected(objects: Sequence[Any], template: "Template | Callable[[int], Template]",
                     errors: list[Any]) -> str:
    """``docker inspect -f``: each object's output and a newline. One the template fails on
    is left out and its error added to ``errors`` (Docker goes on to the next name); when
    nothing was printed, a lone newline (Docker's Flush of an empty buffer)."""
    out = []
    for i, obj in enumerate(objects):
        try:
            out.append((template if isinstance(template, Template) else template(i)).render(obj) + "\n")
        except TemplateError as e:
            errors.append(e)
    return "".join(out) or "\n"


def expand_escapes(fmt: str) -> str:
    """Docker's formatter turns the two characters ``\\t`` and ``\\n`` into tab and newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


# Which Docker context a table's rows stand for, by a header only it has: for the
# "can't evaluate field X in type T" message.
_CONTEXT_TYPES = (
    ("Command", "*formatter.ContainerContext"), ("Repository", "*formatter.imageContext"),
    ("Mountpoint", "*formatter.volumeContext"), ("IPv6", "*network.networkContext"),
    ("CreatedBy", "*image.historyContext"), ("TotalCount", "*formatter.diskUsageImagesContext"),
    ("CPUPerc", "*container.statsContext"),
)


def label_header(name: str) -> str:
    """The table header of ``.Label "com.x.my-key"``: its last dotted part, ``-``/``_`` as spaces."""
    return name.split(".")[-1].replace("-", " ").replace("_", " ")


def render_rows(
    fmt: str,
    rows: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str],
    strict: bool = True,
    *,
    type_name: str | None = None,
    probe: Mapping[str, Any] | None = None,
) -> str:
    """Render ``--format`` over ``rows`` as Docker's formatter does.

    ``table ...`` prints a header (the template run over ``headers``, Docker's header
    functions returning their argument) and aligns columns on tabs; ``json`` prints one
    JSON object per row; anything else is a template run once per row, each followed by a
    newline. A row value that is callable is a method (``.Label "k"``). ``probe``: an
    empty row the raw format is first run on, as ``docker ps`` does (its errors say
    ``failed to parse/execute template``, even with no containers).
    """
    rows = list(rows)
    if fmt.strip() == "json":  # newer docker's {{json .}}: the context's MarshalJSON, keys sorted
        return "".join(go_json({k: v for k, v in sorted(r.items()) if not callable(v)}) + "\n" for r in rows)
    if type_name is None:
        type_name = next((t for key, t in _CONTEXT_TYPES if key in headers), "")
    if probe is not None:
        check = Template(fmt, strict=strict, type_name=type_name, prefix="failed to parse template: ",
                         parse_exit_code=1)
        check.render(_Row(probe), prefix="failed to execute template: ")
    table = fmt.startswith("table")
    body = expand_escapes((fmt[5:] if table else fmt).strip(" "))
    template = Template(body, strict=strict, type_name=type_name, parse_exit_code=1)
    parts = _field_parts(body)
    lines = [(parts is not None and _substitute(parts, r) or template.render(_Row(r))) + "\n" for r in rows]
    if not table:
        return "".join(lines)
    return tabulate([line.split("\t") for line in (_header(template, headers, rows) + "".join(lines)).split("\n")[:-1]])


_FIELD_ACTION = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _field_parts(body: str) -> "list[str] | None":
    """A template of literal text and plain ``{{.Field}}`` actions only (the default tables,
    most user formats) as [text, field, text, field, ..., text]; None for anything else."""
    parts = _FIELD_ACTION.split(body)
    if any("{{" in text or "}}" in text for text in parts[0::2]):
        return None
    return parts


def _substitute(parts: "list[str]", row: Mapping[str, Any]) -> "str | None":
    """The row through a plain-fields template, as the evaluator would print it, without running
    it (a 200-row ``ps`` saves ~10 ms); None when a field is missing or not a string (the
    evaluator then says or prints what Go would)."""
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            value = row.get(part)
            if type(value) is not str:
                return None
            out.append(value)
        else:
            out.append(part)
    return "".join(out)


def _header(template: Template, headers: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> str:
    """Docker runs the row template over the header map; an error keeps what was written."""
    from dockyard.cli.gotemplate import HEADER_FUNCTIONS, GoMap

    context = GoMap({k: k.upper() for r in rows[:1] for k, v in r.items() if not callable(v)})
    context.update(headers)
    context["Label"] = label_header
    out: list[str] = []
    try:
        template._tmpl.execute_into(out, context, HEADER_FUNCTIONS, strict=False)
    except TemplateError:
        pass
    return "".join(out) + "\n"
