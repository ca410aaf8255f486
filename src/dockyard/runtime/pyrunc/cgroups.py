"""Cgroups v1 (including the v1/v2 hybrid) and v2, with the layout detected at run time.

A container's cgroup is ``linux.cgroupsPath`` below the root of every hierarchy:
each v1 controller mount (and a hybrid's cgroup2 mount) on v1 hosts, the one tree
on v2 hosts. A hierarchy is a cgroup mount of the mount table (``cgroupfs``), and its
directories are made relative to a descriptor of that very mount, so nothing is ever
written into a plain directory of /sys/fs/cgroup's tmpfs.

Only the files for the resources the spec sets are written, as crun writes them. A resource
the spec sets that this host cannot apply (its controller not mounted, its file missing,
a value the kernel refuses, a v1-only setting on cgroup v2) refuses the container with an
error naming the setting: nothing the spec asks for is silently dropped. Device rules
(``devices.py``) go to the v1 devices controller or, where there is none, to an eBPF filter
on the cgroup2 directory; with neither, a container with device rules is refused.
"""

from __future__ import annotations

import errno
import os
import time

from dockyard.runtime.cgroupfs import CGROUP_ROOT, CgroupPaths, controllers_of, is_unified, v1_hierarchies  # noqa: F401
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CgroupError(OSError):
    """A resource of the spec that this host's cgroups cannot apply. An OSError whose words
    name the setting, the file and why, so that the step that applies the resources puts
    its own name in front, as for any other failed write."""

    def __init__(self, message: str, err: int = errno.EINVAL) -> None:
        super().__init__(err, message)

    def __str__(self) -> str:
        return self.strerror


class Cgroup(CgroupPaths):
    """The container's cgroup in every hierarchy of this host: set up, frozen, torn down."""

    # ------------------------------------------------------------------ set-up

    def create(self) -> None:
        """Make the cgroup's directory in every hierarchy: each level relative to a
        descriptor of the one below, starting from the hierarchy's mount point checked to
        still be that mount (so a hierarchy unmounted meanwhile fails, and never gets
        plain directories in the tmpfs under it)."""
        parts = [p for p in self.path.split("/") if p]
        for key, path in self.dirs.items():
            mount = self.mounts[key]
            fd = os.open(mount.point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if os.fstat(fd).st_dev != mount.dev:
                    raise CgroupError(f"{mount.point} is no longer the cgroup hierarchy "
                                      f"({mount.options or mount.fstype}) the mount table listed: "
                                      f"refusing to create {path} there")
                _mkdirs_at(fd, parts, cpuset="cpuset" in key.split(","))
            finally:
                os.close(fd)
        if self.unified:
            _enable_controllers(self.path)

    def add(self, pid: int) -> None:
        for path in self.dirs.values():
            _write(path + "/cgroup.procs", str(pid))

    def apply(self, resources: "dict[str, Any]") -> None:
        """Write the spec's ``linux.resources`` (CgroupError for one this host cannot apply)."""
        if self.unified:
            _apply_v2(self.dirs[""], resources)
        else:
            _apply_v1(self, resources)
        self.apply_devices(resources.get("devices") or [])

    def apply_devices(self, entries: "list[dict[str, Any]]") -> None:
        """The spec's device rules plus the runtime's default devices (``devices.py``): the
        v1 devices controller where this host has one, else an eBPF filter on the cgroup2
        directory (a v2 host, or a hybrid one without v1 devices). Fails closed: rules that
        neither can enforce refuse the container. No rules at all: no device isolation
        asked for, none set up."""
        if not entries:
            return
        from dockyard.runtime.pyrunc import devices

        state = devices.effective(entries)
        if state.allow_all:
            return
        v1 = None if self.unified else self.dir("devices")
        if v1 is not None:
            devices.apply_v1(v1, state)
            return
        v2 = self.v2_dir()
        if v2 is None or not os.path.isdir(v2):
            raise devices.DeviceError(
                "the spec restricts device access, but this host has neither a cgroup v1 devices hierarchy nor "
                "a cgroup2 directory for the container: refusing to run it without device isolation")
        try:
            devices.apply_v2(v2, state)
        except OSError as e:
            raise devices.DeviceError(
                f"cannot enforce the spec's device rules with an eBPF filter on {v2}: {e.strerror or e}; "
                "refusing to run the container without device isolation") from None

    # ------------------------------------------------------------------ freezer

    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        """Freeze or thaw every process of the cgroup; returns once the kernel says it is done."""
        v2 = self.v2_dir()
        if v2 is not None and (self.unified or not self.dir("freezer")):
            _write(v2 + "/cgroup.freeze", "1" if frozen else "0")
            done = lambda: _event(v2, "frozen") == ("1" if frozen else "0")  # noqa: E731
        else:
            freezer = self.dir("freezer")
            if freezer is None:
                raise OSError(95, "no freezer cgroup on this host")
            want = "FROZEN" if frozen else "THAWED"
            _write(freezer + "/freezer.state", want)
            done = lambda: _read(freezer + "/freezer.state") == want  # noqa: E731
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.002)

    def thaw(self) -> None:
        """Thaw the cgroup if it is frozen (and exists); never fails."""
        try:
            if self.frozen():
                self.freeze(False)
        except OSError:
            pass

    def frozen(self) -> bool:
        v2 = self.v2_dir()
        if v2 is not None and (self.unified or not self.dir("freezer")):
            return _event(v2, "frozen") == "1"
        freezer = self.dir("freezer")
        try:
            return freezer is not None and _read(freezer + "/freezer.state") != "THAWED"
        except OSError:
            return False

    # ------------------------------------------------------------------ tear-down

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the leaf in every hierarchy; processes that linger are killed first (and
        thawed: a frozen process does not die of SIGKILL until it is)."""
        self.thaw()
        deadline = time.monotonic() + timeout
        for path in self.dirs.values():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    for pid in self.pids():
                        try:
                            os.kill(pid, 9)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.005)


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise OSError(e.errno, f"writing {value!r} to {path}: {os.strerror(e.errno)}") from None
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _event(cgroup_dir: str, key: str) -> str:
    """A value of a v2 cgroup's ``cgroup.events`` ("frozen 1")."""
    try:
        with open(cgroup_dir + "/cgroup.events") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return value.strip()
    except FileNotFoundError:
        pass
    return ""


