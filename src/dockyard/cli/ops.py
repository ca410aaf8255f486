"""The container commands' bodies, free of click: the hot ones (``run``, ``exec``, ``ps``,
``stop``, ``rm``, ``logs``) are reached either through click (``cli/containers.py``) or
through the hand-parsed fast path (``cli/fastpath.py``), which must not pay click's import.
Both call these same functions, so behaviour cannot drift between the two.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard.containers import DEVNULL

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence
    from dockyard.containers.store import ContainerRecord

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
# How long `run -d` watches a new container for an early death (DOCKYARD_EARLY_EXIT_WINDOW):
# a second for a person at a terminal, nothing for scripts (they check `ps`/`wait` themselves).
EARLY_EXIT_WINDOW = float(os.environ.get("DOCKYARD_EARLY_EXIT_WINDOW") or (1.0 if sys.stderr.isatty() else 0.0))


def echo_err(message: str) -> None:
    """``click.echo(message, err=True)``; click is imported only here, on the rare paths
    (warnings, errors) that print to stderr, so that its output stays exactly click's."""
    import click

    click.echo(message, err=True)


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def each(names: Sequence[str], action: Callable[[str], Any], echo: bool = True) -> None:
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
            echo_err(f"Error: {e}")
        raise errors[-1]


# ---- create / run -----------------------------------------------------------------------


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
    from dockyard.containers import runflags
    from dockyard.errors import DockyardError

    env = _read_kv_files(kw.get("env_file") or ()) + list(kw.get("env") or ())
    for item in kw.get("env") or ():
        if not item.partition("=")[0]:
            raise DockyardError(f'invalid argument "{item}" for "-e, --env" flag: invalid environment variable: '
                                f'{item}', exit_code=125)
    labels: dict[str, str] = {}
    for item in _read_kv_files(kw.get("label_file") or ()) + list(kw.get("labels") or ()):
        key, _, value = item.partition("=")
        labels[key] = value
    attach = [a.lower() for a in kw.get("attach") or ()]
    detach = kw.get("detach", False)
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise DockyardError(f'invalid argument "{stream}" for "-a, --attach" flag: valid streams are STDIN, '
                                'STDOUT and STDERR', exit_code=125)
    if attach and detach:
        raise DockyardError("Conflicting options: -a and -d", exit_code=1)
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
            raise DockyardError(f"invalid argument \"{kw['cpus']}\" for \"--cpus\" flag: failed to parse "
                                f"{kw['cpus']} as a rational number", exit_code=125) from None
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
        "Runtime": kw.get("runtime") or os.environ.get("DOCKYARD_RUNTIME") or None,  # None: the engine's default
        **({"CgroupParent": runflags.cgroup_parent(kw["cgroup_parent"])} if kw.get("cgroup_parent") else {}),
        "Mounts": [mounts_mod.parse_mount(m) for m in kw.get("mounts") or ()] or None,
        "LogConfig": log_config,
    }
    for b in host["Binds"] or []:
        mounts_mod.parse_volume(b)  # fail early, with Docker's message
    _network_options(kw, config, host)
    _healthcheck(kw, config)
    host.update(runflags.parse(kw))  # namespaces, devices, security, cpuset/blkio/oom
    return config, host


def _healthcheck(kw: dict[str, Any], config: dict[str, Any]) -> None:
    """--health-* and --no-healthcheck into Config.Healthcheck, with the docker CLI's checks."""
    if not (kw.get("no_healthcheck") or any(kw.get(k) not in (None, "", 0) for k in (
            "health_cmd", "health_interval", "health_timeout", "health_retries", "health_start_period"))):
        return
    from dockyard.containers import health
    from dockyard.errors import DockyardError

    try:
        check = health.from_flags(kw)
    except health.HealthError as e:
        raise DockyardError(e.message, exit_code=125) from None
    if check is not None:
        config["Healthcheck"] = check


