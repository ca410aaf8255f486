"""The image listings (``images``, ``history``) without click, for the fast path and the click
commands alike: Docker's rows, tables and headers."""

from __future__ import annotations

import sys
import time

from dockyard.cli.common import parse_filters  # noqa: F401 - one parser for every --filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

    from dockyard.images.service import HistoryEntry, ImageSummary

IMAGE_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE", "Containers": "CONTAINERS",
}
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGE_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HISTORY_HEADERS = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
    "Size": "SIZE", "Comment": "COMMENT",
}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_CREATED_BY_WIDTH = 45


def split_familiar(name: str) -> tuple[str, str]:
    """``nginx:latest`` -> (nginx, latest); ``nginx@sha256:..`` -> (nginx, sha256:..)."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, digest
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1:]
    return name, ""


def image_rows(images: "Sequence[ImageSummary]", digests: bool, trunc: bool,
               now: "float | None" = None, table: bool = False) -> "list[dict[str, str]]":
    """One row per repository:tag (and per digest with ``digests``), as Docker's imageFormat.
    ``table``: only the default table's columns (no CreatedAt: its local time costs ~1 ms)."""
    # Not cli.formatting: it loads the template engine (~2 ms), which the default table does without.
    from dockyard.units import human_duration, human_size

    now = time.time() if now is None else now
    rows: "list[dict[str, str]]" = []
    for image in images:
        created = image.created
        base = {
            "Containers": "N/A" if image.containers < 0 else str(image.containers),
            "CreatedSince": "N/A" if created is None else human_duration(now - created) + " ago",  # time_ago
            "ID": _short_id(image.id) if trunc else image.id,
            "SharedSize": "N/A" if image.shared_size < 0 else human_size(image.shared_size),
            "Size": human_size(image.size, 3),
            "UniqueSize": "N/A" if image.shared_size < 0 else human_size(image.size - image.shared_size),
            "VirtualSize": human_size(image.size),
        }
        if not table:
            from dockyard.timefmt import go_time_string

            base["CreatedAt"] = go_time_string(created) if created is not None else ""

        def add(repo: str, tag: str, digest: str) -> None:
            row = {**base, "Digest": digest, "Repository": repo, "Tag": tag}
            rows.append(dict(sorted(row.items())))  # Go marshals the row as a map: sorted keys

        if not image.repo_tags and not image.repo_digests:
            add("<none>", "<none>", "<none>")
            continue
        repo_tags: "dict[str, list[str]]" = {}
        repo_digests: "dict[str, list[str]]" = {}
        for name in image.repo_tags:
            repo, tag = split_familiar(name)
            repo_tags.setdefault(repo, []).append(tag)
        for name in image.repo_digests:
            repo, digest = split_familiar(name)
            repo_digests.setdefault(repo, []).append(digest)
        for repo, tags in repo_tags.items():
            of_repo = repo_digests.pop(repo, [])  # a tagged repository's digests get no row of their own
            shown = of_repo if digests else []
            for tag in tags:
                for digest in shown or ["<none>"]:
                    add(repo, tag, digest)
        for repo, remaining in repo_digests.items():  # names with a digest only
            for digest in remaining if digests else ["<none>"]:
                add(repo, "<none>", digest)
    return rows


def images(engine: "object", all_: bool, digests: bool, filters: "Sequence[str]", format_: "str | None",
           no_trunc: bool, quiet: bool, repository: "str | None") -> None:
    wanted = parse_filters(filters)
    if repository:
        wanted.setdefault("reference", []).append(repository)
    summaries = engine.images.list(wanted, all=all_)  # type: ignore[attr-defined]
    template = format_ or "table"
    if template == "table":
        template = IMAGE_TABLE_DIGESTS if digests else IMAGE_TABLE
    default = template in (IMAGE_TABLE, IMAGE_TABLE_DIGESTS)
    rows = image_rows(summaries, digests, trunc=not no_trunc, table=default)
    if quiet:
        seen: "dict[str, None]" = {}
        for row in rows:
            seen.setdefault(row["ID"], None)
        sys.stdout.write("".join(f"{i}\n" for i in seen))
        return
    if default:   # what render_rows makes of the default tables, without the template engine
        columns = ("Repository", "Tag", "Digest", "ID", "CreatedSince", "Size") if digests else \
            ("Repository", "Tag", "ID", "CreatedSince", "Size")
        text = "\t".join(IMAGE_HEADERS[c] for c in columns) + "\n" + "".join(
            "\t".join(row[c] for c in columns) + "\n" for row in rows)
        sys.stdout.write(_tabulate([line.split("\t") for line in text.split("\n")[:-1]]))
        return
    from dockyard.cli import formatting as fmt

    sys.stdout.write(fmt.render_rows(template, rows, IMAGE_HEADERS))


def _short_id(image_id: str) -> str:
    """formatting.short_id (stringid.TruncateID), here so that the default table needs no formatting."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def _tabulate(rows: "list[list[str]]") -> str:
    """formatting.tabulate (Go's tabwriter as Docker sets it: min width 10, padding 3) for the
    default table, which so loads no template engine."""
    widths: "list[int]" = []
    for row in rows:
        for j, cell in enumerate(row[:-1]):
            w = max(len(cell) + 3, 10)
            if j == len(widths):
                widths.append(w)
            elif w > widths[j]:
                widths[j] = w
    return "".join("".join([cell.ljust(widths[j]) for j, cell in enumerate(row[:-1])] + row[-1:]) + "\n"
                   for row in rows)


def history_rows(entries: "Sequence[HistoryEntry]", human: bool, trunc: bool,
                 now: "float | None" = None) -> "list[dict[str, str]]":
    from dockyard.cli import formatting as fmt

    rows = []
    for e in entries:
        created_at = fmt.rfc3339(e.created) if e.created is not None else ""
        created_by = e.created_by.replace("\t", " ")
        rows.append({
            "Comment": e.comment,
            "CreatedAt": created_at,
            "CreatedBy": fmt.ellipsis(created_by, HISTORY_CREATED_BY_WIDTH) if trunc else created_by,
            "CreatedSince": fmt.time_ago(e.created, now) if human else created_at,
            "ID": fmt.short_id(e.id) if trunc and e.id != "<missing>" else e.id,
            "Size": fmt.human_size(e.size, 3) if human else str(e.size),
        })
    return rows


def history(engine: "object", format_: "str | None", human: bool, no_trunc: bool, quiet: bool, name: str) -> None:
    from dockyard.cli import formatting as fmt

    rows = history_rows(engine.images.history(name), human, trunc=not no_trunc)  # type: ignore[attr-defined]
    if quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return
    template = format_ if format_ and format_ != "table" else HISTORY_TABLE
    sys.stdout.write(fmt.render_rows(template, rows, HISTORY_HEADERS))
