"""``dockyard kube generate|play|down``: podman's kube commands over dockyard.kube."""

from __future__ import annotations

import click

from dockyard.cli.common import engine as current_engine


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.group()
def kube() -> None:
    """Generate Kubernetes YAML from containers, pods and compose projects; play it."""


@kube.command()
@click.option("-s", "--service", is_flag=True, help="Generate a Service for each pod's ports.")
@click.option("-t", "--type", "kind", type=click.Choice(["pod", "deployment"]), default="pod", show_default=True,
              help="The kind of workload to generate.")
@click.option("-f", "--filename", "filename", help="Write the YAML to this file instead of stdout.")
@click.argument("names", nargs=-1, required=True)
def generate(service: bool, kind: str, filename: str | None, names: tuple[str, ...]) -> None:
    """Generate Kubernetes YAML from containers, pods or compose projects."""
    from dockyard.kube import generate as gen
    from dockyard.kube.model import dump

    text = dump(gen.generate(current_engine(), names, kind, service, _warn))
    if filename:
        with open(filename, "w", encoding="utf-8") as f:   # podman prints nothing then
            f.write(text)
    else:
        click.echo(text, nl=False)


def _play(source: str, down: bool, replace: bool, start: bool) -> None:
    from dockyard.cli import kubeops

    kubeops.play(current_engine, source, down, replace, start)


@kube.command()
@click.option("--down", is_flag=True, help="Remove what a play of the file created.")
@click.option("--replace", is_flag=True, help="Remove what a play of the file created, then play it again.")
@click.option("--start/--no-start", default=True, show_default=True, help="Start the pods after creating them.")
@click.argument("source", metavar="FILE|-")
def play(down: bool, replace: bool, start: bool, source: str) -> None:
    """Run Pods, Deployments, ConfigMaps, Secrets, claims and Services of a Kubernetes YAML file."""
    _play(source, down, replace, start)


@kube.command(name="down")
@click.argument("source", metavar="FILE|-")
def down_(source: str) -> None:
    """Remove what `kube play FILE` created."""
    _play(source, True, False, True)