def _network_options(kw: dict[str, Any], config: dict[str, Any], host: dict[str, Any]) -> None:
    """-p, -P, --expose, --link, --add-host, --dns*, --domainname, --ip, --mac-address and
    --network-alias into Docker's Config, HostConfig and NetworkingConfig (kept in
    ``config["NetworkingConfig"]`` until ``create`` takes it)."""
    from dockyard.errors import DockyardError
    from dockyard.network import ipam, ports

    exposed, bindings = ports.parse_publish(kw.get("publish") or ())
    exposed.update(ports.parse_expose(kw.get("expose") or ()))
    if exposed:
        config["ExposedPorts"] = exposed
    if kw.get("domainname"):
        config["Domainname"] = kw["domainname"]
    network = kw.get("network") or "default"
    if network == "host" and (bindings or kw.get("publish_all")):
        echo_err("WARNING: Published ports are discarded when using host network mode")
        bindings = {}
    host["PortBindings"] = bindings or {}
    host["PublishAllPorts"] = bool(kw.get("publish_all"))
    links = []
    for link in kw.get("links") or ():
        name, _, alias = link.partition(":")
        links.append(f"{name}:{alias or name}")
    host["Links"] = links or None
    extra = []
    for item in kw.get("add_host") or ():
        sep = "=" if "=" in item else ":"
        name, _, address = item.partition(sep)
        if not name or not address:
            raise DockyardError(f"invalid argument \"{item}\" for \"--add-host\" flag: bad format for add-host: "
                                f"\"{item}\"", exit_code=125)
        if address != "host-gateway":
            try:
                ipam.to_int(address)
            except DockyardError:
                raise DockyardError(f"invalid argument \"{item}\" for \"--add-host\" flag: invalid IP address "
                                    f"in add-host: \"{address}\"", exit_code=125) from None
        extra.append(f"{name}:{address}")
    host["ExtraHosts"] = extra or None
    for flag, key in (("dns", "Dns"), ("dns_search", "DnsSearch"), ("dns_option", "DnsOptions")):
        host[key] = list(kw.get(flag) or ())
    for server in host["Dns"]:
        try:
            ipam.to_int(server)
        except DockyardError:
            raise DockyardError(f"{server} is not an ip address", exit_code=125) from None
    endpoint: dict[str, Any] = {}
    if kw.get("network_alias"):
        endpoint["Aliases"] = list(kw["network_alias"])
    if kw.get("ip"):
        try:
            ipam.to_int(kw["ip"])
        except DockyardError:
            raise DockyardError(f"invalid argument \"{kw['ip']}\" for \"--ip\" flag: invalid IPv4 address",
                                exit_code=125) from None
        endpoint["IPAMConfig"] = {"IPv4Address": kw["ip"]}
    if kw.get("mac_address"):
        endpoint["MacAddress"] = ipam.check_mac(kw["mac_address"])
    if endpoint:
        config["NetworkingConfig"] = {"EndpointsConfig": {"bridge" if network == "default" else network: endpoint}}


def create_container(engine: Any, kw: dict[str, Any], image: str, command: Sequence[str]) -> "ContainerRecord":
    from dockyard.errors import DockyardError, NotFoundError

    config, host = build_create(kw, image, command)
    if kw.get("pod"):
        _join_pod(engine, kw, config, host)
    cidfile = kw.get("cidfile")
    if cidfile and os.path.exists(cidfile):
        raise DockyardError(f"container ID file found, make sure the other container isn't running or delete "
                            f"{cidfile}", exit_code=125)
    pull = kw.get("pull") or "missing"
    platform = _platform(kw.get("platform"))
    found = engine.image_store.find(image)
    if found is not None and platform is not None and not _platform_matches(engine, found, platform):
        found = None  # Docker: the local image is for another platform, so pull the one asked for
    if pull == "always" or (pull == "missing" and found is None):
        if pull == "missing":
            echo_err(f"Unable to find image '{_familiar(image)}' locally")
        try:
            _pull(engine, image, platform)
        except DockyardError as e:
            e.exit_code = 125
            raise
    elif found is None and platform is not None and engine.image_store.find(image) is not None:
        conf = engine.image_store.config(engine.image_store.find(image))
        actual = f"{conf.get('os') or 'linux'}/{conf.get('architecture') or 'unknown'}"
        raise DockyardError(f"image with reference {image} was found but does not match the specified platform: "
                            f"wanted {platform}, actual: {actual}", exit_code=125)
    try:
        networking = config.pop("NetworkingConfig", None)
        record = engine.containers.create(config, host, kw.get("name"), networking)
    except DockyardError as e:   # docker: every refusal of the create is 125 (-v rel/dir's too)
        e.exit_code = 125
        raise
    if cidfile:   # written once the container exists, as docker does
        try:
            with open(cidfile, "x") as f:
                f.write(record.id)
        except OSError as e:
            raise DockyardError(f"failed to create the container ID file: open {cidfile}: "
                                f"{(e.strerror or str(e)).lower()}", exit_code=125) from None
    return record


