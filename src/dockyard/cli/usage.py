"""Usage errors as the docker CLI reports them.

click words them its own way (``Error: No such option '--bogus'.``, exit 2); a Docker user's
scripts know Docker's (cobra's) words and codes:

- a flag error (unknown flag, a value that does not parse): ``unknown flag: --bogus`` /
  ``invalid argument "x" for "-n, --last" flag: ...`` then ``See 'docker ps --help'.``; exit 125;
- a wrong number of arguments: ``"docker run" requires at least 1 argument.``, the ``See`` line,
  the usage line and the command's one-line help; exit 1;
- an unknown command: ``docker: 'bogus' is not a docker command.`` (top level) or the group's
  usage and command list (``docker image bogus``); exit 1.
"""

from __future__ import annotations

import click

FLAG_ERROR = 125
ARGUMENT_ERROR = 1


def report(e: click.UsageError, prog: str = "dockyard") -> int:
    """Print ``e`` as docker would; the exit code to leave with."""
    text, code = translate(e, prog)
    click.echo(text, err=True, nl=False)
    return code


def translate(e: click.UsageError, prog: str = "dockyard") -> tuple[str, int]:
    ctx = e.ctx
    path = ctx.command_path if ctx is not None else _path_from_argv(prog)
    see = f"See '{path} --help'.\n"
    if isinstance(e, click.NoSuchOption):
        return f"unknown flag: {e.option_name}\n{see}", FLAG_ERROR
    if isinstance(e, click.BadOptionUsage):
        # "Option '-t' requires an argument."
        name = e.option_name
        shown = name if name.startswith("--") else f"'{name[1:]}' in {name}"
        return f"flag needs an argument: {shown}\n{see}", FLAG_ERROR
    if isinstance(e, click.MissingParameter) or isinstance(e, click.BadArgumentUsage) \
            or _is_extra_arguments(e):
        if isinstance(e, click.MissingParameter) and isinstance(e.param, click.Option):
            return f"{e.format_message()}\n{see}", FLAG_ERROR
        return _arguments_message(ctx, path, see), ARGUMENT_ERROR
    if isinstance(e, click.BadParameter):
        if isinstance(e.param, click.Option):
            flags = ", ".join(sorted(e.param.opts + e.param.secondary_opts, key=lambda o: (o.startswith("--"), o)))
            value = _bad_value(e)
            return f'invalid argument "{value}" for "{flags}" flag: {_reason(e)}\n{see}', FLAG_ERROR
        return f"{e.format_message()}\n{see}", FLAG_ERROR
    if _is_unknown_command(e):
        return _unknown_command(e, ctx, prog), ARGUMENT_ERROR
    return f"{e.format_message()}\n{see}", FLAG_ERROR


def _path_from_argv(prog: str) -> str:
    """The command path when click gives no context (an option missing its value): the
    command words of argv after the global options."""
    import sys

    from dockyard.cli import groups
    from dockyard.cli.main import COMMANDS

    tables = {"image": groups.IMAGE_COMMANDS, "container": groups.CONTAINER_COMMANDS,
              "volume": groups.VOLUME_COMMANDS, "network": groups.NETWORK_COMMANDS,
              "system": groups.SYSTEM_COMMANDS}
    words = [w for w in sys.argv[1:] if not w.startswith("-")]
    path = [prog]
    if words and words[0] in COMMANDS:
        path.append(words[0])
        if len(words) > 1 and words[1] in tables.get(words[0], {}):
            path.append(words[1])
    return " ".join(path)


def _is_extra_arguments(e: click.UsageError) -> bool:
    return e.message.startswith("Got unexpected extra argument")


def _is_unknown_command(e: click.UsageError) -> bool:
    no_such = getattr(click.exceptions, "NoSuchCommand", None)
    return (no_such is not None and isinstance(e, no_such)) or e.message.startswith("No such command")


def _arguments_message(ctx: click.Context | None, path: str, see: str) -> str:
    """cobra's Args validators: ``requires exactly N``, ``requires at least N``, ``accepts no``."""
    command = ctx.command if ctx is not None else None
    arguments = [p for p in (command.params if command else []) if isinstance(p, click.Argument)]
    required = sum(1 for a in arguments if a.required)
    variadic = any(a.nargs == -1 for a in arguments)
    if not arguments:
        first = f'"{path}" accepts no arguments.'
    elif variadic or len(arguments) != required:
        first = f'"{path}" requires at least {required} argument{"s" if required != 1 else ""}.'
    else:
        first = f'"{path}" requires exactly {required} argument{"s" if required != 1 else ""}.'
    usage = ""
    if ctx is not None and command is not None:
        pieces = " ".join(command.collect_usage_pieces(ctx))
        usage = f"\nUsage:  {path} {pieces}\n"
        short = command.get_short_help_str(limit=200)
        if short:
            usage += f"\n{short}\n"
    return f"{first}\n{see}{usage}"


def _bad_value(e: click.BadParameter) -> str:
    # click's message is "'x' is not a valid integer." and the like; the value is the quoted part
    message = e.message
    if message.startswith("'") and "' " in message:
        return message[1:message.index("' ")]
    return ""


def _reason(e: click.BadParameter) -> str:
    param_type = e.param.type if e.param is not None else None
    value = _bad_value(e)
    if isinstance(param_type, click.types.IntParamType):
        return f'strconv.ParseInt: parsing "{value}": invalid syntax'
    if isinstance(param_type, click.types.FloatParamType):
        return f'strconv.ParseFloat: parsing "{value}": invalid syntax'
    if isinstance(param_type, click.types.BoolParamType):
        return f'strconv.ParseBool: parsing "{value}": invalid syntax'
    return e.message.rstrip(".")


def _unknown_command(e: click.UsageError, ctx: click.Context | None, prog: str) -> str:
    name = e.message.split("'")[1] if "'" in e.message else ""
    if ctx is None or ctx.parent is None:
        return f"{prog}: '{name}' is not a {prog} command.\nSee '{prog} --help'\n"
    # `docker image bogus`: the group's usage and its commands
    command = ctx.command
    lines = [f"\nUsage:  {ctx.command_path} COMMAND\n"]
    help_text = (command.help or "").strip().rstrip(".")
    if help_text:
        lines.append(f"\n{help_text}\n")
    if isinstance(command, click.Group):
        lines.append("\nCommands:\n")
        lazy = getattr(command, "lazy", {})
        names = command.list_commands(ctx)
        width = max((len(n) for n in names), default=0) + 2
        for n in names:
            text = lazy[n][1] if n in lazy else ""
            lines.append(f"  {n.ljust(width)}{text}\n")
    lines.append(f"\nRun '{ctx.command_path} COMMAND --help' for more information on a command.\n")
    return "".join(lines)
