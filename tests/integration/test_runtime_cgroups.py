"""``linux.resources`` under pyrunc and crun, read back from the cgroup files while the
container exists (as runtime-tools' linux_cgroups_* programs do), and where the cgroups live.

- memory: every v1 setting the spec has (limit, reservation, swap, kernelTCP, swappiness,
  disableOOMKiller) lands in its file; kernelTCP used to be dropped.
- hugepageLimits: one limit per page size of this host; a page size the host does not have
  ("3MB") refuses the container (it used to be dropped, with the whole setting).
- blockIO, network: what the host can apply is applied; what it cannot (no blkio.weight
  without CFQ/BFQ, net_cls/net_prio not mounted) refuses the container with an error naming
  the setting, as crun refuses it (they used to be dropped silently).
- hierarchies: only cgroup mounts of the mount table are written to; a hierarchy's
  directory that is not (or no longer) the mount is a plain directory of /sys/fs/cgroup's
  tmpfs, shared with the host, and gets nothing.
- cgroup v2 (the files this hybrid host lacks): the same rules against a directory of
  fake cgroup files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard.runtime.cgroupfs import CgroupPaths, cgroup_mounts, is_unified, v1_hierarchies
from dockyard.runtime.oci import OCIRuntime, OCIRuntimeError
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, runtime_roots)

CGROUP_ROOT = "/sys/fs/cgroup"
BOTH = ["pyrunc", "crun"]


def _resources(**resources: Any):
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"].setdefault("resources", {}).update(resources)
    return edit


@contextmanager
def _created(rt: OCIRuntime, bundles: Bundles, **resources: Any) -> Iterator[CgroupPaths]:
    """A created (not started) container with ``resources``; its cgroup's directories."""
    cid, bundle = bundles.make(rt.name, ["sleep", "60"], spec_edit=_resources(**resources))
    try:
        rt.create(cid, bundle, stdout=subprocess.DEVNULL)
        yield CgroupPaths(f"/{bundles.cgroup_parent}/{cid}")
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)


