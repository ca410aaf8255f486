"""Benchmark: image builds, dockyard vs ``buildah bud --layers`` vs BuildKit (``DOCKER_BUILDKIT=1
docker build`` on a private dockerd), one run, same context, engines interleaved.

    .venv/bin/python bench/build.py [--rounds 3] [--engines dockyard,buildah,docker] [--json]
                                    [--package less] [--seed 1] [--logs DIR]

The base: the debian:bookworm minbase tarball of dockyard.testing.debian (debootstrap on this
machine, cached for 7 days; the first call takes 25-40 s), imported into every engine as
``bench-debian:bookworm`` (``dockyard import``, ``podman import`` into the storage buildah
shares with it, ``docker import``).

The context, generated from --seed in a temp dir: ``src/``, a tree of 2000 files and 50 MiB
(text and random bytes, 1 KiB to ~2 MiB, up to four directories deep), a few ``*.tmp`` files
that the one-pattern .dockerignore leaves out, and this Dockerfile:

    FROM bench-debian:bookworm AS build
    RUN apt-get update && apt-get install -y --no-install-recommends <package>
    COPY src /data
    ten metadata steps (ENV, LABEL, WORKDIR, EXPOSE, USER, ENV, LABEL, STOPSIGNAL, ENTRYPOINT, CMD)
    FROM bench-debian:bookworm
    COPY --from=build /data /data

Each round, engine order rotated per round: a cold build with every engine (its build cache
and every image but the base removed first, untimed), then a no-op rebuild with every
engine, then one file of ``src/`` rewritten (new content, same size) and a rebuild with
every engine. Wall time of the build CLI, median over --rounds; every build's exit status is
checked and a failed build stops the benchmark with the tail of its output. The built image's
ID is read after each build: a rebuild after the change that gives the same ID stops the
benchmark (the change was not seen); a no-op rebuild that gives a new ID is reported as a note.
--package picks the one package (default ``less``: a single small .deb); --logs keeps every
build's output.

  dockyard  ``dockyard build -t bench-build:dy --progress plain <ctx>``, cold after
            ``dockyard builder prune -a -f`` and ``dockyard rmi -f`` of every non-base image
  buildah   ``buildah bud --layers --pull=never -t bench-build:buildah <ctx>``, cold after
            ``buildah rmi -f`` of every image but the base (its --layers cache is those images)
  buildkit  ``DOCKER_BUILDKIT=1 docker build -t bench-build:bk --progress plain <ctx>`` (Debian's
            docker 20.10 client, which has BuildKit built in), cold after ``docker builder
            prune -af`` and ``docker rmi -f`` of every non-base image

Targets (issue: build): cold <= 1.0x buildah and BuildKit; no-op <= 0.5x both; one-file
change <= 1.0x BuildKit.

RUN steps reach the Debian mirror on each engine's default network (no --network host):
buildah's CNI bridge, dockerd's docker0 (bench/net.py's NetDocker: a private dockerd with
default networking), dockyard's default bridge. As bench/net.py does, the host's network state
is saved first and put back at the end (bridges, iptables rules and policies, sysctls), even
on failure. Everything else lives under one temp dir (dockyard's root and runroot, podman's
and buildah's --root/--runroot, dockerd's data-root), removed at the end; dockerd is stopped
by PID. Needs root; crun under buildah needs the v1 hugetlb mount on this hybrid host, which
is mounted if missing and removed again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from net import HostNet, NetDocker, _interrupted, _ours_to_keep  # noqa: E402  bench/net.py: dockerd, host state
from run import (  # noqa: E402  bench/run.py: the engines, helpers
    DOCKER, DOCKERD, ROOT, Dockyard, Podman, _hugetlb_fix, close_all, remove_base, sh)

from dockyard.testing.debian import base_tarball  # noqa: E402

BASE_IMAGE = "bench-debian:bookworm"
ENGINES = ("dockyard", "buildah", "docker")
LABELS = {"dockyard": "dockyard", "buildah": "buildah", "docker": "buildkit"}
SCENARIOS = (("cold", "cold build"), ("noop", "no-op rebuild"), ("change", "one file changed"))
TARGETS = {("cold", "buildah"): 1.0, ("cold", "docker"): 1.0, ("noop", "buildah"): 0.5, ("noop", "docker"): 0.5,
           ("change", "docker"): 1.0}
BUILD_TIMEOUT = 1200
TREE_BYTES = 50 << 20
TREE_FILES = 2000
MTIME = 1704067200


# ------------------------------------------------------------------ the context

WORDS = ("def class return import from self value index buffer stream layer image build cache "
         "context digest manifest config layer snapshot mount overlay network bridge route "
         "the of and to in is for on with as by at this that it be are or an if else while").split()


def _text(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        line = " " * (4 * rng.randrange(4)) + " ".join(rng.choices(WORDS, k=rng.randrange(3, 12))) + "\n"
        out += line.encode()
    return bytes(out[:size])


def _sizes(rng: random.Random) -> list[int]:
    """2000 sizes summing to exactly 50 MiB: 85% small (1-12 KiB), 13.5% medium (16-128 KiB),
    1.5% large (the rest, split at random)."""
    small = [rng.randrange(1 << 10, 12 << 10) for _ in range(int(TREE_FILES * 0.85))]
    medium = [rng.randrange(16 << 10, 128 << 10) for _ in range(int(TREE_FILES * 0.135))]
    n_large = TREE_FILES - len(small) - len(medium)
    rest = TREE_BYTES - sum(small) - sum(medium)
    weights = [rng.uniform(0.5, 1.5) for _ in range(n_large)]
    large = [int(rest * w / sum(weights)) for w in weights]
    large[-1] += rest - sum(large)
    sizes = small + medium + large
    rng.shuffle(sizes)
    return sizes


def make_context(ctx: Path, seed: int, package: str) -> tuple[Path, list[Path]]:
    """Write the context; (the file the change scenario rewrites, every file of the tree)."""
    rng = random.Random(seed)
    src = ctx / "src"
    files: list[Path] = []
    for i, size in enumerate(_sizes(rng)):
        depth = rng.choice((0, 1, 2, 2, 3, 3, 4))
        parts = [f"{('pkg', 'mod', 'sub', 'part')[d]}{rng.randrange((6, 5, 4, 3)[d])}" for d in range(depth)]
        binary = size > (128 << 10) or (size > (16 << 10) and rng.random() < 0.5)
        path = src.joinpath(*parts, f"f{i:04d}.{'bin' if binary else 'txt'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size) if binary else _text(rng, size))
        files.append(path)
    for i in range(8):  # left out by .dockerignore
        path = src / f"pkg{i % 6}" / f"scratch{i}.tmp"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(64 << 10))
    (ctx / ".dockerignore").write_text("**/*.tmp\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS build\n"
        f"RUN apt-get update && apt-get install -y --no-install-recommends {package}\n"
        "COPY src /data\n"
        "ENV APP_HOME=/data APP_MODE=bench\n"
        'LABEL org.opencontainers.image.title="bench-build" org.opencontainers.image.version="1"\n'
        "WORKDIR /data\n"
        "EXPOSE 8080/tcp\n"
        "USER nobody\n"
        "ENV PATH=/data/bin:$PATH\n"
        "LABEL stage=build\n"
        "STOPSIGNAL SIGTERM\n"
        'ENTRYPOINT ["/bin/sh", "-c"]\n'
        'CMD ["ls /data"]\n'
        "\n"
        f"FROM {BASE_IMAGE}\n"
        "COPY --from=build /data /data\n")
    for path in [*ctx.rglob("*"), ctx]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    text = sorted(p for p in files if p.suffix == ".txt" and (4 << 10) <= p.stat().st_size)
    return text[len(text) // 2], files


def rewrite(path: Path, seed: int) -> None:
    """New content, same size (the change scenario)."""
    size = path.stat().st_size
    data = _text(random.Random(seed), size)
    if data == path.read_bytes():
        data = bytes([data[0] ^ 1]) + data[1:]
    path.write_bytes(data)


# ------------------------------------------------------------------ engines that build

class Builder:
    """What the rounds need of an engine: its build command, a cold start, the built image's ID."""

    label = ""
    tag = ""
    base_ids: set[str]
    env: dict[str, str] | None

    def build_argv(self, ctx: Path) -> list[str]:
        raise NotImplementedError

    def image_ids(self) -> set[str]:
        raise NotImplementedError

    def image_id(self) -> str:
        raise NotImplementedError

    def prune_cache(self) -> None:
        raise NotImplementedError

    def remove_images(self, ids: list[str]) -> None:
        raise NotImplementedError

    def make_cold(self) -> None:
        self.prune_cache()
        extra = sorted(self.image_ids() - self.base_ids)
        if extra:
            self.remove_images(extra)
        left = self.image_ids() - self.base_ids
        if left:
            raise RuntimeError(f"{self.label}: images left after the clean-up for a cold build: {sorted(left)}")


