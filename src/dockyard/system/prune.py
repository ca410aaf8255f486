"""``system prune``: stopped containers, unused networks, (with ``volumes``) unused anonymous volumes, dangling
images (every unused one with ``all``), and what dead processes left, in Docker's order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.images.service import PruneReport

FILTERS = frozenset({"label", "until"})


@dataclass
class SystemPruneReport:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: "PruneReport | None" = None
    build_cache: list[str] = field(default_factory=list)
    reclaimed: int = 0


def check_filters(filters: Mapping[str, Sequence[str]], volumes: bool) -> None:
    """Refuse what Docker refuses, before anything is asked or removed."""
    for key in filters:
        if key not in FILTERS:
            raise DockyardError(f"invalid filter '{key}'")
    if volumes and "until" in filters:
        raise DockyardError('The "until" filter is not supported with "--volumes"')


def prune(engine: "Engine", all: bool = False, volumes: bool = False,
          filters: Mapping[str, Sequence[str]] | None = None) -> SystemPruneReport:
    """Remove what ``system prune`` removes; filters (``until``, ``label``) apply to
    containers, images and leftovers (and ``label`` to volumes: ``until`` is refused there,
    as Docker does)."""
    filters = {k: list(v) for k, v in (filters or {}).items() if v}
    check_filters(filters, volumes)
    labels = filters.get("label", [])
    report = SystemPruneReport()
    report.containers, freed = engine.containers.prune(filters)
    report.reclaimed += freed
    report.networks = engine.networks.prune(filters)
    engine.networks.reclaim()   # namespaces and veths of containers that are not running
    if volumes:
        report.volumes, freed = engine.volumes.prune(filters={"label": labels} if labels else None)
        report.reclaimed += freed
    if not labels:
        # Build cache: entries whose layers no image holds (every entry with ``all``), as Docker's
        # system prune drops dangling build cache; then what builds killed -9 left.
        from dockyard.build.builder import reclaim as reclaim_builds
        from dockyard.build.cache import BuildCache
        from dockyard.images.service import _until

        reclaim_builds(engine)
        removed = BuildCache(engine).prune(all=all, until=_until(filters.get("until")))
        report.build_cache = [k.partition(":")[2][:25] for k, _ in removed]
        report.reclaimed += sum(size for _, size in removed)
    report.images = engine.images.prune(all=all, filters=filters)
    report.reclaimed += report.images.reclaimed
    if not labels:
        # What an ``rm`` killed after it dropped the row left: image prune does not look there.
        from dockyard.images.service import _until
        from dockyard.system.leftovers import collect_dirs

        dirs = collect_dirs(engine, remove=True, until=_until(filters.get("until")))
        report.images.leftovers += dirs
        report.reclaimed += sum(item.size for item in dirs)
    return report
