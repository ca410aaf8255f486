"""Device access control of a container's cgroup, from the spec's ``linux.resources.devices``.

One rule set, two mechanisms:

- cgroup v1: ``devices.deny`` / ``devices.allow`` of the devices controller;
- cgroup v2 (and a hybrid host's cgroup2 part when v1 has no devices controller): an eBPF
  program of type BPF_PROG_TYPE_CGROUP_DEVICE, built here instruction by instruction,
  loaded with bpf(2) through ctypes and attached to the container's cgroup2 directory.

The rules are the spec's followed by the runtime's default devices (``DEFAULT_RULES``: mknod
of anything, /dev/null, zero, full, random, urandom, tty, console, ptmx, /dev/pts/*, tun),
the list runc (libcontainer/specconv ``AllowedDevices``) and crun append, so that a spec
that denies everything (``runc spec``'s ``{"allow": false, "access": "rwm"}``) still lets
the runtime create its own /dev. As in runc, they are first reduced the way the v1 kernel
evaluates them (``Emulator``): from deny-all, an ``a`` rule switches the default and drops
every exception; any other rule adds an exception when its action differs from the
default and removes the same (type, major, minor) exception otherwise. Removing part of a
wildcard exception is refused (v1 would silently ignore it). The result, a default and a
set of exceptions of the opposite action (in the order the kernel would list them: the
spec's rules first, in the spec's order), is what both mechanisms get, so the two agree:

- default deny: an access is allowed when one allow exception matches its type, major and
  minor (or has a wildcard) and holds every access bit asked for;
- default allow: an access is denied when a deny exception matches and shares any access
  bit with it (the kernel's partial match for v1 black lists).
"""

from __future__ import annotations

import os
import struct

from dockyard.runtime.pyrunc.state import SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

WILDCARD = -1
ACCESS_ALL = "rwm"


class DeviceError(SetupError):
    """An invalid or unsupported device rule, or no way to enforce the rules on this host."""


class Rule:
    """One device cgroup rule: type ``a`` (all), ``c`` or ``b``; -1 for a wildcard number."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, type: str, major: int = WILDCARD, minor: int = WILDCARD,
                 access: str = ACCESS_ALL) -> None:
        self.allow, self.type, self.major, self.minor, self.access = allow, type, major, minor, access

    def __repr__(self) -> str:
        return f"Rule({'allow' if self.allow else 'deny'} {self.cgroup_string()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return self.allow, self.type, self.major, self.minor, self.access

    def cgroup_string(self) -> str:
        """The line the v1 ``devices.allow``/``devices.deny`` files take (``c 1:3 rwm``)."""
        if self.type == "a":
            return "a"
        major = "*" if self.major < 0 else str(self.major)
        minor = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _r(type: str, major: int, minor: int, access: str) -> Rule:
    return Rule(True, type, major, minor, access)


# runc's libcontainer/specconv AllowedDevices, in its order, plus /dev/console (5:1), which
# crun allows too (the runtime binds the terminal there).
DEFAULT_RULES: "tuple[Rule, ...]" = (
    _r("c", WILDCARD, WILDCARD, "m"),  # mknod of any character device
    _r("b", WILDCARD, WILDCARD, "m"),  # mknod of any block device
    _r("c", 1, 3, "rwm"),  # /dev/null
    _r("c", 1, 8, "rwm"),  # /dev/random
    _r("c", 1, 7, "rwm"),  # /dev/full
    _r("c", 5, 0, "rwm"),  # /dev/tty
    _r("c", 1, 5, "rwm"),  # /dev/zero
    _r("c", 1, 9, "rwm"),  # /dev/urandom
    _r("c", 5, 1, "rwm"),  # /dev/console
    _r("c", 136, WILDCARD, "rwm"),  # /dev/pts/*
    _r("c", 5, 2, "rwm"),  # /dev/ptmx
    _r("c", 10, 200, "rwm"),  # /dev/net/tun
)

# A dev_t holds a 12-bit major and a 20-bit minor; anything larger can match no device.
_MAX_NUMBER = 0x7FFFFFFF


def parse_rules(entries: "Iterable[dict[str, Any]]") -> "list[Rule]":
    """The spec's ``linux.resources.devices`` as rules; a missing access means ``rwm``."""
    rules = []
    for entry in entries:
        kind = entry.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise DeviceError(f"invalid device cgroup rule type {kind!r} (a, b or c)")
        access = entry.get("access") or ACCESS_ALL
        if not isinstance(access, str) or set(access) - set(ACCESS_ALL):
            raise DeviceError(f"invalid device cgroup access {access!r} (a combination of r, w and m)")
        numbers = []
        for name in ("major", "minor"):
            value = entry.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value > _MAX_NUMBER):
                raise DeviceError(f"invalid device cgroup {name} number {value!r}")
            numbers.append(WILDCARD if value is None or value < 0 else value)
        access = "".join(c for c in ACCESS_ALL if c in access)  # canonical order, no repeats
        rules.append(Rule(bool(entry.get("allow")), kind, numbers[0], numbers[1], access))
    return rules


