"""runc's command line: ``pyrunc [--root DIR] COMMAND [OPTIONS] ID [ARGS]``.

Parsed by hand: argparse costs more start-up than the rest of a ``run``.
"""

from __future__ import annotations

import sys

# Nothing else is imported up front (not even os): ``main`` starts the cgroup lock warm-up
# (warmup.py) first, and the rest loads while it runs.
DEFAULT_ROOT = "/run/pyrunc"  # state.DEFAULT_ROOT
VERSION = "0.1.0"  # pyrunc's own; dockyard.__version__ (not imported here: start-up)
SPEC_VERSION = "1.0.2"  # state.OCI_VERSION

# Per command: the options taking a value, and the flags.
_COMMANDS: "dict[str, tuple[set[str], set[str]]]" = {
    "create": ({"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
               {"--no-pivot", "--no-new-keyring"}),
    "run": ({"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
            {"--detach", "-d", "--keep", "--no-pivot", "--no-new-keyring"}),
    "start": (set(), set()),
    "pause": (set(), set()),
    "resume": (set(), set()),
    "state": (set(), set()),
    "kill": (set(), {"--all", "-a"}),
    "delete": (set(), {"--force", "-f"}),
    "exec": ({"--process", "-p", "--pid-file", "--console-socket", "--cwd", "--env", "-e", "--user", "-u",
              "--additional-gids", "-g", "--cap", "-c", "--preserve-fds", "--process-label", "--apparmor"},
             {"--detach", "-d", "--tty", "-t", "--no-new-privs"}),
    "ps": ({"--format", "-f"}, set()),
    "list": ({"--format", "-f"}, {"--quiet", "-q"}),
    "update": ({"--resources", "-r", "--blkio-weight", "--cpu-period", "--cpu-quota", "--cpu-share",
                "--cpu-rt-period", "--cpu-rt-runtime", "--cpuset-cpus", "--cpuset-mems", "--memory",
                "--memory-reservation", "--memory-swap", "--pids-limit", "--l3-cache-schema", "--mem-bw-schema"},
               set()),
    "events": ({"--interval"}, {"--stats"}),
    "features": (set(), set()),
    "spec": ({"--bundle", "-b"}, {"--rootless"}),
    "help": (set(), set()),
}
_ALIASES = {"h": "help"}
_GLOBAL_VALUES = {"--root", "--log", "--log-format", "--criu", "--rootless"}
_GLOBAL_FLAGS = {"--debug", "--systemd-cgroup"}

# (usage after the command's name, one-line description, option lines) for --help.
_HELP: "dict[str, tuple[str, str, tuple[str, ...]]]" = {
    "create": ("[command options] <container-id>", "create a container", (
        "--bundle value, -b value  path to the root of the bundle directory, defaults to the current directory",
        "--console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing "
        "the master end of the console's pseudoterminal",
        "--pid-file value          specify the file to write the process id to",
        "--no-pivot                accepted for runc compatibility (pyrunc always uses pivot_root)",
        "--no-new-keyring          accepted for runc compatibility",
        "--preserve-fds value      pass N additional file descriptors to the container (default: 0)")),
    "run": ("[command options] <container-id>", "create and run a container", (
        "--bundle value, -b value  path to the root of the bundle directory, defaults to the current directory",
        "--console-socket value    path to an AF_UNIX socket which will receive the console's master",
        "--detach, -d              detach from the container's process",
        "--pid-file value          specify the file to write the process id to",
        "--keep                    accepted for runc compatibility",
        "--no-pivot                accepted for runc compatibility",
        "--no-new-keyring          accepted for runc compatibility",
        "--preserve-fds value      pass N additional file descriptors to the container (default: 0)")),
    "start": ("<container-id>", "executes the user defined process in a created container", ()),
    "pause": ("<container-id>", "pause suspends all processes inside the container", ()),
    "resume": ("<container-id>", "resumes all processes that have been previously paused", ()),
    "state": ("<container-id>", "output the state of a container", ()),
    "kill": ("[command options] <container-id> [signal]",
             "kill sends the specified signal (default: SIGTERM) to the container's init process",
             ("--all, -a  send the specified signal to all processes inside the container",)),
    "delete": ("[command options] <container-id>",
               "delete any resources held by the container often used with detached container",
               ("--force, -f  forcibly deletes the container if it is still running (uses SIGKILL)",)),
    "exec": ("[command options] <container-id> <command> [command options]",
             "execute new process inside the container", (
                 "--console-socket value          path to an AF_UNIX socket which will receive the console's master",
                 "--cwd value                     current working directory in the container",
                 "--env value, -e value           set environment variables",
                 "--tty, -t                       allocate a pseudo-TTY",
                 "--user value, -u value          UID (format: <uid>[:<gid>])",
                 "--additional-gids value, -g value  additional gids",
                 "--process value, -p value       path to the process.json",
                 "--detach, -d                    detach from the container's process",
                 "--pid-file value                specify the file to write the process id to",
                 "--apparmor value                set the apparmor profile for the process",
                 "--no-new-privs                  set the no new privileges value for the process",
                 "--cap value, -c value           add a capability to the bounding set for the process",
                 "--preserve-fds value            pass N additional file descriptors to the container")),
    "ps": ("[command options] <container-id> [ps options]", "ps displays the processes running inside a container",
           ("--format value, -f value  select one of: table or json (default: \"table\")",)),
    "list": ("[command options]", "lists containers started by pyrunc with the given root", (
        "--format value, -f value  select one of: table or json (default: \"table\")",
        "--quiet, -q               display only container IDs")),
    "update": ("[command options] <container-id>", "update container resource constraints", (
        "--resources value, -r value  path to the file containing the resources to update or '-' to read from "
        "the standard input",
        "--blkio-weight value        Specifies per cgroup weight, range is from 10 to 1000 (default: 0)",
        "--cpu-period value          CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
        "--cpu-quota value           CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period",
        "--cpu-share value           CPU shares (relative weight vs. other containers)",
        "--cpu-rt-period value       CPU realtime period to be used for hardcapping (in usecs)",
        "--cpu-rt-runtime value      CPU realtime hardcap limit (in usecs)",
        "--cpuset-cpus value         CPU(s) to use",
        "--cpuset-mems value         Memory node(s) to use",
        "--memory value              Memory limit (in bytes; k, m, g suffixes)",
        "--memory-reservation value  Memory reservation or soft_limit (in bytes)",
        "--memory-swap value         Total memory usage (memory + swap); set '-1' to enable unlimited swap",
        "--pids-limit value          Maximum number of pids allowed in the container (default: 0)")),
    "events": ("[command options] <container-id>",
               "display container events such as OOM notifications, cpu, memory, and IO usage statistics", (
                   "--interval value  set the stats collection interval (default: 5s)",
                   "--stats           display the container's stats then exit")),
    "features": ("", "show the enabled features", ()),
    "spec": ("[command options]", "create a new specification file", (
        "--bundle value, -b value  path to the root of the bundle directory",
        "--rootless                generate a configuration for a rootless container (refused: pyrunc needs root)")),
    "help": ("[command]", "shows a list of commands or help for one command", ()),
}


class UsageError(Exception):
    pass


_globals: "dict[str, str]" = {}  # the global options given (--log, --debug, ...)


def parse(argv: "list[str]") -> "tuple[str, str, dict[str, list[str]], list[str]]":
    """(root, command, options, positional words); repeated options keep every value.
    ``--help``/``-h`` and ``--version``/``-v`` become the commands "help" and "version"."""
    root = DEFAULT_ROOT
    _globals.clear()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name in _GLOBAL_VALUES:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i]
            if name == "--root":
                root = value
            _globals[name] = value
        elif name in ("--version", "-v"):
            return root, "version", {}, []
        elif name in ("--help", "-h"):
            return root, "help", {}, []
        elif name in _GLOBAL_FLAGS:
            _globals[name] = "true"
        else:
            raise UsageError(f"unknown global option {name}")
        i += 1
    if i >= len(argv):
        raise UsageError("no command given (pyrunc --help lists them)")
    command = _ALIASES.get(argv[i], argv[i])
    if command not in _COMMANDS:
        raise UsageError(f"unknown command {command!r} (pyrunc --help lists them)")
    takes_value, flags = _COMMANDS[command]
    options: dict[str, list[str]] = {}
    words: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if words and command in ("exec", "ps"):  # after the ID: the command's own arguments
            words.extend(argv[i:])
            break
        if arg == "--":
            words.extend(argv[i + 1:])
            break
        if arg in ("--help", "-h") and not words:
            return root, "help", {}, [command]
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if name in takes_value:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"{name} needs a value")
                    value = argv[i]
                options.setdefault(name, []).append(value)
            elif name in flags:
                options.setdefault(name, []).append("true")
            else:
                raise UsageError(f"unknown option {name} for {command}")
        else:
            words.append(arg)
        i += 1
    return root, command, options, words


