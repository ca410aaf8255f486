"""``--change`` instructions (``import -c``, later ``commit -c``): the Dockerfile subset
Docker applies to an image config, parsed and expanded as BuildKit's parser does.

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
import signal
from typing import Any, Iterable

from dockyard.errors import DockyardError

DEFAULT_SHELL = ["/bin/sh", "-c"]
ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")
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
            _apply(cfg, keyword, rest, state)
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


def _apply(cfg: dict[str, Any], keyword: str, rest: str, state: dict[str, bool]) -> None:
    if keyword not in ALLOWED:
        raise ChangeError(f"{keyword} is not a valid change command")
    env = env_map(cfg.get("Env") or [])
    if keyword == "CMD":
        cfg["Cmd"] = _command(rest)
        state["cmd_set"] = True
    elif keyword == "ENTRYPOINT":
        cfg["Entrypoint"] = _command(rest)
        if not state["cmd_set"]:
            cfg["Cmd"] = None  # as in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
    elif keyword == "ENV":
        for key, value in _name_values(keyword, rest, env):
            env[key] = value
            cfg["Env"] = _set_env(cfg.get("Env") or [], key, value)
    elif keyword == "LABEL":
        labels = dict(cfg.get("Labels") or {})
        for key, value in _name_values(keyword, rest, env):
            labels[key] = value
        cfg["Labels"] = labels
    elif keyword == "WORKDIR":
        path = process_word(rest, env)
        if not path:
            raise ChangeError("WORKDIR requires exactly one argument")
        if not path.startswith("/"):
            path = posixpath.join("/", cfg.get("WorkingDir") or "", path)
        cfg["WorkingDir"] = posixpath.normpath(path).replace("//", "/")
    elif keyword == "USER":
        user = process_word(rest, env)
        if not user:
            raise ChangeError("USER requires exactly one argument")
        cfg["User"] = user
    elif keyword == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        words = [process_word(w, env) for w in parse_words(rest)]
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
            paths = [process_word(w, env) for w in parse_words(rest)]
        if not paths:
            raise ChangeError("VOLUME requires at least one argument")
        for path in paths:
            if not path.strip():
                raise ChangeError("VOLUME specified can not be an empty string")
            volumes[path] = {}
        cfg["Volumes"] = volumes
    elif keyword == "STOPSIGNAL":
        sig = process_word(rest, env)
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


def _name_values(keyword: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    words = parse_words(rest)
    if not words:
        raise ChangeError(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        # The legacy form: KEY name value with spaces
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise ChangeError(f"{keyword} must have two arguments")
        return [(process_word(parts[0], env), process_word(parts[1], env))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ChangeError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        key = process_word(key, env)
        if not key:
            raise ChangeError(f"{keyword} names can not be blank")
        pairs.append((key, process_word(value, env)))
    return pairs


def env_map(env: list[str]) -> dict[str, str]:
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


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
    if name in signal.Signals.__members__:
        return
    m = re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name)
    if m:
        return
    raise ChangeError(f"Invalid signal: {sig}")


# ---- BuildKit's word splitting and shell-like expansion --------------------------------


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split at whitespace, keeping quotes and escapes in the words (parser.parseWords)."""
    words: list[str] = []
    word = ""
    phase = "spaces"
    quote = ""
    blank_ok = False
    i, n = 0, len(rest)
    while True:
        if phase == "spaces":
            if i == n:
                break
            if rest[i].isspace():
                i += 1
                continue
            phase = "word"
        if i == n:
            if blank_ok or word:
                words.append(word)
            break
        ch = rest[i]
        if phase == "word":
            if ch.isspace():
                phase = "spaces"
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                i += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue  # an escape at the end of the line is dropped
                word += ch
                i += 1
                ch = rest[i]
            word += ch
            i += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if i + 1 == n:
                phase = "word"
                i += 1
                continue
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    return words


def process_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """Remove quotes and escapes and expand variables, as the Dockerfile shell lexer does."""
    return _Lexer(word, env, escape).process()


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.i = 0

    def _peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.i += 1
        return ch

    def process(self, stop: str = "") -> str:
        out = []
        while self.i < len(self.text):
            ch = self._peek()
            if stop and ch == stop:
                break
            if ch == "'":
                out.append(self._single_quote())
            elif ch == '"':
                out.append(self._double_quote())
            elif ch == "$":
                out.append(self._dollar())
            else:
                self._next()
                if ch == self.escape:
                    if self.i >= len(self.text):
                        continue  # a trailing escape is dropped
                    ch = self._next()
                out.append(ch)
        return "".join(out)

    def _single_quote(self) -> str:
        self._next()
        end = self.text.find("'", self.i)
        if end < 0:
            raise ChangeError("unexpected end of statement while looking for matching single-quote")
        value = self.text[self.i:end]
        self.i = end + 1
        return value

    def _double_quote(self) -> str:
        self._next()
        out = []
        while True:
            if self.i >= len(self.text):
                raise ChangeError("unexpected end of statement while looking for matching double-quote")
            ch = self._peek()
            if ch == '"':
                self._next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self._next()
            if ch == self.escape:
                nxt = self._peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        start = self.i
        while self.i < len(self.text) and _NAME_CHARS.match(self.text[self.i]):
            self.i += 1
        return self.text[start:self.i]

    def _dollar(self) -> str:
        self._next()  # $
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self._next()  # {
        name = self._name()
        if not name:
            raise ChangeError(f"bad substitution in {self.text!r}")
        ch = self._peek()
        if ch == "}":
            self._next()
            return self.env.get(name, "")
        modifier = self._next()
        colon = modifier == ":"
        if colon:
            modifier = self._next()
        if modifier not in ("-", "+", "?"):
            raise ChangeError(f"unsupported modifier ({modifier}) in substitution in {self.text!r}")
        word = self.process(stop="}")
        if self._next() != "}":
            raise ChangeError(f"missing '}}' in substitution in {self.text!r}")
        value = self.env.get(name)
        unset = value is None or (colon and value == "")
        if modifier == "-":
            return word if unset else value  # type: ignore[return-value]
        if modifier == "+":
            return "" if unset else word
        if unset:
            raise ChangeError(f"{name}: {word or 'is not allowed to be unset'}")
        return value  # type: ignore[return-value]
