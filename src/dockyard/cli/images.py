"""Image commands: ``images``, ``tag``, ``rmi``, ``history``, ``save``, ``load``, ``import``,
``inspect``, ``image inspect``, ``image prune``.

Parsing and printing only; the verbs live in ``engine.images``. Only click is imported
at module level (``images`` is typed all day): the engine and formatting load inside
the commands.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.images.service import DeleteRecord, HistoryEntry, ImageSummary

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

DANGLING_WARNING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
ALL_WARNING = ("WARNING! This will remove all images without at least one container associated to them.\n"
               "Are you sure you want to continue?")


def parse_filters(values: Sequence[str]) -> dict[str, list[str]]:
    """``--filter key=value`` (repeatable) into {key: [values]}."""
    from dockyard.errors import DockyardError

    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise DockyardError(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key.strip().lower(), []).append(rest)
    return out


# ---- images ---------------------------------------------------------------------------


def split_familiar(name: str) -> tuple[str, str]:
    """``nginx:latest`` -> (nginx, latest); ``nginx@sha256:..`` -> (nginx, sha256:..)."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, digest
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1:]
    return name, ""


def image_rows(images: Sequence["ImageSummary"], digests: bool, trunc: bool, now: float | None = None) -> list[dict[str, str]]:
    """One row per repository:tag (and per digest with ``digests``), as Docker's imageFormat."""
    from dockyard.cli import formatting as fmt

    rows: list[dict[str, str]] = []
    for image in images:
        created = image.created
        base = {
            "Containers": "N/A" if image.containers < 0 else str(image.containers),
            "CreatedAt": fmt.go_time_string(created) if created is not None else "",
            "CreatedSince": fmt.time_ago(created, now),
            "ID": fmt.short_id(image.id) if trunc else image.id,
            "SharedSize": "N/A" if image.shared_size < 0 else fmt.human_size(image.shared_size),
            "Size": fmt.human_size(image.size, 3),
            "UniqueSize": "N/A" if image.shared_size < 0 else fmt.human_size(image.size - image.shared_size),
            "VirtualSize": fmt.human_size(image.size),
        }

        def add(repo: str, tag: str, digest: str) -> None:
            row = {**base, "Digest": digest, "Repository": repo, "Tag": tag}
            rows.append(dict(sorted(row.items())))  # Go marshals the row as a map: sorted keys

        if not image.repo_tags and not image.repo_digests:
            add("<none>", "<none>", "<none>")
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
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


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER", help="Filter output based on conditions provided.")
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
def images(all_: bool, digests: bool, filters: tuple[str, ...], format_: str | None, no_trunc: bool,
           quiet: bool, repository: str | None) -> None:
    """List images."""
    from dockyard.cli import formatting as fmt

    wanted = parse_filters(filters)
    if repository:
        wanted.setdefault("reference", []).append(repository)
    summaries = common.engine().images.list(wanted, all=all_)
    rows = image_rows(summaries, digests, trunc=not no_trunc)
    if quiet:
        seen: dict[str, None] = {}
        for row in rows:
            seen.setdefault(row["ID"], None)
        _write("".join(f"{i}\n" for i in seen))
        return
    template = format_ or (IMAGE_TABLE_DIGESTS if digests else IMAGE_TABLE)
    if template == "table":
        template = IMAGE_TABLE_DIGESTS if digests else IMAGE_TABLE
    _write(fmt.render_rows(template, rows, IMAGE_HEADERS))


# ---- tag, rmi -------------------------------------------------------------------------


@click.command()
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from dockyard.cli import quick

    quick.tag(common.engine(), source, target)


from dockyard.cli.quick import delete_lines  # noqa: E402,F401 - prune prints the same lines


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
def rmi(force: bool, no_prune: bool, names: tuple[str, ...]) -> None:
    """Remove one or more images."""
    from dockyard.cli import quick

    quick.rmi(common.engine(), force, no_prune, names)


# ---- inspect, history -----------------------------------------------------------------


def _inspect(names: Sequence[str], format_: str | None, missing: str) -> None:
    from dockyard.cli import quick

    quick.image_inspect(common.engine(), names, format_, missing)