def _opt(options: "dict[str, list[str]]", *names: str, default: str | None = None) -> str | None:
    for name in names:
        if name in options:
            return options[name][-1]
    return default


def _flag(options: "dict[str, list[str]]", *names: str) -> bool:
    return any(name in options for name in names)


def _container_id(command: str, words: "list[str]") -> str:
    if not words:
        raise UsageError(f"{command} needs a container ID")
    return words[0]


def entry() -> None:
    """The process entry point: ``main`` on sys.argv, then straight out.

    os._exit skips the interpreter's tear-down (module and object finalization: several
    milliseconds of every command); nothing of ours needs it once stdio is flushed."""
    code = main(sys.argv[1:])
    try:
        sys.stdout.flush()
    except OSError as e:  # a full disk, a closed pipe: what main reports for other OSErrors
        sys.stderr.write(f"pyrunc: {e.strerror or e}\n")
        code = code or 1
    try:
        sys.stderr.flush()
    except OSError:
        pass
    import os

    os._exit(code)


def main(argv: "list[str]") -> int:
    command = ""
    try:
        root, command, options, words = parse(argv)
        if command == "version":
            print(version_text())
            return 0
        if command == "help":
            print(help_text(words[0] if words else None))
            return 0
        if "--log" in _globals:
            from dockyard.runtime.pyrunc import state

            state.LOG_PATH = _globals["--log"]
        if command in ("create", "run", "exec"):
            from dockyard.runtime.pyrunc import warmup

            warmup.start()  # runs while we import, read the spec and make the cgroup
            try:
                return _dispatch(root, command, options, words)
            finally:
                warmup.stop()  # done before the fork when all goes well; else here
        return _dispatch(root, command, options, words)
    except UsageError as e:
        sys.stderr.write(f"pyrunc: {e}\n")
        return 2
    except OSError as e:
        where = f"{command}: " if command else ""
        sys.stderr.write(f"pyrunc: {where}{e.strerror or e}{f': {e.filename}' if e.filename else ''}\n")
        return 1
    except Exception as e:
        from dockyard.runtime.pyrunc.state import StateError

        if isinstance(e, StateError):
            sys.stderr.write(f"pyrunc: {e}\n")
            return 1
        code = getattr(e, "code", None)  # SetupError carries the exit code Docker uses
        if isinstance(code, int):
            sys.stderr.write(f"pyrunc: {e}\n")
            return code
        if "--debug" in _globals:
            raise
        sys.stderr.write(f"pyrunc: {command or 'pyrunc'}: internal error: {type(e).__name__}: {e} "
                         "(--debug shows where)\n")
        return 1


