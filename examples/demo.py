"""`make demo`: both labs, with dockyard in place of docker, on this machine.

1. The images (examples/images.py): debian:bookworm from debootstrap and busybox imported, then
   registry, nginx:alpine, mariadb:10 and wordpress:5 built from Debian packages.
2. Lab 1 (examples/registry/lab.sh): a registry in a container on port 5000; nginx:alpine tagged,
   pushed, removed and pulled back; the catalog and tags with curl.
3. Lab 2 (examples/wordpress/lab.sh): MariaDB, WordPress and Nginx, the site published on
   http://127.0.0.1/.

Settings from the environment: HTTP_PORT (80), REGISTRY_PORT (5000), DEMO_VARIANT (ip, network or
link: how the WordPress containers find each other), DOCKYARD_ROOT (dockyard's own default), and
DOCKYARD_RUNTIME (pyrunc, crun or runc). `make demo-down` (this script with --down) removes the
labs' containers, network and volumes; the images and the build cache stay, so the next
`make demo` takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def show(title: str) -> None:
    print(f"\n\033[1m# {title}\033[0m", flush=True)


def lab_env() -> dict[str, str]:
    """The labs' scripts call `dockyard`: this interpreter's, whatever PATH says."""
    command = Path(sys.executable).with_name("dockyard")
    env = dict(os.environ)
    env["DOCKYARD"] = str(command) if command.exists() else (shutil.which("dockyard") or "dockyard")
    return env


def run(what: str, argv: list[str], hint: str = "") -> None:
    result = subprocess.run(argv, env=lab_env())
    if result.returncode != 0:
        raise SystemExit(f"\ndemo failed at {what} (exit {result.returncode}){hint}")


def down() -> int:
    run("the WordPress lab's removal", [str(EXAMPLES / "wordpress" / "lab.sh"), "down"])
    run("the registry lab's removal", [str(EXAMPLES / "registry" / "lab.sh"), "down"])
    print("demo removed (images and build cache kept: `dockyard system prune -a` removes them)")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--down"]:
        return down()
    started = time.monotonic()
    http_port = os.environ.get("HTTP_PORT", "80")
    registry_port = os.environ.get("REGISTRY_PORT", "5000")
    variant = os.environ.get("DEMO_VARIANT", "ip")
    root = os.environ.get("DOCKYARD_ROOT")
    if root:
        print(f"dockyard root for this demo: {root}")

    show("The images, built here from Debian packages")
    run("the images", [sys.executable, str(EXAMPLES / "images.py"), "--progress", "plain"])
    images_took = time.monotonic() - started

    show(f"Lab 1: a private registry on port {registry_port}")
    run("the registry lab", [str(EXAMPLES / "registry" / "lab.sh")],
        f"\nIf port {registry_port} is taken, pick another: REGISTRY_PORT=5001 make demo")

    show(f"Lab 2: WordPress behind Nginx on port {http_port} (containers wired by {variant})")
    run("the WordPress lab", [str(EXAMPLES / "wordpress" / "lab.sh"), variant],
        f"\nIf port {http_port} is taken, pick another: HTTP_PORT=8080 make demo")

    url = f"http://127.0.0.1:{http_port}/" if http_port != "80" else "http://127.0.0.1/"
    print(f"""
\033[1mdemo up in {time.monotonic() - started:.0f} s (images {images_took:.0f} s)\033[0m
  WordPress:  {url}   (the installer on the first visit)
  Registry:   curl http://127.0.0.1:{registry_port}/v2/_catalog
  Look at it: dockyard ps · dockyard logs wp · dockyard exec -it db mysql -u wp -p (password 123)
  Remove it:  make demo-down""")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
