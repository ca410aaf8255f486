"""The Dockerfile language: parsing (by the official parser, the ``dockerfile`` package),
Docker's word splitting and variable expansion, stages and ARG scoping.

One module for every reader of Dockerfile text: ``dockyard build`` and the ``--change``
instructions of ``import``/``commit`` (``images/changes.py``), so both expand ``$VAR``,
``${VAR:-default}``, ``${VAR:+alt}``, ``${VAR:?err}``, quotes and escapes the same way
BuildKit's shell lexer does.

The parser gives each instruction with its line numbers, flags and heredocs; it does not
check instructions or their arguments, so ``parse`` does (with Docker's messages, each
prefixed ``Dockerfile:LINE``).
"""

from __future__ import annotations

import re

from dockyard.errors import DockyardError
from dockyard.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Mapping

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
# Arguments every build knows without an ARG line (BuildKit's predefined and platform ARGs).
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS",
                 "BUILDARCH", "BUILDVARIANT")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")
_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class DockerfileError(DockyardError):
    """Bad Dockerfile text: one line, ``Dockerfile:LINE: what``."""

    exit_code = 1


@record
class Instruction:
    keyword: str                    # upper case: RUN
    args: list[str]                 # the parser's words (quotes kept, for the lexer); JSON form: the strings
    flags: list[str]                # "--from=build", as written
    json: bool                      # exec (JSON) form
    line: int
    end_line: int
    original: str
    heredocs: list[tuple[str, str]] = field(default_factory=list)   # (name, content)
    sub: "Instruction | None" = None                                # ONBUILD's instruction

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (the last one given), or None."""
        value = None
        for f in self.flags:
            key, sep, rest = f.partition("=")
            if key == f"--{name}":
                value = rest if sep else ""
        return value

    def flag_values(self, name: str) -> list[str]:
        return [f.partition("=")[2] for f in self.flags if f.partition("=")[0] == f"--{name}"]


@record
class Stage:
    index: int
    name: str                       # "" when unnamed (lower case: stage names are)
    base: str                       # FROM's image or stage, unexpanded
    platform: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@record
class Dockerfile:
    stages: list[Stage]
    global_args: list[Instruction]  # ARGs before the first FROM
    escape: str = "\\"
    name: str = "Dockerfile"

    def stage(self, ref: str, before: int | None = None) -> Stage | None:
        """The stage ``ref`` names (its name, or its index as a number), among the stages
        before ``before`` if given: a stage can only build on earlier ones."""
        candidates = self.stages if before is None else self.stages[:before]
        if ref.isdigit():
            i = int(ref)
            return candidates[i] if i < len(candidates) else None
        ref = ref.lower()
        return next((s for s in candidates if s.name and s.name == ref), None)


def parse(text: str, name: str = "Dockerfile", cache_dir: str | None = None) -> Dockerfile:
    """The Dockerfile ``text`` (``name`` in messages). With ``cache_dir``, the official
    parser's output is kept there by content: a rebuild then never starts its Go runtime
    (~5 ms and five threads of a cached build's start-up)."""
    commands = _official_parse(text, name, cache_dir)
    escape = _escape_directive(text, name)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for cmd in commands:
        instruction = _instruction(cmd, name)
        if instruction.keyword == "FROM":
            stages.append(_stage(instruction, len(stages), name))
        elif not stages:
            if instruction.keyword != "ARG":
                raise DockerfileError(f"{name}:{instruction.line}: no build stage in current context "
                                      f"({instruction.keyword} before FROM)")
            global_args.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileError(f"{name}: the Dockerfile has no FROM instruction (no build stage)")
    seen: dict[str, int] = {}
    for stage in stages:
        if stage.name and stage.name in seen:
            raise DockerfileError(f"{name}:{stage.line}: duplicate stage name {stage.name!r}")
        if stage.name:
            seen[stage.name] = stage.index
    return Dockerfile(stages=stages, global_args=global_args, escape=escape, name=name)


class _Command:
    """A parser command as the cache holds it (the fields of dockerfile.Command that are read)."""

    __slots__ = ("cmd", "sub_cmd", "json", "original", "start_line", "end_line", "flags", "value", "heredocs")

    def __init__(self, data: "dict") -> None:
        for key in self.__slots__:
            setattr(self, key, data[key])
        self.heredocs = [_Heredoc(h[0], h[1]) for h in data["heredocs"]]


class _Heredoc:
    __slots__ = ("name", "content")

    def __init__(self, name: str, content: str) -> None:
        self.name = name
        self.content = content


_PARSE_CACHE_FILES = 256


def _official_parse(text: str, name: str, cache_dir: str | None) -> list:
    import json
    import os

    path = None
    if cache_dir is not None:
        from dockyard.digest import small_sha256

        path = os.path.join(cache_dir, small_sha256(text.encode("utf-8", "surrogateescape")) + ".json")
        try:
            with open(path, encoding="utf-8") as f:
                return [_Command(c) for c in json.load(f)]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass
    import dockerfile as official

    try:
        commands = official.parse_string(text)
    except official.GoParseError as e:
        raise DockerfileError(f"{name}: {e}") from None
    if path is not None:
        data = [{"cmd": c.cmd, "sub_cmd": c.sub_cmd, "json": c.json, "original": c.original,
                 "start_line": c.start_line, "end_line": c.end_line, "flags": list(c.flags), "value": list(c.value),
                 "heredocs": [[h.name, h.content] for h in c.heredocs]} for c in commands]
        _write_cache(path, json.dumps(data))
    return list(commands)


def _write_cache(path: str, text: str) -> None:
    """Write atomically; keep the directory to the most recent few hundred files."""
    import os

    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        entries = os.listdir(directory)
        if len(entries) > _PARSE_CACHE_FILES:
            full = sorted((os.path.join(directory, e) for e in entries), key=lambda p: os.stat(p).st_mtime)
            for old in full[: len(full) - _PARSE_CACHE_FILES]:
                os.unlink(old)
    except OSError:
        pass   # a cache: a build without it is only slower


def _escape_directive(text: str, name: str) -> str:
    """``# escape=`` among the parser directives (comment lines at the very top)."""
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise DockerfileError(f"{name}:1: invalid escape token '{m.group(2)}' does not match ` or \\")
            return m.group(2)
    return "\\"


def _instruction(cmd: "object", name: str) -> Instruction:
    keyword = cmd.cmd.upper()
    line = cmd.start_line
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(f"{name}:{line}: unknown instruction: {cmd.cmd}")
    instruction = Instruction(keyword=keyword, args=list(cmd.value), flags=list(cmd.flags), json=bool(cmd.json),
                              line=line, end_line=cmd.end_line, original=cmd.original,
                              heredocs=[(h.name, h.content) for h in cmd.heredocs])
    if keyword == "ONBUILD":
        # The parser splits the trigger out: sub_cmd is its keyword, value its arguments.
        sub = (cmd.sub_cmd or "").upper()
        if not sub:
            raise DockerfileError(f"{name}:{line}: ONBUILD requires at least one argument")
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{name}:{line}: {sub} isn't allowed as an ONBUILD trigger")
        if sub not in INSTRUCTIONS:
            raise DockerfileError(f"{name}:{line}: unknown instruction: {cmd.sub_cmd}")
        instruction.sub = Instruction(keyword=sub, args=list(cmd.value), flags=list(cmd.flags), json=bool(cmd.json),
                                      line=line, end_line=cmd.end_line, original=cmd.original.split(None, 1)[1])
        instruction.flags = []
        _check_arguments(instruction.sub, name)
        return instruction
    _check_arguments(instruction, name)
    return instruction


def _check_arguments(i: Instruction, name: str) -> None:
    """Docker's argument-count checks (the parser accepts anything)."""
    args = [a for a in i.args if a != ""] if not i.json else i.args
    at = f"{name}:{i.line}"
    if i.keyword in ("ENV", "LABEL", "ARG", "FROM", "WORKDIR", "USER", "VOLUME", "EXPOSE", "STOPSIGNAL",
                     "MAINTAINER", "SHELL") and not args:
        raise DockerfileError(f"{at}: {i.keyword} requires at least one argument")
    if i.keyword in ("COPY", "ADD") and len(args) < 2:
        raise DockerfileError(f"{at}: {i.keyword} requires at least two arguments, but only one was provided. "
                              "Destination could not be determined")
    if i.keyword in ("WORKDIR", "USER", "STOPSIGNAL") and len(args) != 1 and not i.json:
        raise DockerfileError(f"{at}: {i.keyword} requires exactly one argument")
    if i.keyword == "SHELL" and not i.json:
        raise DockerfileError(f"{at}: SHELL requires the arguments to be in JSON form")
    if i.keyword == "FROM" and len(args) not in (1, 3):
        raise DockerfileError(f"{at}: FROM requires either one or three arguments")
    if i.keyword == "FROM" and len(args) == 3 and args[1].upper() != "AS":
        raise DockerfileError(f"{at}: FROM requires either one or three arguments")
    if i.keyword == "RUN" and not args and not i.heredocs:
        raise DockerfileError(f"{at}: RUN requires at least one argument")
    for flag in i.flags:
        key = flag.partition("=")[0][2:]
        if key not in _FLAGS.get(i.keyword, ()):
            raise DockerfileError(f"{at}: unknown flag: --{key}")


_FLAGS = {
    "FROM": ("platform",),
    "RUN": ("mount", "network", "security"),
    "COPY": ("from", "chown", "chmod", "link", "parents", "exclude"),
    "ADD": ("chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"),
    "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries"),
}


