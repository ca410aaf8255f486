"""A hand-parsed fast path for the hottest commands: ``run``, ``exec``, ``ps``, ``stop``,
``rm`` and ``logs``, typed all day, and ``build``, whose cached rebuild should take no
longer than BuildKit's: commands whose cost is mostly start-up. Importing click alone
costs ~20-35 ms here, as much as the rest of ``exec``'s own work.

``parse(args)`` returns a callable that runs the command, or None when the arguments are
anything but plain: global options, help, an unknown option, a flag given a value, a bad
number or choice, a missing or extra argument, ``--``, shell completion. Then click parses
them as ever (``app.py``) and prints its usual usage errors. Accepted arguments are parsed
exactly as click parses them (its optparse-style rules: ``--opt value``, ``--opt=value``,
``-o value``, ``-ovalue``, bundled flags ``-it``; no abbreviations; options stop at the
first argument where the command says so), and both paths call the same bodies in
``ops.py``. ``tests/integration/test_containers_fastpath.py`` checks the tables below
against the click commands, and the two paths' output against each other.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

# kinds of option
FLAG, STR, INT, BOOL, MULTI = "flag", "str", "int", "bool", "multi"
OFF = "off"   # the second half of a ``--x/--no-x`` flag: sets its dest False
BOOL_STATES = {"1": True, "0": False, "yes": True, "no": False, "true": True, "false": False, "on": True,
               "off": False, "t": True, "f": False, "y": True, "n": False, "": False}   # click's BoolParamType


class Spec:
    """One command's options: ``names -> (dest, kind, choices)``, defaults, positionals."""

    def __init__(self, options: "list[tuple[tuple[str, ...], str, str, Any]]", interspersed: bool) -> None:
        self.names: "dict[str, tuple[str, str, Any]]" = {}
        self.defaults: "dict[str, Any]" = {}
        for names, dest, kind, default in options:
            choices = None
            if isinstance(kind, tuple):
                kind, choices = STR, kind
            for name in names:
                self.names[name] = (dest, kind, choices)
            if kind == MULTI:
                self.defaults[dest] = ()
            elif kind in (FLAG, OFF):   # a flag pair's default is given on both halves
                self.defaults[dest] = bool(default)
            else:
                self.defaults[dest] = default
        self.interspersed = interspersed


def _o(names: str, dest: str, kind: "Any" = STR, default: "Any" = None) -> "tuple[tuple[str, ...], str, Any, Any]":
    return tuple(names.split()), dest, kind, default


# The option tables of the commands below, built at their first use (~0.5 ms that the other
# commands, parsed by fastviews.py, would pay for nothing). ``SPECS`` and ``CREATE_OPTIONS`` are
# read as module attributes (see __getattr__).
SPEC_NAMES = ("run", "create", "exec", "ps", "build", "stop", "rm", "logs")


