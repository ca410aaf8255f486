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


_last_cap: "int | None" = None


def last_cap() -> int:
    """The kernel's highest capability number (read once: a chrooted init has no /proc)."""
    global _last_cap
    if _last_cap is None:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _last_cap = int(f.read())
    return _last_cap


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


def unraisable_ambient(capabilities: dict) -> "list[str]":
    """The ambient capabilities the kernel would refuse to raise: an ambient capability must
    also be permitted and inheritable (runc's own default spec asks for such ones)."""
    allowed = set(capabilities.get("permitted") or ()) & set(capabilities.get("inheritable") or ())
    return [name for name in capabilities.get("ambient") or () if name in _NUMBERS and name not in allowed]


def apply(capabilities: dict, last: int) -> None:
    """Set the process's sets; call after the user switch (which clears them otherwise).

    Ambient capabilities that are not both permitted and inheritable are skipped, as runc
    does (``unraisable_ambient`` names them for the warning); one the kernel still refuses
    (a securebit) is a warning too."""
    permitted = mask(capabilities.get("permitted"), last)
    inheritable = mask(capabilities.get("inheritable"), last)
    try:
        linux.capset(mask(capabilities.get("effective"), last), permitted, inheritable)
    except OSError as e:
        raise OSError(e.errno, f"capset: {e.strerror.rpartition(': ')[2] if e.strerror else e}") from None
    ambient = mask(capabilities.get("ambient"), last) & permitted & inheritable
    for cap in range(last + 1):
        if ambient & (1 << cap):
            try:
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
            except OSError as e:
                from dockyard.runtime.pyrunc.state import warn

                warn(f"can't raise ambient capability {NAMES[cap] if cap < len(NAMES) else cap}: "
                     f"{e.strerror.rpartition(': ')[2] if e.strerror else e}")
