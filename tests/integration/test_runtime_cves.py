"""Known container breakouts, each tried against every runtime (and against dockyard's own
file copying), plus rootfsPropagation as crun has it.

- CVE-2021-30465: a mount whose target goes through a volume that another container
  swaps between a directory and a symlink to a host path must land inside the rootfs
  (or fail), never on the host's path.
- CVE-2018-15664: ``dockyard cp`` from and to a running container that swaps a path
  component for a symlink to / must never read or write the host's files.
- Volume copy-up: an image's volume path that is a symlink out of the image, or a
  volume another container fills with symlinks meanwhile, must not copy host data in
  or write out.
- CVE-2024-21626: a process.cwd of /proc/self/fd/N (a directory descriptor the runtime
  leaked) must fail or stay inside; no host descriptor may reach the container.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.runtime.oci import OCIRuntime
from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy, rt  # noqa: F401 - fixtures
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, run_in, runtime, runtime_roots)


# ------------------------------------------------------------------ helpers

def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mountinfo(text: str | None = None) -> list[tuple[str, set[str]]]:
    """(mount point, optional fields) of each line of a mountinfo (ours by default)."""
    text = Path("/proc/self/mountinfo").read_text() if text is None else text
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields:
            continue
        out.append((_unescape(fields[4]), set(fields[6:fields.index("-")])))
    return out


def mounts_below(path: Path) -> list[str]:
    prefix = str(path)
    return [p for p, _ in mountinfo() if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ours made shared (as / is on a systemd host): a mount made on it in a
    container's namespace that is a peer of it shows in the host's mount table."""
    path = tmp_path / "shared"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "dockyard-test", str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)
    try:
        yield path
    finally:
        for point in sorted(mounts_below(path), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)


def private_rootfs(busybox_rootfs: Path, where: Path) -> Path:
    """A copy of the session's busybox rootfs that a test may change."""
    root = where / "rootfs"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    return root


def delete(runtime: OCIRuntime, cid: str) -> None:
    subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True, env=runtime._env, timeout=30)


def known_gap(request: pytest.FixtureRequest, runtime: OCIRuntime, gaps: dict[str, str]) -> None:
    """Mark the test an expected failure on a runtime whose installed version lacks the fix."""
    if runtime.name in gaps:
        request.applymarker(pytest.mark.xfail(reason=f"{runtime.name} here: {gaps[runtime.name]}", strict=False))


# ------------------------------------------------------------------ rootfsPropagation

# The root mount's optional field after the container started, as crun sets it.
PROPAGATION_TAG = {"shared": "shared", "rshared": "shared", "unbindable": "unbindable",
                   "runbindable": "unbindable", "private": None, "rprivate": None, "slave": None, "rslave": None}
PROPAGATION_GAPS = {
    "shared": {"runc": "runc 1.1 sets the flag before pivot_root, not on the new /"},
    "rshared": {"runc": "runc 1.1 sets the flag before pivot_root, not on the new /"},
    "unbindable": {"runc": "runc 1.1 fails to bind the rootfs from an unbindable /"},
    "runbindable": {"runc": "runc 1.1 fails to bind the rootfs from an unbindable /",
                    "crun": "crun 1.8 fails to bind /dev/null over masked paths from an unbindable /"},
}


def _tag(fields: set[str]) -> str | None:
    for field in fields:
        if field.startswith("shared:"):
            return "shared"
        if field == "unbindable":
            return "unbindable"
    return None


@pytest.mark.parametrize("propagation", list(PROPAGATION_TAG))
def test_rootfs_propagation(runtime, bundles, request, propagation: str) -> None:
    """``shared`` failed at pivot_root (a shared parent) and ``unbindable`` at the bind of the
    rootfs onto itself; every kind now runs, its flag on the container's / as crun puts it."""
    known_gap(request, runtime, PROPAGATION_GAPS.get(propagation, {}))

    def edit(spec):  # noqa: ANN001, ANN202
        spec["linux"]["rootfsPropagation"] = propagation

    result = run_in(runtime, bundles, ["cat", "/proc/self/mountinfo"], spec_edit=edit)
    assert result.returncode == 0, result.stderr.decode()
    tags = {point: _tag(fields) for point, fields in mountinfo(result.stdout.decode())}
    assert tags["/"] == PROPAGATION_TAG[propagation], result.stdout.decode()
    recursive = propagation.startswith("r")
    assert tags["/proc"] == (PROPAGATION_TAG[propagation] if recursive else None), result.stdout.decode()


