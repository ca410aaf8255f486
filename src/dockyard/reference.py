"""Image references: Docker's grammar and its normalization.

A reference names an image in a registry::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]     host: DNS-like name, IPv4, or [IPv6]
    path       := component ( "/" component )*
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}

Normalization follows Docker: without a domain the name lives on Docker Hub
("docker.io"), and single-component Hub names live under "library/"
(``nginx`` -> ``docker.io/library/nginx:latest``). The first component is a
domain only if it contains "." or ":", is exactly "localhost", or has an
uppercase letter (Hub paths are lowercase, so that cannot be a path).

This module is on the hot path of every CLI command: it imports only ``records`` (not
``dataclasses``); the digest check is imported when an unusual digest shows up. The common
shapes are checked with string methods; a part they cannot vouch for goes to the grammar's
regular expressions, compiled (and ``re`` with its ``enum``, ~5 ms) only then. So the fast
checks may only say "valid" where the regex would: anything else, errors included, is decided
by the regex.
"""

from __future__ import annotations

from dockyard.errors import InvalidDigestError, InvalidReferenceError
from dockyard.records import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"  # the host Docker Hub's API answers on
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255  # of the whole normalized name, domain included

_COMPONENT_RE = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
# \w would also take non-ASCII letters in Python; Docker's tags are ASCII.
_TAG_RE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_PATTERNS: dict[str, "re.Pattern[str]"] = {}

_LOWER_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM = _LOWER_DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TAG_CHARS = _ALNUM + "_.-"
_HEX = "0123456789abcdef"

_TAG_RULE = "up to 128 characters among letters, digits, '_', '.' and '-', not starting with '.' or '-'"
_COMPONENT_RULE = "lowercase letters and digits, separated by single '.', '_' or '__', or runs of '-'"


def _q(text: str) -> str:
    return f'"{text}"'


def _error(value: str, what: str) -> InvalidReferenceError:
    shown = value if len(value) <= 100 else value[:97] + "..."
    return InvalidReferenceError(f"invalid reference {_q(shown)}: {what}")


@record(frozen=True)
class Reference:
    """A normalized reference. Build it with :func:`parse`; fields are not re-validated."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/nginx``: the fully qualified name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The repository as Docker prints it: Hub's domain and ``library/`` dropped.

        Unlike Docker, a Hub path whose first component would read as a domain
        (``docker.io/foo.bar/app``, ``docker.io/localhost/app``) keeps its
        ``docker.io/`` so that the familiar form always parses back to this name."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        if self.path.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
            return self.path[len(OFFICIAL_PREFIX):]
        first = self.path.partition("/")[0]
        if "." in first or first == "localhost":
            return self.repository
        return self.path

    @property
    def registry_host(self) -> str:
        """The host[:port] to connect to for this repository."""
        return DOCKER_HUB_REGISTRY if self.domain == DEFAULT_DOMAIN else self.domain

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar(self) -> str:
        """Docker's short display form, e.g. ``nginx:latest`` or ``127.0.0.1:5000/app:1``."""
        return self.familiar_repository + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """The same name with ``tag`` (a digest, if any, is kept, as Docker's WithTag does)."""
        if not _tag_ok(tag):
            raise _error(f"{self.repository}:{tag}", f"invalid tag {_q(tag)} ({_TAG_RULE})")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """The same name (and tag) pinned to ``digest``."""
        _check_digest(f"{self.repository}@{digest}", digest)
        return replace(self, digest=digest)


