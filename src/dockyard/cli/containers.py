"""Container commands: ``run``, ``create``, ``start``, ``stop``, ``kill``, ``restart``, ``rm``,
``ps``, ``logs``, ``exec``, ``inspect``, ``wait``, ``rename``, ``pause``, ``unpause``, ``top``,
``stats``, ``attach``, ``cp``, ``container prune`` and ``system reset``.

Parsing and printing only; the verbs live in ``engine.containers``. Only click at module
level: ``ps`` and ``run`` are typed all day.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.containers.store import ContainerRecord

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
# How long `run -d` watches a new container for an early death (DOCKYARD_EARLY_EXIT_WINDOW):
# a second for a person at a terminal, nothing for scripts (they check `ps`/`wait` themselves).
EARLY_EXIT_WINDOW = float(os.environ.get("DOCKYARD_EARLY_EXIT_WINDOW") or (1.0 if sys.stderr.isatty() else 0.0))
PRUNE_WARNING = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"


def _engine():  # noqa: ANN202
    return common.engine()


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _each(names: Sequence[str], action: Callable[[str], Any], echo: bool = True) -> None:
    """Docker goes on after a failed name, reports each, and fails at the end."""
    from dockyard.errors import DockyardError

    errors: list[DockyardError] = []
    for name in names:
        try:
            action(name)
        except DockyardError as e:
            errors.append(e)
            continue
        if echo:
            _write(name + "\n")
    if errors:
        for e in errors[:-1]:
            click.echo(f"Error: {e}", err=True)
        raise errors[-1]


# ---- create / run -----------------------------------------------------------------------


def _create_options(f: Callable) -> Callable:
    options = [
        click.option("--name", metavar="NAME", help="Assign a name to the container."),
        click.option("-e", "--env", "env", multiple=True, metavar="LIST", help="Set environment variables."),
        click.option("--env-file", multiple=True, metavar="FILE", help="Read in a file of environment variables."),
        click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container."),
        click.option("-u", "--user", metavar="USER", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--entrypoint", metavar="CMD", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-h", "--hostname", metavar="NAME", help="Container host name."),
        click.option("-l", "--label", "labels", multiple=True, metavar="LIST", help="Set meta data on a container."),
        click.option("--label-file", multiple=True, metavar="FILE", help="Read in a line delimited file of labels."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--cap-add", multiple=True, metavar="LIST", help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, metavar="LIST", help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--runtime", metavar="STRING", help="Runtime to use for this container (pyrunc, crun, runc)."),
        click.option("--network", "--net", "network", metavar="NETWORK", help="Connect a container to a network (none, host)."),
        click.option("-m", "--memory", metavar="BYTES", help="Memory limit."),
        click.option("--memory-swap", metavar="BYTES", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap."),
        click.option("--cpus", metavar="DECIMAL", help="Number of CPUs."),
        click.option("--cpu-shares", "-c", type=int, help="CPU shares (relative weight)."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)."),
        click.option("--stop-signal", metavar="STRING", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
        click.option("--ulimit", multiple=True, metavar="ULIMIT", help="Ulimit options."),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps processes."),
        click.option("-v", "--volume", "volumes", multiple=True, metavar="LIST", help="Bind mount a volume."),
        click.option("--mount", "mounts", multiple=True, metavar="MOUNT", help="Attach a filesystem mount to the container."),
        click.option("--tmpfs", multiple=True, metavar="LIST", help="Mount a tmpfs directory."),
        click.option("--restart", default="no", metavar="STRING", help="Restart policy to apply when a container exits."),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("--log-driver", metavar="STRING", help="Logging driver for the container (json-file, none)."),
        click.option("--log-opt", multiple=True, metavar="LIST", help="Log driver options."),
        click.option("--pull", type=click.Choice(["always", "missing", "never"]), default="missing",
                     help="Pull image before running."),
        click.option("-a", "--attach", multiple=True, metavar="LIST", help="Attach to STDIN, STDOUT or STDERR."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _ram(value: str | None) -> int | None:
    if value is None:
        return None
    if value == "-1":
        return -1
    from dockyard.containers.logs import parse_size
    from dockyard.errors import DockyardError

    try:
        return parse_size(value)
    except ValueError:
        raise DockyardError(f"invalid size: '{value}'", exit_code=125) from None


def _read_kv_files(paths: Sequence[str]) -> list[str]:
    from dockyard.errors import DockyardError

    out = []
    for path in paths:
        try:
            text = open(path).read()
        except OSError as e:
            raise DockyardError(f"open {path}: {(e.strerror or str(e)).lower()}", exit_code=125) from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def build_create(kw: dict[str, Any], image: str, command: Sequence[str]) -> tuple[dict, dict]:
    """Flags into Docker's (Config, HostConfig)."""
    from dockyard.containers import mounts as mounts_mod
    from dockyard.errors import DockyardError

    env = _read_kv_files(kw.get("env_file") or ()) + list(kw.get("env") or ())
    labels: dict[str, str] = {}
    for item in _read_kv_files(kw.get("label_file") or ()) + list(kw.get("labels") or ()):
        key, _, value = item.partition("=")
        labels[key] = value
    attach = [a.lower() for a in kw.get("attach") or ()]
    detach = kw.get("detach", False)
    config: dict[str, Any] = {
        "Hostname": kw.get("hostname") or "", "User": kw.get("user") or "",
        "AttachStdin": bool(kw.get("interactive")) and not detach if not attach else "stdin" in attach,
        "AttachStdout": not detach if not attach else "stdout" in attach,
        "AttachStderr": not detach if not attach else "stderr" in attach,
        "Tty": bool(kw.get("tty")), "OpenStdin": bool(kw.get("interactive")),
        "StdinOnce": bool(kw.get("interactive")) and not detach,
        "Env": env, "Cmd": list(command) or None, "Image": image, "WorkingDir": kw.get("workdir") or "",
        "Entrypoint": None if kw.get("entrypoint") is None else [kw["entrypoint"]],
        "Labels": labels,
    }
    if kw.get("stop_signal"):
        config["StopSignal"] = kw["stop_signal"]
    if kw.get("stop_timeout") is not None:
        config["StopTimeout"] = kw["stop_timeout"]
    restart = kw.get("restart") or "no"
    name, _, count = restart.partition(":")
    if count and not count.isdigit():
        raise DockyardError(f"invalid restart policy format: {restart}", exit_code=125)
    ulimits = []
    for item in kw.get("ulimit") or ():
        key, sep, limits = item.partition("=")
        soft, _, hard = limits.partition(":")
        try:
            ulimits.append({"Name": key, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise DockyardError(f"invalid ulimit argument: {item}", exit_code=125) from None
    log_config: dict[str, Any] = {"Type": kw.get("log_driver") or "json-file", "Config": {}}
    for item in kw.get("log_opt") or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise DockyardError(f"invalid key value pair format in log-opt: {item}", exit_code=125)
        log_config["Config"][key] = value
    nano_cpus = None
    if kw.get("cpus"):
        try:
            nano_cpus = int(float(kw["cpus"]) * 1e9)
        except ValueError:
            raise DockyardError(f"invalid argument \"{kw['cpus']}\" for \"--cpus\" flag", exit_code=125) from None
        if nano_cpus > (os.cpu_count() or 1) * 1e9:
            raise DockyardError(f"range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                                f"{os.cpu_count()} CPUs available", exit_code=125)
    host: dict[str, Any] = {
        "Binds": list(kw.get("volumes") or ()) or None,
        "NetworkMode": kw.get("network") or "default",
        "RestartPolicy": {"Name": name, "MaximumRetryCount": int(count or 0)},
        "AutoRemove": bool(kw.get("rm")),
        "CapAdd": list(kw.get("cap_add") or ()) or None, "CapDrop": list(kw.get("cap_drop") or ()) or None,
        "Privileged": bool(kw.get("privileged")), "ReadonlyRootfs": bool(kw.get("read_only")),
        "Tmpfs": {t.partition(":")[0]: t.partition(":")[2] for t in kw.get("tmpfs") or ()} or None,
        "Memory": _ram(kw.get("memory")) or 0, "MemorySwap": _ram(kw.get("memory_swap")) or 0,
        "NanoCpus": nano_cpus or 0, "CpuShares": kw.get("cpu_shares") or 0,
        "PidsLimit": kw.get("pids_limit"), "Ulimits": ulimits or None, "Init": True if kw.get("init") else None,
        "Runtime": kw.get("runtime") or os.environ.get("DOCKYARD_RUNTIME") or "pyrunc",
        "Mounts": [mounts_mod.parse_mount(m) for m in kw.get("mounts") or ()] or None,
        "LogConfig": log_config,
    }
    for b in host["Binds"] or []:
        mounts_mod.parse_volume(b)  # fail early, with Docker's message
    return config, host


def _create(kw: dict[str, Any], image: str, command: Sequence[str]) -> "ContainerRecord":
    from dockyard.errors import DockyardError, NotFoundError

    engine = _engine()
    config, host = build_create(kw, image, command)
    pull = kw.get("pull") or "missing"
    if pull == "always" or (pull == "missing" and engine.image_store.find(image) is None):
        if pull == "missing":
            click.echo(f"Unable to find image '{_familiar(image)}' locally", err=True)
        try:
            _pull(engine, image)
        except DockyardError as e:
            e.exit_code = 125
            raise
    try:
        return engine.containers.create(config, host, kw.get("name"))
    except NotFoundError as e:
        e.exit_code = 125
        raise


def _familiar(image: str) -> str:
    from dockyard import reference

    try:
        return reference.parse(image).familiar()
    except Exception:  # noqa: BLE001 - the pull reports bad references properly
        return image


def _pull(engine: Any, image: str) -> None:
    """Docker's run pulls a missing image; its progress goes to stderr, away from the output."""
    pulled = engine.images.pull(image)
    click.echo(f"Status: Downloaded newer image for {_familiar(image)} ({pulled.short_id})", err=True)


@click.command(context_settings={"allow_interspersed_args": False})
@_create_options
@click.argument("image", metavar="IMAGE")
@click.argument("command", nargs=-1, metavar="[COMMAND] [ARG...]")
def create(image: str, command: tuple[str, ...], **kw: Any) -> None:
    """Create a new container."""
    record = _create(kw, image, command)
    _write(record.id + "\n")


@click.command(context_settings={"allow_interspersed_args": False})
@_create_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--sig-proxy", type=bool, default=True, help="Proxy received signals to the process.")
@click.argument("image", metavar="IMAGE")
@click.argument("command", nargs=-1, metavar="[COMMAND] [ARG...]")
def run(image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool, **kw: Any) -> None:
    """Create and run a new container from an image."""
    kw["detach"] = detach
    containers = _engine().containers
    shim = containers.spawn_shim()  # its start-up overlaps the creation below
    try:
        record = _create(kw, image, command)
    except BaseException:
        shim.cancel()
        raise
    if detach:
        try:
            containers.start_and_wait(record.id, shim=shim)
        except BaseException:
            if kw.get("rm"):
                containers.remove(record.id, force=True)
            raise
        _write(record.id + "\n")
        _early_exit_warning(record)
        return
    from dockyard.containers import attach

    tty = bool(kw.get("tty"))
    try:
        handle = containers.start(record.id, attach_first=True, tty_size=attach.terminal_size() if tty else None,
                                  shim=shim)
        assert handle is not None
        handle.wait_created()
        sock = containers.connect(record.id, stdin=bool(kw.get("interactive")), stdout=True, stderr=True)
        handle.wait_started()
        containers.mark_running(handle)
    except BaseException:
        if kw.get("rm"):
            containers.remove(record.id, force=True)
        raise
    result = attach.stream(sock, stdin=bool(kw.get("interactive")), tty=tty, sig_proxy=sig_proxy) if sock else None
    if result is None:
        current = containers.find(record.id)
        code = current.exit_code if current is not None else 125
    else:
        code = int(result.get("StatusCode", 0))
        if result.get("RemoveRecord") and sock is not None:
            containers.store.delete(record.id)  # --rm: the shim removed the files, we the record
            attach.confirm_removal(sock)
    sys.exit(code)


def _early_exit_warning(record: "ContainerRecord") -> None:
    """Better than Docker: say so when a detached container dies in its first second."""
    if EARLY_EXIT_WINDOW <= 0:
        return
    containers = _engine().containers
    deadline = time.monotonic() + EARLY_EXIT_WINDOW
    sock = containers.connect(record.id)
    frame: dict[str, Any] | None = {}
    if sock is not None:
        frame = containers.wait_exit_frame(sock, EARLY_EXIT_WINDOW)
        sock.close()
        if frame is None and time.monotonic() >= deadline - 0.01:
            return  # still running after its first second
    current = containers.find(record.id)
    frame = frame or {}
    code = frame.get("StatusCode") if frame else (current.exit_code if current else "?")
    if current is not None and current.status in ("running", "restarting", "paused") and not frame:
        return
    lines = []
    if current is not None:
        try:
            lines = [r["log"].rstrip("\n") for r in containers.logs(record.id, tail=5)]
        except Exception:  # noqa: BLE001 - a warning must not fail the run
            lines = []
    where = f"dockyard logs {record.name}" if current is not None else "its logs are gone with it (--rm)"
    message = [f"WARNING: container {record.name} exited with code {code} within its first second, so it is "
               f"not running: `dockyard ps` will not list it and it has no IP address."]
    if lines:
        message.append("Its last log lines:")
        message += [f"    {line}" for line in lines]
    message.append(f"See `{where}` and `dockyard ps -a`." if current is not None else where + ".")
    click.echo("\n".join(message), err=True)


# ---- start / stop / kill / restart / rm / wait / rename / pause ---------------------------


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def start(attach: bool, interactive: bool, containers_: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    from dockyard.errors import DockyardError

    containers = _engine().containers
    if attach or interactive:
        if len(containers_) > 1:
            raise DockyardError("you cannot start and attach multiple containers at once")
        from dockyard.containers import attach as attaching

        record = containers.get(containers_[0])
        tty = bool(record.container_config.get("Tty"))
        handle = containers.start(record.id, attach_first=True, tty_size=attaching.terminal_size() if tty else None)
        if handle is None:
            sock = containers.connect(record.id, stdin=interactive, stdout=True, stderr=True)
        else:
            handle.wait_created()
            sock = containers.connect(record.id, stdin=interactive, stdout=True, stderr=True)
            handle.wait_started()
            containers.mark_running(handle)
        result = attaching.stream(sock, stdin=interactive, tty=tty) if sock else None
        current = containers.find(record.id)
        sys.exit(int(result["StatusCode"]) if result else (current.exit_code if current else 0))

    def one(name: str) -> None:
        try:
            containers.start_and_wait(name)
        except DockyardError as e:
            raise DockyardError(f"Error response from daemon: {e}\nError: failed to start containers: {name}",
                                exit_code=1) from None

    _each(containers_, one)


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "signal", metavar="STRING", help="Signal to send to the container.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def stop(timeout: int | None, signal: str | None, containers_: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    containers = _engine().containers
    _each(containers_, lambda n: containers.stop(n, timeout, signal))


@click.command()
@click.option("-s", "--signal", "signal", default="KILL", metavar="STRING", help="Signal to send to the container.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def kill(signal: str, containers_: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    containers = _engine().containers
    _each(containers_, lambda n: containers.kill(n, signal))


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def restart(timeout: int | None, containers_: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    containers = _engine().containers
    _each(containers_, lambda n: containers.restart(n, timeout))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def rm(force: bool, volumes: bool, link: bool, containers_: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from dockyard.errors import NotFoundError

    containers = _engine().containers

    def one(name: str) -> None:
        try:
            containers.remove(name, force=force, volumes=volumes)
        except NotFoundError as e:
            if force:
                return
            raise e

    _each(containers_, one)


@click.command()
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def wait(containers_: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    containers = _engine().containers
    _each(containers_, lambda n: _write(f"{containers.wait(n)}\n"), echo=False)


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container."""
    _engine().containers.rename(container, new_name)


@click.command()
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def pause(containers_: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    containers = _engine().containers
    _each(containers_, containers.pause)


@click.command()
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def unpause(containers_: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    containers = _engine().containers
    _each(containers_, containers.unpause)


# ---- ps ---------------------------------------------------------------------------------


def status_text(r: "ContainerRecord", now: float) -> str:
    from dockyard.cli.formatting import human_duration

    if r.status in ("running", "paused"):
        text = f"Up {human_duration(now - (r.started_at or now))}"
        return text + " (Paused)" if r.status == "paused" else text
    if r.status == "restarting":
        return f"Restarting ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.status == "exited":
        if not r.finished_at:
            return "Created"
        return f"Exited ({r.exit_code}) {human_duration(now - r.finished_at)} ago"
    if r.status == "removing":
        return "Removal In Progress"
    if r.status == "dead":
        return "Dead"
    return "Created"


def ps_rows(records: Sequence["ContainerRecord"], trunc: bool, now: float | None = None) -> list[dict[str, str]]:
    from dockyard.cli import formatting as fmt

    now = time.time() if now is None else now
    rows = []
    for r in records:
        command = " ".join([r.config.get("Path", "")] + list(r.config.get("Args") or []))
        labels = r.container_config.get("Labels") or {}
        mounts = [m.get("Name") or m.get("Source", "") for m in r.config.get("Mounts") or []]
        rows.append({
            "Command": '"' + (fmt.ellipsis(command, 20) if trunc else command) + '"',
            "CreatedAt": fmt.go_time_string(r.created),
            "ID": r.id[:12] if trunc else r.id,
            "Image": r.image,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "LocalVolumes": str(sum(1 for m in r.config.get("Mounts") or [] if m.get("Type") == "volume")),
            "Mounts": ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts),
            "Names": r.name,
            "Networks": r.host_config.get("NetworkMode") or "default",
            "Ports": "",
            "RunningFor": fmt.time_ago(r.created, now),
            "Size": "",
            "State": r.status,
            "Status": status_text(r, now),
        })
    return rows


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER", help="Filter output based on conditions provided.")
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
def ps(all_: bool, filters: tuple[str, ...], format_: str | None, last: int, latest: bool, no_trunc: bool,
       quiet: bool, size: bool) -> None:
    """List containers."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import parse_filters

    records = _engine().containers.list(all=all_, filters=parse_filters(filters), last=1 if latest else last)
    rows = ps_rows(records, trunc=not no_trunc)
    if quiet:
        _write("".join(r["ID"] + "\n" for r in rows))
        return
    template = PS_TABLE if not format_ or format_ == "table" else format_
    _write(fmt.render_rows(template, rows, PS_HEADERS))


# ---- logs ---------------------------------------------------------------------------------


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("--since", metavar="STRING", help="Show logs since timestamp or relative (e.g. 42m).")
@click.option("-n", "--tail", default="all", metavar="STRING", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--details", is_flag=True, hidden=True)
@click.argument("container")
def logs(follow: bool, since: str | None, tail: str, timestamps: bool, details: bool, container: str) -> None:
    """Fetch the logs of a container."""
    from dockyard.containers.logs import parse_since
    from dockyard.errors import DockyardError

    tail_n = None if tail == "all" else int(tail) if tail.lstrip("-").isdigit() else None
    try:
        since_t = parse_since(since) if since else None
    except ValueError as e:
        raise DockyardError(str(e)) from None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for record in _engine().containers.logs(container, follow=follow, tail=tail_n, since=since_t):
            text = record["log"]
            if timestamps:
                text = record["time"] + " " + text
            stream = err if record.get("stream") == "stderr" else out
            stream.write(text.encode())
            stream.flush()
    except KeyboardInterrupt:
        return


# ---- exec / attach ------------------------------------------------------------------------


@click.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-e", "--env", "env", multiple=True, metavar="LIST", help="Set environment variables.")
@click.option("--env-file", multiple=True, metavar="FILE", help="Read in a file of environment variables.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-u", "--user", metavar="USER", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, metavar="COMMAND [ARG...]")
def exec_(detach: bool, env: tuple[str, ...], env_file: tuple[str, ...], interactive: bool, tty: bool,
          user: str | None, workdir: str | None, privileged: bool, container: str, command: tuple[str, ...]) -> None:
    """Execute a command in a running container."""
    import subprocess

    containers = _engine().containers
    record = containers.get(container)
    for source in containers.replaced_binds(record):
        click.echo(_replaced_bind_warning(record.name, source), err=True)
    env_list = _read_kv_files(env_file) + list(env)
    if tty and not detach and os.isatty(0):
        sys.exit(_exec_tty(containers, record, command, env_list, user, workdir, interactive))
    stdin = None if interactive and not detach else subprocess.DEVNULL
    code = containers.exec(record.id, command, env=env_list, user=user, workdir=workdir, detach=detach, stdin=stdin)
    sys.exit(code)


def _exec_tty(containers: Any, record: Any, command: Sequence[str], env: list[str], user: str | None,
              workdir: str | None, interactive: bool) -> int:
    """A pty of our own: the process gets its slave, we pump our terminal to its master."""
    import select
    import termios
    import threading
    import tty as ttys

    master, slave = os.openpty()
    size = os.get_terminal_size(0)
    import fcntl
    import struct

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.lines, size.columns, 0, 0))
    saved = termios.tcgetattr(0)
    ttys.setraw(0)
    done = threading.Event()

    def pump() -> None:  # our terminal <-> the pty master, until the process is gone
        while not done.is_set():
            ready, _, _ = select.select([master] + ([0] if interactive else []), [], [], 0.1)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                os.write(master, os.read(0, 65536))

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    try:
        # exec runs here, in the main thread (it forwards signals to the process)
        code = containers.exec(record.id, command, env=[*env, "TERM=xterm"], user=user, workdir=workdir,
                               stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
        pumper.join(2)  # the rest of the output, until EIO on the master
        done.set()
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return code


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy", type=bool, default=True, help="Proxy all received signals to the process.")
@click.argument("container")
def attach(no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from dockyard.containers import attach as attaching
    from dockyard.errors import ConflictError

    containers = _engine().containers
    record = containers.get(container)
    if record.status not in ("running", "paused", "restarting"):
        raise ConflictError("You cannot attach to a stopped container, start it first")
    stdin = not no_stdin and bool(record.container_config.get("OpenStdin"))
    tty = bool(record.container_config.get("Tty"))
    sock = containers.connect(record.id, stdin=stdin, stdout=True, stderr=True)
    result = attaching.stream(sock, stdin=stdin, tty=tty, sig_proxy=sig_proxy) if sock else None
    current = containers.find(record.id)
    sys.exit(int(result["StatusCode"]) if result else (current.exit_code if current else 0))


# ---- inspect / top / stats ----------------------------------------------------------------


def _replaced_bind_warning(name: str, source: str) -> str:
    return (f"WARNING: {source} was replaced on the host after container {name} started (an editor saving a "
            "new file does that): a single-file bind mount still shows the container the old file. Restart the "
            "container, or bind-mount the directory that holds the file instead.")


@click.command(name="inspect")
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("names", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def container_inspect(format_: str | None, size: bool, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers."""
    inspect_objects(names, format_, "container")


def inspect_objects(names: Sequence[str], format_: str | None, type_: str | None) -> None:
    """``inspect``: containers first (as Docker does), then images, then volumes."""
    import json

    from dockyard.cli import formatting as fmt
    from dockyard.errors import DockyardError, NotFoundError

    engine = _engine()
    found: list[dict[str, Any]] = []
    images: set[int] = set()   # positions of images in found: their nil fields print as images' do
    errors: list[DockyardError] = []
    for name in names:
        obj = None
        if type_ in (None, "container"):
            record = engine.containers.find(name)
            if record is not None:
                obj = engine.containers.inspect(record.id)
                for source in engine.containers.replaced_binds(record):
                    click.echo(_replaced_bind_warning(record.name, source), err=True)
        if obj is None and type_ in (None, "image"):
            try:
                obj = engine.images.inspect(name)
                images.add(len(found))
            except NotFoundError:
                obj = None
        if obj is None and type_ in (None, "volume"):
            volume = engine.volumes.find(name)
            obj = volume.inspect() if volume is not None else None
        if obj is None:
            what = {"container": "container", "image": "image", "volume": "volume"}.get(type_ or "", "object")
            errors.append(NotFoundError(f"No such {what}: {name}"))
            continue
        found.append(obj)
    if format_:
        from dockyard.images.inspect import TEMPLATE_NILS

        template = fmt.Template(format_, strict=False)
        image_template = fmt.Template(format_, strict=False, nil=TEMPLATE_NILS) if images else template
        _write("".join((image_template if i in images else template).render(o) + "\n" for i, o in enumerate(found)))
    elif found and len(images) == len(found):
        from dockyard.images.inspect import inspect_json

        _write(inspect_json(found) + "\n")
    else:
        _write(json.dumps(found, indent=4) + "\n")
    if errors:
        for e in errors[:-1]:
            click.echo(f"Error: {e}", err=True)
        raise errors[-1]


@click.command(name="inspect")
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.option("--type", "type_", type=click.Choice(["container", "image", "volume"]), help="Only inspect objects of the given type.")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ID [NAME|ID...]")
def inspect(format_: str | None, size: bool, type_: str | None, names: tuple[str, ...]) -> None:
    """Return low-level information on Docker objects."""
    if type_ == "image":
        from dockyard.cli.images import _inspect

        _inspect(names, format_, "No such image")
        return
    inspect_objects(names, format_, type_)


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, metavar="[ps OPTIONS]")
def top(container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from dockyard.cli.formatting import tabulate

    header, rows = _engine().containers.top(container, ps_args)
    _write(tabulate([header] + rows, minwidth=1, padding=3) if rows or header else "")


def _binary(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.4g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1024
    return f"{size}B"


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.argument("containers_", nargs=-1, metavar="[CONTAINER...]")
def stats(all_: bool, no_stream: bool, no_trunc: bool, format_: str | None, containers_: tuple[str, ...]) -> None:
    """Display a live stream of container(s) resource usage statistics (one sample: --no-stream)."""
    from dockyard.cli import formatting as fmt

    containers = _engine().containers
    while True:
        records = [containers.get(c) for c in containers_] if containers_ else containers.list(all=all_)
        live = [r for r in records if r.status in ("running", "paused")]
        first = {r.id: containers.stats(r) for r in live}
        time.sleep(0.5)
        rows = []
        for r in records:
            row = {"Container": r.id[:12] if not no_trunc else r.id, "ID": r.id[:12] if not no_trunc else r.id,
                   "Name": r.name, "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%",
                   "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
            if r.id in first:
                a, b = first[r.id], containers.stats(r)
                cpu = (b["cpu_ns"] - a["cpu_ns"]) / max((b["time"] - a["time"]) * 1e9, 1) * 100
                row.update(CPUPerc=f"{cpu:.2f}%", MemUsage=f"{_binary(b['memory_usage'])} / {_binary(b['memory_limit'])}",
                           MemPerc=f"{b['memory_usage'] / b['memory_limit'] * 100:.2f}%", PIDs=str(b["pids"]))
            rows.append(row)
        template = format_ or ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
                               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
        headers = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                   "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                   "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
        _write(fmt.render_rows(template, rows, headers))
        if no_stream:
            return


# ---- cp -----------------------------------------------------------------------------------


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output.")
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
def cp(archive: bool, follow_link: bool, quiet: bool, source: str, dest: str) -> None:
    """Copy files/folders between a container and the local filesystem.

    CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH"""
    from dockyard.containers import copy
    from dockyard.errors import DockyardError

    containers = _engine().containers
    src_c, src_path = copy.split_arg(source)
    dst_c, dst_path = copy.split_arg(dest)
    if src_c and dst_c:
        raise DockyardError("copying between containers is not supported")
    if not src_c and not dst_c:
        raise DockyardError("must specify at least one container source")
    if src_c:
        copy.copy_from(containers, containers.get(src_c), src_path, dst_path, follow_link=follow_link)
    else:
        copy.copy_to(containers, containers.get(dst_c), src_path, dst_path, archive=archive,
                     follow_link=follow_link)


# ---- prune / reset --------------------------------------------------------------------------


@click.command()
@click.option("--filter", "filters", multiple=True, metavar="FILTER", help='Provide filter values (e.g. "until=<timestamp>").')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(filters: tuple[str, ...], force: bool) -> None:
    """Remove all stopped containers."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.images import confirm, parse_filters

    if not force and not confirm(PRUNE_WARNING):
        return
    removed, freed = _engine().containers.prune(parse_filters(filters))
    out = ""
    if removed:
        out = "Deleted Containers:\n" + "".join(r + "\n" for r in removed) + "\n"
    _write(out + f"Total reclaimed space: {fmt.human_size(freed)}\n")


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def system_reset(force: bool) -> None:
    """Remove everything dockyard created: containers, their mounts, volumes, images and state."""
    from dockyard.cli.images import confirm
    from dockyard.containers import reset

    if not force and not confirm("WARNING! This will remove all containers, volumes, images and state.\n"
                                 "Are you sure you want to continue?"):
        return
    for line in reset.system_reset(_engine()):
        _write(line + "\n")
