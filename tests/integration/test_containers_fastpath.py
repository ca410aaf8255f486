"""The hand-parsed fast path (cli/fastpath.py) against click: same options, same parse,
same output and exit codes, and a fall-back to click for whatever it does not know."""

from __future__ import annotations

import pytest

from dockyard.cli import fastpath

from tests.integration.test_containers_harness import Dockyard, dockyard_env, dy  # noqa: F401 - fixtures

CLICK = {"run": "run", "create": "create", "exec": "exec_", "ps": "ps", "stop": "stop", "rm": "rm", "logs": "logs",
         "build": "build:build"}


@pytest.mark.parametrize("name", sorted(CLICK))
def test_tables_match_click(name: str) -> None:
    import importlib

    module, _, attr = CLICK[name].rpartition(":")
    command = getattr(importlib.import_module(f"dockyard.cli.{module or 'containers'}"), attr)
    assert_spec_matches(command, fastpath.SPECS[name])


def assert_spec_matches(command: "click.Command", spec: fastpath.Spec) -> None:
    """A fast-path table holds what the click command declares: every option, its kind,
    choices and default, and whether options may follow arguments."""
    import click

    seen = set()
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        if param.hidden and not set(param.opts) & set(spec.names):
            continue   # legacy flags that take the click path (build's --rm, --force-rm)
        for opt in param.opts:
            dest, kind, choices = spec.names[opt]
            assert dest == param.name, opt
            seen.add(opt)
            if param.multiple:
                assert kind == fastpath.MULTI, opt
            elif param.is_flag:
                assert kind == fastpath.FLAG, opt
            elif isinstance(param.type, click.Choice):
                assert tuple(choices) == tuple(param.type.choices), opt
            elif isinstance(param.type, click.types.IntParamType):
                assert kind == fastpath.INT, opt
            elif isinstance(param.type, click.types.BoolParamType):
                assert kind == fastpath.BOOL, opt
            else:
                assert kind == fastpath.STR, opt
            if not param.multiple and not param.is_flag:
                default = None if repr(param.default).endswith("UNSET") else param.default
                assert spec.defaults[dest] == default, opt
            if param.is_flag:   # an unset flag default is off
                assert spec.defaults[dest] == (not repr(param.default).endswith("UNSET") and bool(param.default)), opt
        for opt in param.secondary_opts:   # --no-x of a --x/--no-x pair
            dest, kind, _choices = spec.names[opt]
            assert (dest, kind) == (param.name, fastpath.OFF), opt
            seen.add(opt)
    assert seen == set(spec.names)
    assert spec.interspersed == command.context_settings.get("allow_interspersed_args", True)


@pytest.mark.parametrize("args", [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "-dit", "--name=x", "-eA=1", "-e", "B=2", "--pull", "never", "busybox", "sh", "-c", "--rm"],
    ["run", "--sig-proxy", "false", "-c", " 12", "busybox"],
    ["exec", "-it", "c", "ls", "-l", "--help"],
    ["ps", "-aq", "--no-trunc", "-n", "3"],
    ["rm", "a", "-f", "b"],
    ["stop", "-t", "0", "a"],
    ["logs", "c", "--tail", "5", "-tf"],
    ["build", "-t", "a:1", "--tag=b", "-q", "--build-arg", "X=1", "ctx", "--no-cache", "--progress", "plain"],
])
def test_parse_matches_click(args: list[str]) -> None:
    import importlib

    module, _, attr = CLICK[args[0]].rpartition(":")
    command = getattr(importlib.import_module(f"dockyard.cli.{module or 'containers'}"), attr)
    ctx = command.make_context(args[0], list(args[1:]))
    values, positionals = fastpath.parse_args(fastpath.SPECS[args[0]], args[1:])
    clicked = dict(ctx.params)
    for name in ("image", "command", "container", "containers_", "context"):
        clicked.pop(name, None)
    if args[0] == "build":   # the legacy flags only click takes
        clicked.pop("rm")
        clicked.pop("force_rm")
    assert values == clicked
    expected = [ctx.params[n] for n in ("image", "container", "context") if n in ctx.params]
    expected += list(ctx.params.get("command", ())) + list(ctx.params.get("containers_", ()))
    assert positionals == expected


@pytest.mark.parametrize("args", [
    ["exec", "-h"], ["exec", "--help", "c"], ["run", "--bogus", "busybox"], ["run", "--rm=1", "busybox"],
    ["run", "--pull", "sometimes", "busybox"], ["run", "-c", "x", "busybox"], ["exec", "c"], ["ps", "extra"],
    ["logs", "a", "b"], ["stop"], ["run", "--", "busybox"], ["run", "--name"], ["--root", "/x", "ps"],
    ["images", "a", "b"], ["run", "--sig-proxy", "maybe", "busybox"], ["build", "--rm", "."], ["build", "a", "b"], ["build"],
])
def test_falls_back_to_click(args: list[str]) -> None:
    assert fastpath.parse(args) is None


