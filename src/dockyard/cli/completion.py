"""``dockyard completion bash|zsh|fish``: a shell completion script, and the completion of
container, image, volume and network names behind it.

The script is click's (``_DOCKYARD_COMPLETE=<shell>_source dockyard`` prints the same): the
shell calls ``dockyard`` back with ``_DOCKYARD_COMPLETE=<shell>_complete``, click walks the
lazy groups to the command being typed, and ``attach`` (called by ``LazyGroup`` while
completing) gives that command's arguments the names they take.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_DOCKYARD_COMPLETE"


@click.command(context_settings={"help_option_names": ["--help"]})
@click.argument("shell", type=click.Choice(SHELLS), metavar="bash|zsh|fish")
def completion(shell: str) -> None:
    """Print a shell completion script (bash, zsh, fish).

    \b
    bash:  source <(dockyard completion bash)
    zsh:   source <(dockyard completion zsh)
    fish:  dockyard completion fish | source
    """
    from click.shell_completion import get_completion_class

    from dockyard.cli.app import cli

    cls = get_completion_class(shell)
    assert cls is not None   # every name in SHELLS is one of click's
    sys.stdout.write(cls(cli, {}, "dockyard", COMPLETE_VAR).source() + "\n")


# ---- names to complete ----------------------------------------------------------------------


def _engine(ctx: click.Context) -> Any:
    from dockyard import config
    from dockyard.engine import Engine

    params = ctx.find_root().params
    return Engine(config.load(params.get("root"), params.get("runroot")))


def container_names(engine: Any) -> list[str]:
    return sorted(r[0] for r in engine.db.execute("SELECT name FROM containers"))


def image_names(engine: Any) -> list[str]:
    from dockyard import reference

    out = []
    for (name,) in engine.db.execute("SELECT name FROM tags"):
        try:
            out.append(reference.parse(name).familiar())
        except Exception:  # noqa: BLE001 - a name the parser refuses is still worth offering
            out.append(name)
    return sorted(out)


def volume_names(engine: Any) -> list[str]:
    return sorted(v.name for v in engine.volumes.list())


def network_names(engine: Any) -> list[str]:
    return sorted(n.name for n in engine.networks.list())


KINDS: dict[str, Callable[[Any], list[str]]] = {"CONTAINER": container_names, "IMAGE": image_names,
                                                "VOLUME": volume_names, "NETWORK": network_names}
# Arguments without a metavar that names their kind, by parameter name.
_BY_NAME = {"container": "CONTAINER", "containers_": "CONTAINER", "image": "IMAGE", "network": "NETWORK"}


def kinds_of(param: click.Parameter) -> list[str]:
    """What an argument names: CONTAINER, IMAGE, VOLUME, NETWORK (``NAME|ID``: containers and images)."""
    metavar = (getattr(param, "metavar", None) or "").upper()
    found = [kind for kind in KINDS if kind in metavar]
    if not found and "NAME|ID" in metavar:
        found = ["CONTAINER", "IMAGE"]
    if not found and param.name in _BY_NAME:
        found = [_BY_NAME[param.name]]
    return found


def _completer(kinds: list[str]) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        try:
            engine = _engine(ctx)
            names: list[str] = []
            for kind in kinds:
                names += KINDS[kind](engine)
        except Exception:  # noqa: BLE001 - a completion that fails offers nothing, never a traceback
            return []
        return [CompletionItem(n) for n in names if n.startswith(incomplete)]

    return complete


def attach(command: click.Command) -> click.Command:
    """Give ``command``'s arguments that name containers, images, volumes or networks their
    completion (once; arguments that complete already are left alone)."""
    for param in command.params:
        if isinstance(param, click.Argument) and getattr(param, "_custom_shell_complete", None) is None:
            kinds = kinds_of(param)
            if kinds:
                param._custom_shell_complete = _completer(kinds)
    return command
