"""``system df``, ``system prune`` and ``system check``: printing only (the work is in
dockyard.system). Leftovers of dead processes count with the images in ``df`` (prune of
images reclaims them) and are listed in ``df -v``; the build cache row stays empty until
builds exist."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.store.owned import Leftover
    from dockyard.system.usage import SystemUsage

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGES_VERBOSE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.VirtualSize}}"
                     "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
DF_CONTAINERS_VERBOSE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}"
                         "\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
                     "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}
DF_VOLUMES_VERBOSE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
LEFTOVERS_VERBOSE = "table {{.Kind}}\t{{.Path}}\t{{.Size}}"
LEFTOVER_HEADERS = {"Kind": "KIND", "Path": "PATH", "Size": "SIZE"}


def reclaimable(total: int, used: int) -> str:
    """``4.264MB (100%)``: what removing every unused object would free."""
    from dockyard.cli.formatting import human_size

    free = total - used
    if total > 0:
        return f"{human_size(free)} ({free * 100 // total}%)"
    return human_size(free)


def summary_rows(usage: "SystemUsage") -> list[dict[str, str]]:
    from dockyard.cli.formatting import human_size

    images = usage.images
    active = [i for i in images.images if i.containers > 0]
    # Space held by images in use: all of theirs except what they share (counted once below).
    used = sum(i.size - i.shared_size for i in active if i.shared_size >= 0)
    images_total = images.layers_size + usage.leftovers.size  # leftovers are image data nobody uses
    containers_total = sum(c.size for c in usage.containers)
    volumes_total = sum(v.size for v in usage.volumes)
    rows = [
        {"Type": "Images", "TotalCount": str(len(images.images)), "Active": str(len(active)),
         "Size": human_size(images_total), "Reclaimable": reclaimable(images_total, used)},
        {"Type": "Containers", "TotalCount": str(len(usage.containers)),
         "Active": str(sum(c.running for c in usage.containers)), "Size": human_size(containers_total),
         "Reclaimable": reclaimable(containers_total, sum(c.size for c in usage.containers if c.running))},
        {"Type": "Local Volumes", "TotalCount": str(len(usage.volumes)),
         "Active": str(sum(v.links > 0 for v in usage.volumes)), "Size": human_size(volumes_total),
         "Reclaimable": reclaimable(volumes_total, sum(v.size for v in usage.volumes if v.links > 0))},
        {"Type": "Build Cache", "TotalCount": str(usage.build_cache.entries), "Active": "0",
         "Size": human_size(usage.build_cache.size),
         "Reclaimable": human_size(usage.build_cache.reclaimable)},
    ]
    return [dict(sorted(r.items())) for r in rows]   # Docker's {{json .}} lists the fields sorted


@click.command()
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
def df(format_: str | None, verbose: bool) -> None:
    """Show dockyard disk usage."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import IMAGE_HEADERS, image_rows
    from dockyard.system.usage import usage as system_usage

    engine = common.engine()
    usage = system_usage(engine)
    if not verbose:
        template = format_ if format_ and format_ != "table" else DF_TABLE
        sys.stdout.write(fmt.render_rows(template, summary_rows(usage), DF_HEADERS))
        return
    out = ["Images space usage:\n\n"]
    out.append(fmt.render_rows(DF_IMAGES_VERBOSE, image_rows(usage.images.images, digests=False, trunc=True),
                               {**IMAGE_HEADERS, "VirtualSize": "SIZE"}))
    if usage.leftovers.items or usage.leftovers.skipped:  # dockyard's own section: only when there is one
        out.append(f"\nLeftovers of interrupted commands and unused image data: "
                   f"{fmt.human_size(usage.leftovers.size)}\n\n")
        out.append(fmt.render_rows(LEFTOVERS_VERBOSE, leftover_rows(engine, usage.leftovers.items), LEFTOVER_HEADERS))
        if usage.leftovers.skipped:
            out.append(f"({usage.leftovers.skipped})\n")
    out.append("\nContainers space usage:\n\n")
    out.append(fmt.render_rows(DF_CONTAINERS_VERBOSE, container_rows(usage), CONTAINER_HEADERS))
    out.append("\nLocal Volumes space usage:\n\n")
    volumes = [{"Name": v.volume.name, "Links": str(v.links), "Size": fmt.human_size(v.size)} for v in usage.volumes]
    out.append(fmt.render_rows(DF_VOLUMES_VERBOSE, volumes, VOLUME_HEADERS))
    out.append(f"\nBuild cache usage: {fmt.human_size(usage.build_cache.size)}\n\n")
    from dockyard.build.cache import BuildCache
    import time

    now = time.time()
    rows = [["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]
    for entry in BuildCache(engine).entries():
        rows.append([entry.key.partition(":")[2][:12], "regular", fmt.human_size(entry.size),
                     fmt.human_duration(now - entry.created) + " ago", fmt.human_duration(now - entry.last_used) + " ago",
                     "-", "true" if entry.shared else "false"])
    out.append(fmt.tabulate(rows))
    sys.stdout.write("".join(out))


def container_rows(usage: "SystemUsage") -> list[dict[str, str]]:
    from dockyard.cli import formatting as fmt
    from dockyard.cli.ops import ps_rows

    rows = ps_rows([c.record for c in usage.containers], trunc=True)
    for row, c in zip(rows, usage.containers):
        row["Size"] = fmt.human_size(c.size, 3)   # Docker: the writable layer alone, 3 digits
    return rows


def leftover_rows(engine: "Engine", items: Sequence["Leftover"]) -> list[dict[str, str]]:
    from dockyard.cli.formatting import human_size
    from dockyard.system.leftovers import describe

    rows = []
    for item in items:
        kind, _, path = describe(engine, item).partition(": ")
        rows.append({"Kind": kind, "Path": path, "Size": human_size(item.size)})
    return rows


def leftovers_section(engine: "Engine", items: Sequence["Leftover"]) -> str:
    """``Deleted Leftovers:`` and a line per item (``<kind>: <path>``), as prune prints it."""
    from dockyard.system.leftovers import describe

    if not items:
        return ""
    return "Deleted Leftovers:\n" + "".join(describe(engine, item) + "\n" for item in items) + "\n"


def note_skipped(skipped: str) -> None:
    """Say on stderr which part of the leftovers a prune left for later, and why."""
    if skipped:
        click.echo(f"Note: {skipped}; prune again when it is done.", err=True)


# ---- system prune -------------------------------------------------------------------------------

PRUNE_TEMPLATE = "WARNING! This will remove:\n{warnings}\n{filters}\nAre you sure you want to continue?"


def prune_warning(all_: bool, volumes: bool, filters: Sequence[str]) -> str:
    """Docker's confirmation text, naming what dockyard removes (and its leftovers of
    interrupted commands)."""
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        warnings.append("all anonymous volumes not used by at least one container")
    warnings.append("all images without at least one container associated to them" if all_ else
                    "all dangling images")
    warnings.append("all dangling build cache" if not all_ else "all build cache")
    warnings.append("leftovers of interrupted commands and image data no image uses")
    shown = ""
    if filters:
        shown = "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in sorted(filters))
    return PRUNE_TEMPLATE.format(warnings="\n".join(f"  - {w}" for w in warnings), filters=shown)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("--filter", "filters", multiple=True, metavar="FILTER", help='Provide filter values (e.g. "label=<key>=<value>").')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(all_: bool, volumes: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused data."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import confirm, delete_lines, parse_filters
    from dockyard.system.prune import check_filters, prune as system_prune

    wanted = parse_filters(filters)
    check_filters(wanted, volumes)
    if not force and not confirm(prune_warning(all_, volumes, filters)):
        return  # Docker cancels quietly
    engine = common.engine()
    report = system_prune(engine, all=all_, volumes=volumes, filters=wanted)
    out = []
    if report.containers:
        out.append("Deleted Containers:\n" + "".join(c + "\n" for c in report.containers) + "\n")
    if report.networks:
        out.append("Deleted Networks:\n" + "".join(n + "\n" for n in report.networks) + "\n")
    if report.volumes:
        out.append("Deleted Volumes:\n" + "".join(v + "\n" for v in report.volumes) + "\n")
    images = report.images
    if images is not None and images.deleted:
        out.append("Deleted Images:\n" + delete_lines(images.deleted, "untagged: ", "deleted: ") + "\n")
    if images is not None:
        out.append(leftovers_section(engine, images.leftovers))
    if report.build_cache:
        out.append("Deleted build cache objects:\n" + "".join(k + "\n" for k in report.build_cache) + "\n")
    out.append(f"Total reclaimed space: {fmt.human_size(report.reclaimed)}\n")
    sys.stdout.write("".join(out))
    if images is not None:
        note_skipped(images.skipped)


# ---- system check -------------------------------------------------------------------------------


@click.command()
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely: remove leftovers and orphans, "
              "drop records that point at nothing.")
def check(repair: bool) -> None:
    """Check the store: blobs, layers, images, containers and volumes (fsck)."""
    from dockyard.cli.formatting import human_size
    from dockyard.system.check import check as run_check, summary_counts

    report = run_check(common.engine(), repair=repair)
    out = [f.line() + "\n" for f in report.findings]
    out += [f"note: {note}\n" for note in report.notes]
    counts = summary_counts(report)
    checked = ", ".join(f"{n} {kind if n != 1 else kind.rstrip('s')}" for kind, n in report.checked.items())
    if not report.findings:
        result = "no problems found"
    else:
        result = f"{counts['errors']} error{'s' if counts['errors'] != 1 else ''}, " \
                 f"{counts['leftovers']} leftover{'s' if counts['leftovers'] != 1 else ''} " \
                 f"({human_size(counts['leftover_size'])})"
        if repair:
            result += f"; repaired {counts['repaired']}, {counts['remaining']} remain{'s' if counts['remaining'] == 1 else ''}"
        elif counts["remaining"]:
            result += "; `dockyard system check --repair` fixes what it safely can"
    out.append(f"Checked {checked}: {result}\n")
    sys.stdout.write("".join(out))
    if not report.clean:
        sys.exit(1)