def _dispatch(root: str, command: str, options: "dict[str, list[str]]", words: "list[str]") -> int:
    if command == "list":
        return _list(root, options)
    if command == "features":
        return _features()
    if command == "spec":
        return _spec(options)
    cid = _container_id(command, words)
    if command in ("create", "run"):
        from dockyard.runtime.pyrunc import container

        opts = container.Options(
            bundle=_opt(options, "--bundle", "-b", default=".") or ".",
            pid_file=_opt(options, "--pid-file"),
            console_socket=_opt(options, "--console-socket"),
            preserve_fds=_int(_opt(options, "--preserve-fds", default="0") or "0", "--preserve-fds"),
        )
        if command == "create":
            return container.create(root, cid, opts)
        return container.run(root, cid, opts, detach=_flag(options, "--detach", "-d"))
    if command == "start":
        from dockyard.runtime.pyrunc import container

        return container.start(root, cid)
    if command in ("pause", "resume"):
        from dockyard.runtime.pyrunc import container

        return container.pause(root, cid) if command == "pause" else container.resume(root, cid)
    if command == "state":
        from dockyard.runtime.pyrunc import fastjson
        from dockyard.runtime.pyrunc.state import Container

        print(fastjson.dumps(Container(root, cid).oci_state()))
        return 0
    if command == "kill":
        from dockyard.runtime.pyrunc import container

        signal = parse_signal(words[1] if len(words) > 1 else "SIGTERM")
        return container.kill(root, cid, signal, all_processes=_flag(options, "--all", "-a"))
    if command == "delete":
        from dockyard.runtime.pyrunc import container

        return container.delete(root, cid, force=_flag(options, "--force", "-f"))
    if command == "exec":
        from dockyard.runtime.pyrunc import execute

        return execute.main(root, cid, options, words[1:])
    if command == "ps":
        return _ps(root, cid, _opt(options, "--format", "-f", default="table") or "table", words[1:])
    if command == "update":
        return _update(root, cid, options)
    if command == "events":
        return _events(root, cid, options)
    raise UsageError(f"unknown command {command!r}")


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name}: not an integer: {text!r}") from None


