"""Go's text/template, as ``docker --format`` / ``inspect -f`` evaluate it (Go 1.19's, which
docker 20.10 is built with: ``break``/``continue`` and short-circuit ``and``/``or``, but no
``range`` over an integer and no ``else with``).

A lexer and a recursive-descent parser that follow Go's text/template/parse (actions with
``{{- -}}`` trimming, comments, ``if``/``else if``/``range``/``with``/``define``/``template``/
``block``/``break``/``continue``, variables, parenthesised pipelines, chained fields) and an
evaluator over Python values: dicts stand for Go structs and maps, lists for slices, and a
callable row value is a method (``.Label "k"``). Go's builtins plus Docker's template
functions (``json``, ``join``, ``split``, ``title``, ``lower``, ``upper``, ``pad``,
``truncate``). Error texts are Go's: ``template: :1:2: executing "" at <.Bogus>: ...``.

No PyPI package fits: the only Go-template one wraps Go through CGo. Pure stdlib, and only
``re`` at import time, so the CLI's start-up stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping  # not typing: ~3 ms of every listing's start-up

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Sequence

from dockyard.errors import DockyardError


class TemplateError(DockyardError):
    """A template that does not parse (``parse=True``) or fails while running. Docker prints
    it bare, without the ``Error: `` the CLI puts before other errors (``print_prefix``)."""

    print_prefix = ""

    def __init__(self, message: str, parse: bool = False) -> None:
        super().__init__(message)
        self.parse = parse


class _Missing:
    """What a missing map key gives: Go's invalid reflect.Value, printed ``<no value>``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

# Map-typed fields of Docker's inspect structs: a missing key there is ``<no value>``, while a
# missing field of a struct is an error (docker's raw fallback runs with missingkey=error);
# a null one prints ``map[]``.
MAP_FIELDS = frozenset({
    "Labels", "Networks", "Ports", "ExposedPorts", "Volumes", "Options", "Data", "DriverOpts",
    "Sysctls", "StorageOpt", "Tmpfs", "Annotations", "Containers", "Aux", "PortBindings",
})


# Fields of Docker's inspect structs that its JSON omits when empty (``omitempty``): missing
# from the data, they are the zero value Docker's typed template sees (a nil pointer prints
# ``<nil>``), not an error.
ZERO_FIELDS: dict[str, Any] = {
    "Health": None, "Healthcheck": None, "Node": None, "StopTimeout": None, "Shell": None, "OnBuild": None,
    "StopSignal": "", "MacAddress": "", "ArgsEscaped": False, "NetworkDisabled": False,
}


# Slice-typed fields of Docker's inspect structs: a null one prints ``[]`` (a nil slice).
SLICE_FIELDS = frozenset({
    "Cmd", "Entrypoint", "Env", "Shell", "OnBuild", "Binds", "Links", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "CapAdd", "CapDrop", "GroupAdd", "SecurityOpt", "Devices", "DeviceCgroupRules",
    "DeviceRequests", "Ulimits", "VolumesFrom", "MaskedPaths", "ReadonlyPaths", "Mounts", "Aliases",
    "RepoTags", "RepoDigests", "Layers", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "Args", "Test", "DNSNames", "SecondaryIPAddresses",
    "SecondaryIPv6Addresses",
})


class GoMap(dict):
    """A dict that is a Go map even if its keys are capitalised (Labels, Networks...)."""


class NilMap(GoMap):
    """A nil map of Docker's typed structs: prints ``map[]``, indexes to "", JSON ``null``."""


class NilList(list):
    """A nil slice of Docker's typed structs: prints ``[]``, JSON ``null``."""


# ---- values as Go sees them -------------------------------------------------------------


def is_struct(value: Any) -> bool:
    """A dict that stands for a Go struct: all keys exported names (``{"Name": ...}``)."""
    return (isinstance(value, dict) and not isinstance(value, GoMap) and bool(value)
            and all(isinstance(k, str) and k[:1].isupper() for k in value))


def go_type(value: Any) -> str:
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, JsonNumber):
        return "json.Number"
    if isinstance(value, RawList):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]string" if value and all(isinstance(v, str) for v in value) else "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return type(value).__name__


class JsonNumber(str):
    """A number of inspect's raw fallback: JSON decoded with UseNumber (a Go string kind)."""


class RawList(list):
    """A list of inspect's raw fallback: ``[]interface {}``, which ``join`` refuses."""


def _raw(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return JsonNumber(go_value(value))
    if isinstance(value, list) and not isinstance(value, RawList):
        return RawList(value)
    return value


def go_float(value: float) -> str:
    """``%v`` of a float64: the shortest digits, in exponent form when the exponent is
    below -4 or at least 6 (strconv 'g' with precision -1, as fmt uses it)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign = "-" if value < 0 else ""
    mant, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    x = point - 1
    if x < -4 or x >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{sign}0." + "0" * -point + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def go_value(value: Any, nil: str = "<nil>") -> str:
    """Go's ``%v``: ``[a b]``, ``map[k:v]`` (sorted keys), ``{v1 v2}`` for a struct."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return nil
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        if is_struct(value):
            return "{" + " ".join(go_value(v) for v in value.values() if not callable(v)) + "}"
        return "map[" + " ".join(f"{go_value(k)}:{go_value(v)}" for k, v in _sorted_items(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def _sorted_items(value: Mapping) -> list[tuple[Any, Any]]:
    try:
        return sorted(value.items())
    except TypeError:
        return sorted(value.items(), key=lambda kv: str(kv[0]))


def truth(value: Any) -> bool:
    """Go's truth: the zero value, nil and empty containers are false."""
    if value is None or value is MISSING:
        return False
    if callable(value):
        return True
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value) > 0
    return bool(value)


def go_json(value: Any) -> str:
    """Docker's ``json``: encoding/json with HTML escaping off, trailing newline trimmed."""
    import json

    text = json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")  # Go escapes these two always


def _jsonable(value: Any) -> Any:
    if value is MISSING or isinstance(value, (NilMap, NilList)):
        return None
    if isinstance(value, Mapping):
        items = value.items() if is_struct(value) else _sorted_items(value)
        return {str(k): _jsonable(v) for k, v in items if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go writes 1, not 1.0
    return value


# ---- lexer ----------------------------------------------------------------------------

_SPACE = " \t\r\n"
_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]+(?![.eE0-9])|"
                     r"(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_OR_VAR = re.compile(r"[.$][A-Za-z0-9_]*")
_CHAR = re.compile(r"'(\\.[^']*|[^'\\])'")
_INT_FORMS = ((re.compile(r"[+-]?0[xX][0-9a-fA-F]+"), 16), (re.compile(r"[+-]?0[bB][01]+"), 2),
              (re.compile(r"[+-]?0[oO]?[0-7]+"), 8), (re.compile(r"[+-]?\d+"), 10))
KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                      "break", "continue", "nil", "true", "false"})


