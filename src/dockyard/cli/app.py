"""The click side of the ``dockyard`` command: the top-level group, whose subcommands are
imported on first use (the table of them is ``dockyard.cli.main.COMMANDS``).

Imported only when the fast path (``cli/fastpath.py``) hands over: click alone costs
~20-35 ms of start-up here.
"""

from __future__ import annotations

import importlib
import os

import click

from dockyard.cli.main import COMMANDS


_COMPLETING = "_DOCKYARD_COMPLETE" in os.environ


class LazyGroup(click.Group):
    """A group that resolves ``name -> "module:attr"`` only when the command is used."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            target = self.lazy[name][0]
            module_name, _, attr = target.partition(":")
            command = getattr(importlib.import_module(module_name), attr)
            if _COMPLETING:   # the shell asks what may follow: container, image... names too
                from dockyard.cli.completion import attach

                attach(command)
            return command
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table, so `--help` imports no command module.
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--root", envvar="DOCKYARD_ROOT", help="Root directory of persistent state (default /var/lib/dockyard).")
@click.option("--runroot", envvar="DOCKYARD_RUNROOT", help="Directory of runtime state (default /run/dockyard).")
@click.option("--debug", "-D", is_flag=True, envvar="DOCKYARD_DEBUG", help="Show tracebacks on errors.")
@click.option("--log-level", "-l", default="info", metavar="string",
              type=click.Choice(["debug", "info", "warn", "error", "fatal"]),
              help='Set the logging level ("debug"|"info"|"warn"|"error"|"fatal") (default "info").')
@click.option("--host", "-H", "hosts", multiple=True, metavar="list",
              help="Daemon socket(s) to connect to (needs the Engine API service, which comes later).")
@click.option("--config", "config_dir", metavar="string",
              help='Location of client config files, where credentials live (default "~/.docker").')
@click.option("--version", "-v", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _param, value: _print_version(ctx) if value else None,
              help="Print version information and quit.")
@click.pass_context
def cli(ctx: click.Context, root: str | None, runroot: str | None, debug: bool, log_level: str,
        hosts: tuple[str, ...], config_dir: str | None) -> None:
    """A Docker-compatible container engine and OCI image registry."""
    import os

    from dockyard.cli.common import State

    for host in hosts:
        if host not in DEFAULT_HOSTS:
            from dockyard.errors import DockyardError

            raise DockyardError("-H/--host: the dockyard CLI runs the engine itself, no daemon; tools that need a "
                                 "daemon reach it through `dockyard system service` (their DOCKER_HOST)")
    if config_dir:
        os.environ["DOCKER_CONFIG"] = config_dir   # read where credentials are looked up (config.docker_config_dir)
    if log_level == "debug":
        debug = True
    ctx.obj = State(root=root, runroot=runroot, debug=debug)


# The host a client talks to with no -H: dockyard's CLI calls the engine directly.
DEFAULT_HOSTS = ("unix:///var/run/docker.sock", "unix:///run/docker.sock", "unix:///run/dockyard/docker.sock")


def _print_version(ctx: click.Context) -> None:
    from dockyard.system.version import banner

    click.echo(banner())
    ctx.exit(0)
