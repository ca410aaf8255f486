"""Benchmark: ``run`` of /bin/true in a busybox bundle with pyrunc, crun and runc, one run.

Each iteration uses a fresh container ID and goes from create to delete (``run``
deletes on exit). Runtimes are interleaved so that machine noise hits them alike;
medians and ratios are printed. Target: pyrunc no slower than runc.

    .venv/bin/python bench/runtime.py [--runs 30]

Needs root; mounts crun's v1 hugetlb hierarchy if missing and removes it again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.runtime import spec as specs
from dockyard.runtime.oci import RUNTIMES, OCIRuntime
from dockyard.testing.images import busybox_rootfs_tar

CGROUP_PARENT = f"dockyard-bench-{os.getpid()}"


def _hugetlb_fix() -> bool:
    """crun refuses a hybrid host whose hugetlb is left on cgroup2: mount it as v1."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return False
    if any(" hugetlb" in line or ",hugetlb" in line for line in Path("/proc/self/mounts").read_text().splitlines()
           if line.split()[2] == "cgroup"):
        return False
    Path("/sys/fs/cgroup/hugetlb").mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"], check=True)
    return True


def _cleanup_cgroups(unmount_hugetlb: bool) -> None:
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir():
        parent = hierarchy / CGROUP_PARENT
        if parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir():
                    child.rmdir()
            parent.rmdir()
    if unmount_hugetlb:
        subprocess.run(["umount", "/sys/fs/cgroup/hugetlb"], check=False)
        try:
            (base / "hugetlb").rmdir()
        except OSError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    names = [n for n in RUNTIMES if n == "pyrunc" or shutil.which(n)]
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-runtime-"))
    mounted = _hugetlb_fix()
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        with tarfile.open(busybox_rootfs_tar(work / "busybox.tar")) as tar:
            tar.extractall(rootfs, filter="fully_trusted")
        runtimes = {n: OCIRuntime(n, root=work / "state" / n) for n in names}
        bundles = {}
        for n in names:  # one bundle per runtime: the cgroup path names the container
            bundle = work / f"bundle-{n}"
            spec = specs.build({}, rootfs, specs.RunOptions(command=["/bin/true"]), "bench")
            spec["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{n}"
            specs.write_bundle(bundle, spec)
            bundles[n] = bundle
        times: dict[str, list[float]] = {n: [] for n in names}
        counter = 0
        for i in range(args.warmup + args.runs):
            for n in names:
                counter += 1
                argv = runtimes[n].argv("run", "--bundle", str(bundles[n]), f"bench-{n}-{counter}")
                start = time.perf_counter()
                result = subprocess.run(argv, env=runtimes[n]._env, stdin=subprocess.DEVNULL,
                                        capture_output=True)
                elapsed = time.perf_counter() - start
                if result.returncode != 0:
                    print(f"{n} failed: {result.stderr.decode(errors='replace')}", file=sys.stderr)
                    return 1
                if i >= args.warmup:
                    times[n].append(elapsed)
        medians = {n: statistics.median(t) * 1000 for n, t in times.items()}
        print(f"run /bin/true in a busybox bundle, create..delete, median of {args.runs} (ms)")
        for n in names:
            ratio_runc = f"{medians[n] / medians['runc']:.2f}x runc" if "runc" in medians else ""
            ratio_crun = f"{medians[n] / medians['crun']:.2f}x crun" if "crun" in medians else ""
            print(f"  {n:7s} {medians[n]:7.1f}   {ratio_crun:>12s} {ratio_runc:>12s}")
        if "runc" in medians:
            verdict = "met" if medians["pyrunc"] <= medians["runc"] else "missed"
            print(f"target pyrunc <= runc: {verdict}")
        return 0
    finally:
        for n in names:
            state = work / "state" / n
            if state.is_dir():
                for entry in (e for e in state.iterdir() if not e.name.startswith(".")):
                    subprocess.run(OCIRuntime(n, root=state).argv("delete", "--force", entry.name),
                                   capture_output=True, env=OCIRuntime(n, root=state)._env)
        _cleanup_cgroups(mounted)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