# ------------------------------------------------------------------ help and version

def version_text() -> str:
    """runc's shape: version, commit, spec, then the language and libseccomp in use."""
    lines = [f"pyrunc version {VERSION}", f"commit: {_commit()}", f"spec: {SPEC_VERSION}",
             f"python: {sys.version.split()[0]}", f"libseccomp: {_libseccomp_version() or 'not found'}"]
    return "\n".join(lines)


def _commit() -> str:
    """The git commit of the source tree pyrunc runs from (dockyard is installed editable),
    else "unknown"."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    git = os.path.normpath(os.path.join(here, "..", "..", "..", "..", ".git"))
    try:
        with open(git + "/HEAD") as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        try:
            with open(f"{git}/{ref}") as f:
                return f.read().strip()
        except FileNotFoundError:
            with open(git + "/packed-refs") as f:
                for line in f:
                    if line.rstrip().endswith(" " + ref):
                        return line.split()[0]
    except OSError:
        pass
    return "unknown"


def _libseccomp_version() -> str:
    try:
        import ctypes

        from dockyard.runtime.pyrunc import seccomp

        lib = seccomp.library()
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        major, minor, micro = lib.seccomp_version().contents
        return f"{major}.{minor}.{micro}"
    except (OSError, AttributeError, ValueError):
        return ""


def help_text(command: "str | None" = None) -> str:
    if command is not None:
        command = _ALIASES.get(command, command)
        if command not in _HELP:
            raise UsageError(f"no help topic for {command!r}")
        usage, description, option_lines = _HELP[command]
        text = f"NAME:\n   pyrunc {command} - {description}\n\nUSAGE:\n   pyrunc {command} {usage}".rstrip()
        if option_lines:
            text += "\n\nOPTIONS:\n" + "\n".join("   " + line for line in option_lines)
        return text
    width = max(len(name) for name in _HELP)
    commands = "\n".join(f"   {name.ljust(width)}  {_HELP[name][1]}" for name in _HELP)
    return f"""NAME:
   pyrunc - Open Container Initiative runtime, in Python (dockyard's)

pyrunc is a runc-compatible command line client for running applications packaged
according to the Open Container Initiative (OCI) format: the same verbs, options
and state as runc, on a bundle (a directory with config.json and a root filesystem).

To start a new instance of a container:

    # pyrunc run [ -b bundle ] <container-id>

USAGE:
   pyrunc [global options] command [command options] [arguments...]

VERSION:
{version_text()}

COMMANDS:
{commands}

GLOBAL OPTIONS:
   --debug             show the traceback of an internal error
   --log value         set the log file to write pyrunc's warnings to (default is '/dev/stderr')
   --log-format value  accepted for runc compatibility (warnings are text)
   --root value        root directory for storage of container state (default: "{DEFAULT_ROOT}")
   --criu value        accepted for runc compatibility (no checkpoint/restore)
   --systemd-cgroup    accepted for runc compatibility (systemd cgroup paths are refused)
   --rootless value    accepted for runc compatibility
   --help, -h          show help
   --version, -v       print the version"""


def parse_signal(text: str) -> int:
    """A number as it is (the kernel judges it, as runc lets it), or a signal's name."""
    if text.isdigit():
        return int(text)
    from dockyard.runtime import signals

    try:
        return signals.parse(text)
    except signals.SignalError:
        raise UsageError(f"unknown signal {text!r}") from None


def _list(root: str, options: "dict[str, list[str]]") -> int:
    """runc's table (tabwriter: cells padded to 12 or 3 past the widest), ``--format json``
    (the states, with their owner's name) or ``-q`` (IDs only)."""
    import os

    from dockyard.runtime.pyrunc import fastjson
    from dockyard.runtime.pyrunc.state import Container, StateError, list_ids

    fmt = _opt(options, "--format", "-f", default="table")
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r}: use table or json")
    states = []
    for cid in list_ids(root):
        try:
            s = Container(root, cid).oci_state()
        except (StateError, OSError, ValueError):
            continue  # deleted meanwhile, or half-written
        s["owner"] = _owner(os.stat(f"{root}/{cid}").st_uid)
        states.append(s)
    if _flag(options, "--quiet", "-q"):
        if states:
            print("\n".join(s["id"] for s in states))
    elif fmt == "json":
        print(fastjson.dumps(states) if states else "null")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
        widths = [max(12, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
        for row in rows:
            print("".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[-1])
    return 0


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


# ------------------------------------------------------------------ update / events

_SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}


def parse_bytes(text: str, name: str) -> int:
    """runc's RAMInBytes: a number with an optional k/m/g/t/p (binary) suffix, "b" or "kb"
    alike; -1 stays -1 (unlimited)."""
    value = text.strip().lower()
    if value == "-1":
        return -1
    if value.endswith("ib"):
        value = value[:-2]
    elif value.endswith("b") and len(value) > 1 and value[-2] in _SIZE_UNITS:
        value = value[:-1]
    unit = 1
    if value and value[-1] in _SIZE_UNITS:
        unit = _SIZE_UNITS[value[-1]]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"{name}: invalid size {text!r}") from None
    if number < 0:
        raise UsageError(f"{name}: invalid size {text!r}")
    return int(number * unit)