def _build_specs() -> None:
    global CREATE_OPTIONS, SPECS
    CREATE_OPTIONS = [
        _o("--pod", "pod"),   # handed to click (see parse): pods stay off the plain run's path
        _o("--name", "name"), _o("-e --env", "env", MULTI), _o("--env-file", "env_file", MULTI),
        _o("-w --workdir", "workdir"), _o("-u --user", "user"), _o("--entrypoint", "entrypoint"),
        _o("-h --hostname", "hostname"), _o("-l --label", "labels", MULTI), _o("--label-file", "label_file", MULTI),
        _o("-i --interactive", "interactive", FLAG), _o("-t --tty", "tty", FLAG), _o("--read-only", "read_only", FLAG),
        _o("--cap-add", "cap_add", MULTI), _o("--cap-drop", "cap_drop", MULTI), _o("--privileged", "privileged", FLAG),
        _o("--runtime", "runtime"), _o("--cgroup-parent", "cgroup_parent"), _o("--network --net", "network"),
        _o("-m --memory", "memory"),
        _o("--network-alias --net-alias", "network_alias", MULTI), _o("--ip", "ip"), _o("--mac-address", "mac_address"),
        _o("-p --publish", "publish", MULTI), _o("-P --publish-all", "publish_all", FLAG), _o("--expose", "expose", MULTI),
        _o("--link", "links", MULTI), _o("--add-host", "add_host", MULTI), _o("--dns", "dns", MULTI),
        _o("--dns-search", "dns_search", MULTI), _o("--dns-option --dns-opt", "dns_option", MULTI),
        _o("--domainname", "domainname"),
        _o("--memory-swap", "memory_swap"), _o("--cpus", "cpus"), _o("--cpu-shares -c", "cpu_shares", INT),
        _o("--pids-limit", "pids_limit", INT), _o("--stop-signal", "stop_signal"), _o("--stop-timeout", "stop_timeout", INT),
        _o("--ulimit", "ulimit", MULTI), _o("--init", "init", FLAG), _o("-v --volume", "volumes", MULTI),
        _o("--mount", "mounts", MULTI), _o("--tmpfs", "tmpfs", MULTI), _o("--restart", "restart", STR, "no"),
        _o("--rm", "rm", FLAG), _o("--log-driver", "log_driver"), _o("--log-opt", "log_opt", MULTI),
        _o("--pull", "pull", ("always", "missing", "never"), "missing"), _o("-a --attach", "attach", MULTI),
        # containers/runflags.py's flags
        _o("--shm-size", "shm_size"), _o("--sysctl", "sysctl", MULTI), _o("--security-opt", "security_opt", MULTI),
        _o("--device", "device", MULTI), _o("--device-cgroup-rule", "device_cgroup_rule", MULTI),
        _o("--group-add", "group_add", MULTI), _o("--ipc", "ipc"), _o("--pid", "pid"), _o("--uts", "uts"),
        _o("--userns", "userns"), _o("--cgroupns", "cgroupns"), _o("--cidfile", "cidfile"),
        _o("--cpuset-cpus", "cpuset_cpus"), _o("--cpuset-mems", "cpuset_mems"), _o("--cpu-period", "cpu_period", INT),
        _o("--cpu-quota", "cpu_quota", INT), _o("--memory-reservation", "memory_reservation"),
        _o("--memory-swappiness", "memory_swappiness", INT), _o("--oom-kill-disable", "oom_kill_disable", FLAG),
        _o("--oom-score-adj", "oom_score_adj", INT), _o("--blkio-weight", "blkio_weight", INT),
        _o("--blkio-weight-device", "blkio_weight_device", MULTI), _o("--device-read-bps", "device_read_bps", MULTI),
        _o("--device-write-bps", "device_write_bps", MULTI), _o("--device-read-iops", "device_read_iops", MULTI),
        _o("--device-write-iops", "device_write_iops", MULTI), _o("--volumes-from", "volumes_from", MULTI),
        _o("--platform", "platform"), _o("--isolation", "isolation"),
        # containers/health.py's flags
        _o("--health-cmd", "health_cmd"), _o("--health-interval", "health_interval"),
        _o("--health-timeout", "health_timeout"), _o("--health-retries", "health_retries", INT),
        _o("--health-start-period", "health_start_period"), _o("--no-healthcheck", "no_healthcheck", FLAG),
    ]
    SPECS = {
        "run": Spec(CREATE_OPTIONS + [_o("-d --detach", "detach", FLAG), _o("--sig-proxy", "sig_proxy", BOOL, True),
                                      _o("--detach-keys", "detach_keys")],
                    interspersed=False),
        "create": Spec(CREATE_OPTIONS, interspersed=False),
        "exec": Spec([_o("-d --detach", "detach", FLAG), _o("-e --env", "env", MULTI), _o("--env-file", "env_file", MULTI),
                      _o("-i --interactive", "interactive", FLAG), _o("-t --tty", "tty", FLAG), _o("-u --user", "user"),
                      _o("-w --workdir", "workdir"), _o("--privileged", "privileged", FLAG)], interspersed=False),
        "ps": Spec([_o("-a --all", "all_", FLAG), _o("-f --filter", "filters", MULTI), _o("--format", "format_"),
                    _o("-n --last", "last", INT, -1), _o("-l --latest", "latest", FLAG), _o("--no-trunc", "no_trunc", FLAG),
                    _o("-q --quiet", "quiet", FLAG), _o("-s --size", "size", FLAG), _o("--pod", "pod", FLAG)],
                   interspersed=True),
        "build": Spec([_o("-t --tag", "tags", MULTI), _o("-f --file", "dockerfile"), _o("--build-arg", "build_args", MULTI),
                       _o("--target", "target"), _o("--no-cache", "no_cache", FLAG), _o("--pull", "pull", FLAG),
                       _o("--network", "network", STR, "default"), _o("--label", "labels", MULTI),
                       _o("--iidfile", "iidfile"), _o("--platform", "platform"), _o("--secret", "secrets", MULTI),
                       _o("--progress", "progress", STR, "auto"), _o("-q --quiet", "quiet", FLAG),
                       _o("--runtime", "runtime")], interspersed=True),
        "stop": Spec([_o("-t --time", "timeout", INT), _o("-s --signal", "signal")], interspersed=True),
        "rm": Spec([_o("-f --force", "force", FLAG), _o("-v --volumes", "volumes", FLAG), _o("-l --link", "link", FLAG)],
                   interspersed=True),
        "logs": Spec([_o("-f --follow", "follow", FLAG), _o("--since", "since"), _o("-n --tail", "tail", STR, "all"),
                      _o("-t --timestamps", "timestamps", FLAG), _o("--details", "details", FLAG)], interspersed=True),
    }
    assert set(SPECS) == set(SPEC_NAMES)