@pytest.mark.parametrize("propagation", ["rprivate", "shared", "rshared", "slave", "rslave", "unbindable"])
def test_rootfs_on_a_shared_mount(runtime, busybox_rootfs, cgroup_parent, shared_dir: Path, tmp_path: Path,
                                  request, propagation: str) -> None:
    """A rootfs on a shared mount (a systemd host's /): the container is created, and none
    of its mounts shows up in the host's mount table."""
    gaps = {}  # only the failures to start count here, not where the flag ends up
    if propagation == "unbindable":
        gaps = {**PROPAGATION_GAPS[propagation],
                "crun": "crun 1.8 makes the host's / unbindable before the binds: a bind from there fails"}
    known_gap(request, runtime, gaps)
    root = private_rootfs(busybox_rootfs, shared_dir)
    own = Bundles(tmp_path / "bundles", root, cgroup_parent)
    (tmp_path / "bundles").mkdir()
    volume = tmp_path / "vol"
    volume.mkdir()

    def edit(spec):  # noqa: ANN001, ANN202
        spec["linux"]["rootfsPropagation"] = propagation
        spec["mounts"].append({"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]})

    before = mounts_below(shared_dir)
    cid, bundle = own.make(runtime.name, ["sleep", "30"], spec_edit=edit)
    try:
        runtime.create(cid, bundle, stdout=subprocess.DEVNULL)
        assert runtime.state(cid).status == "created"
        assert mounts_below(shared_dir) == before
        assert not (root / "proc" / "self").exists()  # the container's /proc is not on the host
    finally:
        delete(runtime, cid)
    assert mounts_below(shared_dir) == before


# ------------------------------------------------------------------ CVE-2021-30465

SWAPPERS = 4


def _swap_loop(directory: str, target: str, count: int) -> str:
    """A shell script swapping ``directory``/d<i> between a directory and a symlink to
    ``target``, one background loop per i, by renames (busybox runs mv without a fork)."""
    loops = []
    for i in range(count):
        d, r, lnk = f"{directory}/d{i}", f"{directory}/r{i}", f"{directory}/l{i}"
        loops.append(f"mkdir -p {d}; ln -sfn {target} {lnk}; "
                     f"while :; do mv -Tf {d} {r}; mv -Tf {lnk} {d}; mv -Tf {d} {lnk}; mv -Tf {r} {d}; done "
                     ">/dev/null 2>&1 &")
    return " ".join(loops) + " wait"


def test_mount_target_swapped_for_a_symlink(runtime, bundles, busybox_rootfs, cgroup_parent, shared_dir: Path,
                                            tmp_path: Path) -> None:
    """CVE-2021-30465's shape. Two containers share a volume; one swaps directories in it for
    symlinks to a host path in a loop, while the other is created again and again with bind
    mounts whose targets go through those directories. With rshared root propagation a
    mount that followed the symlink (resolved on the host's tree before pivot_root) would
    show on the host's shared mount; it must never: each mount lands inside the rootfs,
    or the creation fails."""
    volume = tmp_path / "volume"
    volume.mkdir()
    source = tmp_path / "mount-source"
    source.mkdir()
    (source / "MOUNTED").write_text("victim's mount\n")
    host_target = shared_dir / "target"
    host_target.mkdir()
    attacker_id, attacker_bundle = bundles.make(runtime.name, ["sh", "-c", _swap_loop("/vol", str(host_target),
                                                                                      SWAPPERS)],
                                                mounts=[{"destination": "/vol", "type": "bind",
                                                         "source": str(volume), "options": ["rbind"]}])
    victims = Bundles(tmp_path / "victims", private_rootfs(busybox_rootfs, tmp_path), cgroup_parent)
    (tmp_path / "victims").mkdir()

    def victim_spec(spec):  # noqa: ANN001, ANN202
        spec["linux"]["rootfsPropagation"] = "rshared"
        spec["mounts"].append({"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]})
        for i in range(SWAPPERS):
            spec["mounts"].append({"destination": f"/vol/d{i}", "type": "bind", "source": str(source),
                                   "options": ["rbind"]})

    before = mounts_below(shared_dir)
    runtime.create(attacker_id, attacker_bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    created = failed = 0
    try:
        runtime.start(attacker_id)
        deadline = time.monotonic() + 10
        while not all((volume / f"l{i}").is_symlink() or (volume / f"d{i}").is_symlink() for i in range(SWAPPERS)):
            assert time.monotonic() < deadline, "the swapping loops did not start"
            time.sleep(0.02)
        for _ in range(25):
            cid, bundle = victims.make(runtime.name, ["true"], spec_edit=victim_spec)
            try:
                runtime.create(cid, bundle, stdout=subprocess.DEVNULL)
                created += 1
            except Exception:  # noqa: BLE001 - a runtime that noticed the race refuses: fine
                failed += 1
            finally:
                delete(runtime, cid)
            assert mounts_below(shared_dir) == before, "a victim's mount landed on the host's path"
            assert not (host_target / "MOUNTED").exists(), "the host's path got the victim's mount"
    finally:
        delete(runtime, attacker_id)
    assert created, f"no victim could be created ({failed} failed)"


# ------------------------------------------------------------------ CVE-2024-21626

def _leaked_dir(tmp_path: Path) -> tuple[int, Path]:
    """An inheritable descriptor of a host directory holding a secret: what a runtime that
    leaks one (runc's cgroup fd before 1.1.12) gives its container."""
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "secret").write_text("HOST-SECRET\n")
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    return fd, host


LEAK_GAPS = {"crun": "crun 1.8 neither closes a descriptor its caller leaked before the chdir nor checks "
                     "getcwd() after it (dockyard's shim leaks it none)"}


def test_cwd_through_the_runtimes_own_fds(runtime, bundles, tmp_path: Path) -> None:
    """process.cwd = /proc/self/fd/N for the first descriptors a runtime may hold while it
    sets the container up (CVE-2024-21626: runc's cgroup directory): the container must
    fail to start or run inside its root."""
    for n in range(3, 13):
        cid, bundle = bundles.make(runtime.name, ["sh", "-c", "pwd; ls .. | head -3"], workdir=f"/proc/self/fd/{n}")
        try:
            result = runtime._run(["run", "--bundle", str(bundle), cid], check=False, timeout=60)
        finally:
            delete(runtime, cid)
        if result.returncode == 0:
            lines = result.stdout.decode().split()
            assert lines and lines[0].startswith("/"), result.stdout.decode()  # not "(unreachable)/..."


def test_cwd_through_a_leaked_fd(runtime, bundles, tmp_path: Path, request) -> None:
    """process.cwd = /proc/self/fd/N for a directory descriptor the runtime got from its
    caller, and for the first descriptors it may hold itself: the container must fail to
    start or run inside its root, never in the host's directory."""
    known_gap(request, runtime, LEAK_GAPS)
    fd, host = _leaked_dir(tmp_path)
    try:
        for n in sorted({fd, *range(3, 10)}):
            cid, bundle = bundles.make(runtime.name, ["sh", "-c", "cat secret; pwd; ls .. | head -3"],
                                       workdir=f"/proc/self/fd/{n}")
            try:
                result = runtime._run(["run", "--bundle", str(bundle), cid], pass_fds=(fd,), check=False, timeout=60)
            finally:
                delete(runtime, cid)
            output = result.stdout.decode() + result.stderr.decode()
            assert "HOST-SECRET" not in output, f"cwd /proc/self/fd/{n}: {output}"
            assert "host-dir" not in output and str(tmp_path) not in output, f"cwd /proc/self/fd/{n}: {output}"
    finally:
        os.close(fd)


def test_exec_cwd_through_a_leaked_fd(runtime, bundles, tmp_path: Path, request) -> None:
    """The same through exec: --cwd /proc/self/fd/N with N a host directory it inherited."""
    known_gap(request, runtime, LEAK_GAPS)
    fd, host = _leaked_dir(tmp_path)
    cid, bundle = bundles.make(runtime.name, ["sleep", "60"])
    try:
        runtime.create(cid, bundle, stdout=subprocess.DEVNULL)
        runtime.start(cid)
        result = runtime._run(["exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c", "cat secret; pwd"],
                              pass_fds=(fd,), check=False, timeout=60)
        output = result.stdout.decode() + result.stderr.decode()
        assert "HOST-SECRET" not in output and str(tmp_path) not in output, output
    finally:
        delete(runtime, cid)
        os.close(fd)


def test_no_host_descriptor_reaches_the_container(runtime, bundles, tmp_path: Path) -> None:
    """The container's first process holds 0, 1 and 2 (and what ls opens), nothing the
    runtime held or inherited: a leaked directory descriptor is closed by exec."""
    fd, host = _leaked_dir(tmp_path)
    cid, bundle = bundles.make(runtime.name, ["ls", "-l", "/proc/self/fd/"])
    try:
        result = runtime._run(["run", "--bundle", str(bundle), cid], pass_fds=(fd,), check=False, timeout=60)
    finally:
        delete(runtime, cid)
        os.close(fd)
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    fds = {int(m[1]): m[2] for m in re.finditer(r" (\d+) -> (.*)$", output, re.M)}
    assert set(fds) - {0, 1, 2} <= {3} and fds.get(3, "/proc/").startswith("/proc/"), output
    assert not any(str(tmp_path) in target for target in fds.values()), output


# ------------------------------------------------------------------ CVE-2018-15664 (dockyard cp)

def _racer(rt: Dockyard, host: Path) -> None:
    """A container swapping /w/d between a directory holding <host>/secret of its own and a
    symlink to /, so that /w/d<host>/secret names the host's file half the time."""
    script = (f"mkdir -p /w/r{host} && echo container > /w/r{host}/secret && ln -s / /w/l && mv -T /w/r /w/d && "
              "while :; do mv -Tf /w/d /w/r; mv -Tf /w/l /w/d; mv -Tf /w/d /w/l; mv -Tf /w/r /w/d; done")
    rt.cli("run", "-d", "--name", "racer", "busybox", "sh", "-c", script, check=True)
    deadline = time.monotonic() + 10
    while rt.cli("exec", "racer", "test", "-L", "/w/l", "-o", "-L", "/w/d").returncode != 0:
        assert time.monotonic() < deadline, "the racer did not start swapping"
        time.sleep(0.05)


def test_cp_while_a_component_is_swapped_for_a_symlink(rt: Dockyard, tmp_path: Path) -> None:
    """CVE-2018-15664's shape: ``cp`` from and to a running container through a path whose
    component the container keeps swapping for a symlink to /. What comes out is the
    container's file (or an error), what goes in lands in the container (or fails): the
    host's marker is never read, and nothing is written next to it."""
    host = tmp_path / "hostside"
    host.mkdir()
    (host / "secret").write_text("HOST-SECRET\n")
    payload = tmp_path / "payload"
    payload.write_text("from cp\n")
    _racer(rt, host)
    got = set()
    for i in range(30):
        out = tmp_path / f"out{i}"
        rt.cli("cp", f"racer:/w/d{host}/secret", out)
        if out.exists():
            got.add(out.read_text())
        tree = tmp_path / f"tree{i}"
        rt.cli("cp", f"racer:/w/d{host}", tree)
        if tree.exists():
            for f in tree.rglob("*"):
                if f.is_file():
                    got.add(f.read_text())
        rt.cli("cp", payload, f"racer:/w/d{host}/planted{i}")
        assert sorted(p.name for p in host.iterdir()) == ["secret"], "cp wrote into the host's directory"
        assert (host / "secret").read_text() == "HOST-SECRET\n"
    assert "HOST-SECRET\n" not in got, "cp read the host's file"
    assert got <= {"container\n", "from cp\n"}, got


# ------------------------------------------------------------------ volume copy-up

def _image(dy: Dockyard, busybox_tar: Path, name: str, extra: list[tarfile.TarInfo], changes: list[str]) -> None:
    """busybox plus ``extra`` entries (directories, symlinks and empty files), imported."""
    buf = io.BytesIO()
    with tarfile.open(busybox_tar) as src, tarfile.open(fileobj=buf, mode="w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        for member in extra:
            data = b"image data\n" if member.isfile() else None
            if data is not None:
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    engine = dy.engine()
    try:
        engine.images.import_(buf, name, changes + ['CMD ["sh"]'])
    finally:
        engine.close()


def _entry(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o755
    return info


def test_volume_path_symlinked_out_of_the_image(dy: Dockyard, busybox_tar: Path, tmp_path: Path) -> None:
    """An image whose VOLUME paths are symlinks to a host path (absolute, or climbing with
    ../..): the copy-up reads the image's own tree, never the host's, and writes nothing
    outside the volume."""
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "hostfile").write_text("HOST\n")
    climbing = "../" * 12 + str(host).lstrip("/")
    _image(dy, busybox_tar, "linkvol", [_entry("data", tarfile.SYMTYPE, str(host)),
                                        _entry("data2", tarfile.SYMTYPE, climbing)], ["VOLUME /data /data2"])
    result = dy.cli("run", "--name", "linked", "linkvol", "sh", "-c",
                    "ls -A /data /data2; echo written > /data/new; echo written > /data2/new2")
    assert result.returncode == 0, result.stderr
    assert "hostfile" not in result.stdout
    assert sorted(p.name for p in host.iterdir()) == ["hostfile"]
    engine = dy.engine()
    try:
        for v in engine.volumes.list():
            assert "hostfile" not in {p.name for p in Path(v.mountpoint).rglob("*")}
    finally:
        engine.close()


def test_volume_copy_up_while_another_container_plants_symlinks(dy: Dockyard, busybox_tar: Path,
                                                                tmp_path: Path) -> None:
    """Docker's copy-up fills a new volume from the image when it is empty; here a container
    already has the volumes mounted (nocopy) and keeps planting a symlink to a host
    directory where the copy goes. The copy must replace the symlink, never write through it."""
    host = tmp_path / "host-target"
    host.mkdir()
    # Many files beside data/sub: the copy takes a while before it gets to sub, time for the
    # planter to put its symlink there after the copy-up found the volume empty.
    files = [_entry(f"data/f{i:03}", tarfile.REGTYPE) for i in range(300)]
    _image(dy, busybox_tar, "datavol", [_entry("data", tarfile.DIRTYPE), *files, _entry("data/sub", tarfile.DIRTYPE),
                                        _entry("data/sub/pwned", tarfile.REGTYPE)], ["VOLUME /data"])
    count = 12
    mounts, loops = [], []
    for i in range(count):
        mounts += ["-v", f"race{i}:/v{i}:nocopy"]
        loops.append(f"while :; do ln -s {host} /v{i}/sub; rm -f /v{i}/sub; done >/dev/null 2>&1 &")
    dy.cli("run", "-d", "--name", "planter", *mounts, "busybox", "sh", "-c", " ".join(loops) + " wait", check=True)
    time.sleep(0.3)
    for i in range(count):
        dy.cli("run", "--rm", "-v", f"race{i}:/data", "datavol", "true")
        assert list(host.iterdir()) == [], "the copy-up wrote through a planted symlink"
