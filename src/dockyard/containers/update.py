"""``docker update``: new resource limits and restart policy for a container.

Docker's rules (daemon/update.go, container.UpdateContainer, verifyPlatformContainerResources):
the request's values are checked alone first, then against what the container has; the
non-zero ones replace the stored HostConfig's; a running container gets them through its
OCI runtime's ``update`` verb (the stored config is restored if that fails); a stopped one
gets them at its next start. A new restart policy reaches a live container's shim through
a file in its shim directory, read when the container exits.
"""

from __future__ import annotations

import json
import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.containers.manager import Containers
    from dockyard.containers.store import ContainerRecord

MIN_MEMORY = 6 * 1024 * 1024   # Docker's linuxMinMemory
RESOURCE_KEYS = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
                 "Memory", "MemorySwap", "MemoryReservation", "PidsLimit")
RESTART_FILE = "restart.json"   # in the shim's directory: the policy a live shim applies at exit


class UpdateError(DockyardError):
    """A request Docker refuses (an invalid parameter or a conflict)."""


def cannot_update(cid: str, why: str) -> UpdateError:
    return UpdateError(f"Cannot update container {cid}: {why}")


def blkio_weight_supported() -> bool:
    """Docker's sysinfo.BlkioWeight: the kernel's CFQ weight file (v1) or the io controller (v2)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        try:
            with open("/sys/fs/cgroup/cgroup.controllers") as f:
                return "io" in f.read().split()
        except OSError:
            return False
    return os.path.exists("/sys/fs/cgroup/blkio/blkio.weight")


def discard_unsupported(r: dict[str, Any]) -> list[str]:
    """What the kernel cannot do is dropped from the request with Docker's warning."""
    warnings = []
    if r.get("BlkioWeight") and not blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        del r["BlkioWeight"]
    return warnings


