"""``dockyard compose``: Docker Compose v2's command line over the compose loader
(dockyard.compose.model) and the project verbs (dockyard.compose.project).

Only parsing and printing live here. Output follows Docker Compose v2: progress lines on
stderr (`` ✔ Container p-web-1  Started`` on a terminal, `` Container p-web-1  Started`` when
not), ``ps``/``ls``/``images``/``top`` tables, attached output prefixed ``web-1  | ``.
This module is loaded only for ``dockyard compose``; yaml and jsonschema come in through the
loader, inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import click

from dockyard.cli.common import engine as current_engine
from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.compose.project import ComposeProject
    from dockyard.containers.store import ContainerRecord

_OPTIONS = "dockyard.compose"
# Docker Compose v2's colours for the services' prefixes (formatter/colors.go), in its order.
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
# the state that ends each transition: a tty shows those alone, with a check mark
_DONE = {"Created", "Started", "Healthy", "Running", "Stopped", "Removed", "Killed", "Paused", "Unpaused",
         "Pulled", "Pushed", "Built", "Recreated", "Restarted", "Exited", "Skipped"}


class Options:
    """The group's flags, for the commands under it."""

    def __init__(self, files: Sequence[str], project_name: str | None, project_directory: str | None,
                 env_files: Sequence[str], profiles: Sequence[str], ansi: str, progress: str) -> None:
        self.files = list(files)
        self.project_name = project_name
        self.project_directory = project_directory
        self.env_files = list(env_files)
        self.profiles = list(profiles)
        self.ansi = ansi
        self.progress = progress

    def colour(self, stream: Any) -> bool:
        if self.ansi == "never" or os.environ.get("NO_COLOR"):
            return False
        return self.ansi == "always" or _isatty(stream)


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _options() -> Options:
    return click.get_current_context().meta[_OPTIONS]


# ---------------------------------------------------------------- the project

def load_project(options: Options) -> Any:
    """The loaded compose project (H1's model.load), as the group's flags ask."""
    from dockyard.compose.model import LoadOptions, load

    return load(LoadOptions(files=options.files, project_name=options.project_name, env_files=options.env_files,
                            profiles=options.profiles, working_dir=options.project_directory, environ=os.environ,
                            resolve_paths=True, validation_cache=_validation_cache()))


def _validation_cache() -> str | None:
    """Where the loader remembers files the schema accepted (it skips jsonschema for them):
    beside the engine's data, under its root."""
    from dockyard import config
    from dockyard.cli.common import State

    state = click.get_current_context().find_object(State)
    if state is None:
        return None
    return os.path.join(config.load(state.root, state.runroot).root, "compose", "validated")


def project(by_name: bool = False) -> "ComposeProject":
    """The project of this command. ``by_name``: a verb that needs only the labels, which
    works with ``-p NAME`` and no compose file (as ``docker compose -p x down`` does)."""
    from dockyard.compose.errors import ComposeError
    from dockyard.compose.project import ComposeProject

    options = _options()
    engine = current_engine()
    try:
        loaded = load_project(options)
    except ComposeError as e:
        name = options.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
        if by_name and name and not options.files and "no configuration file provided" in e.message:
            return ComposeProject.by_name(engine, name)
        raise
    return ComposeProject(engine, loaded)


def _service_of(record: "ContainerRecord") -> str:
    return (record.container_config.get("Labels") or {}).get("com.docker.compose.service", "")


def _number(record: "ContainerRecord") -> int:
    try:
        return int((record.container_config.get("Labels") or {}).get("com.docker.compose.container-number") or 0)
    except ValueError:
        return 0


def _short_name(p: "ComposeProject", record: "ContainerRecord") -> str:
    """The prefix of a container's lines: its name without ``<project>-`` (``web-1``)."""
    return record.name.removeprefix(f"{p.name}-")


# ---------------------------------------------------------------- progress lines

