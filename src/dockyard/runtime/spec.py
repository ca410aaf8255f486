"""Bundle ``config.json`` from an image config plus run options (OCI runtime spec 1.0).

The defaults are Docker's: its capability set, mounts, masked and read-only paths,
device rules and seccomp profile, so that a container looks the same whichever
runtime (pyrunc, crun, runc) executes the bundle.
"""

from __future__ import annotations

import json
import os
import resource

from dockyard.errors import DockyardError
from dockyard.fsutil import in_root
from dockyard.records import field, record
from dockyard.runtime import seccomp

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any, TypeVar

    P = TypeVar("P", str, "os.PathLike[str]")

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Docker's device cgroup rules: deny everything, allow mknod of anything, and the
# standard character devices.
_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # pts
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # tun
]

RLIMIT_NAMES = {
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA, "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE, "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC, "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE, "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO, "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
}
_ULIMIT_ALIASES = {"nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "core": "RLIMIT_CORE",
                   "memlock": "RLIMIT_MEMLOCK", "stack": "RLIMIT_STACK", "fsize": "RLIMIT_FSIZE",
                   "cpu": "RLIMIT_CPU", "as": "RLIMIT_AS", "data": "RLIMIT_DATA", "locks": "RLIMIT_LOCKS",
                   "sigpending": "RLIMIT_SIGPENDING", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
                   "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "rss": "RLIMIT_RSS"}
_INFINITY = 2**64 - 1


class SpecError(DockyardError):
    """Run options or an image config we cannot turn into a bundle."""

    exit_code = 125


@record
class RunOptions:
    """What ``docker run`` flags say about the container's process and limits."""

    command: list[str] | None = None          # replaces the image's Cmd
    entrypoint: list[str] | None = None       # replaces the image's Entrypoint (and drops its Cmd)
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None                   # name|uid[:group|gid]
    group_add: list[str] = field(default_factory=list)
    hostname: str | None = None
    terminal: bool = False
    read_only: bool = False
    mounts: list[dict[str, Any]] = field(default_factory=list)  # OCI mount objects (binds, tmpfs)
    network: str = "none"                     # "none": own netns; "host": the host's; else a netns path
    memory: int | None = None                 # bytes
    memory_swap: int | None = None            # memory + swap, bytes; -1 unlimited
    cpu_shares: int | None = None
    cpu_quota: int | None = None              # microseconds per period
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: Any = "default"  # "default" | "unconfined" | an OCI seccomp object | ("docker", profile JSON)
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (soft, hard)
    sysctls: dict[str, str] = field(default_factory=dict)
    cgroups_path: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    shm_size: int | None = None               # /dev/shm's size in bytes (64 MB when None)
    shm: str = "private"                      # "private": a tmpfs; "none": no /dev/shm; else a path bound there
    namespaces: dict[str, str] = field(default_factory=dict)  # pid/ipc/uts/cgroup -> "host" or a path to join
    devices: list[dict[str, Any]] = field(default_factory=list)       # OCI linux.devices
    device_rules: list[dict[str, Any]] = field(default_factory=list)  # after Docker's device rules
    oom_score_adj: int | None = None
    memory_reservation: int | None = None
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    block_io: dict[str, Any] = field(default_factory=dict)            # OCI linux.resources.blockIO
    unmasked: bool = False                    # --security-opt systempaths=unconfined: no masked/read-only paths


# ------------------------------------------------------------------ public API

def build(image_config: dict[str, Any], rootfs: str | os.PathLike, options: RunOptions,
          container_id: str) -> dict[str, Any]:
    """The OCI runtime spec for ``container_id``: image defaults overridden by ``options``.

    ``image_config`` is the image's config JSON (the whole document or its ``config``
    member); ``rootfs`` is the mounted root, read for /etc/passwd and /etc/group.
    """
    conf = image_config.get("config", image_config) if "rootfs" in image_config else image_config
    conf = conf or {}
    rootfs = os.fspath(rootfs)   # a str: pathlib is not loaded on run's path (see config.py)
    args = _args(conf, options)
    user = resolve_user(rootfs, options.user if options.user is not None else conf.get("User") or "",
                        options.group_add)
    hostname = options.hostname or container_id[:12]
    caps = _capabilities(options)
    process: dict[str, Any] = {
        "terminal": options.terminal,
        "user": {k: user[k] for k in ("uid", "gid", "additionalGids") if user.get(k) is not None},
        "args": args,
        "env": _env(conf.get("Env") or [], options, hostname, user["home"]),
        "cwd": options.workdir or conf.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": default_rlimits(options.ulimits),
        "noNewPrivileges": options.no_new_privileges,
    }
    if options.oom_score_adj is not None:
        process["oomScoreAdj"] = options.oom_score_adj
    if not process["cwd"].startswith("/"):
        raise SpecError(f"the working directory {process['cwd']!r} is invalid: it needs to be an absolute path")
    linux: dict[str, Any] = {
        "namespaces": _namespaces(options),
        "resources": _resources(options),
        "maskedPaths": [] if options.privileged or options.unmasked else list(MASKED_PATHS),
        "readonlyPaths": [] if options.privileged or options.unmasked else list(READONLY_PATHS),
        "cgroupsPath": options.cgroups_path or f"/dockyard/{container_id}",
    }
    if options.sysctls:
        linux["sysctl"] = dict(options.sysctls)
    if options.devices:
        linux["devices"] = [dict(d) for d in options.devices]
    profile = _seccomp(options, caps)
    if profile is not None:
        linux["seccomp"] = profile
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": options.read_only},
        "hostname": hostname,
        "mounts": _shm(default_mounts(options.shm_size), options) + _user_mounts(options),
        "linux": linux,
    }
    if options.namespaces.get("uts"):
        # the host's own, or a joined namespace's (a pod's): runtimes refuse a hostname without a
        # UTS namespace of the container's own, and setting one would rename the donor's
        del spec["hostname"]
    if options.annotations:
        spec["annotations"] = dict(options.annotations)
    return spec