def update_resources(options: "dict[str, list[str]]", stdin=None) -> "dict":  # noqa: ANN001
    """The linux.resources object ``update`` applies: the --resources JSON (a file, or "-"
    for stdin; then the other options are ignored, as runc does) or runc's flags."""
    from dockyard.runtime.pyrunc import fastjson

    source = _opt(options, "--resources", "-r")
    if source:
        if source == "-":
            text = (stdin or sys.stdin).read()
        else:
            try:
                with open(source) as f:
                    text = f.read()
            except OSError as e:
                raise UsageError(f"--resources: open {source}: {e.strerror}") from None
        try:
            resources = fastjson.loads(text)
        except ValueError as e:
            raise UsageError(f"--resources: invalid JSON in {source}: {e}") from None
        if not isinstance(resources, dict):
            raise UsageError(f"--resources: {source} must hold a JSON object")
        return resources
    resources: dict = {}

    def put(section: str, key: str, value: "int | str") -> None:
        resources.setdefault(section, {})[key] = value

    for flag, section, key in (("--memory", "memory", "limit"), ("--memory-reservation", "memory", "reservation"),
                               ("--memory-swap", "memory", "swap")):
        value = _opt(options, flag)
        if value is not None:
            put(section, key, parse_bytes(value, flag))
    for flag, key in (("--cpu-period", "period"), ("--cpu-quota", "quota"), ("--cpu-share", "shares"),
                      ("--cpu-rt-period", "realtimePeriod"), ("--cpu-rt-runtime", "realtimeRuntime")):
        value = _opt(options, flag)
        if value is not None:
            put("cpu", key, _int(value, flag))
    for flag, key in (("--cpuset-cpus", "cpus"), ("--cpuset-mems", "mems")):
        value = _opt(options, flag)
        if value is not None:
            put("cpu", key, value)
    value = _opt(options, "--pids-limit")
    if value is not None:
        put("pids", "limit", _int(value, "--pids-limit"))
    value = _opt(options, "--blkio-weight")
    if value is not None:
        put("blockIO", "weight", _int(value, "--blkio-weight"))
    for flag in ("--l3-cache-schema", "--mem-bw-schema"):
        if _opt(options, flag) is not None:
            raise UsageError(f"{flag}: Intel RDT is not supported by pyrunc")
    return resources


