"""The ``dockyard`` command: a click group whose subcommands are imported on first use.

Start-up cost matters (``ps``/``run`` are typed all day), so this module imports
only click; each command's module, and the heavy libraries behind it, load when
that command runs. Help for the top level comes from the table below, not from
importing every command.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

# name -> (module:attribute, one-line help). Groups are listed the same way.
COMMANDS: dict[str, tuple[str, str]] = {
    "pull": ("dockyard.cli.distribution:pull", "Download an image from a registry"),
    "push": ("dockyard.cli.distribution:push", "Upload an image to a registry"),
    "login": ("dockyard.cli.distribution:login", "Log in to a registry"),
    "logout": ("dockyard.cli.distribution:logout", "Log out from a registry"),
    "images": ("dockyard.cli.images:images", "List images"),
    "tag": ("dockyard.cli.images:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("dockyard.cli.images:rmi", "Remove one or more images"),
    "history": ("dockyard.cli.images:history", "Show the history of an image"),
    "save": ("dockyard.cli.images:save", "Save one or more images to a tar archive"),
    "load": ("dockyard.cli.images:load", "Load an image from a tar archive or STDIN"),
    "import": ("dockyard.cli.images:import_", "Import the contents from a tarball to create an image"),
    "inspect": ("dockyard.cli.containers:inspect", "Return low-level information on objects"),
    "image": ("dockyard.cli.groups:image", "Manage images"),
    "run": ("dockyard.cli.containers:run", "Create and run a new container from an image"),
    "create": ("dockyard.cli.containers:create", "Create a new container"),
    "start": ("dockyard.cli.containers:start", "Start one or more stopped containers"),
    "stop": ("dockyard.cli.containers:stop", "Stop one or more running containers"),
    "kill": ("dockyard.cli.containers:kill", "Kill one or more running containers"),
    "restart": ("dockyard.cli.containers:restart", "Restart one or more containers"),
    "rm": ("dockyard.cli.containers:rm", "Remove one or more containers"),
    "ps": ("dockyard.cli.containers:ps", "List containers"),
    "logs": ("dockyard.cli.containers:logs", "Fetch the logs of a container"),
    "exec": ("dockyard.cli.containers:exec_", "Execute a command in a running container"),
    "wait": ("dockyard.cli.containers:wait", "Block until one or more containers stop, then print their exit codes"),
    "rename": ("dockyard.cli.containers:rename", "Rename a container"),
    "pause": ("dockyard.cli.containers:pause", "Pause all processes within one or more containers"),
    "unpause": ("dockyard.cli.containers:unpause", "Unpause all processes within one or more containers"),
    "top": ("dockyard.cli.containers:top", "Display the running processes of a container"),
    "stats": ("dockyard.cli.containers:stats", "Display container(s) resource usage statistics"),
    "attach": ("dockyard.cli.containers:attach", "Attach to a running container's input and output"),
    "cp": ("dockyard.cli.containers:cp", "Copy files/folders between a container and the local filesystem"),
    "container": ("dockyard.cli.groups:container", "Manage containers"),
    "volume": ("dockyard.cli.groups:volume", "Manage volumes"),
    "system": ("dockyard.cli.groups:system", "Manage dockyard"),
    "registry": ("dockyard.cli.registry:registry", "Run and manage an OCI registry"),
}


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
            return getattr(importlib.import_module(module_name), attr)
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
@click.version_option(package_name="dockyard", prog_name="dockyard")
@click.pass_context
def cli(ctx: click.Context, root: str | None, runroot: str | None, debug: bool) -> None:
    """A Docker-compatible container engine and OCI image registry."""
    from dockyard.cli.common import State

    ctx.obj = State(root=root, runroot=runroot, debug=debug)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv or sys.argv) or "-D" in (argv or sys.argv) or bool(os.environ.get("DOCKYARD_DEBUG"))
    try:
        cli.main(args=argv, prog_name="dockyard", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code if e.exit_code != 2 else 125 if _is_run() else 2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # `dockyard images | head`: the reader went away; not an error worth a message.
        sys.stderr.close()
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        from dockyard.errors import DockyardError

        if debug:
            raise
        if isinstance(e, DockyardError):
            click.echo(f"Error: {e.message}", err=True)
            sys.exit(e.exit_code)
        click.echo(f"Error: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


def _is_run() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] in ("run", "create")
