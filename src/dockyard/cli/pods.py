"""``dockyard pod``: podman's pod commands (create, ps, inspect, start, stop, restart, kill, rm,
prune, top, logs, exists). Parsing and printing only; the verbs live in ``engine.pods``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from dockyard.cli import common

if TYPE_CHECKING:
    from dockyard.pods.service import PodRecord, Pods

PS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}\t{{.NumberOfContainers}}"
PS_HEADERS = {"ID": "POD ID", "Name": "NAME", "Status": "STATUS", "Created": "CREATED", "InfraID": "INFRA ID",
              "NumberOfContainers": "# OF CONTAINERS", "Labels": "LABELS", "Networks": "NETWORKS",
              "Cgroup": "CGROUP", "Namespace": "NAMESPACE", "ContainerIds": "IDS", "ContainerNames": "NAMES",
              "ContainerStatuses": "STATUS"}
PRUNE_WARNING = "WARNING! This will remove all stopped/exited pods..\nAre you sure you want to continue?"
_ONLY_LONG_HELP = {"help_option_names": ["--help"]}   # podman's -h is --hostname


def _pods() -> "Pods":
    return common.engine().pods


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _each(names: Sequence[str], action: Callable[[str], "PodRecord | Any"]) -> None:
    """podman's pod verbs: the pod's ID for each done, every error reported, exit with the last's code."""
    from dockyard.errors import DockyardError

    failed: DockyardError | None = None
    for name in names:
        try:
            pod = action(name)
            if pod is not None:
                _write(f"{pod.id}\n")
        except DockyardError as e:
            if failed is not None:
                click.echo(f"Error: {failed}", err=True)
            failed = e
    if failed is not None:
        raise failed


@click.group(name="pod")
def pod() -> None:
    """Manage pods: containers sharing network, IPC, UTS (and PID) namespaces, as podman's."""


@pod.command(context_settings=_ONLY_LONG_HELP)
@click.option("-n", "--name", "name_", metavar="NAME", help="Assign a name to the pod.")
@click.option("-p", "--publish", multiple=True, metavar="LIST", help="Publish a port, or a range of ports, to the host.")
@click.option("--network", metavar="NETWORK", help="Connect the pod to a network (bridge, host, none, a user network).")
@click.option("--share", default="ipc,net,uts", show_default=True, metavar="LIST",
              help="A comma delimited list of kernel namespaces the pod will share (ipc, net, pid, uts, none).")
@click.option("-l", "--label", "labels", multiple=True, metavar="LIST", help="Set metadata on the pod.")
@click.option("-h", "--hostname", metavar="NAME", help="Set the pod's hostname (default: its name).")
@click.argument("name", required=False)
def create(name_: str | None, publish: tuple[str, ...], network: str | None, share: str, labels: tuple[str, ...],
           hostname: str | None, name: str | None) -> None:
    """Create a new empty pod; prints its ID."""
    from dockyard.errors import DockyardError

    if name and name_ and name != name_:
        raise DockyardError("cannot specify both a name and --name", exit_code=125)
    parsed = {}
    for item in labels:
        key, _, value = item.partition("=")
        parsed[key] = value
    record = _pods().create(name=name_ or name, publish=publish, network=network, share=share.split(","),
                            labels=parsed, hostname=hostname)
    _write(record.id + "\n")


def _ps_rows(pods: "Pods", found: "list[PodRecord]", trunc: bool) -> list[dict[str, Any]]:
    from dockyard.cli import formatting as fmt
    from dockyard.containers.inspect import nano_time

    rows = []
    of = pods.containers_of(found)
    for p in found:
        members = of[p.id]
        rows.append({
            "ID": p.id[:12] if trunc else p.id, "Id": p.id, "Name": p.name, "Status": pods.status(p, members),
            "Created": fmt.time_ago(p.created), "CreatedAt": nano_time(p.created),
            "InfraID": p.infra_id[:12] if trunc else p.infra_id, "InfraId": p.infra_id,
            "NumberOfContainers": str(len(members)), "Labels": dict(p.labels),
            "Networks": p.options.get("Network") or "bridge", "Cgroup": "", "Namespace": "",
            "ContainerIds": ",".join(r.id[:12] if trunc else r.id for r in members),
            "ContainerNames": ",".join(r.name for r in members),
            "ContainerStatuses": ",".join(r.status for r in members),
            "_members": members,
        })
    return rows


@pod.command(name="ps")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output based on conditions given (name, id, label, status).")
@click.option("--format", "format_", metavar="STRING", help="Pretty-print pods to JSON or using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate pod and container IDs.")
@click.option("--noheading", is_flag=True, help="Do not print headers.")
@click.option("-q", "--quiet", is_flag=True, help="Print the numeric IDs of the pods only.")
def ps(filters: tuple[str, ...], format_: str | None, no_trunc: bool, noheading: bool, quiet: bool) -> None:
    """List pods."""
    from dockyard.cli import formatting as fmt
    from dockyard.cli.common import parse_filters

    pods = _pods()
    found = pods.list(parse_filters(filters))
    if quiet:
        _write("".join(p.id + "\n" for p in found))
        return
    rows = _ps_rows(pods, found, trunc=not no_trunc)
    if format_ == "json":
        out = [{"Cgroup": "", "Containers": [{"Id": r.id, "Names": r.name, "Status": r.status}
                                             for r in row["_members"]],
                "Created": row["CreatedAt"], "Id": row["Id"], "InfraId": row["InfraId"], "Name": row["Name"],
                "Namespace": "", "Networks": [row["Networks"]], "Status": row["Status"], "Labels": row["Labels"]}
               for row in rows]
        _write(json.dumps(out, indent=2) + "\n")
        return
    for row in rows:
        del row["_members"]
    template = PS_TABLE if not format_ or format_ == "table" else format_
    if template.startswith("table") and noheading:
        template = template[5:].lstrip()
    if template == PS_TABLE:   # podman's tabwriter: at least 12 wide, 2 spaces of padding
        cells = [[PS_HEADERS[k] for k in ("ID", "Name", "Status", "Created", "InfraID", "NumberOfContainers")]]
        cells += [[r["ID"], r["Name"], r["Status"], r["Created"], r["InfraID"], r["NumberOfContainers"]]
                  for r in rows]
        _write(fmt.tabulate(cells, minwidth=12, padding=2))
        return
    _write(fmt.render_rows(template, rows, PS_HEADERS))


