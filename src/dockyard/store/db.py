"""The sqlite state database: schema, migrations, transactions.

One file under the root holds all metadata (images, tags, layers). WAL mode lets
many CLI processes read while one writes; every change is one transaction, so a
kill -9 at any point leaves either the old or the new state.
"""

from __future__ import annotations

import os
import sqlite3
import time

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from types import TracebackType

# Each entry migrates from version i to i+1. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,                 -- config digest: Docker's image ID
        manifest_digest TEXT NOT NULL,       -- the single-platform manifest
        manifest_media_type TEXT NOT NULL,
        created TEXT,                        -- from the image config
        size INTEGER NOT NULL,               -- sum of unpacked layer sizes
        added_at REAL NOT NULL
    );
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        chain_id TEXT NOT NULL,
        PRIMARY KEY (image_id, position)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,               -- normalized: docker.io/library/nginx:latest
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        repository TEXT NOT NULL,            -- normalized: docker.io/library/nginx
        digest TEXT NOT NULL,                -- manifest or index digest as pulled/pushed
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (repository, digest)
    );
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT,                         -- parent chain ID, NULL for a base layer
        size INTEGER NOT NULL,               -- bytes of the unpacked diff
        created REAL NOT NULL
    );
    CREATE TABLE layer_blobs (                -- compressed forms known for a diff ID
        diff_id TEXT NOT NULL,
        blob_digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (diff_id, blob_digest)
    );
    CREATE INDEX layer_blobs_blob ON layer_blobs(blob_digest);
    """,
    # 1 -> 2: which repositories of a registry hold a blob (pulled from or pushed to),
    # so a push can mount it from there instead of uploading it again.
    """
    CREATE TABLE blob_sources (
        blob_digest TEXT NOT NULL,
        registry TEXT NOT NULL,              -- the reference's domain: docker.io, 127.0.0.1:5000
        repository TEXT NOT NULL,            -- path inside the registry: library/nginx
        PRIMARY KEY (blob_digest, registry, repository)
    );
    """,
    # 2 -> 3: containers (Docker's Config/HostConfig as JSON, the state as columns) and
    # named volumes.
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,                 -- 64 hex
        name TEXT NOT NULL UNIQUE,           -- without Docker's leading "/"
        image_id TEXT NOT NULL,              -- sha256:...
        image TEXT NOT NULL,                 -- as the user gave it
        created REAL NOT NULL,
        status TEXT NOT NULL,                -- created|running|paused|restarting|removing|exited|dead
        pid INTEGER NOT NULL DEFAULT 0,
        shim_pid INTEGER NOT NULL DEFAULT 0,
        shim_start TEXT NOT NULL DEFAULT '', -- /proc starttime of the shim: PIDs get reused
        exit_code INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        oom_killed INTEGER NOT NULL DEFAULT 0,
        started_at REAL,
        finished_at REAL,
        restart_count INTEGER NOT NULL DEFAULT 0,
        stopped_by_user INTEGER NOT NULL DEFAULT 0,
        config TEXT NOT NULL                 -- JSON: Path, Args, Config, HostConfig, Mounts
    );
    CREATE INDEX containers_image ON containers(image_id);
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL DEFAULT 'local',
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        anonymous INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 3 -> 4: networks, the containers' endpoints on them (IPAM: one address per network
    # and container, unique in its network) and the host ports published while running.
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,                 -- 64 hex
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,                -- bridge | host | null
        bridge TEXT NOT NULL DEFAULT '',     -- the Linux bridge device (driver bridge)
        subnet TEXT NOT NULL DEFAULT '',     -- 172.17.0.0/16
        gateway TEXT NOT NULL DEFAULT '',    -- 172.17.0.1, the bridge's own address
        ip_range TEXT NOT NULL DEFAULT '',   -- where dynamic addresses come from ('' = subnet)
        internal INTEGER NOT NULL DEFAULT 0, -- no egress, no published ports
        dns INTEGER NOT NULL DEFAULT 1,      -- the DNS responder answers names on it
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,                 -- Docker's EndpointID, 64 hex
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        address TEXT NOT NULL,               -- IPv4, inside the network's subnet
        mac TEXT NOT NULL,
        aliases TEXT NOT NULL DEFAULT '[]',  -- JSON: names the DNS responder answers besides name and short ID
        ifname TEXT NOT NULL,                -- inside the container: eth0, eth1, ...
        static INTEGER NOT NULL DEFAULT 0,   -- the address was asked for (--ip)
        created REAL NOT NULL,
        UNIQUE (network_id, address),
        UNIQUE (network_id, container_id)
    );
    CREATE INDEX endpoints_container ON endpoints(container_id);
    CREATE TABLE published_ports (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        proto TEXT NOT NULL,                 -- tcp | udp
        host_ip TEXT NOT NULL,               -- '' = every address
        host_port INTEGER NOT NULL,
        container_port INTEGER NOT NULL,
        container_ip TEXT NOT NULL,
        PRIMARY KEY (proto, host_ip, host_port)
    );
    CREATE INDEX published_ports_container ON published_ports(container_id);
    """,
    # 4 -> 5: the build cache (each step's resulting image state, keyed by what went into it;
    # its layer stays while the entry does) and the bridge addresses builds hold while they run.
    """
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,                -- sha256 of the parent key and the step's inputs
        chain_id TEXT NOT NULL DEFAULT '',   -- the top layer of the state ('' for no layer)
        state TEXT NOT NULL,                 -- JSON: image config and layer chain after the step
        size INTEGER NOT NULL DEFAULT 0,     -- bytes of the layer the step added (0: metadata only)
        created REAL NOT NULL,
        last_used REAL NOT NULL
    );
    CREATE INDEX build_cache_chain ON build_cache(chain_id);
    CREATE TABLE build_leases (
        owner TEXT NOT NULL,                 -- the build's work dir name (flocked while it runs)
        network_id TEXT NOT NULL REFERENCES networks(id),
        address TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (owner, network_id),
        UNIQUE (network_id, address)
    );
    """,
    # 5 -> 6: each container's summary (containers/summary.py's summarize: the parts of its
    # config a ps row shows), so ps decodes a small object per row instead of the whole config.
    # The rows already there get it here, in SQL; keep this in step with summarize().
    """
    ALTER TABLE containers ADD COLUMN summary TEXT;
    UPDATE containers SET summary = json_object(
        'Path', json_extract(config, '$.Path'),
        'Args', json_extract(config, '$.Args'),
        'Labels', json_extract(config, '$.Config.Labels'),
        'ExposedPorts', json_extract(config, '$.Config.ExposedPorts'),
        'Mounts', CASE WHEN json_type(config, '$.Mounts') = 'array' THEN
            (SELECT json_group_array(json_object('Type', json_extract(value, '$.Type'),
                                                 'Name', json_extract(value, '$.Name'),
                                                 'Source', json_extract(value, '$.Source')))
             FROM json_each(config, '$.Mounts')) ELSE json('[]') END,
        'NetworkMode', json_extract(config, '$.HostConfig.NetworkMode'),
        'Networks', CASE WHEN json_type(config, '$.NetworkingConfig.EndpointsConfig') = 'object' THEN
            (SELECT json_group_array(key) FROM json_each(config, '$.NetworkingConfig.EndpointsConfig'))
            ELSE json('[]') END
    );
    """,
]

