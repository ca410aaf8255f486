"""pyrunc's device cgroup rules (issue 13): the runtime's default devices, the rule reduction
runc does, the v1 lines, and the cgroup v2 eBPF program, run here by a small interpreter and
checked against an independent model of the v1 kernel's semantics."""

from __future__ import annotations

import random
import struct

import pytest

from dockyard.runtime import spec as specs
from dockyard.runtime.pyrunc import devices
from dockyard.runtime.pyrunc.cgroups import Cgroup
from dockyard.runtime.pyrunc.devices import DeviceError, Rule

RUNC_SPEC_RULES = [{"allow": False, "access": "rwm"}]  # `runc spec`'s linux.resources.devices
BLOCK, CHAR = 1, 2
MKNOD, READ, WRITE = 1, 2, 4
ACCESS = {"m": MKNOD, "r": READ, "w": WRITE}


# ------------------------------------------------------------------ a BPF interpreter

def run_program(code: bytes, kind: int, major: int, minor: int, access: int) -> int:
    """Execute a BPF_PROG_TYPE_CGROUP_DEVICE program on one access: r1 points at
    struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }."""
    assert len(code) % 8 == 0 and code
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    ctx = struct.pack("<III", access << 16 | kind, major, minor)
    mask = (1 << 64) - 1
    regs: list[object] = [0] * 11
    regs[1] = "ctx"
    pc = steps = 0
    while True:
        steps += 1
        assert steps <= len(insns), "a jump went backwards"
        assert 0 <= pc < len(insns), f"pc {pc} out of the program"
        op, reg, off, imm = insns[pc]
        dst, src = reg & 0xF, reg >> 4
        pc += 1
        if op == 0x61:  # ldx w
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op in (0x54, 0x74, 0xB4, 0xBC):  # alu32: and k, rsh k, mov k, mov x
            a = regs[dst] if op in (0x54, 0x74) else 0  # a mov overwrites dst
            b = regs[src] if op == 0xBC else imm & 0xFFFFFFFF
            assert isinstance(a, int) and isinstance(b, int)
            value = {0x54: lambda: a & b, 0x74: lambda: (a & 0xFFFFFFFF) >> b, 0xB4: lambda: b, 0xBC: lambda: b}[op]()
            regs[dst] = value & 0xFFFFFFFF
        elif op in (0x15, 0x55, 0x5D):  # jeq k, jne k, jne x (64-bit compares)
            a = regs[dst]
            b = regs[src] if op == 0x5D else imm & mask  # the immediate is sign-extended
            assert isinstance(a, int) and isinstance(b, int) and off >= 0
            if (a == b) == (op == 0x15):
                pc += off
        elif op == 0x95:  # exit
            assert isinstance(regs[0], int)
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


# ------------------------------------------------------------------ the v1 kernel, as a model

def kernel_v1(rules: list[dict], kind: str, major: int, minor: int, access: str) -> bool:
    """security/device_cgroup.c: a cgroup that starts out denying everything (runc writes
    the ``a`` deny first), then each rule written to devices.allow/deny; the verdict of an
    access. Kept independent of devices.Emulator on purpose."""
    allow_default = False
    exceptions: dict[tuple[str, int, int], set[str]] = {}
    for rule in rules:
        rtype = rule.get("type") or "a"
        rmajor = -1 if rule.get("major") is None else rule["major"]
        rminor = -1 if rule.get("minor") is None else rule["minor"]
        raccess = set(rule.get("access") or "rwm")
        if rtype == "a":
            allow_default, exceptions = bool(rule.get("allow")), {}
            continue
        key = (rtype, rmajor, rminor)
        if bool(rule.get("allow")) != allow_default:
            exceptions.setdefault(key, set()).update(raccess)
        elif key in exceptions:
            exceptions[key] -= raccess
            if not exceptions[key]:
                del exceptions[key]
    asked = set(access)
    matching = [acc for (t, ma, mi), acc in exceptions.items()
                if t == kind and ma in (-1, major) and mi in (-1, minor)]
    if allow_default:
        return not any(acc & asked for acc in matching)  # match_exception_partial
    return any(asked <= acc for acc in matching)  # match_exception


def bpf_verdict(rules: list[dict], kind: str, major: int, minor: int, access: str) -> bool:
    code = devices.program(devices.Emulator.of(devices.parse_rules(rules)))
    bits = sum(ACCESS[c] for c in access)
    return run_program(code, {"b": BLOCK, "c": CHAR}[kind], major, minor, bits) == 1