@click.command()
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.option("--type", "type_", type=click.Choice(["image"]), help="Only inspect objects of the given type.")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ID [NAME|ID...]")
def inspect(format_: str | None, size: bool, type_: str | None, names: tuple[str, ...]) -> None:
    """Return low-level information on objects (images, for now)."""
    _inspect(names, format_, "No such image" if type_ == "image" else "No such object")


@click.command()
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
def image_inspect(format_: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more images."""
    _inspect(names, format_, "No such image")


def history_rows(entries: Sequence["HistoryEntry"], human: bool, trunc: bool, now: float | None = None) -> list[dict[str, str]]:
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


@click.command()
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-H", "--human", type=bool, default=True, show_default=True, help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.argument("name", metavar="IMAGE")
def history(format_: str | None, human: bool, no_trunc: bool, quiet: bool, name: str) -> None:
    """Show the history of an image."""
    from dockyard.cli import formatting as fmt

    rows = history_rows(common.engine().images.history(name), human, trunc=not no_trunc)
    if quiet:
        _write("".join(r["ID"] + "\n" for r in rows))
        return
    template = format_ if format_ and format_ != "table" else HISTORY_TABLE
    _write(fmt.render_rows(template, rows, HISTORY_HEADERS))


# ---- save, load, import ---------------------------------------------------------------


@click.command()
@click.option("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT.")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
def save(output: str | None, names: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from dockyard.errors import DockyardError

    engine = common.engine()
    if not output:
        if sys.stdout.isatty():
            raise DockyardError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        engine.images.save(names, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    _save_atomically(engine, names, output)


def _save_atomically(engine: Any, names: Sequence[str], output: str) -> None:
    """Write to a temp file beside ``output`` and rename: a failed save leaves no half tar."""
    from dockyard.atomicfile import atomic_write
    from dockyard.errors import DockyardError

    try:
        with atomic_write(output, mode=0o600) as f:
            engine.images.save(names, f)
    except OSError as e:
        raise DockyardError(f"failed to save image: {output}: {e.strerror}") from None


@click.command()
@click.option("-i", "--input", "input_", metavar="FILE", help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    from dockyard.errors import DockyardError

    engine = common.engine()
    if input_:
        try:
            stream = open(input_, "rb")
        except OSError as e:
            raise DockyardError(f"open {input_}: {(e.strerror or str(e)).lower()}") from None
    else:
        if sys.stdin.isatty():
            raise DockyardError("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    with stream:
        lines = engine.images.load(stream, quiet=quiet)
    _write("".join(line + "\n" for line in lines))


@click.command(name="import")
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION", help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", metavar="STRING", help="Set commit message for imported image.")
@click.option("--platform", "platform_", metavar="PLATFORM", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.argument("source", metavar="file|URL|-")
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
def import_(changes: tuple[str, ...], message: str, platform_: str | None, source: str, repository: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from dockyard.oci import platform as platforms

    wanted = platforms.parse(platform_) if platform_ else None
    stream: Any = sys.stdin.buffer if source == "-" else source
    image = common.engine().images.import_(stream, repository, list(changes), message, wanted)
    click.echo(image.id)


# ---- prune ----------------------------------------------------------------------------


def confirm(message: str) -> bool:
    """Docker's prompt: the question, ``[y/N]``, and only ``y`` or ``Y`` means yes."""
    click.echo(f"{message} [y/N] ", nl=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "y"


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("--filter", "filters", multiple=True, metavar="FILTER", help='Provide filter values (e.g. "until=<timestamp>").')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused images."""
    from dockyard.cli import formatting as fmt

    wanted = parse_filters(filters)
    if not force and not confirm(ALL_WARNING if all_ else DANGLING_WARNING):
        return  # Docker cancels quietly: nothing removed, nothing more to say
    from dockyard.cli.system import leftovers_section, note_skipped

    engine = common.engine()
    report = engine.images.prune(all=all_, filters=wanted)
    out = ""
    if report.deleted:
        out = "Deleted Images:\n" + delete_lines(report.deleted, "untagged: ", "deleted: ") + "\n"
    out += leftovers_section(engine, report.leftovers)
    _write(out + f"Total reclaimed space: {fmt.human_size(report.reclaimed)}\n")
    note_skipped(report.skipped)


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
