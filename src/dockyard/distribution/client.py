"""The registry HTTP client (distribution API v2) on aiohttp.

One ``RegistryClient`` talks to one registry host for the length of a pull, push or
login. It picks the scheme (plain HTTP for insecure registries, HTTPS with the system
CAs otherwise), authorizes every request (see ``auth``), follows blob redirects
itself so the Authorization header never leaves the registry's origin, and turns
whatever goes wrong into one-line ``RegistryError``s. ``transient`` on an error
says whether retrying may help (resets, timeouts, 5xx, truncated bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable, TypeVar

import aiohttp
from yarl import URL

from dockyard import config
from dockyard.distribution.auth import Authenticator
from dockyard.distribution.credentials import Credentials
from dockyard.errors import AuthenticationError, ManifestError, RegistryError
from dockyard.oci import mediatypes as mt

if TYPE_CHECKING:
    from dockyard.config import Settings

T = TypeVar("T")

READ_BUFSIZE = 1 << 20      # aiohttp's buffer per response: readany() hands over up to this much at once
MAX_ERROR_BODY = 64 << 10    # we read at most this much of an error response
MAX_REDIRECTS = 10
# Docker retries a failed download up to 5 times; it waits 5 s, 10 s, ... between tries.
# We back off faster: the errors worth retrying are usually over in a moment.
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


class RegistryHTTPError(RegistryError):
    """A registry answered with an error status; ``codes`` are its distribution error codes."""

    def __init__(self, message: str, status: int, codes: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes or []
        self.transient = status >= 500 or status in (408, 429)


class TransferError(RegistryError):
    """A connection dropped, timed out or ended early: worth another try."""

    transient = True


def is_transient(error: BaseException) -> bool:
    return bool(getattr(error, "transient", False))


def settings_hint(settings: "Settings") -> str:
    return f'add it to "insecure-registries" in {settings.settings_file} or DOCKYARD_INSECURE_REGISTRIES'


class RegistryClient:
    def __init__(
        self,
        settings: "Settings",
        host: str,
        credentials: Credentials | None = None,
        *,
        scheme: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.insecure = config.is_insecure_registry(host, settings.insecure_registries)
        self.scheme = scheme or ("http" if self.insecure else "https")
        # An insecure registry answering plain HTTP with "use HTTPS" gets TLS without verification.
        self._may_upgrade = scheme is None and self.insecure
        self._skip_verify = False  # set once an insecure registry turned out to speak only TLS
        self._ssl: ssl.SSLContext | bool | None = ssl_context
        self.auth = Authenticator(host, credentials)
        self._session: aiohttp.ClientSession | None = None

    # ---- session -------------------------------------------------------------------

    async def __aenter__(self) -> "RegistryClient":
        connector = aiohttp.TCPConnector(limit=32, ssl=self._ssl if self._ssl is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=TIMEOUT,
            auto_decompress=False,  # blobs are hashed as sent: never let the client inflate them
            read_bufsize=READ_BUFSIZE,
            headers={"User-Agent": "dockyard/0.1", "Accept-Encoding": "identity"},
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use RegistryClient as an async context manager"
        return self._session

    @property
    def base(self) -> URL:
        return URL.build(scheme=self.scheme, authority=self.host)

    def url(self, path: str) -> URL:
        return URL(f"{self.base}/v2/{path}", encoded=True)

    # ---- one request: auth, redirects, error mapping --------------------------------

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        scopes: Iterable[str] = (),
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        follow_redirects: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request and yield the response once its status is in ``ok``.

        ``body`` is a factory so the body can be sent again after a 401. Anything
        else raises a RegistryError (its registry message, or the status line).
        """
        scopes = tuple(scopes)
        url = URL(url, encoded=True) if isinstance(url, str) else url
        resp = await self._send(method, url, scopes, headers or {}, body, follow_redirects)
        try:
            if resp.status not in tuple(ok):
                raise await self.error_from(resp, what or f"{method} {url.path}")
            yield resp
        finally:
            resp.release()

    async def _send(
        self, method: str, url: URL, scopes: tuple[str, ...], headers: dict[str, str],
        body: Callable[[], Any] | None, follow_redirects: bool,
    ) -> aiohttp.ClientResponse:
        retried_auth = False
        redirects = 0
        while True:
            if self._skip_verify and url.scheme == "http" and url.authority == self.base.authority:
                url = url.with_scheme("https")   # upgraded to TLS (_upgrade): this request goes there too
            same_origin = url.origin() == self.base.origin()
            hdrs = dict(headers)
            sent = None
            if same_origin:
                sent = await self.auth.header(self.session, scopes)
                if sent:
                    hdrs["Authorization"] = sent
            resp = await self._raw(method, url, hdrs, body)
            if resp.status == 401 and same_origin and not retried_auth:
                retried_auth = True
                challenges = resp.headers.getall("WWW-Authenticate", [])
                try:
                    new_scopes = await self.auth.on_unauthorized(self.session, challenges, scopes, sent)
                except BaseException:
                    resp.release()
                    raise
                if new_scopes is None:
                    return resp  # the caller reports the 401 with the registry's message
                resp.release()
                scopes = new_scopes
                continue
            if follow_redirects and resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                resp.release()
                if not location or redirects >= MAX_REDIRECTS:
                    raise RegistryError(f"registry {self.host} sent too many redirects for {url.path}")
                redirects += 1
                target = URL(location, encoded=True)
                url = target if target.is_absolute() else url.join(target)
                if url.scheme not in ("http", "https"):
                    raise RegistryError(f"registry {self.host} redirected to an unsupported URL {location!r}")
                if resp.status == 303:
                    method, body = "GET", None
                continue
            return resp

    async def _raw(self, method: str, url: URL, headers: dict[str, str], body: Callable[[], Any] | None) -> aiohttp.ClientResponse:
        extra: dict[str, Any] = {}
        if self._skip_verify and url.origin() == self.base.origin():
            extra["ssl"] = False
        try:
            resp = await self.session.request(
                method, url, headers=headers, data=body() if body else None, allow_redirects=False, **extra)
        except aiohttp.ClientConnectorCertificateError as e:
            raise RegistryError(
                f"cannot reach registry {self.host}: tls: failed to verify certificate: {_cert_problem(e)}; "
                f"to use it anyway, {settings_hint(self.settings)}") from None
        except aiohttp.ClientConnectorSSLError as e:
            if _looks_like_plain_http(e):
                raise RegistryError(
                    f"cannot reach registry {self.host}: server gave HTTP response to HTTPS client; "
                    f"if it serves plain HTTP, {settings_hint(self.settings)}") from None
            raise RegistryError(f"cannot reach registry {self.host}: tls: {reason_of(e)}") from None
        except aiohttp.ClientConnectorError as e:
            raise RegistryError(f"cannot reach registry {url.authority}: {reason_of(e)}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as e:
            if self._may_upgrade:
                return await self._upgrade(method, url, headers, body, e)
            raise TransferError(f"connection to {url.authority} failed: {reason_of(e)}") from None
        except asyncio.TimeoutError:
            raise TransferError(f"timed out talking to {url.authority}") from None
        except aiohttp.ClientError as e:
            raise RegistryError(f"request to {url.authority} failed: {e}") from None
        if self._may_upgrade and resp.status == 400 and url.origin() == self.base.origin():
            text = (await resp.content.read(MAX_ERROR_BODY)).decode(errors="replace")
            resp.release()
            if "HTTPS" in text:
                return await self._upgrade(method, url, headers, body, None)
            raise RegistryHTTPError(f"registry {self.host} answered 400 Bad Request: {text.strip()[:200]}", 400)
        self._may_upgrade = False
        return resp

    async def _upgrade(self, method: str, url: URL, headers: dict[str, str], body: Any, error: BaseException | None) -> aiohttp.ClientResponse:
        """An insecure registry that speaks only TLS: use HTTPS without verifying it, as Docker does."""
        self._may_upgrade = False
        if url.origin() != self.base.origin():
            raise TransferError(f"connection to {url.authority} failed: {reason_of(error) if error else 'bad request'}")
        self.scheme, self._skip_verify = "https", True
        https_url = url.with_scheme("https")
        try:
            return await self.session.request(
                method, https_url, headers=headers, data=body() if body else None,
                allow_redirects=False, ssl=False)
        except aiohttp.ClientError as e:
            self.scheme, self._skip_verify = "http", False
            raise TransferError(f"connection to {url.authority} failed: {reason_of(error or e)}") from None

    async def error_from(self, resp: aiohttp.ClientResponse, what: str) -> RegistryError:
        """A one-line error from an error response: ``code: message`` as Docker prints them."""
        try:
            body = await resp.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            body = b""
        codes, message = parse_errors(body)
        if resp.status == 401 and not message:
            message = "unauthorized: authentication required"
        if resp.status >= 500:
            status = f"{resp.status} {resp.reason or ''}".rstrip()
            message = f"registry {self.host} answered {status} for {what}" + (f": {message}" if message else "")
        elif not message:
            message = f"{what}: received unexpected HTTP status: {resp.status} {resp.reason or ''}".rstrip()
        challenge = self.auth.challenge
        if resp.status == 401 and self.auth.credentials is not None and challenge and challenge.scheme == "basic":
            # Basic credentials refused: say so, not "access denied". (With tokens, bad
            # credentials fail at the token server; a 401 after that is a missing right.)
            return AuthenticationError(message)
        return RegistryHTTPError(message, resp.status, codes)

    # ---- API calls -------------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /v2/``: checks the registry is there and our credentials are good (login)."""
        async with self.request("GET", self.url(""), what="GET /v2/"):
            pass

    async def get_manifest(self, path: str, reference: str) -> tuple[bytes, str, str | None]:
        """Fetch a manifest or index: (raw bytes, media type, Docker-Content-Digest header)."""
        async with self.request(
            "GET", self.url(f"{path}/manifests/{reference}"),
            scopes=[f"repository:{path}:pull"], headers={"Accept": mt.MANIFEST_ACCEPT},
            what=f"manifest {reference}",
        ) as resp:
            length = resp.content_length
            if length is not None and length > mt.MAX_MANIFEST_SIZE:
                raise ManifestError(
                    f"manifest {reference} is {length} bytes, over the {mt.MAX_MANIFEST_SIZE} byte limit")
            data = bytearray()
            try:
                async for chunk in resp.content.iter_chunked(64 << 10):
                    data += chunk
                    if len(data) > mt.MAX_MANIFEST_SIZE:
                        raise ManifestError(f"manifest {reference} is over the {mt.MAX_MANIFEST_SIZE} byte limit")
            except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as e:
                raise TransferError(f"reading manifest {reference} failed: {reason_of(e)}") from None
            except asyncio.TimeoutError:
                raise TransferError(f"timed out reading manifest {reference}") from None
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return bytes(data), content_type, resp.headers.get("Docker-Content-Digest")

    @contextlib.asynccontextmanager
    async def open_blob(self, path: str, digest: str, offset: int = 0) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a blob (from ``offset`` with a Range request), following redirects ourselves."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self.request(
            "GET", self.url(f"{path}/blobs/{digest}"), scopes=[f"repository:{path}:pull"],
            headers=headers, follow_redirects=True, ok=(200, 206), what=f"blob {digest}",
        ) as resp:
            yield resp

    @contextlib.asynccontextmanager
    async def open_url(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a foreign layer from one of its descriptor's ``urls`` (never with our credentials)."""
        try:
            target = URL(url, encoded=True)
            async with self.request("GET", target, follow_redirects=True, what=f"GET {target.host}") as resp:
                yield resp
        except ValueError as e:
            raise RegistryError(f"invalid layer URL {url!r}: {e}") from None

    async def blob_exists(self, path: str, digest: str, scopes: Iterable[str] = ()) -> bool:
        async with self.request(
            "HEAD", self.url(f"{path}/blobs/{digest}"), scopes=scopes or [f"repository:{path}:pull"],
            follow_redirects=True, ok=(200, 404), what=f"HEAD blob {digest}",
        ) as resp:
            return resp.status == 200

    async def start_upload(
        self, path: str, scopes: Iterable[str], mount: str | None = None, mount_from: str | None = None,
    ) -> tuple[bool, URL | None]:
        """POST an upload (or a cross-repository mount): (mounted, upload location)."""
        url = self.url(f"{path}/blobs/uploads/")
        if mount and mount_from:
            url = url.with_query({"mount": mount, "from": mount_from})
        async with self.request(
            "POST", url, scopes=scopes, ok=(201, 202), headers={"Content-Length": "0"},
            what=f"upload to {path}",
        ) as resp:
            if resp.status == 201:
                return True, None
            return False, self._location(resp)

    def _location(self, resp: aiohttp.ClientResponse) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} sent no Location for the upload")
        target = URL(location, encoded=True)
        return target if target.is_absolute() else resp.url.join(target)

    async def patch_chunk(
        self, location: URL, scopes: Iterable[str], start: int, length: int, body: Callable[[], Any],
    ) -> URL:
        """Upload one chunk of a blob; returns where the next chunk goes."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + length - 1}",
            "Content-Length": str(length),
        }
        async with self.request("PATCH", location, scopes=scopes, headers=headers, body=body,
                                ok=(202, 204), what="upload chunk") as resp:
            return self._location(resp)

    async def finish_upload(
        self, location: URL, scopes: Iterable[str], digest: str,
        length: int = 0, body: Callable[[], Any] | None = None,
    ) -> None:
        """PUT ``?digest=`` to close an upload, with the whole blob (monolithic) or nothing."""
        url = location.update_query({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        async with self.request("PUT", url, scopes=scopes, headers=headers, body=body,
                                ok=(201, 204), what=f"upload of {digest}"):
            pass

    async def put_manifest(self, path: str, reference: str, data: bytes, media_type: str) -> str | None:
        """PUT the manifest bytes as they are; returns the registry's Docker-Content-Digest."""
        async with self.request(
            "PUT", self.url(f"{path}/manifests/{reference}"),
            scopes=[f"repository:{path}:pull,push"],
            headers={"Content-Type": media_type}, body=lambda: data, ok=(200, 201, 202),
            what=f"manifest {reference}",
        ) as resp:
            return resp.headers.get("Docker-Content-Digest")


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    delays: Iterable[float] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, retrying transient errors (5 tries in all, as Docker)."""
    waits = list(RETRY_DELAYS if delays is None else delays)
    while True:
        try:
            return await attempt()
        except RegistryError as e:
            if not is_transient(e) or not waits:
                raise
            wait = waits.pop(0)
            if on_retry is not None:
                on_retry(e, wait)
            await asyncio.sleep(wait)


def parse_errors(body: bytes) -> tuple[list[str], str]:
    """``{"errors": [{"code", "message"}]}`` -> (codes, "manifest unknown: manifest unknown")."""
    try:
        data = json.loads(body)
    except ValueError:
        return [], ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        if isinstance(data, dict) and isinstance(data.get("details"), str):
            return [], data["details"]
        return [], ""
    codes: list[str] = []
    parts: list[str] = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "UNKNOWN")
        codes.append(code)
        text = code.lower().replace("_", " ")
        message = err.get("message")
        parts.append(f"{text}: {message}" if message else text)
    return codes, "; ".join(parts)


def reason_of(e: BaseException | None) -> str:
    if e is None:
        return "unknown error"
    os_error = getattr(e, "os_error", None)
    if not isinstance(os_error, OSError) and isinstance(e, OSError):
        os_error = e
    if isinstance(os_error, socket.gaierror):
        return "no such host"
    if isinstance(os_error, OSError) and os_error.errno and os_error.errno > 0:
        # asyncio words refusals "Connect call failed (addr)": the errno says it better.
        return os.strerror(os_error.errno).lower()
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(e, aiohttp.ClientPayloadError):
        return "response body ended early"
    text = str(e) or type(e).__name__
    return text[0].lower() + text[1:]


def _cert_problem(e: aiohttp.ClientConnectorCertificateError) -> str:
    cert_error = getattr(e, "certificate_error", None)
    verify = getattr(cert_error, "verify_message", None)
    return verify or str(cert_error or e)


def _looks_like_plain_http(e: aiohttp.ClientConnectorSSLError) -> bool:
    text = str(getattr(e, "os_error", "") or e).lower()
    return any(s in text for s in ("wrong_version_number", "wrong version number", "record layer failure",
                                   "http_request", "packet length too long", "unknown protocol"))
