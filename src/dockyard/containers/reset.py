"""``system reset``: remove everything dockyard created, for a clean machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from dockyard.fsutil import remove_cgroup

if TYPE_CHECKING:
    from dockyard.engine import Engine


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    points = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point.startswith(prefix):
                    points.append(point)
    except OSError:
        pass
    return sorted(points, key=len, reverse=True)


def system_reset(engine: "Engine") -> Iterator[str]:
    """Containers (their processes, shims, mounts, cgroups), volumes, images, state."""
    for pod in engine.pods.reset():   # first: no pod row may outlive its infra container
        yield f"Deleted pod: {pod}"
    for cid in engine.containers.reset():
        yield f"Deleted container: {cid}"
    from dockyard.build.builder import reset as reset_builds

    for what in reset_builds(engine):
        yield f"Deleted: {what}"
    for bridge in engine.networks.reset():
        yield f"Deleted bridge: {bridge}"
    for root in (engine.settings.runroot, engine.root):
        for point in _mounts_below(Path(root)):
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
    # Our cgroup parents (containers' cgroups are gone with them; the parents stay empty).
    parent = os.environ.get("DOCKYARD_CGROUP_PARENT", "dockyard")
    remove_cgroup(parent)
    engine.close()
    for path in (Path(engine.settings.runroot), Path(engine.root)):
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            yield f"Deleted: {path}"
