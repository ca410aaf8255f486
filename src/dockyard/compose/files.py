"""Compose files: discovery as Docker Compose v2, YAML with line numbers, .env files,
the project name.

YAML is read as Go's yaml.v3 reads it into compose-go: YAML 1.2 booleans only
(`yes`/`on` stay strings), duplicate keys refused, `<<` merge keys applied, and the
`!reset` / `!override` tags of the merge rules recorded by path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dockyard.compose.errors import ComposeError, Path, format_path

CANDIDATES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}
STDIN = "-"


@dataclass
class YamlDoc:
    """One parsed compose file: its data, the line of each path, the !reset/!override paths."""

    filename: str
    data: dict[str, Any]
    marks: dict[Path, int] = field(default_factory=dict)
    resets: list[Path] = field(default_factory=list)
    overrides: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- discovery

def find_default_files(start: str) -> list[str]:
    """The compose file of start or its nearest parent, plus its override file beside it."""
    directory = os.path.abspath(start)
    while True:
        for name in CANDIDATES:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                files = [candidate]
                for override in OVERRIDES[name]:
                    path = os.path.join(directory, override)
                    if os.path.isfile(path):
                        files.append(path)
                        break
                return files
        parent = os.path.dirname(directory)
        if parent == directory:
            raise ComposeError("no configuration file provided: not found")
        directory = parent


def resolve_files(files: list[str], environ: Mapping[str, str], cwd: str, start: str | None = None) -> list[str]:
    """The files to load: -f (in order, relative to cwd), else COMPOSE_FILE, else discovery
    upward from start (the project directory when given, else cwd)."""
    if not files and environ.get("COMPOSE_FILE"):
        separator = environ.get("COMPOSE_PATH_SEPARATOR") or ":"
        files = [f for f in environ["COMPOSE_FILE"].split(separator) if f]
    if not files:
        return find_default_files(start or cwd)
    out = []
    for name in files:
        if name == STDIN:
            out.append(STDIN)
            continue
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(name)))
        if not os.path.exists(path):
            raise ComposeError(f"open {path}: no such file or directory")
        out.append(path)
    return out


_NAME_CHARS = re.compile(r"[a-z0-9_-]")


def normalize_project_name(name: str) -> str:
    """Docker Compose v2's NormalizeProjectName: lowercase, keep [a-z0-9_-], no leading _ or -."""
    return "".join(_NAME_CHARS.findall(name.lower())).lstrip("_-")


def check_project_name(name: str) -> str:
    if not name or normalize_project_name(name) != name:
        raise ComposeError(
            f'invalid project name "{name}": must consist only of lowercase alphanumeric '
            "characters, hyphens, and underscores as well as start with a letter or number"
        )
    return name


# --------------------------------------------------------------------------- YAML

_BOOL_WORDS = {"true": True, "false": False}
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+")


