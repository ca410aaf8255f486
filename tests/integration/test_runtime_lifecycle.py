"""create → start → state → exec / ps → kill → delete through the adapter, on every runtime,
plus the rootfs overlay of an imported image."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.runtime import rootfs
from dockyard.runtime.oci import OCIRuntime, OCIRuntimeError
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, run_in, runtime, runtime_roots)


def _wait_status(rt: OCIRuntime, cid: str, status: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = rt.state(cid).status
        if current == status:
            return current
        time.sleep(0.02)
    return current


@pytest.fixture
def started(runtime: OCIRuntime, bundles: Bundles):
    """A running ``sleep`` container, force-deleted afterwards."""
    cid, bundle = bundles.make(runtime.name, ["sleep", "300"])
    runtime.create(cid, bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runtime.start(cid)
        yield runtime, cid
    finally:
        subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True, env=runtime._env)


def test_lifecycle(runtime, bundles, tmp_path: Path) -> None:
    cid, bundle = bundles.make(runtime.name, ["sleep", "300"])
    pid_file = tmp_path / "pid"
    runtime.create(cid, bundle, pid_file=str(pid_file), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        state = runtime.state(cid)
        assert state.status == "created" and state.pid == int(pid_file.read_text()) > 0
        assert state.bundle == str(bundle)
        runtime.start(cid)
        assert runtime.state(cid).status == "running"
        with pytest.raises(OCIRuntimeError):
            runtime.delete(cid)  # running: refused without --force
        runtime.kill(cid, "KILL")
        assert _wait_status(runtime, cid, "stopped") == "stopped"
        runtime.delete(cid)
        with pytest.raises(OCIRuntimeError):
            runtime.state(cid)
    finally:
        subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True, env=runtime._env)


def test_delete_created_container(runtime, bundles) -> None:
    cid, bundle = bundles.make(runtime.name, ["true"])
    runtime.create(cid, bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        rt.create(cid, bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert rt.state(cid).status == "running"


def _namespaces(pid: int | str) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}


def test_exec_joins_every_namespace(started, runtime_roots) -> None:
    rt, cid = started
    script = ("for ns in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$ns; done; hostname; "
              "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; id; pwd; echo $FOO")
    result = rt.exec(cid, ["sh", "-c", script], env=["FOO=exec"], cwd="/tmp")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    container = _namespaces(rt.state(cid).pid)
    assert lines[:6] == [container[ns] for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")]
    assert lines[6] == "parity" and lines[-3:] == ["uid=0(root) gid=0(root)", "/tmp", "exec"]
    assert lines[7] == "CapEff:\t00000000a80425fb" and lines[9] == "Seccomp:\t2"


def test_exec_exit_codes_and_errors(started) -> None:
    rt, cid = started
    assert rt.exec(cid, ["sh", "-c", "exit 5"]).returncode == 5
    assert rt.exec(cid, ["id", "-u"], user="65534:65534").stdout == b"65534\n"
    with pytest.raises(OCIRuntimeError) as info:
        rt.exec(cid, ["no-such-program"])
    assert info.value.exit_code == 127


def test_exec_process_is_in_the_cgroup(started) -> None:
    rt, cid = started
    result = rt.exec(cid, ["cat", "/proc/self/cgroup"])
    assert all(line.endswith(":/") for line in result.stdout.decode().split()), result.stdout


def test_ps_lists_the_container_processes(started) -> None:
    rt, cid = started
    init = rt.state(cid).pid
    proc = subprocess.Popen(rt.argv("exec", cid, "sleep", "30"), env=rt._env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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
        proc.kill()
        proc.wait()


def _exe(pid: int) -> str:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return ""


def test_kill_all(started) -> None:
    rt, cid = started
    rt.kill(cid, "KILL", all_processes=True)
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
