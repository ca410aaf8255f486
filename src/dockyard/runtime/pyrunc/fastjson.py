"""JSON through the C accelerator alone: ``import json`` pulls in ``re`` (~14 ms here),
more than the rest of pyrunc's start-up together."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~20 ms to import; only checkers need it
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # an interpreter without the accelerator: the slow, correct path
    _json = None


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_WS = " \t\n\r"


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    if _json is None:
        import json
        return json.loads(text)
    scan = _json.make_scanner(_Context())
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError("invalid JSON") from None
    if text[end:].strip(_WS):
        raise ValueError(f"extra data in JSON at offset {end}")
    return value


def dumps(value: Any) -> str:
    if _json is None:
        import json
        return json.dumps(value)
    encode = _json.make_encoder({}, _no_default, _json.encode_basestring_ascii, None, ": ", ", ",
                                False, False, True)
    return "".join(encode(value, 0))


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