def with_defaults(rules: list[dict]) -> list[dict]:
    return rules + [{"allow": True, "type": r.type, "major": r.major, "minor": r.minor, "access": r.access}
                    for r in devices.DEFAULT_RULES]


# ------------------------------------------------------------------ the default devices

def test_default_rules_are_runcs_allowed_devices_plus_console() -> None:
    lines = [r.cgroup_string() for r in devices.DEFAULT_RULES]
    assert all(r.allow for r in devices.DEFAULT_RULES)
    assert lines == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
                     "c 1:9 rwm", "c 5:1 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]


def test_runc_default_spec_gets_the_runtime_devices() -> None:
    state = devices.effective(RUNC_SPEC_RULES)
    assert not state.default_allow and not state.allow_all
    allowed = lambda *t: run_program(devices.program(state), *t) == 1  # noqa: E731
    for minor in (3, 5, 7, 8, 9):  # null zero full random urandom
        assert allowed(CHAR, 1, minor, READ | WRITE) and allowed(CHAR, 1, minor, MKNOD)
    assert allowed(CHAR, 5, 0, READ | WRITE) and allowed(CHAR, 5, 2, READ | WRITE)  # tty, ptmx
    assert allowed(CHAR, 136, 7, READ | WRITE)  # a pts
    assert allowed(BLOCK, 8, 0, MKNOD) and allowed(CHAR, 1, 11, MKNOD)  # mknod of anything
    assert not allowed(BLOCK, 8, 0, READ) and not allowed(BLOCK, 8, 0, WRITE)  # ... but no use of it
    assert not allowed(BLOCK, 254, 0, READ) and not allowed(CHAR, 1, 11, READ)  # vda, kmsg
    assert not allowed(CHAR, 1, 1, READ | WRITE)  # /dev/mem
    assert not allowed(BLOCK, 8, 0, MKNOD | READ)  # needs one rule holding both


def test_v1_lines_reset_then_allow() -> None:
    writes = devices.v1_writes(devices.effective(RUNC_SPEC_RULES))
    assert writes[0] == ("devices.deny", "a")
    assert {line for _, line in writes[1:]} == {r.cgroup_string() for r in devices.DEFAULT_RULES}
    assert all(name == "devices.allow" for name, _ in writes[1:])


def _state(emulator: devices.Emulator) -> tuple[bool, dict]:
    return emulator.default_allow, dict(emulator.exceptions)


def test_dockyard_spec_rules_same_state_as_runc_default() -> None:
    # The same state (default and exceptions). The order of the writes differs since the
    # exceptions follow the spec's order (test_v1_lines_follow_the_spec_order): Docker's
    # list has no /dev/console, which comes after the spec's rules, so last.
    docker = devices.effective([dict(r) for r in specs._DEVICE_RULES])
    runc = devices.effective(RUNC_SPEC_RULES)
    assert _state(docker) == _state(runc)
    assert sorted(devices.v1_writes(docker)) == sorted(devices.v1_writes(runc))
    assert devices.v1_writes(docker)[-1] == ("devices.allow", "c 5:1 rwm")


# runtime-tools' linux_cgroups_devices: deny all, then three allow rules; it reads
# devices.list back and wants the three first, in the spec's order (crun passes it).
RTT_RULES = RUNC_SPEC_RULES + [
    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
    {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"},
]


def test_v1_lines_follow_the_spec_order() -> None:
    """Before: the exceptions were sorted by number, so devices.list began with
    ``b *:* m`` (runc's order; runc fails this runtime-tools check too)."""
    lines = [line for _, line in devices.v1_writes(devices.effective(RTT_RULES))]
    assert lines[:4] == ["a", "c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]
    assert lines[4:] == [r.cgroup_string() for r in devices.DEFAULT_RULES]  # the defaults, in runc's order


def kernel_list(rules: list[dict]) -> list[str]:
    """devices.list of a v1 cgroup after writing ``rules`` (security/device_cgroup.c): an
    ``a`` rule clears the exceptions; a new exception goes to the tail, one with the same
    type and numbers gains the access bits in place; a removal clears bits in place and
    drops the exception once it has none. (Default-deny lists only; independent of
    devices.Emulator on purpose.)"""
    listed: list[list] = []
    for rule in rules:
        kind = rule.get("type") or "a"
        if kind == "a":
            assert not rule.get("allow")
            listed = []
            continue
        key = [kind, rule.get("major", -1), rule.get("minor", -1)]
        access = set(rule.get("access") or "rwm")
        same = next((e for e in listed if e[:3] == key), None)
        if rule.get("allow"):
            if same:
                same[3] |= access
            else:
                listed.append(key + [access])
        elif same:
            same[3] -= access
            if not same[3]:
                listed.remove(same)
    number = lambda n: "*" if n in (None, -1) else str(n)  # noqa: E731
    return [f"{k} {number(ma)}:{number(mi)} {''.join(c for c in 'rwm' if c in acc)}" for k, ma, mi, acc in listed]


@pytest.mark.parametrize("rules", [
    RTT_RULES,
    RUNC_SPEC_RULES + [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},  # a default: keeps
                       {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},  # its place first
                       {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "w"}],
    RUNC_SPEC_RULES + [{"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rw"},
                       {"allow": True, "type": "b", "major": 8, "minor": 1, "access": "r"},
                       {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "rw"},  # removed ...
                       {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "m"}],  # ... added last
    [dict(r) for r in specs._DEVICE_RULES],
], ids=["runtime-tools", "merge-in-place", "remove-then-add", "docker"])
def test_v1_lines_are_the_kernels_list(rules: list[dict]) -> None:
    """Writing the emulator's lines from deny-all lists what writing the spec's rules and
    then the defaults one by one lists (what crun does)."""
    written = [line for _, line in devices.v1_writes(devices.effective(rules))]
    assert written[0] == "a"
    assert written[1:] == kernel_list(with_defaults(rules))


def test_allow_all_needs_no_filter() -> None:
    assert devices.effective([{"allow": True, "access": "rwm"}]).allow_all
    assert not devices.effective([{"allow": True, "type": "a"}, {"allow": False, "type": "b", "major": 8,
                                                                   "access": "rw"}]).allow_all


# ------------------------------------------------------------------ the program against the model

_TUPLES = [(kind, major, minor, access) for kind in "bc" for major in (1, 5, 8, 10, 136, 254)
           for minor in (0, 2, 3, 200) for access in ("r", "w", "m", "rw", "rm", "wm", "rwm")]


@pytest.mark.parametrize("rules", [
    RUNC_SPEC_RULES,
    [dict(r) for r in specs._DEVICE_RULES],
    [{"allow": True, "access": "rwm"}, {"allow": False, "type": "b", "major": 8, "access": "rw"}],
    [{"allow": True}, {"allow": False, "type": "c", "major": 5, "minor": 2, "access": "w"}],
    [{"allow": False}, {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
     {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "w"}],
    [{"allow": False}, {"allow": True, "type": "c", "major": 10, "access": "rwm"},
     {"allow": False, "type": "c", "major": 10, "access": "w"}],
    [{"allow": False}, {"allow": True, "type": "b", "access": "rw"}, {"allow": True}],
], ids=["runc-spec", "docker", "blacklist-8", "blacklist-w", "merge", "remove", "allow-last"])
def test_program_matches_the_kernel_model(rules: list[dict]) -> None:
    for raw in (rules, with_defaults(rules)):
        for t in _TUPLES:
            assert bpf_verdict(raw, *t) == kernel_v1(raw, *t), (raw, t)


def test_program_matches_the_kernel_model_random() -> None:
    rng = random.Random(13)
    checked = 0
    for _ in range(300):
        rules = []
        for _ in range(rng.randint(1, 7)):
            kind = rng.choice("abcbc")
            rule = {"allow": rng.random() < 0.5, "type": kind,
                    "access": "".join(c for c in "rwm" if rng.random() < 0.6) or "r"}
            if kind != "a":
                if rng.random() < 0.7:
                    rule["major"] = rng.choice((1, 5, 8, 136))
                if rng.random() < 0.6:
                    rule["minor"] = rng.choice((0, 3, 200))
            rules.append(rule)
        try:
            devices.Emulator.of(devices.parse_rules(rules))
        except DeviceError as e:
            assert "punch a hole" in str(e)
            continue
        checked += 1
        for t in _TUPLES:
            assert bpf_verdict(rules, *t) == kernel_v1(rules, *t), (rules, t)
    assert checked > 150


def test_wildcard_holes_are_refused() -> None:
    # v1 would silently keep the wildcard exception: refused, as runc does.
    with pytest.raises(DeviceError, match="punch a hole"):
        devices.effective([{"allow": True}, {"allow": False, "type": "c", "access": "w"}])
    with pytest.raises(DeviceError, match="punch a hole"):
        devices.Emulator.of(devices.parse_rules([
            {"allow": False}, {"allow": True, "type": "c", "major": 4, "access": "rw"},
            {"allow": False, "type": "c", "major": 4, "minor": 1, "access": "r"}]))


@pytest.mark.parametrize("entry,message", [
    ({"allow": True, "type": "p", "access": "rwm"}, "type"),
    ({"allow": True, "type": "c", "major": 1, "access": "rwx"}, "access"),
    ({"allow": True, "type": "c", "major": "1", "access": "r"}, "major"),
    ({"allow": True, "type": "c", "major": 1, "minor": 1 << 40, "access": "r"}, "minor"),
])
def test_invalid_rules_refused(entry: dict, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        devices.parse_rules([entry])


def test_program_encoding() -> None:
    code = devices.program(devices.effective(RUNC_SPEC_RULES))
    assert len(code) % 8 == 0
    ops = [code[i] for i in range(0, len(code), 8)]
    assert ops[-2:] == [0xB4, 0x95]  # r0 = default; exit
    assert struct.unpack_from("<i", code, len(code) - 12)[0] == 0  # the default is deny
    assert len(code) // 8 < 4096  # BPF_MAXINSNS for an unprivileged-sized program


# ------------------------------------------------------------------ where the rules go (fail closed)

def _cgroup(dirs: dict[str, str], unified: bool = False) -> Cgroup:
    cgroup = Cgroup.__new__(Cgroup)
    cgroup.path, cgroup.unified, cgroup.dirs = "/test", unified, dirs
    return cgroup


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(devices, "apply_v1", lambda d, state: calls.append(("v1", d)))
    monkeypatch.setattr(devices, "apply_v2", lambda d, state: calls.append(("v2", d)))
    return calls


def test_v1_devices_hierarchy_used_when_present(recorded, tmp_path) -> None:
    _cgroup({"devices": str(tmp_path / "dev"), "unified": str(tmp_path)}).apply_devices(RUNC_SPEC_RULES)
    assert recorded == [("v1", str(tmp_path / "dev"))]


def test_hybrid_without_v1_devices_falls_back_to_bpf(recorded, tmp_path) -> None:
    _cgroup({"memory": str(tmp_path / "m"), "unified": str(tmp_path)}).apply_devices(RUNC_SPEC_RULES)
    assert recorded == [("v2", str(tmp_path))]


def test_pure_v2_uses_bpf(recorded, tmp_path) -> None:
    _cgroup({"": str(tmp_path)}, unified=True).apply_devices(RUNC_SPEC_RULES)
    assert recorded == [("v2", str(tmp_path))]


def test_no_mechanism_fails_closed(recorded, tmp_path) -> None:
    cgroup = _cgroup({"memory": str(tmp_path / "m")})
    with pytest.raises(DeviceError, match="device isolation"):
        cgroup.apply_devices(RUNC_SPEC_RULES)
    cgroup.apply_devices([])  # no rules: nothing asked for, nothing refused
    cgroup.apply_devices([{"allow": True, "access": "rwm"}])  # allow-all: same
    assert recorded == []


def test_bpf_failure_fails_closed(monkeypatch, tmp_path) -> None:
    def fail(directory, state):
        raise PermissionError(1, "BPF_PROG_LOAD (cgroup device filter): Operation not permitted")

    monkeypatch.setattr(devices, "apply_v2", fail)
    with pytest.raises(DeviceError, match="refusing to run"):
        _cgroup({"": str(tmp_path)}, unified=True).apply_devices(RUNC_SPEC_RULES)


def test_apply_sets_devices(recorded, tmp_path) -> None:
    (tmp_path / "dev").mkdir()
    _cgroup({"devices": str(tmp_path / "dev")}).apply({"devices": RUNC_SPEC_RULES})
    assert recorded == [("v1", str(tmp_path / "dev"))]


def test_apply_v1_writes_each_line(tmp_path) -> None:
    written: list[tuple[str, str]] = []
    import os

    real_write = os.write

    def spy(fd, data):
        written.append((os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[1], data.decode()))
        return real_write(fd, data)

    for name in ("devices.allow", "devices.deny"):
        (tmp_path / name).write_text("")
    state = devices.effective(RUNC_SPEC_RULES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(devices.os, "write", spy)
        devices.apply_v1(str(tmp_path), state)
    assert written == devices.v1_writes(state)


def test_rule_repr_and_equality() -> None:
    assert Rule(True, "c", 1, 3, "rwm") == devices.DEFAULT_RULES[2]
    assert repr(devices.DEFAULT_RULES[0]) == "Rule(allow c *:* m)"
