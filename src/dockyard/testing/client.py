"""A tiny synchronous HTTP client for registry API tests (http.client; keeps no state)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any


class Client:
    """A tiny synchronous HTTP client for API tests (http.client; keeps no state)."""

    def __init__(self, url: str, auth: str | None = None, cafile: str | None = None) -> None:
        self.url = url
        self.auth = auth  # a full Authorization header value
        self.https = url.startswith("https://")
        self.hostport = url.split("://", 1)[1]
        self.ctx = ssl.create_default_context(cafile=cafile) if self.https else None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> "Response":
        headers = dict(headers or {})
        if self.auth and "Authorization" not in headers:
            headers["Authorization"] = self.auth
        if self.https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.hostport, timeout=60, context=self.ctx)
        else:
            conn = http.client.HTTPConnection(self.hostport, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"
