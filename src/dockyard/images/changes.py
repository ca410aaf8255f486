"""``--change`` instructions (``import -c``, later ``commit -c``): the Dockerfile subset
Docker applies to an image config, split and expanded by the Dockerfile language module
(``build/dockerfile.py``) as BuildKit's parser does.

``CMD ["sh"]`` is the exec form; ``CMD sh -c x`` the shell form, which becomes
``["/bin/sh", "-c", "sh -c x"]``. ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME and
STOPSIGNAL expand ``$VAR`` / ``${VAR:-default}`` from the config's Env as a
Dockerfile would, and remove quotes the same way.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re

from dockyard.build.dockerfile import DockerfileError, env_map, parse_words, process_word  # noqa: F401 - re-exported
from dockyard.errors import DockyardError

TYPE_CHECKING = False   # typing and signal cost a cached build's start-up
if TYPE_CHECKING:
    from typing import Any, Iterable

DEFAULT_SHELL = ["/bin/sh", "-c"]
ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


class ChangeError(DockyardError):
    """A --change value that is not a valid (or not an allowed) instruction."""


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the OCI ``config`` object (``Cmd``, ``Env``...) with ``changes`` applied."""
    cfg = copy.deepcopy(config)
    state = {"cmd_set": False}
    for change in changes:
        instructions = list(_instructions(change))
        if not instructions:
            raise ChangeError(f"invalid change {change!r}: no instruction")
        for keyword, rest in instructions:
            try:
                _apply(cfg, keyword, rest, state)
            except DockerfileError as e:   # the shared lexer's words, as a --change error
                raise ChangeError(e.message) from None
    return cfg


def apply_instruction(config: dict[str, Any], keyword: str, rest: str, env: dict[str, str],
                      escape: str = "\\") -> dict[str, Any]:
    """A copy of ``config`` with one Dockerfile instruction applied, ``$VAR`` expanded from
    ``env`` (a build's ARGs and ENV): the builder's metadata steps."""
    cfg = copy.deepcopy(config)
    _apply(cfg, keyword, rest, {"cmd_set": False}, env, escape)
    return cfg


def _instructions(text: str) -> Iterable[tuple[str, str]]:
    """Lines of ``text`` joined at trailing backslashes, comments dropped, split at the keyword."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        yield _split_keyword(logical + stripped)
        logical = ""
    if logical.strip():
        yield _split_keyword(logical)


def _split_keyword(line: str) -> tuple[str, str]:
    parts = line.strip().split(None, 1)
    return parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")


def _apply(cfg: dict[str, Any], keyword: str, rest: str, state: dict[str, bool],
           expand: dict[str, str] | None = None, escape: str = "\\") -> None:
    if keyword not in ALLOWED:
        raise ChangeError(f"{keyword} is not a valid change command")
    env = dict(expand) if expand is not None else env_map(cfg.get("Env") or [])
    if keyword == "CMD":
        cfg["Cmd"] = _command(rest)
        state["cmd_set"] = True
    elif keyword == "ENTRYPOINT":
        cfg["Entrypoint"] = _command(rest)
        if not state["cmd_set"]:
            cfg["Cmd"] = None  # as in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
    elif keyword == "ENV":
        for key, value in _name_values(keyword, rest, env, escape):
            env[key] = value
            cfg["Env"] = _set_env(cfg.get("Env") or [], key, value)
    elif keyword == "LABEL":
        labels = dict(cfg.get("Labels") or {})
        for key, value in _name_values(keyword, rest, env, escape):
            labels[key] = value
        cfg["Labels"] = labels
    elif keyword == "WORKDIR":
        path = process_word(rest, env, escape)
        if not path:
            raise ChangeError("WORKDIR requires exactly one argument")
        if not path.startswith("/"):
            path = posixpath.join("/", cfg.get("WorkingDir") or "", path)
        cfg["WorkingDir"] = posixpath.normpath(path).replace("//", "/")
    elif keyword == "USER":
        user = process_word(rest, env, escape)
        if not user:
            raise ChangeError("USER requires exactly one argument")
        cfg["User"] = user
    elif keyword == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        words = [process_word(w, env, escape) for w in parse_words(rest, escape)]
        if not words:
            raise ChangeError("EXPOSE requires at least one argument")
        for word in words:
            for port in parse_ports(word):
                ports[port] = {}
        cfg["ExposedPorts"] = ports
    elif keyword == "VOLUME":
        volumes = dict(cfg.get("Volumes") or {})
        paths = _json_list(rest)
        if paths is None:
            paths = [process_word(w, env, escape) for w in parse_words(rest, escape)]
        if not paths:
            raise ChangeError("VOLUME requires at least one argument")
        for path in paths:
            if not path.strip():
                raise ChangeError("VOLUME specified can not be an empty string")
            volumes[path] = {}
        cfg["Volumes"] = volumes
    elif keyword == "STOPSIGNAL":
        sig = process_word(rest, env, escape)
        validate_signal(sig)
        cfg["StopSignal"] = sig
    elif keyword == "ONBUILD":
        trigger, _, trigger_rest = rest.partition(" ")
        trigger = trigger.upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER") or not trigger:
            raise ChangeError(f"{trigger or 'an empty'} isn't allowed as an ONBUILD trigger")
        cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [f"{trigger} {trigger_rest.strip()}".strip()]


def _command(rest: str) -> list[str]:
    """The exec form when ``rest`` is a JSON array of strings, else the shell form."""
    exec_form = _json_list(rest)
    if exec_form is not None:
        return exec_form
    if not rest:
        return []
    return DEFAULT_SHELL + [rest]


def _json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _name_values(keyword: str, rest: str, env: dict[str, str], escape: str = "\\") -> list[tuple[str, str]]:
    words = parse_words(rest, escape)
    if not words:
        raise ChangeError(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        # The legacy form: KEY name value with spaces
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise ChangeError(f"{keyword} must have two arguments")
        return [(process_word(parts[0], env, escape), process_word(parts[1], env, escape))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ChangeError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        key = process_word(key, env, escape)
        if not key:
            raise ChangeError(f"{keyword} names can not be blank")
        pairs.append((key, process_word(value, env, escape)))
    return pairs


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    out, replaced = [], False
    for item in env:
        if item.partition("=")[0] == key:
            if not replaced:
                out.append(f"{key}={value}")
                replaced = True
        else:
            out.append(item)
    if not replaced:
        out.append(f"{key}={value}")
    return out


def parse_ports(spec: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002/tcp`` -> ``["80/tcp"]``... as nat.ParsePortSpecs reads them."""
    m = _PORT.match(spec)
    if not m:
        raise ChangeError(f"invalid containerPort: {spec}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    proto = (m.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ChangeError(f"invalid proto: {proto}")
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise ChangeError(f"invalid port range: {spec}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def validate_signal(sig: str) -> None:
    """Signal names (with or without SIG) or numbers, as Docker's signal.ParseSignal."""
    if sig.isdigit():
        if 0 < int(sig) <= 64:
            return
        raise ChangeError(f"Invalid signal: {sig}")
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    import signal

    if name in signal.Signals.__members__:
        return
    m = re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name)
    if m:
        return
    raise ChangeError(f"Invalid signal: {sig}")