def _mkdirs_at(top: int, parts: "list[str]", cpuset: bool = False) -> None:
    """mkdir -p of ``parts`` below the directory ``top``, one level at a time (each opened
    O_NOFOLLOW before the next). v1 cpuset cgroups start with empty cpus/mems, which
    refuses tasks: the parent's values are copied into every level made here."""
    fd = os.dup(top)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                if made and cpuset:
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not _read_at(child, name):
                            _write_at(child, name, _read_at(fd, name))
            except BaseException:
                os.close(child)
                raise
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def _read_at(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, 65536).decode().strip()
    finally:
        os.close(fd)


def _write_at(dir_fd: int, name: str, value: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise OSError(e.errno, f"writing {value!r} to {name}: {os.strerror(e.errno)}") from None
    finally:
        os.close(fd)


def _enable_controllers(path: str) -> None:
    """v2: a cgroup gets a controller's files only if every ancestor delegates it."""
    available = _read(CGROUP_ROOT + "/cgroup.controllers").split()
    wanted = " ".join("+" + c for c in available if c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb", "rdma"))
    current = CGROUP_ROOT
    for part in path.strip("/").split("/")[:-1]:
        try:
            _write(current + "/cgroup.subtree_control", wanted)
        except OSError:
            pass  # a controller in use by a domain with processes; the rest still applies
        current += "/" + part
    try:
        _write(current + "/cgroup.subtree_control", wanted)
    except OSError:
        pass


def _device_rule(rule: "dict[str, Any]") -> str:
    """The v1 ``devices.allow``/``devices.deny`` line of one OCI rule (``c 136:* rwm``)."""
    from dockyard.runtime.pyrunc import devices

    return devices.parse_rules([rule])[0].cgroup_string()


# ------------------------------------------------------------------ writing one setting

def _put(directory: str, name: str, value: "int | str", setting: str, missing: str = "") -> None:
    """Write ``value`` to the cgroup file ``name`` for the spec's ``setting`` (its JSON path);
    any failure is a CgroupError naming the setting, the file and why (``missing``: what a
    missing file means on this host)."""
    _put_lines(directory, name, [str(value)], setting, missing)


def _put_lines(directory: str, name: str, lines: "list[str]", setting: str, missing: str = "") -> None:
    """One write(2) per line, as the kernel parses these files (devices, throttles, io.max)."""
    path = f"{directory}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT and os.path.isdir(directory):
            raise CgroupError(f"{setting}: cannot apply it: this host's cgroup has no {name} "
                              f"({missing or 'not provided by this kernel'})", e.errno) from None
        raise CgroupError(f"{setting}: cannot open {path}: {os.strerror(e.errno)}", e.errno) from None
    try:
        for line in lines:
            try:
                os.write(fd, line.encode())
            except OSError as e:
                raise CgroupError(f"{setting}: writing {line!r} to {path}: {os.strerror(e.errno)}", e.errno) from None
    finally:
        os.close(fd)


def _first(directory: str, names: "tuple[str, ...]") -> "str | None":
    """The first of ``names`` (a file and its aliases) that the cgroup has."""
    for name in names:
        if os.path.exists(f"{directory}/{name}"):
            return name
    return None


def _memory_given(memory: "dict[str, Any]") -> "dict[str, Any]":
    """The memory settings the spec asks for: present, but not ``disableOOMKiller: false``
    (the kernel's default) nor ``swappiness: -1`` (2^64-1 as a Go uint64), runc's and
    Docker's "unset". ``checkBeforeUpdate`` is a check of ``update``, not a setting."""
    given = {k: v for k, v in memory.items() if v is not None and k != "checkBeforeUpdate"}
    if given.get("disableOOMKiller") is False:
        del given["disableOOMKiller"]
    if given.get("swappiness") in (-1, (1 << 64) - 1):
        del given["swappiness"]
    return given


def _v1_dir(cgroup: "Cgroup", controller: str, setting: str) -> str:
    path = cgroup.dir(controller)
    if path is None:
        hint = {"net_cls": " (net_cls is a cgroup v1 controller; cgroup v2 has none)",
                "net_prio": " (net_prio is a cgroup v1 controller; cgroup v2 has none)"}.get(controller, "")
        raise CgroupError(f"{setting}: cannot apply it: this host has no cgroup v1 {controller} hierarchy "
                          f"mounted{hint}", errno.ENOENT)
    return path


def _v2_refused(setting: str, why: str = "it exists on cgroup v1 only") -> CgroupError:
    return CgroupError(f"{setting}: cannot apply it on this cgroup v2 host: {why}", errno.EOPNOTSUPP)


# ------------------------------------------------------------------ cgroup v1

_MEMORY_V1 = (  # spec key, file, what a missing file means
    ("kernel", "memory.kmem.limit_in_bytes", "this kernel has no kernel memory accounting"),
    ("useHierarchy", "memory.use_hierarchy", ""),
    ("reservation", "memory.soft_limit_in_bytes", ""),
    ("disableOOMKiller", "memory.oom_control", ""),
    ("kernelTCP", "memory.kmem.tcp.limit_in_bytes", "this kernel has no TCP memory accounting"),
    ("swappiness", "memory.swappiness", ""),
)


def _memory_v1(cgroup: "Cgroup", memory: "dict[str, Any]") -> None:
    given = _memory_given(memory)
    if not given:
        return
    mem = _v1_dir(cgroup, "memory", "linux.resources.memory")
    # crun's order: the limit, then memory+swap; a limit above the current memory+swap
    # limit is refused (EINVAL) until memory+swap is raised, so then the other way round.
    limit_later = False
    if "limit" in given:
        try:
            _put(mem, "memory.limit_in_bytes", given["limit"], "linux.resources.memory.limit")
        except CgroupError:
            if "swap" not in given:
                raise
            limit_later = True
    if "swap" in given:
        # No memsw files: swap accounting is off (or no swap); crun and Docker go on without.
        if os.path.exists(mem + "/memory.memsw.limit_in_bytes"):
            _put(mem, "memory.memsw.limit_in_bytes", given["swap"], "linux.resources.memory.swap")
    if limit_later:
        _put(mem, "memory.limit_in_bytes", given["limit"], "linux.resources.memory.limit")
    for key, name, missing in _MEMORY_V1:
        if key not in given:
            continue
        value = given[key]
        setting = f"linux.resources.memory.{key}"
        if key in ("useHierarchy", "disableOOMKiller"):
            value = "1" if value else "0"
        elif key == "swappiness" and not (isinstance(value, int) and 0 <= value <= 100):
            raise CgroupError(f"{setting}: invalid value {value!r} (0 to 100)")
        _put(mem, name, value, setting, missing)


def _cpu_v1(cgroup: "Cgroup", cpu: "dict[str, Any]") -> None:
    settings = [k for k in ("shares", "period", "quota", "realtimePeriod", "realtimeRuntime", "idle", "burst")
                if cpu.get(k) is not None and (cpu[k] != 0 or k in ("idle", "burst"))]
    if settings:
        path = _v1_dir(cgroup, "cpu", "linux.resources.cpu." + settings[0])
        if cpu.get("shares"):
            _put(path, "cpu.shares", cpu["shares"], "linux.resources.cpu.shares")
        period_later = False
        if cpu.get("period"):  # the period first: a quota is checked against it
            try:
                _put(path, "cpu.cfs_period_us", cpu["period"], "linux.resources.cpu.period")
            except CgroupError:
                if not cpu.get("quota"):
                    raise
                period_later = True  # a shorter period can exceed the parent's quota until the quota is set
        if cpu.get("quota"):
            _put(path, "cpu.cfs_quota_us", cpu["quota"], "linux.resources.cpu.quota")
        if period_later:
            _put(path, "cpu.cfs_period_us", cpu["period"], "linux.resources.cpu.period")
        if cpu.get("realtimePeriod"):
            _put(path, "cpu.rt_period_us", cpu["realtimePeriod"], "linux.resources.cpu.realtimePeriod",
                 "this kernel has no real-time group scheduling")
        if cpu.get("realtimeRuntime"):
            _put(path, "cpu.rt_runtime_us", cpu["realtimeRuntime"], "linux.resources.cpu.realtimeRuntime",
                 "this kernel has no real-time group scheduling")
        if cpu.get("idle") is not None:
            _put(path, "cpu.idle", cpu["idle"], "linux.resources.cpu.idle")
        if cpu.get("burst") is not None:
            _put(path, "cpu.cfs_burst_us", cpu["burst"], "linux.resources.cpu.burst")
    if cpu.get("cpus") or cpu.get("mems"):
        cpuset = _v1_dir(cgroup, "cpuset", "linux.resources.cpu." + ("cpus" if cpu.get("cpus") else "mems"))
        if cpu.get("cpus"):
            _put(cpuset, "cpuset.cpus", cpu["cpus"], "linux.resources.cpu.cpus")
        if cpu.get("mems"):
            _put(cpuset, "cpuset.mems", cpu["mems"], "linux.resources.cpu.mems")


def _blkio_v1(cgroup: "Cgroup", blkio: "dict[str, Any]") -> None:
    throttles = [(key, name) for key, name in _THROTTLES_V1 if blkio.get(key)]
    if not (blkio.get("weight") or blkio.get("leafWeight") or blkio.get("weightDevice") or throttles):
        return
    path = _v1_dir(cgroup, "blkio", "linux.resources.blockIO")
    no_scheduler = "this kernel has neither the CFQ nor the BFQ I/O scheduler"
    no_leaves = "leaf weights come with the CFQ I/O scheduler, which this kernel lacks (BFQ has none)"
    if blkio.get("weight"):
        name = _first(path, ("blkio.weight", "blkio.bfq.weight")) or "blkio.weight"
        _put(path, name, blkio["weight"], "linux.resources.blockIO.weight", no_scheduler)
    if blkio.get("leafWeight"):
        _put(path, "blkio.leaf_weight", blkio["leafWeight"], "linux.resources.blockIO.leafWeight", no_leaves)
    devices = blkio.get("weightDevice") or []
    weights = [f"{d['major']}:{d['minor']} {d['weight']}\n" for d in devices if d.get("weight")]
    leaves = [f"{d['major']}:{d['minor']} {d['leafWeight']}\n" for d in devices if d.get("leafWeight")]
    if weights:
        name = _first(path, ("blkio.weight_device", "blkio.bfq.weight_device")) or "blkio.weight_device"
        _put_lines(path, name, weights, "linux.resources.blockIO.weightDevice", no_scheduler)
    if leaves:
        name = _first(path, ("blkio.leaf_weight_device", "blkio.bfq.leaf_weight_device")) or "blkio.leaf_weight_device"
        _put_lines(path, name, leaves, "linux.resources.blockIO.weightDevice[].leafWeight", no_leaves)
    for key, name in throttles:
        _put_lines(path, name, [f"{d['major']}:{d['minor']} {d['rate']}\n" for d in blkio[key]],
                   f"linux.resources.blockIO.{key}", "this kernel has no block I/O throttling")


_THROTTLES_V1 = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                 ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                 ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                 ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"))


def _network_v1(cgroup: "Cgroup", network: "dict[str, Any]") -> None:
    if network.get("classID") is not None:
        path = _v1_dir(cgroup, "net_cls", "linux.resources.network.classID")
        _put(path, "net_cls.classid", network["classID"], "linux.resources.network.classID")
    priorities = network.get("priorities") or []
    if priorities:
        path = _v1_dir(cgroup, "net_prio", "linux.resources.network.priorities")
        _put_lines(path, "net_prio.ifpriomap", [f"{p['name']} {p['priority']}\n" for p in priorities],
                   "linux.resources.network.priorities")


def _hugetlb(directory: str, limits: "list[dict[str, Any]]", suffix: str) -> None:
    """``hugetlb.<size>.<suffix>`` per limit; a page size this host has no files for (not
    a huge page size of its CPU, like "3MB") is refused before anything is written."""
    sizes = sorted({n.split(".")[1] for n in _listdir(directory)
                    if n.startswith("hugetlb.") and n.endswith("." + suffix) and n.count(".") == 2})
    for entry in limits:
        size = entry.get("pageSize")
        if size not in sizes:
            have = ", ".join(sizes) if sizes else "none"
            raise CgroupError(f"linux.resources.hugepageLimits: invalid huge page size {size!r} "
                              f"(the sizes this host supports: {have})")
    for entry in limits:
        _put(directory, f"hugetlb.{entry['pageSize']}.{suffix}", entry["limit"],
             f"linux.resources.hugepageLimits[{entry['pageSize']}]")


def _listdir(directory: str) -> "list[str]":
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _rdma_lines(rdma: "dict[str, Any]") -> "list[str]":
    lines = []
    for device, limits in rdma.items():
        parts = [device]
        if limits.get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        if len(parts) > 1:
            lines.append(" ".join(parts) + "\n")
    return lines


def _apply_v1(cgroup: "Cgroup", resources: "dict[str, Any]") -> None:
    _memory_v1(cgroup, resources.get("memory") or {})
    _cpu_v1(cgroup, resources.get("cpu") or {})
    pids = (resources.get("pids") or {}).get("limit")
    if pids is not None:
        path = _v1_dir(cgroup, "pids", "linux.resources.pids.limit")
        _put(path, "pids.max", "max" if pids <= 0 else pids, "linux.resources.pids.limit")
    _blkio_v1(cgroup, resources.get("blockIO") or {})
    if resources.get("hugepageLimits"):
        _hugetlb(_v1_dir(cgroup, "hugetlb", "linux.resources.hugepageLimits"), resources["hugepageLimits"],
                 "limit_in_bytes")
    _network_v1(cgroup, resources.get("network") or {})
    rdma = _rdma_lines(resources.get("rdma") or {})
    if rdma:
        _put_lines(_v1_dir(cgroup, "rdma", "linux.resources.rdma"), "rdma.max", rdma, "linux.resources.rdma")
    if resources.get("unified"):
        raise CgroupError("linux.resources.unified: cannot apply it: this host's controllers are on cgroup v1 "
                          "(unified sets cgroup v2 files)")
    # Device rules: Cgroup.apply_devices, for v1 and v2 alike.


# ------------------------------------------------------------------ cgroup v2

def _memory_v2(path: str, memory: "dict[str, Any]") -> None:
    given = _memory_given(memory)
    for key in ("kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy"):
        # -1 (no kernel memory limit) is what cgroup v2 has anyway; the rest are v1 settings.
        if key in given and not (key in ("kernel", "kernelTCP") and given[key] == -1):
            raise _v2_refused(f"linux.resources.memory.{key}")
    missing = "is the memory controller enabled for this cgroup?"
    limit = given.get("limit")
    if limit is not None:
        _put(path, "memory.max", "max" if limit < 0 else limit, "linux.resources.memory.limit", missing)
    swap = given.get("swap")
    if swap is not None:
        # v1 counts memory+swap, v2 swap alone (crun's conversion).
        if swap > 0:
            if limit is None or limit < 0:
                raise CgroupError("linux.resources.memory.swap: a memory+swap limit needs a memory limit")
            if swap < limit:
                raise CgroupError(f"linux.resources.memory.swap: the memory+swap limit {swap} is below "
                                  f"the memory limit {limit}")
            swap -= limit
        if os.path.exists(path + "/memory.swap.max"):  # no file: no swap accounting (crun goes on)
            _put(path, "memory.swap.max", "max" if swap < 0 else swap, "linux.resources.memory.swap")
    if given.get("reservation") is not None:
        reservation = given["reservation"]
        _put(path, "memory.low", "max" if reservation < 0 else reservation, "linux.resources.memory.reservation",
             missing)


def _apply_v2(path: str, resources: "dict[str, Any]") -> None:
    _memory_v2(path, resources.get("memory") or {})
    cpu = resources.get("cpu") or {}
    missing = "is the cpu controller enabled for this cgroup?"
    for key in ("realtimePeriod", "realtimeRuntime"):
        if cpu.get(key):
            raise _v2_refused(f"linux.resources.cpu.{key}", "cgroup v2 has no real-time group scheduling files")
    if cpu.get("shares"):
        weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
        _put(path, "cpu.weight", weight, "linux.resources.cpu.shares", missing)
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota") or 0
        _put(path, "cpu.max", f"{quota if quota > 0 else 'max'} {cpu.get('period') or 100000}",
             "linux.resources.cpu.quota", missing)
    if cpu.get("burst") is not None:
        _put(path, "cpu.max.burst", cpu["burst"], "linux.resources.cpu.burst", missing)
    if cpu.get("idle") is not None:
        _put(path, "cpu.idle", cpu["idle"], "linux.resources.cpu.idle", missing)
    if cpu.get("cpus"):
        _put(path, "cpuset.cpus", cpu["cpus"], "linux.resources.cpu.cpus", "is the cpuset controller enabled?")
    if cpu.get("mems"):
        _put(path, "cpuset.mems", cpu["mems"], "linux.resources.cpu.mems", "is the cpuset controller enabled?")
    pids = (resources.get("pids") or {}).get("limit")
    if pids is not None:
        _put(path, "pids.max", "max" if pids <= 0 else pids, "linux.resources.pids.limit",
             "is the pids controller enabled for this cgroup?")
    _blkio_v2(path, resources.get("blockIO") or {})
    if resources.get("hugepageLimits"):
        _hugetlb(path, resources["hugepageLimits"], "max")
    network = resources.get("network") or {}
    if network.get("classID") is not None or network.get("priorities"):
        raise _v2_refused("linux.resources.network", "net_cls and net_prio are cgroup v1 controllers")
    rdma = _rdma_lines(resources.get("rdma") or {})
    if rdma:
        _put_lines(path, "rdma.max", rdma, "linux.resources.rdma", "is the rdma controller enabled?")
    for key, value in (resources.get("unified") or {}).items():
        if "/" in key or key in ("", ".", ".."):
            raise CgroupError(f"linux.resources.unified: {key!r} is not a file name of the cgroup")
        if value:
            _put_lines(path, key, [line for line in str(value).split("\n") if line], f"linux.resources.unified[{key}]")
    # Device rules: Cgroup.apply_devices (an eBPF program; v2 has no devices files).


def _blkio_v2(path: str, blkio: "dict[str, Any]") -> None:
    missing = "is the io controller enabled for this cgroup?"
    if blkio.get("leafWeight"):
        raise _v2_refused("linux.resources.blockIO.leafWeight")
    devices = blkio.get("weightDevice") or []
    if any(d.get("leafWeight") for d in devices):
        raise _v2_refused("linux.resources.blockIO.weightDevice[].leafWeight")
    if blkio.get("weight"):
        if os.path.exists(path + "/io.bfq.weight"):
            _put(path, "io.bfq.weight", blkio["weight"], "linux.resources.blockIO.weight")
        else:  # io.weight: [1, 10000] for blkio's [10, 1000], linearly (crun)
            _put(path, "io.weight", 1 + (blkio["weight"] - 10) * 9999 // 990, "linux.resources.blockIO.weight",
                 missing)
    weights = [f"{d['major']}:{d['minor']} {d['weight']}\n" for d in devices if d.get("weight")]
    if weights:
        _put_lines(path, "io.bfq.weight", weights, "linux.resources.blockIO.weightDevice",
                   "per-device weights need the BFQ I/O scheduler")
    lines = []
    for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        lines += [f"{d['major']}:{d['minor']} {name}={d['rate']}\n" for d in blkio.get(key) or []]
    if lines:
        _put_lines(path, "io.max", lines, "linux.resources.blockIO (throttling)", missing)
