"""Device isolation (issue 13) under pyrunc and the reference runtimes.

- runc's default spec (`runc spec`: deny every device, nothing else) must run: the runtime
  allows the devices it creates itself (runc's AllowedDevices), so /dev/null works, and
  mknod is allowed but opening a disk it made is not.
- The cgroup v2 mechanism, an eBPF device filter on the container's cgroup2 directory: on
  this hybrid host the v1 devices hierarchy is hidden from the runtime (a private mount
  namespace where it is unmounted), which leaves it only the cgroup2 part.
- Neither mechanism (v1 devices and the cgroup2 mount both hidden): pyrunc refuses the
  container rather than run it without device isolation, unless the spec has no rules.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.cgroupfs import is_unified, v1_hierarchies
from dockyard.runtime.oci import OCIRuntime, OCIRuntimeError, pyrunc_command
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, run_in, runtime, runtime_roots)

RUNC_SPEC_RULES = [{"allow": False, "access": "rwm"}]
DEVICES_V1 = "/sys/fs/cgroup/devices"
UNIFIED = "/sys/fs/cgroup/unified"


def _openable_disk() -> tuple[int, int]:
    """A block device the host opens for reading (an unbound loop device first: opening
    one reads and changes nothing): a control that only the device cgroup can refuse."""
    candidates = sorted(Path("/dev").glob("loop[0-9]*")) + sorted(Path("/dev").glob("[sv]d[a-z]"))
    for path in candidates:
        try:
            st = path.stat()
            if not stat.S_ISBLK(st.st_mode):
                continue
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            continue
        return os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.skip("no block device that this host opens")


def _rules(rules: list[dict[str, Any]] | None):
    def edit(spec: dict[str, Any]) -> None:
        resources = spec["linux"].setdefault("resources", {})
        if rules is None:
            resources.pop("devices", None)
        else:
            resources["devices"] = [dict(r) for r in rules]
    return edit


def _probe(disk: tuple[int, int]) -> str:
    """/dev/null and /dev/zero work; mknod of two disks works, opening them does not."""
    major, minor = disk
    return ("echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c; "
            "mknod /tmp/NAME-sda b 8 0 && echo mknod-ok; head -c 1 /tmp/NAME-sda >/dev/null; echo sda=$?; "
            f"mknod /tmp/NAME-disk b {major} {minor} && head -c 1 /tmp/NAME-disk >/dev/null; echo disk=$?; "
            "rm -f /tmp/NAME-sda /tmp/NAME-disk")


def _run(rt: OCIRuntime, bundles: Bundles, script: str, rules: list[dict[str, Any]] | None):
    """Run ``script`` (its NAME: a name of its own for the nodes it makes in the shared rootfs)."""
    script = script.replace("NAME", f"dev-{uuid.uuid4().hex[:12]}")
    cid, bundle = bundles.make(rt.name, ["sh", "-c", script], spec_edit=_rules(rules))
    try:
        return rt.run(cid, bundle, timeout=60)
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)


def _assert_isolated(result: subprocess.CompletedProcess[bytes]) -> None:
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert out.split() == ["null-ok", "3", "mknod-ok", "sda=1", "disk=1"], (out, err)
    assert err.count("Operation not permitted") == 2, err


def test_runc_default_spec_runs_with_device_isolation(runtime, bundles) -> None:
    """Before issue 13 pyrunc wrote `devices.deny a` and nothing else: its own mknod of
    /dev/null failed and create aborted."""
    _assert_isolated(_run(runtime, bundles, _probe(_openable_disk()), RUNC_SPEC_RULES))


# runtime-tools' linux_cgroups_devices: deny all, then three allow rules, read back from
# devices.list, where they must come first and in the spec's order.
ORDERED_RULES = RUNC_SPEC_RULES + [
    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
    {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"},
]


@pytest.mark.parametrize("name", ["pyrunc", "crun"])
def test_v1_devices_list_follows_the_spec_order(name, runtime_roots, cgroup_parent, bundles) -> None:
    """Before: pyrunc wrote the exceptions sorted by number (runc's order), so devices.list
    began with ``b *:* m`` and runtime-tools' check "The runtime MUST apply entries in the
    listed order" failed (it fails under runc too; crun passes). The defaults follow."""
    if not _v1_mounted(DEVICES_V1):
        pytest.skip("no v1 devices hierarchy")
    rt = get_runtime(runtime_roots, name)
    cid, bundle = bundles.make(rt.name, ["sleep", "60"], spec_edit=_rules(ORDERED_RULES))
    try:
        rt.create(cid, bundle, stdout=subprocess.DEVNULL)
        listed = Path(DEVICES_V1, bundles.cgroup_parent, cid, "devices.list").read_text().splitlines()
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
    assert listed[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"], listed
    assert {"c 1:3 rwm", "c 136:* rwm", "c *:* m", "b *:* m"} <= set(listed[3:]), listed


# ------------------------------------------------------------------ cgroup v2: the eBPF filter

def _hiding(rt: OCIRuntime, paths: list[str]) -> OCIRuntime:
    """``rt`` run in a private mount namespace where ``paths`` are unmounted."""
    script = "".join(f"umount -l {p} && " for p in paths) + 'exec "$@"'
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *rt.command]
    hidden = OCIRuntime(rt.name, root=rt.root, command=command)
    hidden._env = rt._env
    return hidden


def _v1_mounted(point: str) -> bool:
    return point in v1_hierarchies()


@pytest.fixture
def v2_only(runtime_roots, cgroup_parent, request) -> OCIRuntime:
    """The runtime with no v1 devices hierarchy: the cgroup2 directory is all it has."""
    rt = get_runtime(runtime_roots, request.param)
    if is_unified():
        return rt
    if not _v1_mounted(UNIFIED):
        pytest.skip("this hybrid host has no cgroup2 mount")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    if rt.name == "crun":
        pytest.skip("crun on a hybrid host keeps to cgroup v1 (without the devices hierarchy it fails: "
                    "\"opening file `devices.deny`\"); "
                    "its eBPF filter applies on pure cgroup v2 hosts only")
    return _hiding(rt, [DEVICES_V1] if _v1_mounted(DEVICES_V1) else [])


@pytest.mark.parametrize("v2_only", ["pyrunc", "crun"], indirect=True)
def test_cgroup2_bpf_filter_blocks_devices(v2_only, bundles) -> None:
    _assert_isolated(_run(v2_only, bundles, _probe(_openable_disk()), RUNC_SPEC_RULES))


@pytest.mark.parametrize("v2_only", ["pyrunc"], indirect=True)
def test_cgroup2_without_rules_leaves_devices_open(v2_only, bundles) -> None:
    """The control: with no device rules the same disk opens, so the filter is what refused it."""
    major, minor = _openable_disk()
    result = _run(v2_only, bundles, f"mknod /tmp/NAME-disk b {major} {minor} && head -c 1 /tmp/NAME-disk >/dev/null; "
                                     "echo disk=$?; rm -f /tmp/NAME-disk", None)
    assert result.stdout.decode().split() == ["disk=0"], result.stderr.decode()


@pytest.mark.parametrize("v2_only", ["pyrunc"], indirect=True)
def test_cgroup2_filter_follows_the_spec_rules(v2_only, bundles) -> None:
    """An allow rule of the spec opens its device for what it allows, and no other device."""
    major, minor = _openable_disk()
    rules = RUNC_SPEC_RULES + [{"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}]
    result = _run(v2_only, bundles, f"mknod /tmp/NAME-disk b {major} {minor} && head -c 1 /tmp/NAME-disk >/dev/null; "
                                     "echo read=$?; (: >> /tmp/NAME-disk) 2>/dev/null; echo write=$?; "
                                     "mknod /tmp/NAME-sda b 8 0 && head -c 1 /tmp/NAME-sda >/dev/null; echo sda=$?; "
                                     "rm -f /tmp/NAME-disk /tmp/NAME-sda", rules)
    out, err = result.stdout.decode().split(), result.stderr.decode()
    assert out == ["read=0", "write=1", "sda=1"], (out, err)
    assert err.count("Operation not permitted") == 1, err


# ------------------------------------------------------------------ fail closed

@pytest.fixture
def no_mechanism(runtime_roots, cgroup_parent) -> OCIRuntime:
    if is_unified():
        pytest.skip("a pure cgroup v2 host always has the cgroup2 mechanism")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    return _hiding(get_runtime(runtime_roots, "pyrunc"), [p for p in (DEVICES_V1, UNIFIED) if _v1_mounted(p)])


def test_no_device_mechanism_refuses_the_container(no_mechanism, bundles) -> None:
    with pytest.raises(OCIRuntimeError, match="device isolation"):
        _run(no_mechanism, bundles, "echo RAN", RUNC_SPEC_RULES)


def test_no_device_mechanism_no_rules_runs(no_mechanism, bundles) -> None:
    result = _run(no_mechanism, bundles, "echo RAN", None)
    assert result.stdout.decode() == "RAN\n", result.stderr.decode()


def test_bpf_filter_attached_not_leaked_and_gone_with_the_cgroup(runtime_roots, cgroup_parent, bundles,
                                                                 tmp_path) -> None:
    """While the container lives, one device filter is attached to its cgroup2 directory
    and its fd reached no process of the container; at delete the cgroup (and with it the
    filter) goes."""
    from dockyard.runtime.pyrunc import devices

    if not is_unified() and not _v1_mounted(UNIFIED):
        pytest.skip("no cgroup2 mount")
    rt = get_runtime(runtime_roots, "pyrunc")
    rt = rt if is_unified() else _hiding(rt, [DEVICES_V1] if _v1_mounted(DEVICES_V1) else [])
    script = "ls -l /proc/1/fd /proc/self/fd | grep -c anon_inode:bpf; exec sleep 60"
    cid, bundle = bundles.make(rt.name, ["sh", "-c", script], spec_edit=_rules(RUNC_SPEC_RULES))
    cgroup_dir = Path("/sys/fs/cgroup" if is_unified() else UNIFIED) / bundles.cgroup_parent / cid
    output = tmp_path / "out"
    try:
        with output.open("wb") as out:
            rt.create(cid, bundle, stdout=out)
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            assert len(devices.attached(fd)) == 1
        finally:
            os.close(fd)
        rt.start(cid)
        deadline = time.monotonic() + 10
        while not output.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert output.read_text().split() == ["0"]
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
    assert not cgroup_dir.exists()