class Progress:
    """The verbs' ``progress(kind, name, state)`` as Docker Compose v2 prints it on stderr:
    every step as plain text (`` Container p-web-1  Started``) when stderr is not a terminal,
    the finished ones with a green check mark when it is; ``json`` one object a line; ``quiet``
    nothing."""

    def __init__(self, options: Options) -> None:
        mode = options.progress
        if mode == "auto":
            mode = "tty" if _isatty(sys.stderr) else "plain"
        self.mode = mode
        self.colour = options.colour(sys.stderr)
        self.events = 0
        self.lock = threading.Lock()

    def __call__(self, kind: str, name: str, state: str) -> None:
        with self.lock:
            self.events += 1
            if kind == "Warning":   # logrus's words in v2: the orphans' names inside the sentence
                if "orphan containers for" in state:
                    self.line("WARN[0000] " + state.replace("containers for", f"containers ([{name}]) for", 1))
                else:
                    self.line(f"WARN[0000] {name}: {state}" if name else f"WARN[0000] {state}")
                return
            if self.mode == "quiet":
                return
            if self.mode == "json":
                self.line(json.dumps({"id": f"{kind} {name}", "status": state}))
                return
            if self.mode == "plain":
                self.line(f" {kind} {name}  {state}")
                return
            error = state.startswith("Error")
            if state not in _DONE and not error:
                return   # a terminal shows where each step ended (no redrawn display here)
            mark = "✘" if error else "✔"
            if self.colour:
                mark = f"\033[{31 if error else 32}m{mark}\033[0m"
            self.line(f" {mark} {kind} {name}  {state}")

    def line(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _progress() -> Progress:
    return Progress(_options())


# ---------------------------------------------------------------- the group

@click.group("compose", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, metavar="stringArray", help="Compose configuration files")
@click.option("-p", "--project-name", metavar="string", help="Project name")
@click.option("--project-directory", metavar="string",
              help="Specify an alternate working directory (default: the path of the, first specified, Compose file)")
@click.option("--env-file", "env_files", multiple=True, metavar="stringArray",
              help="Specify an alternate environment file")
@click.option("--profile", "profiles", multiple=True, metavar="stringArray", help="Specify a profile to enable")
@click.option("--ansi", type=click.Choice(["never", "always", "auto"]), default="auto", metavar="string",
              help='Control when to print ANSI control characters ("never"|"always"|"auto") (default "auto")')
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "json", "quiet"]), default="auto",
              metavar="string", help="Set type of progress output (auto, tty, plain, json, quiet)")
@click.pass_context
def compose(ctx: click.Context, files: tuple[str, ...], project_name: str | None, project_directory: str | None,
            env_files: tuple[str, ...], profiles: tuple[str, ...], ansi: str, progress: str) -> None:
    """Define and run multi-container applications (the compose-spec), on dockyard's engine."""
    ctx.meta[_OPTIONS] = Options(files, project_name, project_directory, env_files, profiles, ansi, progress)


def _scale(values: Iterable[str]) -> dict[str, int]:
    out = {}
    for value in values:
        name, sep, count = value.partition("=")
        if not sep or not count.isdigit():
            raise DockyardError(f"invalid --scale value {value!r}: expected SERVICE=NUM")
        out[name] = int(count)
    return out


# ---------------------------------------------------------------- up / down

@compose.command("up")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: Run containers in the background")
@click.option("--build", is_flag=True, help="Build images before starting containers")
@click.option("--no-build", is_flag=True, help="Don't build an image, even if it's policy")
@click.option("--pull", type=click.Choice(["always", "missing", "never", "build"]), default="missing",
              metavar="string", help='Pull image before running ("always"|"missing"|"never"|"build")')
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if their configuration hasn't changed")
@click.option("--no-recreate", is_flag=True, help="If containers already exist, don't recreate them")
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not defined in the Compose file")
@click.option("--wait", is_flag=True, help="Wait for services to be running|healthy. Implies detached mode.")
@click.option("--wait-timeout", type=int, metavar="int", help="Maximum duration in seconds to wait for the project")
@click.option("--scale", "scales", multiple=True, metavar="scale",
              help="Scale SERVICE to NUM instances. Overrides the scale setting in the Compose file if present.")
@click.option("--abort-on-container-exit", is_flag=True, help="Stops all containers if any container was stopped")
@click.option("--exit-code-from", metavar="string",
              help="Return the exit code of the selected service container. Implies --abort-on-container-exit")
@click.option("--no-start", is_flag=True, help="Don't start the services after creating them")
@click.option("--no-deps", is_flag=True, help="Don't start linked services")
@click.option("-t", "--timeout", type=int, metavar="int", help="Use this timeout in seconds for container shutdown")
@click.option("--attach", "attach_to", multiple=True, metavar="stringArray", help="Restrict attaching to the specified services")
@click.option("--no-attach", multiple=True, metavar="stringArray", help="Do not attach (stream logs) to the specified services")
@click.option("--no-color", is_flag=True, help="Produce monochrome output")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs")
@click.option("--timestamps", is_flag=True, help="Show timestamps")
@click.option("-y", "--yes", is_flag=True, hidden=True)
@click.argument("services", nargs=-1)
def up(detach: bool, build: bool, no_build: bool, pull: str, force_recreate: bool, no_recreate: bool,
       remove_orphans: bool, wait: bool, wait_timeout: int | None, scales: tuple[str, ...],
       abort_on_container_exit: bool, exit_code_from: str | None, no_start: bool, no_deps: bool,
       timeout: int | None, attach_to: tuple[str, ...], no_attach: tuple[str, ...], no_color: bool,
       no_log_prefix: bool, timestamps: bool, yes: bool, services: tuple[str, ...]) -> None:
    """Create and start containers"""
    if exit_code_from:
        abort_on_container_exit = True
    if wait:
        detach = True
    if detach and abort_on_container_exit:
        raise DockyardError("--abort-on-container-exit and --detach are incompatible")
    if force_recreate and no_recreate:
        raise DockyardError("--force-recreate and --no-recreate are incompatible")
    if build and no_build:
        raise DockyardError("--build and --no-build are incompatible")
    p = project()
    if exit_code_from and exit_code_from not in p.services:
        raise DockyardError(f"no such service: {exit_code_from}")
    progress = _progress()
    since = time.time()
    records = p.up(list(services) or None, detach=detach, build=build, no_build=no_build, pull=pull,
                   force_recreate=force_recreate, no_recreate=no_recreate, remove_orphans=remove_orphans,
                   wait=wait, wait_timeout=wait_timeout, scale=_scale(scales), no_start=no_start, no_deps=no_deps,
                   timeout=timeout, progress=progress)
    if detach or no_start:
        return
    shown = [r for r in records
             if (not attach_to or _service_of(r) in attach_to) and _service_of(r) not in no_attach]
    printer = LogPrinter(p, shown or records, colour=not no_color and _options().colour(sys.stdout),
                         prefix=not no_log_prefix, timestamps=timestamps)
    click.echo("Attaching to " + ", ".join(_short_name(p, r) for r in shown))
    code = printer.attached(records, shown, since, abort_on_container_exit, exit_code_from, timeout, progress)
    sys.exit(code)


