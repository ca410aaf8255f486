"""Presentation helpers shared by the CLI: Docker's human sizes and ages, its tab-aligned
tables, and the subset of Go templates that ``--format`` / ``-f`` accept.

Everything here is pure (no engine, no I/O) so it is cheap to import and easy to test.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from dockyard.errors import DockyardError
from dockyard.timefmt import go_time_string, parse_timestamp, rfc3339, rfc3339_nano_utc  # noqa: F401 - the CLI's names

# ---- sizes and durations (github.com/docker/go-units) --------------------------------

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: base 1000, ``%.<precision>g`` then the unit.

    ``docker images`` and ``history`` use precision 3 (``4.26MB``); ``system df``
    and ``prune`` use 4 (``HumanSize``, ``4.264MB``).
    """
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        value /= 1000.0
        i += 1
    return "%.*g%s" % (precision, value, _DECIMAL_UNITS[i])


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: ``About a minute``, ``3 hours``, ``2 weeks``..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600.0 + 0.5)  # Go's d.Round(time.Hour): half away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


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


# ---- Go templates (the subset docker --format users write) ----------------------------


class TemplateError(DockyardError):
    """A --format template we cannot parse or run."""


class _Missing:
    """A map key that is not there: Go prints ``<no value>``."""

    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(`[^`]*`)|(\|)|([^\s|]+))')


def go_value(value: Any, nil: str = "<nil>") -> str:
    """Go's ``%v`` of a JSON-ish value: ``[a b]``, ``map[k:v]``, ``true``."""
    if value is None:
        return nil
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """Go's json.Marshal: compact, with ``<``, ``>`` and ``&`` escaped."""
    if value is MISSING:
        value = None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fn_join(items: Any, sep: Any) -> str:
    return str(sep).join(go_value(i) for i in (items or []))


def _fn_index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, Mapping):
            container = container.get(key, MISSING)
        elif isinstance(container, (list, tuple)):
            container = container[int(key)]
        else:
            raise TemplateError(f"template: index of untyped value {go_value(container)}")
    return container


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": _fn_join,
    "index": _fn_index,
    "lower": lambda s: go_value(s).lower(),
    "upper": lambda s: go_value(s).upper(),
    "title": lambda s: go_value(s).title(),
    "split": lambda s, sep: go_value(s).split(str(sep)),
    "len": lambda v: len(v or []),
    "println": lambda *a: " ".join(go_value(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_value(x) for x in a),
    "truncate": lambda s, n: go_value(s)[: int(n)],
    "pad": lambda s, left, right: " " * int(left) + go_value(s) + " " * int(right),
}


class Template:
    """A parsed template: literal text and ``{{ pipeline }}`` actions.

    Supported: field paths (``.``, ``.Config.Cmd``), string and number literals,
    the functions in FUNCTIONS, and pipes (``{{.Tag | upper}}``). ``strict`` makes
    an unknown field an error (Docker's typed contexts); otherwise it prints
    ``<no value>`` (inspect's maps). ``nil`` says how a null field prints, per name.
    """

    def __init__(self, text: str, strict: bool = False, nil: Mapping[str, str] | None = None) -> None:
        self.text = text
        self.strict = strict
        self.nil = dict(nil or {})
        self._parts: list[str | list[list[str]]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            literal = text[pos:m.start()]
            if m.group(1):
                literal = literal.rstrip()
            self._parts.append(literal)
            self._parts.append(self._parse(m.group(2)))
            pos = m.end()
            if m.group(3):
                while pos < len(text) and text[pos].isspace():
                    pos += 1
        if "{{" in text[pos:]:
            raise TemplateError(f"template parsing error: unclosed action in {text!r}")
        self._parts.append(text[pos:])

    def _parse(self, action: str) -> list[list[str]]:
        tokens = [next(t for t in m.groups() if t is not None) for m in _TOKEN.finditer(action) if m.group(0).strip()]
        if not tokens:
            raise TemplateError("template parsing error: missing value for command")
        commands: list[list[str]] = [[]]
        for token in tokens:
            if token == "|":
                commands.append([])
            else:
                commands[-1].append(token)
        for command in commands:
            if not command:
                raise TemplateError("template parsing error: missing command in pipeline")
            head = command[0]
            if not (head.startswith(".") or head in FUNCTIONS or head[0] in "\"`" or _is_number(head)):
                raise TemplateError(f'template parsing error: function "{head}" not defined')
        return commands

    def render(self, data: Any) -> str:
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self._pipeline(part, data)
            out.append(self._print(value, part[-1]))
        return "".join(out)

    def _print(self, value: Any, last: list[str]) -> str:
        if value is None and len(last) == 1 and last[0].startswith("."):
            name = last[0].rsplit(".", 1)[-1]
            return self.nil.get(name, "<nil>")
        if value is MISSING:
            return "<no value>"
        return go_value(value)

    def _pipeline(self, commands: list[list[str]], data: Any) -> Any:
        value: Any = MISSING
        for i, command in enumerate(commands):
            args = [self._arg(token, data) for token in command[1:]]
            if i > 0:
                args.append(value)
            head = command[0]
            if head in FUNCTIONS:
                try:
                    value = FUNCTIONS[head](*args)
                except TemplateError:
                    raise
                except Exception as e:  # noqa: BLE001 - bad arguments are the user's template
                    raise TemplateError(f"template: error calling {head}: {e}") from None
            elif args:
                raise TemplateError(f"template: can't give argument to non-function {head}")
            else:
                value = self._arg(head, data)
        return value

    def _arg(self, token: str, data: Any) -> Any:
        if token[0] == '"':
            return json.loads(token)
        if token[0] == "`":
            return token[1:-1]
        if _is_number(token):
            return float(token) if "." in token else int(token)
        if token == ".":
            return data
        if token.startswith("."):
            value = data
            for name in token[1:].split("."):
                if isinstance(value, Mapping) and name in value:
                    value = value[name]
                elif self.strict or not isinstance(value, Mapping):
                    raise TemplateError(
                        f'template: executing "" at <{token}>: can\'t evaluate field {name}')
                else:
                    return MISSING
            return value
        raise TemplateError(f'template parsing error: function "{token}" not defined')


def _is_number(token: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", token))


def expand_escapes(fmt: str) -> str:
    """Docker's formatter turns the two characters ``\\t`` and ``\\n`` into tab and newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def render_rows(
    fmt: str,
    rows: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str],
    strict: bool = True,
) -> str:
    """Render ``--format`` over ``rows`` as Docker's formatter does.

    ``table ...`` prints a header (each ``{{.Field}}`` replaced by ``headers[Field]``)
    and aligns columns on tabs; ``json`` prints one JSON object per row; anything
    else is a template run once per row, each followed by a newline.
    """
    rows = list(rows)
    if fmt.strip() == "json":
        return "".join(go_json(dict(r)) + "\n" for r in rows)
    table = fmt.startswith("table")
    body = expand_escapes(fmt[5:].strip(" ") if table else fmt)
    template = Template(body, strict=strict)
    if not table:
        return "".join(template.render(r) + "\n" for r in rows)
    header = _header_template(body, headers)
    lines = [header] + [template.render(r) for r in rows]
    return tabulate([line.split("\t") for line in lines])


def _header_template(body: str, headers: Mapping[str, str]) -> str:
    def replace(m: re.Match) -> str:
        inner = m.group(2).strip()
        field = inner.split()[-1] if inner else ""
        name = field.lstrip(".").split(".")[0]
        return headers.get(name, name.upper())

    return _ACTION.sub(replace, body)
