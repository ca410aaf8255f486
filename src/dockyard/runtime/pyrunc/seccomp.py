"""OCI ``linux.seccomp`` profiles: compiled to BPF by libseccomp (ctypes), cached, installed."""

from __future__ import annotations

import ctypes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_ARCHES = {
    "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0x4000003E,
    "SCMP_ARCH_ARM": 0x40000028, "SCMP_ARCH_AARCH64": 0xC00000B7,
    "SCMP_ARCH_PPC64LE": 0xC0000015, "SCMP_ARCH_S390X": 0x80000016, "SCMP_ARCH_RISCV64": 0xC00000F3,
}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_ATTR_CTL_NNP = 3
EPERM = 1
EEXIST = 17


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib = None


def library() -> ctypes.CDLL:
    """libseccomp, loaded once (before pivot_root: it is a host file)."""
    global _lib
    if _lib is None:
        _lib = _load_library()
    return _lib


def _load_library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        from ctypes import util  # slow (imports subprocess): only when the soname is unusual

        name = util.find_library("seccomp")
        if name is None:
            raise OSError("libseccomp not found: apt-get install libseccomp2") from None
        lib = ctypes.CDLL(name)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp))
    lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    return lib


def _action(name: str, errno_ret: "int | None", default_errno: int) -> int:
    try:
        base = _ACTIONS[name]
    except KeyError:
        raise ValueError(f"unknown seccomp action {name!r}") from None
    if name == "SCMP_ACT_ERRNO":
        return base | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return base | ((errno_ret or 0) & 0xFFFF)
    return base


def prepare(profile: "dict[str, Any]", cache_dir: "str | None") -> bytes:
    """The BPF program for ``profile``: from ``cache_dir`` when this profile was compiled
    before (libseccomp takes ~10 ms for Docker's profile), else compiled and cached."""
    from dockyard.runtime.pyrunc import fastjson

    key = _digest(fastjson.dumps(profile).encode())
    path = f"{cache_dir}/{key}.bpf" if cache_dir else None
    if path is not None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
    program = compile_bpf(profile)
    if path is not None:
        import os

        os.makedirs(cache_dir, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(program)
        os.rename(tmp, path)
    return program


def _digest(data: bytes) -> str:
    try:
        from _sha256 import sha256  # the C module itself: hashlib's import costs more
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install a compiled filter (prctl PR_SET_SECCOMP). Without no_new_privs the caller
    must still hold CAP_SYS_ADMIN."""
    from dockyard import linux

    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    linux.prctl(22, 2, ctypes.addressof(prog))  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def compile_bpf(profile: "dict[str, Any]") -> bytes:
    """Build the filter with libseccomp and export it as a BPF program."""
    import os

    lib = library()
    default_errno = profile.get("defaultErrnoRet") or EPERM
    default = _action(profile.get("defaultAction") or "SCMP_ACT_ALLOW", profile.get("defaultErrnoRet"), EPERM)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)
        for arch in profile.get("architectures") or ():
            token = _ARCHES.get(arch)
            if token is not None:
                rc = lib.seccomp_arch_add(ctx, token)
                if rc < 0 and -rc != EEXIST:
                    raise OSError(-rc, f"seccomp_arch_add {arch} failed")
        for rule in profile.get("syscalls") or ():
            action = _action(rule["action"], rule.get("errnoRet"), default_errno)
            if action == default:
                continue  # libseccomp refuses rules that repeat the default
            for args in _split_args(rule.get("args") or []):
                array = (_ArgCmp * max(len(args), 1))()
                for i, a in enumerate(args):
                    array[i] = _ArgCmp(a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
                    nr = lib.seccomp_syscall_resolve_name(name.encode())
                    if nr == -1:  # __NR_SCMP_ERROR: a syscall this libseccomp does not know
                        continue
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(args), array)
                    if rc < 0 and -rc != EEXIST:
                        raise OSError(-rc, f"seccomp rule for {name} failed: error {-rc}")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf failed: error {-rc}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def _split_args(args: "list[dict[str, Any]]") -> "list[list[dict[str, Any]]]":
    """libseccomp wants at most one comparison per argument index in a rule; several on
    one index mean "any of them" (runc's reading), so each becomes its own rule."""
    if not args:
        return [[]]
    by_index: dict[int, list[dict]] = {}
    for a in args:
        by_index.setdefault(a["index"], []).append(a)
    if all(len(v) == 1 for v in by_index.values()):
        return [args]
    return [[a] for a in args]
