"""The fast path of the everyday read commands (cli/fastviews.py): its option tables match the
click commands', it parses as click does, and both paths print the same and exit the same."""

from __future__ import annotations

import importlib

import click
import pytest

from dockyard.cli import fastpath, fastviews, groups
from dockyard.cli.main import COMMANDS

from tests.integration.test_containers_fastpath import assert_spec_matches
from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures

TABLES = {"container": groups.CONTAINER_COMMANDS, "image": groups.IMAGE_COMMANDS, "volume": groups.VOLUME_COMMANDS,
          "network": groups.NETWORK_COMMANDS, "system": groups.SYSTEM_COMMANDS}


def click_command(path: str) -> click.Command:
    words = path.split()
    if words[0] == "kube":
        from dockyard.cli.kube import kube

        return kube.commands[words[1]]
    table = TABLES[words[0]] if len(words) == 2 else COMMANDS
    module, _, attr = table[words[-1]][0].partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("path", sorted(set(fastviews.VIEWS) | set(fastviews.ALIASES)))
def test_tables_match_click(path: str) -> None:
    command = click_command(path)
    assert_spec_matches(command, fastviews.VIEWS[fastviews.ALIASES.get(path, path)][0])
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    least, most = fastviews.VIEWS[fastviews.ALIASES.get(path, path)][1]
    assert least == sum(1 if a.nargs == -1 else a.nargs for a in arguments if a.required)
    assert most == (None if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments))


@pytest.mark.parametrize("args", [
    ["inspect", "a", "-f", "{{.Id}}", "--type=container", "b"], ["container", "inspect", "-sf", "x", "a"],
    ["volume", "ls", "-q", "--filter", "name=a", "-f", "driver=local"], ["network", "ls", "--no-trunc"],
    ["top", "c", "-eo", "pid"], ["images", "-aq", "--filter", "dangling=true", "x"], ["history", "--human=0", "x"], ["port", "c", "80/tcp"], ["image", "rm", "-f", "a", "b"], ["tag", "a", "b"],
    ["kube", "play", "f.yaml"], ["kube", "play", "--no-start", "-", "--replace"], ["kube", "play", "--down", "--start", "f"],
    ["kube", "play", "--no-start", "--start", "f"], ["kube", "down", "f.yaml"],
])
def test_parse_matches_click(args: list[str]) -> None:
    words = 2 if args[0] in fastviews.GROUPS else 1
    path = " ".join(args[:words])
    command = click_command(path)
    ctx = command.make_context(path, list(args[words:]))
    spec = fastviews.VIEWS[fastviews.ALIASES.get(path, path)][0]
    values, positionals = fastpath.parse_args(spec, args[words:])
    clicked = {k: v for k, v in ctx.params.items() if not any(isinstance(p, click.Argument) and p.name == k
                                                                for p in command.params)}
    assert values == clicked
    assert fastviews.parse(args) is not None


@pytest.mark.parametrize("args", [
    ["inspect"], ["inspect", "--type", "bogus", "a"], ["volume", "ls", "x"], ["tag", "a"], ["port", "a", "b", "c"],
    ["top", "--help"], ["rmi", "--bogus", "a"], ["volume"], ["image", "inspect", "--", "a"],
    ["kube", "play"], ["kube", "play", "a", "b"], ["kube", "play", "--start=1", "f"], ["kube", "generate", "c"],
    ["kube", "down", "--help", "f"], ["kube"],
])
def test_falls_back_to_click(args: list[str]) -> None:
    assert fastpath.parse(args) is None


@pytest.mark.parametrize("args", [
    ["inspect", "-f", "{{.Name}} {{.State.Status}}", "fv1"], ["inspect", "fv1", "nosuch"], ["inspect", "busybox"],
    ["container", "inspect", "--format", "{{json .Config.Cmd}}", "fv1"], ["image", "inspect", "-f", "{{.Os}}", "busybox"],
    ["image", "inspect", "nosuch"], ["volume", "ls"], ["volume", "ls", "-q"], ["volume", "inspect", "fvv"],
    ["volume", "inspect", "nosuch"], ["network", "ls"], ["network", "inspect", "-f", "{{.Name}}", "none"],
    ["top", "fv1"], ["top", "nosuch"], ["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "fv1"], ["port", "fv1"], ["tag", "busybox", "fvtag:1"], ["rmi", "fvtag:1", "nosuch"],
    ["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"], ["images", "-q", "busybox"], ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
    ["history", "--format", "{{.ID}} {{.CreatedBy}} {{.Size}}", "busybox"], ["version", "-f", "{{.Client.Version}}"],
    ["info", "--format", "{{.Containers}} {{.Images}} {{.Driver}}"],
    ["events", "--since", "0", "--until", "1", "--format", "{{.Type}} {{.Action}}"], ["events", "-f", "bad", "--until", "1"], ["system", "info", "-f", "{{json .Runtimes}}"],
    ["image", "history", "-H", "false", "--no-trunc", "busybox"], ["history", "nosuch"],
])
def test_both_paths_print_the_same(dy: Dockyard, args: list[str]) -> None:  # noqa: F811
    dy.cli("run", "-d", "--name", "fv1", "--network", "none", "busybox", "sleep", "60", check=True)
    dy.cli("volume", "create", "fvv", check=True)
    if args[0] == "rmi":
        dy.cli("tag", "busybox", "fvtag:1", check=True)
    fast = dy.cli(*args, check=False)
    if args[0] in ("rmi", "tag"):
        dy.cli("rmi", "fvtag:1", check=False)
        if args[0] == "rmi":
            dy.cli("tag", "busybox", "fvtag:1", check=True)
    slow = dy.cli(*args, check=False, env={"DOCKYARD_NO_FASTPATH": "1"})

    def norm(text: str) -> str:   # top's times and CPU columns move: its header and commands
        if args[0] == "top":
            lines = text.splitlines()
            return "\n".join(lines[:1] + [line.split()[-1] for line in lines[1:]])
        return text

    assert (fast.returncode, norm(fast.stdout), fast.stderr) == (slow.returncode, norm(slow.stdout), slow.stderr)
    assert fast.returncode == (1 if "nosuch" in args else 125 if "bad" in args else 0), fast.stderr


def test_stats_without_waiting_shows_a_busy_container_busy(dy: Dockyard) -> None:  # noqa: F811
    """``stats --no-stream`` answers at once (no second sample a second later): CPU % over the
    container's life on a first look, then since the previous look."""
    import time

    dy.cli("run", "-d", "--name", "busy", "--network", "none", "busybox", "sh", "-c", "while :; do :; done",
           check=True)
    dy.cli("run", "-d", "--name", "idle", "--network", "none", "busybox", "sleep", "60", check=True)
    time.sleep(1.5)
    start = time.monotonic()
    out = dy.cli("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}", "busy", "idle", check=True).stdout
    assert time.monotonic() - start < 1.0
    cpu = {name: float(value.rstrip("%")) for name, value in (line.split() for line in out.splitlines())}
    assert cpu["busy"] > 30 and cpu["idle"] < 5, cpu
    time.sleep(0.5)
    again = dy.cli("stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy", check=True).stdout
    assert float(again.strip().rstrip("%")) > 30
