"""Where a blob is known to live: repositories of a registry it was pulled from or pushed to.

Push asks this before uploading a blob the registry lacks in the target repository:
if another repository of the same registry holds it, a cross-repository mount costs
one request instead of an upload (Docker keeps the same table, "v2metadata").
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from dockyard.store import db

# Mount attempts per blob: each one that fails costs a round trip.
MAX_CANDIDATES = 3


def remember(conn: sqlite3.Connection, registry: str, repository: str, digests: Iterable[str]) -> None:
    rows = [(d, registry, repository) for d in digests]
    if not rows:
        return
    with db.transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO blob_sources (blob_digest, registry, repository) VALUES (?, ?, ?)", rows)


def candidates(conn: sqlite3.Connection, registry: str, digest: str, exclude: str) -> list[str]:
    """Other repositories of ``registry`` known to hold ``digest``."""
    rows = conn.execute(
        "SELECT repository FROM blob_sources WHERE blob_digest = ? AND registry = ? AND repository != ?"
        " ORDER BY rowid DESC LIMIT ?",
        (digest, registry, exclude, MAX_CANDIDATES),
    ).fetchall()
    return [r[0] for r in rows]


def forget(conn: sqlite3.Connection, registry: str, repository: str, digest: str) -> None:
    """A mount from there failed: the blob is gone or we may not read it."""
    with db.transaction(conn):
        conn.execute(
            "DELETE FROM blob_sources WHERE blob_digest = ? AND registry = ? AND repository = ?",
            (digest, registry, repository))