def _refused(rt: OCIRuntime, bundles: Bundles, **resources: Any) -> str:
    """The error of a create that must fail; the container's cgroup must not remain."""
    cid, bundle = bundles.make(rt.name, ["sleep", "60"], spec_edit=_resources(**resources))
    try:
        with pytest.raises(OCIRuntimeError) as info:
            rt.create(cid, bundle, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
    if rt.name == "pyrunc":
        left = [d for d in CgroupPaths(f"/{bundles.cgroup_parent}/{cid}").dirs.values() if os.path.isdir(d)]
        assert not left, left
    return str(info.value)


def _read(directory: str, name: str) -> str:
    return Path(directory, name).read_text().strip()


@pytest.fixture
def v1_host() -> None:
    if is_unified():
        pytest.skip("a cgroup v1 (hybrid) host's files")


# ------------------------------------------------------------------ memory

MEMORY = {"limit": 50593792, "reservation": 50593792, "swap": 50593792, "kernel": 50593792,
          "kernelTCP": 50593792, "swappiness": 10, "disableOOMKiller": True}


@pytest.mark.parametrize("name", BOTH)
def test_memory_v1_settings_applied(name, runtime_roots, cgroup_parent, bundles, v1_host) -> None:
    """runtime-tools' linux_cgroups_memory. Before: pyrunc never wrote kernelTCP
    (memory.kmem.tcp.limit_in_bytes kept the kernel's maximum). ``kernel`` is written too,
    but kernels since 6.1 accept and ignore memory.kmem.limit_in_bytes (crun fails that
    check as well), so it is not read back."""
    rt = get_runtime(runtime_roots, name)
    with _created(rt, bundles, memory=MEMORY) as cg:
        mem = cg.dir("memory")
        assert _read(mem, "memory.limit_in_bytes") == "50593792"
        assert _read(mem, "memory.soft_limit_in_bytes") == "50593792"
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            assert _read(mem, "memory.memsw.limit_in_bytes") == "50593792"
        assert _read(mem, "memory.kmem.tcp.limit_in_bytes") == "50593792"
        assert _read(mem, "memory.swappiness") == "10"
        assert "oom_kill_disable 1" in _read(mem, "memory.oom_control").splitlines()


def test_memory_invalid_swappiness_refused(runtime_roots, cgroup_parent, bundles, v1_host) -> None:
    message = _refused(get_runtime(runtime_roots, "pyrunc"), bundles, memory={"swappiness": 101})
    assert "linux.resources.memory.swappiness" in message and "0 to 100" in message, message


# ------------------------------------------------------------------ hugetlb

def _page_sizes() -> list[str]:
    """This host's huge page sizes as the spec names them (2MB, 1GB), as runtime-tools does."""
    sizes = []
    for entry in sorted(os.listdir("/sys/kernel/mm/hugepages")):
        kib = int(entry.removeprefix("hugepages-").removesuffix("kB"))
        for unit, name in ((1 << 20, "GB"), (1 << 10, "MB"), (1, "KB")):
            if kib % unit == 0:
                sizes.append(f"{kib // unit}{name}")
                break
    return sizes


@pytest.fixture
def hugetlb() -> list[str]:
    if not os.path.isdir("/sys/kernel/mm/hugepages") or not _page_sizes():
        pytest.skip("no huge pages on this host")
    if not is_unified() and not any("hugetlb" in o.split(",") for o in v1_hierarchies().values()):
        pytest.skip("no v1 hugetlb hierarchy (cgroup_parent mounts one only where crun is installed)")
    return _page_sizes()


@pytest.mark.parametrize("name", BOTH)
def test_hugetlb_limits_applied(name, runtime_roots, cgroup_parent, bundles, hugetlb) -> None:
    """runtime-tools' linux_cgroups_hugetlb. Before: pyrunc wrote no hugetlb file at all."""
    rt = get_runtime(runtime_roots, name)
    limit = 2 << 30
    with _created(rt, bundles, hugepageLimits=[{"pageSize": s, "limit": limit} for s in hugetlb]) as cg:
        directory = cg.dirs[""] if cg.unified else cg.dir("hugetlb")
        suffix = "max" if cg.unified else "limit_in_bytes"
        for size in hugetlb:
            assert _read(directory, f"hugetlb.{size}.{suffix}") == str(limit), size


@pytest.mark.parametrize("name", BOTH)
def test_hugetlb_invalid_page_size_refused(name, runtime_roots, cgroup_parent, bundles, hugetlb) -> None:
    """Before: pyrunc created the container (runtime-tools: "hugepage invalid pagesize
    results in an error")."""
    rt = get_runtime(runtime_roots, name)
    message = _refused(rt, bundles, hugepageLimits=[{"pageSize": "3MB", "limit": 300 << 20}])
    if name == "pyrunc":
        assert "invalid huge page size '3MB'" in message and hugetlb[0] in message, message


# ------------------------------------------------------------------ blkio

def _whole_disk() -> tuple[int, int]:
    """major:minor of a whole disk (throttles refuse partitions): the first in /sys/block."""
    for entry in sorted(Path("/sys/block").iterdir()):
        if entry.name.startswith(("vd", "sd", "nvme", "xvd", "loop")):
            major, minor = (entry / "dev").read_text().split(":")
            return int(major), int(minor)
    pytest.skip("no disk in /sys/block")


@pytest.mark.parametrize("name", BOTH)
def test_blkio_throttle_applied(name, runtime_roots, cgroup_parent, bundles, v1_host) -> None:
    rt = get_runtime(runtime_roots, name)
    major, minor = _whole_disk()
    throttle = [{"major": major, "minor": minor, "rate": 1048576}]
    with _created(rt, bundles, blockIO={"throttleReadBpsDevice": throttle, "throttleWriteIOPSDevice": throttle}) as cg:
        blkio = cg.dir("blkio")
        assert _read(blkio, "blkio.throttle.read_bps_device") == f"{major}:{minor} 1048576"
        assert _read(blkio, "blkio.throttle.write_iops_device") == f"{major}:{minor} 1048576"


def _blkio_files(parent: str) -> set[str]:
    """The files a new blkio cgroup has here (the root cgroup lacks the weight files)."""
    blkio = CgroupPaths(f"/{parent}").dir("blkio")
    if blkio is None:
        pytest.skip("no v1 blkio hierarchy")
    probe = Path(blkio, f"probe-{os.getpid()}")
    probe.mkdir(parents=True)
    try:
        return {p.name for p in probe.iterdir()}
    finally:
        probe.rmdir()


@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("setting,names", [
    ("weight", ("blkio.weight", "blkio.bfq.weight")),
    ("leafWeight", ("blkio.leaf_weight",)),
])
def test_blkio_weight_applied_or_refused(name, setting, names, runtime_roots, cgroup_parent, bundles,
                                         v1_host) -> None:
    """runtime-tools' linux_cgroups_blkio. A weight goes to blkio.weight (CFQ) or, where only
    BFQ's file exists, blkio.bfq.weight (runc, newer crun); with neither (leaf weights
    here), the container is refused, naming the setting. Before: pyrunc ran the container
    and wrote neither. crun 1.8 knows blkio.weight only, and refuses both here."""
    rt = get_runtime(runtime_roots, name)
    present = [n for n in names if n in _blkio_files(cgroup_parent)]
    resources = {"blockIO": {setting: 500}}
    if not present or name == "crun":
        try:
            message = _refused(rt, bundles, **resources)
        except pytest.fail.Exception:
            if name != "crun" or not present:
                raise
            message = ""  # a crun that knows blkio.bfq.weight applied it: checked below
        else:
            if name == "pyrunc":
                assert f"linux.resources.blockIO.{setting}" in message and names[0] in message, message
            return
    with _created(rt, bundles, **resources) as cg:
        assert _read(cg.dir("blkio"), present[0]).split()[-1] == "500"


# ------------------------------------------------------------------ network classes

@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("setting", ["classID", "priorities"])
def test_network_classes_applied_or_refused(name, setting, runtime_roots, cgroup_parent, bundles) -> None:
    """runtime-tools' linux_cgroups_network: net_cls.classid and net_prio.ifpriomap. This
    host does not mount net_cls/net_prio (and cgroup v2 has neither): crun refuses the
    container, and so must pyrunc (before: it ran it with neither)."""
    rt = get_runtime(runtime_roots, name)
    network = {"classID": 255} if setting == "classID" else {"priorities": [{"name": "lo", "priority": 10}]}
    controller = "net_cls" if setting == "classID" else "net_prio"
    mounted = not is_unified() and CgroupPaths("/").dir(controller) is not None
    if not mounted:
        message = _refused(rt, bundles, network=network)
        if name == "pyrunc":
            assert f"linux.resources.network.{setting}" in message and controller in message, message
        return
    with _created(rt, bundles, network=network) as cg:
        if setting == "classID":
            assert _read(cg.dir("net_cls"), "net_cls.classid") == "255"
        else:
            assert "lo 10" in _read(cg.dir("net_prio"), "net_prio.ifpriomap").splitlines()


# ------------------------------------------------------------------ only mounted hierarchies

def _hidden_hierarchy() -> str:
    """A v1 hierarchy of this host that a container's spec here does not need."""
    mounted = v1_hierarchies()
    for name in ("hugetlb", "freezer", "blkio", "pids", "cpuacct"):
        point = f"{CGROUP_ROOT}/{name}"
        if mounted.get(point, "unified") != "unified":
            return point
    pytest.skip("no v1 hierarchy to hide")


def _namespaced(rt: OCIRuntime, script: str) -> OCIRuntime:
    """``rt`` run after ``script`` in a private mount namespace of its own."""
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script + ' && exec "$@"', "sh",
               *rt.command]
    wrapped = OCIRuntime(rt.name, root=rt.root, command=command)
    wrapped._env = rt._env
    return wrapped