class Emulator:
    """The state a v1 devices cgroup reaches from deny-all through a list of rules (runc's
    devices emulator): a default action and exceptions (type, major, minor) -> access, a
    dict kept in the kernel's list order (security/device_cgroup.c appends a new exception
    at the tail, ORs the access of an existing one in place)."""

    def __init__(self) -> None:
        self.default_allow = False
        self.exceptions: "dict[tuple[str, int, int], str]" = {}

    @classmethod
    def of(cls, rules: "Iterable[Rule]") -> "Emulator":
        emulator = cls()
        for rule in rules:
            emulator.apply(rule)
        return emulator

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
        elif rule.allow != self.default_allow:
            key = (rule.type, rule.major, rule.minor)
            self.exceptions[key] = _union(self.exceptions.get(key, ""), rule.access)
        else:
            self._remove(rule)

    def _remove(self, rule: Rule) -> None:
        key = (rule.type, rule.major, rule.minor)
        for wider in ((rule.type, WILDCARD, rule.minor), (rule.type, rule.major, WILDCARD),
                      (rule.type, WILDCARD, WILDCARD)):
            if wider != key and set(self.exceptions.get(wider, "")) & set(rule.access):
                held = Rule(not rule.allow, *wider, self.exceptions[wider])
                raise DeviceError(f"device rule {rule!r} cannot punch a hole in the wildcard rule {held!r} "
                                  "(the devices cgroup does not support it)")
        left = "".join(c for c in self.exceptions.get(key, "") if c not in rule.access)
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    @property
    def allow_all(self) -> bool:
        return self.default_allow and not self.exceptions

    def rules(self) -> "list[Rule]":
        """The state as rules: the ``a`` rule of the default, then the exceptions in the
        order the kernel lists them in ``devices.list``: the order they were added (an
        exception that gains access bits keeps its place; one removed and added again goes
        last). Written in this order, a v1 cgroup lists the spec's rules in the spec's
        order, ahead of the runtime's defaults, as crun's does and as the runtime spec's
        "apply entries in the listed order" is checked (runtime-tools reads devices.list)."""
        return [Rule(self.default_allow, "a")] + [
            Rule(not self.default_allow, kind, major, minor, access)
            for (kind, major, minor), access in self.exceptions.items()]


def _union(a: str, b: str) -> str:
    return "".join(c for c in ACCESS_ALL if c in a or c in b)


def effective(entries: "Iterable[dict[str, Any]]") -> Emulator:
    """The state the spec's rules and then the default devices give."""
    return Emulator.of([*parse_rules(entries), *DEFAULT_RULES])


# ------------------------------------------------------------------ cgroup v1

