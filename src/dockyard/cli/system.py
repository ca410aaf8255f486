"""``system df``: disk usage of images (containers, volumes and build cache are empty rows
until those parts exist), in Docker's table shapes."""

from __future__ import annotations

import sys

import click

from dockyard.cli import common

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGES_VERBOSE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                     "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")


def reclaimable(total: int, used: int) -> str:
    """``4.264MB (100%)``: what removing every unused object would free."""
    from dockyard.cli.formatting import human_size

    free = total - used
    if total > 0:
        return f"{human_size(free)} ({free * 100 // total}%)"
    return human_size(free)


def summary_rows(usage) -> list[dict[str, str]]:
    from dockyard.cli.formatting import human_size

    active = [i for i in usage.images if i.containers > 0]
    # Space held by images in use: all of theirs except what they share (counted once below).
    used = sum(i.size - i.shared_size for i in active if i.shared_size >= 0)
    empty = {"TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}
    return [
        {"Type": "Images", "TotalCount": str(len(usage.images)), "Active": str(len(active)),
         "Size": human_size(usage.layers_size), "Reclaimable": reclaimable(usage.layers_size, used)},
        {"Type": "Containers", **empty},
        {"Type": "Local Volumes", **empty},
        {"Type": "Build Cache", **empty},
    ]


@click.command()
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
def df(format_: str | None, verbose: bool) -> None:
    """Show dockyard disk usage."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import IMAGE_HEADERS, image_rows

    usage = common.engine().images.disk_usage()
    if not verbose:
        template = format_ if format_ and format_ != "table" else DF_TABLE
        sys.stdout.write(fmt.render_rows(template, summary_rows(usage), DF_HEADERS))
        return
    out = ["Images space usage:\n\n"]
    out.append(fmt.render_rows(DF_IMAGES_VERBOSE, image_rows(usage.images, digests=False, trunc=True), IMAGE_HEADERS))
    out.append("\nContainers space usage:\n\n")
    out.append(fmt.tabulate([["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]]))
    out.append("\nLocal Volumes space usage:\n\n")
    out.append(fmt.tabulate([["VOLUME NAME", "LINKS", "SIZE"]]))
    out.append(f"\nBuild cache usage: {fmt.human_size(0)}\n\n")
    out.append(fmt.tabulate([["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]))
    sys.stdout.write("".join(out))
