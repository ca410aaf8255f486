"""Command groups (``image``, ``system``) whose subcommands load lazily."""

from __future__ import annotations

import click

from dockyard.cli.main import LazyGroup

IMAGE_COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("dockyard.cli.images:images", "List images"),
    "list": ("dockyard.cli.images:images", "List images"),
    "rm": ("dockyard.cli.images:rmi", "Remove one or more images"),
    "remove": ("dockyard.cli.images:rmi", "Remove one or more images"),
    "inspect": ("dockyard.cli.images:image_inspect", "Display detailed information on one or more images"),
    "tag": ("dockyard.cli.images:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "history": ("dockyard.cli.images:history", "Show the history of an image"),
    "save": ("dockyard.cli.images:save", "Save one or more images to a tar archive"),
    "load": ("dockyard.cli.images:load", "Load an image from a tar archive or STDIN"),
    "import": ("dockyard.cli.images:import_", "Import the contents from a tarball to create an image"),
    "prune": ("dockyard.cli.images:prune", "Remove unused images"),
    "pull": ("dockyard.cli.distribution:pull", "Download an image from a registry"),
    "push": ("dockyard.cli.distribution:push", "Upload an image to a registry"),
}

SYSTEM_COMMANDS: dict[str, tuple[str, str]] = {
    "df": ("dockyard.cli.system:df", "Show dockyard disk usage"),
}


@click.group(cls=LazyGroup, lazy=IMAGE_COMMANDS)
def image() -> None:
    """Manage images."""


@click.group(cls=LazyGroup, lazy=SYSTEM_COMMANDS)
def system() -> None:
    """Manage dockyard."""