def _under_the_mount(point: str, relative: str, remove: bool = False) -> list[str]:
    """What the tmpfs holds under ``point``/``relative`` beneath the hierarchy mounted on
    ``point`` (seen through a bind mount of /sys/fs/cgroup alone, in a mount namespace of
    its own); ``remove``: delete it (plain directories and files of the tmpfs, no cgroup)."""
    peek = "/tmp/dockyard-cgroup-peek"
    target = f"{peek}/{os.path.relpath(point, CGROUP_ROOT)}/{relative.strip('/')}"
    script = (f"mkdir -p {peek} && mount --bind {CGROUP_ROOT} {peek} && "
              f"if [ -e {target} ]; then find {target}; {'rm -rf ' + target if remove else ''}; fi")
    try:
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                capture_output=True, text=True, timeout=30)
    finally:
        try:   # the mount point is made on the host's /tmp; the mount died with the namespace
            os.rmdir(peek)
        except OSError:
            pass
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture
def namespaces(cgroup_parent) -> None:
    if is_unified():
        pytest.skip("one cgroup2 mount: no v1 hierarchy to hide")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")


def test_unmounted_hierarchy_gets_nothing(runtime_roots, namespaces, bundles) -> None:
    """In a mount namespace where a hierarchy is unmounted, its directory is the host's
    tmpfs: pyrunc must not make the container's cgroup there (crun does, with a regular
    file cgroup.procs in it: how dockyard/ and t1/ came to be in /sys/fs/cgroup/hugetlb's
    tmpfs directory). The container runs without that hierarchy."""
    point = _hidden_hierarchy()
    rt = _namespaced(get_runtime(runtime_roots, "pyrunc"), f"umount -l {point}")
    cid, bundle = bundles.make(rt.name, ["echo", "RAN"])
    try:
        result = rt.run(cid, bundle, timeout=60)
        assert result.stdout.decode() == "RAN\n", result.stderr.decode()
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
        leaked = _under_the_mount(point, bundles.cgroup_parent, remove=True)
    assert leaked == [], leaked


