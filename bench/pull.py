"""Benchmark: `dockyard pull` beside `podman pull` and `skopeo copy`, in one run.

Two images are served by a local CNCF distribution registry (Debian's docker-registry):
  A = one 256 MiB incompressible layer (gzip, as registries serve them)
  B = 30 layers of 4 MiB each
Each tool pulls each image from an empty store, several times, interleaved so that
machine noise hits all of them alike:
  dockyard  `dockyard pull`              download + verify + unpack into its layer store
  podman    `podman pull`                download + verify + unpack into containers/storage
  skopeo    `skopeo copy ... oci:DIR`    download + verify only
Prints medians and the ratios the issue sets targets for: dockyard/podman (<= 1.0) and
dockyard's download phase throughput beside skopeo's (>= 1.0).

dockyard's download phase is timed by the pull itself (DOCKYARD_PULL_TIMINGS=1 makes it
print `timings: download=<s> unpack=<s> total=<s>` on stderr).

Traffic goes only to 127.0.0.1. Run as root: `make bench` or `.venv/bin/python bench/pull.py`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout  # noqa: E402
from dockyard.testing.registry import DistributionRegistry  # noqa: E402

MiB = 1024 * 1024
HUGETLB = Path("/sys/fs/cgroup/hugetlb")


@contextmanager
def hugetlb_for_podman() -> Iterator[None]:
    """podman/crun refuse this hybrid cgroup layout while hugetlb sits on the cgroup2 side
    (shared/MACHINE.md); mount it as v1 for the run, and undo what we did."""
    mounted = False
    if not os.path.ismount(HUGETLB):
        HUGETLB.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB)], check=True)
        mounted = True
    try:
        yield
    finally:
        if mounted:
            for child in sorted((p for p in HUGETLB.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    child.rmdir()
                except OSError:
                    pass
            subprocess.run(["umount", str(HUGETLB)], check=False)
            try:
                HUGETLB.rmdir()
            except OSError:
                pass


def build_images(work: Path, registry: DistributionRegistry, size_a: int, layers_b: int, layer_b: int) -> dict[str, str]:
    """Write both images as OCI layouts and push them with skopeo; returns name -> reference."""
    refs = {}
    a_layer = random_layer_tar(work / "a.tar", size_a, seed=1)
    write_oci_layout(work / "layout-a", [ImageSpec(layers=[a_layer], cmd=["sh"])])
    b_layers = [random_layer_tar(work / f"b{i}.tar", layer_b, seed=100 + i, name=f"data{i}.bin")
                for i in range(layers_b)]
    write_oci_layout(work / "layout-b", [ImageSpec(layers=b_layers, cmd=["sh"])])
    for name in ("a", "b"):
        ref = f"{registry.address}/bench/{name}:latest"
        push_oci_layout(work / f"layout-{name}", ref)
        refs[name] = ref
    for path in work.glob("*.tar"):
        path.unlink()
    return refs


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, result.stderr


def run_dockyard(ref: str, scratch: Path) -> tuple[float, float]:
    """Whole pull time and its download phase, from an empty root."""
    root = scratch / "dockyard-root"
    env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUNROOT=str(scratch / "dockyard-run"),
               DOCKER_CONFIG=str(scratch / "docker-config"), DOCKYARD_PULL_TIMINGS="1")
    try:
        elapsed, stderr = timed([sys.executable, "-m", "dockyard", "pull", "-q", ref], env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    match = re.search(r"timings: download=([0-9.]+)", stderr)
    download = float(match.group(1)) if match else float("nan")
    return elapsed, download


def run_podman(ref: str, scratch: Path) -> float:
    root, runroot = scratch / "podman-root", scratch / "podman-run"
    base = ["podman", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    try:
        elapsed, _ = timed(base + ["pull", "-q", "--tls-verify=false", ref])
    finally:
        subprocess.run(base + ["system", "reset", "-f"], capture_output=True)
        subprocess.run(["umount", "-R", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)
    return elapsed


def run_skopeo(ref: str, scratch: Path) -> float:
    dest = scratch / "skopeo-oci"
    try:
        start = time.perf_counter()
        skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:latest")
        return time.perf_counter() - start
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-a-mib", type=int, default=256)
    parser.add_argument("--layers-b", type=int, default=30)
    parser.add_argument("--layer-b-mib", type=int, default=4)
    parser.add_argument("--no-podman", action="store_true", help="skip podman (e.g. not installed)")
    args = parser.parse_args()
    use_podman = not args.no_podman and shutil.which("podman") is not None

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-bench-", dir="/var/tmp")))
        registry = stack.enter_context(DistributionRegistry())
        if use_podman:
            stack.enter_context(hugetlb_for_podman())
        print(f"building images (A: 1 x {args.size_a_mib} MiB, B: {args.layers_b} x {args.layer_b_mib} MiB) ...",
              flush=True)
        refs = build_images(work, registry, args.size_a_mib * MiB, args.layers_b, args.layer_b_mib * MiB)
        sizes = {"a": args.size_a_mib * MiB, "b": args.layers_b * args.layer_b_mib * MiB}
        results: dict[tuple[str, str], list[float]] = {}
        for run in range(args.runs):
            for name, ref in refs.items():
                total, download = run_dockyard(ref, work)
                results.setdefault(("dockyard", name), []).append(total)
                results.setdefault(("dockyard-download", name), []).append(download)
                if use_podman:
                    results.setdefault(("podman", name), []).append(run_podman(ref, work))
                results.setdefault(("skopeo", name), []).append(run_skopeo(ref, work))
            print(f"run {run + 1}/{args.runs} done", flush=True)

    med = {key: statistics.median(values) for key, values in results.items()}
    print()
    print(f"{'image':<8}{'dockyard pull':>15}{'(download)':>12}{'podman pull':>14}{'skopeo copy':>14}"
          f"{'dy/podman':>11}{'dl MiB/s dy':>13}{'skopeo MiB/s':>14}{'dl ratio':>10}")
    for name in refs:
        dy, dl, sk = med[("dockyard", name)], med[("dockyard-download", name)], med[("skopeo", name)]
        pm = med.get(("podman", name), float("nan"))
        mib = sizes[name] / MiB
        print(f"{name.upper():<8}{dy:>14.2f}s{dl:>11.2f}s{pm:>13.2f}s{sk:>13.2f}s"
              f"{dy / pm:>11.2f}{mib / dl:>13.0f}{mib / sk:>14.0f}{sk / dl:>10.2f}")
    print(f"\nmedians of {args.runs} runs; targets: dy/podman <= 1.0, dl ratio (skopeo time / dockyard download) >= 1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