@pytest.mark.parametrize("args", [
    ["exec", "nosuch", "true"], ["rm", "nosuch1", "nosuch2"], ["create", "--network", "none", "-e", "A=1",
    "busybox", "sh", "-c", "echo"], ["create", "nosuchimage:1"], ["create", "--bogus", "busybox"], ["stop", "nosuch"], ["logs", "nosuch"],
    ["ps", "-a", "--format", "{{.Names}} {{.Status}}"], ["ps", "-q"], ["run", "--rm", "nosuchimage:1", "true"],
    ["run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
    ["run", "--rm", "--network", "none", "busybox", "nosuchcommand"],
    ["run", "--bogus", "busybox"], ["exec", "-h"],
])
def test_both_paths_print_the_same(dy: Dockyard, args: list[str]) -> None:  # noqa: F811
    fast = dy.cli(*args, check=False)
    slow = dy.cli(*args, check=False, env={"DOCKYARD_NO_FASTPATH": "1"})
    import re

    def norm(text: str) -> str:  # each run creates a new container: its ID differs
        return re.sub(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b", "<id>", text)

    assert (fast.returncode, norm(fast.stdout), norm(fast.stderr)) == \
        (slow.returncode, norm(slow.stdout), norm(slow.stderr))


# Modules the hot commands must not load: each costs `run`/`exec` milliseconds of start-up
# (dataclasses brings inspect and ast; tempfile brings shutil, bz2 and lzma; pathlib brings
# fnmatch, urllib.parse and ipaddress; socket sets up enums and selectors). Measured by
# what the interpreter reports importing, minus what a bare interpreter imports here.
HEAVY = {"dataclasses", "inspect", "typing", "subprocess", "tempfile", "shutil", "hashlib", "platform", "pathlib",
         "secrets", "random", "uuid", "click", "asyncio", "tarfile", "zstandard", "socket", "selectors", "threading"}


def _imported(dy: Dockyard, *args: str) -> set[str]:  # noqa: F811
    """Modules ``dockyard ARGS`` imports beyond what a bare interpreter imports here."""
    import subprocess
    import sys

    def seen(*argv: str) -> set[str]:
        result = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                                env={**dy.env, "DOCKYARD_RUNTIME": dy.runtime}, stdin=subprocess.DEVNULL, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}

    return seen("-m", "dockyard", *args) - seen("-c", "pass")


def test_run_and_exec_stay_off_heavy_modules(dy: Dockyard) -> None:  # noqa: F811
    ran = _imported(dy, "run", "--rm", "--network", "none", "busybox", "true")
    assert "dockyard.containers.manager" in ran
    assert not ran & HEAVY, sorted(ran & HEAVY)
    # The default network: set-up (netlink, namespace, IPAM, DNS responder) on the hot path
    # too, once the bridge exists (its first creation runs iptables).
    dy.cli("run", "--rm", "busybox", "true", check=True)
    bridged = _imported(dy, "run", "--rm", "busybox", "true")
    assert "dockyard.network.rtnl" in bridged
    assert not bridged & HEAVY, sorted(bridged & HEAVY)
    dy.cli("run", "-d", "--name", "imports", "--network", "none", "busybox", "sleep", "60", check=True)
    executed = _imported(dy, "exec", "imports", "true")
    assert "dockyard.containers.execute" in executed
    assert not executed & HEAVY, sorted(executed & HEAVY)


def test_a_cached_build_stays_off_heavy_modules(dy: Dockyard, tmp_path) -> None:  # noqa: F811, ANN001
    """A no-op rebuild is mostly start-up: no click (the fast path), no OpenSSL, no Go parser
    runtime (the parse is cached), no snapshot or RUN machinery (every step is cached)."""
    (tmp_path / "f").write_text("x\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox AS a\nRUN echo hi > /hi\nCOPY f /f\nENV A=1\n"
                                         "FROM busybox\nCOPY --from=a /hi /hi\n")
    dy.cli("build", "-q", str(tmp_path), check=True)
    cached = _imported(dy, "build", "-q", str(tmp_path))
    assert "dockyard.build.builder" in cached
    assert not cached & HEAVY, sorted(cached & HEAVY)
    assert not cached & {"dockerfile", "dockyard.store.snapshots", "dockyard.store.archive", "dockyard.runtime.spec",
                         "dockyard.network.rtnl"}, sorted(cached)
