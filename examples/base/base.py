"""The base images the labs build FROM, made on this machine (no Docker Hub needed).

    .venv/bin/python examples/base/base.py [--force]

- ``debian:bookworm``: ``debootstrap --variant=minbase bookworm`` against the mirror the host's
  apt uses, cleaned as Docker's image is (no apt caches or lists); the tarball is cached in
  /var/cache/dockyard-test and rebuilt when older than a week (``dockyard.testing.debian``).
- ``busybox``: Debian's busybox-static and one symlink per applet.

Both go in with ``dockyard import``. An image is imported again only when its tarball changed
(the tarball's mtime is kept in a label): a re-import makes a new image ID, which would miss
every build-cache entry built on the old one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from dockyard.testing.debian import base_tarball  # noqa: E402
from dockyard.testing.images import busybox_rootfs_tar, find_busybox  # noqa: E402

SOURCE_LABEL = "org.dockyard.example.source"


def dockyard(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], text=True,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)


def imported_from(image: str) -> str | None:
    """The source stamp an earlier import recorded, None when the image is missing."""
    out = dockyard("image", "inspect", "--format", "{{index .Config.Labels \"" + SOURCE_LABEL + "\"}}", image,
                   capture=True)
    return out.stdout.strip() if out.returncode == 0 else None


def stamp(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{int(st.st_mtime)}"


def import_image(tarball: Path, image: str, cmd: str, force: bool, source: str) -> None:
    if not force and imported_from(image) == source:
        print(f"{image}: up to date ({tarball})", flush=True)
        return
    print(f"$ dockyard import {tarball} {image}", flush=True)
    result = dockyard("import", "--change", f"CMD {cmd}", "--change", f"LABEL {SOURCE_LABEL}={source}",
                      str(tarball), image)
    if result.returncode != 0:
        raise SystemExit(f"importing {image} failed (exit {result.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="import again even if unchanged")
    args = parser.parse_args(argv)
    debian = Path(base_tarball())
    import_image(debian, "debian:bookworm", '["bash"]', args.force, stamp(debian))
    busybox = find_busybox()
    with tempfile.TemporaryDirectory(prefix="dockyard-busybox-") as work:
        tarball = busybox_rootfs_tar(Path(work) / "busybox.tar", busybox)
        # The rootfs is rebuilt each time; what identifies it is the busybox binary it holds.
        import_image(tarball, "busybox:latest", '["sh"]', args.force, stamp(busybox))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
