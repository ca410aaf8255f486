"""runc's command line: ``pyrunc [--root DIR] COMMAND [OPTIONS] ID [ARGS]``.

Parsed by hand: argparse costs more start-up than the rest of a ``run``.
"""

from __future__ import annotations

import sys

# Nothing else is imported up front (not even os): ``main`` starts the cgroup lock warm-up
# (warmup.py) first, and the rest loads while it runs.
DEFAULT_ROOT = "/run/pyrunc"  # state.DEFAULT_ROOT
VERSION = "pyrunc version 0.1.0\nspec: 1.0.2"

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
}
_GLOBAL_VALUES = {"--root", "--log", "--log-format", "--criu", "--rootless"}
_GLOBAL_FLAGS = {"--debug", "--systemd-cgroup"}


class UsageError(Exception):
    pass


def parse(argv: "list[str]") -> "tuple[str, str, dict[str, list[str]], list[str]]":
    """(root, command, options, positional words); repeated options keep every value."""
    root = DEFAULT_ROOT
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
        elif name in ("--version", "-v"):
            return root, "version", {}, []
        elif name not in _GLOBAL_FLAGS:
            raise UsageError(f"unknown global option {name}")
        i += 1
    if i >= len(argv):
        raise UsageError("no command given")
    command = argv[i]
    if command not in _COMMANDS:
        raise UsageError(f"unknown command {command!r}")
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
    try:
        root, command, options, words = parse(argv)
        if command == "version":
            print(VERSION)
            return 0
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
        sys.stderr.write(f"pyrunc: {e.strerror or e}{f': {e.filename}' if e.filename else ''}\n")
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
        raise


def _dispatch(root: str, command: str, options: "dict[str, list[str]]", words: "list[str]") -> int:
    if command == "list":
        return _list(root, options)
    cid = _container_id(command, words)
    if command in ("create", "run"):
        from dockyard.runtime.pyrunc import container

        opts = container.Options(
            bundle=_opt(options, "--bundle", "-b", default=".") or ".",
            pid_file=_opt(options, "--pid-file"),
            console_socket=_opt(options, "--console-socket"),
            preserve_fds=int(_opt(options, "--preserve-fds", default="0") or 0),
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
    raise UsageError(f"unknown command {command!r}")


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
    from dockyard.runtime.pyrunc import fastjson
    from dockyard.runtime.pyrunc.state import Container, list_ids

    states = [Container(root, cid).oci_state() for cid in list_ids(root)]
    if _flag(options, "--quiet", "-q"):
        print("\n".join(s["id"] for s in states))
    elif _opt(options, "--format", "-f") == "json":
        print(fastjson.dumps(states))
    else:
        print("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
        for s in states:
            print(f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}\t{s['owner']}")
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
