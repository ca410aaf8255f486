"""Digests: parsing, validation and hashing while data streams past."""

from __future__ import annotations

import re

from dockyard.errors import DigestMismatchError, InvalidDigestError, SizeMismatchError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

# Hex lengths of the algorithms the OCI image spec registers.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for bounded memory


def validate(digest: str) -> str:
    """Return ``digest`` if it is ``algorithm:hex`` of a supported algorithm, else raise."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep:
        raise InvalidDigestError(f"invalid digest {digest!r}: expected algorithm:hex")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidDigestError(f"invalid digest {digest!r}: unsupported algorithm {algorithm!r}")
    if len(encoded) != length or not _HEX.match(encoded):
        raise InvalidDigestError(f"invalid digest {digest!r}: expected {length} lowercase hex characters")
    return digest


def is_digest(value: str) -> bool:
    try:
        validate(value)
        return True
    except InvalidDigestError:
        return False


def algorithm_of(digest: str) -> str:
    return validate(digest).partition(":")[0]


def hex_of(digest: str) -> str:
    return validate(digest).partition(":")[2]


def new_hasher(algorithm: str = "sha256"):
    if algorithm not in ALGORITHMS:
        raise InvalidDigestError(f"unsupported digest algorithm {algorithm!r}")
    import hashlib  # here: a command that never hashes does not pay its import

    return hashlib.new(algorithm)


def sha256_hasher():  # noqa: ANN201
    """A sha256 object for many small updates: the interpreter's own (loads in microseconds)
    rather than hashlib's OpenSSL one (~3 ms to import), which wins only on big data."""
    try:
        from _sha256 import sha256   # CPython 3.11 (3.12 calls the module _sha2)
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[no-redef]
        except ImportError:
            from hashlib import sha256  # type: ignore[no-redef]
    return sha256()


def small_sha256(data: bytes) -> str:
    """The hex sha256 of a few bytes (cache keys, names), without loading OpenSSL."""
    h = sha256_hasher()
    h.update(data)
    return h.hexdigest()


def of_bytes(data: bytes, algorithm: str = "sha256") -> str:
    import hashlib

    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def of_file(path: str, algorithm: str = "sha256") -> str:
    h = new_hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


class Verifier:
    """Hashes and counts bytes fed to it; ``check()`` compares with what was announced."""

    def __init__(self, expected: str | None = None, size: int | None = None, algorithm: str | None = None) -> None:
        if expected is not None:
            validate(expected)
            algorithm = algorithm_of(expected)
        self.algorithm = algorithm or "sha256"
        self.expected = expected
        self.expected_size = size
        self._hash = new_hasher(self.algorithm)
        self.count = 0

    def update(self, data: bytes) -> None:
        self.count += len(data)
        if self.expected_size is not None and self.count > self.expected_size:
            raise SizeMismatchError(
                f"content is larger than the announced {self.expected_size} bytes"
                + (f" for {self.expected}" if self.expected else "")
            )
        self._hash.update(data)

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"

    def check(self) -> str:
        """Raise if size or digest differ from the expected ones; return the digest."""
        if self.expected_size is not None and self.count != self.expected_size:
            raise SizeMismatchError(
                f"content is truncated: got {self.count} of {self.expected_size} bytes"
                + (f" for {self.expected}" if self.expected else "")
            )
        actual = self.digest
        if self.expected is not None and actual != self.expected:
            raise DigestMismatchError(f"digest mismatch: expected {self.expected}, got {actual}")
        return actual


def iter_file(f: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    while data := f.read(chunk):
        yield data
