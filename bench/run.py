"""Benchmark: dockyard vs podman vs docker, one run, same busybox tar imported into each.

    .venv/bin/python bench/run.py [--runs 15] [--skip docker,podman]

Operations (median wall time of the CLI, engines interleaved so machine noise hits all alike):
  run    ``run --rm --network none busybox true``
  exec   ``exec <running container> true``
and per-container memory: RSS and PSS of the monitor process (the parent of the container's
init: dockyard's shim, podman's conmon, docker's containerd-shim).

Targets (issue 5): run <= 0.5x podman and <= 0.5x docker; exec <= docker; shim RSS <=
containerd-shim's.

Everything lives under one temp dir: dockyard's root, podman's --root/--runroot, and a
dockerd started here with its own data-root, exec-root, pidfile and socket (no bridge, no
iptables changes), stopped by PID at the end. Needs root; podman (crun) needs the v1 hugetlb
mount on this hybrid host, which is mounted if missing and removed again. Uses Debian's
/usr/bin/docker (20.10): /usr/local/bin/docker is a newer client that shadows it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dockyard.fsutil import remove_cgroup  # noqa: E402
from dockyard.testing.images import busybox_rootfs_tar  # noqa: E402

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def sh(argv: list[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


class Engine:
    """One engine's CLI, how to set it up, and its container's monitor."""

    name = ""

    def cli(self, *args: str) -> list[str]:
        raise NotImplementedError

    env: dict[str, str] | None = None

    def run_argv(self) -> list[str]:
        return self.cli("run", "--rm", "--network", "none", "busybox", "true")

    def exec_argv(self) -> list[str]:
        return self.cli("exec", "bench-exec", "true")

    def start_idle(self) -> int:
        """Start the long-running container; the PID of its init."""
        sh(self.cli("run", "-d", "--name", "bench-exec", "--network", "none", "busybox", "sleep", "3600"), self.env)
        out = sh(self.cli("inspect", "-f", "{{.State.Pid}}", "bench-exec"), self.env)
        return int(out.strip())

    def stop_idle(self) -> None:
        sh(self.cli("rm", "-f", "bench-exec"), self.env, check=False)

    def close(self) -> None:
        pass


class Dockyard(Engine):
    name = "dockyard"

    def __init__(self, base: Path, tar: Path) -> None:
        self.cgroup = f"dockyard-bench-run-{os.getpid()}"
        self.env = {**os.environ, "DOCKYARD_ROOT": str(base / "dockyard" / "root"),
                    "DOCKYARD_RUNROOT": str(base / "dockyard" / "run"), "DOCKYARD_CGROUP_PARENT": self.cgroup,
                    "DOCKYARD_EARLY_EXIT_WINDOW": "0"}
        # The command as `make install` sets it up (the project's virtualenv), else the entry
        # point beside this interpreter: a `dockyard` found on PATH may be a version manager's
        # shim (pyenv's is a chain of bash scripts that costs more than the run itself).
        candidates = [ROOT / ".venv" / "bin" / "dockyard", Path(sys.executable).parent / "dockyard"]
        found = [c for c in candidates if c.exists()]
        self.exe = str(found[0]) if found else shutil.which("dockyard") or sys.executable
        print(f"dockyard: {self.exe}")
        # An editable install runs from source: compile once, as an installed package would be.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "dockyard")],
                       stdout=subprocess.DEVNULL, check=False)
        sh(self.cli("import", "-c", 'CMD ["sh"]', str(tar), "busybox"), self.env)

    def cli(self, *args: str) -> list[str]:
        return [self.exe, *args] if self.exe.endswith("dockyard") else [self.exe, "-m", "dockyard", *args]

    def close(self) -> None:
        sh(self.cli("system", "reset", "--force"), self.env, check=False)
        remove_cgroup(self.cgroup)


class Podman(Engine):
    name = "podman"

    def __init__(self, base: Path, tar: Path) -> None:
        self.base = base / "podman"
        self.env = dict(os.environ)
        self.flags = ["--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                      "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                      "--tmpdir", str(self.base / "tmp")]
        sh(self.cli("import", "--change", "CMD [\"sh\"]", str(tar), "busybox"), self.env)

    def cli(self, *args: str) -> list[str]:
        cmd = ["podman", *self.flags, *args]
        if args and args[0] == "run":
            cmd[len(self.flags) + 2:len(self.flags) + 2] = ULIMITS
        return cmd

    def close(self) -> None:
        sh(self.cli("rm", "-af", "-t", "0"), self.env, check=False)
        sh(self.cli("system", "reset", "-f"), self.env, check=False)
        for point in _mounts_below(self.base):
            subprocess.run(["umount", "-l", point], check=False)


class Docker(Engine):
    name = "docker"

    def __init__(self, base: Path, tar: Path) -> None:
        self.base = base / "docker"
        self.base.mkdir()
        self.sock = self.base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        log = open(self.base / "dockerd.log", "wb")
        self.daemon = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.sock}", "--bridge", "none",
             "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--storage-driver", "overlay2"],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(self.cli("version"), env=self.env, capture_output=True).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {self.base / 'dockerd.log'}")
            time.sleep(0.2)
        sh(self.cli("import", "--change", "CMD [\"sh\"]", str(tar), "busybox"), self.env)

    def cli(self, *args: str) -> list[str]:
        return [DOCKER, *args]

    def close(self) -> None:
        sh(self.cli("rm", "-f", "bench-exec"), self.env, check=False)
        self.daemon.send_signal(signal.SIGTERM)  # stops its containerd and shims too
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        for point in _mounts_below(self.base):
            subprocess.run(["umount", "-l", point], check=False)


# ------------------------------------------------------------------ helpers

def _mounts_below(path: Path) -> list[str]:
    prefix = str(path) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _hugetlb_fix() -> bool:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return False
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup" and "hugetlb" in fields[sep + 3].split(","):
            return False
    Path("/sys/fs/cgroup/hugetlb").mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"], check=True)
    return True


def close_all(closers: "list[Any]", label: str = "name") -> None:
    """``close()`` each engine or side; a failure is printed and the next one still closes."""
    for c in closers:
        try:
            c.close()
        except Exception as ex:  # noqa: BLE001 - the next one still closes
            print(f"{getattr(c, label)}: clean-up failed: {ex}", file=sys.stderr)


def remove_base(base: Path, hugetlb_mounted: bool) -> None:
    """What a bench made on the host: the hugetlb mount it added, mounts below ``base``, ``base``."""
    if hugetlb_mounted:
        _hugetlb_undo()
    for point in _mounts_below(base):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(base, ignore_errors=True)


def private_podman(base: Path) -> "tuple[dict[str, str], list[str]]":
    """(environment, global flags) of a podman whose root, runroot, tmpdir and network config
    all live under ``base``: cgroupfs (no systemd here), file events, netavark, the ulimits
    this host allows (shared/MACHINE.md); nothing read from /etc/containers."""
    conf = base / "containers.conf"
    conf.write_text(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
network_config_dir = "{base / 'networks'}"
""")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    return env, ["--root", str(base / "root"), "--runroot", str(base / "run"), "--tmpdir", str(base / "tmp")]


