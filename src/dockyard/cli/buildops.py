"""``build``'s body, shared by the click command (cli/build.py) and the fast path
(cli/fastpath.py): no click here, so a cached rebuild does not pay its import."""

from __future__ import annotations

import os
import sys

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine import Engine


class UsageError(DockyardError):
    exit_code = 125   # docker's exit code for a bad flag value


def build(engine: "Engine", tags: "tuple[str, ...]", dockerfile: str | None, build_args: "tuple[str, ...]",
          target: str | None, no_cache: bool, pull: bool, network: str, labels: "tuple[str, ...]",
          iidfile: str | None, platform: str | None, secrets: "tuple[str, ...]", progress: str, quiet: bool,
          runtime: str | None, context: str) -> None:
    """Build an image from a Dockerfile."""
    from dockyard import reference
    from dockyard.build.builder import BuildError, BuildOptions, Builder
    from dockyard.build.context import open_context
    from dockyard.build.progress import open_progress
    from dockyard.errors import InvalidReferenceError

    for tag in tags:
        try:
            reference.parse(tag)
        except InvalidReferenceError as e:
            raise UsageError(f'invalid argument "{tag}" for "-t, --tag" flag: {e.message}') from None
    if progress not in ("auto", "plain", "tty", "quiet"):
        raise UsageError(f'invalid argument "{progress}" for "--progress" flag: auto, plain, tty or quiet')
    if network not in ("default", "host", "none", "bridge"):
        raise UsageError(f"network mode {network!r} not supported by buildkit: default, host or none")
    options = BuildOptions(tags=list(tags), build_args=_build_args(build_args), target=target, no_cache=no_cache,
                           pull=pull, network="default" if network == "bridge" else network,
                           labels=_key_values(labels), platform=platform, secrets=_secrets(secrets),
                           runtime=runtime or os.environ.get("DOCKYARD_RUNTIME") or "")
    quiet = quiet or progress == "quiet"
    with open_context(engine, context, dockerfile) as ctx:
        reporter = open_progress("quiet" if quiet else progress, sys.stderr)
        try:
            image = Builder(engine, ctx, options, reporter).run()
        except BuildError as e:
            reporter.close()   # the live view ends before the report is printed under it
            if not quiet:
                sys.stderr.write(reporter.failure_report(ctx.dockerfile_text,
                                                         _line_of(e.message, ctx.dockerfile_name)))
            raise
        finally:
            reporter.close()
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image.id)
    if quiet:
        sys.stdout.write(image.id + "\n")


def _build_args(items: tuple[str, ...]) -> dict[str, str]:
    """``K=V``, or ``K`` alone to pass this environment's value (dropped when unset), as docker."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid argument {item!r} for \"--build-arg\" flag: a name is needed")
        if sep:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


def _secrets(items: tuple[str, ...]) -> dict[str, str]:
    """``id=x,src=FILE`` (also ``source=``, ``type=file``; ``env=VAR`` reads a variable)."""
    out = {}
    for item in items:
        fields = {}
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise UsageError(f"invalid secret {item!r}: expected key=value fields (id=x,src=FILE)")
            fields[key.strip().lower()] = value
        secret_id = fields.pop("id", "")
        kind = fields.pop("type", "file")
        source = fields.pop("src", fields.pop("source", ""))
        env = fields.pop("env", "")
        if fields:
            raise UsageError(f"invalid secret {item!r}: unexpected key {sorted(fields)[0]!r}")
        if kind not in ("file", "env"):
            raise UsageError(f"invalid secret {item!r}: unsupported type {kind!r}")
        if not secret_id:
            secret_id = os.path.basename(source) if source else env
        if not secret_id:
            raise UsageError(f"invalid secret {item!r}: an id is needed")
        if env or kind == "env":
            value = os.environ.get(env or secret_id)
            if value is None:
                raise UsageError(f"secret {secret_id}: environment variable {env or secret_id} is not set")
            out[secret_id] = _env_secret_file(value)
            continue
        if not source:
            raise UsageError(f"invalid secret {item!r}: src=FILE is needed")
        if not os.path.isfile(source):
            raise UsageError(f"failed to stat {source}: no such file (secret {secret_id})")
        out[secret_id] = os.path.abspath(source)
    return out


def _env_secret_file(value: str) -> str:
    import atexit
    import tempfile

    fd, path = tempfile.mkstemp(prefix="dockyard-secret-")
    with os.fdopen(fd, "w") as f:
        f.write(value)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


def _line_of(message: str, name: str) -> int | None:
    prefix = f"{name}:"
    if message.startswith(prefix):
        number = message[len(prefix):].split(":", 1)[0]
        if number.isdigit():
            return int(number)
    return None




def _key_values(items: "tuple[str, ...]") -> dict[str, str]:
    from dockyard.cli.common import key_values

    return key_values(items)