def _update(root: str, cid: str, options: "dict[str, list[str]]") -> int:
    from dockyard.runtime.pyrunc import container as containers
    from dockyard.runtime.pyrunc.cgroups import Cgroup
    from dockyard.runtime.pyrunc.state import Container, StateError

    container = Container(root, cid)
    status = container.status()
    if status == "stopped":
        raise StateError(f"cannot update container `{cid}`: it is stopped")
    resources = update_resources(options)
    if not resources:
        return 0
    cgroup = Cgroup(container.state["cgroup"])
    with containers.step(f"updating the resources of cgroup {cgroup.path}"):
        cgroup.apply(resources)
    return 0


def _events(root: str, cid: str, options: "dict[str, list[str]]") -> int:
    """``--stats``: one stats object, as runc prints it; else one every --interval while the
    container lives."""
    import time

    from dockyard.runtime.pyrunc import fastjson
    from dockyard.runtime.pyrunc.cgroups import Cgroup
    from dockyard.runtime.pyrunc.state import Container, StateError

    container = Container(root, cid)
    if container.status() == "stopped":
        raise StateError(f"container `{cid}` is not running")
    cgroup = Cgroup(container.state["cgroup"])
    if _flag(options, "--stats"):
        print(fastjson.dumps({"type": "stats", "id": cid, "data": cgroup_stats(cgroup)}))
        return 0
    interval = _duration(_opt(options, "--interval", default="5s") or "5s")
    while container.alive():
        print(fastjson.dumps({"type": "stats", "id": cid, "data": cgroup_stats(cgroup)}), flush=True)
        time.sleep(interval)
    return 0


def _duration(text: str) -> float:
    """Go's durations as runc takes them: 5s, 500ms, 1m, 1h30m."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number, i = 0.0, "", 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise UsageError(f"--interval: invalid duration {text!r}")
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number or total <= 0:
        raise UsageError(f"--interval: invalid duration {text!r}")
    return total


def cgroup_stats(cgroup) -> "dict":  # noqa: ANN001
    """runc's types.Stats from the cgroup's files (v1, hybrid or v2); zero fields left out
    where runc's are ``omitempty``."""
    if cgroup.unified:
        return _stats_v2(cgroup.dirs[""])
    return _stats_v1(cgroup)


def _read(path: "str | None", name: str) -> str:
    if path is None:
        return ""
    try:
        with open(f"{path}/{name}") as f:
            return f.read().strip()
    except OSError:
        return ""


