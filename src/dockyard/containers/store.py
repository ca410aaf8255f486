"""Container records in the state DB: one row per container, its state in columns (so
``ps`` and the shim touch only what they need) and Docker's Config/HostConfig as JSON.

This module owns the ``containers`` table: every statement that reads or writes it is
here, whoever runs it (the manager, the shim, the CLI's ``--rm`` hand-over, volumes).
Every change is one statement or one transaction; the shim and many CLIs write
concurrently and sqlite's write lock orders them. sqlite3 is not imported here: the shim
loads this module but keeps sqlite out of its own memory (it writes from forked children).
"""

from __future__ import annotations

import json

from dockyard.errors import ConflictError
from dockyard.records import field, record

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    import sqlite3
    from typing import Any, Iterable, Sequence

# Docker's container states (types.ContainerState).
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")
ACTIVE = (RUNNING, PAUSED, RESTARTING)

# What _select reads, and the record's names for it (config and summary stay text until used).
_FIELDS = ("id", "name", "image_id", "image", "created", "status", "pid", "shim_pid", "shim_start", "exit_code",
           "error", "oom_killed", "started_at", "finished_at", "restart_count", "stopped_by_user",
           "_config_json", "_summary_json")
_COLUMNS = ", ".join(_FIELDS[:-2]) + ", config, summary"

_STATE_COLUMNS = ("status", "pid", "shim_pid", "shim_start", "exit_code", "error", "oom_killed",
                  "started_at", "finished_at", "restart_count", "stopped_by_user")


@record
class ContainerRecord:
    id: str
    name: str
    image_id: str
    image: str
    created: float
    config: dict[str, Any]            # Path, Args, Config, HostConfig, Mounts, Runtime, ...
    status: str = CREATED
    pid: int = 0
    shim_pid: int = 0
    shim_start: str = ""
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    stopped_by_user: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host_config(self) -> dict[str, Any]:
        return self.config.get("HostConfig") or {}

    @property
    def container_config(self) -> dict[str, Any]:
        return self.config.get("Config") or {}

    @property
    def running(self) -> bool:
        return self.status in ACTIVE

    @property
    def summary(self) -> dict[str, Any]:
        """The parts of the config a ``ps`` row shows (containers/summary.py's ``summarize``):
        for a record read from the DB, its own column's, without decoding the config."""
        raw = self.__dict__.get("_summary_json")
        if raw:
            return json.loads(raw)
        from dockyard.containers.summary import summarize

        return summarize(self.config)

    def __getattr__(self, name: str) -> Any:
        # A record read from the DB decodes its config (a few kB of JSON) on first use: ``ps``
        # of 200 containers reads only their summaries.
        if name == "config":
            raw = self.__dict__.pop("_config_json", None)
            if raw is not None:
                value = self.__dict__["config"] = json.loads(raw)
                return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class NameConflict(ConflictError):
    """The name is another container's (a generated one: the create picks another)."""


def name_conflict(name: str, holder: str) -> ConflictError:
    return NameConflict(
        f'Conflict. The container name "/{name}" is already in use by container "{holder}". '
        "You have to remove (or rename) that container to be able to reuse that name.", exit_code=125)


class ContainerStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, record: ContainerRecord) -> None:
        import sqlite3

        try:
            self.conn.execute(
                "INSERT INTO containers (id, name, image_id, image, created, status, config, summary) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (record.id, record.name, record.image_id, record.image, record.created, record.status,
                 json.dumps(record.config), _summary_json(record.config)))
        except sqlite3.IntegrityError:
            row = self.conn.execute("SELECT id FROM containers WHERE name = ?", (record.name,)).fetchone()
            if row is not None:
                raise name_conflict(record.name, row[0]) from None
            raise

    def get(self, container_id: str) -> ContainerRecord | None:
        rows = self._select("WHERE id = ?", (container_id,))
        return rows[0] if rows else None

    def all(self, statuses: "tuple[str, ...] | None" = None) -> list[ContainerRecord]:
        """Newest first; only those in ``statuses`` when given (``ps`` without ``-a`` decodes
        the few running ones, not every stopped one)."""
        if statuses is None:
            return self._select("ORDER BY created DESC")
        marks = ", ".join("?" * len(statuses))
        return self._select(f"WHERE status IN ({marks}) ORDER BY created DESC", statuses)

    def _select(self, where: str, params: "tuple[Any, ...]" = ()) -> list[ContainerRecord]:
        """Records built as the decorator's __init__ would, with the config left as text (see
        ContainerRecord.__getattr__); plain tuples, not sqlite3.Row: ~2 us a row less."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        out = []
        for row in cursor.execute(f"SELECT {_COLUMNS} FROM containers {where}", params).fetchall():
            record = ContainerRecord.__new__(ContainerRecord)
            values = dict(zip(_FIELDS, row))
            values["oom_killed"] = bool(values["oom_killed"])
            values["stopped_by_user"] = bool(values["stopped_by_user"])
            values["extra"] = {}
            record.__dict__ = values
            out.append(record)
        return out

    def ids_and_names(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT id, name FROM containers")]

    def update(self, container_id: str, **changes: Any) -> None:
        """Set state columns (and ``config``) of one container in one statement."""
        if not changes:
            return
        columns, values = [], []
        for key, value in changes.items():
            if key == "config":
                columns.append("summary = ?")
                values.append(_summary_json(value))
                value = json.dumps(value)
            elif key not in _STATE_COLUMNS and key != "name":
                raise KeyError(key)
            columns.append(f"{key} = ?")
            values.append(value)
        import sqlite3

        try:
            self.conn.execute(f"UPDATE containers SET {', '.join(columns)} WHERE id = ?", (*values, container_id))
        except sqlite3.IntegrityError:
            name = changes.get("name", "")
            row = self.conn.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
            raise name_conflict(name, row[0] if row else "?") from None

    def delete(self, container_id: str) -> None:
        self.conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def mark_started(self, container_id: str, pid: int, started_at: float) -> None:
        """What the shim reported of a start, unless this very run already ended (the shim
        then wrote a later finish time)."""
        self.conn.execute(
            "UPDATE containers SET status = ?, pid = ?, started_at = ?, error = '', exit_code = 0 WHERE id = ? "
            "AND status IN (?, ?) AND (finished_at IS NULL OR finished_at < ?)",
            (RUNNING, pid, started_at, container_id, CREATED, EXITED, started_at))

    def restart_state(self, container_id: str) -> "list[Any] | None":
        """[stopped_by_user, restart_count], what the restart policy weighs; None when gone."""
        row = self.conn.execute("SELECT stopped_by_user, restart_count FROM containers WHERE id = ?",
                                (container_id,)).fetchone()
        return [row[0], row[1]] if row is not None else None

    def volumes_in_use(self, except_id: str = "") -> "set[str]":
        """Names of the volumes some container (other than ``except_id``) mounts."""
        used = set()
        for _, config in self.conn.execute("SELECT id, config FROM containers WHERE id != ?", (except_id,)):
            for m in json.loads(config).get("Mounts") or []:
                if m.get("Type") == "volume":
                    used.add(m.get("Name"))
        return used

    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        rows = self.conn.execute("SELECT id, status FROM containers WHERE image_id = ?", (image_id,))
        return [(r[0], r[1] in ACTIVE) for r in rows]

    def using_volume(self, name: str) -> list[str]:
        """IDs of containers mounting the named volume ``name``."""
        rows = self.conn.execute("SELECT id, config FROM containers").fetchall()
        return [r[0] for r in rows if any(m.get("Type") == "volume" and m.get("Name") == name
                                          for m in json.loads(r[1]).get("Mounts") or [])]


def _summary_json(config: "dict[str, Any]") -> str:
    from dockyard.containers.summary import summarize

    return json.dumps(summarize(config), separators=(",", ":"))


def summaries(records: "Sequence[ContainerRecord]") -> "list[dict[str, Any]]":
    """Each record's ``summary``; those read from the DB decoded as one JSON array (a 200-row
    ``ps`` spends half as long as on 200 small decodes)."""
    raws = [r.__dict__.get("_summary_json") for r in records]
    if all(raws):
        return json.loads("[" + ",".join(raws) + "]")
    return [r.summary for r in records]


def ids(records: Iterable[ContainerRecord]) -> list[str]:
    return [r.id for r in records]