def parse(value: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize ``value``; add tag ``latest`` if it has neither tag nor digest
    and ``default_tag`` is true. Raises InvalidReferenceError saying what is wrong."""
    if not value:
        raise _error(value, "empty reference")
    if len(value) == 64 and not value.strip(_HEX):
        # Docker refuses these as names so that they cannot shadow image IDs.
        raise _error(value, "a 64-character hex string is an image ID, not a repository name")

    rest, at, digest = value.partition("@")
    if at:
        _check_digest(value, digest)
    # A ":" after the last "/" starts the tag; one before it belongs to a domain's port.
    name, colon, tag = rest, "", ""
    i = rest.rfind(":")
    if i > rest.rfind("/"):
        name, colon, tag = rest[:i], ":", rest[i + 1:]
        if not _tag_ok(tag):
            raise _error(value, f"invalid tag {_q(tag)} ({_TAG_RULE})")

    domain, path = _split_domain(value, name)
    ref = Reference(domain, path, tag if colon else None, digest if at else None)
    if default_tag and ref.tag is None and ref.digest is None:
        ref = replace(ref, tag=DEFAULT_TAG)
    return ref


def parse_repository(value: str) -> Reference:
    """Parse a bare repository name (no tag, no digest), e.g. for ``push --all-tags``."""
    ref = parse(value, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise _error(value, "expected a repository name without tag or digest")
    return ref


def _split_domain(value: str, name: str) -> tuple[str, str]:
    """Split ``name`` into a validated, normalized (domain, path)."""
    if not name:
        raise _error(value, "repository name is empty")
    first, slash, remainder = name.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        domain, path = first, remainder
        if not _domain_ok(domain):
            raise _error(value, f"invalid registry domain {_q(domain)}")
        if domain == LEGACY_DEFAULT_DOMAIN:
            domain = DEFAULT_DOMAIN
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path

    if path.lower() != path:
        raise _error(value, "repository name must be lowercase")
    for component in path.split("/"):
        if not component:
            raise _error(value, "repository name has an empty path component")
        if not _component_ok(component):
            raise _error(value, f"invalid repository name component {_q(component)} ({_COMPONENT_RULE})")
    length = len(domain) + 1 + len(path)
    if length > NAME_MAX:
        raise _error(value, f"name too long ({length} characters with its domain, at most {NAME_MAX})")
    return domain, path


def _check_digest(value: str, digest: str) -> None:
    if digest[:7] == "sha256:" and len(digest) == 71 and not digest[7:].strip(_HEX):
        return  # the usual digest, valid as digest.validate would find it
    from dockyard.digest import validate  # imported lazily: it loads re

    try:
        validate(digest)
    except InvalidDigestError as e:
        raise _error(value, f"invalid digest {_q(digest)}: {e.message.rsplit(': ', 1)[-1]}") from None


# ---- the grammar's checks: string methods for the usual shapes, else the regex -------------


def _fullmatch(name: str, pattern: str, text: str) -> bool:
    compiled = _PATTERNS.get(name)
    if compiled is None:
        import re  # here: only an unusual name pays for re

        compiled = _PATTERNS[name] = re.compile(pattern)
    return compiled.fullmatch(text) is not None


def _fast_tag(tag: str) -> bool:
    """[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, exactly."""
    return 0 < len(tag) <= 128 and tag[0] not in ".-" and not tag.strip(_TAG_CHARS)


def _fast_component(component: str) -> bool:
    """[a-z0-9]+ ((.|_|__|-+) [a-z0-9]+)*: runs of lowercase letters and digits with one
    separator run between each two, that run ".", "_", "__" or only "-"."""
    if not component.strip(_LOWER_DIGITS):
        return bool(component)   # letters and digits only: the usual component
    if component[0] not in _LOWER_DIGITS or component[-1] not in _LOWER_DIGITS:
        return False
    run = ""
    for ch in component:
        if ch in _LOWER_DIGITS:
            if run and run not in (".", "_", "__") and run.strip("-"):
                return False
            run = ""
        elif ch in "._-":
            run += ch
        else:
            return False
    return True


def _fast_domain(domain: str) -> bool:
    """host[:port] with a host of dot-separated labels (letters, digits, inner "-"). [IPv6]
    and anything else go to the regex."""
    host, colon, port = domain.partition(":")
    if colon and (not port or not port.isdigit() or not port.isascii()):
        return False
    for label in host.split("."):
        if not label or label[0] == "-" or label[-1] == "-" or label.strip(_ALNUM + "-"):
            return False
    return True


def _tag_ok(tag: str) -> bool:
    return _fast_tag(tag) or _fullmatch("tag", _TAG_RE, tag)


def _component_ok(component: str) -> bool:
    return _fast_component(component) or _fullmatch("component", _COMPONENT_RE, component)


def _domain_ok(domain: str) -> bool:
    return _fast_domain(domain) or _fullmatch("domain", _DOMAIN_RE, domain)
