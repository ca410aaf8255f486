"""Capabilities: bounding set via prctl, effective/permitted/inheritable via capset, ambient
via prctl. Names are the OCI spec's (``CAP_SYS_ADMIN``)."""

from __future__ import annotations

from dockyard import linux

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(NAMES)}


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def mask(names: "list[str] | None", last: int) -> int:
    """Bits of ``names``; names unknown to this kernel are skipped, as runc and crun do."""
    bits = 0
    for name in names or ():
        n = _NUMBERS.get(name)
        if n is not None and n <= last:
            bits |= 1 << n
    return bits


def drop_bounding(keep: int, last: int) -> None:
    for cap in range(last + 1):
        if not keep & (1 << cap):
            try:
                linux.prctl(linux.PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != 22:  # EINVAL: not in this kernel's set
                    raise


def apply(capabilities: dict, last: int) -> None:
    """Set the process's sets; call after the user switch (which clears them otherwise)."""
    linux.capset(mask(capabilities.get("effective"), last), mask(capabilities.get("permitted"), last),
                 mask(capabilities.get("inheritable"), last))
    ambient = mask(capabilities.get("ambient"), last)
    for cap in range(last + 1):
        if ambient & (1 << cap):
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