pod.add_command(ps, name="ls")
pod.add_command(ps, name="list")


@pod.command(name="inspect")
@click.option("-f", "--format", "format_", metavar="STRING", help="Format the output using a Go template.")
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def inspect(format_: str | None, names: tuple[str, ...]) -> None:
    """Display information about a pod (podman's shape)."""
    from dockyard.errors import DockyardError, NotFoundError

    pods = _pods()
    try:
        found = [pods.inspect(n) for n in names]
    except NotFoundError as e:
        raise DockyardError(f"inspecting object: {e.message.replace('no pod with name or ID ', 'no such pod ')}"
                            .replace(" found: no such pod", ""), exit_code=125) from None
    if format_:
        from dockyard.cli import formatting as fmt

        for item in found:
            _write(fmt.render_rows(format_, [item], {}, strict=False))
        return
    _write(json.dumps(found[0] if len(found) == 1 else found, indent=5) + "\n")


@pod.command()
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def start(names: tuple[str, ...]) -> None:
    """Start one or more pods: the infra, then the containers."""
    pods = _pods()
    _each(names, pods.start)


@pod.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait for a container to stop before killing it.")
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def stop(timeout: int | None, names: tuple[str, ...]) -> None:
    """Stop one or more pods: the containers, then the infra."""
    pods = _pods()
    _each(names, lambda n: pods.stop(n, timeout))


@pod.command()
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def restart(names: tuple[str, ...]) -> None:
    """Restart one or more pods."""
    pods = _pods()
    _each(names, pods.restart)


@pod.command()
@click.option("-s", "--signal", "signal", default="KILL", metavar="STRING", help="Signal to send to the containers.")
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def kill(signal: str, names: tuple[str, ...]) -> None:
    """Send a signal (default KILL) to every running container of one or more pods."""
    pods = _pods()
    _each(names, lambda n: pods.kill(n, signal))


@pod.command()
@click.option("-f", "--force", is_flag=True, help="Stop running containers and remove them with the pod.")
@click.argument("names", nargs=-1, required=True, metavar="POD [POD...]")
def rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more pods and their containers."""
    from dockyard.errors import NotFoundError

    pods = _pods()

    def one(name: str) -> "PodRecord | None":
        try:
            record = pods.get(name)
        except NotFoundError as e:
            if force:   # podman: rm -f of a pod that is not there is no error
                return None
            e.exit_code = 1
            raise
        pods.remove(record.id, force=force)
        return record

    _each(names, one)


@pod.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(force: bool) -> None:
    """Remove every pod none of whose containers runs."""
    from dockyard.cli.images import confirm

    if not force and not confirm(PRUNE_WARNING):
        return
    _write("".join(pid + "\n" for pid in _pods().prune()))


@pod.command(context_settings={"allow_interspersed_args": False})
@click.argument("name", metavar="POD")
@click.argument("ps_args", nargs=-1, metavar="[ps OPTIONS]")
def top(name: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of every container of a pod."""
    from dockyard.cli import formatting as fmt

    header, rows = _pods().top(name, ps_args)
    _write(fmt.tabulate([header, *rows], minwidth=12, padding=2))


@pod.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output (until the containers stop).")
@click.option("-n", "--tail", default="all", metavar="STRING", help="Number of lines to show from the end of each log.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("-c", "--container", metavar="NAME", help="Only this container's logs.")
@click.argument("name", metavar="POD")
def logs(follow: bool, tail: str, timestamps: bool, container: str | None, name: str) -> None:
    """The logs of a pod's containers (the infra's aside), each line after its container's short ID."""
    import threading

    from dockyard.errors import DockyardError

    pods = _pods()
    record = pods.get(name)
    members = pods.members(record.id)
    if container:
        wanted = common.engine().containers.get(container)
        if wanted.id not in {r.id for r in members}:
            raise DockyardError(f"container {container} is not in pod {record.name}", exit_code=125)
        members = [wanted]
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise DockyardError(f'invalid argument "{tail}" for "-n, --tail" flag', exit_code=125)
    lines_tail = None if tail == "all" or int(tail) < 0 else int(tail)
    containers = common.engine().containers
    lock = threading.Lock()

    def show(r: Any, entries: Any) -> None:
        for entry in entries:
            stamp = f"{entry.get('time', '')} " if timestamps else ""
            with lock:
                _write(f"{r.id[:12]} {stamp}{entry['log']}")

    if not follow:
        merged = []
        for r in members:
            merged += [(e.get("time", ""), r, e) for e in containers.logs(r.id, tail=lines_tail)]
        merged.sort(key=lambda t: t[0])
        for _, r, e in merged:
            show(r, [e])
        return
    threads = [threading.Thread(target=show, args=(r, containers.logs(r.id, follow=True, tail=lines_tail)),
                                daemon=True) for r in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pod.command()
@click.argument("name", metavar="POD")
def exists(name: str) -> None:
    """Exit 0 when the pod exists, 1 when not (nothing printed)."""
    sys.exit(0 if _pods().exists(name) else 1)