@compose.command("down")
@click.option("-v", "--volumes", is_flag=True,
              help="Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous "
                   "volumes attached to containers")
@click.option("--rmi", type=click.Choice(["local", "all"]), metavar="string",
              help='Remove images used by services. "local" remove only images that don\'t have a custom tag')
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not defined in the Compose file")
@click.option("-t", "--timeout", type=int, metavar="int", help="Specify a shutdown timeout in seconds")
@click.argument("services", nargs=-1)
def down(volumes: bool, rmi: str | None, remove_orphans: bool, timeout: int | None,
         services: tuple[str, ...]) -> None:
    """Stop and remove containers, networks"""
    p = project(by_name=True)
    progress = _progress()
    if services:
        p.remove(list(services), stop=True, volumes=volumes, timeout=timeout, progress=progress)
        return
    p.down(volumes=volumes, rmi=rmi, remove_orphans=remove_orphans, timeout=timeout, progress=progress)
    if not progress.events:
        progress.line(f'WARN[0000] Warning: No resource found to remove for project "{p.name}".')


# ---------------------------------------------------------------- ps / ls

PS_TABLE = ("table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}")
PS_HEADERS = {"Name": "NAME", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "Service": "SERVICE",
              "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS",
              "ID": "CONTAINER ID", "State": "STATE", "Project": "PROJECT", "Health": "HEALTH",
              "ExitCode": "EXIT CODE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "Publishers": "PUBLISHERS"}
_STATUSES = ("paused", "restarting", "removing", "running", "dead", "created", "exited")


def ps_rows(p: "ComposeProject", records: Sequence["ContainerRecord"]) -> list[dict[str, Any]]:
    """``compose ps`` rows: docker ps's fields plus Name, Service, Project, Health, ExitCode, Publishers."""
    from dockyard.cli.ops import ps_rows as docker_rows
    from dockyard.network.store import NetworkStore

    engine = p.engine
    published = NetworkStore(engine.db).all_ports() if records else {}
    rows = docker_rows(records, trunc=True, published=published)
    for row, record in zip(rows, records):
        health = record.extra.get("health") or ""
        publishers = []
        for binding in published.get(record.id, []) if record.running else []:
            publishers.append(_publisher(binding))
        row.update({"Name": record.name, "Service": _service_of(record), "Project": p.name,
                    "Health": health if health in ("starting", "healthy", "unhealthy") else "",
                    "ExitCode": record.exit_code or 0 if record.status != "running" else 0,
                    "Publishers": publishers, "Size": row.get("Size") or "0B"})
        row.pop("Label", None)
    return rows


def _publisher(binding: Any) -> dict[str, Any]:
    """A published port (network.store.PublishedPort) as compose ps's JSON says it."""
    return {"URL": binding.host_ip or "0.0.0.0", "TargetPort": int(binding.container_port),
            "PublishedPort": int(binding.host_port), "Protocol": binding.proto}


@compose.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped containers (including those created by the run command)")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs")
@click.option("--format", "format_", default="table", metavar="string",
              help="Format output using a custom template: 'table' (default), 'json', or a Go template")
@click.option("--services", "services_only", is_flag=True, help="Display services")
@click.option("--status", "statuses", multiple=True, metavar="stringArray",
              help="Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]")
