"""The state DB: set-up of a fresh root by several processes at once, migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dockyard.store import db

OPEN_AND_WRITE = (
    "import sys\n"
    "from dockyard.store import db\n"
    "conn = db.connect(sys.argv[1])\n"
    "with db.transaction(conn):\n"
    "    conn.execute(\"INSERT OR IGNORE INTO blob_sources (blob_digest, registry, repository)\"\n"
    "                 \" VALUES ('d', 'r', ?)\", (sys.argv[1],))\n"
)


def test_many_processes_open_a_fresh_root_at_once(tmp_path: Path) -> None:
    """Two CLIs on a new root race to create the DB and switch it to WAL; none may fail
    with "database is locked" (seen in CI with two concurrent pulls)."""
    for round_ in range(5):
        root = tmp_path / f"root{round_}"
        root.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_WRITE, str(root)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(8)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, "\n".join(errors)
        conn = db.connect(root)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    conn = db.connect(tmp_path)
    try:
        with db.transaction(conn):
            conn.execute("INSERT INTO blob_sources (blob_digest, registry, repository) VALUES ('d', 'r', 'x')")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert conn.execute("SELECT COUNT(*) FROM blob_sources").fetchone()[0] == 0
