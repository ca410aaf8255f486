"""Container commands: ``run``, ``create``, ``start``, ``stop``, ``kill``, ``restart``, ``rm``,
``ps``, ``logs``, ``exec``, ``inspect``, ``wait``, ``rename``, ``pause``, ``unpause``, ``top``,
``stats``, ``attach``, ``cp``, ``container prune`` and ``system reset``.

Parsing and printing only; the verbs live in ``engine.containers``. Only click at module
level: ``ps`` and ``run`` are typed all day.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.containers.store import ContainerRecord

PRUNE_WARNING = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"


def _engine():  # noqa: ANN202
    return common.engine()


from dockyard.cli.ops import _write  # noqa: E402
from dockyard.cli.ops import each as _each  # noqa: E402
from dockyard.cli.ops import replaced_bind_warning as _replaced_bind_warning  # noqa: E402


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
        click.option("--cgroup-parent", metavar="STRING", help="Optional parent cgroup for the container."),
        click.option("--network", "--net", "network", metavar="NETWORK", help="Connect a container to a network (bridge, host, none, container:<name|id>, or a user network)."),
        click.option("--network-alias", "--net-alias", "network_alias", multiple=True, metavar="LIST", help="Add network-scoped alias for the container."),
        click.option("--ip", metavar="ADDRESS", help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--mac-address", metavar="STRING", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."),
        click.option("-p", "--publish", multiple=True, metavar="LIST", help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, metavar="LIST", help="Expose a port or a range of ports."),
        click.option("--link", "links", multiple=True, metavar="LIST", help="Add link to another container."),
        click.option("--add-host", multiple=True, metavar="LIST", help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--dns", multiple=True, metavar="LIST", help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, metavar="LIST", help="Set custom DNS search domains."),
        click.option("--dns-option", "--dns-opt", "dns_option", multiple=True, metavar="LIST", help="Set DNS options."),
        click.option("--domainname", metavar="STRING", help="Container NIS domain name."),
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
        # namespaces, devices, security and resources (containers/runflags.py)
        click.option("--shm-size", metavar="BYTES", help="Size of /dev/shm."),
        click.option("--sysctl", multiple=True, metavar="MAP", help="Sysctl options."),
        click.option("--security-opt", multiple=True, metavar="LIST", help="Security Options."),
        click.option("--device", multiple=True, metavar="LIST", help="Add a host device to the container."),
        click.option("--device-cgroup-rule", multiple=True, metavar="LIST",
                     help="Add a rule to the cgroup allowed devices list."),
        click.option("--group-add", multiple=True, metavar="LIST", help="Add additional groups to join."),
        click.option("--ipc", metavar="STRING", help="IPC mode to use."),
        click.option("--pid", metavar="STRING", help="PID namespace to use."),
        click.option("--uts", metavar="STRING", help="UTS namespace to use."),
        click.option("--userns", metavar="STRING", help="User namespace to use."),
        click.option("--cgroupns", metavar="STRING", help="Cgroup namespace to use (host|private)."),
        click.option("--cidfile", metavar="STRING", help="Write the container ID to the file."),
        click.option("--cpuset-cpus", metavar="STRING", help="CPUs in which to allow execution (0-3, 0,1)."),
        click.option("--cpuset-mems", metavar="STRING", help="MEMs in which to allow execution (0-3, 0,1)."),
        click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period."),
        click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota."),
        click.option("--memory-reservation", metavar="BYTES", help="Memory soft limit."),
        click.option("--memory-swappiness", type=int, help="Tune container memory swappiness (0 to 100)."),
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer."),
        click.option("--oom-score-adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)."),
        click.option("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000, or 0."),
        click.option("--blkio-weight-device", multiple=True, metavar="LIST", help="Block IO weight (relative device weight)."),
        click.option("--device-read-bps", multiple=True, metavar="LIST", help="Limit read rate (bytes per second) from a device."),
        click.option("--device-write-bps", multiple=True, metavar="LIST", help="Limit write rate (bytes per second) to a device."),
        click.option("--device-read-iops", multiple=True, metavar="LIST", help="Limit read rate (IO per second) from a device."),
        click.option("--device-write-iops", multiple=True, metavar="LIST", help="Limit write rate (IO per second) to a device."),
        click.option("--volumes-from", multiple=True, metavar="LIST", help="Mount volumes from the specified container(s)."),
        click.option("--platform", metavar="STRING", help="Set platform if server is multi-platform capable."),
        click.option("--isolation", metavar="STRING", help="Container isolation technology (default only)."),
        # health checks (containers/health.py)
        click.option("--health-cmd", metavar="STRING", help="Command to run to check health."),
        click.option("--health-interval", metavar="DURATION", help="Time between running the check (ms|s|m|h) (default 0s)."),
        click.option("--health-timeout", metavar="DURATION", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)."),
        click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-start-period", metavar="DURATION", help="Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        # pods (pods/service.py): the container joins the pod's namespaces
        click.option("--pod", metavar="POD", help="Run the container in an existing pod (name or ID)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _create(kw: dict[str, Any], image: str, command: Sequence[str]) -> "ContainerRecord":
    from dockyard.cli.ops import create_container

    return create_container(_engine(), kw, image, command)


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
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("image", metavar="IMAGE")
@click.argument("command", nargs=-1, metavar="[COMMAND] [ARG...]")
def run(image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool, **kw: Any) -> None:
    """Create and run a new container from an image."""
    from dockyard.cli import ops

    ops.run(_engine(), image, command, detach, sig_proxy, kw)


# ---- start / stop / kill / restart / rm / wait / rename / pause ---------------------------


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def start(attach: bool, interactive: bool, detach_keys: str | None, containers_: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    from dockyard.errors import DockyardError

    containers = _engine().containers
    if attach or interactive:
        if len(containers_) > 1:
            raise DockyardError("you cannot start and attach multiple containers at once")
        from dockyard.containers import attach as attaching

        keys = attaching.parse_detach_keys(detach_keys)
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
        result = attaching.stream(sock, stdin=interactive, tty=tty, detach_keys=keys) if sock else None
        if result is not None and result.get("Detached"):
            sys.exit(0)
        current = containers.find(record.id)
        sys.exit(int(result["StatusCode"]) if result else (current.exit_code if current else 0))

    def one(name: str) -> None:
        try:
            containers.start_and_wait(name)
        except DockyardError as e:
            raise DockyardError(f"{e}\nError: failed to start containers: {name}",
                                exit_code=1) from None

    _each(containers_, one)


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "signal", metavar="STRING", help="Signal to send to the container.")
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def stop(timeout: int | None, signal: str | None, containers_: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    from dockyard.cli import ops

    ops.stop(_engine(), timeout, signal, containers_)


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

    def one(name: str) -> None:
        containers.restart(name, timeout)

    _each(containers_, one)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers_", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def rm(force: bool, volumes: bool, link: bool, containers_: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from dockyard.cli import ops

    ops.rm(_engine(), force, volumes, containers_)


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
    from dockyard.errors import DockyardError

    try:
        _engine().containers.rename(container, new_name)
    except DockyardError as e:
        raise DockyardError(f"{e}\nError: failed to rename container named {container}", exit_code=1) from None


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


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER", help="Filter output based on conditions provided.")
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--pod", is_flag=True, help="Print the ID and name of the pod the containers are associated with.")
def ps(all_: bool, filters: tuple[str, ...], format_: str | None, last: int, latest: bool, no_trunc: bool,
       quiet: bool, size: bool, pod: bool) -> None:
    """List containers."""
    from dockyard.cli import ops

    ops.ps(_engine(), all_, filters, format_, last, latest, no_trunc, quiet, size=size, pod=pod)


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
    from dockyard.cli import ops

    ops.logs(_engine(), follow, since, tail, timestamps, container)


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
    from dockyard.cli import ops

    ops.exec_(_engine(), detach, env, env_file, interactive, tty, user, workdir, privileged, container, command)


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy", type=bool, default=True, help="Proxy all received signals to the process.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("container")
def attach(no_stdin: bool, sig_proxy: bool, detach_keys: str | None, container: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from dockyard.containers import attach as attaching
    from dockyard.errors import ConflictError

    containers = _engine().containers
    record = containers.get(container)
    if record.status not in ("running", "paused", "restarting"):
        raise ConflictError("You cannot attach to a stopped container, start it first")
    stdin = not no_stdin and bool(record.container_config.get("OpenStdin"))
    tty = bool(record.container_config.get("Tty"))
    keys = attaching.parse_detach_keys(detach_keys)
    sock = containers.connect(record.id, stdin=stdin, stdout=True, stderr=True)
    result = attaching.stream(sock, stdin=stdin, tty=tty, sig_proxy=sig_proxy, detach_keys=keys) if sock else None
    if result is not None and result.get("Detached"):
        sys.exit(0)
    current = containers.find(record.id)
    sys.exit(int(result["StatusCode"]) if result else (current.exit_code if current else 0))


# ---- inspect / top / stats ----------------------------------------------------------------


@click.command(name="inspect")
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("names", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
def container_inspect(format_: str | None, size: bool, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers."""
    inspect_objects(names, format_, "container", size=size)


