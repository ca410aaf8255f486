"""Escapes tried from inside a default container, on every runtime: each must fail."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.runtime.oci import OCIRuntime
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, run_in, runtime, runtime_roots)


def sh(runtime: OCIRuntime, bundles: Bundles, script: str, **options) -> str:
    result = run_in(runtime, bundles, ["sh", "-c", script], **options)
    return result.stdout.decode() + result.stderr.decode()


def test_no_host_processes_visible(runtime, bundles) -> None:
    pids = sh(runtime, bundles, "ls /proc | grep '^[0-9]'").split()
    assert len(pids) <= 3 and "1" in pids, pids  # sh, ls, grep at most


def test_cannot_mount(runtime, bundles) -> None:
    output = sh(runtime, bundles, "mount -t tmpfs none /mnt && echo MOUNTED; "
                                  "mount -o remount,rw /proc/sys && echo REMOUNTED; echo done")
    assert "MOUNTED" not in output and "REMOUNTED" not in output and "done" in output


def test_cannot_load_modules(runtime, bundles) -> None:
    output = sh(runtime, bundles, "echo junk > /tmp/m.ko; insmod /tmp/m.ko; echo rc=$?; rm /tmp/m.ko")
    assert "Operation not permitted" in output and "rc=0" not in output


@pytest.mark.parametrize("path", ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger",
                                  "/sys/kernel/uevent_helper", "/sys/fs/cgroup/pids/pids.max"])
def test_cannot_write_proc_sys_or_sys(runtime, bundles, path) -> None:
    output = sh(runtime, bundles, f"(echo 3 > {path}) 2>/dev/null && echo WROTE || echo refused")
    assert output.strip() == "refused"


def test_cannot_open_host_devices(runtime, bundles) -> None:
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    output = sh(runtime, bundles, f"mknod /dev/hostdisk b {major} {minor} && head -c 1 /dev/hostdisk > /dev/null "
                                  "&& echo OPENED; head -c 1 /dev/kmsg >/dev/null 2>&1 && echo KMSG; echo done")
    assert "OPENED" not in output and "KMSG" not in output and "done" in output


def test_hostname_stays_in_uts_namespace(runtime, bundles) -> None:
    host = socket.gethostname()
    denied = sh(runtime, bundles, "hostname evil 2>&1; hostname")
    assert denied.splitlines()[-1] == "parity"  # no CAP_SYS_ADMIN: refused
    allowed = sh(runtime, bundles, "hostname evil && hostname", cap_add=["SYS_ADMIN"])
    assert allowed.strip() == "evil"  # with it: only the container's UTS namespace changes
    assert socket.gethostname() == host


def test_proc_1_root_is_the_container_root(runtime, bundles, tmp_path: Path) -> None:
    marker = tmp_path / "host-only-marker"
    marker.write_text("host")
    output = sh(runtime, bundles, f"cat /proc/1/root{marker} 2>&1; ls /proc/1/root/ | sort | tr '\\n' ' '")
    assert "host" != output.splitlines()[0]
    assert "bin" in output.split() and "notexec" in output.split()


def test_runtime_files_unreachable(runtime, bundles) -> None:
    state_root = runtime.root
    result = run_in(runtime, bundles, ["sh", "-c", f"ls {state_root} 2>&1 | head -1; "
                                                   f"(echo x > {bundles.base}/config.json) 2>&1 && echo WROTE; "
                                                   "ls /proc/self/fd | wc -l"])
    output = result.stdout.decode()
    assert "WROTE" not in output and "No such file" in output
    assert output.split()[-1] == "4"  # 0, 1, 2 and the directory ls reads: nothing inherited


def test_runtime_exe_unreachable_during_exec(runtime, bundles, tmp_path: Path) -> None:
    """CVE-2019-5736's shape: while the runtime joins the container for ``exec``, a
    process inside looks for a /proc/<pid>/exe that is not its own binary and tries to
    open it. It must never succeed."""
    scanner = ("while true; do for p in /proc/[0-9]*; do t=$(readlink $p/exe 2>/dev/null); "
               "case \"$t\" in *busybox*|'') ;; *) head -c 1 $p/exe >/dev/null 2>&1 && echo OPENED $t;; esac; "
               "done; done")
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", scanner])
    log = tmp_path / "scanner.log"
    with open(log, "wb") as out:
        runtime.create(cid, bundle, stdout=out, stderr=out)
    try:
        runtime.start(cid)
        for _ in range(15):
            runtime.exec(cid, ["true"])
        time.sleep(0.2)
    finally:
        subprocess.run(runtime.argv("delete", "--force", cid), capture_output=True, env=runtime._env)
    assert "OPENED" not in log.read_text()
