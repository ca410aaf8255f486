"""Who may do what: htpasswd (bcrypt) basic auth, Docker token auth, anonymous read.

Every request names the access it needs (``repository:<name>:pull,push``,
``registry:catalog:*``); an authorizer grants it or raises UNAUTHORIZED with the
challenge a client needs (``WWW-Authenticate: Basic`` or ``Bearer realm,service,scope``).

Tokens are JWTs signed by the configured issuer (RS256/384/512, PS256/384/512,
ES256/384/512, verified with ``cryptography``) whose ``access`` claim lists what
the bearer may do, as Docker's token spec describes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from dockyard.registry.errors import APIError

LEEWAY = 60.0  # clock skew tolerated on exp/nbf
CACHE_TTL = 300.0  # how long a verified password stays verified (bcrypt costs ~50-250 ms)


@dataclass(frozen=True)
class Access:
    type: str  # "repository" or "registry"
    name: str
    actions: frozenset[str]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def repository(name: str, *actions: str) -> Access:
    return Access("repository", name, frozenset(actions))


CATALOG = Access("registry", "catalog", frozenset({"*"}))


def is_read(access: list[Access]) -> bool:
    # "/v2/" (no access named) is not a read: it answers 401 so clients learn the challenge.
    return bool(access) and all(a.actions <= {"pull"} or (a.type == "registry" and a.name == "catalog") for a in access)


class Authorizer:
    """No authentication: everyone may do everything."""

    async def check(self, headers: Any, access: list[Access]) -> str | None:
        return None

    async def allowed(self, headers: Any, access: list[Access]) -> bool:
        try:
            await self.check(headers, access)
            return True
        except APIError:
            return False


# --- htpasswd ------------------------------------------------------------------------------

class HtpasswdAuthorizer(Authorizer):
    def __init__(self, path: str, realm: str, anonymous_read: bool = False) -> None:
        self.path, self.realm, self.anonymous_read = path, realm, anonymous_read
        self._users: dict[str, bytes] = {}
        self._mtime = -1.0
        self._verified: dict[tuple[str, bytes], float] = {}
        self._load()

    def _load(self) -> None:
        """(Re)read the file when it changed: users can be added without a restart."""
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as e:
            from dockyard.errors import DockyardError

            raise DockyardError(f"cannot read htpasswd file {self.path}: {e}") from None
        if mtime == self._mtime:
            return
        users: dict[str, bytes] = {}
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or ":" not in line:
                    continue
                user, _, hashed = line.partition(":")
                if hashed.startswith(("$2y$", "$2b$", "$2a$")):  # bcrypt only, like distribution
                    users[user] = hashed.encode()
        self._users, self._mtime = users, mtime
        self._verified.clear()

    def _challenge(self, detail: Any = None) -> APIError:
        return APIError("UNAUTHORIZED", detail, headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def check(self, headers: Any, access: list[Access]) -> str | None:
        header = headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            if self.anonymous_read and is_read(access):
                return None
            raise self._challenge()
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise self._challenge("malformed basic credentials") from None
        self._load()
        if not await self._verify(user, password):
            raise self._challenge("invalid username or password")
        return user

    async def _verify(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        if hashed is None:
            # Spend what a known user's check costs, or the answer's time would tell which
            # usernames exist (distribution compares against a dummy hash too).
            await asyncio.get_running_loop().run_in_executor(None, _checkpw, password.encode(), self._dummy_hash())
            return False
        key = (user, hashlib.sha256(password.encode() + hashed).digest())
        now = time.monotonic()
        if self._verified.get(key, 0) > now:
            return True
        ok = await asyncio.get_running_loop().run_in_executor(None, _checkpw, password.encode(), hashed)
        if ok:
            self._verified[key] = now + CACHE_TTL
        return ok

    def _dummy_hash(self) -> bytes:
        """A bcrypt hash of a random password at the cost the file's own hashes use."""
        costs = sorted(int(h[4:6]) for h in self._users.values() if h[4:6].isdigit())
        cost = costs[len(costs) // 2] if costs else 10
        if cost not in _DUMMY_HASHES:
            import bcrypt

            _DUMMY_HASHES[cost] = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        return _DUMMY_HASHES[cost]


_DUMMY_HASHES: dict[int, bytes] = {}


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    return bcrypt.checkpw(password, hashed)


# --- token (JWT) ---------------------------------------------------------------------------

def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hash(alg: str):
    from cryptography.hazmat.primitives import hashes

    return {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]()


def load_public_keys(pem: bytes) -> list[Any]:
    """Public keys from PEM certificates and/or public keys (a bundle may hold several)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys = []
    for m in re.finditer(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", pem, re.S):
        if m.group(1).endswith(b"CERTIFICATE"):
            keys.append(x509.load_pem_x509_certificate(m.group(0)).public_key())
        elif m.group(1) == b"PUBLIC KEY":
            keys.append(load_pem_public_key(m.group(0)))
    if not keys:
        raise ValueError("no PEM certificate or public key found")
    return keys


def verify_jwt(token: str, keys: list[Any]) -> dict[str, Any]:
    """The claims of a JWT signed by one of ``keys``; ValueError if it is not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_b64url_decode(head_b64))
        claims = json.loads(_b64url_decode(body_b64))
        signature = _b64url_decode(sig_b64)
    except ValueError:
        raise ValueError("malformed token") from None
    alg = header.get("alg", "")
    if alg not in {f"{k}{n}" for k in ("RS", "PS", "ES") for n in ("256", "384", "512")}:
        raise ValueError(f"unsupported token algorithm {alg!r}")  # never "none" or HMAC
    signed = f"{head_b64}.{body_b64}".encode()
    for key in keys:
        try:
            if alg.startswith(("RS", "PS")) and isinstance(key, rsa.RSAPublicKey):
                pad = padding.PKCS1v15() if alg.startswith("RS") else \
                    padding.PSS(mgf=padding.MGF1(_hash(alg)), salt_length=padding.PSS.DIGEST_LENGTH)
                key.verify(signature, signed, pad, _hash(alg))
            elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
                half = len(signature) // 2
                der = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                           int.from_bytes(signature[half:], "big"))
                key.verify(der, signed, ec.ECDSA(_hash(alg)))
            else:
                continue
            if not isinstance(claims, dict):
                raise ValueError("token claims are not an object")
            return claims
        except InvalidSignature:
            continue
    raise ValueError("token signature does not verify with the issuer's key")


