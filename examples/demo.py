"""`make demo`: both labs, with dockyard in place of docker, on this machine.

1. The images (examples/images.py): debian:bookworm from debootstrap and busybox imported, then
   registry, nginx:alpine, mariadb:10 and wordpress:5 built from Debian packages.
2. Lab 1 (examples/registry/lab.sh): a registry in a container on port 5000; nginx:alpine tagged,
   pushed, removed and pulled back; the catalog and tags with curl.
3. Lab 2: MariaDB, WordPress and Nginx, the site published on http://127.0.0.1/, as one compose
   project: `dockyard compose -f examples/wordpress/compose.yaml up -d --wait` (mariadb
   health-gated). DEMO_VARIANT=ip|network|link runs the lesson's plain-command walk-through
   instead (examples/wordpress/lab.sh, wiring the containers that way).

Settings from the environment: HTTP_PORT (80), REGISTRY_PORT (5000), DEMO_VARIANT (compose, the
default; ip, network, link: how lab.sh wires the WordPress containers),
DOCKYARD_ROOT (dockyard's own default), and DOCKYARD_RUNTIME (pyrunc, crun or runc).
`make demo-down` (this script with --down) removes the labs' containers, networks and volumes
(the compose project's too); the images and the build cache stay, so the next `make demo`
takes seconds.
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


COMPOSE_FILE = EXAMPLES / "wordpress" / "compose.yaml"


def compose(*args: str) -> list[str]:
    return [lab_env()["DOCKYARD"], "compose", "-f", str(COMPOSE_FILE), *args]


def compose_lab(http_port: str) -> None:
    """Lab 2 as one compose project: up --wait returns once MariaDB is healthy and the rest
    started; then the site through Nginx, as lab.sh checks it."""
    import urllib.error
    import urllib.request

    print(f"\n\033[1m$ HTTP_PORT={http_port} dockyard compose -f examples/wordpress/compose.yaml up -d --wait\033[0m",
          flush=True)
    run("the WordPress compose project", compose("up", "-d", "--wait"),
        f"\nIf port {http_port} is taken, pick another: HTTP_PORT=8080 make demo")
    print("\033[1m$ dockyard compose -f examples/wordpress/compose.yaml ps\033[0m", flush=True)
    run("compose ps", compose("ps"))
    url = f"http://127.0.0.1:{http_port}/"
    deadline = time.monotonic() + 120
    while True:   # WordPress answers once Apache is up and its database reachable
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                page = resp.read().decode(errors="replace")
            break
        except (OSError, urllib.error.URLError) as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"\ndemo failed: {url} did not answer: {e}")
            time.sleep(0.5)
    if "WordPress" not in page:
        raise SystemExit(f"\ndemo failed: {url} is not WordPress: {page[:600]}")
    print(f"ok: Nginx on port {http_port} proxies to WordPress", flush=True)


def down() -> int:
    run("the WordPress lab's removal", [str(EXAMPLES / "wordpress" / "lab.sh"), "down"])
    result = subprocess.run(compose("down", "-v"), env=lab_env(), stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"\ndemo failed at the compose project's removal: {result.stderr.strip()}")
    run("the registry lab's removal", [str(EXAMPLES / "registry" / "lab.sh"), "down"])
    print("demo removed (images and build cache kept: `dockyard system prune -a` removes them)")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--down"]:
        return down()
    started = time.monotonic()
    http_port = os.environ.get("HTTP_PORT", "80")
    registry_port = os.environ.get("REGISTRY_PORT", "5000")
    variant = os.environ.get("DEMO_VARIANT", "compose")
    root = os.environ.get("DOCKYARD_ROOT")
    if root:
        print(f"dockyard root for this demo: {root}")

    show("The images, built here from Debian packages")
    run("the images", [sys.executable, str(EXAMPLES / "images.py"), "--progress", "plain"])
    images_took = time.monotonic() - started

    show(f"Lab 1: a private registry on port {registry_port}")
    run("the registry lab", [str(EXAMPLES / "registry" / "lab.sh")],
        f"\nIf port {registry_port} is taken, pick another: REGISTRY_PORT=5001 make demo")

    if variant == "compose":
        show(f"Lab 2: WordPress behind Nginx on port {http_port}, one compose project")
        compose_lab(http_port)
    else:
        show(f"Lab 2: WordPress behind Nginx on port {http_port} (containers wired by {variant})")
        run("the WordPress lab", [str(EXAMPLES / "wordpress" / "lab.sh"), variant],
            f"\nIf port {http_port} is taken, pick another: HTTP_PORT=8080 make demo")

    url = f"http://127.0.0.1:{http_port}/" if http_port != "80" else "http://127.0.0.1/"
    if variant == "compose":
        look = ("cd examples/wordpress; dockyard compose ps · dockyard compose logs wordpress · "
                "dockyard compose exec mariadb mysql -u wp -p (password 123)")
    else:
        look = "dockyard ps · dockyard logs wp · dockyard exec -it db mysql -u wp -p (password 123)"
    print(f"""
\033[1mdemo up in {time.monotonic() - started:.0f} s (images {images_took:.0f} s)\033[0m
  WordPress:  {url}   (the installer on the first visit)
  Registry:   curl http://127.0.0.1:{registry_port}/v2/_catalog
  Look at it: {look}
  Remove it:  make demo-down""")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