def _num(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0 if text != "max" else 0xFFFFFFFFFFFFFFFF


def _kv(text: str) -> "dict[str, int]":
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def _omit_zero(entry: "dict", keep: "tuple[str, ...]" = ()) -> "dict":
    return {k: v for k, v in entry.items() if v or k in keep}


def _memory_entry(path: "str | None", prefix: str) -> "dict":
    return _omit_zero({"limit": _num(_read(path, prefix + "limit_in_bytes")),
                       "usage": _num(_read(path, prefix + "usage_in_bytes")),
                       "max": _num(_read(path, prefix + "max_usage_in_bytes")),
                       "failcnt": _num(_read(path, prefix + "failcnt"))}, keep=("limit", "failcnt"))


def _blkio_entries(text: str) -> "list[dict]":
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and ":" in fields[0]:
            major, _, minor = fields[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
        elif len(fields) == 2 and ":" in fields[0]:
            major, _, minor = fields[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": "", "value": int(fields[1])})
    return entries


def _cpu_list(text: str) -> "list[int]":
    cpus = []
    for part in text.split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            cpus.extend(range(int(a), int(b) + 1))
        elif part.strip():
            cpus.append(int(part))
    return cpus


def _hugetlb_sizes(path: "str | None", suffix: str) -> "list[str]":
    import os

    if path is None:
        return []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted({n.split(".")[1] for n in names if n.startswith("hugetlb.") and n.endswith(suffix)})


def _stats_v1(cgroup) -> "dict":  # noqa: ANN001
    cpuacct = cgroup.dir("cpuacct")
    cpu_dir = cgroup.dir("cpu")
    usage = _omit_zero({
        "total": _num(_read(cpuacct, "cpuacct.usage")),
        "percpu": [int(x) for x in _read(cpuacct, "cpuacct.usage_percpu").split()],
        "percpu_kernel": [int(x) for x in _read(cpuacct, "cpuacct.usage_percpu_sys").split()],
        "percpu_user": [int(x) for x in _read(cpuacct, "cpuacct.usage_percpu_user").split()],
    })
    ticks = _kv(_read(cpuacct, "cpuacct.stat"))
    import os

    hz = os.sysconf("SC_CLK_TCK") or 100
    usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
    usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
    throttled = _kv(_read(cpu_dir, "cpu.stat"))
    throttling = _omit_zero({"periods": throttled.get("nr_periods", 0),
                             "throttled_periods": throttled.get("nr_throttled", 0),
                             "throttled_time": throttled.get("throttled_time", 0)})
    cpuset_dir = cgroup.dir("cpuset")
    cpuset = {}
    if cpuset_dir:
        cpuset = {"cpus": _cpu_list(_read(cpuset_dir, "cpuset.cpus")), "mems": _cpu_list(_read(cpuset_dir, "cpuset.mems"))}
        for name in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                     "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level"):
            cpuset[name] = _num(_read(cpuset_dir, "cpuset." + name))
    mem = cgroup.dir("memory")
    raw = _kv(_read(mem, "memory.stat"))
    memory = _omit_zero({
        "cache": raw.get("total_cache", raw.get("cache", 0)),
        "usage": _memory_entry(mem, "memory."),
        "swap": _memory_entry(mem, "memory.memsw."),
        "kernel": _memory_entry(mem, "memory.kmem."),
        "kernelTCP": _memory_entry(mem, "memory.kmem.tcp."),
        "raw": raw,
    }) if mem else {}
    pids_dir = cgroup.dir("pids")
    pids = _omit_zero({"current": _num(_read(pids_dir, "pids.current")),
                       "limit": _num(_read(pids_dir, "pids.max")) if _read(pids_dir, "pids.max") != "max" else 0})
    blk = cgroup.dir("blkio")
    blkio = {}
    for key, name in (("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes_recursive"),
                      ("ioServicedRecursive", "blkio.throttle.io_serviced_recursive"),
                      ("ioQueuedRecursive", "blkio.io_queued_recursive"),
                      ("ioServiceTimeRecursive", "blkio.io_service_time_recursive"),
                      ("ioWaitTimeRecursive", "blkio.io_wait_time_recursive"),
                      ("ioMergedRecursive", "blkio.io_merged_recursive"),
                      ("ioTimeRecursive", "blkio.time_recursive"),
                      ("sectorsRecursive", "blkio.sectors_recursive")):
        entries = _blkio_entries(_read(blk, name))
        if entries:
            blkio[key] = entries
    huge = cgroup.dir("hugetlb")
    hugetlb = {}
    for size in _hugetlb_sizes(huge, ".usage_in_bytes"):
        hugetlb[size] = _omit_zero({"usage": _num(_read(huge, f"hugetlb.{size}.usage_in_bytes")),
                                    "max": _num(_read(huge, f"hugetlb.{size}.max_usage_in_bytes")),
                                    "failcnt": _num(_read(huge, f"hugetlb.{size}.failcnt"))}, keep=("failcnt",))
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": cpuset, "memory": memory, "pids": pids,
            "blkio": blkio, "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}


def _stats_v2(path: str) -> "dict":
    stat = _kv(_read(path, "cpu.stat"))
    usage = _omit_zero({"total": stat.get("usage_usec", 0) * 1000})
    usage["kernel"] = stat.get("system_usec", 0) * 1000
    usage["user"] = stat.get("user_usec", 0) * 1000
    throttling = _omit_zero({"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
                             "throttled_time": stat.get("throttled_usec", 0) * 1000})
    raw = _kv(_read(path, "memory.stat"))
    events = _kv(_read(path, "memory.events"))
    limit = _read(path, "memory.max")
    swap_limit = _read(path, "memory.swap.max")
    memory = _omit_zero({
        "cache": raw.get("file", 0),
        "usage": _omit_zero({"limit": _num(limit), "usage": _num(_read(path, "memory.current")),
                             "max": _num(_read(path, "memory.peak")), "failcnt": events.get("max", 0)},
                            keep=("limit", "failcnt")),
        "swap": _omit_zero({"limit": _num(swap_limit), "usage": _num(_read(path, "memory.swap.current")),
                            "failcnt": 0}, keep=("limit", "failcnt")),
        "raw": raw,
    })
    pids_max = _read(path, "pids.max")
    pids = _omit_zero({"current": _num(_read(path, "pids.current")),
                       "limit": _num(pids_max) if pids_max != "max" else 0})
    blkio = {}
    service_bytes, serviced = [], []
    for line in _read(path, "io.stat").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        for key, op in (("rbytes", "Read"), ("wbytes", "Write")):
            if key in values:
                service_bytes.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
        for key, op in (("rios", "Read"), ("wios", "Write")):
            if key in values:
                serviced.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
    if service_bytes:
        blkio["ioServiceBytesRecursive"] = service_bytes
    if serviced:
        blkio["ioServicedRecursive"] = serviced
    hugetlb = {}
    for size in _hugetlb_sizes(path, ".current"):
        hugetlb[size] = _omit_zero({"usage": _num(_read(path, f"hugetlb.{size}.current")),
                                    "failcnt": _kv(_read(path, f"hugetlb.{size}.events")).get("max", 0)},
                                   keep=("failcnt",))
    cpuset = {"cpus": _cpu_list(_read(path, "cpuset.cpus.effective")),
              "mems": _cpu_list(_read(path, "cpuset.mems.effective"))}
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": cpuset, "memory": memory, "pids": pids,
            "blkio": blkio, "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}


# ------------------------------------------------------------------ features / spec

def features() -> "dict":
    """runc's ``features`` object, for what pyrunc implements."""
    from dockyard import linux
    from dockyard.runtime.pyrunc import caps, container, hooks, mounts, seccomp

    mount_options = set(mounts._FLAGS) | set(mounts._PROPAGATION) | {"tmpcopyup", "defaults"}
    libseccomp = _libseccomp_version()
    annotations = {"org.dockyard.pyrunc.version": VERSION, "org.dockyard.pyrunc.commit": _commit()}
    if libseccomp:
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(mount_options),
        "linux": {
            "namespaces": sorted(linux.NAMESPACES),
            "capabilities": list(caps.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": bool(libseccomp), "actions": sorted(seccomp._ACTIONS),
                        "operators": sorted(seccomp._OPS), "archs": sorted(seccomp._ARCHES)},
            "apparmor": {"enabled": container.apparmor_enabled()},
            "selinux": {"enabled": False},
        },
        "annotations": annotations,
    }


def _features() -> int:
    import json

    print(json.dumps(features(), indent=4))
    return 0


def default_spec() -> "dict":
    """What ``runc spec`` writes: busybox's sh in ./rootfs, read-only, with runc's mounts,
    capabilities, masked and read-only paths (pyrunc's spec version)."""
    caps_list = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {kind: list(caps_list) for kind in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def _spec(options: "dict[str, list[str]]") -> int:
    import json
    import os

    from dockyard.runtime.pyrunc.state import SetupError

    if _flag(options, "--rootless"):
        raise SetupError("spec --rootless: rootless containers are not supported: pyrunc runs as root")
    bundle = _opt(options, "--bundle", "-b", default=".") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise SetupError("File config.json exists. Remove it first")
    try:
        with open(path, "x") as f:
            f.write(json.dumps(default_spec(), indent="\t"))
    except OSError as e:
        raise SetupError(f"spec: writing {path}: {e.strerror}") from None
    return 0


def _ps(root: str, cid: str, fmt: str, ps_args: "list[str]") -> int:
    """``--format json``: the container's host PIDs; ``table``: ``ps`` lines of those PIDs."""
    from dockyard.runtime.pyrunc import fastjson
    from dockyard.runtime.pyrunc.cgroups import Cgroup
    from dockyard.runtime.pyrunc.state import Container

    container = Container(root, cid)
    pids = Cgroup(container.state["cgroup"]).pids()
    if fmt == "json":
        print(fastjson.dumps(pids))
        return 0
    if fmt != "table":
        raise UsageError(f"invalid format {fmt!r}: use table or json")
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    column = header.index("PID") if "PID" in header else 1
    print(lines[0])
    wanted = {str(p) for p in pids}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in wanted:
            print(line)
    return 0
