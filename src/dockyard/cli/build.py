"""``build`` and ``builder prune``: docker build's flags over the engine's builder."""

from __future__ import annotations

import sys

import click

from dockyard.cli import common


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format.")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: 'PATH/Dockerfile').")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--network", default="default", help="Set the networking mode for the RUN instructions during build.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("--iidfile", help="Write the image ID to the file.")
@click.option("--platform", help="Set platform if server is multi-platform capable.")
@click.option("--secret", "secrets", multiple=True, help="Secret to expose to the build (id=mysecret,src=/local/secret).")
@click.option("--progress", default="auto", help="Set type of progress output (auto, plain, tty, quiet).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--rm/--no-rm", default=True, hidden=True)
@click.option("--force-rm", is_flag=True, hidden=True)
@click.option("--runtime", hidden=True, help="The OCI runtime RUN steps use (default: the engine's).")
@click.argument("context")
def build(tags: tuple[str, ...], dockerfile: str | None, build_args: tuple[str, ...], target: str | None,
          no_cache: bool, pull: bool, network: str, labels: tuple[str, ...], iidfile: str | None,
          platform: str | None, secrets: tuple[str, ...], progress: str, quiet: bool, rm: bool, force_rm: bool,
          runtime: str | None, context: str) -> None:
    """Build an image from a Dockerfile."""
    from dockyard.cli import buildops

    # --rm/--force-rm: the legacy builder's intermediate containers; BuildKit has none and
    # ignores them too (accepted so that scripts written for it run).
    buildops.build(common.engine(), tags, dockerfile, build_args, target, no_cache, pull, network, labels, iidfile,
                   platform, secrets, progress, quiet, runtime, context)


@click.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=24h').")
def builder_prune(all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove build cache."""
    from dockyard.cli import buildops
    from dockyard.build.builder import reclaim
    from dockyard.build.cache import BuildCache
    from dockyard.cli.formatting import human_size

    until = None
    for item in filters:
        key, _, value = item.partition("=")
        if key != "until":
            raise buildops.UsageError(f"invalid filter '{key}'")
        from dockyard.timefmt import parse_duration
        import time

        try:
            until = time.time() - parse_duration(value)
        except ValueError:
            raise buildops.UsageError(f"invalid filter 'until={value}': not a duration") from None
    if not force:
        what = "all build cache" if all_ else "all dangling build cache"
        if not click.confirm(f"WARNING! This will remove {what}. Are you sure you want to continue?", default=False):
            return
    engine = common.engine()
    leftovers = reclaim(engine)
    removed = BuildCache(engine).prune(all=all_, until=until)
    total = sum(size for _, size in removed)
    if removed or leftovers:
        sys.stdout.write("Deleted build cache objects:\n")
        for cache_key, _ in removed:
            sys.stdout.write(cache_key.partition(":")[2][:25] + "\n")
        sys.stdout.write("\n")
    sys.stdout.write(f"Total:\t{human_size(total)}\n")


@click.group(name="builder")
def builder() -> None:
    """Manage builds."""


builder.add_command(builder_prune)
builder.add_command(build)
