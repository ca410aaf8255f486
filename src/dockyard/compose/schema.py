"""Validation against the vendored compose-spec JSON schema (schema/compose-spec.json).

jsonschema is imported inside validate(): it costs start-up and only `compose` needs it.
Messages follow Docker Compose v2's wording: `services.web additional properties 'foo'
not allowed`, `services.web.ports[0] must be a number`.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any, Callable

from dockyard.compose.errors import ComposeError, Path, format_path

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema", "compose-spec.json")

_TYPE_WORDS = {"object": "a mapping", "array": "an array", "string": "a string", "number": "a number",
               "integer": "an integer", "boolean": "a boolean", "null": "null"}


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        schema = json.load(handle)
    return jsonschema.Draft7Validator(schema)


def _extra_keys(error: Any) -> list[str]:
    """The keys an additionalProperties error is about."""
    extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
    if error.schema.get("patternProperties"):
        import re

        extra = [k for k in extra if not any(re.search(p, k) for p in error.schema["patternProperties"])]
    return extra


def _describe(error: Any) -> str:
    if error.validator == "additionalProperties":
        names = ", ".join(f"'{k}'" for k in _extra_keys(error))
        return f"additional properties {names} not allowed"
    if error.validator == "type" and error.validator_value == "null":
        return "must be a null"
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = [_TYPE_WORDS.get(w, w).split(" ", 1)[-1] for w in wanted]
        article = "an" if words[0][0] in "aeiou" else "a"
        return f"must be {article} {' or '.join(words)}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "enum":
        return f"must be one of the following: {', '.join(repr(v) for v in error.validator_value)}"
    if error.validator in ("oneOf", "anyOf") and not error.context:
        return "does not match any of the allowed forms"
    return error.message


def _first_alternative(error: Any) -> Any:
    """For oneOf/anyOf, Docker Compose v2 reports why the first alternative failed."""
    import jsonschema

    while error.validator in ("oneOf", "anyOf") and error.context:
        first = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == 0]
        if not first:
            break
        error = jsonschema.exceptions.best_match(first)
    return error


@lru_cache(maxsize=1)
def _schema_digest() -> bytes:
    import hashlib

    with open(SCHEMA_PATH, "rb") as handle:
        return hashlib.sha256(handle.read()).digest()


def _cache_key(tree: dict[str, Any]) -> str:
    import hashlib

    blob = json.dumps(tree, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(_schema_digest() + blob).hexdigest()


def validate(tree: dict[str, Any], fail: Callable[[Path, str], ComposeError] | None = None,
             cache_dir: str | None = None) -> None:
    """Raise ComposeError for the most relevant schema violation of tree (jsonschema's best_match).

    cache_dir: where a valid tree's digest is remembered, so the next command on an
    unchanged project skips jsonschema (~130 ms of import and compilation here).
    """
    key = _cache_key(tree) if cache_dir else None
    if key and os.path.exists(os.path.join(cache_dir, key)):
        return
    import jsonschema

    errors = list(_validator().iter_errors(tree))
    if not errors:
        if key:
            try:
                os.makedirs(cache_dir, exist_ok=True)
                with open(os.path.join(cache_dir, key), "w"):
                    pass
            except OSError:
                pass  # a cache we cannot write costs time, not correctness
        return
    error = _first_alternative(jsonschema.exceptions.best_match(errors))
    path: Path = tuple(error.absolute_path)
    where = format_path(path)
    message = f"{where} {_describe(error)}" if where else _describe(error)
    if error.validator == "additionalProperties" and _extra_keys(error):
        path = path + (_extra_keys(error)[0],)   # file:line of the unknown key, not of its mapping
    raise (fail(path, message) if fail else ComposeError(message))