class Tok:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind: str, val: str, pos: int, line: int) -> None:
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __repr__(self) -> str:
        return f"Tok({self.kind}, {self.val!r}, {self.pos})"


def _perr(line: int, msg: str) -> TemplateError:
    return TemplateError(f"template: :{line}: {msg}", parse=True)


def lex(text: str) -> list[Tok]:
    """Tokens of ``text``: ``text`` pieces, ``{{``/``}}`` delimiters, and the action's items."""
    toks: list[Tok] = []
    pos, n = 0, len(text)
    while pos < n:
        start = text.find("{{", pos)
        if start < 0:
            toks.append(Tok("text", text[pos:], pos, _line(text, pos)))
            break
        lit_end = start
        trim_left = text.startswith("{{- ", start) or text.startswith("{{-\t", start) or \
            text.startswith("{{-\n", start) or text.startswith("{{-\r", start)
        if trim_left:
            while lit_end > pos and text[lit_end - 1] in _SPACE:
                lit_end -= 1
        if lit_end > pos:
            toks.append(Tok("text", text[pos:lit_end], pos, _line(text, pos)))
        i = start + (4 if trim_left else 2)
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise _perr(_line(text, start), "unclosed comment")
            k = end + 2
            trim_right = False
            if text.startswith(" -}}", k) or text.startswith("\t-}}", k) or text.startswith("\n-}}", k):
                trim_right, k = True, k + 4
            elif text.startswith("}}", k):
                k += 2
            else:
                raise _perr(_line(text, start), "comment ends before closing delimiter")
            pos = k
            if trim_right:
                while pos < n and text[pos] in _SPACE:
                    pos += 1
            continue
        toks.append(Tok("{{", "{{", start, _line(text, start)))
        pos = _lex_action(text, i, toks)
    toks.append(Tok("eof", "", n, _line(text, n)))
    return toks


def _line(text: str, pos: int) -> int:
    return 1 + text.count("\n", 0, pos)