@click.option("--filter", "filters", multiple=True, metavar="string", help="Filter services by a property (supported filters: status).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--orphans/--no-orphans", default=True, help="Include orphaned services (not declared by project)")
@click.argument("services", nargs=-1)
def ps(all_: bool, quiet: bool, format_: str, services_only: bool, statuses: tuple[str, ...],
       filters: tuple[str, ...], no_trunc: bool, orphans: bool, services: tuple[str, ...]) -> None:
    """List containers"""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.common import parse_filters

    wanted_status = list(statuses)
    for key, values in parse_filters(filters).items():
        if key != "status":
            raise DockyardError(f"unsupported filter {key}: status is the one ps filters on")
        wanted_status += values
    for status in wanted_status:
        if status not in _STATUSES:
            raise DockyardError(f"invalid filter 'status={status}'")
    p = project(by_name=True)
    if p.project is not None:
        for name in services:
            if name not in p.services:
                raise DockyardError(f"no such service: {name}")
    records = p.containers(list(services) or None, all=all_ or bool(wanted_status), oneoff=all_)
    if wanted_status:
        records = [r for r in records if r.status in wanted_status]
    if not orphans and p.project is not None:
        records = [r for r in records if _service_of(r) in p.services]
    if services_only:
        seen: list[str] = []
        for r in records:
            if _service_of(r) not in seen:
                seen.append(_service_of(r))
        click.echo("".join(s + "\n" for s in seen), nl=False)
        return
    if quiet:
        click.echo("".join(r.id + "\n" for r in records), nl=False)
        return
    rows = ps_rows(p, records)
    if no_trunc:
        from dockyard.cli.ops import go_quote
        from dockyard.containers.summary import ps_command

        for row, r in zip(rows, records):
            row["Command"] = go_quote(ps_command(r.summary.get("Path") or "", r.summary.get("Args") or []))
    template = PS_TABLE if format_ == "table" else format_
    click.echo(fmt.render_rows(template, rows, PS_HEADERS), nl=False)


@compose.command("ls")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped Compose projects")
@click.option("--format", "format_", type=click.Choice(["table", "json"]), default="table", metavar="string",
              help='Format the output. Values: [table | json]')
@click.option("-q", "--quiet", is_flag=True, help="Only display project names")
@click.option("--filter", "filters", multiple=True, metavar="filter", help="Filter output based on conditions provided")
def ls(all_: bool, format_: str, quiet: bool, filters: tuple[str, ...]) -> None:
    """List running compose projects"""
    from dockyard.cli.common import parse_filters
    from dockyard.compose.project import list_projects

    projects = list_projects(current_engine(), all=all_)
    for key, values in parse_filters(filters).items():
        if key != "name":
            raise DockyardError(f"invalid filter '{key}'")
        projects = [pr for pr in projects if any(v in pr["Name"] for v in values)]
    if quiet:
        click.echo("".join(pr["Name"] + "\n" for pr in projects), nl=False)
    elif format_ == "json":
        click.echo(json.dumps(projects, separators=(",", ":")))
    else:
        rows = [["NAME", "STATUS", "CONFIG FILES"]] + [[pr["Name"], pr["Status"], pr["ConfigFiles"]] for pr in projects]
        click.echo(_table(rows, minwidth=20, padding=3), nl=False)


def _table(rows: Sequence[Sequence[str]], minwidth: int, padding: int) -> str:
    from dockyard.cli.formatting import tabulate

    return tabulate(rows, minwidth=minwidth, padding=padding)


# ---------------------------------------------------------------- logs and attached output

