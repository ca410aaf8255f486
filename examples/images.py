"""`make images`: the labs' images, built here with `dockyard build` from Debian packages.

    .venv/bin/python examples/images.py [--no-cache] [--build-arg BASE=...] [NAME ...]

First the base images (examples/base/base.py: debian:bookworm from debootstrap, busybox from
busybox-static), then, FROM debian:bookworm:

    registry       examples/registry   dockyard's registry server on :5000 (context: the project)
    nginx:alpine   examples/nginx      nginx in the foreground, /etc/nginx/conf.d/default.conf
    mariadb:10     examples/mariadb    MARIADB_* variables, database initialised in /var/lib/mysql
    wordpress:5    examples/wordpress  Apache + mod_php on :80, WORDPRESS_DB_* variables

A second run reuses the base (imported again only when its tarball changed) and the build cache.
On a machine with Docker Hub, ``--build-arg BASE=docker.io/library/debian:bookworm`` builds the same
Dockerfiles FROM Docker's image instead (add ``--pull`` to fetch it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
PROJECT = EXAMPLES.parent

# name -> (Dockerfile, context)
IMAGES: dict[str, tuple[Path, Path]] = {
    "registry": (EXAMPLES / "registry" / "Dockerfile", PROJECT),
    "nginx:alpine": (EXAMPLES / "nginx" / "Dockerfile", EXAMPLES / "nginx"),
    "mariadb:10": (EXAMPLES / "mariadb" / "Dockerfile", EXAMPLES / "mariadb"),
    "wordpress:5": (EXAMPLES / "wordpress" / "Dockerfile", EXAMPLES / "wordpress"),
}


def build(name: str, extra: list[str]) -> float:
    dockerfile, context = IMAGES[name]
    argv = ["build", "-t", name, "-f", str(dockerfile.relative_to(context) if context == PROJECT else dockerfile),
            *extra, "."]
    print(f"$ (cd {context}; dockyard {' '.join(argv)})", flush=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dockyard", *argv], cwd=context)
    if result.returncode != 0:
        raise SystemExit(f"building {name} failed (exit {result.returncode})")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"images to build (default: all of {', '.join(IMAGES)})")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--pull", action="store_true")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--progress", default=None, help="auto, plain, tty or quiet (passed to dockyard build)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in IMAGES]
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}: choose from {', '.join(IMAGES)}")
    extra = [*(["--no-cache"] if args.no_cache else []), *(["--pull"] if args.pull else []),
             *[f"--build-arg={a}" for a in args.build_arg],
             *([f"--progress={args.progress}"] if args.progress else [])]
    if not any(a.startswith("BASE=") for a in args.build_arg):
        base = subprocess.run([sys.executable, str(EXAMPLES / "base" / "base.py")])
        if base.returncode != 0:
            raise SystemExit("making the base images failed")
    took = {name: build(name, extra) for name in (args.names or IMAGES)}
    print("built: " + ", ".join(f"{name} ({seconds:.1f} s)" for name, seconds in took.items()), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
