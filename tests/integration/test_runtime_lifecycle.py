"""create → start → state → exec / ps → pause / resume → kill → delete through the runtime
interface (``dockyard.runtime.adapter``), on every implementation the engine can hold:
each runtime's CLI (pyrunc, crun, runc) and pyrunc in-process; plus the rootfs overlay of
an imported image."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.runtime import rootfs
from dockyard.runtime.adapter import OCIRuntimeError, Runtime
from dockyard.runtime.pyrunc.inprocess import PyruncRuntime
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, run_in, runtime_roots)

IMPLEMENTATIONS = ["pyrunc", "crun", "runc", "pyrunc-inprocess"]


@pytest.fixture(params=IMPLEMENTATIONS)
def runtime(request: pytest.FixtureRequest, runtime_roots, cgroup_parent: str) -> Runtime:
    if request.param == "pyrunc-inprocess":
        # Same state dir as pyrunc's CLI: the two are one runtime, reached two ways.
        return PyruncRuntime(get_runtime(runtime_roots, "pyrunc").root)
    return get_runtime(runtime_roots, request.param)


def force_delete(rt: Runtime, cid: str) -> None:
    try:
        rt.delete(cid, force=True)
    except OCIRuntimeError:
        pass


def devnull3() -> tuple[int, int, int]:
    fd = os.open(os.devnull, os.O_RDWR)
    return fd, fd, fd


def exec_capture(rt: Runtime, cid: str, args: list[str], **options) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a process run with ``rt.exec``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "rb") as nothing:
        code = rt.exec(cid, args, stdio=(nothing.fileno(), out.fileno(), err.fileno()), **options)
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def _wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = rt.state(cid).status
        if current == status:
            return current
        time.sleep(0.02)
    return current


def _create(rt: Runtime, cid: str, bundle: Path, **options) -> None:
    stdio = devnull3()
    try:
        rt.create(cid, str(bundle), stdio=stdio, **options)
    finally:
        os.close(stdio[0])


@pytest.fixture
def started(runtime: Runtime, bundles: Bundles):
    """A running ``sleep`` container, force-deleted afterwards."""
    cid, bundle = bundles.make(runtime.name, ["sleep", "300"])
    _create(runtime, cid, bundle)
    try:
        runtime.start(cid)
        yield runtime, cid
    finally:
        force_delete(runtime, cid)


def test_lifecycle(runtime, bundles, tmp_path: Path) -> None:
    cid, bundle = bundles.make(runtime.name, ["sleep", "300"])
    pid_file = tmp_path / "pid"
    _create(runtime, cid, bundle, pid_file=str(pid_file))
    try:
        assert runtime.exists(cid)
        state = runtime.state(cid)
        assert state.status == "created" and state.pid == int(pid_file.read_text()) > 0
        assert state.bundle == str(bundle)
        runtime.start(cid)
        assert runtime.state(cid).status == "running"
        with pytest.raises(OCIRuntimeError):
            runtime.delete(cid)  # running: refused without --force
        runtime.kill(cid, 9)
        assert _wait_status(runtime, cid, "stopped") == "stopped"
        runtime.delete(cid)
        with pytest.raises(OCIRuntimeError):
            runtime.state(cid)
        assert not runtime.exists(cid)
    finally:
        force_delete(runtime, cid)


def test_pause_freezes_until_resume(runtime, bundles, tmp_path: Path) -> None:
    """A paused container runs no code (its counter stands still) and says so; resumed, it
    goes on. The runtime's own verbs do it, whichever runtime it is."""
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done"])
    out = tmp_path / "count"
    with open(out, "wb") as f, open(os.devnull, "rb") as nothing:
        runtime.create(cid, str(bundle), stdio=(nothing.fileno(), f.fileno(), f.fileno()))
    try:
        runtime.start(cid)
        assert _wait_for_growth(out)
        runtime.pause(cid)
        assert runtime.state(cid).status == "paused"
        time.sleep(0.1)  # a write in flight when the freezer struck lands now
        frozen_at = out.stat().st_size
        time.sleep(0.4)
        assert out.stat().st_size == frozen_at
        runtime.resume(cid)
        assert runtime.state(cid).status == "running"
        assert _wait_for_growth(out)
        runtime.pause(cid)
    finally:
        started = time.monotonic()
        force_delete(runtime, cid)  # a paused container too: it is thawed to die
    assert time.monotonic() - started < 3  # not a kill that waits out its timeout on a frozen init
    with pytest.raises(OCIRuntimeError):
        runtime.state(cid)


def _wait_for_growth(path: Path, timeout: float = 5.0) -> bool:
    start = path.stat().st_size
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_size > start:
            return True
        time.sleep(0.02)
    return False


def test_delete_created_container(runtime, bundles) -> None:
    cid, bundle = bundles.make(runtime.name, ["true"])
    _create(runtime, cid, bundle)
    pid = runtime.state(cid).pid
    runtime.delete(cid, force=True)
    with pytest.raises(OCIRuntimeError):
        runtime.state(cid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # gone, or a zombie waiting for a late reaper
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the created container's init {pid} survived delete --force")


def test_duplicate_id_refused(runtime, bundles, started) -> None:
    rt, cid = started
    _, bundle = bundles.make(rt.name, ["true"])
    with pytest.raises(OCIRuntimeError):
        _create(rt, cid, bundle)
    assert rt.state(cid).status == "running"


def test_start_delete_overlaps_and_waits(runtime, bundles) -> None:
    cid, bundle = bundles.make(runtime.name, ["sleep", "300"])
    _create(runtime, cid, bundle)
    runtime.start(cid)
    wait = runtime.start_delete(cid)
    wait()
    assert not runtime.exists(cid)


def _namespaces(pid: int | str) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}