class LogPrinter:
    """Containers' output on our stdout and stderr, each line prefixed ``web-1  | `` (padded to
    the longest name, a colour per service on a terminal), one reader thread a container."""

    def __init__(self, p: "ComposeProject", records: Sequence["ContainerRecord"], colour: bool, prefix: bool,
                 timestamps: bool) -> None:
        self.p = p
        self.prefix = prefix
        self.timestamps = timestamps
        self.lock = threading.Lock()
        width = max((len(_short_name(p, r)) for r in records), default=0)
        services = sorted({_service_of(r) for r in records})
        self.prefixes = {}
        for r in records:
            text = _short_name(p, r).ljust(width) + "  | "
            if colour:
                text = f"\033[{_COLOURS[services.index(_service_of(r)) % len(_COLOURS)]}m{text}\033[0m"
            self.prefixes[r.id] = text

    def write(self, record: "ContainerRecord", entry: dict[str, str]) -> None:
        text = entry["log"]
        if self.timestamps:
            text = entry["time"] + " " + text
        lines = text.splitlines(keepends=True) or [""]
        head = self.prefixes.get(record.id, "") if self.prefix else ""
        out = "".join(head + (line if line.endswith("\n") else line + "\n") for line in lines)
        with self.lock:   # stdout for both streams, as Docker Compose v2
            sys.stdout.write(out)
            sys.stdout.flush()

    def dump(self, record: "ContainerRecord", follow: bool, tail: int | None, since: float | None) -> None:
        for entry in self.p.engine.containers.logs(record.id, follow=follow, tail=tail, since=since):
            self.write(record, entry)

    def follow_all(self, records: Sequence["ContainerRecord"], tail: int | None, since: float | None,
                   on_exit: Callable[["ContainerRecord"], None] | None = None) -> list[threading.Thread]:
        threads = []
        for record in records:
            def pump(r: "ContainerRecord" = record) -> None:
                try:
                    self.dump(r, True, tail, since)
                except DockyardError:
                    pass   # removed meanwhile
                if on_exit is not None:
                    on_exit(r)

            thread = threading.Thread(target=pump, daemon=True, name=f"logs-{record.name}")
            thread.start()
            threads.append(thread)
        return threads

    def attached(self, records: Sequence["ContainerRecord"], shown: Sequence["ContainerRecord"], since: float,
                 abort: bool, exit_code_from: str | None, timeout: int | None, progress: Progress) -> int:
        """``up`` in the foreground: stream until every container exited (or one did, with
        ``abort``); Ctrl-C stops the project. The exit code, as Docker Compose v2's."""
        import queue

        exited: "queue.Queue[ContainerRecord]" = queue.Queue()
        shown_ids = {r.id for r in shown}
        remaining = {r.id for r in records}
        code = 0
        try:
            # inside the try: a follower may print a container's first line (and the user press
            # Ctrl-C) before this thread has started the others
            self.follow_all(shown, None, since, on_exit=exited.put)
            watch = [r for r in records if r.id not in shown_ids]
            if watch:
                threading.Thread(target=self._watch, args=(watch, exited), daemon=True).start()
            while remaining:
                try:
                    record = exited.get(timeout=0.2)
                except queue.Empty:
                    continue
                remaining.discard(record.id)
                exit_code = self._report_exit(record)
                if exit_code_from and _service_of(record) == exit_code_from:
                    code = exit_code
                if abort:
                    if not exit_code_from:
                        code = exit_code
                    progress.line("Aborting on container exit...")
                    self.p.stop(timeout=timeout, progress=progress)
                    return self._exited(records, remaining, exit_code_from, code)
        except KeyboardInterrupt:
            progress.line("Gracefully stopping... (press Ctrl+C again to force)")
            self.p.stop(timeout=timeout, progress=progress)
            return 130
        return code

    def _exited(self, records: Sequence["ContainerRecord"], remaining: set[str], exit_code_from: str | None,
                code: int) -> int:
        """After an abort: the exit of each container the stop ended; the code ``up`` returns."""
        for record in records:
            if record.id not in remaining:
                continue
            exit_code = self._report_exit(record)
            if exit_code_from and _service_of(record) == exit_code_from:
                code = exit_code
        return code

    def _report_exit(self, record: "ContainerRecord") -> int:
        """Print v2's `name exited with code N` for a container that ended; its code."""
        current = self.p.engine.containers.find(record.id)
        exit_code = current.exit_code if current is not None and current.exit_code is not None else 0
        with self.lock:
            sys.stdout.write(f"{_short_name(self.p, record)} exited with code {exit_code}\n")
            sys.stdout.flush()
        return exit_code

    def _watch(self, records: Sequence["ContainerRecord"], exited: Any) -> None:
        """Containers attached to nothing (``--no-attach``): their exit, seen by polling."""
        pending = list(records)
        while pending:
            for r in list(pending):
                current = self.p.engine.containers.find(r.id)
                if current is None or not current.running:
                    pending.remove(r)
                    exited.put(r)
            time.sleep(0.2)


@compose.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", metavar="string",
              help='Number of lines to show from the end of the logs for each container (default "all")')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--since", metavar="string", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
@click.option("--no-color", is_flag=True, help="Produce monochrome output")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs")
@click.option("--index", type=int, default=0, metavar="int", help="index of the container if service has multiple replicas")
@click.argument("services", nargs=-1)
def logs(follow: bool, tail: str, timestamps: bool, since: str | None, no_color: bool, no_log_prefix: bool,
         index: int, services: tuple[str, ...]) -> None:
    """View output from containers"""
    from dockyard.containers.logs import parse_since

    p = project(by_name=True)
    if p.project is not None:
        for name in services:
            if name not in p.services:
                raise DockyardError(f"no such service: {name}")
    tail_n = None if tail == "all" else int(tail) if tail.lstrip("-").isdigit() else None
    try:
        since_t = parse_since(since) if since else None
    except ValueError as e:
        raise DockyardError(str(e)) from None
    records = p.containers(list(services) or None, all=True, oneoff=False)
    if index:
        records = [r for r in records if _number(r) == index]
    printer = LogPrinter(p, records, colour=not no_color and _options().colour(sys.stdout),
                         prefix=not no_log_prefix, timestamps=timestamps)
    if not follow:
        for record in records:
            printer.dump(record, False, tail_n, since_t)
        return
    threads = printer.follow_all(records, tail_n, since_t)
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        return


# ---------------------------------------------------------------- exec / run

