"""The bodies of everyday commands beyond ``ops.py``'s container verbs (inspect, top, port,
tag, rmi, volume and network listings), free of click so ``fastviews.py`` can run them
without it; the click commands call the same functions. Each takes the engine first.
"""

from __future__ import annotations

import sys

from dockyard.cli.common import parse_filters  # noqa: F401 - one parser for every --filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
                  "Scope": "SCOPE", "Links": "LINKS", "Size": "SIZE"}
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _write(text: str) -> None:
    sys.stdout.write(text)


def _err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def raise_last(errors: "list[Any]") -> None:
    """Docker goes on after a failed name and reports each; the last one sets the exit code."""
    if not errors:
        return
    for e in errors[:-1]:
        _err(f"{getattr(e, 'print_prefix', 'Error: ')}{e}")
    raise errors[-1]


# ---- inspect -------------------------------------------------------------------------------


def print_inspected(names: "Sequence[str]", lookup: "Callable[[str], Any]", format_: "str | None") -> None:
    """``<object> inspect``: each name's ``lookup(name)`` as a JSON list or through the
    ``--format`` template; Docker goes on past a missing one, then fails with the last error."""
    from dockyard.errors import DockyardError

    found: "list[Any]" = []
    errors: "list[DockyardError]" = []
    for name in names:
        try:
            found.append(lookup(name))
        except DockyardError as e:
            errors.append(e)
    if format_:
        from dockyard.cli import formatting as fmt

        _write(fmt.render_inspected(found, fmt.Template(format_), errors))
    else:
        from dockyard.images.inspect import inspect_json

        _write(inspect_json(found) + "\n")
    raise_last(errors)


def inspect_objects(engine: "Any", names: "Sequence[str]", format_: "str | None", type_: "str | None",
                    size: bool = False) -> None:
    """``inspect``: containers first (as Docker does), then images, then volumes, then networks."""
    from dockyard.errors import DockyardError, NotFoundError

    if type_ == "image":
        image_inspect(engine, names, format_, "No such image")
        return
    found: "list[dict[str, Any]]" = []
    images: "set[int]" = set()   # positions of images in found: their nil fields print as images' do
    errors: "list[DockyardError]" = []
    for name in names:
        obj = None
        if type_ in (None, "container"):
            record = engine.containers.find(name)
            if record is not None:
                obj = engine.containers.inspect(record.id, size=size)
                for source in engine.containers.replaced_binds(record):
                    from dockyard.cli.ops import replaced_bind_warning

                    _err(replaced_bind_warning(record.name, source))
        if obj is None and type_ in (None, "image"):
            try:
                obj = engine.images.inspect(name)
                images.add(len(found))
            except NotFoundError:
                obj = None
        if obj is None and type_ in (None, "volume"):
            volume = engine.volumes.find(name)
            obj = volume.inspect() if volume is not None else None
        if obj is None and type_ in (None, "network"):
            try:
                obj = engine.networks.inspect(engine.networks.get(name))
            except NotFoundError:
                obj = None
        if obj is None:
            what = {"container": "container", "image": "image", "volume": "volume",
                    "network": "network"}.get(type_ or "", "object")
            errors.append(NotFoundError(f"No such {what}: {name}"))
            continue
        found.append(obj)
    if format_:
        from dockyard.cli import formatting as fmt
        from dockyard.images.inspect import TEMPLATE_NILS

        template = fmt.Template(format_, strict=False)
        image_template = fmt.Template(format_, strict=False, nil=TEMPLATE_NILS) if images else template
        _write(fmt.render_inspected(found, lambda i: image_template if i in images else template, errors))
    else:
        from dockyard.images.inspect import inspect_json

        _write(inspect_json(found) + "\n")
    raise_last(errors)


def image_inspect(engine: "Any", names: "Sequence[str]", format_: "str | None", missing: str = "No such image") -> None:
    from dockyard.errors import DockyardError, NotFoundError
    from dockyard.images.inspect import TEMPLATE_NILS, inspect_json

    template = None
    if format_:
        from dockyard.cli import formatting as fmt

        template = fmt.Template(format_, strict=False, nil=TEMPLATE_NILS)
    found: "list[dict[str, Any]]" = []
    errors: "list[DockyardError]" = []
    for name in names:
        try:
            found.append(engine.images.inspect(name))
        except NotFoundError:
            errors.append(NotFoundError(f"{missing}: {name}"))
    if template is not None:
        _write(fmt.render_inspected(found, template, errors))
    else:
        _write(inspect_json(found) + "\n")
    raise_last(errors)


def volume_inspect(engine: "Any", names: "Sequence[str]", format_: "str | None") -> None:
    volumes = engine.volumes
    print_inspected(names, lambda name: volumes.get(name).inspect(), format_)


def network_inspect(engine: "Any", names: "Sequence[str]", format_: "str | None") -> None:
    from dockyard.errors import NotFoundError

    networks = engine.networks

    def lookup(name: str) -> "Any":
        try:
            return networks.inspect(networks.get(name))
        except NotFoundError:   # the CLI's words; the daemon's are "network X not found"
            raise NotFoundError(f"No such network: {name}") from None

    print_inspected(names, lookup, format_)


# ---- listings ------------------------------------------------------------------------------


def volume_ls(engine: "Any", filters: "Sequence[str]", format_: "str | None", quiet: bool) -> None:
    volumes = engine.volumes.list(parse_filters(filters))
    if quiet:
        _write("".join(v.name + "\n" for v in volumes))
        return
    from dockyard.cli import formatting as fmt

    rows = [{"Driver": v.driver, "Name": v.name, "Mountpoint": v.mountpoint, "Scope": "local",
             "Labels": ",".join(f"{k}={val}" for k, val in v.labels.items()), "Links": "N/A", "Size": "N/A",
             "Label": lambda name, _labels=v.labels: _labels.get(name, "")}  # {{.Label "k"}}: Docker's method
            for v in volumes]
    template = format_ if format_ and format_ != "table" else "table {{.Driver}}\t{{.Name}}"
    _write(fmt.render_rows(template, rows, VOLUME_HEADERS))