def _join_pod(engine: Any, kw: dict[str, Any], config: dict[str, Any], host: dict[str, Any]) -> None:
    """``--pod P``: the member's namespace modes and label (engine.pods.member_fields); podman's
    refusals of what only the pod may set."""
    from dockyard.errors import DockyardError, NotFoundError

    if kw.get("publish") or kw.get("publish_all"):
        raise DockyardError("invalid config provided: published or exposed ports must be defined when the pod is "
                            "created: network cannot be configured when it is shared with a pod", exit_code=125)
    try:
        fields = engine.pods.member_fields(kw["pod"])
    except NotFoundError as e:
        e.exit_code = 125
        raise
    modes = fields["HostConfig"]
    if kw.get("network") and "NetworkMode" in modes:
        raise DockyardError("invalid config provided: networks must be defined when the pod is created: network "
                            "cannot be configured when it is shared with a pod", exit_code=125)
    if kw.get("hostname") and "UTSMode" in modes:
        raise DockyardError("invalid config provided: cannot set hostname when joining the pod UTS namespace",
                            exit_code=125)
    host.update(modes)
    config["Labels"] = {**(config.get("Labels") or {}), **fields["Labels"]}


def _platform(value: str | None) -> Any:
    if not value:
        return None
    from dockyard.errors import DockyardError
    from dockyard.oci import platform as platforms

    try:
        parsed = platforms.parse(value)
        if parsed.os not in ("linux", "windows", "darwin", "freebsd") or \
                parsed.architecture not in set(platforms._ARCH.values()) | {"mips64le", "riscv64"}:
            raise DockyardError(value)
        return parsed
    except DockyardError:
        raise DockyardError(f'error parsing specified platform: "{value}": unknown operating system or '
                            "architecture: invalid argument", exit_code=125) from None


def _platform_matches(engine: Any, image: Any, platform: Any) -> bool:
    conf = engine.image_store.config(image)
    return platform.matches({"os": conf.get("os") or "linux", "architecture": conf.get("architecture") or "",
                             "variant": conf.get("variant") or ""})


def _familiar(image: str) -> str:
    from dockyard import reference

    try:
        return reference.parse(image).familiar()
    except Exception:  # noqa: BLE001 - the pull reports bad references properly
        return image


def _pull(engine: Any, image: str, platform: Any = None) -> None:
    """Docker's run pulls a missing image; its progress goes to stderr, away from the output."""
    pulled = engine.images.pull(image, platform=platform) if platform is not None else engine.images.pull(image)
    echo_err(f"Status: Downloaded newer image for {_familiar(image)} ({pulled.short_id})")


def run(engine: Any, image: str, command: Sequence[str], detach: bool, sig_proxy: bool, kw: dict[str, Any],
        shim: Any = None) -> None:
    """``run``: create, start, and (unless detached) attach until the container exits. ``shim``:
    one spawned already (the fast path spawns it before opening the engine)."""
    kw["detach"] = detach
    containers = engine.containers
    detach_keys = kw.pop("detach_keys", None)
    streams = {a.lower() for a in kw.get("attach") or ()}
    if not detach and kw.get("tty") and (("stdin" in streams) if streams else kw.get("interactive")) \
            and not os.isatty(0):
        from dockyard.errors import DockyardError

        if shim is not None:
            shim.cancel()
        raise DockyardError("the input device is not a TTY", exit_code=1)
    if shim is None:
        shim = containers.spawn_shim()  # its start-up overlaps the creation below
    try:
        if not detach:
            from dockyard.containers import attach

            keys = attach.parse_detach_keys(detach_keys)
        record = create_container(engine, kw, image, command)
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
        early_exit_warning(engine, record)
        return
    from dockyard.containers import attach

    tty = bool(kw.get("tty"))
    try:
        handle = containers.start(record.id, attach_first=True, tty_size=attach.terminal_size() if tty else None,
                                  shim=shim)
        assert handle is not None
        handle.wait_created()
        # -a: only the named streams (Config.AttachStd* hold the choice)
        conf = record.container_config
        stdin = bool(kw.get("interactive")) and (not streams or bool(conf.get("AttachStdin")))
        sock = containers.connect(record.id, stdin=stdin, stdout=bool(conf.get("AttachStdout", True)),
                                  stderr=bool(conf.get("AttachStderr", True)))
        handle.wait_started()
        containers.mark_running(handle)
    except BaseException:
        if kw.get("rm"):
            containers.remove(record.id, force=True)
        raise
    if streams and not ({"stdout", "stderr"} & streams):
        _write(record.id + "\n")   # docker: nothing of the container's output to show, so its ID
    result = attach.stream(sock, stdin=stdin, tty=tty, sig_proxy=sig_proxy,
                           detach_keys=keys) if sock else None
    if result is not None and result.get("Detached"):
        sys.exit(0)  # the container runs on; its shim does any --rm when it exits
    if result is None:
        current = containers.find(record.id)
        code = current.exit_code if current is not None else 125
    else:
        code = int(result.get("StatusCode", 0))
        if result.get("RemoveRecord") and sock is not None:
            containers.forget(record.id)  # --rm: the shim removed the files, we the record
            attach.confirm_removal(sock)
    sys.exit(code)