def __getattr__(name: str) -> "Any":
    if name in ("SPECS", "CREATE_OPTIONS"):
        _build_specs()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Fallback(Exception):
    """Not plain enough: let click parse it."""


def _value(kind: str, choices: "Any", text: str) -> "Any":
    if kind == INT:
        try:
            return int(text)          # click's IntParamType
        except ValueError:
            raise Fallback from None
    if kind == BOOL:
        value = BOOL_STATES.get(text.strip().lower())
        if value is None:
            raise Fallback
        return value
    if choices is not None and text not in choices:
        raise Fallback
    return text


def parse_args(spec: Spec, args: "list[str]") -> "tuple[dict[str, Any], list[str]]":
    """(options by dest, positionals) as click's parser would give them; raises Fallback."""
    values: "dict[str, Any]" = dict(spec.defaults)
    multi: "dict[str, list[str]]" = {}
    positionals: "list[str]" = []
    rest = list(args)

    def store(dest: str, kind: str, choices: "Any", text: "str | None") -> None:
        if kind in (FLAG, OFF):
            values[dest] = kind == FLAG
        elif kind == MULTI:
            multi.setdefault(dest, []).append(text)  # type: ignore[arg-type]
        else:
            values[dest] = _value(kind, choices, text)  # type: ignore[arg-type]

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            raise Fallback
        if arg[:1] == "-" and len(arg) > 1:
            if arg[:2] == "--":
                name, eq, explicit = arg.partition("=")
                option = spec.names.get(name)
                if option is None:
                    raise Fallback
                dest, kind, choices = option
                if kind in (FLAG, OFF):
                    if eq:
                        raise Fallback  # "does not take a value"
                    store(dest, kind, choices, None)
                elif eq:
                    store(dest, kind, choices, explicit)
                elif rest:
                    store(dest, kind, choices, rest.pop(0))
                else:
                    raise Fallback  # "requires an argument"
                continue
            # short options, bundled (-it) or with the value attached (-eFOO=1)
            for i in range(1, len(arg)):
                option = spec.names.get("-" + arg[i])
                if option is None:
                    raise Fallback
                dest, kind, choices = option
                if kind in (FLAG, OFF):
                    store(dest, kind, choices, None)
                    continue
                if i + 1 < len(arg):
                    store(dest, kind, choices, arg[i + 1:])
                elif rest:
                    store(dest, kind, choices, rest.pop(0))
                else:
                    raise Fallback
                break
            continue
        positionals.append(arg)
        if not spec.interspersed:
            positionals += rest
            break
    for dest, items in multi.items():
        values[dest] = tuple(items)
    return values, positionals