def _running_container(p: "ComposeProject", service: str, index: int) -> "ContainerRecord":
    if p.project is not None and service not in p.services:
        raise DockyardError(f"no such service: {service}")
    records = [r for r in p.containers([service], all=False) if _number(r) == (index or 1)]
    if not records:
        if index > 1 and p.containers([service], all=False):
            raise DockyardError(f"service \"{service}\" is not running container #{index}")
        raise DockyardError(f"service \"{service}\" is not running")
    return records[0]


@compose.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: Run command in the background")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True,
              help="Disable pseudo-TTY allocation. By default `docker compose exec` allocates a TTY.")
@click.option("-e", "--env", "env", multiple=True, metavar="stringArray", help="Set environment variables")
@click.option("-u", "--user", metavar="string", help="Run the command as this user")
@click.option("-w", "--workdir", metavar="string", help="Path to workdir directory for this command")
@click.option("--index", type=int, default=1, metavar="int", help="Index of the container if service has multiple replicas")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the process")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(detach: bool, no_tty: bool, env: tuple[str, ...], user: str | None, workdir: str | None, index: int,
          privileged: bool, interactive: bool, service: str, command: tuple[str, ...]) -> None:
    """Execute a command in a running container"""
    from dockyard.cli import ops

    p = project(by_name=True)
    record = _running_container(p, service, index)
    tty = not no_tty and _isatty(sys.stdin) and _isatty(sys.stdout)
    ops.exec_(p.engine, detach, env, (), interactive, tty, user, workdir, privileged, record.id, command)


@compose.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--rm", is_flag=True, help="Automatically remove the container when it exits")
@click.option("-e", "--env", "env", multiple=True, metavar="stringArray", help="Set environment variables")
@click.option("-l", "--label", "labels", multiple=True, metavar="stringArray", help="Add or override a label")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True,
              help="Disable pseudo-TTY allocation (default: auto-detected)")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.option("--name", metavar="string", help="Assign a name to the container")
@click.option("--entrypoint", metavar="string", help="Override the entrypoint of the image")
@click.option("-u", "--user", metavar="string", help="Run as specified username or uid")
@click.option("-w", "--workdir", metavar="string", help="Working directory inside the container")
@click.option("--service-ports", is_flag=True, help="Run command with all service's ports enabled and mapped to the host")
@click.option("-p", "--publish", multiple=True, metavar="stringArray", help="Publish a container's port(s) to the host")
@click.option("--no-deps", is_flag=True, help="Don't start linked services")
@click.option("--use-aliases", is_flag=True, help="Use the service's network useAliases in the network(s) the container connects to")
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(detach: bool, rm: bool, env: tuple[str, ...], labels: tuple[str, ...], no_tty: bool, interactive: bool,
        name: str | None, entrypoint: str | None, user: str | None, workdir: str | None, service_ports: bool,
        publish: tuple[str, ...], no_deps: bool, use_aliases: bool, service: str, command: tuple[str, ...]) -> None:
    """Run a one-off command on a service"""
    import shlex

    p = project()
    tty = not no_tty and not detach and _isatty(sys.stdin) and _isatty(sys.stdout)
    record = p.create_oneoff(service, list(command) if command else None, env=env, name=name,
                             entrypoint=shlex.split(entrypoint) if entrypoint is not None else None, user=user,
                             workdir=workdir, service_ports=service_ports, publish=publish, remove=rm, tty=tty,
                             interactive=interactive and not detach, no_deps=no_deps, labels=labels,
                             use_aliases=use_aliases, progress=_progress())
    containers = p.engine.containers
    if detach:
        containers.start_and_wait(record.id)
        click.echo(record.id)   # v2 prints the ID
        return
    sys.exit(_attach_run(containers, record, tty, interactive, rm))


def _attach_run(containers: Any, record: "ContainerRecord", tty: bool, interactive: bool, rm: bool) -> int:
    """Start a created one-off attached, as ``dockyard run`` does (cli/ops.py run): its output
    here, our input to it, its exit code back."""
    from dockyard.containers import attach

    keys = attach.parse_detach_keys(None)
    try:
        handle = containers.start(record.id, attach_first=True, tty_size=attach.terminal_size() if tty else None)
        assert handle is not None
        handle.wait_created()
        sock = containers.connect(record.id, stdin=interactive, stdout=True, stderr=True)
        handle.wait_started()
        containers.mark_running(handle)
    except BaseException:
        if rm:
            containers.remove(record.id, force=True)
        raise
    result = attach.stream(sock, stdin=interactive, tty=tty, sig_proxy=True, detach_keys=keys) if sock else None
    if result is not None and result.get("Detached"):
        return 0
    if result is None:
        current = containers.find(record.id)
        return current.exit_code if current is not None and current.exit_code is not None else 125
    code = int(result.get("StatusCode", 0))
    if result.get("RemoveRecord") and sock is not None:
        containers.forget(record.id)
        attach.confirm_removal(sock)
    return code