def inspect_objects(names: Sequence[str], format_: str | None, type_: str | None, size: bool = False) -> None:
    """``inspect``: containers first (as Docker does), then images, then volumes."""
    from dockyard.cli import quick

    quick.inspect_objects(_engine(), names, format_, type_, size=size)


@click.command(name="inspect")
@click.option("-f", "--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.option("--type", "type_", type=click.Choice(["container", "image", "volume", "network"]), help="Only inspect objects of the given type.")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ID [NAME|ID...]")
def inspect(format_: str | None, size: bool, type_: str | None, names: tuple[str, ...]) -> None:
    """Return low-level information on Docker objects."""
    inspect_objects(names, format_, type_, size=size)


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, metavar="[ps OPTIONS]")
def top(container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from dockyard.cli import quick

    quick.top(_engine(), container, ps_args)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "format_", metavar="STRING", help="Format output using a custom template.")
@click.argument("containers_", nargs=-1, metavar="[CONTAINER...]")
def stats(all_: bool, no_stream: bool, no_trunc: bool, format_: str | None, containers_: tuple[str, ...]) -> None:
    """Display a live stream of container(s) resource usage statistics (one sample: --no-stream)."""
    from dockyard.cli import quick

    quick.stats(_engine(), all_, no_stream, no_trunc, format_, containers_)


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
