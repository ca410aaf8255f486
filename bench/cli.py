"""Every everyday command's wall time: dockyard beside podman and docker, with 0 and with 200
containers present.

    .venv/bin/python bench/cli.py [--reps 7] [--containers 200] [--only inspect,images]

Interleaved in one run: for each command, each repetition runs it once per engine in turn, so
machine noise lands on all of them alike. Medians; ratios beside podman (the target: every
command at most 1.0x podman) and docker; the last column says how a dockyard command's time
grows from 0 to N containers (target: at most +20%).

Set-up as bench/run.py (whose engine classes this uses): each engine under one temp dir, podman
with its own root, cgroupfs and file events, a private dockerd (no bridge, no iptables), one
busybox imported into each. Each engine has a running container `bench-c` (with a published
port where the engine can: dockyard and podman), a volume `bench-v`, and then N extra created
containers. Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import run as runbench  # noqa: E402  (bench/run.py: the engines)


def commands(since: str, until: str) -> dict[str, list[str] | tuple[list[str], ...]]:
    """name -> argv after the engine's command (a tuple: several run in sequence, timed together)."""
    return {
        "run --rm": ["run", "--rm", "--network", "none", "busybox", "true"],
        "ps -a": ["ps", "-a"],
        "logs": ["logs", "bench-c"],
        "create + rm": (["create", "--name", "bench-cr", "--network", "none", "busybox", "true"], ["rm", "bench-cr"]),
        "inspect <container>": ["inspect", "bench-c"],
        "images": ["images"],
        "volume ls": ["volume", "ls"],
        "volume inspect": ["volume", "inspect", "bench-v"],
        "image inspect": ["image", "inspect", "busybox"],
        "top": ["top", "bench-c"],
        "--version": ["--version"],
        "version": ["version"],
        "info": ["info"],
        "port": ["port", "bench-c"],
        "network ls": ["network", "ls"],
        "tag + rmi": (["tag", "busybox", "bench-tag:1"], ["rmi", "bench-tag:1"]),
        "history": ["history", "busybox"],
        "stats --no-stream": ["stats", "--no-stream", "bench-c"],
        "events --until": ["events", "--since", since, "--until", until],
    }


def timed(engine: runbench.Engine, argvs: list[list[str]]) -> float | None:
    start = time.perf_counter()
    for argv in argvs:
        result = subprocess.run(engine.cli(*argv), env=engine.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, timeout=120)
        if result.returncode != 0:
            return None
    return time.perf_counter() - start


def setup(engine: runbench.Engine) -> None:
    publish = [] if engine.name == "docker" else ["-p", "127.0.0.1::80"]  # docker here: no bridge
    network = ["--network", "none"] if engine.name == "docker" else []
    runbench.sh(engine.cli("run", "-d", "--name", "bench-c", *network, *publish, "busybox",
                           "sh", "-c", "echo hello; sleep 3600"), engine.env)
    runbench.sh(engine.cli("volume", "create", "bench-v"), engine.env)


def add_containers(engine: runbench.Engine, n: int) -> None:
    for i in range(n):
        runbench.sh(engine.cli("create", "--name", f"bench-extra-{i}", "--network", "none", "busybox", "true"),
                    engine.env)


def measure(engines: list[runbench.Engine], reps: int, only: set[str] | None) -> dict[str, dict[str, float | None]]:
    now = datetime.now(timezone.utc)
    since = datetime.fromtimestamp(now.timestamp() - 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    table: dict[str, dict[str, float | None]] = {}
    for name, argv in commands(since, until).items():
        if only and name not in only:
            continue
        argvs = list(argv) if isinstance(argv, tuple) else [argv]
        samples: dict[str, list[float]] = {e.name: [] for e in engines}
        failed: set[str] = set()
        for engine in engines:   # one warm-up each (page cache, bytecode)
            if timed(engine, argvs) is None:
                failed.add(engine.name)
        for _ in range(reps):
            for engine in engines:
                if engine.name in failed:
                    continue
                t = timed(engine, argvs)
                if t is None:
                    failed.add(engine.name)
                else:
                    samples[engine.name].append(t)
        table[name] = {e: (statistics.median(s) if s and e not in failed else None) for e, s in samples.items()}
        print(f"  {name}: " + ", ".join(f"{e} {_ms(v)}" for e, v in table[name].items()), flush=True)
    return table


def _ms(value: float | None) -> str:
    return "fails" if value is None else f"{value * 1000:.0f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def report(zero: dict[str, dict[str, float | None]], many: dict[str, dict[str, float | None]], n: int) -> None:
    print(f"\n| command | dockyard | podman | docker | vs podman | vs docker | dockyard with {n} | vs podman "
          f"| growth 0->{n} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in zero.items():
        big = many.get(name, {})
        d0, p0, k0 = row.get("dockyard"), row.get("podman"), row.get("docker")
        dn, pn = big.get("dockyard"), big.get("podman")
        growth = "-" if d0 is None or dn is None else f"{(dn / d0 - 1) * 100:+.0f}%"
        print(f"| `{name}` | {_ms(d0)} | {_ms(p0)} | {_ms(k0)} | {_ratio(d0, p0)} | {_ratio(d0, k0)} | {_ms(dn)} "
              f"| {_ratio(dn, pn)} | {growth} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--only", help="comma-separated command names of the table")
    parser.add_argument("--engines", default="dockyard,podman,docker")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cli.py needs root")
    only = set(args.only.split(",")) if args.only else None
    base = Path(tempfile.mkdtemp(prefix="dy-bench-cli-", dir="/tmp"))
    tar = base / "busybox.tar"
    runbench.busybox_rootfs_tar(tar)
    hugetlb = runbench._hugetlb_fix()
    classes = {"dockyard": runbench.Dockyard, "podman": runbench.Podman, "docker": runbench.Docker}
    engines: list[runbench.Engine] = []
    try:
        for name in args.engines.split(","):
            engines.append(classes[name](base, tar))
        for engine in engines:
            setup(engine)
        print("with 0 extra containers:")
        zero = measure(engines, args.reps, only)
        many: dict[str, dict[str, float | None]] = {}
        if args.containers:
            for engine in engines:
                add_containers(engine, args.containers)
            print(f"with {args.containers} extra containers:")
            many = measure(engines, args.reps, only)
        report(zero, many, args.containers)
    finally:
        for engine in engines:
            runbench.sh(engine.cli("rm", "-f", "bench-c"), engine.env, check=False)
            engine.close()
        if hugetlb:
            runbench._hugetlb_undo()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