# ---------------------------------------------------------------- the simple verbs

def _simple(verb: str, by_name: bool = True, **kwargs: Any) -> Callable[..., None]:
    def action(services: tuple[str, ...], **more: Any) -> None:
        p = project(by_name=by_name)
        getattr(p, verb)(list(services) or None, **more, **kwargs, progress=_progress())
    return action


@compose.command("start")
@click.argument("services", nargs=-1)
def start(services: tuple[str, ...]) -> None:
    """Start services"""
    _simple("start")(services)


@compose.command("stop")
@click.option("-t", "--timeout", type=int, metavar="int", help="Specify a shutdown timeout in seconds")
@click.argument("services", nargs=-1)
def stop(timeout: int | None, services: tuple[str, ...]) -> None:
    """Stop services"""
    _simple("stop")(services, timeout=timeout)


@compose.command("restart")
@click.option("-t", "--timeout", type=int, metavar="int", help="Specify a shutdown timeout in seconds")
@click.option("--no-deps", is_flag=True, help="Don't restart dependent services")
@click.argument("services", nargs=-1)
def restart(timeout: int | None, no_deps: bool, services: tuple[str, ...]) -> None:
    """Restart service containers"""
    _simple("restart")(services, timeout=timeout)


@compose.command("kill")
@click.option("-s", "--signal", "signal_", default="SIGKILL", metavar="string",
              help='SIGNAL to send to the container (default "SIGKILL")')
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not defined in the Compose file")
@click.argument("services", nargs=-1)
def kill(signal_: str, remove_orphans: bool, services: tuple[str, ...]) -> None:
    """Force stop service containers"""
    p = project(by_name=True)
    if not [r for r in p.containers(list(services) or None, all=False) if r.status in ("running", "paused")]:
        click.echo("no container to kill", err=True)   # v2: a note, not an error
        return
    p.kill(list(services) or None, signal=signal_, progress=_progress())


@compose.command("pause")
@click.argument("services", nargs=-1)
def pause(services: tuple[str, ...]) -> None:
    """Pause services"""
    _simple("pause")(services)


@compose.command("unpause")
@click.argument("services", nargs=-1)
def unpause(services: tuple[str, ...]) -> None:
    """Unpause services"""
    _simple("unpause")(services)


@compose.command("rm")
@click.option("-f", "--force", is_flag=True, help="Don't ask to confirm removal")
@click.option("-s", "--stop", "stop_", is_flag=True, help="Stop the containers, if required, before removing")
@click.option("-v", "--volumes", is_flag=True, help="Remove any anonymous volumes attached to containers")
@click.argument("services", nargs=-1)
def rm(force: bool, stop_: bool, volumes: bool, services: tuple[str, ...]) -> None:
    """Removes stopped service containers"""
    p = project(by_name=True)
    targets = [r for r in p.containers(list(services) or None, all=True) if stop_ or not r.running]
    if not targets:
        click.echo("No stopped containers", err=True)
        return
    if not force:
        click.echo("Going to remove " + ", ".join(r.name for r in targets), err=True)
        try:
            sure = click.confirm("? Are you sure?", default=False, err=True)
        except click.exceptions.Abort:
            sure = False
        if not sure:
            return
    p.remove(list(services) or None, stop=stop_, volumes=volumes, progress=_progress())


@compose.command("top")
@click.argument("services", nargs=-1)
def top(services: tuple[str, ...]) -> None:
    """Display the running processes"""
    p = project(by_name=True)
    by_name = {r.name: r for r in p.containers(list(services) or None, all=False)}
    rows: list[list[str]] = []
    header: list[str] = []
    for name, head, procs in p.top(list(services) or None):
        record = by_name.get(name)
        header = header or head
        for proc in procs:
            rows.append([_service_of(record) if record else name, str(_number(record)) if record else "", *proc])
    if not header:
        return
    click.echo(_table([["SERVICE", "#", *header], *rows], minwidth=4, padding=2), nl=False)


@compose.command("port")
@click.option("--protocol", default="tcp", type=click.Choice(["tcp", "udp"]), metavar="string", help="tcp or udp")
@click.option("--index", type=int, default=1, metavar="int", help="Index of the container if service has multiple replicas")
@click.argument("service")
@click.argument("private_port")
def port(protocol: str, index: int, service: str, private_port: str) -> None:
    """Print the public port for a port binding"""
    p = project(by_name=True)
    answer = p.port(service, private_port, protocol=protocol, index=index)
    if not answer:
        names = [r.name for r in p.containers([service], all=True) if _number(r) == index]
        raise DockyardError(f"no port {private_port}/{protocol} for container {names[0] if names else service}")
    click.echo(answer)


@compose.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs")
@click.option("--format", "format_", type=click.Choice(["table", "json"]), default="table", metavar="string",
              help='Format the output. Values: [table | json]')
