"""``diff``, ``commit``, ``export`` and ``update`` (also under ``container``): parsing and
printing; the verbs are ``engine.containers.diff/commit/export/update``."""

from __future__ import annotations

import sys
from typing import Any

import click

from dockyard.cli import common
from dockyard.errors import DockyardError


class DockerBoolCommand(click.Command):
    """Docker's boolean flags take ``--flag=false`` as well as a bare ``--flag``: rewritten
    here to click's ``--no-flag``/``--flag`` pairs (``bool_flags``: long name -> short)."""

    bool_flags: dict[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out = []
        for arg in args:
            if arg == "--":
                out += args[len(out):]
                break
            name, sep, value = arg.partition("=")
            long = next((f for f, short in self.bool_flags.items() if name in (f, short)), None)
            if long and sep:
                if value.lower() in ("false", "0", "f"):
                    arg = "--no-" + long[2:]
                elif value.lower() in ("true", "1", "t"):
                    arg = long
            out.append(arg)
        return super().parse_args(ctx, out)


class _CommitCommand(DockerBoolCommand):
    bool_flags = {"--pause": "-p"}


# ---- diff ---------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["--help"]})
@click.argument("container")
def diff(container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    changes = common.engine().containers.diff(container)
    sys.stdout.write("".join(f"{kind} {path}\n" for kind, path in changes))


# ---- commit -------------------------------------------------------------------------------


@click.command(cls=_CommitCommand, context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--author", default="", metavar="string", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, metavar="list", help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", metavar="string", help="Commit message.")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit (default true).")
@click.argument("container")
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
def commit(author: str, changes: tuple[str, ...], message: str, pause: bool, container: str,
           repository: str | None) -> None:
    """Create a new image from a container's changes."""
    image = common.engine().containers.commit(container, repository, list(changes), message, author, pause)
    click.echo(image.id)


# ---- export -------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-o", "--output", metavar="string", help="Write to a file, instead of STDOUT.")
@click.argument("container")
def export(output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    containers = common.engine().containers
    if not output:
        if sys.stdout.isatty():
            raise DockyardError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        containers.get(container)   # a missing container fails before any byte goes out
        try:
            containers.export(container, _Stdout(sys.stdout.buffer))
            sys.stdout.buffer.flush()
        except _ReaderGone:
            raise BrokenPipeError from None   # `export c | head`: main's quiet exit
        return
    import os

    from dockyard.atomicfile import atomic_write

    containers.get(container)
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):   # docker's command.ValidateOutputPath
        raise DockyardError(f'failed to export container: invalid output path: directory "{directory}" does not exist')
    try:
        with atomic_write(output, 0o600) as f:
            containers.export(container, f)
    except OSError as e:
        raise DockyardError(f"failed to export container: {e.strerror or e}") from None


class _ReaderGone(Exception):
    """The reader of stdout went away (not an OSError, so the packer does not report it)."""


class _Stdout:
    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, data: Any) -> int:
        try:
            return self.out.write(data)
        except BrokenPipeError:
            raise _ReaderGone from None


# ---- update -------------------------------------------------------------------------------


def _ram(value: str | None, flag: str) -> int | None:
    """run's size parsing (ops._ram), its error as a usage error of ``flag``."""
    from dockyard.cli.ops import _ram as ram
    from dockyard.errors import DockyardError

    try:
        return ram(value)
    except DockyardError as e:
        raise click.BadParameter(e.message, param_hint=f"'{flag}'") from None


def _nano_cpus(value: str | None) -> int | None:
    """Docker's NanoCPUs: a decimal number of CPUs, in billionths."""
    if value is None:
        return None
    from fractions import Fraction

    try:
        nano = Fraction(value) * 10 ** 9
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"failed to parse {value} as a rational number", param_hint="'--cpus'") from None
    if nano.denominator != 1:
        raise click.BadParameter("value is too precise", param_hint="'--cpus'")
    return int(nano)


def parse_restart(policy: str) -> dict[str, Any]:
    """opts.ParseRestartPolicy: ``name[:count]``."""
    parts = policy.split(":")
    if len(parts) > 2:
        raise DockyardError("invalid restart policy format")
    count = 0
    if len(parts) == 2:
        try:
            count = int(parts[1])
        except ValueError:
            raise DockyardError("maximum retry count must be an integer") from None
    return {"Name": parts[0], "MaximumRetryCount": count}


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("--blkio-weight", type=click.IntRange(0, 65535), metavar="uint16",
              help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0).")
@click.option("--cpu-period", type=int, metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) period.")
@click.option("--cpu-quota", type=int, metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) quota.")
@click.option("-c", "--cpu-shares", type=int, metavar="int", help="CPU shares (relative weight).")
@click.option("--cpus", metavar="decimal", help="Number of CPUs.")
@click.option("--cpuset-cpus", metavar="string", help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("--cpuset-mems", metavar="string", help="MEMs in which to allow execution (0-3, 0,1).")
@click.option("-m", "--memory", metavar="bytes", help="Memory limit.")
@click.option("--memory-reservation", metavar="bytes", help="Memory soft limit.")
@click.option("--memory-swap", metavar="bytes", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap.")
@click.option("--pids-limit", type=int, metavar="int", help="Tune container pids limit (set -1 for unlimited).")
@click.option("--restart", metavar="string", help="Restart policy to apply when a container exits.")
@click.argument("containers_", metavar="CONTAINER [CONTAINER...]", nargs=-1, required=True)
def update(containers_: tuple[str, ...], restart: str | None, **kw: Any) -> None:
    """Update configuration of one or more containers."""
    from dockyard.cli.ops import each

    resources: dict[str, Any] = {}
    for flag, key, value in (("--memory", "Memory", _ram(kw["memory"], "--memory")),
                             ("--memory-swap", "MemorySwap", _ram(kw["memory_swap"], "--memory-swap")),
                             ("--memory-reservation", "MemoryReservation",
                              _ram(kw["memory_reservation"], "--memory-reservation")),
                             ("--cpus", "NanoCpus", _nano_cpus(kw["cpus"])),
                             ("--cpu-shares", "CpuShares", kw["cpu_shares"]),
                             ("--cpu-period", "CpuPeriod", kw["cpu_period"]),
                             ("--cpu-quota", "CpuQuota", kw["cpu_quota"]),
                             ("--cpuset-cpus", "CpusetCpus", kw["cpuset_cpus"]),
                             ("--cpuset-mems", "CpusetMems", kw["cpuset_mems"]),
                             ("--pids-limit", "PidsLimit", kw["pids_limit"]),
                             ("--blkio-weight", "BlkioWeight", kw["blkio_weight"])):
        if value is not None:
            resources[key] = value
    if not resources and restart is None:
        raise DockyardError("you must provide one or more flags when using this command")
    policy = parse_restart(restart) if restart is not None else None
    containers = common.engine().containers
    warnings: list[str] = []
    each(containers_, lambda name: warnings.extend(containers.update(name, resources, policy)))
    if warnings:   # docker prints them after the names, on stdout
        click.echo("\n".join(warnings))
