"""``system df``: what images, containers, volumes and leftovers hold, in Docker's terms.

Leftovers (what dead processes left, and blobs and layers no image uses) count with the
images: they are image data, and ``image prune`` reclaims them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.fsutil import tree_size

if TYPE_CHECKING:
    from dockyard.containers.store import ContainerRecord
    from dockyard.engine import Engine
    from dockyard.images.service import DiskUsage
    from dockyard.build.cache import CacheUsage
    from dockyard.system.leftovers import Collected
    from dockyard.volumes import Volume


@dataclass
class ContainerUsage:
    record: "ContainerRecord"
    size: int                   # bytes of its writable layer (Docker's SizeRw)
    running: bool


@dataclass
class VolumeUsage:
    volume: "Volume"
    size: int
    links: int                  # containers that mount it


@dataclass
class SystemUsage:
    images: "DiskUsage"
    leftovers: "Collected"
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    build_cache: "CacheUsage | None" = None   # always set by usage()


def usage(engine: "Engine") -> SystemUsage:
    from dockyard.system.leftovers import collect

    containers = []
    for record in engine.containers.list(all=True):
        upper = os.path.join(engine.containers.container_dir(record.id), "upper")
        containers.append(ContainerUsage(record, tree_size(upper), record.running))
    links: dict[str, int] = {}
    for c in containers:
        for m in c.record.config.get("Mounts") or []:
            if m.get("Type") == "volume":
                links[m.get("Name", "")] = links.get(m.get("Name", ""), 0) + 1
    volumes = [VolumeUsage(v, tree_size(v.mountpoint), links.get(v.name, 0)) for v in engine.volumes.list()]
    from dockyard.build.cache import BuildCache

    return SystemUsage(images=engine.images.disk_usage(), leftovers=collect(engine, remove=False, dirs=True),
                       containers=containers, volumes=volumes, build_cache=BuildCache(engine).usage())