def _stage(i: Instruction, index: int, name: str) -> Stage:
    stage_name = ""
    if len(i.args) == 3:
        stage_name = i.args[2].lower()
        if not _STAGE_NAME.match(stage_name):
            raise DockerfileError(f"{name}:{i.line}: invalid name for build stage: {i.args[2]!r}, name can't "
                                  "start with a number or contain symbols")
    return Stage(index=index, name=stage_name, base=i.args[0], platform=i.flag("platform"), line=i.line)


# ---- which stages a target needs ---------------------------------------------------------


def stage_refs(df: Dockerfile, stage: Stage, args: "Mapping[str, str]") -> list[int]:
    """Indexes of the earlier stages ``stage`` builds on: its FROM, ``COPY --from`` and
    ``RUN --mount=from=``. A name that is no earlier stage is an image."""
    refs = []
    base = process_word(stage.base, dict(args), df.escape)
    found = df.stage(base, before=stage.index)
    if found is not None:
        refs.append(found.index)
    elif base and (base.lower() == stage.name or df.stage(base) is not None and not base.isdigit()):
        raise DockerfileError(f"{df.name}:{stage.line}: circular dependency detected on stage: {base}")
    for i in stage.instructions:
        sources = [i.flag("from")] if i.keyword == "COPY" and i.flag("from") else []
        if i.keyword == "RUN":
            for mount in i.flag_values("mount"):
                options = dict(part.partition("=")[::2] for part in mount.split(","))
                if options.get("from"):
                    sources.append(options["from"])
        for ref in sources:
            target = df.stage(ref, before=stage.index)
            if target is not None:
                refs.append(target.index)
            elif df.stage(ref) is not None and not ref.isdigit():
                raise DockerfileError(f"{df.name}:{i.line}: circular dependency detected on stage: {ref}")
    return sorted(set(refs))


