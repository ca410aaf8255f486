"""The distribution spec's error codes, as an exception a handler raises.

Status codes follow CNCF distribution (the reference clients are written against),
which the spec's endpoint table allows: e.g. MANIFEST_BLOB_UNKNOWN is a 400 there.
"""

from __future__ import annotations

import json
from typing import Any

# code -> (HTTP status, message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    # Not in the spec's table, but what a registry answers for a broken server or route.
    "UNKNOWN": (500, "unknown error"),
    "NOT_FOUND": (404, "page not found"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
}


class APIError(Exception):
    """An error answered as ``{"errors": [{"code", "message", "detail"}]}``."""

    def __init__(self, code: str, detail: Any = None, *, message: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        entry["detail"] = self.detail if self.detail is not None else {}
        return json.dumps({"errors": [entry]}).encode()
