"""The build cache: the image state after each build step, keyed by everything the step
depended on.

A key is sha256 over the parent's key and the step's inputs (the instruction after
expansion, the build args it saw, its mounts, for COPY/ADD the content digest of its
sources). An entry holds the state after the step (the image config with its history, and
the layer chain); its top layer stays in the layer store while the entry exists (the layer
store's ``unused`` counts entries as users). A fully cached build therefore yields exactly
the image of the build before it, ID included, as BuildKit does.

Entries are shared by all images and builds, survive them, and go by ``builder prune``.
"""

from __future__ import annotations

import json
import time

from dockyard.records import record
from dockyard.store.db import transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.engine import Engine


@record
class State:
    """An image as a build holds it between steps."""

    config: "dict[str, Any]"        # the OCI image config: config, rootfs.diff_ids, history, created...
    chains: "list[str]"             # chain IDs, parallel to rootfs.diff_ids

    @property
    def top(self) -> str | None:
        return self.chains[-1] if self.chains else None

    def copy(self) -> "State":
        """A deep copy (a JSON round trip: the copy module costs a cached build's start-up)."""
        return State(config=json.loads(json.dumps(self.config)), chains=list(self.chains))

    def add_history(self, entry: "dict[str, Any]") -> None:
        """Append a history entry; the image's ``created`` is its last entry's."""
        self.config.setdefault("history", []).append(entry)
        self.config["created"] = entry["created"]

    def to_json(self) -> str:
        # Key order kept: the exported config must be byte-identical whether it came from the cache or not.
        return json.dumps({"config": self.config, "chains": self.chains}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "State":
        data = json.loads(text)
        return cls(config=data["config"], chains=list(data["chains"]))


@record
class CacheUsage:
    entries: int
    size: int              # bytes of the layers the entries added
    reclaimable: int       # of which no image uses


@record
class CacheEntry:
    key: str
    size: int
    created: float
    last_used: float
    shared: bool           # an image holds its layer too


def key(parent: str, *inputs: object) -> str:
    """The cache key of a step on ``parent`` (a key, or a base image's ID)."""
    from dockyard.digest import small_sha256

    data = json.dumps([parent, *inputs], separators=(",", ":"), sort_keys=True, default=str)
    return "sha256:" + small_sha256(data.encode())


class BuildCache:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.conn = engine.db
        self.used: list[str] = []   # keys hit, marked used in one write by ``touch``

    def get(self, cache_key: str) -> State | None:
        """The state stored under ``cache_key`` if every layer it needs is still here."""
        row = self.conn.execute("SELECT state, chain_id FROM build_cache WHERE key = ?", (cache_key,)).fetchone()
        if row is None:
            return None
        if row["chain_id"] and not self.engine.layers.has(row["chain_id"]):
            return None
        self.used.append(cache_key)
        return State.from_json(row["state"])

    def touch(self) -> None:
        """Record when the entries hit were last used (one transaction for the whole build)."""
        used, self.used = self.used, []
        if used:
            with transaction(self.conn):
                self.conn.executemany("UPDATE build_cache SET last_used = ? WHERE key = ?",
                                      [(time.time(), k) for k in used])

    def put(self, cache_key: str, state: State, size: int = 0) -> None:
        now = time.time()
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO build_cache (key, chain_id, state, size, created, last_used)"
                " VALUES (?, ?, ?, ?, ?, ?)", (cache_key, state.top or "", state.to_json(), size, now, now))

    def entries(self) -> "list[CacheEntry]":
        """Every entry, most recently used first."""
        used = self.engine.image_store.referenced_chains()
        rows = self.conn.execute("SELECT key, chain_id, size, created, last_used FROM build_cache"
                                 " ORDER BY last_used DESC").fetchall()
        return [CacheEntry(key=r["key"], size=r["size"], created=r["created"], last_used=r["last_used"],
                           shared=bool(r["chain_id"]) and r["chain_id"] in used) for r in rows]

    def usage(self) -> CacheUsage:
        used = self.engine.image_store.referenced_chains()
        rows = self.conn.execute("SELECT chain_id, size FROM build_cache").fetchall()
        size = sum(r["size"] for r in rows)
        reclaimable = sum(r["size"] for r in rows if r["chain_id"] not in used)
        return CacheUsage(entries=len(rows), size=size, reclaimable=reclaimable)

    def prune(self, all: bool = False, until: float | None = None) -> "list[tuple[str, int]]":
        """Drop entries (all of them with ``all``, else those whose layer no image uses),
        then the layers only they held; [(key, bytes)] of what went. ``until``: only entries
        last used before that time."""
        from dockyard.system.leftovers import container_chains

        used = set() if all else self.engine.image_store.referenced_chains()
        removed: list[tuple[str, int]] = []
        with transaction(self.conn):
            for row in self.conn.execute("SELECT key, chain_id, size, last_used FROM build_cache").fetchall():
                if row["chain_id"] in used and row["chain_id"]:
                    continue
                if until is not None and row["last_used"] >= until:
                    continue
                self.conn.execute("DELETE FROM build_cache WHERE key = ?", (row["key"],))
                removed.append((row["key"], row["size"]))
        from dockyard.store.owned import collecting

        layers = self.engine.layers
        keep = container_chains(self.engine)
        with collecting(self.engine.root) as free:
            if free:  # else a pull or build is alive and may be about to use them: a later prune
                from dockyard.system.leftovers import remove_unreferenced, unreferenced_blobs

                for chain in layers.unused():
                    if chain not in keep:
                        layers.delete(chain)
                for item in unreferenced_blobs(self.engine):   # the layer tars only the cache held
                    remove_unreferenced(self.engine, item)
        return removed