def network_ls(engine: "Any", filters: "Sequence[str]", format_: "str | None", no_trunc: bool, quiet: bool) -> None:
    networks = engine.networks.list(parse_filters(filters))
    if quiet:
        _write("".join((n.id if no_trunc else n.short_id) + "\n" for n in networks))
        return
    from dockyard.cli import formatting as fmt

    rows = [{"ID": n.id if no_trunc else n.short_id, "Name": n.name, "Driver": n.driver, "Scope": "local",
             "IPv6": "false", "Internal": str(n.internal).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()),
             "Label": lambda name, _labels=n.labels: _labels.get(name, ""),  # {{.Label "k"}}: Docker's method
             "CreatedAt": fmt.go_time_string(n.created)} for n in networks]
    template = format_ if format_ and format_ != "table" else "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    _write(fmt.render_rows(template, rows, NETWORK_HEADERS))


# ---- containers ----------------------------------------------------------------------------


def top(engine: "Any", container: str, ps_args: "Sequence[str]") -> None:
    from dockyard.cli.formatting import tabulate

    header, rows = engine.containers.top(container, ps_args)
    _write(tabulate([header] + rows, minwidth=1, padding=3) if rows or header else "")


def port(engine: "Any", container: str, private_port: "str | None") -> None:
    from dockyard.network.ports import port_lines
    from dockyard.network.store import NetworkStore

    record = engine.containers.get(container)
    published = NetworkStore(engine.db).ports(record.id) if record.status in ("running", "paused", "restarting") else []
    _write("".join(line + "\n" for line in port_lines(published, private_port)))


# ---- images ----------------------------------------------------------------------------------


def tag(engine: "Any", source: str, target: str) -> None:
    engine.images.tag(source, target)


def delete_lines(records: "Sequence[Any]", prefix_untagged: str = "Untagged: ",
                 prefix_deleted: str = "Deleted: ") -> str:
    return "".join(
        f"{prefix_untagged}{r.untagged}\n" if r.untagged else f"{prefix_deleted}{r.deleted}\n" for r in records)


def rmi(engine: "Any", force: bool, no_prune: bool, names: "Sequence[str]") -> None:
    from dockyard.errors import DockyardError

    errors: "list[DockyardError]" = []
    for name in names:
        try:
            records = engine.images.remove(name, force=force)
        except DockyardError as e:
            errors.append(e)
            continue
        _write(delete_lines(records))
    raise_last(errors)


# ---- stats -----------------------------------------------------------------------------------

STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def _last_sample(containers: "Any", cid: str) -> "dict[str, Any] | None":
    import json
    import os

    try:
        with open(os.path.join(containers.shim_dir(cid), "stats.last")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _keep_sample(containers: "Any", cid: str, sample: "dict[str, Any]") -> None:
    """The sample the next ``stats`` measures CPU against; in the shim's directory, so it goes
    with the container's run state."""
    import json
    import os

    path = os.path.join(containers.shim_dir(cid), "stats.last")
    try:
        with open(path + ".tmp", "w") as f:
            json.dump({"wall": sample["wall"], "cpu_ns": sample["cpu_ns"]}, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass   # the shim's directory is gone: the container stopped meanwhile


def stats(engine: "Any", all_: bool, no_stream: bool, no_trunc: bool, format_: "str | None",
          names: "Sequence[str]") -> None:
    """One sample per container (``--no-stream``) or a new table every second."""
    import time

    from dockyard.cli import formatting as fmt
    from dockyard.containers.stats import cpu_percent

    containers = engine.containers
    previous: "dict[str, dict[str, Any]]" = {}
    while True:
        records = [containers.get(c) for c in names] if names else containers.list(all=all_)
        # Docker's CONTAINER is the name or ID as typed, else the short ID; keys in its JSON order
        typed = list(names) if names else [r.id[:12] for r in records]
        rows = []
        for r, as_typed in zip(records, typed):
            row = {"BlockIO": "0B / 0B", "CPUPerc": "0.00%", "Container": as_typed,
                   "ID": r.id if no_trunc else r.id[:12], "MemPerc": "0.00%", "MemUsage": "0B / 0B",
                   "Name": r.name, "NetIO": "0B / 0B", "PIDs": "0"}
            if r.status in ("running", "paused"):
                b = containers.stats(r)
                cpu = cpu_percent(b, previous.get(r.id) or _last_sample(containers, r.id), r.started_at)
                previous[r.id] = b
                _keep_sample(containers, r.id, b)
                row.update(CPUPerc=f"{cpu:.2f}%",
                           MemUsage=f"{fmt.bytes_size(b['memory_usage'])} / {fmt.bytes_size(b['memory_limit'])}",
                           MemPerc=f"{b['memory_usage'] / b['memory_limit'] * 100:.2f}%", PIDs=str(b["pids"]),
                           NetIO=f"{fmt.human_size(b['net_rx'])} / {fmt.human_size(b['net_tx'])}",
                           BlockIO=f"{fmt.human_size(b.get('blk_read', 0))} / {fmt.human_size(b.get('blk_write', 0))}")
            rows.append(row)
        _write(fmt.render_rows(format_ or STATS_TABLE, rows, STATS_HEADERS))
        if no_stream:
            return
        sys.stdout.flush()
        time.sleep(1.0)