def _hugetlb_undo() -> None:
    base = Path("/sys/fs/cgroup/hugetlb")
    for child in sorted((c for c in base.rglob("*") if c.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    subprocess.run(["umount", str(base)], check=False)


def _memory(pid: int) -> tuple[str, float, float]:
    """(name, RSS MiB, PSS MiB) of ``pid``."""
    name = Path(f"/proc/{pid}/comm").read_text().strip()
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return name, rss, pss


def _parent(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_text()
    return int(data[data.rindex(")") + 2:].split()[1])


def _time(argv: list[str], env: dict[str, str] | None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.decode(errors='replace').strip()[-300:]}")
    return elapsed


def measure(engines: list[Engine], runs: int, argv_of: Callable[[Engine], list[str]]) -> dict[str, float]:
    times: dict[str, list[float]] = {e.name: [] for e in engines}
    for e in engines:  # warm-up
        _time(argv_of(e), e.env)
    for _ in range(runs):
        for e in engines:
            times[e.name].append(_time(argv_of(e), e.env))
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--skip", default="", help="comma-separated engines to leave out: podman,docker")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/run.py needs root", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-run-"))
    mounted = _hugetlb_fix() if "podman" not in skip else False
    engines: list[Engine] = []
    try:
        tar = busybox_rootfs_tar(base / "busybox.tar")
        makers: list[tuple[str, Callable[[], Engine]]] = [("dockyard", lambda: Dockyard(base, tar))]
        if "podman" not in skip:
            makers.append(("podman", lambda: Podman(base, tar)) if shutil.which("podman") else ("podman", None))
        if "docker" not in skip:
            makers.append(("docker", lambda: Docker(base, tar)) if Path(DOCKERD).exists() else ("docker", None))
        for name, make in makers:
            if make is None:
                print(f"{name}: not installed (apt-get install {'docker.io' if name == 'docker' else name}); skipped")
                continue
            try:
                engines.append(make())
            except Exception as e:  # noqa: BLE001 - one engine failing must not hide the others
                print(f"{name}: set-up failed, skipped: {e}")
        print(f"{len(engines)} engines, {args.runs} runs each, interleaved; medians in ms")
        run_ms = measure(engines, args.runs, lambda e: e.run_argv())
        monitors: dict[str, tuple[str, float, float]] = {}
        for e in engines:
            init = e.start_idle()
            monitors[e.name] = _memory(_parent(init))
        exec_ms = measure(engines, args.runs, lambda e: e.exec_argv())
        for e in engines:
            e.stop_idle()
        print()
        print(f"{'engine':<10} {'run --rm (ms)':>14} {'exec (ms)':>10}   {'monitor':<22} {'RSS MiB':>8} {'PSS MiB':>8}")
        for e in engines:
            name, rss, pss = monitors[e.name]
            print(f"{e.name:<10} {run_ms[e.name]:>14.0f} {exec_ms[e.name]:>10.0f}   {name:<22} {rss:>8.1f} {pss:>8.1f}")
        print()
        if "dockyard" not in run_ms:
            print("dockyard could not be set up: nothing to compare", file=sys.stderr)
            return 1
        mine = run_ms["dockyard"]
        for other in ("podman", "docker"):
            if other in run_ms:
                print(f"run --rm: dockyard/{other} = {mine / run_ms[other]:.2f} (target <= 0.50)")
        if "docker" in exec_ms:
            print(f"exec:     dockyard/docker = {exec_ms['dockyard'] / exec_ms['docker']:.2f} (target <= 1.00)")
            print(f"monitor RSS: dockyard/containerd-shim = "
                  f"{monitors['dockyard'][1] / monitors['docker'][1]:.2f} (target <= 1.00)")
        print(json.dumps({"run_ms": run_ms, "exec_ms": exec_ms,
                          "monitor": {k: {"name": v[0], "rss_mib": v[1], "pss_mib": v[2]} for k, v in monitors.items()}}))
        return 0
    finally:
        close_all(engines)
        remove_base(base, mounted)


if __name__ == "__main__":
    sys.exit(main())
