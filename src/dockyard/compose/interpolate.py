"""Variable interpolation in compose files, as compose-go's template package does it.

`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
`${VAR:+replacement}`, `${VAR+replacement}`, nested templates inside defaults, `$$` for a
literal `$`. A `$` followed by anything else is kept as it is. An unset variable becomes
"" with a warning on stderr (once per name). Values are interpolated, keys are not.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Callable

from dockyard.compose.errors import ComposeError, Path, format_path

Lookup = Callable[[str], "str | None"]

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_BRACED_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class InvalidTemplate(ValueError):
    pass


class MissingRequired(ValueError):
    pass


def warn_unset(name: str, _seen: set[str] = set()) -> None:  # noqa: B006 - one warning per name per process
    if name in _seen:
        return
    _seen.add(name)
    print(f'WARN[0000] The "{name}" variable is not set. Defaulting to a blank string.', file=sys.stderr)


def substitute(
    text: str,
    lookup: Lookup,
    *,
    where: str = "",
    on_unset: Callable[[str], None] | None = warn_unset,
) -> str:
    """Expand the templates of one string; ComposeError names `where` on a bad template."""
    if "$" not in text:
        return text
    try:
        value, end = _expand(text, 0, lookup, on_unset, stop=None)
    except InvalidTemplate:
        raise ComposeError(
            f"invalid interpolation format for {where}: {text!r}; you may need to escape any $ with another $"
        ) from None
    except MissingRequired as exc:
        raise ComposeError(f"error while interpolating {where}: {exc}") from None
    return value


def _expand(text: str, i: int, lookup: Lookup, on_unset: Callable[[str], None] | None, stop: str | None) -> tuple[str, int]:
    """Expand text from i up to an unmatched `stop` char (the closing brace of a default)."""
    out: list[str] = []
    n = len(text)
    depth = 0
    while i < n:
        ch = text[i]
        if stop is not None and ch == "}" and depth == 0:
            return "".join(out), i
        if ch != "$":
            if stop is not None and ch == "{":
                depth += 1
            elif stop is not None and ch == "}":
                depth -= 1
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            value, i = _braced(text, i + 2, lookup, on_unset)
            out.append(value)
            continue
        match = _NAME.match(text, i + 1)
        if match:
            name = match.group(0)
            value = lookup(name)
            if value is None:
                if on_unset:
                    on_unset(name)
                value = ""
            out.append(value)
            i = match.end()
            continue
        out.append("$")  # a lone `$` (before a space, a digit, the end) stays as it is
        i += 1
    if stop is not None:
        raise InvalidTemplate(text)
    return "".join(out), i


def _braced(text: str, i: int, lookup: Lookup, on_unset: Callable[[str], None] | None) -> tuple[str, int]:
    """Expand `${...}` whose name starts at i; returns the value and the index after `}`."""
    match = _BRACED_NAME.match(text, i)
    if not match:
        raise InvalidTemplate(text)
    name = match.group(0)
    i = match.end()
    if i >= len(text):
        raise InvalidTemplate(text)
    if text[i] == "}":
        value = lookup(name)
        if value is None:
            if on_unset:
                on_unset(name)
            value = ""
        return value, i + 1
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(op, i):
            break
    else:
        raise InvalidTemplate(text)
    current = lookup(name)
    is_set = current is not None
    is_nonempty = bool(current)
    # an operand not used must not warn about its own variables
    operand_taken = (
        (op == ":-" and not is_nonempty)
        or (op == "-" and not is_set)
        or (op == ":+" and is_nonempty)
        or (op == "+" and is_set)
        or (op == ":?" and not is_nonempty)
        or (op == "?" and not is_set)
    )
    operand, end = _expand(text, i + len(op), lookup, on_unset if operand_taken else None, stop="}")
    if op in (":?", "?"):
        if operand_taken:
            raise MissingRequired(f"required variable {name} is missing a value" + (f": {operand}" if operand else ""))
        return current or "", end + 1
    if operand_taken:
        return operand, end + 1
    if op in (":+", "+"):
        return "", end + 1
    return current or "", end + 1


# --------------------------------------------------------------------------- whole documents

_BOOL_PATHS = (
    ("services", "*", "init"), ("services", "*", "depends_on", "*", "required"),
    ("services", "*", "depends_on", "*", "restart"), ("services", "*", "healthcheck", "disable"),
    ("services", "*", "oom_kill_disable"), ("services", "*", "privileged"), ("services", "*", "read_only"),
    ("services", "*", "stdin_open"), ("services", "*", "tty"), ("services", "*", "volumes", "[]", "read_only"),
    ("services", "*", "volumes", "[]", "volume", "nocopy"),
    ("networks", "*", "external"), ("networks", "*", "internal"), ("networks", "*", "attachable"),
    ("networks", "*", "enable_ipv4"), ("networks", "*", "enable_ipv6"),
    ("volumes", "*", "external"), ("secrets", "*", "external"), ("configs", "*", "external"),
)
_INT_PATHS = (
    ("services", "*", "cpu_count"), ("services", "*", "cpu_period"), ("services", "*", "cpu_quota"),
    ("services", "*", "cpu_rt_period"), ("services", "*", "cpu_rt_runtime"), ("services", "*", "cpu_shares"),
    ("services", "*", "deploy", "replicas"), ("services", "*", "deploy", "update_config", "parallelism"),
    ("services", "*", "deploy", "rollback_config", "parallelism"),
    ("services", "*", "deploy", "restart_policy", "max_attempts"),
    ("services", "*", "deploy", "placement", "max_replicas_per_node"),
    ("services", "*", "healthcheck", "retries"), ("services", "*", "oom_score_adj"),
    ("services", "*", "pids_limit"), ("services", "*", "ports", "[]", "target"), ("services", "*", "scale"),
    ("services", "*", "ulimits", "*"), ("services", "*", "ulimits", "*", "hard"),
    ("services", "*", "ulimits", "*", "soft"),
)
_FLOAT_PATHS = (
    ("services", "*", "cpu_percent"), ("services", "*", "cpus"),
    ("services", "*", "deploy", "update_config", "max_failure_ratio"),
    ("services", "*", "deploy", "rollback_config", "max_failure_ratio"),
)


def _matches(path: Path, pattern: tuple[str, ...]) -> bool:
    if len(path) != len(pattern):
        return False
    for part, want in zip(path, pattern):
        if want == "[]":
            if not isinstance(part, int):
                return False
        elif want != "*" and want != part:
            return False
    return True


def _cast(path: Path, value: str, fail: Fail) -> Any:
    """compose-go's type casts: a string at a boolean/number path becomes that type."""
    if any(_matches(path, p) for p in _BOOL_PATHS):
        lowered = value.lower()
        if lowered in ("true", "y", "yes", "on"):
            return True
        if lowered in ("false", "n", "no", "off"):
            return False
        raise fail(path, f"{format_path(path)}: invalid boolean: {value}")
    if any(_matches(path, p) for p in _INT_PATHS):
        try:
            return int(value, 10)
        except ValueError:
            raise fail(path, f'{format_path(path)}: failed to cast to expected type: strconv.Atoi: parsing "{value}": invalid syntax') from None
    if any(_matches(path, p) for p in _FLOAT_PATHS):
        try:
            return float(value)
        except ValueError:
            raise fail(path, f'{format_path(path)}: failed to cast to expected type: strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    return value


Fail = Callable[[Path, str], ComposeError]


def _plain_fail(path: Path, message: str) -> ComposeError:
    return ComposeError(message)


def interpolate(data: Any, lookup: Lookup, path: Path = (), *, fail: Fail = _plain_fail) -> Any:
    """Interpolate every string value of a document (keys untouched), then apply the casts.

    fail(path, message) builds the error raised for a bad template or a missing required
    variable (the loader places it at file:line).
    """
    if isinstance(data, dict):
        return {k: interpolate(v, lookup, path + (k,), fail=fail) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, lookup, path + (i,), fail=fail) for i, v in enumerate(data)]
    if isinstance(data, str):
        if "$" in data:
            try:
                data, _ = _expand(data, 0, lookup, warn_unset, stop=None)
            except InvalidTemplate:
                raise fail(path, f"{format_path(path)}: invalid interpolation format {data!r}: "
                                 "you may need to escape any $ with another $") from None
            except MissingRequired as exc:
                raise fail(path, f"{format_path(path)}: {exc}") from None
        return _cast(path, data, fail) if len(path) > 2 else data
    return data