def needed_stages(df: Dockerfile, target: str | None, args: "Mapping[str, str]") -> list[int]:
    """The stages building ``target`` (default: the last) takes, in build order; the others
    are skipped, as BuildKit skips them."""
    if target:
        stage = df.stage(target)
        if stage is None:
            raise DockerfileError(f"target stage \"{target}\" could not be found")
    else:
        stage = df.stages[-1]
    needed: set[int] = set()
    todo = [stage.index]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo += stage_refs(df, df.stages[index], args)
    return sorted(needed)


# ---- ARG scoping ---------------------------------------------------------------------------


def global_scope(df: Dockerfile, build_args: "Mapping[str, str]", platform: "Mapping[str, str]") -> dict[str, str]:
    """What FROM lines see: the ARGs declared before the first FROM (build args override
    their defaults) and the platform ARGs."""
    scope = dict(platform)
    for i in df.global_args:
        for key, value in arg_declarations(i, scope, df.escape):
            scope[key] = build_args[key] if key in build_args else (value if value is not None else scope.get(key, ""))
    return scope


def arg_declarations(i: Instruction, env: "Mapping[str, str]", escape: str = "\\") -> list[tuple[str, str | None]]:
    """``ARG A B=2`` -> [("A", None), ("B", "2")] (defaults expanded in ``env``)."""
    out = []
    for word in i.args:
        key, sep, value = word.partition("=")
        if not key or not _NAME_CHARS.match(key[0]):
            raise DockerfileError(f"ARG names can not be blank: {i.original!r}")
        out.append((key, process_word(value, dict(env), escape) if sep else None))
    return out


def unused_build_args(df: Dockerfile, build_args: "Iterable[str]") -> list[str]:
    """Build args no ARG line declares (Docker warns about them)."""
    declared = set(PROXY_ARGS) | set(PLATFORM_ARGS)
    for i in df.global_args + [i for s in df.stages for i in s.instructions if i.keyword == "ARG"]:
        declared.update(word.partition("=")[0] for word in i.args)
    return sorted(a for a in build_args if a not in declared)


# ---- BuildKit's word splitting and shell-like expansion -------------------------------------


def env_map(env: "Iterable[str]") -> dict[str, str]:
    """``["A=1", "B"]`` -> ``{"A": "1", "B": ""}``: an image config's Env as a mapping."""
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


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


def process_word(word: str, env: "Mapping[str, str]", escape: str = "\\") -> str:
    """Remove quotes and escapes and expand variables, as the Dockerfile shell lexer does."""
    return _Lexer(word, env, escape).process()


class _Lexer:
    def __init__(self, text: str, env: "Mapping[str, str]", escape: str) -> None:
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
            raise DockerfileError("unexpected end of statement while looking for matching single-quote")
        value = self.text[self.i:end]
        self.i = end + 1
        return value

    def _double_quote(self) -> str:
        self._next()
        out = []
        while True:
            if self.i >= len(self.text):
                raise DockerfileError("unexpected end of statement while looking for matching double-quote")
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
            raise DockerfileError(f"bad substitution in {self.text!r}")
        ch = self._peek()
        if ch == "}":
            self._next()
            return self.env.get(name, "")
        modifier = self._next()
        colon = modifier == ":"
        if colon:
            modifier = self._next()
        if modifier not in ("-", "+", "?"):
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution in {self.text!r}")
        word = self.process(stop="}")
        if self._next() != "}":
            raise DockerfileError(f"missing '}}' in substitution in {self.text!r}")
        value = self.env.get(name)
        unset = value is None or (colon and value == "")
        if modifier == "-":
            return word if unset else value  # type: ignore[return-value]
        if modifier == "+":
            return "" if unset else word
        if unset:
            raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
        return value  # type: ignore[return-value]
