"""pods/pause.py: the infra program dockyard writes from bytes. Run as a host process it sleeps
and SIGTERM/SIGINT end it with status 0; its ELF header (read with struct, no binutils) says
what it is; the aarch64 build is checked instruction by instruction against known encodings."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import tarfile
import io
import time
from pathlib import Path

import pytest

from dockyard.pods import pause

HOST = os.uname().machine


def _header(data: bytes) -> dict:
    (e_type, e_machine, _version, entry, phoff, _shoff, _flags, ehsize, phentsize, phnum) = struct.unpack(
        "<HHIQQQIHHH", data[16:58])
    p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack(
        "<IIQQQQQQ", data[phoff:phoff + 56])
    return {"type": e_type, "machine": e_machine, "entry": entry, "ehsize": ehsize, "phentsize": phentsize,
            "phnum": phnum, "p_type": p_type, "p_flags": p_flags, "p_offset": p_offset, "p_vaddr": p_vaddr,
            "p_filesz": p_filesz, "p_memsz": p_memsz}


@pytest.mark.parametrize("machine, e_machine", [("x86_64", 62), ("aarch64", 183)])
def test_elf_header_describes_one_static_executable_segment(machine: str, e_machine: int) -> None:
    data = pause.elf(machine)
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1   # 64-bit, little-endian
    h = _header(data)
    assert (h["type"], h["machine"], h["ehsize"], h["phentsize"], h["phnum"]) == (2, e_machine, 64, 56, 1)
    assert (h["p_type"], h["p_flags"], h["p_offset"]) == (1, 5, 0)   # PT_LOAD, r-x, the whole file
    assert h["p_filesz"] == h["p_memsz"] == len(data)
    assert h["p_vaddr"] < h["entry"] < h["p_vaddr"] + len(data)
    assert len(data) < 512


def test_other_architectures_are_refused_clearly() -> None:
    with pytest.raises(pause.UnsupportedArchitecture, match="x86_64 and aarch64 only, not riscv64"):
        pause.elf("riscv64")


def test_aarch64_encodings() -> None:
    # known encodings (from an assembler): movz x8, #134; adr x1, #0x40; b #-0x18; svc #0
    assert pause._movz(8, 134) == 0xD28010C8
    assert pause._adr(1, 0x40) == 0x10000201
    assert pause._b(-0x18) == 0x17FFFFFA
    assert pause.SVC0 == 0xD4000001
    code = pause.elf("aarch64")[pause.HEADERS:]
    words = struct.unpack(f"<{len(code) // 4}I", code[:len(code) // 4 * 4])
    # rt_sigaction(SIGTERM), rt_sigaction(SIGINT), then ppoll in a loop, then exit_group(0)
    assert words[0] == pause._movz(8, 134) and words[1] == pause._movz(0, 15) and words[5] == pause.SVC0
    assert words[6] == pause._movz(8, 134) and words[7] == pause._movz(0, 2) and words[11] == pause.SVC0
    assert words[12] == pause._movz(8, 73) and words[17] == pause.SVC0
    assert words[18] == pause._b(12 * 4 - 18 * 4)
    assert words[19:22] == (pause._movz(8, 94), pause._movz(0, 0), pause.SVC0)
    # both adr land on the sigaction, whose handler is the exit_group code
    act = 4 * 2 + ((words[2] >> 29) & 3 | ((words[2] >> 5) & 0x7FFFF) << 2)
    assert act == 4 * 8 + ((words[8] >> 29) & 3 | ((words[8] >> 5) & 0x7FFFF) << 2)
    handler = struct.unpack("<Q", code[act:act + 8])[0]
    assert handler == pause.BASE + pause.HEADERS + 19 * 4


def test_rootfs_tar_holds_only_an_executable_pause() -> None:
    with tarfile.open(fileobj=io.BytesIO(pause.rootfs_tar("x86_64"))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["pause"]
        assert members[0].mode == 0o755
        assert tar.extractfile(members[0]).read() == pause.elf("x86_64")


@pytest.mark.skipif(HOST not in ("x86_64", "aarch64"), reason=f"no pause program for {HOST}")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_runs_sleeps_and_exits_zero_on_term_and_int(tmp_path: Path, sig: int) -> None:
    program = tmp_path / "pause"
    program.write_bytes(pause.elf())
    program.chmod(0o755)
    proc = subprocess.Popen([str(program)])
    try:
        deadline = time.monotonic() + 5
        while True:   # asleep, with its handlers installed
            status = Path(f"/proc/{proc.pid}/status").read_text()
            caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
            if caught & (1 << (signal.SIGTERM - 1)) and caught & (1 << (signal.SIGINT - 1)):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.01)
        assert proc.poll() is None
        time.sleep(0.1)
        assert proc.poll() is None   # pause() keeps it there
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
