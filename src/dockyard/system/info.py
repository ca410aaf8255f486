"""``dockyard info``: facts about the engine and its host, in Docker's ``types.Info`` shape
(the Engine API's ``GET /info`` will serve the same object).

Cheap with many containers: the counts are one grouped query each, no container is read.
Host facts come from /proc, /sys and /etc files; runtimes are found on PATH.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.engine import Engine

INDEX_SERVER = "https://index.docker.io/v1/"
# Docker's names of backing filesystems (daemon/graphdriver FsNames), by mount type.
_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "xfs": "xfs", "btrfs": "btrfs", "tmpfs": "tmpfs",
             "overlay": "overlayfs", "zfs": "zfs", "nfs": "nfs", "nfs4": "nfs", "f2fs": "f2fs", "squashfs": "squashfs"}


def container_counts(engine: "Engine") -> dict[str, int]:
    """Containers by Docker's three kinds (restarting ones count as running, as in Docker)."""
    counts = {"running": 0, "paused": 0, "stopped": 0}
    for status, n in engine.db.execute("SELECT status, COUNT(*) FROM containers GROUP BY status"):
        if status in ("running", "restarting"):
            counts["running"] += n
        elif status == "paused":
            counts["paused"] += n
        else:
            counts["stopped"] += n
    counts["total"] = sum(counts.values())
    return counts


def image_count(engine: "Engine") -> int:
    return engine.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]


def engine_id(root: str) -> str:
    """The engine's ID, made once and kept in the root (Docker 20.10's form: 12 groups of 4
    base32 characters)."""
    path = os.path.join(root, "engine-id")
    try:
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    import base64

    text = base64.b32encode(os.urandom(30)).decode()
    value = ":".join(text[i:i + 4] for i in range(0, 48, 4))
    import tempfile

    os.makedirs(root, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".engine-id.")
    try:
        os.write(fd, value.encode() + b"\n")
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)   # the first writer wins; a concurrent one reads its ID
        except FileExistsError:
            with open(path) as f:
                return f.read().strip()
    finally:
        os.unlink(tmp)
    return value


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def cgroup_features(version: str) -> dict[str, bool]:
    """What the kernel's cgroups can limit (Docker's sysinfo), by the files that do it."""
    if version == "2":
        controllers = set(_read("/sys/fs/cgroup/cgroup.controllers").split())
        memory = "memory" in controllers
        swap = memory and any(os.path.exists(os.path.join("/sys/fs/cgroup", d, "memory.swap.max"))
                              for d in ("init.scope", "system.slice", "user.slice", "dockyard"))
        return {"MemoryLimit": memory, "SwapLimit": swap, "KernelMemory": False, "KernelMemoryTCP": False,
                "CpuCfsPeriod": "cpu" in controllers, "CpuCfsQuota": "cpu" in controllers,
                "CPUShares": "cpu" in controllers, "CPUSet": "cpuset" in controllers, "PidsLimit": "pids" in controllers,
                "OomKillDisable": False}
    base = "/sys/fs/cgroup"

    def has(controller: str, name: str) -> bool:
        return os.path.exists(os.path.join(base, controller, name))

    return {"MemoryLimit": has("memory", "memory.limit_in_bytes"),
            "SwapLimit": has("memory", "memory.memsw.limit_in_bytes"),
            "KernelMemory": has("memory", "memory.kmem.limit_in_bytes"),
            "KernelMemoryTCP": has("memory", "memory.kmem.tcp.limit_in_bytes"),
            "CpuCfsPeriod": has("cpu", "cpu.cfs_period_us"), "CpuCfsQuota": has("cpu", "cpu.cfs_quota_us"),
            "CPUShares": has("cpu", "cpu.shares"), "CPUSet": has("cpuset", "cpuset.cpus"),
            "PidsLimit": has("pids", "pids.max") or os.path.isdir(os.path.join(base, "pids")),
            "OomKillDisable": has("memory", "memory.oom_control")}


def backing_filesystem(path: str) -> str:
    """Docker's name of the filesystem that holds ``path`` (the mount with the longest prefix)."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        kind = line.split(" - ", 1)[1].split()[0]
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, kind
    return _FS_NAMES.get(fstype, fstype)


def os_release() -> tuple[str, str]:
    """(PRETTY_NAME, VERSION_ID) of /etc/os-release."""
    values = {}
    for line in (_read("/etc/os-release") or _read("/usr/lib/os-release")).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values.get("PRETTY_NAME", "Linux"), values.get("VERSION_ID", "")


def mem_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _sysctl(name: str) -> bool:
    return _read("/proc/sys/" + name.replace(".", "/")).strip() == "1"


def runtimes() -> dict[str, dict[str, str]]:
    """The OCI runtimes present, in dockyard's order of preference (pyrunc is built in)."""
    import shutil

    from dockyard.runtime import RUNTIMES

    out: dict[str, dict[str, str]] = {}
    for name in RUNTIMES:
        if name == "pyrunc":
            out[name] = {"path": "pyrunc"}
            continue
        path = shutil.which(name)
        if path:
            out[name] = {"path": path}
    return out


