"""``engine.volumes``: named volumes of the local driver, kept under ``<root>/volumes/<name>/_data``.

As Docker does, a volume mounted for the first time over a directory the image has
gets a copy of that directory's content (``nocopy`` turns this off).
"""

from __future__ import annotations

import json
import os
import re
import time

from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.records import record as dataclass  # not dataclasses: ~10 ms of start-up (records.py)

TYPE_CHECKING = False  # typing, pathlib and shutil cost `volume ls` ~10 ms: plain str paths here
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

    from dockyard.engine import Engine

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class Volume:
    name: str
    driver: str
    created: float
    labels: dict[str, str]
    options: dict[str, str]
    anonymous: bool
    mountpoint: str

    def inspect(self) -> "dict[str, Any]":
        from dockyard.timefmt import rfc3339

        return {"CreatedAt": rfc3339(self.created), "Driver": self.driver, "Labels": self.labels or None,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options or None,
                "Scope": "local"}


class Volumes:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.base = os.path.join(os.fspath(engine.root), "volumes")

    @property
    def db(self):  # noqa: ANN201
        return self.engine.db

    def path(self, name: str) -> str:
        return os.path.join(self.base, name, "_data")

    # ---- verbs -------------------------------------------------------------------------

    def create(self, name: str | None = None, driver: str = "local", labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None, anonymous: bool = False) -> Volume:
        """Create (idempotent for an existing name, as Docker) and return the volume."""
        from dockyard.containers.names import new_id

        if driver != "local":
            raise DockyardError(f"create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        if name is None:
            name, anonymous = new_id(), True
        if not VALID_NAME.match(name):
            raise DockyardError(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                                'directory, use absolute path')
        existing = self.find(name)
        if existing is not None:
            _create_event(self.engine.root, name, existing.driver)  # Docker says create for an existing name too
            return existing
        from dockyard.store.owned import recording_dir

        with recording_dir(self.engine.root, os.path.join(self.base, name), exist_ok=True):  # no orphan meanwhile
            os.makedirs(self.path(name), exist_ok=True)
            self.db.execute("INSERT OR IGNORE INTO volumes (name, driver, created, labels, options, anonymous) "
                            "VALUES (?,?,?,?,?,?)", (name, driver, time.time(), json.dumps(dict(labels or {})),
                                                     json.dumps(dict(options or {})), int(anonymous)))
        _create_event(self.engine.root, name, driver)
        return self.get(name)

    def find(self, name: str) -> Volume | None:
        row = self.db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        return self._volume(row) if row is not None else None

    def get(self, name: str) -> Volume:
        volume = self.find(name)
        if volume is None:
            raise NotFoundError(f"No such volume: {name}")
        return volume

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[Volume]:
        volumes = [self._volume(r) for r in self.db.execute("SELECT * FROM volumes ORDER BY name")]
        filters = filters or {}
        used = self._used()
        out = []
        for v in volumes:
            if "name" in filters and not any(f in v.name for f in filters["name"]):
                continue
            if "dangling" in filters:
                want = filters["dangling"][-1].lower() in ("1", "true")
                if (v.name not in used) != want:
                    continue
            if "label" in filters and not all(_label_match(v.labels, f) for f in filters["label"]):
                continue
            if "driver" in filters and v.driver not in filters["driver"]:
                continue
            out.append(v)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        volume = self.find(name)
        if volume is None:
            if force:
                return
            raise NotFoundError(f"No such volume: {name}")
        users = self.engine.containers.store.using_volume(name)
        if users:
            raise ConflictError(f"remove {name}: volume is in use - [{', '.join(users)}]")
        delete_volume(self.db, str(self.engine.root), name)

    def prune(self, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None) -> tuple[list[str], int]:
        """Remove unused volumes (anonymous ones only unless ``all``); (names, bytes freed)."""
        used = self._used()
        removed, freed = [], 0
        for v in self.list(filters):
            if v.name in used or not (all or v.anonymous):
                continue
            from dockyard.fsutil import tree_size

            freed += tree_size(os.path.join(self.base, v.name))
            self.remove(v.name)
            removed.append(v.name)
        return removed, freed

    # ---- mounting ----------------------------------------------------------------------

    def prepare(self, name: str | None, image_rootfs: str | os.PathLike | None, destination: str,
                copy: bool = True) -> Volume:
        """The volume to mount at ``destination``, created on demand; filled from the image's
        content at that path when it is new and empty (Docker's copy-up)."""
        volume = self.find(name) if name else None  # made at create already: no second create event
        if volume is None:
            volume = self.create(name) if name else self.create()
        marker = os.path.join(self.base, volume.name, ".copied")
        if copy and image_rootfs is not None and not os.path.exists(marker):
            _copy_up(str(image_rootfs), destination, volume.mountpoint)
            with open(marker, "a"):
                pass
        return volume

    # ---- helpers -----------------------------------------------------------------------

    def _used(self) -> set[str]:
        from dockyard.containers.store import ContainerStore

        return ContainerStore(self.db).volumes_in_use()

    def _volume(self, row: "Any") -> Volume:
        return Volume(name=row["name"], driver=row["driver"], created=row["created"],
                      labels=json.loads(row["labels"]), options=json.loads(row["options"]),
                      anonymous=bool(row["anonymous"]), mountpoint=str(self.path(row["name"])))


def _copy_up(image_rootfs: str, destination: str, data: str) -> None:
    """The image's content at ``destination`` into the empty volume directory ``data``, owners
    and modes kept (Docker's copy-up). Both sides through descriptors (``saferoot``): the path
    is resolved inside the image's root, and a container already using the volume that plants
    symlinks in it meanwhile has them replaced, never followed out of the volume."""
    from dockyard import saferoot

    root_fd = saferoot.open_root(image_rootfs)
    try:
        try:
            src = saferoot.resolve(root_fd, destination, os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing to copy: the volume starts empty
    finally:
        os.close(root_fd)
    try:
        dst = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.listdir(dst):
                return
            saferoot.copy_children(src, dst, saferoot.KEEP)
            st = os.fstat(src)
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, st.st_mode & 0o7777)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _create_event(root: str, name: str, driver: str) -> None:
    from dockyard import events

    events.record(root, "volume", "create", name, {"driver": driver})


def delete_volume(db: "Any", root: str, name: str) -> None:
    """The volume's record, then its data (a kill -9 between them leaves files that prune
    and ``system check`` know as an orphan, never a record without its data)."""
    deleted = db.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount
    import shutil

    shutil.rmtree(os.path.join(root, "volumes", name), ignore_errors=True)
    if deleted:
        from dockyard import events

        events.record(root, "volume", "destroy", name, {"driver": "local"})


def _label_match(labels: "Mapping[str, str]", wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