def _adopt_base(engine: Any) -> None:
    """The engines' constructors import the tarball as ``busybox``: name it bench-debian:bookworm."""
    sh(engine.cli("tag", "busybox", BASE_IMAGE), engine.env)
    sh(engine.cli("rmi", "busybox"), engine.env)  # one of two names: untags


class DockyardBuilder(Dockyard, Builder):
    label = "dockyard"
    tag = "bench-build:dy"

    def __init__(self, base: Path, tar: Path) -> None:
        super().__init__(base, tar)  # compiles src first, imports the tarball
        if subprocess.run(self.cli("build", "--help"), env=self.env, capture_output=True).returncode != 0:
            raise RuntimeError("`dockyard build` does not exist yet: run with --engines buildah,docker")
        _adopt_base(self)
        self.base_ids = self.image_ids()

    def build_argv(self, ctx: Path) -> list[str]:
        return self.cli("build", "-t", self.tag, "--progress", "plain", str(ctx))

    def image_ids(self) -> set[str]:
        return set(sh(self.cli("images", "-a", "-q", "--no-trunc"), self.env).split())

    def image_id(self) -> str:
        return sh(self.cli("inspect", "--type", "image", "-f", "{{.Id}}", self.tag), self.env).strip()

    def prune_cache(self) -> None:
        sh(self.cli("builder", "prune", "-a", "-f"), self.env)

    def remove_images(self, ids: list[str]) -> None:
        sh(self.cli("rmi", "-f", *ids), self.env)


