"""`make demo`: the private-registry lab as far as dockyard goes today.

Builds a busybox image from Debian's busybox-static, starts dockyard's own registry
server (`dockyard registry serve`; in a container once containers land), then runs the lab's
commands with `dockyard` in place of `docker`: tag, push, remove, pull back, and the
registry's catalog and tag list with curl-like requests. Every command is printed
before it runs, with its output, so the demo reads like the lab.

State goes to a demo root (default /var/tmp/dockyard-demo, or DOCKYARD_ROOT), made
fresh on each run; the registry is stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dockyard.testing.images import busybox_rootfs_tar  # noqa: E402
from dockyard.testing.registry import free_port  # noqa: E402


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


@contextlib.contextmanager
def registry_server(port: int, storage: Path) -> Iterator[str]:
    """`dockyard registry serve` on 127.0.0.1:port; yields its address, stops it by PID."""
    address = f"127.0.0.1:{port}"
    print(f"$ dockyard registry serve --addr {address} --root {storage} &", flush=True)
    log = open(storage.parent / "registry.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr", address,
                             "--root", str(storage)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"demo failed: the registry did not start; see {log.name}")
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> int:
    root = Path(os.environ.get("DOCKYARD_ROOT", "/var/tmp/dockyard-demo"))
    shutil.rmtree(root, ignore_errors=True)
    os.environ["DOCKYARD_ROOT"] = str(root)
    os.environ.setdefault("DOCKER_CONFIG", str(root.parent / (root.name + "-docker-config")))
    print(f"dockyard root for this demo: {root}")

    with tempfile.TemporaryDirectory(prefix="dockyard-demo-") as work, \
            registry_server(port_5000_or_free(), Path(work) / "registry") as registry:
        show("A busybox image from Debian's busybox-static")
        tarball = busybox_rootfs_tar(Path(work) / "busybox.tar")
        dockyard("import", "--change", 'CMD ["sh"]', str(tarball), "busybox:latest")
        dockyard("images")

        target = f"{registry}/busybox:latest"
        show(f"A private registry at {registry}: tag, push, remove, pull back")
        dockyard("tag", "busybox:latest", target)
        dockyard("push", target)
        dockyard("rmi", target, "busybox:latest")
        dockyard("images")
        dockyard("pull", target)
        dockyard("images", "--digests")

        show("What the registry holds")
        curl(f"http://{registry}/v2/_catalog")
        curl(f"http://{registry}/v2/busybox/tags/list")

        show("Inspect, history and disk usage")
        dockyard("image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}} {{.Config.Cmd}}", target)
        dockyard("history", target)
        dockyard("system", "df")
    print("\ndemo finished; the registry is stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