def v1_writes(emulator: Emulator) -> "list[tuple[str, str]]":
    """(file, line) pairs that bring a v1 devices cgroup to the state, whatever it held:
    the default first (an ``a`` rule resets the exceptions), then each exception."""
    return [("devices.allow" if rule.allow else "devices.deny", rule.cgroup_string())
            for rule in emulator.rules()]


def apply_v1(directory: str, emulator: Emulator) -> None:
    for name, line in v1_writes(emulator):
        path = f"{directory}/{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, line.encode())
        except OSError as e:
            raise OSError(e.errno, f"writing {line!r} to {path}: {os.strerror(e.errno)}") from None
        finally:
            os.close(fd)


# ------------------------------------------------------------------ cgroup v2: the program

# struct bpf_cgroup_dev_ctx { u32 access_type; /* (access << 16) | type */ u32 major; u32 minor; }
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_ACC_ALL = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE

# Opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source.
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: dst = (u32)(dst & imm)
ALU32_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K: dst = (u32)(dst >> imm)
ALU32_MOV_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K: dst = (u32)imm
ALU32_MOV_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src
JMP_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
JMP_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
JMP_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X: if dst != src: pc += off
JMP_EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0
_JUMPS = (JMP_JEQ_K, JMP_JNE_K, JMP_JNE_X)

_INSN = struct.Struct("<BBhi")  # struct bpf_insn: code, dst_reg:4 | src_reg:4 << 4, off, imm


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(code, dst | src << 4, off, imm)


def program(emulator: Emulator) -> bytes:
    """The BPF_PROG_TYPE_CGROUP_DEVICE program of the state: r2 type, r3 access, r4 major,
    r5 minor; one block per exception that returns the exception's verdict when it matches
    and falls through to the next block otherwise; the default verdict last."""
    code = [
        _insn(LDX_MEM_W, 2, 1, 0), _insn(ALU32_AND_K, 2, imm=0xFFFF),  # r2 = type
        _insn(LDX_MEM_W, 3, 1, 0), _insn(ALU32_RSH_K, 3, imm=16),  # r3 = access
        _insn(LDX_MEM_W, 4, 1, 4),  # r4 = major
        _insn(LDX_MEM_W, 5, 1, 8),  # r5 = minor
    ]
    for rule in emulator.rules()[1:]:
        code += _block(rule)
    code += [_insn(ALU32_MOV_K, 0, imm=1 if emulator.default_allow else 0), _insn(JMP_EXIT)]
    return b"".join(code)


def _block(rule: Rule) -> "list[bytes]":
    """Instructions for one exception; every jump goes to the end of the block."""
    access = 0
    for c in rule.access:
        access |= _ACCESS[c]
    checks: "list[tuple[int, int, int, int]]" = [(JMP_JNE_K, 2, 0, _TYPES[rule.type])]  # (code, dst, src, imm)
    if access != _ACC_ALL:
        checks += [(ALU32_MOV_X, 1, 3, 0), (ALU32_AND_K, 1, 0, access)]  # r1 = r3 & access
        # An allow rule must hold every bit asked for (r1 == r3); a deny rule, any (r1 != 0).
        checks.append((JMP_JNE_X, 1, 3, 0) if rule.allow else (JMP_JEQ_K, 1, 0, 0))
    if rule.major >= 0:
        checks.append((JMP_JNE_K, 4, 0, rule.major))
    if rule.minor >= 0:
        checks.append((JMP_JNE_K, 5, 0, rule.minor))
    tail = [_insn(ALU32_MOV_K, 0, imm=1 if rule.allow else 0), _insn(JMP_EXIT)]
    end = len(checks) + len(tail)
    return [_insn(op, dst, src, end - (i + 1) if op in _JUMPS else 0, imm)
            for i, (op, dst, src, imm) in enumerate(checks)] + tail


# ------------------------------------------------------------------ cgroup v2: bpf(2)

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
LICENSE = b"Apache"
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_ATTR_SIZE = 128  # more than any field we set; the kernel requires the rest to be zero