class BuildahBuilder(Podman, Builder):
    """buildah, in the private containers-storage bench/run.py's Podman sets up (podman imports
    the base there; buildah builds from it)."""

    label = "buildah"
    tag = "bench-build:buildah"

    def __init__(self, base: Path, tar: Path) -> None:
        super().__init__(base, tar)
        _adopt_base(self)
        driver = sh(self.cli("info", "--format", "{{.Store.GraphDriverName}}"), self.env).strip()
        self.buildah_flags = ["--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                              "--storage-driver", driver]
        tmp = self.base / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = {**self.env, "TMPDIR": str(tmp)}
        self.base_ids = self.image_ids()

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", *self.buildah_flags, *args]

    def build_argv(self, ctx: Path) -> list[str]:
        return self.buildah("bud", "--layers", "--pull=never", "-t", self.tag, str(ctx))

    def image_ids(self) -> set[str]:
        return set(sh(self.buildah("images", "-a", "-q", "--no-trunc"), self.env).split())

    def image_id(self) -> str:
        return sh(self.buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", self.tag),
                  self.env).strip()

    def prune_cache(self) -> None:
        sh(self.buildah("rm", "-a"), self.env)  # working containers a killed build left

    def remove_images(self, ids: list[str]) -> None:
        sh(self.buildah("rmi", "-f", *ids), self.env)

    def close(self) -> None:
        sh(self.buildah("rm", "-a"), self.env, check=False)
        super().close()


class DockerBuilder(NetDocker, Builder):
    """bench/net.py's private dockerd (docker0, iptables: RUN reaches the mirror) with BuildKit."""

    label = "buildkit"
    tag = "bench-build:bk"

    def __init__(self, base: Path, tar: Path) -> None:
        super().__init__(base, tar)
        _adopt_base(self)
        self.env = {**self.env, "DOCKER_BUILDKIT": "1"}
        self.base_ids = self.image_ids()

    def build_argv(self, ctx: Path) -> list[str]:
        return self.cli("build", "-t", self.tag, "--progress", "plain", str(ctx))

    def image_ids(self) -> set[str]:
        return set(sh(self.cli("images", "-a", "-q", "--no-trunc"), self.env).split())

    def image_id(self) -> str:
        return sh(self.cli("image", "inspect", "-f", "{{.Id}}", self.tag), self.env).strip()

    def prune_cache(self) -> None:
        sh(self.cli("builder", "prune", "-a", "-f"), self.env)

    def remove_images(self, ids: list[str]) -> None:
        sh(self.cli("rmi", "-f", *ids), self.env)


MAKERS = {"dockyard": DockyardBuilder, "buildah": BuildahBuilder, "docker": DockerBuilder}


# ------------------------------------------------------------------ rounds

def timed_build(b: Builder, ctx: Path, log: Path) -> float:
    argv = b.build_argv(ctx)
    with open(log, "wb") as out:
        start = time.perf_counter()
        try:
            result = subprocess.run(argv, env=b.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{b.label}: build took more than {BUILD_TIMEOUT} s: {' '.join(argv)}") from None
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        tail = "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{b.label}: build failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return elapsed


def run_rounds(builders: list[Builder], ctx: Path, changed: Path, rounds: int, seed: int,
               logs: Path) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    times: dict[str, dict[str, list[float]]] = {b.label: {s: [] for s, _ in SCENARIOS} for b in builders}
    notes: list[str] = []
    for r in range(rounds):
        order = builders[r % len(builders):] + builders[:r % len(builders)]
        print(f"round {r + 1}/{rounds}: {', '.join(b.label for b in order)}", flush=True)
        ids: dict[str, str] = {}
        for scenario, title in SCENARIOS:
            if scenario == "change":
                rewrite(changed, seed * 1000 + r + 1)
            for b in order:
                if scenario == "cold":
                    b.make_cold()
                t = timed_build(b, ctx, logs / f"r{r + 1}-{b.label}-{scenario}.log")
                times[b.label][scenario].append(t)
                image = b.image_id()
                if scenario == "noop" and image != ids[b.label]:
                    notes.append(f"round {r + 1}: {b.label}'s no-op rebuild made a new image ({image[:19]})")
                if scenario == "change" and image == ids[b.label]:
                    raise RuntimeError(f"{b.label}: the rebuild after the change gave the same image {image}: "
                                       "the changed file was not seen")
                ids[b.label] = image
                print(f"  {title:<17} {b.label:<9} {t:>7.2f} s", flush=True)
    return times, notes


# ------------------------------------------------------------------ main

def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def report(medians: dict[str, dict[str, float]]) -> None:
    cols = [LABELS[e] for e in ENGINES]
    print(f"{'scenario (s, median)':<22}" + "".join(f"{c:>10}" for c in cols)
          + f"{'dy/buildah':>12}{'dy/buildkit':>13}  targets")
    for scenario, title in SCENARIOS:
        cells = [medians.get(c, {}).get(scenario) for c in cols]
        mine = medians.get("dockyard", {}).get(scenario)
        targets = ", ".join(f"vs {LABELS[e]} <= {TARGETS[scenario, e]:.2f}"
                            for e in ("buildah", "docker") if (scenario, e) in TARGETS)
        print(f"{title:<22}" + "".join(f"{c:>10.2f}" if c is not None else f"{'-':>10}" for c in cells)
              + f"{_ratio(mine, cells[1]):>12}{_ratio(mine, cells[2]):>13}  {targets}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (cold, no-op, one-file change) per engine")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated engines to run, of {','.join(ENGINES)} (docker = BuildKit)")
    parser.add_argument("--package", default="less", help="the one package the RUN step installs")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated context")
    parser.add_argument("--cache-dir", default="/var/cache/dockyard-test", help="where the base tarball is cached")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON line at the end")
    parser.add_argument("--logs", metavar="DIR", help="keep every build's output in DIR (default: a temp dir, removed)")
    args = parser.parse_args()
    chosen = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(chosen) - set(ENGINES))
    if unknown or not chosen or args.rounds < 1:
        parser.error(f"--engines takes some of {','.join(ENGINES)}; --rounds >= 1" +
                     (f" (unknown: {','.join(unknown)})" if unknown else ""))
    chosen = [e for e in ENGINES if e in chosen]
    if os.geteuid() != 0:
        print("bench/build.py needs root", file=sys.stderr)
        return 2
    missing = [tool for e, tool in (("buildah", "buildah"), ("buildah", "podman")) if e in chosen
               and not shutil.which(tool)]
    if "docker" in chosen and not (Path(DOCKERD).exists() and Path(DOCKER).exists()):
        missing.append("docker.io")
    if missing:
        print(f"not installed: {' '.join(missing)} (apt-get install {' '.join(missing)})", file=sys.stderr)
        return 2
    # Every timed process runs with bytecode, as an installed package does (MACHINE.md, Python);
    # the Dockyard engine compiles src before its first command.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "dockyard")],
                   stdout=subprocess.DEVNULL, check=False)
    signal.signal(signal.SIGTERM, _interrupted)

    tar = Path(base_tarball(args.cache_dir))
    print(f"base: {tar} ({tar.stat().st_size / 1e6:.0f} MB) as {BASE_IMAGE}")
    host = HostNet()
    if "docker" in chosen and "docker0" in host.links:
        print("docker0 exists: another dockerd owns it; stop it or leave docker out (--engines)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-build-"))
    mounted = _hugetlb_fix() if "buildah" in chosen else False
    builders: list[Any] = []
    times: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    context_info: dict[str, Any] = {}
    failed = False
    try:
        ctx = base / "context"
        started = time.monotonic()
        changed, files = make_context(ctx, args.seed, args.package)
        context_info = {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "seed": args.seed,
                        "package": args.package, "changed": str(changed.relative_to(ctx))}
        print(f"context: {context_info['files']} files, {context_info['bytes'] / (1 << 20):.1f} MiB in src/ "
              f"(+8 ignored *.tmp), made in {time.monotonic() - started:.1f} s; the change rewrites "
              f"{context_info['changed']} ({changed.stat().st_size} bytes)")
        for name in chosen:
            started = time.monotonic()
            builders.append(MAKERS[name](base, tar))  # a set-up failure stops the benchmark
            print(f"{LABELS[name]}: set up, base imported, in {time.monotonic() - started:.1f} s", flush=True)
        logs = Path(args.logs).resolve() if args.logs else base / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        print(f"{len(builders)} engines, {args.rounds} rounds, interleaved; wall time of each build in s")
        times, notes = run_rounds(builders, ctx, changed, args.rounds, args.seed, logs)
    except BaseException as e:  # report, clean up, then the summary of what was measured
        print(f"benchmark failed: {e}" if not isinstance(e, KeyboardInterrupt) else "interrupted", file=sys.stderr)
        failed = True
    finally:
        close_all(builders, label="label")
        remove_base(base, mounted)
        left = host.restore()
        # Rules and chains tagged dockyard are left alone (bench/net.py's rule): another dockyard
        # root, a test running meanwhile, may have added them; dockyard's own went with its reset.
        theirs = [line for line in left if _ours_to_keep(line)]
        left = [line for line in left if not _ours_to_keep(line)]
        if left:
            print("host network state NOT as it was:", file=sys.stderr)
            for line in left:
                print(f"  {line}", file=sys.stderr)
        else:
            print("host network state restored (links, iptables, ip6tables, sysctls as before)")
        if theirs:
            print(f"left alone: {len(theirs)} dockyard-tagged changes to links or iptables made meanwhile "
                  "(another dockyard root on this host)")

    medians = {label: {s: statistics.median(v) for s, v in per.items() if v} for label, per in times.items()}
    print()
    report(medians)
    for note in notes:
        print(f"note: {note}")
    if args.json:
        ratios = {}
        for scenario, _ in SCENARIOS:
            mine = medians.get("dockyard", {}).get(scenario)
            for other in ("buildah", "buildkit"):
                theirs = medians.get(other, {}).get(scenario)
                if mine and theirs:
                    ratios[f"{scenario}:dockyard/{other}"] = round(mine / theirs, 3)
        print(json.dumps({"rounds": args.rounds, "seconds": medians, "runs": times, "ratios": ratios,
                          "context": context_info, "notes": notes, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