def load_yaml(text: str, filename: str) -> YamlDoc:
    """Parse one compose file; every mapping and sequence node's line is kept by path."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        nodes = list(yaml.compose_all(text, Loader=loader_cls))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ComposeError(f"failed to parse {filename}{line}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"failed to parse {filename}: {exc}") from None
    doc = YamlDoc(filename, {})
    builder = _Builder(doc, yaml)
    for node in nodes:
        if node is None:
            continue
        value = builder.build(node, ())
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ComposeError(f"{filename}:{node.start_mark.line + 1}: top-level object must be a mapping")
        # several documents in one file are merged in order, as compose-go does
        doc.data.update(value)
    return doc


class _Builder:
    """yaml nodes -> plain Python values, recording marks and merge-rule tags."""

    def __init__(self, doc: YamlDoc, yaml: Any) -> None:
        self.doc = doc
        self.yaml = yaml
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: Any, path: Path) -> Any:
        yaml = self.yaml
        self.doc.marks.setdefault(path, node.start_mark.line + 1)
        if node.tag == "!reset":
            self.doc.resets.append(path)
        elif node.tag == "!override":
            self.doc.overrides.append(path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag in ("!reset", "!override"):
            tag = self.yaml.resolver.Resolver().resolve(self.yaml.ScalarNode, node.value, (True, False))
            if node.value == "":
                return None
        if tag == "tag:yaml.org,2002:bool":
            # YAML 1.2 (Go's yaml.v3): only true/false are booleans, yes/no/on/off are strings
            lowered = node.value.lower()
            return _BOOL_WORDS[lowered] if lowered in _BOOL_WORDS else node.value
        if tag == "tag:yaml.org,2002:int":
            text = node.value.replace("_", "")
            if re.fullmatch(r"[-+]?0[0-7]+", text):  # yaml.v3 parses with base 0: 0400 is octal
                return int(text, 8)
            return self.constructor.construct_yaml_int(node)
        if tag == "tag:yaml.org,2002:float":
            return self.constructor.construct_yaml_float(node)
        if tag == "tag:yaml.org,2002:null":
            return None
        if not node.style and re.fullmatch(r"0o[0-7]+", node.value):
            return int(node.value[2:], 8)  # YAML 1.2 octal
        if not node.style and _YAML12_FLOAT.fullmatch(node.value):
            return float(node.value)  # YAML 1.2 floats PyYAML's 1.1 resolver misses (1e3)
        return node.value

    def _mapping(self, node: Any, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for source in self._merge_sources(value_node, path):
                    for key, value in source.items():
                        merged.setdefault(key, value)
                continue
            key = self._scalar(key_node)
            key = _key_text(key)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ComposeError(
                    f"{self.doc.filename}:{line}: {format_path(path) or '(top level)'}: "
                    f'mapping key "{key}" already defined at line {seen[key]}'
                )
            seen[key] = line
            child = path + (key,)
            self.doc.marks[child] = line
            if value_node.tag == "!reset":
                self.doc.resets.append(child)
                continue
            out[key] = self.build(value_node, child)
            self.doc.marks[child] = line
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge_sources(self, node: Any, path: Path) -> list[dict[str, Any]]:
        yaml = self.yaml
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for item in nodes:
            value = self.build(item, path)
            if not isinstance(value, dict):
                raise ComposeError(
                    f"{self.doc.filename}:{item.start_mark.line + 1}: {format_path(path)}: "
                    "map merge requires map or sequence of maps as the value"
                )
            sources.append(value)
        return sources


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


# --------------------------------------------------------------------------- .env files

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_.\-][A-Za-z0-9_.\-\[\]]*)\s*(?:([=:])\s?(.*))?$")


def parse_dotenv(
    text: str,
    filename: str,
    lookup: Callable[[str], str | None] | None = None,
) -> dict[str, str | None]:
    """Parse .env syntax as compose-go's dotenv: comments, `export `, quotes, ${VAR} in values.

    A bare `KEY` takes its value from lookup (None when unset). Values may use variables
    defined earlier in the same file or found by lookup.
    """
    from dockyard.compose.interpolate import substitute

    values: dict[str, str | None] = {}

    def find(name: str) -> str | None:
        if name in values and values[name] is not None:
            return values[name]
        return lookup(name) if lookup else None

    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        number = i + 1
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(raw)
        if not match:
            raise ComposeError(f"{filename}:{number}: unexpected character in variable name: {stripped!r}")
        key, sep, rest = match.group(1), match.group(2), match.group(3)
        if sep is None:
            values[key] = lookup(key) if lookup else None
            continue
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            while True:
                end = _closing_quote(body, quote)
                if end >= 0:
                    break
                if i >= len(lines):
                    raise ComposeError(f"{filename}:{number}: unterminated quoted value")
                body += "\n" + lines[i]
                i += 1
            value = body[:end]
            if quote == '"':
                value = _unescape(value)
                value = substitute(value, find, where=f"{filename}:{number}")
            values[key] = value
            continue
        value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        values[key] = substitute(value, find, where=f"{filename}:{number}")
    return values


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _unescape(value: str) -> str:
    replacements = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$$"}
    return re.sub(r"\\(.)", lambda m: replacements.get(m.group(1), "\\" + m.group(1)), value)


def read_env_file(path: str, lookup: Callable[[str], str | None] | None = None) -> dict[str, str | None]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ComposeError(f"couldn't find env file: {path}") from None
    except IsADirectoryError:
        raise ComposeError(f"{path} is a directory") from None
    return parse_dotenv(text, path, lookup)
