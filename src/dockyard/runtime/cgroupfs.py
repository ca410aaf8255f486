"""Where a container's cgroup lives on this host, for reading: the directories of its
``cgroupsPath`` in every hierarchy (v1 controllers, a hybrid host's cgroup2 mount, or the
one v2 tree). Every runtime puts the container at the ``cgroupsPath`` the engine wrote
into its spec, so stats, OOM and process lists read the same files whatever the runtime.
Writing (create, limits, freezer) is the runtime's business.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def is_unified() -> bool:
    """True on a pure cgroup v2 host (/sys/fs/cgroup is itself the cgroup2 mount)."""
    return os.path.exists(CGROUP_ROOT + "/cgroup.controllers")


def v1_hierarchies() -> "dict[str, str]":
    """Mount point -> super options (``rw,cpu`` / ``rw,name=systemd``) of each cgroup mount,
    plus the cgroup2 mount of a hybrid host under the option ``unified``."""
    found: "dict[str, str]" = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, point = fields[sep + 1], fields[4]
            if fstype == "cgroup":
                found.setdefault(point, fields[sep + 3])
            elif fstype == "cgroup2":
                found.setdefault(point, "unified")
    return found


def controllers_of(options: str) -> "list[str]":
    return [o for o in options.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]


class CgroupPaths:
    """One cgroup path in every hierarchy of this host. ``dirs``: hierarchy key (the v1
    controllers joined by commas, ``unified`` for a hybrid's cgroup2, ``""`` on v2) ->
    directory."""

    def __init__(self, path: str) -> None:
        if not path.startswith("/"):
            path = "/" + path
        self.path = os.path.normpath(path)
        self.unified = is_unified()
        if self.unified:
            self.dirs = {"": CGROUP_ROOT + self.path}
        else:
            self.dirs = {}
            for point, options in v1_hierarchies().items():
                key = "unified" if options == "unified" else ",".join(controllers_of(options))
                self.dirs[key] = point + self.path

    def dir(self, controller: str) -> "str | None":
        """The v1 directory of ``controller`` (None on v2 or when it is not mounted)."""
        for key, path in self.dirs.items():
            if controller in key.split(","):
                return path
        return None

    def v2_dir(self) -> "str | None":
        """The cgroup2 directory: the whole cgroup on v2, a hybrid host's unified part."""
        return self.dirs.get("") or self.dirs.get("unified")

    def pids(self) -> "list[int]":
        path = self.dirs.get("") or self.dir("pids") or self.dir("memory") or next(iter(self.dirs.values()))
        try:
            with open(path + "/cgroup.procs") as f:
                return [int(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer struck in this cgroup (v1 or v2)."""
        memory = self.dirs.get("") or self.dir("memory")
        if memory is None:
            return False
        name, key = ("memory.events", "oom_kill") if self.unified else ("memory.oom_control", "oom_kill")
        try:
            with open(f"{memory}/{name}") as f:
                for line in f:
                    field, _, value = line.partition(" ")
                    if field == key and int(value) > 0:
                        return True
        except (OSError, ValueError):
            pass
        return False