def early_exit_warning(engine: Any, record: "ContainerRecord") -> None:
    """Better than Docker: say so when a detached container dies in its first second."""
    if EARLY_EXIT_WINDOW <= 0:
        return
    containers = engine.containers
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
    echo_err("\n".join(message))


# ---- stop / rm ----------------------------------------------------------------------------


def stop(engine: Any, timeout: int | None, signal: str | None, names: Sequence[str]) -> None:
    containers = engine.containers
    each(names, lambda n: containers.stop(n, timeout, signal))


def rm(engine: Any, force: bool, volumes: bool, names: Sequence[str]) -> None:
    from dockyard.errors import NotFoundError

    containers = engine.containers

    def one(name: str) -> None:
        try:
            containers.remove(name, force=force, volumes=volumes)
        except NotFoundError as e:
            if force:
                return
            raise e

    each(names, one)


# ---- ps ---------------------------------------------------------------------------------


def _network_names(summary: "dict[str, Any]") -> list[str]:
    mode = summary.get("NetworkMode") or "default"
    names = ["bridge" if mode == "default" else mode]
    names += [n for n in summary.get("Networks") or () if n not in names]
    return names


def go_quote(text: str) -> str:
    """Go's strconv.Quote: double quotes, with backslash escapes for quotes, backslashes and
    characters that do not print."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'   # nothing to escape: most commands
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) < 0x10000:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def ps_size(size_rw: int, size_root_fs: int) -> str:
    """Docker's SIZE cell: ``0B (virtual 1.99MB)``."""
    from dockyard.cli import formatting as fmt

    rw = fmt.human_size(size_rw, 3)
    return f"{rw} (virtual {fmt.human_size(size_root_fs, 3)})" if size_root_fs > 0 else rw


def _wants_size(format_: str | None) -> bool:
    """Docker's CLI asks for sizes when the template reads .Size (``{{json .}}`` reads all)."""
    if not format_:
        return False
    import re

    return format_ == "json" or "Size" in format_ or re.search(r"json\s+\.\s*}}", format_) is not None


# the row fields read from the record's summary (the rest are its columns)
_SUMMARY_FIELDS = frozenset(("Command", "Label", "Labels", "LocalVolumes", "Mounts", "Networks", "Ports"))