def test_exec_joins_every_namespace(started, runtime_roots) -> None:
    rt, cid = started
    script = ("for ns in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$ns; done; hostname; "
              "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; id; pwd; echo $FOO")
    code, out, err = exec_capture(rt, cid, ["sh", "-c", script], env=["FOO=exec"], cwd="/tmp")
    assert code == 0, err
    lines = out.decode().splitlines()
    container = _namespaces(rt.state(cid).pid)
    assert lines[:6] == [container[ns] for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")]
    # groups: the bundle lists the primary gid in additionalGids (as Docker's process has it);
    # runc and pyrunc give an exec without --user the bundle's, crun none
    assert lines[6] == "parity" and lines[-2:] == ["/tmp", "exec"]
    assert lines[-3] in ("uid=0(root) gid=0(root)", "uid=0(root) gid=0(root) groups=0(root)")
    assert lines[7] == "CapEff:\t00000000a80425fb" and lines[9] == "Seccomp:\t2"


def test_exec_exit_codes_and_errors(started) -> None:
    rt, cid = started
    assert exec_capture(rt, cid, ["sh", "-c", "exit 5"])[0] == 5
    # A process's own error text and exit code are its own, not a runtime failure.
    assert exec_capture(rt, cid, ["sh", "-c", "echo cannot open executable >&2; exit 255"])[0] == 255
    assert exec_capture(rt, cid, ["id", "-u"], user="65534:65534")[1] == b"65534\n"
    with pytest.raises(OCIRuntimeError) as info:
        exec_capture(rt, cid, ["no-such-program"])
    assert info.value.exit_code == 127 and "no-such-program" in info.value.detail


def test_exec_process_is_in_the_cgroup(started) -> None:
    rt, cid = started
    out = exec_capture(rt, cid, ["cat", "/proc/self/cgroup"])[1]
    assert all(line.endswith(":/") for line in out.decode().split()), out


def test_ps_lists_the_container_processes(started) -> None:
    rt, cid = started
    init = rt.state(cid).pid
    stdio = devnull3()
    rt.exec(cid, ["sleep", "30"], stdio=stdio, detach=True)
    os.close(stdio[0])
    try:
        deadline = time.monotonic() + 10
        while True:  # until the exec'd process has replaced the runtime's own code
            pids = rt.ps(cid)
            exes = [_exe(p) for p in pids]
            if (len(pids) == 2 and all(e == "busybox" for e in exes)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert init in pids and len(pids) == 2 and exes == ["busybox", "busybox"], (pids, exes)
    finally:
        rt.kill(cid, 9, all_processes=True)


def _exe(pid: int) -> str:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return ""


def test_kill_all(started) -> None:
    rt, cid = started
    rt.kill(cid, 9, all_processes=True)
    assert _wait_status(rt, cid, "stopped") == "stopped"


# ------------------------------------------------------------------ rootfs over the layer store

@pytest.mark.parametrize("name", ["pyrunc", "crun"])
def test_overlay_rootfs_from_imported_image(name, runtime_roots, cgroup_parent, busybox_tar: Path,
                                            tmp_path: Path) -> None:
    """Import busybox into a layer store, mount its overlay, run a container on it; its
    writes land in the container's upper dir only; delete unmounts and removes."""
    from dockyard.runtime import spec as specs
    from dockyard.store import db
    from dockyard.store.layers import LayerStore

    rt = get_runtime(runtime_roots, name)
    conn = db.connect(tmp_path / "root")
    try:
        layers = LayerStore(tmp_path / "root", conn)
        with open(busybox_tar, "rb") as f:
            info = layers.unpack(f, None, None, None)
        container_dir = tmp_path / "containers" / "c1"
        target = rootfs.mount(layers.lowerdirs(info.chain_id), container_dir)
        try:
            assert rootfs.is_mounted(target) and rootfs.mount(layers.lowerdirs(info.chain_id), container_dir) == target
            cid = f"dy-overlay-{name}-{os.getpid()}"
            spec = specs.build({"Cmd": ["sh"]}, target, specs.RunOptions(
                command=["sh", "-c", "echo hi > /written; cat /etc/passwd | head -1"],
                cgroups_path=f"/{cgroup_parent}/{cid}"), cid)
            specs.write_bundle(tmp_path / "bundle", spec)
            result = rt.run(cid, tmp_path / "bundle")
            assert result.stdout == b"root:x:0:0:root:/root:/bin/sh\n"
            assert (container_dir / "upper" / "written").read_text() == "hi\n"
            assert not (layers.path(info.chain_id) / "written").exists()
        finally:
            rootfs.remove(container_dir)
        assert not container_dir.exists() and not rootfs.is_mounted(target)
    finally:
        conn.close()