@click.argument("services", nargs=-1)
def images(quiet: bool, format_: str, services: tuple[str, ...]) -> None:
    """List images used by the created containers"""
    from dockyard.cli.formatting import short_id
    from dockyard.units import human_size

    p = project(by_name=True)
    rows = p.images(list(services) or None)
    if quiet:
        ids = []
        for row in rows:
            if row["ImageId"] not in ids:
                ids.append(row["ImageId"])
        click.echo("".join(i + "\n" for i in ids), nl=False)
        return
    if format_ == "json":
        click.echo(json.dumps([{"ID": r["ImageId"], "ContainerName": r["Container"], "Repository": r["Repository"],
                                "Tag": r["Tag"], "Size": r["Size"]} for r in rows], separators=(",", ":")))
        return
    table = [["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]]
    table += [[r["Container"], r["Repository"], r["Tag"] or "<none>", short_id(r["ImageId"]),
               human_size(r["Size"], 3)] for r in rows]
    click.echo(_table(table, minwidth=20, padding=3), nl=False)


# ---------------------------------------------------------------- images: build, pull, push

@compose.command("build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image")
@click.option("-q", "--quiet", is_flag=True, help="Don't print anything to STDOUT")
@click.argument("services", nargs=-1)
def build(no_cache: bool, pull: bool, quiet: bool, services: tuple[str, ...]) -> None:
    """Build or rebuild services"""
    _simple("build", by_name=False)(services, no_cache=no_cache, pull=pull)


@compose.command("pull")
@click.option("--ignore-buildable", is_flag=True, help="Ignore images that can be built")
@click.option("-q", "--quiet", is_flag=True, help="Pull without printing progress information")
@click.option("--ignore-pull-failures", is_flag=True, help="Pull what it can and ignores images with pull failures")
@click.argument("services", nargs=-1)
def pull(ignore_buildable: bool, quiet: bool, ignore_pull_failures: bool, services: tuple[str, ...]) -> None:
    """Pull service images"""
    _simple("pull", by_name=False)(services, ignore_buildable=ignore_buildable)


@compose.command("push")
@click.option("-q", "--quiet", is_flag=True, help="Push without printing progress information")
@click.option("--ignore-push-failures", is_flag=True, help="Push what it can and ignores images with push failures")
@click.argument("services", nargs=-1)
def push(quiet: bool, ignore_push_failures: bool, services: tuple[str, ...]) -> None:
    """Push service images"""
    _simple("push", by_name=False)(services)


# ---------------------------------------------------------------- config / version

@compose.command("config")
@click.option("--services", "list_services", is_flag=True, help="Print the service names, one per line.")
@click.option("--volumes", "list_volumes", is_flag=True, help="Print the volume names, one per line.")
@click.option("--networks", "list_networks", is_flag=True, help="Print the network names, one per line.")
@click.option("--images", "list_images", is_flag=True, help="Print the image names, one per line.")
@click.option("--profiles", "list_profiles", is_flag=True, help="Print the profile names, one per line.")
@click.option("--format", "format_", type=click.Choice(["yaml", "json"]), default="yaml", metavar="string",
              help='Format the output. Values: [yaml | json]')
@click.option("-q", "--quiet", is_flag=True, help="Only validate the configuration, don't print anything")
@click.option("-o", "--output", metavar="string", help="Save to file (default to stdout)")
def config(list_services: bool, list_volumes: bool, list_networks: bool, list_images: bool, list_profiles: bool,
           format_: str, quiet: bool, output: str | None) -> None:
    """Parse, resolve and render compose file in canonical format"""
    from dockyard.compose import model

    loaded = load_project(_options())
    if quiet:
        return
    if list_services:
        text = _lines(model.service_order(loaded))
    elif list_volumes:
        text = _lines(model.list_volumes(loaded))
    elif list_networks:
        text = _lines(sorted(loaded.model.get("networks") or {}))
    elif list_images:
        text = _lines(model.list_images(loaded))
    elif list_profiles:
        text = _lines(model.list_profiles(loaded))
    else:
        text = model.render(loaded, format_)
    if output:
        with open(output, "w") as f:
            f.write(text)
        return
    click.echo(text, nl=False)


def _lines(items: Iterable[str]) -> str:
    return "".join(f"{item}\n" for item in items)


@compose.command("version")
@click.option("-f", "--format", "format_", type=click.Choice(["pretty", "json"]), default="pretty", metavar="string",
              help='Format the output. Values: [pretty | json]')
@click.option("--short", is_flag=True, help="Shows only Compose's version number")
def version(format_: str, short: bool) -> None:
    """Show the Docker Compose version information"""
    from dockyard.compose.labels import COMPOSE_VERSION

    if short:
        click.echo(COMPOSE_VERSION)
    elif format_ == "json":
        click.echo(json.dumps({"version": f"v{COMPOSE_VERSION}"}))
    else:
        click.echo(f"Docker Compose version v{COMPOSE_VERSION}")