def parse(args: "list[str]") -> "Callable[[], None] | None":
    """The command to run for ``dockyard ARGS``, or None to leave it to click."""
    if not args or "_DOCKYARD_COMPLETE" in os.environ or os.environ.get("DOCKYARD_DEBUG"):
        return None
    if args[0] not in SPEC_NAMES:
        from dockyard.cli import fastviews

        return fastviews.parse(args)
    name = args[0]
    try:
        values, positionals = parse_args(__getattr__("SPECS")[name], args[1:])
    except Fallback:
        return None
    if values.get("pod"):   # run/create/ps --pod: click's path
        return None
    if name == "run":
        if not positionals:
            return None
        return lambda: _run(values, positionals)
    if name == "create":
        if not positionals:
            return None
        return lambda: _create(values, positionals)
    if name == "exec":
        if len(positionals) < 2:
            return None
        return lambda: _exec(values, positionals)
    if name == "ps":
        if positionals:
            return None
        return lambda: _ops().ps(_engine(), values["all_"], values["filters"], values["format_"], values["last"],
                                 values["latest"], values["no_trunc"], values["quiet"], size=values["size"])
    if name == "build":
        if len(positionals) != 1:
            return None
        return lambda: _build(values, positionals[0])
    if name == "stop":
        if not positionals:
            return None
        return lambda: _ops().stop(_engine(), values["timeout"], values["signal"], tuple(positionals))
    if name == "rm":
        if not positionals:
            return None
        return lambda: _ops().rm(_engine(), values["force"], values["volumes"], tuple(positionals))
    if name == "logs":
        if len(positionals) != 1:
            return None
        return lambda: _ops().logs(_engine(), values["follow"], values["since"], values["tail"], values["timestamps"],
                                   positionals[0])
    return None


def _ops():  # noqa: ANN202
    from dockyard.cli import ops

    return ops


def _engine():  # noqa: ANN202
    """The engine as the click group's callback makes it (no global options on this path)."""
    from dockyard.cli.common import State

    return State(root=os.environ.get("DOCKYARD_ROOT") or None, runroot=os.environ.get("DOCKYARD_RUNROOT") or None,
                 debug=False).engine()


def _run(values: "dict[str, Any]", positionals: "list[str]") -> None:
    kw = dict(values)
    detach, sig_proxy = kw.pop("detach"), kw.pop("sig_proxy")
    # The shim first: its interpreter start-up overlaps everything below (imports, the engine,
    # the state DB, the container's creation); it gets its orders over stdin later.
    from dockyard.containers.spawn import spawn_shim

    shim = spawn_shim()
    try:
        ops, engine = _ops(), _engine()
    except BaseException:
        shim.cancel()
        raise
    ops.run(engine, positionals[0], tuple(positionals[1:]), detach, sig_proxy, kw, shim=shim)


def _create(values: "dict[str, Any]", positionals: "list[str]") -> None:
    import sys

    record = _ops().create_container(_engine(), dict(values), positionals[0], tuple(positionals[1:]))
    sys.stdout.write(record.id + "\n")


def _exec(values: "dict[str, Any]", positionals: "list[str]") -> None:
    v = values
    if v["detach"]:
        _fork_exec_waiter()
    _ops().exec_(_engine(), v["detach"], v["env"], v["env_file"], v["interactive"], v["tty"], v["user"], v["workdir"],
                 v["privileged"], positionals[0], tuple(positionals[1:]))


def _fork_exec_waiter() -> None:
    """``exec -d``: fork now, while this process is small, a child that runs the command and stays
    on as the exec's waiter (containers/execute.py: it says exec_die when the process ends). This
    process only relays: it leaves with 0 once the child says the process runs, else with the
    child's own exit (which printed its error)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        from dockyard.containers import execute

        execute.EARLY_WAITER_ANSWER = w
        return
    os.close(w)
    while True:
        try:
            answer = os.read(r, 4096)
            break
        except InterruptedError:
            continue
    if answer:
        os._exit(0)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _build(values: "dict[str, Any]", context: str) -> None:
    from dockyard.cli import buildops

    buildops.build(_engine(), context=context, **values)