def _lex_action(text: str, i: int, toks: list[Tok]) -> int:
    n = len(text)
    depth = 0
    while True:
        if i >= n:
            raise _perr(_line(text, i), "unclosed action")
        c = text[i]
        if c in _SPACE:
            j = i
            while j < n and text[j] in _SPACE:
                j += 1
            if text.startswith("-}}", j):  # right trim marker
                toks.append(Tok("}}", "}}", j, _line(text, j)))
                j += 3
                while j < n and text[j] in _SPACE:
                    j += 1
                return j
            if text.startswith("}}", j):
                i = j
                continue
            toks.append(Tok("space", text[i:j], i, _line(text, i)))
            i = j
            continue
        if text.startswith("}}", i):
            if depth:
                raise _perr(_line(text, i), "unclosed left paren")
            toks.append(Tok("}}", "}}", i, _line(text, i)))
            return i + 2
        line = _line(text, i)
        if c == "|":
            toks.append(Tok("|", c, i, line))
            i += 1
        elif c == "(":
            depth += 1
            toks.append(Tok("(", c, i, line))
            i += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise _perr(line, "unexpected right paren")
            toks.append(Tok(")", c, i, line))
            i += 1
        elif c == ",":
            toks.append(Tok(",", c, i, line))
            i += 1
        elif text.startswith(":=", i):
            toks.append(Tok(":=", ":=", i, line))
            i += 2
        elif c == "=":
            toks.append(Tok("=", c, i, line))
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    raise _perr(line, "unterminated quoted string")
                j += 1
            if j >= n:
                raise _perr(line, "unterminated quoted string")
            toks.append(Tok("string", text[i:j + 1], i, line))
            i = j + 1
        elif c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise _perr(line, "unterminated raw quoted string")
            toks.append(Tok("rawstring", text[i:j + 1], i, line))
            i = j + 1
        elif c == "'":
            m = _CHAR.match(text, i)
            if not m:
                raise _perr(line, "unterminated character constant")
            toks.append(Tok("char", m.group(0), i, line))
            i = m.end()
        elif c in ".$" and not (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _FIELD_OR_VAR.match(text, i)
            assert m is not None
            word = m.group(0)
            kind = "variable" if c == "$" else ("dot" if word == "." else "field")
            toks.append(Tok(kind, word, i, line))
            i = m.end()
            # a field right after a variable or ident, e.g. $x.Name, is its own field token
        elif c.isdigit() or (c in "+-." and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
            m = _NUMBER.match(text, i)
            if not m or not m.group(0) or m.group(0) in "+-":
                raise _perr(line, f"bad number syntax: {text[i:i + 1]!r}")
            end = m.end()
            while end < n and (text[end].isalnum() or text[end] == "."):
                end += 1
            toks.append(Tok("number", text[i:end], i, line))
            i = end
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            assert m is not None
            word = m.group(0)
            kind = "keyword" if word in KEYWORDS and word not in ("nil", "true", "false") else \
                ("bool" if word in ("true", "false") else "nil" if word == "nil" else "identifier")
            toks.append(Tok(kind, word, i, line))
            i = m.end()
        elif c == "}":
            raise _perr(line, 'unexpected "}" in operand')
        else:
            raise _perr(line, f"unrecognized character in action: U+{ord(c):04X} '{c}'")


# ---- parse tree -----------------------------------------------------------------------


class Node:
    pos = 0
    line = 1


class Text(Node):
    def __init__(self, text: str) -> None:
        self.text = text


class Literal(Node):
    def __init__(self, value: Any, src: str, pos: int) -> None:
        self.value, self.src, self.pos = value, src, pos

    def __str__(self) -> str:
        return self.src


class Dot(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class Field(Node):
    def __init__(self, idents: list[str], pos: int) -> None:
        self.idents, self.pos = idents, pos

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


class Variable(Node):
    def __init__(self, name: str, idents: list[str], pos: int) -> None:
        self.name, self.idents, self.pos = name, idents, pos

    def __str__(self) -> str:
        return self.name + "".join("." + i for i in self.idents)


class Identifier(Node):
    def __init__(self, name: str, pos: int) -> None:
        self.name, self.pos = name, pos

    def __str__(self) -> str:
        return self.name


class Chain(Node):
    def __init__(self, node: Node, fields: list[str], pos: int) -> None:
        self.node, self.fields, self.pos = node, fields, pos

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


class Command(Node):
    def __init__(self, args: list[Node], pos: int) -> None:
        self.args, self.pos = args, pos

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


class Pipe(Node):
    def __init__(self, decl: list[str], assign: bool, cmds: list[Command], pos: int, line: int) -> None:
        self.decl, self.assign, self.cmds, self.pos, self.line = decl, assign, cmds, pos, line

    def __str__(self) -> str:
        s = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.assign else " := ") + s
        return s


class Action(Node):
    def __init__(self, pipe: Pipe, pos: int, line: int) -> None:
        self.pipe, self.pos, self.line = pipe, pos, line

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class Branch(Node):
    """``if``, ``range`` and ``with``: a pipeline, a body and an optional ``else`` body."""

    def __init__(self, kind: str, pipe: Pipe, body: list[Node], other: list[Node] | None,
                 pos: int, line: int) -> None:
        self.kind, self.pipe, self.body, self.other, self.pos, self.line = kind, pipe, body, other, pos, line

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


class Include(Node):
    def __init__(self, name: str, pipe: Pipe | None, pos: int, line: int) -> None:
        self.name, self.pipe, self.pos, self.line = name, pipe, pos, line

    def __str__(self) -> str:
        return "{{template " + _quote(self.name) + (" " + str(self.pipe) if self.pipe else "") + "}}"


class Loop(Node):
    def __init__(self, kind: str, pos: int, line: int) -> None:
        self.kind, self.pos, self.line = kind, pos, line

    def __str__(self) -> str:
        return "{{" + self.kind + "}}"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "0": "\0"}


def _unquote(src: str, line: int) -> str:
    body = src[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        else:
            raise _perr(line, f"invalid syntax: {src}")
    return "".join(out)


def _number(src: str, line: int) -> int | float:
    s = src.replace("_", "")
    try:
        for form, base in _INT_FORMS:
            if form.fullmatch(s) and (base != 8 or len(s.lstrip("+-")) > 1):
                return int(s.replace("o", "").replace("O", "") if base == 8 else s, base)
        value = float(s)
        return int(value) if value.is_integer() and "e" not in s.lower() and "." not in s else value
    except ValueError:
        raise _perr(line, f"bad number syntax: {src!r}") from None


class Parser:
    def __init__(self, text: str, funcs: Mapping[str, Any]) -> None:
        self.toks = lex(text)
        self.i = 0
        self.funcs = funcs
        self.defines: dict[str, list[Node]] = {}
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    # token helpers; spaces matter only between the operands of a command
    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def peek_ns(self) -> Tok:
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def next_ns(self) -> Tok:
        tok = self.peek_ns()
        self.i += 1
        return tok

    def expect(self, kind: str, context: str) -> Tok:
        tok = self.next_ns()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Tok, context: str) -> None:
        if tok.kind == "eof":
            raise _perr(tok.line, "unexpected EOF")
        shown = "}}" if tok.kind == "}}" else tok.val
        raise _perr(tok.line, f"unexpected {_quote(shown) if tok.kind not in ('keyword',) else '<' + shown + '>'}"
                    f" in {context}")

    # list := (text | action)*
    def parse(self) -> list[Node]:
        nodes, end = self.item_list(top=True)
        return nodes

    def item_list(self, top: bool = False) -> tuple[list[Node], str]:
        nodes: list[Node] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                if top:
                    return nodes, "eof"
                raise _perr(tok.line, "unexpected EOF")
            if tok.kind == "text":
                nodes.append(Text(tok.val))
                continue
            # "{{"
            kw = self.peek_ns()
            if kw.kind == "keyword" and kw.val in ("end", "else"):
                if top:
                    raise _perr(kw.line, "unexpected {{" + kw.val + "}}")
                self.next_ns()
                if kw.val == "end":
                    self.expect("}}", "end")
                return nodes, kw.val
            node = self.action(tok)
            if node is not None:
                nodes.append(node)

    def action(self, open_tok: Tok) -> Node | None:
        tok = self.peek_ns()
        if tok.kind == "keyword":
            self.next_ns()
            kw = tok.val
            if kw in ("if", "range", "with"):
                return self.branch(kw, tok)
            if kw == "template":
                return self.template(tok)
            if kw == "define":
                self.define(tok)
                return None
            if kw == "block":
                return self.block(tok)
            if kw in ("break", "continue"):
                if not self.range_depth:
                    raise _perr(tok.line, "{{" + kw + "}} outside {{range}}")
                self.expect("}}", kw)
                return Loop(kw, tok.pos, tok.line)
        pipe = self.pipeline("command", "}}")
        return Action(pipe, tok.pos, tok.line)

    def branch(self, kind: str, tok: Tok) -> Branch:
        saved = len(self.vars)
        pipe = self.pipeline(kind, "}}", range_decl=(kind == "range"))
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        other: list[Node] | None = None
        if end == "else":
            nxt = self.peek_ns()
            if kind == "if" and nxt.kind == "keyword" and nxt.val == "if":  # Go 1.23's "else with": not in docker 20.10
                # "{{else if ...}}" is "{{else}}{{if ...}}...{{end}}" sharing this end
                self.next_ns()
                other = [self.branch(kind, nxt)]
            else:
                self.expect("}}", "else")
                other, end = self.item_list()
                if end != "end":
                    raise _perr(self.peek().line, "expected end; found {{else}}")
        del self.vars[saved:]
        return Branch(kind, pipe, body, other, tok.pos, tok.line)

    def template(self, tok: Tok) -> Include:
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            self.unexpected(name_tok, "template clause")
        name = _unquote(name_tok.val, name_tok.line)
        pipe = None
        if self.peek_ns().kind != "}}":
            pipe = self.pipeline("template clause", "}}")
        else:
            self.next_ns()
        return Include(name, pipe, name_tok.pos, tok.line)

    def define(self, tok: Tok) -> None:
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            self.unexpected(name_tok, "define clause")
        self.expect("}}", "define clause")
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if end != "end":
            raise _perr(tok.line, "unexpected {{else}}")
        self.defines[_unquote(name_tok.val, name_tok.line)] = body

    def block(self, tok: Tok) -> Include:
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            self.unexpected(name_tok, "block clause")
        name = _unquote(name_tok.val, name_tok.line)
        pipe = self.pipeline("block clause", "}}")
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        self.defines[name] = body
        return Include(name, pipe, name_tok.pos, tok.line)

    def pipeline(self, context: str, end: str, range_decl: bool = False) -> Pipe:
        start = self.peek_ns()
        decl: list[str] = []
        assign = False
        # declarations: $x := / $x = / $i, $e :=
        save = self.i
        tok = self.peek_ns()
        if tok.kind == "variable":
            self.next_ns()
            nxt = self.peek_ns()
            if nxt.kind in (":=", "="):
                self.next_ns()
                decl, assign = [tok.val], nxt.kind == "="
            elif nxt.kind == "," and range_decl:
                self.next_ns()
                second = self.next_ns()
                if second.kind != "variable":
                    raise _perr(second.line, "range can only initialize variables")
                op = self.next_ns()
                if op.kind not in (":=", "="):
                    raise _perr(op.line, "expected := or = in range")
                decl, assign = [tok.val, second.val], op.kind == "="
            else:
                self.i = save
        for name in decl if assign else ():
            if name not in self.vars:
                raise _perr(tok.line, f"undefined variable {_quote(name)}")
        cmds: list[Command] = []
        while True:
            tok = self.peek_ns()
            if tok.kind == end:
                self.next_ns()
                break
            if tok.kind == "eof":
                raise _perr(tok.line, "unclosed action")
            cmds.append(self.command(context, end))
            tok = self.peek_ns()
            if tok.kind == "|":
                self.next_ns()
                if self.peek_ns().kind in (end, "eof"):
                    raise _perr(tok.line, "missing command in pipeline")  # Go: "missing command"
                continue
        if not cmds:
            raise _perr(start.line, f"missing value for {context}")
        for i, cmd in enumerate(cmds[1:], 1):
            if isinstance(cmd.args[0], (Literal, Dot)):  # nothing to pass the piped value to
                raise _perr(start.line, f"non executable command in pipeline stage {i + 1}")
        if decl and not assign:
            self.vars.extend(decl)
        return Pipe(decl, assign, cmds, start.pos, start.line)

    def command(self, context: str, end: str) -> Command:
        args: list[Node] = []
        first = self.peek_ns()
        while True:
            tok = self.peek_ns()
            if tok.kind in (end, "|", "eof"):
                break
            if tok.kind == ")" and end != ")":
                raise _perr(tok.line, "unexpected right paren")
            operand = self.operand()
            args.append(operand)
            nxt = self.peek()
            if nxt.kind == "space":
                continue
            if nxt.kind not in (end, "|", ")", "eof", "}}"):
                raise _perr(nxt.line, f"unexpected {_quote(nxt.val)} in operand")
        if not args:
            raise _perr(first.line, "empty command")
        return Command(args, first.pos)

    def operand(self) -> Node:
        node = self.term()
        if self.peek().kind == "field":
            chain_pos = self.peek().pos
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, Field):
                return Field(node.idents + fields, chain_pos)
            if isinstance(node, Variable):
                return Variable(node.name, node.idents + fields, chain_pos)
            if isinstance(node, (Literal,)) or isinstance(node, Dot):
                raise _perr(self.peek().line, f"unexpected . after term {_quote(str(node))}")
            return Chain(node, fields, chain_pos)
        return node

    def term(self) -> Node:
        tok = self.next_ns()
        k = tok.kind
        if k == "identifier":
            if tok.val not in self.funcs:
                raise _perr(tok.line, f"function {_quote(tok.val)} not defined")
            return Identifier(tok.val, tok.pos)
        if k == "dot":
            return Dot(tok.pos)
        if k == "nil":
            return Literal(None, "nil", tok.pos)
        if k == "variable":
            name, _, rest = tok.val.partition(".")
            if name not in self.vars:
                raise _perr(tok.line, f"undefined variable {_quote(name)}")
            return Variable(name, [], tok.pos)
        if k == "field":
            return Field([tok.val[1:]], tok.pos)
        if k == "bool":
            return Literal(tok.val == "true", tok.val, tok.pos)
        if k == "number":
            return Literal(_number(tok.val, tok.line), tok.val, tok.pos)
        if k == "char":
            return Literal(ord(_unquote(tok.val, tok.line)), tok.val, tok.pos)
        if k == "string":
            return Literal(_unquote(tok.val, tok.line), tok.val, tok.pos)
        if k == "rawstring":
            return Literal(tok.val[1:-1], tok.val, tok.pos)
        if k == "(":
            pipe = self.pipeline("parenthesized pipeline", ")")
            return pipe
        self.unexpected(tok, "operand")
        raise AssertionError("unreachable")


