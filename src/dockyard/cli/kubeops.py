"""The bodies of ``kube play`` and ``kube down``, without click: the click commands
(cli/kube.py) and the fast path (cli/fastviews.py) both call ``play``. A play's start-up
is part of what it costs: click alone is ~30 ms here, beside ~280 ms for the whole lab."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.kube.play import Plan


def warn(message: str) -> None:
    sys.stdout.flush()   # as click.echo(err=True) orders it after what was printed
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()


def play(engine_of: "Callable[[], Engine]", source: str, down: bool, replace: bool, start: bool) -> None:
    """``kube play [--down] [--replace] [--no-start] FILE|-``; ``engine_of`` opens the engine,
    which is only done once the spare shims are forked (they must not inherit SQLite)."""
    from dockyard.kube import play as kplay

    documents, label = kplay.read(source, sys.stdin.read)
    try:
        plan = kplay.parse(documents)
    except kplay.KubeError as e:
        for warning in getattr(e, "warnings", ()):
            warn(warning)
        raise
    if start and not down:
        from dockyard.containers import spawn

        # every pod's infra and members: their shims forked now, before SQLite is loaded
        spawn.fork_spares(sum(len(pod.containers) + 1 for pod in plan.pods))
    try:
        _play_plan(engine_of(), plan, label, down, replace, start)
    finally:
        if start and not down:
            spawn.cancel_spares()


def _play_plan(engine: "Engine", plan: "Plan", label: str, down: bool, replace: bool, start: bool) -> None:
    from dockyard.kube import play as kplay

    out = sys.stdout
    if down or replace:
        removed = kplay.down(engine, plan)
        if down:
            if removed:
                out.write("Pods stopped:\n" + "".join(f"{p}\n" for p in removed))
                out.write("Pods removed:\n" + "".join(f"{p}\n" for p in removed))
            return
    for warning in plan.warnings:
        warn(warning)
    for pod_id, ids in kplay.play(engine, plan, label, start=start):
        out.write(f"Pod:\n{pod_id}\nContainers:\n" + "".join(f"{cid}\n" for cid in ids) + "\n")
    out.flush()


if TYPE_CHECKING:
    from typing import Callable
