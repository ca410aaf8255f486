"""Cgroups v1 (including the v1/v2 hybrid) and v2, with the layout detected at run time.

A container's cgroup is ``linux.cgroupsPath`` below the root of every hierarchy:
each v1 controller mount (and a hybrid's cgroup2 mount) on v1 hosts, the one tree
on v2 hosts. Only the files for the resources the spec sets are written. Device rules
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


class Cgroup(CgroupPaths):
    """The container's cgroup in every hierarchy of this host: set up, frozen, torn down."""

    # ------------------------------------------------------------------ set-up

    def create(self) -> None:
        for key, path in self.dirs.items():
            if "cpuset" in key.split(","):
                _mkdir_cpuset(path)
            else:
                os.makedirs(path, exist_ok=True)
        if self.unified:
            _enable_controllers(self.path)

    def add(self, pid: int) -> None:
        for path in self.dirs.values():
            _write(path + "/cgroup.procs", str(pid))

    def apply(self, resources: "dict[str, Any]") -> None:
        if self.unified:
            _apply_v2(self.dirs[""], resources)
        else:
            _apply_v1(self.dir, resources)
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


def _mkdir_cpuset(path: str) -> None:
    """v1 cpuset cgroups start with empty cpus/mems, which refuses tasks: copy the parent's
    values down every level we create."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _mkdir_cpuset(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not _read(f"{path}/{name}"):
            _write(f"{path}/{name}", _read(f"{parent}/{name}"))


def _enable_controllers(path: str) -> None:
    """v2: a cgroup gets a controller's files only if every ancestor delegates it."""
    available = _read(CGROUP_ROOT + "/cgroup.controllers").split()
    wanted = " ".join("+" + c for c in available if c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb"))
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


def _apply_v1(dir_of, resources: "dict[str, Any]") -> None:
    memory = resources.get("memory") or {}
    mem = dir_of("memory")
    if mem:
        if "limit" in memory:
            _write(mem + "/memory.limit_in_bytes", str(memory["limit"]))
        if "swap" in memory and os.path.exists(mem + "/memory.memsw.limit_in_bytes"):
            _write(mem + "/memory.memsw.limit_in_bytes", str(memory["swap"]))
        if "reservation" in memory:
            _write(mem + "/memory.soft_limit_in_bytes", str(memory["reservation"]))
        if memory.get("swappiness") is not None:
            _write(mem + "/memory.swappiness", str(memory["swappiness"]))
        if memory.get("disableOOMKiller"):
            _write(mem + "/memory.oom_control", "1")
    cpu = resources.get("cpu") or {}
    cpu_dir = dir_of("cpu")
    if cpu_dir:
        if cpu.get("shares"):
            _write(cpu_dir + "/cpu.shares", str(cpu["shares"]))
        if cpu.get("period"):  # the period first: a quota is checked against it
            _write(cpu_dir + "/cpu.cfs_period_us", str(cpu["period"]))
        if cpu.get("quota"):
            _write(cpu_dir + "/cpu.cfs_quota_us", str(cpu["quota"]))
    cpuset = dir_of("cpuset")
    if cpuset:
        if cpu.get("cpus"):
            _write(cpuset + "/cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            _write(cpuset + "/cpuset.mems", cpu["mems"])
    pids = (resources.get("pids") or {}).get("limit")
    pids_dir = dir_of("pids")
    if pids is not None and pids_dir:
        _write(pids_dir + "/pids.max", "max" if pids <= 0 else str(pids))
    # Device rules: Cgroup.apply_devices, for v1 and v2 alike.


def _device_rule(rule: "dict[str, Any]") -> str:
    """The v1 ``devices.allow``/``devices.deny`` line of one OCI rule (``c 136:* rwm``)."""
    from dockyard.runtime.pyrunc import devices

    return devices.parse_rules([rule])[0].cgroup_string()


def _apply_v2(path: str, resources: "dict[str, Any]") -> None:
    memory = resources.get("memory") or {}
    if "limit" in memory:
        _write(path + "/memory.max", "max" if memory["limit"] < 0 else str(memory["limit"]))
        swap = memory.get("swap")
        if swap is not None and os.path.exists(path + "/memory.swap.max"):
            # v1 counts memory+swap, v2 swap alone.
            _write(path + "/memory.swap.max", "max" if swap < 0 else str(max(swap - memory["limit"], 0)))
    if memory.get("reservation"):
        _write(path + "/memory.low", str(memory["reservation"]))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
        _write(path + "/cpu.weight", str(weight))
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota") or 0
        _write(path + "/cpu.max", f"{quota if quota > 0 else 'max'} {cpu.get('period') or 100000}")
    if cpu.get("cpus"):
        _write(path + "/cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        _write(path + "/cpuset.mems", cpu["mems"])
    pids = (resources.get("pids") or {}).get("limit")
    if pids is not None:
        _write(path + "/pids.max", "max" if pids <= 0 else str(pids))
    # Device rules: Cgroup.apply_devices (an eBPF program; v2 has no devices files).