DB_NAME = "dockyard.db"


def connect(root: str | os.PathLike) -> sqlite3.Connection:
    """Open (and create or migrate) the state DB under ``root``."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, DB_NAME)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    if _needs_setup(conn):
        # Two CLIs opening a fresh root at once: switching to WAL needs the database to
        # itself, and SQLite answers "database is locked" at once rather than waiting,
        # so the set-up is serialised by a file lock and re-checked under it.
        with _setup_lock(path):
            if _needs_setup(conn):
                _enable_wal(conn)
                _migrate(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _needs_setup(conn: sqlite3.Connection) -> bool:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return mode != "wal" or version < len(MIGRATIONS)


class _setup_lock:
    """The set-up's file lock (a class, not contextlib's decorator: contextlib costs every
    command's start-up ~0.5 ms)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the flock


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another connection (outside our lock, e.g. an older
    process that opened the file before us) still holds it in rollback-journal mode."""
    for attempt in range(100):
        try:
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        time.sleep(min(0.01 * (attempt + 1), 0.2))
    raise sqlite3.OperationalError("could not switch the state database to WAL mode: database is locked")


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    with transaction(conn):
        # Re-read inside the write lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


class transaction:
    """``with transaction(conn):`` a write transaction: BEGIN IMMEDIATE takes the write lock up
    front (no upgrade deadlocks); rolled back if the block raises, else committed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: "type[BaseException] | None", exc: "BaseException | None",
                 tb: "TracebackType | None") -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
