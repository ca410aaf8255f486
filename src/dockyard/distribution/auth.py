"""Registry authentication: ``WWW-Authenticate`` challenges, the bearer token flow, basic auth.

The flow is Docker's: a request answered ``401`` carries a challenge, e.g.
``Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"``.
For Bearer we ask the realm for a token (``GET realm?service=..&scope=..``, with basic
credentials when we have some), cache it per registry, account and scope set until it
expires, and retry with ``Authorization: Bearer <token>``. For Basic we send the
credentials. Once a registry's challenge is known, later requests are authorized
before they are sent, so bodies never need replaying.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlencode, urlsplit

from dockyard.distribution.credentials import Credentials
from dockyard.errors import AuthenticationError, RegistryError

if TYPE_CHECKING:
    import aiohttp

# Tokens without expires_in live 60 s (the token spec's default); renew a little early.
DEFAULT_TOKEN_LIFETIME = 60.0
EXPIRY_MARGIN = 5.0
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True)
class Challenge:
    scheme: str                       # lowercase: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Parse every ``WWW-Authenticate`` header value (RFC 7235, quoted strings with escapes)."""
    challenges: list[Challenge] = []
    for value in headers:
        challenges.extend(_parse_one(value))
    return challenges


def _parse_one(value: str) -> list[Challenge]:
    out: list[Challenge] = []
    i, n = 0, len(value)
    current: Challenge | None = None
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and value[i] not in " \t,=":
            i += 1
        token = value[start:i]
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and current is not None:
            # name=value parameter of the current challenge
            i = j + 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1  # closing quote
                param = "".join(chars)
            else:
                start = i
                while i < n and value[i] not in " \t,":
                    i += 1
                param = value[start:i]
            current.params[token.lower()] = param
        else:
            # a new auth scheme
            current = Challenge(token.lower(), {})
            out.append(current)
            i = j
    return out


def repository_scope(path: str, actions: str = "pull") -> str:
    """``repository:library/nginx:pull`` (actions comma-separated: ``pull,push``)."""
    return f"repository:{path}:{actions}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """One scope per resource with the union of its actions, sorted: a stable cache key."""
    merged: dict[str, set[str]] = {}
    order: list[str] = []
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep or not resource:
            resource, actions = scope, ""
        if resource not in merged:
            merged[resource] = set()
            order.append(resource)
        merged[resource].update(a for a in actions.split(",") if a)
    return tuple(sorted(f"{r}:{','.join(sorted(merged[r]))}" if merged[r] else r for r in order))


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Tokens per (registry, account, scopes); shared by every client of this process."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            if token.expires_at <= time.monotonic():
                del self._tokens[key]
                return None
            return token.value

    def put(self, key: tuple[str, str, tuple[str, ...]], value: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = _Token(value, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1.0))

    def drop(self, key: tuple[str, str, tuple[str, ...]]) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


class Authenticator:
    """Authorization for one registry: remembers its challenge, fetches and caches tokens."""

    def __init__(self, registry: str, credentials: Credentials | None, cache: TokenCache = TOKENS) -> None:
        self.registry = registry
        self.credentials = credentials
        self.cache = cache
        self.challenge: Challenge | None = None
        self.token_requests = 0  # for tests and debugging

    def _key(self, scopes: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
        account = self.credentials.username if self.credentials else ""
        return (self.registry, account, scopes)

    async def header(self, session: "aiohttp.ClientSession", scopes: Iterable[str]) -> str | None:
        """The Authorization value for a request needing ``scopes``, or None (anonymous)."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self.credentials) if self.credentials else None
        if challenge.scheme == "bearer":
            merged = merge_scopes(scopes)
            token = self.cache.get(self._key(merged))
            if token is None:
                token = await self._fetch_token(session, challenge, merged)
            return f"Bearer {token}"
        return None

    async def on_unauthorized(
        self, session: "aiohttp.ClientSession", headers: Iterable[str], scopes: Iterable[str], sent: str | None
    ) -> tuple[str, ...] | None:
        """Learn from a 401's challenges. Returns the scopes to retry with, or None when
        retrying cannot help (no usable challenge, or basic auth without credentials)."""
        challenges = parse_challenges(headers)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return None
        self.challenge = chosen
        merged = merge_scopes(scopes)
        if chosen.scheme == "bearer":
            # A scope the registry asks for beyond ours (e.g. insufficient_scope) is added.
            wanted = chosen.params.get("scope")
            if wanted:
                merged = merge_scopes([*merged, *wanted.split(" ")])
            # A refused token may have expired early: fetch a fresh one (the caller retries once).
            self.cache.drop(self._key(merged))
            await self._fetch_token(session, chosen, merged)
            return merged
        # Basic: retrying helps only if we have credentials we did not send yet.
        return merged if self.credentials is not None and sent is None else None

    async def _fetch_token(self, session: "aiohttp.ClientSession", challenge: Challenge, scopes: tuple[str, ...]) -> str:
        import aiohttp

        realm = challenge.realm
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise AuthenticationError(f"registry {self.registry} sent a bearer challenge without a usable realm")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        for scope in scopes:
            query.append(("scope", scope))
        headers = {}
        if self.credentials is not None:
            query.append(("account", self.credentials.username))
            headers["Authorization"] = basic_header(self.credentials)
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        self.token_requests += 1
        try:
            async with session.get(url, headers=headers, allow_redirects=True) as resp:
                body = await resp.content.read(MAX_TOKEN_RESPONSE)
                status = resp.status
        except aiohttp.ClientConnectorError as e:
            from dockyard.distribution.client import reason_of

            raise RegistryError(f"cannot reach the token server {urlsplit(realm).netloc}: {reason_of(e)}") from None
        except aiohttp.ClientError as e:
            raise RegistryError(f"token request to {urlsplit(realm).netloc} failed: {e}") from None
        if status in (401, 403):
            raise AuthenticationError(f"unauthorized: {_token_error(body) or 'incorrect username or password'}")
        if status != 200:
            raise RegistryError(
                f"token server {urlsplit(realm).netloc} answered {status}"
                + (f": {_token_error(body)}" if _token_error(body) else ""))
        try:
            import json

            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise AuthenticationError(f"token server {urlsplit(realm).netloc} sent no token")
        try:
            lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        self.cache.put(self._key(scopes), token, lifetime)
        return token


def _token_error(body: bytes) -> str:
    """The human part of a token server's error body (Hub's ``details``, or distribution errors)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("details"), str):
        return data["details"]
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or errors[0].get("code") or "")
    return str(data.get("error_description") or data.get("error") or "")

