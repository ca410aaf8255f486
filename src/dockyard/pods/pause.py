"""The pod's infra program, ``/pause``: a tiny static ELF that holds the pod's namespaces.

It installs a SIGTERM/SIGINT handler that calls exit_group(0) (PID 1 of a PID namespace
ignores any signal it has no handler for, so ``stop`` would otherwise wait for SIGKILL),
then sleeps in pause() forever. Written from bytes here, so a pod needs no image pulled
(podman builds ``localhost/podman-pause`` from catatonit the same way on first use).

Layout of the file: the ELF header (64 bytes), one PT_LOAD program header (56 bytes) that
maps the whole file read+execute at BASE, then the code, then the kernel ``struct sigaction``
the code hands to rt_sigaction (handler, flags, restorer, mask: four 64-bit words).
"""

from __future__ import annotations

import os
import struct

BASE = 0x400000
HEADERS = 64 + 56            # ELF header + one program header: the code starts here
SIGINT, SIGTERM = 2, 15
SA_RESTORER = 0x04000000     # x86_64 delivers a signal only with a restorer (ours never returns)

EM_X86_64, EM_AARCH64 = 62, 183


class UnsupportedArchitecture(Exception):
    pass


# ------------------------------------------------------------------ x86_64

def _x86_64() -> bytes:
    """The x86_64 program; every instruction's bytes commented. ``act`` is the sigaction."""

    def set_handler(signal: int, here: int, act: int) -> bytes:
        code = b"\xb8\x0d\x00\x00\x00"                    # mov eax, 13 (rt_sigaction)
        code += b"\xbf" + struct.pack("<I", signal)       # mov edi, signal
        rel = act - (here + len(code) + 7)                # rip-relative: from the next instruction
        code += b"\x48\x8d\x35" + struct.pack("<i", rel)  # lea rsi, [rip + act]
        code += b"\x31\xd2"                               # xor edx, edx (no old action wanted)
        code += b"\x41\xba\x08\x00\x00\x00"               # mov r10d, 8 (sizeof the signal mask)
        code += b"\x0f\x05"                               # syscall
        return code

    one = len(set_handler(0, 0, 0))
    loop = 2 * one
    pause = b"\xb8\x22\x00\x00\x00"                       # mov eax, 34 (pause)
    pause += b"\x0f\x05"                                  # syscall
    pause += b"\xeb" + struct.pack("<b", -(len(pause) + 2))  # jmp loop (back to the mov)
    handler = loop + len(pause)
    exit_ = b"\xb8\xe7\x00\x00\x00"                       # mov eax, 231 (exit_group)
    exit_ += b"\x31\xff"                                  # xor edi, edi (status 0)
    exit_ += b"\x0f\x05"                                  # syscall
    act = handler + len(exit_)
    act += -act % 8                                       # the struct 8-byte aligned
    code = set_handler(SIGTERM, 0, act) + set_handler(SIGINT, one, act) + pause + exit_
    code += b"\x00" * (act - len(code))
    handler_addr = BASE + HEADERS + handler
    # sa_handler, sa_flags, sa_restorer (never reached: the handler exits), sa_mask
    code += struct.pack("<QQQQ", handler_addr, SA_RESTORER, handler_addr, 0)
    return code


# ------------------------------------------------------------------ aarch64

def _movz(reg: int, value: int) -> int:
    return 0xD2800000 | (value << 5) | reg               # movz xREG, #value


def _adr(reg: int, offset: int) -> int:
    return 0x10000000 | ((offset & 3) << 29) | (((offset >> 2) & 0x7FFFF) << 5) | reg   # adr xREG, pc+offset


def _b(offset: int) -> int:
    return 0x14000000 | ((offset // 4) & 0x3FFFFFF)     # b pc+offset


SVC0 = 0xD4000001                                        # svc #0


def _aarch64() -> bytes:
    """The aarch64 program (it has no pause syscall: ppoll with no descriptors and no
    timeout sleeps until a signal, as glibc's pause does)."""
    words: list[int] = []

    def set_handler(signal: int, act: int) -> None:
        words.append(_movz(8, 134))                      # x8 = 134 (rt_sigaction)
        words.append(_movz(0, signal))                   # x0 = signal
        words.append(_adr(1, act - 4 * len(words)))      # x1 = &act
        words.append(_movz(2, 0))                        # x2 = NULL (no old action wanted)
        words.append(_movz(3, 8))                        # x3 = 8 (sizeof the signal mask)
        words.append(SVC0)

    n_setup = 12
    loop = 4 * n_setup
    n_loop = 7
    handler = loop + 4 * n_loop
    act = handler + 4 * 3
    act += -act % 8
    set_handler(SIGTERM, act)
    set_handler(SIGINT, act)
    assert len(words) == n_setup
    words.append(_movz(8, 73))                           # x8 = 73 (ppoll)
    for reg in range(4):
        words.append(_movz(reg, 0))                      # fds, nfds, timeout, sigmask = 0
    words.append(SVC0)
    words.append(_b(loop - 4 * len(words)))              # b loop
    assert 4 * len(words) == handler
    words.append(_movz(8, 94))                           # x8 = 94 (exit_group)
    words.append(_movz(0, 0))                            # x0 = 0 (status)
    words.append(SVC0)
    code = b"".join(struct.pack("<I", w) for w in words)
    code += b"\x00" * (act - len(code))
    # sa_handler, sa_flags, sa_restorer (unused: the kernel returns through the vDSO), sa_mask
    code += struct.pack("<QQQQ", BASE + HEADERS + handler, 0, 0, 0)
    return code


# ------------------------------------------------------------------ the ELF file

def elf(machine: str | None = None) -> bytes:
    """The static ELF for ``machine`` (``os.uname().machine`` by default)."""
    machine = machine or os.uname().machine
    if machine in ("x86_64", "amd64"):
        code, e_machine, align = _x86_64(), EM_X86_64, 0x1000
    elif machine in ("aarch64", "arm64"):
        code, e_machine, align = _aarch64(), EM_AARCH64, 0x10000
    else:
        raise UnsupportedArchitecture(f"pods need the infra program, which dockyard builds for x86_64 and "
                                      f"aarch64 only, not {machine}")
    size = HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\x00" * 8   # 64-bit, little-endian, version 1, SysV ABI
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,                 # e_type: ET_EXEC
        e_machine,
        1,                 # e_version
        BASE + HEADERS,    # e_entry: the first instruction
        64,                # e_phoff: the program header follows the ELF header
        0,                 # e_shoff: no sections
        0,                 # e_flags
        64, 56, 1,         # e_ehsize, e_phentsize, e_phnum
        64, 0, 0)          # e_shentsize, e_shnum, e_shstrndx
    program = struct.pack(
        "<IIQQQQQQ",
        1,                 # p_type: PT_LOAD
        5,                 # p_flags: read + execute
        0, BASE, BASE,     # p_offset, p_vaddr, p_paddr: the whole file at BASE
        size, size,        # p_filesz, p_memsz
        align)
    return header + program + code


def rootfs_tar(machine: str | None = None) -> bytes:
    """An uncompressed tar holding ``/pause`` (0755): the infra image's one layer."""
    import io
    import tarfile

    data = elf(machine)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