def check_request(r: dict[str, Any]) -> None:
    """verifyPlatformContainerResources for an update: the request's own values."""
    memory, swap, reservation = r.get("Memory") or 0, r.get("MemorySwap") or 0, r.get("MemoryReservation") or 0
    if memory and memory < MIN_MEMORY:
        raise UpdateError("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise UpdateError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and reservation < MIN_MEMORY:
        raise UpdateError("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise UpdateError("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, period, quota = r.get("NanoCpus") or 0, r.get("CpuPeriod") or 0, r.get("CpuQuota") or 0
    if nano > 0 and period > 0:
        raise UpdateError("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise UpdateError("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = len(os.sched_getaffinity(0))
    if nano < 0 or nano > ncpu * 10 ** 9:
        raise UpdateError(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period and not 1000 <= period <= 1000000:
        raise UpdateError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise UpdateError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    weight = r.get("BlkioWeight") or 0
    if weight and not 10 <= weight <= 1000:
        raise UpdateError("Range of blkio weight is from 10 to 1000")
    for key, kind, path in (("CpusetCpus", "CPUs", "cpuset.cpus"), ("CpusetMems", "memory nodes", "cpuset.mems")):
        value = r.get(key) or ""
        if not value:
            continue
        try:
            wanted = parse_cpuset(value)
        except ValueError:
            raise UpdateError(f"Invalid value {value} for cpuset {'cpus' if key == 'CpusetCpus' else 'mems'}: "
                              f"invalid format: {value}") from None
        available = _available(path)
        if available and not wanted <= parse_cpuset(available):
            raise UpdateError(f"Requested {kind} are not available - requested {value}, available: {available}")


def parse_cpuset(text: str) -> set[int]:
    """``0-2,4`` -> {0, 1, 2, 4} (Docker's parsers.ParseUintList); ValueError if malformed."""
    out: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(text)
        if sep:
            if int(high) < int(low):
                raise ValueError(text)
            out.update(range(int(low), int(high) + 1))
        else:
            out.add(int(low))
    return out


def _available(name: str) -> str:
    """The host's CPUs or memory nodes, as the root cpuset lists them ("" if unknown)."""
    for path in (f"/sys/fs/cgroup/cpuset/{name}", f"/sys/fs/cgroup/{name}.effective"):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            continue
    return ""


def merge(host: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """container.UpdateContainer: the stored HostConfig with the request's non-zero values,
    after Docker's checks against what is set already."""
    if r.get("NanoCpus", 0) > 0 and (host.get("CpuPeriod") or 0) > 0:
        raise UpdateError("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if r.get("NanoCpus", 0) > 0 and (host.get("CpuQuota") or 0) > 0:
        raise UpdateError("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if r.get("CpuPeriod", 0) > 0 and (host.get("NanoCpus") or 0) > 0:
        raise UpdateError("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if r.get("CpuQuota", 0) > 0 and (host.get("NanoCpus") or 0) > 0:
        raise UpdateError("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    new = dict(host)
    for key in ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems"):
        if r.get(key):
            new[key] = r[key]
    if r.get("Memory"):
        if r["Memory"] > (host.get("MemorySwap") or 0) and not r.get("MemorySwap"):
            raise UpdateError("Memory limit should be smaller than already set memoryswap limit, "
                              "update the memoryswap at the same time")
        new["Memory"] = r["Memory"]
    for key in ("MemorySwap", "MemoryReservation"):
        if r.get(key):
            new[key] = r[key]
    if r.get("PidsLimit") is not None:
        new["PidsLimit"] = r["PidsLimit"] if r["PidsLimit"] > 0 else 0   # Docker: 0 or less is "unlimited"
    return new


def oci_resources(r: dict[str, Any]) -> dict[str, Any]:
    """The request's resources as the OCI ``linux.resources`` the runtime's ``update`` takes
    (daemon toContainerdResources: only what was asked for)."""
    out: dict[str, Any] = {}
    memory = {key: r[name] for name, key in (("Memory", "limit"), ("MemoryReservation", "reservation"),
                                              ("MemorySwap", "swap")) if r.get(name)}
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if r.get("CpuShares"):
        cpu["shares"] = r["CpuShares"]
    if r.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = r["NanoCpus"] * 100000 // 10 ** 9
    if r.get("CpuPeriod"):
        cpu["period"] = r["CpuPeriod"]
    if r.get("CpuQuota"):
        cpu["quota"] = r["CpuQuota"]
    if r.get("CpusetCpus"):
        cpu["cpus"] = r["CpusetCpus"]
    if r.get("CpusetMems"):
        cpu["mems"] = r["CpusetMems"]
    if cpu:
        out["cpu"] = cpu
    if r.get("PidsLimit") is not None:
        out["pids"] = {"limit": r["PidsLimit"] if r["PidsLimit"] > 0 else -1}
    if r.get("BlkioWeight"):
        out["blockIO"] = {"weight": r["BlkioWeight"]}
    return out


def check_restart_policy(policy: dict[str, Any]) -> None:
    """validateRestartPolicy: the request alone."""
    name = policy.get("Name")
    if name not in ("", "no", "always", "on-failure", "unless-stopped"):
        raise UpdateError(f"invalid restart policy '{name}'")
    if policy.get("MaximumRetryCount") and name != "on-failure":
        raise UpdateError(f"maximum retry count cannot be used with restart policy '{name}'")
    if (policy.get("MaximumRetryCount") or 0) < 0:
        raise UpdateError("maximum retry count cannot be negative")


def check_auto_remove(host: dict[str, Any], policy: dict[str, Any]) -> None:
    if host.get("AutoRemove") and policy.get("Name") not in ("", "no"):
        raise UpdateError("Restart policy cannot be updated because AutoRemove is enabled for the container")


def update(containers: "Containers", record: "ContainerRecord", resources: dict[str, Any],
           restart_policy: dict[str, Any] | None = None) -> list[str]:
    """Apply the update; Docker's warnings."""
    from dockyard.containers.store import PAUSED, RUNNING

    unknown = set(resources) - set(RESOURCE_KEYS)
    if unknown:
        raise UpdateError(f"unknown resource {sorted(unknown)[0]}")
    resources = dict(resources)
    warnings = discard_unsupported(resources)
    check_request(resources)
    if restart_policy is not None:
        check_restart_policy(restart_policy)
        if not restart_policy.get("Name"):
            restart_policy = None   # --restart "": no change, as in Docker
    if record.status in ("removing", "dead"):
        raise cannot_update(record.id, 'container is marked for removal and cannot be "update"')
    host = record.host_config
    try:
        new_host = merge(host, resources)
        if restart_policy is not None:
            check_auto_remove(host, restart_policy)
            new_host["RestartPolicy"] = dict(restart_policy)
    except UpdateError as e:
        raise cannot_update(record.id, e.message) from None
    config = dict(record.config)
    config["HostConfig"] = new_host
    containers.store.update(record.id, config=config)
    if restart_policy is not None:
        _tell_shim(containers, record.id, new_host["RestartPolicy"])
    oci = oci_resources(resources)
    if oci and record.status in (RUNNING, PAUSED):
        try:
            containers.runtime_of(record).update(record.id, oci)
        except DockyardError as e:
            restored = dict(config)
            restored["HostConfig"] = host
            containers.store.update(record.id, config=restored)
            raise cannot_update(record.id, e.message) from None
    return warnings


def _tell_shim(containers: "Containers", cid: str, policy: dict[str, Any]) -> None:
    """Leave the new restart policy where the container's shim looks when the container
    exits (it was given the old one when it started). Written whenever a shim directory
    exists, so a file left there never holds an older policy than the stored one."""
    from dockyard.atomicfile import atomic_write

    shim_dir = containers.shim_dir(cid)
    if not os.path.isdir(shim_dir):
        return
    with atomic_write(os.path.join(shim_dir, RESTART_FILE)) as f:
        f.write(json.dumps(policy).encode())
