"""The ``dockyard`` command: a click group whose subcommands are imported on first use.

Start-up cost matters (``ps``/``run`` are typed all day), so this module imports
nothing heavy. The hottest commands (``run``, ``exec``, ``ps``, ``stop``, ``rm``, ``logs``)
with arguments the hand parser in ``fastpath.py`` fully understands run without click;
everything else (help, unknown flags, errors of usage) goes to the click group in
``app.py``, whose command modules, and the heavy libraries behind them, load when that
command runs. Help for the top level comes from the table below, not from importing
every command.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

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
    "build": ("dockyard.cli.build:build", "Build an image from a Dockerfile"),
    "builder": ("dockyard.cli.build:builder", "Manage builds"),
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
    "network": ("dockyard.cli.groups:network", "Manage networks"),
    "port": ("dockyard.cli.networks:port", "List port mappings or a specific mapping for the container"),
    "system": ("dockyard.cli.groups:system", "Manage dockyard"),
    "registry": ("dockyard.cli.registry:registry", "Run and manage an OCI registry"),
    "version": ("dockyard.cli.info:version", "Show the dockyard version information"),
    "info": ("dockyard.cli.info:info", "Display system-wide information"),
    "diff": ("dockyard.cli.changes:diff", "Inspect changes to files or directories on a container's filesystem"),
    "commit": ("dockyard.cli.changes:commit", "Create a new image from a container's changes"),
    "export": ("dockyard.cli.changes:export", "Export a container's filesystem as a tar archive"),
    "update": ("dockyard.cli.changes:update", "Update configuration of one or more containers"),
    "completion": ("dockyard.cli.completion:completion", "Print a shell completion script (bash, zsh, fish)"),
    "events": ("dockyard.cli.events:events", "Get real time events from the server"),
    "compose": ("dockyard.cli.compose:compose", "Define and run multi-container applications (compose-spec)"),
    "pod": ("dockyard.cli.pods:pod", "Manage pods (containers sharing namespaces)"),
    "kube": ("dockyard.cli.kube:kube", "Generate Kubernetes YAML from containers, pods and projects; play it"),
    "manifest": ("dockyard.cli.manifest:manifest", "Manage multi-platform image indexes (manifest lists)"),
}


def __getattr__(name: str):  # noqa: ANN202 - ``cli`` and ``LazyGroup`` live in app.py (they need click)
    if name in ("cli", "LazyGroup"):
        from dockyard.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Global options that take a value (so that ``--version`` is found behind them).
_VALUE_OPTIONS = ("--root", "--runroot", "-H", "--host", "-l", "--log-level", "--config", "--context", "-c")


def _wants_version(args: list[str]) -> bool:
    """``-v``/``--version`` among the global options before the command (docker's rule)."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        if args[i] in ("-v", "--version"):
            return True
        i += 2 if args[i] in _VALUE_OPTIONS else 1
    return False


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if _wants_version(args):
        # Here, before click or the fast path: `dockyard --version` costs little more than Python.
        from dockyard.system.version import banner

        sys.stdout.write(banner() + "\n")
        sys.stdout.flush()
        sys.exit(0)
    debug = "--debug" in (argv or sys.argv) or "-D" in (argv or sys.argv) or bool(os.environ.get("DOCKYARD_DEBUG"))
    if not os.environ.get("DOCKYARD_NO_FASTPATH"):
        from dockyard.cli import fastpath

        call = fastpath.parse(sys.argv[1:] if argv is None else list(argv))
        if call is not None:
            _run_fast(call, debug)
    _run_click(argv, debug)


def _run_fast(call: Callable[[], None], debug: bool) -> None:
    """Run a fast-path command with the error handling of ``_run_click`` (click's own
    included: its ``main`` turns ^C into "Aborted." and a closed pipe into exit 1).

    Then leave without the interpreter's teardown (~13 ms of module and GC clean-up that
    ``run`` and ``exec`` would pay after their container is done): the output is flushed
    here, every DB write is committed, and the only threads left are daemon pumps."""
    try:
        _run_fast_body(call, debug)
    except SystemExit as e:
        code = e.code
        if debug or not (code is None or isinstance(code, int)):
            raise
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - a closed pipe and the like: the usual exit reports it
            raise e from None
        os._exit(code or 0)


def _run_fast_body(call: Callable[[], None], debug: bool) -> None:
    try:
        try:
            call()
        except (EOFError, KeyboardInterrupt):
            sys.stderr.write("\n")
            sys.stderr.flush()
            sys.stderr.write("Aborted.\n")
            sys.stderr.flush()
            sys.exit(130)
        except OSError as e:
            import errno

            if e.errno != errno.EPIPE:
                raise
            from click.utils import PacifyFlushWrapper

            sys.stdout = PacifyFlushWrapper(sys.stdout)  # type: ignore[assignment]
            sys.stderr = PacifyFlushWrapper(sys.stderr)  # type: ignore[assignment]
            sys.exit(1)
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        _internal(e, debug)
    sys.exit(0)


def _internal(e: Exception, debug: bool) -> None:
    from dockyard.errors import DockyardError

    if debug:
        raise e
    if isinstance(e, DockyardError):
        _error_line(f"{getattr(e, 'print_prefix', 'Error: ')}{e.message}")  # template errors print bare
        sys.exit(e.exit_code)
    _error_line(f"Error: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")
    sys.exit(1)


def _error_line(text: str) -> None:
    """As click.echo to stderr, without importing click on the fast path: stdout first, so
    the error follows whatever the command printed."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _run_click(argv: list[str] | None, debug: bool) -> None:
    import click

    from dockyard.cli.app import cli

    try:
        cli.main(args=argv, prog_name="dockyard", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as e:
        from dockyard.cli import usage

        sys.exit(usage.report(e))
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
        _internal(e, debug)
    sys.exit(0)


def _is_run() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] in ("run", "create")