_libc = None


def _bpf(cmd: int, attr: "Any") -> int:
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"bpf(2): unknown system call number on {os.uname().machine}")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(_ATTR_SIZE))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def load(code: bytes) -> int:
    """BPF_PROG_LOAD; the program's fd (the kernel makes it close-on-exec). On a verifier
    error the message carries the verifier's log."""
    import ctypes

    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(LICENSE)
    log = ctypes.create_string_buffer(65536)
    for log_level in (0, 1):
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // _INSN.size,
                         ctypes.addressof(insns), ctypes.addressof(license), log_level,
                         len(log) if log_level else 0, ctypes.addressof(log) if log_level else 0)
        attr[48:48 + 11] = b"pyrunc_devs"  # prog_name, for bpftool and /proc/<pid>/fdinfo
        try:
            return _bpf(BPF_PROG_LOAD, attr)
        except OSError as e:
            if log_level == 0 and e.errno in (13, 22):  # EACCES, EINVAL: ask for the verifier's log
                continue
            detail = log.value.decode(errors="replace").strip()
            raise OSError(e.errno, f"BPF_PROG_LOAD (cgroup device filter): {e.strerror}"
                          + (f": {detail}" if detail else "")) from None
    raise AssertionError("unreachable")


def attached(cgroup_fd: int) -> "list[int]":
    """IDs of the device programs attached to the cgroup itself (BPF_PROG_QUERY)."""
    import ctypes

    size = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * size)()
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), size)
        try:
            _bpf(BPF_PROG_QUERY, attr)
        except OSError as e:
            if e.errno == 28:  # ENOSPC: more than we made room for; prog_cnt says how many
                size = struct.unpack_from("<I", attr, 24)[0]
                continue
            raise OSError(e.errno, f"BPF_PROG_QUERY (cgroup device filters): {e.strerror}") from None
        count = struct.unpack_from("<I", attr, 24)[0]
        return list(ids[:count])
    raise OSError(11, "BPF_PROG_QUERY: the list of device filters keeps changing")


def _prog_fd(prog_id: int) -> int:
    import ctypes

    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<III", attr, 0, prog_id, 0, 0)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr)


def _attach_cmd(cmd: int, cgroup_fd: int, prog_fd: int, flags: int) -> None:
    import ctypes

    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags)
    _bpf(cmd, attr)


def attach(cgroup_dir: str, code: bytes) -> None:
    """Load ``code`` and attach it to ``cgroup_dir`` (BPF_F_ALLOW_MULTI, as runc: filters
    of ancestors still apply); device filters attached there before are detached, once the
    new one is in place. No fd stays open: the attachment holds the program, and the
    program goes away with the cgroup."""
    cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = attached(cgroup_fd)
        prog_fd = load(code)
        try:
            try:
                _attach_cmd(BPF_PROG_ATTACH, cgroup_fd, prog_fd, BPF_F_ALLOW_MULTI)
            except OSError as e:
                raise OSError(e.errno, f"BPF_PROG_ATTACH (BPF_CGROUP_DEVICE) to {cgroup_dir}: {e.strerror}") from None
        finally:
            os.close(prog_fd)
        for prog_id in old:
            try:
                fd = _prog_fd(prog_id)
            except OSError as e:
                if e.errno == 2:  # ENOENT: gone meanwhile
                    continue
                raise
            try:
                _attach_cmd(BPF_PROG_DETACH, cgroup_fd, fd, 0)
            except OSError as e:
                if e.errno != 2:
                    raise OSError(e.errno, f"BPF_PROG_DETACH of an old device filter of {cgroup_dir}: "
                                           f"{e.strerror}") from None
            finally:
                os.close(fd)
    finally:
        os.close(cgroup_fd)


def apply_v2(cgroup_dir: str, emulator: Emulator) -> None:
    attach(cgroup_dir, program(emulator))
