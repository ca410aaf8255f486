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

from dockyard.cli.imageviews import (  # noqa: E402,F401 - the names other modules use
    HISTORY_HEADERS, HISTORY_TABLE, IMAGE_HEADERS, IMAGE_TABLE, IMAGE_TABLE_DIGESTS, history_rows, image_rows,
    parse_filters, split_familiar)

DANGLING_WARNING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
ALL_WARNING = ("WARNING! This will remove all images without at least one container associated to them.\n"
               "Are you sure you want to continue?")


# ---- images ---------------------------------------------------------------------------


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
    from dockyard.cli import imageviews

    imageviews.images(common.engine(), all_, digests, filters, format_, no_trunc, quiet, repository)


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


@click.command()
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-H", "--human", type=bool, default=True, show_default=True, help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.argument("name", metavar="IMAGE")
def history(format_: str | None, human: bool, no_trunc: bool, quiet: bool, name: str) -> None:
    """Show the history of an image."""
    from dockyard.cli import imageviews

    imageviews.history(common.engine(), format_, human, no_trunc, quiet, name)


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