def ps_rows(records: Sequence["ContainerRecord"], trunc: bool, now: float | None = None,
            published: "dict[str, list[Any]] | None" = None,
            sizes: "dict[str, tuple[int, int]] | None" = None,
            fields: "frozenset[str] | None" = None) -> list[dict[str, str]]:
    """ps's rows; with ``fields`` only those columns (the rest cost ~half of a 200-row ``ps -a``)."""
    from dockyard.cli import formatting as fmt
    from dockyard.containers.store import summaries
    from dockyard.containers.summary import ps_command, status_text
    from dockyard.network.ports import ps_column

    now = time.time() if now is None else now
    want = (lambda name: True) if fields is None else fields.__contains__
    command_, created_at, labels_, local_volumes, mounts_, networks, ports, running_for, size_, status = (
        want(name) for name in ("Command", "CreatedAt", "Labels", "LocalVolumes", "Mounts", "Networks", "Ports",
                                "RunningFor", "Size", "Status"))
    labels_ = labels_ or want("Label")
    if fields is None or not fields.isdisjoint(_SUMMARY_FIELDS):
        summary_of = summaries(records)
    else:
        summary_of = [{}] * len(records)
    published = published or {}
    rows = []
    for r, s in zip(records, summary_of):
        row = {"ID": r.id[:12] if trunc else r.id, "Image": r.image, "Names": r.name, "State": r.status}
        if command_:
            command = ps_command(s.get("Path") or "", s.get("Args") or [])
            row["Command"] = go_quote(fmt.ellipsis(command, 20) if trunc else command)
        if created_at:
            row["CreatedAt"] = fmt.go_time_string(r.created)
        if labels_:
            labels = s.get("Labels") or {}
            row["Label"] = lambda name, _labels=labels: _labels.get(name, "")  # {{.Label "k"}}: a method in Docker
            row["Labels"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if local_volumes:
            row["LocalVolumes"] = str(sum(1 for m in s.get("Mounts") or () if m.get("Type") == "volume"))
        if mounts_:
            mounts = [m.get("Name") or m.get("Source") or "" for m in s.get("Mounts") or ()]
            row["Mounts"] = ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts)
        if networks:
            row["Networks"] = ",".join(_network_names(s))
        if ports:
            bound = published.get(r.id) if r.status in ("running", "paused", "restarting") else None
            exposed = s.get("ExposedPorts")
            row["Ports"] = ps_column(bound or [], exposed or {}) if bound or exposed else ""
        if running_for:
            row["RunningFor"] = fmt.time_ago(r.created, now)
        if size_:
            row["Size"] = ps_size(*sizes[r.id]) if sizes and r.id in sizes else ""
        if status:
            row["Status"] = status_text(r, now)
        rows.append(row)
    return rows


def _template_fields(template: str) -> "frozenset[str] | None":
    """The row fields a ps template reads; None when it may read them all (``json``, ``{{.}}``,
    ``{{json .}}``, or a field reached another way)."""
    import re

    # a bare dot (``{{.}}``, ``{{json .}}``, ``index . "Names"``) or a variable may read any field
    if template == "json" or "$" in template or re.search(r"(?<![\w)\]])\.(?![A-Za-z_])", template):
        return None
    return frozenset(re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", template))


def _pod_columns(engine: Any, records: Sequence["ContainerRecord"], rows: list[dict[str, str]], trunc: bool) -> None:
    """``ps --pod``: podman's POD ID and PODNAME of each row ('' for a container in no pod)."""
    from dockyard.containers.store import summaries
    from dockyard.pods.service import POD_LABEL, pods_by_id

    pod_ids = [(s.get("Labels") or {}).get(POD_LABEL, "") for s in summaries(records)]
    names = pods_by_id(engine, pod_ids)
    for row, pod_id in zip(rows, pod_ids):
        row["Pod"] = pod_id[:12] if trunc else pod_id
        row["PodName"] = names.get(pod_id, "")


def ps(engine: Any, all_: bool, filters: Sequence[str], format_: str | None, last: int, latest: bool,
       no_trunc: bool, quiet: bool, size: bool = False, pod: bool = False) -> None:
    from dockyard.cli import formatting as fmt

    from dockyard.cli.common import parse_filters

    wanted = parse_filters(filters)
    records = engine.containers.list(all=all_, filters=wanted, last=1 if latest else last)
    published = None
    if records and not quiet:
        from dockyard.network.store import NetworkStore

        published = NetworkStore(engine.db).all_ports()
    sizes = None
    if not quiet and (size or _wants_size(format_)):
        from dockyard.containers.inspect import container_sizes

        sizes = {}
        for r in records:
            got = container_sizes(engine.containers, r)
            sizes[r.id] = (got["SizeRw"], got["SizeRootFs"])
    template = PS_TABLE if not format_ or format_ == "table" else format_
    if quiet:
        rows = ps_rows(records, trunc=not no_trunc, fields=frozenset())
        _write("".join(r["ID"] + "\n" for r in rows))
        return
    if size and template == PS_TABLE:
        template += "\t{{.Size}}"
    rows = ps_rows(records, trunc=not no_trunc, published=published, sizes=sizes,
                   fields=None if pod else _template_fields(template))
    if pod:
        _pod_columns(engine, records, rows, trunc=not no_trunc)
        if template == PS_TABLE:
            template += "\t{{.Pod}}\t{{.PodName}}"
    if template == PS_TABLE:   # what render_rows makes of it, without running a template per row
        text = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n" + "".join(
            f'{r["ID"]}\t{r["Image"]}\t{r["Command"]}\t{r["RunningFor"]}\t{r["Status"]}\t{r["Ports"]}\t{r["Names"]}\n'
            for r in rows)
        _write(fmt.tabulate([line.split("\t") for line in text.split("\n")[:-1]]))
        return
    # docker ps first runs --format on an empty container: its errors come even with no containers
    headers = {**PS_HEADERS, "Pod": "POD ID", "PodName": "PODNAME"} if pod else PS_HEADERS
    probe = dict.fromkeys(headers, "") | {"Label": lambda name: ""} if format_ else None
    _write(fmt.render_rows(template, rows, headers, probe=probe))