def encode_jwt(claims: dict[str, Any], private_key: Any, alg: str = "RS256", kid: str | None = None) -> str:
    """Sign ``claims`` (what a token server does; the tests use it)."""
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header: dict[str, Any] = {"typ": "JWT", "alg": alg}
    if kid:
        header["kid"] = kid
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}".encode()
    if alg.startswith("ES"):
        r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(_hash(alg))))
        size = (private_key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        pad = padding.PKCS1v15() if alg.startswith("RS") else \
            padding.PSS(mgf=padding.MGF1(_hash(alg)), salt_length=padding.PSS.DIGEST_LENGTH)
        signature = private_key.sign(signing_input, pad, _hash(alg))
    return f"{signing_input.decode()}.{_b64url(signature)}"


class TokenAuthorizer(Authorizer):
    def __init__(self, realm: str, service: str, issuer: str, certificate: str, anonymous_read: bool = False) -> None:
        self.realm, self.service, self.issuer, self.anonymous_read = realm, service, issuer, anonymous_read
        with open(certificate, "rb") as f:
            self.keys = load_public_keys(f.read())

    def _challenge(self, access: list[Access], error: str | None = None) -> APIError:
        value = f'Bearer realm="{self.realm}",service="{self.service}"'
        if access:
            value += f',scope="{" ".join(a.scope for a in access)}"'
        if error:
            value += f',error="{error}"'
        return APIError("UNAUTHORIZED", {"error": error} if error else None, headers={"WWW-Authenticate": value})

    async def check(self, headers: Any, access: list[Access]) -> str | None:
        header = headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            if self.anonymous_read and is_read(access):
                return None
            raise self._challenge(access)
        try:
            claims = verify_jwt(header[7:].strip(), self.keys)
        except ValueError:
            raise self._challenge(access, "invalid_token") from None
        now = time.time()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.issuer or self.service not in audiences:
            raise self._challenge(access, "invalid_token")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + LEEWAY < now \
                or claims.get("nbf", 0) - LEEWAY > now:
            raise self._challenge(access, "invalid_token")
        granted = claims.get("access") or []
        for want in access:
            if not _granted(want, granted):
                if self.anonymous_read and is_read([want]):
                    continue
                raise self._challenge(access, "insufficient_scope")
        return str(claims.get("sub", ""))


def _granted(want: Access, granted: list[Any]) -> bool:
    have: set[str] = set()
    for entry in granted:
        if isinstance(entry, dict) and entry.get("type") == want.type and entry.get("name") == want.name:
            have |= set(entry.get("actions") or [])
    return "*" in have or want.actions <= have


def from_settings(settings) -> Authorizer:
    if settings.token is not None:
        t = settings.token
        return TokenAuthorizer(t.realm, t.service, t.issuer, t.certificate, settings.anonymous_read)
    if settings.htpasswd:
        return HtpasswdAuthorizer(settings.htpasswd, settings.realm, settings.anonymous_read)
    return Authorizer()
