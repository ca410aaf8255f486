"""Repository names, tags and references: the distribution spec's grammar."""

from __future__ import annotations

import re

from dockyard import digest as digests
from dockyard.errors import InvalidDigestError
from dockyard.registry.errors import APIError

# <name>: path components of [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by '/'.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# Docker's total limit on a repository name (with the registry host it is 255).
MAX_NAME = 255


def check_name(name: str) -> str:
    if len(name) > MAX_NAME or not NAME_RE.match(name):
        raise APIError("NAME_INVALID", {"name": name})
    return name


def is_tag(reference: str) -> bool:
    return bool(TAG_RE.match(reference))


def check_digest(value: str, code: str = "DIGEST_INVALID") -> str:
    try:
        return digests.validate(value)
    except InvalidDigestError as e:
        raise APIError(code, {"digest": value}, message=str(e)) from None


def check_reference(reference: str, writing: bool = False) -> tuple[str | None, str | None]:
    """(tag, None) or (None, digest). A malformed reference is a 400 for a PUT (the client
    sent a bad name); to a read or a delete it names nothing, so it is a 404
    MANIFEST_UNKNOWN, as distribution (whose routes never match it) and the OCI
    conformance suite have it."""
    if ":" in reference:
        if writing:
            return None, check_digest(reference)
        try:
            return None, digests.validate(reference)
        except InvalidDigestError:
            raise APIError("MANIFEST_UNKNOWN", {"reference": reference}) from None
    if is_tag(reference):
        return reference, None
    if not writing:
        raise APIError("MANIFEST_UNKNOWN", {"reference": reference})
    raise APIError("MANIFEST_UNKNOWN" if len(reference) <= 128 else "NAME_INVALID",
                   {"reference": reference}, message="invalid tag or digest", status=400)
