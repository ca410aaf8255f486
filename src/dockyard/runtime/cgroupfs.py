"""Where a container's cgroup lives on this host, for reading: the directories of its
``cgroupsPath`` in every hierarchy (v1 controllers, a hybrid host's cgroup2 mount, or the
one v2 tree). Every runtime puts the container at the ``cgroupsPath`` the engine wrote
into its spec, so stats, OOM and process lists read the same files whatever the runtime.
Writing (create, limits, freezer) is the runtime's business.

A hierarchy is a mount of type ``cgroup`` or ``cgroup2`` in this process's mount table
(/proc/self/mountinfo) that its mount point still shows (same device): a directory under
/sys/fs/cgroup is never taken for one because of its name or its files. Where a hierarchy
is not mounted (a private mount namespace that unmounted it, a host that never mounted it),
its directory is a plain directory of the tmpfs, shared with every other mount namespace:
writing there creates files that are no cgroup and that other namespaces then see.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"

# Super options of a v1 cgroup mount that name no controller.
_NOT_CONTROLLERS = frozenset(("rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode",
                              "favordynmods", "none", "nsdelegate", "memory_recursiveprot",
                              "memory_localevents", "memory_hugetlb_accounting"))


class Mount:
    """One visible cgroup mount: its point, ``cgroup`` or ``cgroup2``, its super options and
    the device (``st_dev``) of its superblock."""

    __slots__ = ("point", "fstype", "options", "dev")

    def __init__(self, point: str, fstype: str, options: str, dev: int) -> None:
        self.point, self.fstype, self.options, self.dev = point, fstype, options, dev

    def __repr__(self) -> str:
        return f"Mount({self.point!r}, {self.fstype!r}, {self.options!r})"

    @property
    def key(self) -> str:
        """The hierarchy's key in ``CgroupPaths.dirs``: its v1 controllers joined by commas,
        ``unified`` for a cgroup2 mount."""
        return "unified" if self.fstype == "cgroup2" else ",".join(controllers_of(self.options))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(mountinfo: str = MOUNTINFO) -> "list[Mount]":
    """Every cgroup and cgroup2 mount of the mount table that its mount point still shows,
    in the table's order. One the table lists but something mounted later hides (on the
    same point or on a directory above it) fails the device check and is left out."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-", 6)
            except ValueError:
                continue
            fstype = fields[sep + 1]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            major, _, minor = fields[2].partition(":")
            dev = os.makedev(int(major), int(minor))
            point = _unescape(fields[4])
            try:
                if os.stat(point).st_dev != dev:
                    continue
            except OSError:
                continue
            found.append(Mount(point, fstype, fields[sep + 3] if len(fields) > sep + 3 else "", dev))
    return found


def _unified(mounts: "list[Mount]") -> bool:
    return any(m.fstype == "cgroup2" and m.point == CGROUP_ROOT for m in mounts)


def is_unified() -> bool:
    """True on a pure cgroup v2 host: /sys/fs/cgroup is itself a cgroup2 mount."""
    return _unified(cgroup_mounts())


def v1_hierarchies() -> "dict[str, str]":
    """Mount point -> super options (``rw,cpu`` / ``rw,name=systemd``) of each visible cgroup
    mount, plus the cgroup2 mount of a hybrid host under the option ``unified``."""
    found: "dict[str, str]" = {}
    for m in cgroup_mounts():
        found.setdefault(m.point, "unified" if m.fstype == "cgroup2" else m.options)
    return found


def controllers_of(options: str) -> "list[str]":
    return [o for o in options.split(",")
            if o.startswith("name=") or (o and "=" not in o and o not in _NOT_CONTROLLERS)]


class CgroupPaths:
    """One cgroup path in every hierarchy of this host. ``dirs``: hierarchy key (the v1
    controllers joined by commas, ``unified`` for a hybrid's cgroup2, ``""`` on v2) ->
    directory; ``mounts``: the same keys -> the ``Mount`` the directory is under."""

    def __init__(self, path: str) -> None:
        if not path.startswith("/"):
            path = "/" + path
        self.path = os.path.normpath(path)
        mounts = cgroup_mounts()
        self.unified = _unified(mounts)
        self.mounts: "dict[str, Mount]" = {}
        if self.unified:
            self.mounts[""] = next(m for m in mounts if m.fstype == "cgroup2" and m.point == CGROUP_ROOT)
        else:
            # One directory per hierarchy: a hierarchy mounted twice (a bind mount elsewhere)
            # is taken at its place under /sys/fs/cgroup, else where it was mounted first.
            for m in sorted(mounts, key=lambda m: not m.point.startswith(CGROUP_ROOT + "/")):
                key = m.key
                if key:
                    self.mounts.setdefault(key, m)
        root = "" if self.path == "/" else self.path
        self.dirs = {key: m.point + root for key, m in self.mounts.items()}

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
        if not self.dirs:
            return []
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


def swap_limit_supported() -> bool:
    """Whether a memory+swap limit can be set (Docker's SwapLimit): cgroup v1's memory
    hierarchy has ``memory.memsw.*`` only with swap accounting on; cgroup v2 has
    ``memory.swap.max`` wherever the memory controller is enabled."""
    import os

    if is_unified():
        try:
            with open(os.path.join(CGROUP_ROOT, "cgroup.controllers")) as f:
                return "memory" in f.read().split()
        except OSError:
            return False
    for point, options in v1_hierarchies().items():
        if "memory" in controllers_of(options):
            return os.path.exists(os.path.join(point, "memory.memsw.limit_in_bytes"))
    return False