def test_covered_hierarchy_gets_nothing(runtime_roots, namespaces, bundles, tmp_path) -> None:
    """A hierarchy the mount table still lists but something mounted over it hides is no
    hierarchy either. Before: pyrunc took the listed mount point, made the container's
    directories in what covers it (here a host directory) and failed on cgroup.procs."""
    point = _hidden_hierarchy()
    cover = tmp_path / "cover"
    cover.mkdir()
    rt = _namespaced(get_runtime(runtime_roots, "pyrunc"), f"mount --bind {cover} {point}")
    cid, bundle = bundles.make(rt.name, ["echo", "RAN"])
    try:
        result = rt.run(cid, bundle, timeout=60)
        assert result.stdout.decode() == "RAN\n", result.stderr.decode()
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
    assert list(cover.iterdir()) == []


def test_resource_of_an_unmounted_hierarchy_refused(runtime_roots, namespaces, bundles) -> None:
    """A spec setting for the hidden hierarchy: a clear refusal, nothing written."""
    rt = get_runtime(runtime_roots, "pyrunc")
    mem = f"{CGROUP_ROOT}/memory"
    if v1_hierarchies().get(mem, "unified") == "unified":
        pytest.skip("no v1 memory hierarchy")
    hidden = _namespaced(rt, f"umount -l {mem}")
    cid, bundle = bundles.make(rt.name, ["echo", "RAN"], spec_edit=_resources(memory={"limit": 64 << 20}))
    try:
        with pytest.raises(OCIRuntimeError, match="linux.resources.memory: cannot apply it: this host has no "
                                                  "cgroup v1 memory hierarchy mounted"):
            hidden.run(cid, bundle, timeout=60)
    finally:
        subprocess.run(rt.argv("delete", "--force", cid), capture_output=True, env=rt._env)
        leaked = _under_the_mount(mem, bundles.cgroup_parent, remove=True)
    assert leaked == [], leaked


# ------------------------------------------------------------------ the mount table (no root needed)