def warnings(facts: dict[str, Any]) -> list[str]:
    """Docker's warnings for what the host lacks (daemon/info_unix.go), in its order."""
    out = []
    checks = [("MemoryLimit", "WARNING: No memory limit support"), ("SwapLimit", "WARNING: No swap limit support")]
    if facts["CgroupVersion"] == "1":
        checks += [("KernelMemory", "WARNING: No kernel memory limit support"),
                   ("KernelMemoryTCP", "WARNING: No kernel memory TCP limit support"),
                   ("OomKillDisable", "WARNING: No oom kill disable support")]
    checks += [("CpuCfsQuota", "WARNING: No cpu cfs quota support"),
               ("CpuCfsPeriod", "WARNING: No cpu cfs period support"),
               ("CPUShares", "WARNING: No cpu shares support"), ("CPUSet", "WARNING: No cpuset support"),
               ("IPv4Forwarding", "WARNING: IPv4 forwarding is disabled"),
               ("BridgeNfIptables", "WARNING: bridge-nf-call-iptables is disabled"),
               ("BridgeNfIp6tables", "WARNING: bridge-nf-call-ip6tables is disabled")]
    for key, text in checks:
        if not facts.get(key):
            out.append(text)
    return out


def registry_config(insecure: list[str]) -> dict[str, Any]:
    """Docker's RegistryConfig: loopback is insecure by default; configured CIDRs join it,
    configured host names become insecure index entries."""
    cidrs = ["127.0.0.0/8"]
    indexes: dict[str, Any] = {}
    for entry in insecure:
        if "/" in entry:
            if entry not in cidrs:
                cidrs.append(entry)
        else:
            indexes[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    indexes["docker.io"] = {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}
    return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": indexes, "Mirrors": []}


def info(engine: "Engine", debug: bool = False) -> dict[str, Any]:
    """``GET /info``: Docker's types.Info, with ClientInfo added as the CLI shows it."""
    import threading
    import time

    from dockyard.runtime import RUNTIMES
    from dockyard.system import version as versions
    from dockyard.timefmt import rfc3339_nano_utc

    counts = container_counts(engine)
    cg_version = cgroup_version()
    features = cgroup_features(cg_version)
    pretty, os_version = os_release()
    rts = runtimes()
    runc_version = versions.runtime_version("runc")[1] if "runc" in rts else ""
    try:
        nfd = len(os.listdir("/proc/self/fd"))
    except OSError:
        nfd = 0
    facts: dict[str, Any] = {
        "ID": engine_id(engine.root),
        "Containers": counts["total"], "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"], "ContainersStopped": counts["stopped"],
        "Images": image_count(engine),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing_filesystem(engine.root)], ["Supports d_type", "true"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": None,
                    "Log": ["json-file"]},
        **features,
        "IPv4Forwarding": _sysctl("net.ipv4.ip_forward"),
        "BridgeNfIptables": _sysctl("net.bridge.bridge-nf-call-iptables"),
        "BridgeNfIp6tables": _sysctl("net.bridge.bridge-nf-call-ip6tables"),
        "Debug": debug,
        "NFd": nfd,
        "NGoroutines": threading.active_count(),
        "SystemTime": rfc3339_nano_utc(time.time()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg_version,
        "NEventsListener": 0,
        "KernelVersion": os.uname().release,
        "OperatingSystem": pretty,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "IndexServerAddress": INDEX_SERVER,
        "RegistryConfig": registry_config(list(engine.settings.insecure_registries)),
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": mem_total(),
        "GenericResources": None,
        "DockerRootDir": os.path.abspath(engine.root),
        "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
        "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
        "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
        "Name": os.uname().nodename,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": versions.version(),
        "Runtimes": rts,
        "DefaultRuntime": RUNTIMES[0],   # the default runtime is the first
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        # No daemon: containers are watched by their own shims and outlive every dockyard
        # process, which is what Docker's live restore gives a restarted daemon.
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": runc_version, "Expected": runc_version},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": None,
        "ClientInfo": {"Debug": debug, "Context": "default", "Plugins": [], "Warnings": None},
    }
    found = warnings(facts)
    facts["Warnings"] = found or None
    return facts