# ---- functions ---------------------------------------------------------------------------


class _Fail(Exception):
    """A builtin's error, reported as ``error calling NAME: MSG``."""


class _ArgError(Exception):
    """An argument of the wrong Go type, reported at the argument."""

    def __init__(self, value: Any, want: str) -> None:
        super().__init__(want)
        self.value, self.want = value, want


def _want_str(v: Any) -> str:
    if not isinstance(v, str) or isinstance(v, JsonNumber):
        raise _ArgError(v, "string")
    return v


def _want_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _ArgError(v, "int")
    return v


def _want_strs(v: Any) -> list[str]:
    if not (isinstance(v, (list, tuple)) and not isinstance(v, RawList) and all(isinstance(x, str) for x in v)):
        raise _ArgError(v, "[]string")
    return list(v)


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is MISSING:
        return "nil"
    return "other"


def _eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise _Fail("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for a in args:
        k2 = _basic_kind(a)
        if k1 == "other" or k2 == "other":
            if k1 == k2 and not isinstance(arg1, (list, dict, tuple)):
                if arg1 == a:
                    return True
                continue
            raise _Fail("non-comparable type" if k1 == "other" else "incompatible types for comparison")
        if k1 == "nil" or k2 == "nil":
            if k1 == k2:
                return True
            raise _Fail("incompatible types for comparison")
        if k1 != k2:
            raise _Fail("incompatible types for comparison")
        if arg1 == a:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "nil", "other") or kb in ("bool", "nil", "other"):
        raise _Fail("invalid type for comparison")
    if ka != kb:
        raise _Fail("incompatible types for comparison")
    return a < b


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise _Fail(f"len of type {go_type(v)}")