# ---- logs ---------------------------------------------------------------------------------


def logs(engine: Any, follow: bool, since: str | None, tail: str, timestamps: bool, container: str) -> None:
    from dockyard.containers.logs import parse_since
    from dockyard.errors import DockyardError

    tail_n = None if tail == "all" else int(tail) if tail.lstrip("-").isdigit() else None
    try:
        since_t = parse_since(since) if since else None
    except ValueError as e:
        raise DockyardError(str(e)) from None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for record in engine.containers.logs(container, follow=follow, tail=tail_n, since=since_t):
            text = record["log"]
            if timestamps:
                text = record["time"] + " " + text
            stream = err if record.get("stream") == "stderr" else out
            stream.write(text.encode())
            stream.flush()
    except KeyboardInterrupt:
        return


# ---- exec ---------------------------------------------------------------------------------


def exec_(engine: Any, detach: bool, env: Sequence[str], env_file: Sequence[str], interactive: bool, tty: bool,
          user: str | None, workdir: str | None, privileged: bool, container: str, command: Sequence[str]) -> None:
    containers = engine.containers
    record = containers.get(container)
    for source in containers.replaced_binds(record):
        echo_err(replaced_bind_warning(record.name, source))
    env_list = _read_kv_files(env_file) + list(env)
    if tty and interactive and not detach and not os.isatty(0):   # the docker CLI's CheckTty
        from dockyard.errors import DockyardError

        raise DockyardError("the input device is not a TTY", exit_code=1)
    if tty and not detach and os.isatty(0):
        sys.exit(_exec_tty(containers, record, command, env_list, user, workdir, interactive))
    stdin = None if interactive and not detach else DEVNULL
    code = containers.exec(record.id, command, env=env_list, user=user, workdir=workdir, detach=detach, stdin=stdin)
    sys.exit(code)


def _exec_tty(containers: Any, record: Any, command: Sequence[str], env: list[str], user: str | None,
              workdir: str | None, interactive: bool) -> int:
    """The process on a terminal of the container's own devpts (so `tty` names it), as Docker
    does: the runtime sends the pty master to a console socket; we pump our terminal to it."""
    import select
    import termios
    import threading
    import tty as ttys

    from dockyard.containers.execute import console_socket, receive_master

    path, listener = console_socket(containers, record.id, str(os.getpid()))
    size = os.get_terminal_size(0)
    saved = termios.tcgetattr(0)
    done = threading.Event()

    def serve() -> None:  # the master, then our terminal <-> it until the process is gone
        try:
            conn, _ = listener.accept()
            with conn:
                master = receive_master(conn)
        except OSError:
            return
        if master < 0:
            return
        try:
            import fcntl
            import struct

            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size.lines, size.columns, 0, 0))
            while True:
                ready, _, _ = select.select([master] + ([0] if interactive else []), [], [], 0.1)
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:   # EIO: the last process holding the slave is gone
                        return
                    if not data:
                        return
                    os.write(1, data)
                if 0 in ready:
                    os.write(master, os.read(0, 65536))
                if done.is_set() and not ready:
                    return
        finally:
            os.close(master)

    pumper = threading.Thread(target=serve, daemon=True)
    pumper.start()
    ttys.setraw(0)
    try:
        # exec runs here, in the main thread (it forwards signals to the process)
        code = containers.exec(record.id, command, env=[*env, "TERM=xterm"], user=user, workdir=workdir,
                               stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL, console_socket=path)
    finally:
        done.set()
        pumper.join(2)  # the rest of the output, until EIO on the master
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
        listener.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    return code


def replaced_bind_warning(name: str, source: str) -> str:
    return (f"WARNING: {source} was replaced on the host after container {name} started (an editor saving a "
            "new file does that): a single-file bind mount still shows the container the old file. Restart the "
            "container, or bind-mount the directory that holds the file instead.")
