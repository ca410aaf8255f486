#!/usr/bin/env python3
"""`make demo`: the private-registry lab as far as dockyard goes today.

Builds a busybox image from Debian's busybox-static, starts a local registry
(CNCF distribution until dockyard's own registry server lands), then runs the lab's
commands with `dockyard` in place of `docker`: tag, push, remove, pull back, and the
registry's catalog and tag list with curl-like requests. Every command is printed
before it runs, with its output, so the demo reads like the lab.

State goes to a demo root (default /var/tmp/dockyard-demo, or DOCKYARD_ROOT), made
fresh on each run; the registry is stopped at the end.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dockyard.testing.images import busybox_rootfs_tar  # noqa: E402
from dockyard.testing.registry import DistributionRegistry, free_port  # noqa: E402


def show(title: str) -> None:
    print(f"\n\033[1m## {title}\033[0m", flush=True)


def dockyard(*args: str) -> None:
    print(f"$ dockyard {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "dockyard", *args])
    if result.returncode != 0:
        raise SystemExit(f"demo failed: dockyard {shlex.join(args)} exited {result.returncode}")


def curl(url: str) -> None:
    print(f"$ curl {url}", flush=True)
    with urllib.request.urlopen(url, timeout=10) as resp:
        print(resp.read().decode().strip(), flush=True)


def port_5000_or_free() -> int:
    """The lab's port 5000 when it is free, any free port otherwise."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 5000))
            return 5000
        except OSError:
            return free_port()


def main() -> int:
    root = Path(os.environ.get("DOCKYARD_ROOT", "/var/tmp/dockyard-demo"))
    shutil.rmtree(root, ignore_errors=True)
    os.environ["DOCKYARD_ROOT"] = str(root)
    os.environ.setdefault("DOCKER_CONFIG", str(root.parent / (root.name + "-docker-config")))
    print(f"dockyard root for this demo: {root}")

    with tempfile.TemporaryDirectory(prefix="dockyard-demo-") as work, \
            DistributionRegistry(port=port_5000_or_free()) as registry:
        show("A busybox image from Debian's busybox-static")
        tarball = busybox_rootfs_tar(Path(work) / "busybox.tar")
        dockyard("import", "--change", 'CMD ["sh"]', str(tarball), "busybox:latest")
        dockyard("images")

        target = f"{registry.address}/busybox:latest"
        show(f"A private registry at {registry.address}: tag, push, remove, pull back")
        dockyard("tag", "busybox:latest", target)
        dockyard("push", target)
        dockyard("rmi", target, "busybox:latest")
        dockyard("images")
        dockyard("pull", target)
        dockyard("images", "--digests")

        show("What the registry holds")
        curl(f"{registry.url}/v2/_catalog")
        curl(f"{registry.url}/v2/busybox/tags/list")

        show("Inspect, history and disk usage")
        dockyard("image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}} {{.Config.Cmd}}", target)
        dockyard("history", target)
        dockyard("system", "df")
    print("\ndemo finished; the registry is stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
