"""Errors a user can act on.

Every failure that reaches the CLI is a DockyardError: the CLI prints
``Error: <message>`` on one line and exits with ``exit_code``. Anything else is
a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class: a message for the user and the exit code to leave with."""

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InvalidReferenceError(DockyardError):
    """An image reference that does not follow the grammar."""


class NotFoundError(DockyardError):
    """A named object (image, layer, blob, credential) does not exist."""


class ConflictError(DockyardError):
    """The operation would break something in use (e.g. rmi of a used image)."""


class DigestMismatchError(DockyardError):
    """Content did not hash to the digest it was announced with."""


class SizeMismatchError(DockyardError):
    """Content was longer or shorter than announced (truncated or padded)."""


class InvalidDigestError(DockyardError):
    """A string that is not a digest we support."""


class InvalidArchiveError(DockyardError):
    """A tar stream that is malformed or tries to escape its root."""


class ManifestError(DockyardError):
    """A manifest or index we cannot use (too big, bad JSON, unknown type)."""


class RegistryError(DockyardError):
    """A registry answered with an error or could not be reached."""


class AuthenticationError(RegistryError):
    """The registry refused our credentials (or wanted some)."""


class StoreLockedError(DockyardError):
    """Another process holds a lock we needed for too long."""