def _index(item: Any, *keys: Any) -> Any:
    if item is None or item is MISSING:
        raise _Fail("index of untyped nil")
    for key in keys:
        if isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise _Fail(f"cannot index slice/array with type {go_type(key)}")
            if not 0 <= key <= len(item):  # Go checks > len, then reflect panics at len
                raise _Fail(f"index out of range: {key}")
            if key == len(item):
                raise _Fail("reflect: " + ("string" if isinstance(item, str) else "slice") + " index out of range")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif isinstance(item, Mapping):
            if not isinstance(key, str) and all(isinstance(k, str) for k in item):
                raise _Fail(f"value has type {go_type(key)}; should be string")
            if key not in item:
                # the zero value: "" in a map of strings, nil in any other map
                item = "" if all(isinstance(v, str) for v in item.values()) else None
            else:
                item = item[key]
        elif item is None:
            raise _Fail("index of nil pointer")
        else:
            raise _Fail(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _Fail(f"can't slice item of type {go_type(item)}")
    if len(idx) > 3 or (isinstance(item, str) and len(idx) > 2):
        raise _Fail(f"too many slice indexes: {len(idx)}")
    n = len(item)
    bounds = [int(i) for i in idx]
    for b in bounds:
        if not 0 <= b <= n:
            raise _Fail(f"index out of range: {b}")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else n
    if start > end:
        raise _Fail(f"invalid slice index: {start} > {end}")
    return item[start:end]


def _title(s: str) -> str:
    """strings.Title: upper-case each letter that follows a separator (not letter, digit, _)."""
    out, prev = [], " "
    for c in _want_str(s):
        sep = not (prev.isalnum() or prev == "_")
        out.append(c.upper() if sep else c)
        prev = c
    return "".join(out)


def _split(s: Any, sep: Any) -> list[str]:
    s, sep = _want_str(s), _want_str(sep)
    if sep == "":
        return list(s)
    return s.split(sep)


def _truncate(s: Any, n: Any) -> str:
    s, n = _want_str(s), _want_int(n)
    return s if len(s) < n else s[:n]


def _html(*args: Any) -> str:
    s = _sprint(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\uFFFD"))


def _js(*args: Any) -> str:
    s = _sprint(args)
    out = []
    for c in s:
        if c in "\\'\"":
            out.append("\\" + c)
        elif c == "<":
            out.append("\\u003C")
        elif c == ">":
            out.append("\\u003E")
        elif c == "&":
            out.append("\\u0026")
        elif c == "=":
            out.append("\\u003D")
        elif ord(c) < 0x20:
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_sprint(args), safe="-_.~")


def _sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_value(a))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?(?:\[(\d+)\])?([a-zA-Z%])")


def sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %s %v %d %q %x %X %o %b %c %t %f %e %g %T %%."""
    out, pos, ai, reordered = [], 0, 0, False
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, argnum, verb = m.groups()
        if argnum:  # %[2]s: an explicit argument index
            ai, reordered = int(argnum) - 1, True
        if verb == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(args[ai]) if ai < len(args) else "0"
            ai += 1
        if prec == "*":
            prec = str(args[ai]) if ai < len(args) else "0"
            ai += 1
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[ai]
        ai += 1
        text = _format_one(verb, flags, prec, arg)
        if width:
            w = int(width)
            if "-" in flags:
                text = text.ljust(w)
            elif "0" in flags and verb in "dxXobfeEgG" and not isinstance(arg, str):
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign):].rjust(w - len(sign), "0")
            else:
                text = text.rjust(w)
        out.append(text)
    out.append(fmt[pos:])
    if ai < len(args) and not reordered:
        out.append("%!(EXTRA " + ", ".join(f"{go_type(a)}={go_value(a)}" for a in args[ai:]) + ")")
    return "".join(out)


def _format_one(verb: str, flags: str, prec: str | None, arg: Any) -> str:
    kind = _basic_kind(arg)
    bad = f"%!{verb}({go_type(arg)}={go_value(arg)})"
    if verb == "T":
        return go_type(arg)
    if arg is None and verb != "v":
        return f"%!{verb}(<nil>)"
    if verb != "v" and isinstance(arg, (list, tuple)):  # fmt applies the verb to each element
        return "[" + " ".join(_format_one(verb, flags, prec, a) for a in arg) + "]"
    if verb != "v" and isinstance(arg, Mapping) and not is_struct(arg):
        return "map[" + " ".join(f"{_format_one(verb, flags, prec, k)}:{_format_one(verb, flags, prec, v)}"
                                 for k, v in _sorted_items(arg)) + "]"
    if verb == "U":
        return f"U+{arg:04X}" if kind == "int" else bad
    if verb == "v":
        if "#" in flags and isinstance(arg, str):
            return _go_quote(arg)
        return go_value(arg)
    if verb == "s":
        if kind in ("int", "float", "bool"):
            return bad
        s = go_value(arg)
        return s[: int(prec)] if prec is not None else s
    if verb == "q":
        if kind == "string":
            return _go_quote(arg)
        if kind == "int":
            return "'" + _go_quote(chr(arg))[1:-1].replace("\\\"", '"').replace("'", "\\'") + "'"
        return bad
    if verb == "t":
        return go_value(arg) if kind == "bool" else bad
    if verb in "dxXobc":
        if kind == "string" and verb in "xX":
            h = arg.encode().hex()
            return h.upper() if verb == "X" else h
        if kind != "int":
            return bad
        sign = "+" if "+" in flags and arg >= 0 else (" " if " " in flags and arg >= 0 else "")
        if verb == "c":
            return chr(arg)
        base = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        body = format(abs(arg), base)
        if "#" in flags and verb in "xX":
            body = ("0x" if verb == "x" else "0X") + body
        return ("-" if arg < 0 else sign) + body
    if verb in "feEgG":
        if kind not in ("float", "int"):
            return bad
        if kind == "int":
            return bad
        p = int(prec) if prec is not None else (6 if verb in "feE" else -1)
        sign = "+" if "+" in flags and arg >= 0 else ""
        if verb in "gG" and p < 0:
            text = sign + go_float(arg)
            return text.upper() if verb == "G" else text
        return sign + format(arg, f".{p}{verb}")
    return f"%!{verb}({go_type(arg)}={go_value(arg)})"


def _go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7f:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _not(v: Any) -> bool:
    return not truth(v)


def _pad(s: Any, left: Any, right: Any) -> str:
    return " " * _want_int(left) + _want_str(s) + " " * _want_int(right)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's builtins (and/or are special forms: they short-circuit)
    "and": lambda *a: a, "or": lambda *a: a, "not": _not, "len": _len, "index": _index, "slice": _slice,
    "print": lambda *a: _sprint(a), "println": lambda *a: " ".join(go_value(x) for x in a) + "\n",
    "printf": lambda f, *a: sprintf(_want_str(f), *a),
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "lt": _lt, "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_lt(a, b) or _eq(a, b)), "ge": lambda a, b: not _lt(a, b),
    "html": _html, "js": _js, "urlquery": _urlquery,
    # Docker's (cli/templates.basicFunctions)
    "json": go_json, "join": lambda items, sep: (lambda i: _want_str(sep).join(i))(_want_strs(items)),
    "split": _split, "title": _title, "lower": lambda s: _want_str(s).lower(),
    "upper": lambda s: _want_str(s).upper(), "pad": _pad, "truncate": _truncate,
}

# Docker's HeaderFunctions: a table header runs the template with these, each giving back
# its (header string) argument.
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v, "title": lambda v: v,
    "lower": lambda v: v, "upper": lambda v: v, "pad": lambda v, _l, _r: v, "truncate": lambda v, _n: v,
}

# ---- execution ----------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(Exception):
    def __init__(self, node: Node, msg: str) -> None:
        super().__init__(msg)
        self.node, self.msg = node, msg


class GoTemplate:
    """A parsed template. ``strict``: a missing key in a dict is an error naming
    ``type_name`` (Docker's typed contexts) rather than Go's map behaviour;
    ``nil``: how a null field prints, by the field's last name (Docker's nil slices
    print ``[]``, nil maps ``map[]``)."""

    def __init__(self, text: str, strict: bool = False, type_name: str = "",
                 nil: Mapping[str, str] | None = None, funcs: Mapping[str, Callable[..., Any]] | None = None
                 ) -> None:
        self.text = text
        self.strict = strict
        self.type_name = type_name
        self.nil = dict(nil or {})
        self.funcs = dict(FUNCTIONS)
        if funcs:
            self.funcs.update(funcs)
        parser = Parser(text, self.funcs)
        self.root = parser.parse()
        self.defines = parser.defines

    def fields_used(self) -> set[str]:
        """The top-level field names the template reads from dot (``.Size`` -> ``Size``)."""
        found: set[str] = set()

        def walk(obj: Any) -> None:
            if isinstance(obj, Field):
                found.add(obj.idents[0])
            elif isinstance(obj, list):
                for x in obj:
                    walk(x)
            elif isinstance(obj, Node):
                for v in vars(obj).values():
                    if isinstance(v, (Node, list)):
                        walk(v)

        walk(self.root)
        for body in self.defines.values():
            walk(body)
        return found

    def execute(self, data: Any, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        self.execute_into(out, data, funcs)
        return "".join(out)

    def execute_into(self, out: list[str], data: Any, funcs: Mapping[str, Callable[..., Any]] | None = None,
                     strict: bool | None = None) -> None:
        """Run the template, appending to ``out`` (which keeps what was written before an error)."""
        strict = self.strict if strict is None else strict
        all_funcs = {**self.funcs, **(funcs or {})}
        mark = len(out)
        try:
            _State(self, out, data, all_funcs, strict).walk_list(self.root, data)
            return
        except _ExecError as e:
            error = e
        except RecursionError:
            raise TemplateError("template: exceeded maximum template depth") from None
        if not strict:
            # docker inspect runs the template on its typed struct, and when that fails, on the
            # JSON decoded into maps with missingkey=error: that run's output or error is shown
            raw: list[str] = []
            try:
                _State(self, raw, data, all_funcs, strict, raw=True).walk_list(self.root, data)
                del out[mark:]
                out.extend(raw)
                return
            except _ExecError as e:
                error = e
            except RecursionError:
                raise TemplateError("template: exceeded maximum template depth") from None
        raise TemplateError(f"template: {self._where(error.node)}: executing \"\" at <{error.node}>: {error.msg}")

    def _where(self, node: Node) -> str:
        pos = node.pos
        before = self.text[:pos]
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - (nl + 1)
        return f":{1 + before.count(chr(10))}:{col}"


class _State:
    def __init__(self, tmpl: GoTemplate, out: list[str], root: Any, funcs: Mapping[str, Callable[..., Any]],
                 strict: bool, raw: bool = False) -> None:
        self.tmpl, self.out, self.funcs, self.strict, self.raw = tmpl, out, funcs, strict, raw
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.depth = 0

    def lookup(self, name: str, node: Node) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise _ExecError(node, f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return

    def walk_list(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            self.walk(node, dot)

    def walk(self, node: Node, dot: Any) -> None:
        if isinstance(node, Text):
            self.out.append(node.text)
        elif isinstance(node, Action):
            mark = len(self.vars)
            value = self.pipe(node.pipe, dot)
            if not node.pipe.decl:
                self.out.append(self.printable(value, node.pipe, node))
            if not node.pipe.decl or node.pipe.assign:
                del self.vars[mark:]
        elif isinstance(node, Branch):
            self.branch(node, dot)
        elif isinstance(node, Include):
            body = self.tmpl.defines.get(node.name)
            if body is None:
                raise _ExecError(node, f"template {_quote(node.name)} not defined")
            new_dot = self.pipe(node.pipe, dot) if node.pipe else MISSING
            self.depth += 1
            if self.depth > 10000:
                raise _ExecError(node, "exceeded maximum template depth (100000)")
            saved, self.vars = self.vars, [("$", new_dot)]
            try:
                self.walk_list(body, new_dot)
            finally:
                self.vars = saved
                self.depth -= 1
        elif isinstance(node, Loop):
            raise _Break() if node.kind == "break" else _Continue()

    def printable(self, value: Any, pipe: Pipe, node: Node) -> str:
        if value is None:
            last = pipe.cmds[-1].args
            if len(last) == 1 and isinstance(last[0], (Field, Variable)) and getattr(last[0], "idents", None):
                name = last[0].idents[-1]
                # a nil map of Docker's typed structs prints as an empty one
                default = "map[]" if name in MAP_FIELDS else "[]" if name in SLICE_FIELDS else "<nil>"
                return self.tmpl.nil.get(name, default)
            return "<nil>"
        if callable(value):
            raise _ExecError(node, "can't print value of type func")
        return go_value(value)

    def branch(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipe(node.pipe, dot)
            if node.kind == "if":
                if truth(value):
                    self.walk_list(node.body, dot)
                elif node.other is not None:
                    self.walk_list(node.other, dot)
            elif node.kind == "with":
                if truth(value):
                    self.walk_list(node.body, value)
                elif node.other is not None:
                    self.walk_list(node.other, dot)
            else:
                self.range(node, value, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Branch, value: Any, dot: Any) -> None:
        if isinstance(value, Mapping):
            items: Iterator[tuple[Any, Any]] | list = [(k, v) for k, v in _sorted_items(value) if not callable(v)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif value is None or value is MISSING:
            items = []
        else:
            raise _ExecError(node.pipe.cmds[-1].args[-1] if node.pipe.cmds else node,
                             f"range can't iterate over {go_value(value)}")
        if not items:
            if node.other is not None:
                self.walk_list(node.other, dot)
            return
        decl = node.pipe.decl
        for key, elem in items:
            mark = len(self.vars)
            if len(decl) == 1:
                self._bind(decl[0], elem, node.pipe.assign)
            elif len(decl) == 2:
                self._bind(decl[0], key, node.pipe.assign)
                self._bind(decl[1], elem, node.pipe.assign)
            try:
                self.walk_list(node.body, elem)
            except _Break:
                del self.vars[mark:]
                break
            except _Continue:
                pass
            if not node.pipe.assign:
                del self.vars[mark:]

    def _bind(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            self.set_var(name, value)
        else:
            self.vars.append((name, value))

    def pipe(self, pipe: Pipe, dot: Any) -> Any:
        value: Any = MISSING
        final = False
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value if final else _NOFINAL)
            final = True
        for name in pipe.decl[:1] if len(pipe.decl) == 1 or not pipe.decl else []:
            if pipe.assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, cmd: Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field):
            return self.field_chain(dot, first.idents, cmd.args, final, first)
        if isinstance(first, Chain):
            base = self.arg_value(first.node, dot)
            return self.field_chain(base, first.fields, cmd.args, final, first)
        if isinstance(first, Identifier):
            return self.call(first, cmd, dot, final)
        if isinstance(first, Variable):
            value = self.lookup(first.name, first)
            if first.idents:
                return self.field_chain(value, first.idents, cmd.args, final, first)
            self.no_args(cmd, first, final)
            return value
        if isinstance(first, Pipe):
            self.no_args(cmd, first, final)
            return self.pipe(first, dot)
        self.no_args(cmd, first, final)
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Literal):
            return first.value
        raise _ExecError(first, "can't evaluate command")

    def no_args(self, cmd: Command, node: Node, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _NOFINAL:
            raise _ExecError(node, f"can't give argument to non-function {node}")

    def arg_value(self, node: Node, dot: Any) -> Any:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Field):
            return self.field_chain(dot, node.idents, [node], _NOFINAL, node)
        if isinstance(node, Variable):
            value = self.lookup(node.name, node)
            return self.field_chain(value, node.idents, [node], _NOFINAL, node) if node.idents else value
        if isinstance(node, Chain):
            return self.field_chain(self.arg_value(node.node, dot), node.fields, [node], _NOFINAL, node)
        if isinstance(node, Pipe):
            mark = len(self.vars)
            try:
                return self.pipe(node, dot)
            finally:
                del self.vars[mark:]
        if isinstance(node, Identifier):
            return self.call(node, Command([node], node.pos), dot, _NOFINAL)
        raise _ExecError(node, "can't handle argument")

    def field_chain(self, receiver: Any, idents: list[str], args: list[Node], final: Any, node: Node) -> Any:
        value = receiver
        for i, name in enumerate(idents):
            last = i == len(idents) - 1
            call_args = args[1:] if last else []
            value = self.field(value, name, call_args, final if last else _NOFINAL, node, dot_for_args=receiver,
                               via=idents[i - 1] if i else None, last=last,
                               from_data=i > 0 or not isinstance(node, Chain))
        return value

    def field(self, recv: Any, name: str, args: list[Node], final: Any, node: Node, dot_for_args: Any,
              via: str | None, last: bool = True, from_data: bool = False) -> Any:
        has_args = bool(args) or final is not _NOFINAL
        if self.raw:
            return self.raw_field(recv, name, has_args, node, from_data)
        if recv is MISSING:
            raise _ExecError(node, f"map has no entry for key {_quote(via or name)}")
        if isinstance(recv, Mapping):
            if name in recv:
                value = recv[name]
                if callable(value):
                    argv = [self.arg_value(a, dot_for_args) for a in args]
                    if final is not _NOFINAL:
                        argv.append(final)
                    return self.invoke(value, name, argv, node, method=True, arg_nodes=args)
                if has_args:
                    if self.strict:
                        n = len(args) + (final is not _NOFINAL)
                        raise _ExecError(node, f"wrong number of args for {name}: want 0 got {n}")
                    raise _ExecError(node, f"{name} is not a method but has arguments")
                if value is None and not self.strict:  # Docker's typed struct: a nil map or slice
                    if name in MAP_FIELDS:
                        return NilMap()
                    if name in SLICE_FIELDS:
                        return NilList()
                return value
            if self.strict and recv is dot_for_args and via is None:
                raise _ExecError(node, f"can't evaluate field {name} in type {self.tmpl.type_name}")
            if self.strict:
                raise _ExecError(node, f"can't evaluate field {name} in type {go_type(recv)}")
            if has_args:
                raise _ExecError(node, f"{name} is not a method but has arguments")
            if isinstance(recv, GoMap):
                return MISSING
            if (via is None and recv is self.vars[0][1]) or (is_struct(recv) and via not in MAP_FIELDS):
                if last and name in ZERO_FIELDS and is_struct(recv):
                    return ZERO_FIELDS[name]
                raise _ExecError(node, f"map has no entry for key {_quote(name)}")
            return MISSING
        if recv is None:
            raise _ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
        raise _ExecError(node, f"can't evaluate field {name} in type {go_type(recv)}")

    def raw_field(self, recv: Any, name: str, has_args: bool, node: Node, from_data: bool) -> Any:
        """A field in the raw fallback: maps of interface {} values, missingkey=error."""
        if isinstance(recv, Mapping):
            if has_args:
                raise _ExecError(node, f"{name} is not a method but has arguments")
            if name not in recv:
                raise _ExecError(node, f"map has no entry for key {_quote(name)}")
            return _raw(recv[name])
        if recv is None or recv is MISSING:
            raise _ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
        typ = "interface {}" if from_data else go_type(recv)
        raise _ExecError(node, f"can't evaluate field {name} in type {typ}")

    def call(self, ident: Identifier, cmd: Command, dot: Any, final: Any) -> Any:
        name = ident.name
        fn = self.funcs[name]
        if name in ("and", "or"):
            args = cmd.args[1:]
            if not args and final is _NOFINAL:
                raise _ExecError(ident, f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for a in args:
                value = self.arg_value(a, dot)
                if truth(value) == (name == "or"):
                    return value
            if final is not _NOFINAL:
                value = final
            return value
        argv = [self.arg_value(a, dot) for a in cmd.args[1:]]
        if final is not _NOFINAL:
            argv.append(final)
        argv = [None if a is MISSING else a for a in argv]  # Go passes the zero value: nil
        return self.invoke(fn, name, argv, cmd, method=False, arg_nodes=cmd.args[1:], ident=ident)

    def invoke(self, fn: Callable[..., Any], name: str, argv: list[Any], node: Node, method: bool,
               arg_nodes: Sequence[Node] = (), ident: Node | None = None) -> Any:
        arity = _arity(fn)
        if arity is not None:
            fixed, variadic = arity
            if (variadic and len(argv) < fixed) or (not variadic and len(argv) != fixed):
                want = f"at least {fixed}" if variadic else str(fixed)
                raise _ExecError(ident or node, f"wrong number of args for {name}: want {want} got {len(argv)}")
        try:
            return fn(*argv)
        except _ArgError as e:
            at = node
            nodes = list(arg_nodes or [])
            for i, value in enumerate(argv):
                if value is e.value and i < len(nodes):
                    at = nodes[i]
                    break
            if isinstance(at, Literal):  # Go's evalArg: a constant that does not fit the parameter
                if e.want == "[]string":
                    raise _ExecError(at, f"can't handle {at} for arg of type []string") from None
                found = "integer" if e.want == "int" else e.want
                raise _ExecError(at, f"expected {found}; found {at}") from None
            raise _ExecError(at, f"wrong type for value; expected {e.want}; got {go_type(e.value)}") from None
        except _Fail as e:
            raise _ExecError(node, f"error calling {name}: {e}") from None
        except TemplateError:
            raise
        except Exception as e:  # noqa: BLE001 - a row method or builtin refusing the template's arguments
            raise _ExecError(node, f"error calling {name}: {e}") from None


_NOFINAL = object()  # "no value piped in", distinct from a piped None
_CO_VARARGS = 0x04


def _arity(fn: Callable[..., Any]) -> tuple[int, bool] | None:
    """How many arguments a template may pass ``fn`` (and whether more may follow), from its
    code object: parameters with defaults are a closure's captures, not the template's."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    defaults = len(getattr(fn, "__defaults__", None) or ())
    return code.co_argcount - defaults, bool(code.co_flags & _CO_VARARGS)


def parse(text: str, **kw: Any) -> GoTemplate:
    return GoTemplate(text, **kw)