def write_bundle(bundle: str | os.PathLike, spec: dict[str, Any]) -> str:
    """Write ``config.json`` into ``bundle`` (created if needed) atomically; returns its path."""
    os.makedirs(bundle, exist_ok=True)
    path = os.path.join(bundle, "config.json")
    tmp = os.path.join(bundle, ".config.json.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(spec, separators=(",", ":")))  # no indent: the C encoder, ~3 ms less per run
    os.replace(tmp, path)
    return path


def default_mounts(shm_size: int | None = None) -> list[dict[str, Any]]:
    shm = f"size={shm_size // 1024}k" if shm_size else "size=65536k"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", shm]},
    ]


def _shm(mounts: list[dict[str, Any]], options: RunOptions) -> list[dict[str, Any]]:
    """/dev/shm as --ipc wants it: a tmpfs of its own, none, or another's bound there."""
    if options.shm == "private":
        return mounts
    out = [m for m in mounts if m["destination"] != "/dev/shm"]
    if options.shm != "none":
        out.append({"destination": "/dev/shm", "type": "bind", "source": options.shm,
                    "options": ["rbind", "nosuid", "noexec", "nodev"]})
    return out


def default_rlimits(overrides: dict[str, tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """nofile and nproc at the current hard limits (root may lack CAP_SYS_RESOURCE, so
    nothing above them can be set), plus any ``--ulimit`` overrides."""
    limits: dict[str, tuple[int, int]] = {}
    for name in ("RLIMIT_NOFILE", "RLIMIT_NPROC"):
        hard = resource.getrlimit(RLIMIT_NAMES[name])[1]
        hard = _INFINITY if hard == resource.RLIM_INFINITY else hard
        limits[name] = (hard, hard)
    for key, (soft, hard) in (overrides or {}).items():
        name = _ULIMIT_ALIASES.get(key.lower(), key.upper())
        if name not in RLIMIT_NAMES:
            raise SpecError(f"invalid ulimit type: {key}")
        if soft > hard:
            raise SpecError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        limits[name] = (soft, hard)
    return [{"type": n, "soft": s, "hard": h} for n, (s, h) in limits.items()]


# ------------------------------------------------------------------ users

def resolve_user(rootfs: str | os.PathLike, user: str, group_add: list[str] | None = None) -> dict[str, Any]:
    """uid, gid, additional gids and home for ``user`` from the rootfs's /etc/passwd and /etc/group.

    Like Docker: numeric IDs need no entry; a name must exist; the groups listing the
    user by name are added, as are ``group_add`` entries.
    """
    name, _, group = (user or "0").partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    entry = next((e for e in passwd if len(e) >= 4 and (e[0] == name or (name.isdigit() and e[2] == name))), None)
    if entry is None and not name.isdigit():
        raise SpecError(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(entry[2]) if entry else int(name)
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    username = entry[0] if entry else None
    if group:
        gid = _group_id(groups, group)
    extra: list[int] = []
    if username is not None and not group:
        extra = [int(e[2]) for e in groups if len(e) >= 4 and username in e[3].split(",") and e[2].isdigit()]
    for g in group_add or []:
        try:
            extra.append(_group_id(groups, g))
        except SpecError as e:   # libcontainer's GetAdditionalGroups words it with a capital
            raise SpecError("U" + e.message[1:]) from None
    # Docker's list always holds the primary group (so `id` shows groups=0(root)), then the
    # groups naming the user (when no group was given), then --group-add.
    result: dict[str, Any] = {"uid": uid, "gid": gid, "home": home, "additionalGids": sorted({gid, *extra})}
    return result


def _group_id(groups: list[list[str]], group: str) -> int:
    entry = next((e for e in groups if len(e) >= 3 and (e[0] == group or (group.isdigit() and e[2] == group))), None)
    if entry is not None:
        return int(entry[2])
    if group.isdigit():
        return int(group)
    raise SpecError(f"unable to find group {group}: no matching entries in group file")


def _read_db(rootfs: str | os.PathLike, path: str) -> list[list[str]]:
    """Lines of a colon file inside the rootfs, resolving symlinks within it (never outside)."""
    try:
        with open(secure_join(rootfs, path), errors="replace") as f:
            text = f.read()
    except (OSError, ValueError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def secure_join(root: "P", path: str) -> "P":
    """``fsutil.in_root`` of ``root``'s type (a str, or a Path for callers that have one)."""
    joined = in_root(os.fspath(root), path)
    return joined if isinstance(root, str) else type(root)(joined)


# ------------------------------------------------------------------ pieces

def _args(conf: dict[str, Any], options: RunOptions) -> list[str]:
    if options.entrypoint is not None:
        entrypoint = [a for a in options.entrypoint if a != ""] if options.entrypoint != [""] else []
        cmd = options.command or []
    else:
        entrypoint = list(conf.get("Entrypoint") or [])
        cmd = options.command if options.command else list(conf.get("Cmd") or [])
    args = entrypoint + list(cmd)
    if not args:
        raise SpecError("no command specified")
    return args


def _env(image_env: list[str], options: RunOptions, hostname: str, home: str) -> list[str]:
    # Docker's order: PATH, HOSTNAME (and TERM) first, then the image's and the user's
    # variables replacing those in place or appended, HOME last when nobody set it.
    env: dict[str, str] = {"PATH": DEFAULT_PATH.partition("=")[2], "HOSTNAME": hostname}
    if options.terminal:
        env["TERM"] = "xterm"
    for item in [*image_env, *options.env]:
        key, sep, value = item.partition("=")
        if not sep:  # "-e NAME" passes the caller's value, as docker does
            if key in os.environ:
                env[key] = os.environ[key]
            continue
        env[key] = value
    env.setdefault("HOME", home)
    return [f"{k}={v}" for k, v in env.items()]


def _capabilities(options: RunOptions) -> list[str]:
    if options.privileged:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        return [name for n, name in sorted(_CAP_NUMBERS_REVERSED.items()) if n <= last]
    caps = list(DEFAULT_CAPABILITIES)
    add = [_cap_name(c) for c in options.cap_add]
    drop = [_cap_name(c) for c in options.cap_drop]
    if "CAP_ALL" in drop:
        caps = []
    if "CAP_ALL" in add:
        caps = [name for _, name in sorted(_CAP_NUMBERS_REVERSED.items())]
    caps += [c for c in add if c != "CAP_ALL" and c not in caps]
    return [c for c in caps if c not in drop]


def _cap_name(cap: str) -> str:
    name = cap.upper()
    name = name if name.startswith("CAP_") else "CAP_" + name
    if name != "CAP_ALL" and name not in CAPABILITIES:
        raise SpecError(f"unknown capability: {cap!r}")
    return name


def _namespaces(options: RunOptions) -> list[dict[str, str]]:
    namespaces = []
    for kind in ("pid", "ipc", "uts", "mount", "cgroup"):
        where = options.namespaces.get(kind)
        if where == "host":
            continue     # the host's: no namespace of its own
        namespaces.append({"type": kind, "path": where} if where else {"type": kind})
    if options.network == "none":
        namespaces.append({"type": "network"})
    elif options.network != "host":
        namespaces.append({"type": "network", "path": options.network})
    return namespaces


def _resources(options: RunOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [dict(r) for r in _DEVICE_RULES] + [dict(r) for r in options.device_rules]}
    memory: dict[str, Any] = {}
    if options.memory is not None:
        memory["limit"] = options.memory
        if options.memory_swap is not None:
            memory["swap"] = options.memory_swap
    elif options.memory_swap not in (None, -1):
        raise SpecError("you should always set the memory limit when using the memory-swap limit")
    for key, value in (("reservation", options.memory_reservation), ("swappiness", options.memory_swappiness)):
        if value is not None:
            memory[key] = value
    if options.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    for key, value in (("shares", options.cpu_shares), ("quota", options.cpu_quota),
                       ("period", options.cpu_period), ("cpus", options.cpuset_cpus), ("mems", options.cpuset_mems)):
        if value is not None:
            cpu[key] = value
    if cpu:
        resources["cpu"] = cpu
    if options.pids_limit is not None:
        resources["pids"] = {"limit": options.pids_limit}
    if options.block_io:
        resources["blockIO"] = dict(options.block_io)
    return resources


def _user_mounts(options: RunOptions) -> list[dict[str, Any]]:
    mounts = []
    for m in options.mounts:
        if not str(m.get("destination", "")).startswith("/"):
            raise SpecError(f"invalid mount destination {m.get('destination')!r}: it must be absolute")
        mounts.append(dict(m))
    return mounts


def _seccomp(options: RunOptions, caps: list[str]) -> dict[str, Any] | None:
    if options.privileged or options.seccomp == "unconfined":
        return None
    if options.seccomp == "default":
        return seccomp.default_profile(caps)
    if isinstance(options.seccomp, dict):
        return options.seccomp
    if isinstance(options.seccomp, tuple) and options.seccomp[0] == "docker":
        from dockyard.runtime import dockerseccomp   # a Docker-format profile (--security-opt seccomp=FILE)

        try:
            profile = json.loads(options.seccomp[1])
        except ValueError as e:
            raise SpecError(f"decoding seccomp profile failed: {e}") from None
        return dockerseccomp.to_oci(profile, caps)
    raise SpecError(f"invalid seccomp option {options.seccomp!r}: use 'default', 'unconfined' or a profile")


CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}
_CAP_NUMBERS_REVERSED = {n: name for name, n in CAPABILITIES.items()}


def capability_mask(names: list[str]) -> int:
    """The bit mask /proc/<pid>/status shows for a list of capability names."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask
