"""The ``run``/``create`` flags about namespaces, devices, security and resources, turned
into Docker's HostConfig fields with the docker CLI's own checks and messages (exit 125).

The daemon-side checks (ranges, available CPUs, donors of a namespace) are ``check``,
called by ``Containers.create``, so that the API path gets them too.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
# Docker 20.10's namespaced sysctls (opts.ValidateSysctl): whole names, then prefixes.
SYSCTL_NAMES = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
_RULE = r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$"   # compiled only when a rule is given (run's start-up)
APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux"


class FlagError(DockyardError):
    """A create option Docker refuses: the CLI's 125, the API's 400 (a bad parameter)."""

    exit_code = 125
    http_status = 400


def cgroup_parent(value: str) -> str:
    """``--cgroup-parent`` / ``HostConfig.CgroupParent``: a path below each hierarchy's root
    (``/a/b`` and ``a/b`` alike); nothing that climbs out of it."""
    parts = [p for p in value.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise FlagError(f"invalid cgroup parent {value!r}")
    return "/".join(parts)


def _flag_error(value: str, flag: str, why: str) -> FlagError:
    return FlagError(f'invalid argument "{value}" for "{flag}" flag: {why}')


def _size(value: str, flag: str) -> int:
    from dockyard.containers.logs import parse_size

    try:
        return parse_size(value)
    except ValueError:
        raise _flag_error(value, flag, f"invalid size: '{value}'") from None


def ipc_sysctl(name: str) -> bool:
    return name in SYSCTL_NAMES or name.startswith("fs.mqueue.")


def parse(kw: "dict[str, Any]") -> "dict[str, Any]":
    """The HostConfig fields of these flags, as docker fills them (its defaults when absent)."""
    host: dict[str, Any] = {}
    shm = kw.get("shm_size")
    host["ShmSize"] = (_size(shm, "--shm-size") if shm else 0) or DEFAULT_SHM_SIZE
    sysctls: dict[str, str] = {}
    for item in kw.get("sysctl") or ():
        key, sep, value = item.partition("=")
        if not sep or not (key in SYSCTL_NAMES or key.startswith(SYSCTL_PREFIXES)):
            raise _flag_error(item, "--sysctl", f"sysctl '{item}' is not whitelisted")
        sysctls[key] = value
    if sysctls:
        host["Sysctls"] = sysctls
    opts = security_opts(kw.get("security_opt") or ())
    if "systempaths=unconfined" in opts:
        # docker's CLI: the option becomes empty MaskedPaths/ReadonlyPaths (SecurityOpt keeps the rest, [] if none)
        opts = [o for o in opts if o != "systempaths=unconfined"]
        host["MaskedPaths"], host["ReadonlyPaths"] = [], []
        host["SecurityOpt"] = opts
    else:
        host["SecurityOpt"] = opts or None
    host["Devices"] = [device(d) for d in kw.get("device") or ()]
    rules = list(kw.get("device_cgroup_rule") or ())
    for rule in rules:
        import re

        if not re.match(_RULE, rule):
            raise _flag_error(rule, "--device-cgroup-rule", f"invalid device cgroup format '{rule}'")
    host["DeviceCgroupRules"] = rules or None
    host["GroupAdd"] = list(kw.get("group_add") or ()) or None
    modes = {"ipc": ("IpcMode", None), "pid": ("PidMode", "--pid: invalid PID mode"),
             "uts": ("UTSMode", "--uts: invalid UTS mode"), "userns": ("UsernsMode", "--userns: invalid USER mode"),
             "cgroupns": ("CgroupnsMode", "--cgroupns: invalid CGROUP mode")}
    valid = {"pid": ("", "host"), "uts": ("", "host"), "userns": ("", "host"), "cgroupns": ("", "host", "private")}
    for flag, (key, message) in modes.items():
        value = kw.get(flag) or ""
        joins = flag == "pid" and value.startswith("container:") and value.partition(":")[2]
        if flag in valid and value not in valid[flag] and not joins:
            raise FlagError(message)
        host[key] = value
    host["IpcMode"] = host["IpcMode"] or "private"
    host["CgroupnsMode"] = host["CgroupnsMode"] or "private"   # dockyard's default: its own cgroup namespace
    host["ContainerIDFile"] = kw.get("cidfile") or ""
    host["CpusetCpus"] = kw.get("cpuset_cpus") or ""
    host["CpusetMems"] = kw.get("cpuset_mems") or ""
    host["CpuPeriod"] = kw.get("cpu_period") or 0
    host["CpuQuota"] = kw.get("cpu_quota") or 0
    reservation = kw.get("memory_reservation")
    host["MemoryReservation"] = _size(reservation, "--memory-reservation") if reservation else 0
    swappiness = kw.get("memory_swappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise FlagError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")
    host["MemorySwappiness"] = None if swappiness in (None, -1) else swappiness
    host["OomKillDisable"] = bool(kw.get("oom_kill_disable"))
    if host["OomKillDisable"] and not kw.get("memory"):
        _warn("WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be "
              "dangerous.")
        _warn("WARNING: OOM killer is disabled for the container, but no memory limit is set, this can result "
              "in the system running out of resources.")
    host["OomScoreAdj"] = kw.get("oom_score_adj") or 0
    host["BlkioWeight"] = kw.get("blkio_weight") or 0
    if host["BlkioWeight"] and not _blkio_weight_supported():
        _warn("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        host["BlkioWeight"] = 0
    weights = []
    for item in kw.get("blkio_weight_device") or ():
        path, _, weight = item.rpartition(":")
        if not path.startswith("/dev/") or not weight.isdigit() or not (10 <= int(weight) <= 1000 or weight == "0"):
            raise _flag_error(item, "--blkio-weight-device", f"invalid weight for device: {item}")
        weights.append({"Path": path, "Weight": int(weight)})
    if weights and not _blkio_weight_supported():
        _warn("WARNING: Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
              "Weight-device discarded.")
        weights = []
    host["BlkioWeightDevice"] = weights
    for flag, key, rate in (("device_read_bps", "BlkioDeviceReadBps", True),
                            ("device_write_bps", "BlkioDeviceWriteBps", True),
                            ("device_read_iops", "BlkioDeviceReadIOps", False),
                            ("device_write_iops", "BlkioDeviceWriteIOps", False)):
        limits = []
        for item in kw.get(flag) or ():
            path, _, value = item.rpartition(":")
            name = "--" + flag.replace("_", "-")
            if not path.startswith("/dev/"):
                raise _flag_error(item, name, f"bad format for device path: {item}" if path else
                                  f"bad format: {item}")
            if rate:
                number = _size(value, name)
            elif value.isdigit():
                number = int(value)
            else:
                raise _flag_error(item, name, f"invalid rate for device: {item}. The correct format is "
                                  "<device-path>:<number>. Number must be a positive integer")
            limits.append({"Path": path, "Rate": number})
        host[key] = limits or None
    host["VolumesFrom"] = list(kw.get("volumes_from") or ()) or None
    isolation = kw.get("isolation") or ""
    host["Isolation"] = isolation
    return host


def _blkio_weight_supported() -> bool:
    """Docker's test: a weight file in the blkio hierarchy (CFQ's, or BFQ's)."""
    return any(os.path.exists(f"/sys/fs/cgroup/blkio/{name}") for name in ("blkio.weight", "blkio.bfq.weight"))


def _warn(message: str) -> None:
    import sys

    sys.stderr.write(message + "\n")


def security_opts(opts: "tuple[str, ...] | list[str]") -> "list[str]":
    """Docker's CLI form of --security-opt: a seccomp profile file replaced by its JSON."""
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and opt != "no-new-privileges":
            key, sep, value = opt.partition(":")
            if not sep:
                raise FlagError(f'Invalid --security-opt: "{opt}"')
        if key == "seccomp" and value != "unconfined":
            import json

            try:
                with open(value) as f:
                    text = f.read()
            except OSError as e:
                raise FlagError(f"opening seccomp profile ({value}) failed: open {value}: "
                                f"{(e.strerror or str(e)).lower()}") from None
            try:
                value = json.dumps(json.loads(text), separators=(",", ":"))
            except ValueError as e:
                raise FlagError(f"decoding seccomp profile failed: {e}") from None
            out.append(f"seccomp={value}")
            continue
        out.append(opt)
    return out


def device(text: str) -> "dict[str, str]":
    """``/dev/x[:/dev/y][:rwm]`` -> Docker's DeviceMapping (opts.ValidateDevice)."""
    parts = text.split(":")
    perms = "rwm"
    if len(parts) > 3 or not parts[0]:
        raise FlagError(f"bad format for path: {text}")
    if len(parts) > 1 and _valid_perms(parts[-1]) and (len(parts) == 3 or not parts[-1].startswith("/")):
        perms = parts.pop()
    elif len(parts) == 3:
        raise FlagError(f"bad mode specified: {parts[2]}")
    src = parts[0]
    dst = parts[1] if len(parts) > 1 else src
    for path in (src, dst):
        if not path.startswith("/"):
            raise FlagError(f"{path} is not an absolute path")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def _valid_perms(mode: str) -> bool:
    return bool(mode) and len(mode) <= 3 and all(c in "rwm" for c in mode)


# ------------------------------------------------------------------ daemon side

def check(host: "dict[str, Any]", config: "dict[str, Any]", find: "Any") -> None:
    """The daemon's checks of these fields (``find(name)`` returns a container record or
    raises NotFoundError)."""
    mode = host.get("IpcMode") or "private"
    if mode not in ("", "private", "shareable", "host", "none") and not (
            mode.startswith("container:") and mode.partition(":")[2]):
        raise FlagError(f"Invalid IPC mode: {mode}")
    for key in ("IpcMode", "PidMode"):
        value = host.get(key) or ""
        if value.startswith("container:"):
            host[key] = "container:" + find(value.partition(":")[2]).id   # docker keeps the ID
    isolation = host.get("Isolation") or ""
    if isolation not in ("", "default"):
        raise FlagError(f'Invalid isolation: "{isolation}" - linux only supports \'default\'')
    if host.get("UTSMode") == "host" and config.get("Hostname"):
        raise FlagError("conflicting options: hostname and the UTS mode")
    for name in host.get("Sysctls") or {}:
        if name.startswith("net.") and (host.get("NetworkMode") == "host"):
            raise FlagError(f'sysctl "{name}" not allowed in host network namespace')
        if ipc_sysctl(name) and mode == "host":
            raise FlagError(f'sysctl "{name}" is not allowed in the hosts ipc namespace')
    for key, sep in (("CpusetCpus", "CPUs"), ("CpusetMems", "memory nodes")):
        wanted = host.get(key) or ""
        if wanted:
            _check_cpuset(wanted, key, sep)
    period, quota = host.get("CpuPeriod") or 0, host.get("CpuQuota") or 0
    if host.get("NanoCpus") and (period or quota):
        raise FlagError("Conflicting options: Nano CPUs and CPU Period cannot both be set" if period else
                        "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if period and not 1000 <= period <= 1000000:
        raise FlagError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota and quota < 1000:
        raise FlagError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    if memory and swap and swap != -1 and swap < memory:
        raise FlagError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not memory and swap and swap != -1:
        raise FlagError("You should always set the Memory limit when using Memoryswap limit, see usage")
    reservation = host.get("MemoryReservation") or 0
    if reservation and reservation < 6 * 1024 * 1024:
        raise FlagError("Minimum memory reservation allowed is 6MB")
    if memory and reservation and memory < reservation:
        raise FlagError("Minimum memory limit can not be less than memory reservation limit, see usage")
    adj = host.get("OomScoreAdj") or 0
    if not -1000 <= adj <= 1000:
        raise FlagError(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    weight = host.get("BlkioWeight") or 0
    if weight and not 10 <= weight <= 1000:
        raise FlagError("Range of blkio weight is from 10 to 1000")
    for opt in host.get("SecurityOpt") or []:
        check_security_opt(opt)
    # Docker's daemon adds label=disable for the host's IPC or PID namespace and --privileged
    # unless a label was given (generateSecurityOpt); inspect shows it.
    given = host.get("SecurityOpt") or []
    if (mode == "host" or host.get("PidMode") == "host" or host.get("Privileged")) and \
            not any(opt.partition("=")[0].partition(":")[0] == "label" for opt in given):
        host["SecurityOpt"] = [*given, "label=disable"]


def _check_cpuset(wanted: str, key: str, what: str) -> None:
    name = "cpus" if key == "CpusetCpus" else "mems"
    try:
        requested = parse_list(wanted)
    except ValueError:
        raise FlagError(f"Invalid value {wanted} for cpuset {name}: invalid format: {wanted}") from None
    try:
        with open(f"/sys/fs/cgroup/cpuset/cpuset.{name}") as f:
            available = f.read().strip()
    except OSError:
        try:
            with open(f"/sys/fs/cgroup/cpuset.{name}.effective") as f:
                available = f.read().strip()
        except OSError:
            return
    if not requested <= parse_list(available):
        raise FlagError(f"Requested {what} are not available - requested {wanted}, available: {available}")


def parse_list(text: str) -> "set[int]":
    """A cpuset list ("0-2,5") as a set; ValueError when malformed."""
    out: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(text)
        out.update(range(int(low), int(high if dash else low) + 1))
    return out


GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def parse_security_opt(opt: str) -> "tuple[str, str]":
    """(key, value) of one stored --security-opt, or Docker's daemon error."""
    if opt == "no-new-privileges":
        return "no-new-privileges", "true"
    sep = "=" if "=" in opt else ":" if ":" in opt else ""
    if not sep:
        raise FlagError(f'invalid --security-opt 1: "{opt}"')
    key, _, value = opt.partition(sep)
    if key == "no-new-privileges" and value not in GO_BOOLS:
        raise FlagError(f'invalid --security-opt 2: "{opt}"')
    if key == "systempaths" and value != "unconfined":
        raise FlagError(f'invalid --security-opt 2: "{opt}"')
    if key not in ("label", "apparmor", "seccomp", "no-new-privileges", "systempaths"):
        raise FlagError(f'invalid --security-opt 2: "{opt}"')
    return key, value


def check_security_opt(opt: str) -> None:
    key, value = parse_security_opt(opt)
    if key == "apparmor" and value != "unconfined" and not apparmor_enabled():
        raise FlagError(f"AppArmor is not enabled on this host, so --security-opt {opt} cannot be applied "
                        "(apparmor=unconfined is the only value it takes here)")
    if key == "label" and value != "disable" and not os.path.isdir(SELINUX_FS):
        raise FlagError(f"SELinux is not enabled on this host, so --security-opt {opt} cannot be applied "
                        "(label=disable is the only value it takes here)")


def apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED) as f:
            return f.read().strip() == "Y"
    except OSError:
        return False