def _mountinfo(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_cgroup_mounts_are_the_mount_tables(tmp_path) -> None:
    """A directory is a hierarchy only if the mount table has a cgroup mount there and the
    directory still shows that mount's device."""
    visible, covered, plain = tmp_path / "cpu", tmp_path / "hugetlb", tmp_path / "pids"
    for d in (visible, covered, plain, tmp_path / "with space"):
        d.mkdir()
    (plain / "cgroup.procs").write_text("")  # looks like a cgroup; the table does not list it
    dev = os.stat(visible).st_dev
    major, minor = os.major(dev), os.minor(dev)
    wrong = f"{major}:{minor + 1}"
    table = _mountinfo(tmp_path, [
        f"31 23 0:28 / {tmp_path} rw,relatime - tmpfs tmpfs rw,mode=755",
        f"32 31 {major}:{minor} / {visible} rw,relatime - cgroup cgroup rw,cpu",
        f"33 31 {wrong} / {covered} rw,relatime - cgroup cgroup rw,hugetlb",
        f"34 31 {major}:{minor} / {tmp_path}/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate",
        f"35 31 {major}:{minor} / {tmp_path}/gone rw - cgroup cgroup rw,xattr,name=systemd",
    ])
    found = {(m.point, m.fstype, m.key) for m in cgroup_mounts(table)}
    assert found == {(str(visible), "cgroup", "cpu"), (f"{tmp_path}/with space", "cgroup2", "unified")}


def test_this_hosts_hierarchies_are_mounts() -> None:
    for m in cgroup_mounts():
        assert os.path.ismount(m.point) or m.point == CGROUP_ROOT, m
    if not is_unified():
        for key, directory in CgroupPaths("/x").dirs.items():
            assert os.path.dirname(directory) in {m.point for m in cgroup_mounts()}, (key, directory)


def test_create_refuses_a_hierarchy_that_changed(tmp_path) -> None:
    """Between reading the table and making the directory the mount went away: nothing made."""
    from dockyard.runtime.cgroupfs import Mount
    from dockyard.runtime.pyrunc.cgroups import Cgroup, CgroupError

    point = tmp_path / "memory"
    point.mkdir()
    cgroup = Cgroup.__new__(Cgroup)
    cgroup.path, cgroup.unified = "/parent/c1", False
    cgroup.mounts = {"memory": Mount(str(point), "cgroup", "rw,memory", os.stat(point).st_dev + 1)}
    cgroup.dirs = {"memory": f"{point}/parent/c1"}
    with pytest.raises(CgroupError, match="no longer the cgroup hierarchy"):
        cgroup.create()
    assert list(point.iterdir()) == []
    cgroup.mounts["memory"] = Mount(str(point), "cgroup", "rw,memory", os.stat(point).st_dev)
    cgroup.create()
    assert (point / "parent" / "c1").is_dir()


# ------------------------------------------------------------------ cgroup v2 files (faked)

V2_FILES = ("memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max", "pids.max", "io.weight",
            "io.max", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", "hugetlb.1GB.max", "cgroup.procs")


@pytest.fixture
def v2_dir(tmp_path) -> Path:
    for name in V2_FILES:
        (tmp_path / name).write_text("")
    return tmp_path


def _v2(directory: Path, **resources: Any) -> None:
    from dockyard.runtime.pyrunc.cgroups import _apply_v2

    _apply_v2(str(directory), resources)


def test_v2_limits_written(v2_dir) -> None:
    _v2(v2_dir, memory={"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
        hugepageLimits=[{"pageSize": "2MB", "limit": 2 << 30}], blockIO={"weight": 500},
        pids={"limit": 0})
    assert (v2_dir / "memory.max").read_text() == str(64 << 20)
    assert (v2_dir / "memory.swap.max").read_text() == str(32 << 20)  # v2 counts swap alone
    assert (v2_dir / "memory.low").read_text() == str(32 << 20)
    assert (v2_dir / "hugetlb.2MB.max").read_text() == str(2 << 30)
    assert (v2_dir / "io.weight").read_text() == str(1 + (500 - 10) * 9999 // 990)
    assert (v2_dir / "pids.max").read_text() == "max"


@pytest.mark.parametrize("resources,setting", [
    ({"memory": {"kernelTCP": 1 << 20}}, "linux.resources.memory.kernelTCP"),
    ({"memory": {"kernel": 1 << 20}}, "linux.resources.memory.kernel"),
    ({"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ({"memory": {"limit": 64 << 20, "swap": 32 << 20}}, "linux.resources.memory.swap"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, "invalid huge page size '3MB'"),
    ({"blockIO": {"leafWeight": 300}}, "linux.resources.blockIO.leafWeight"),
    ({"network": {"classID": 255}}, "linux.resources.network"),
    ({"cpu": {"realtimeRuntime": 950000}}, "linux.resources.cpu.realtimeRuntime"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "linux.resources.rdma"),  # no rdma.max: controller off
])
def test_v2_refuses_what_it_cannot_apply(v2_dir, resources, setting) -> None:
    from dockyard.runtime.pyrunc.cgroups import CgroupError

    with pytest.raises(CgroupError, match=setting.replace("[", r"\[")):
        _v2(v2_dir, **resources)


def test_v2_unset_values_are_not_settings(v2_dir) -> None:
    """runc's and Docker's "unset" (-1 swappiness, disableOOMKiller false) ask for nothing."""
    _v2(v2_dir, memory={"swappiness": -1, "disableOOMKiller": False, "kernel": -1})
    assert all((v2_dir / n).read_text() == "" for n in V2_FILES)
