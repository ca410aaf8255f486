"""Command groups (``image``, ``container``, ``volume``, ``network``, ``system``) whose subcommands load lazily."""

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
    "build": ("dockyard.cli.build:build", "Build an image from a Dockerfile"),
    "pull": ("dockyard.cli.distribution:pull", "Download an image from a registry"),
    "push": ("dockyard.cli.distribution:push", "Upload an image to a registry"),
}

SYSTEM_COMMANDS: dict[str, tuple[str, str]] = {
    "df": ("dockyard.cli.system:df", "Show dockyard disk usage"),
    "prune": ("dockyard.cli.system:prune", "Remove unused data"),
    "check": ("dockyard.cli.system:check", "Check the store for inconsistencies and leftovers (--repair fixes them)"),
    "reset": ("dockyard.cli.containers:system_reset", "Remove everything dockyard created (containers, mounts, state)"),
    "info": ("dockyard.cli.info:info", "Display system-wide information"),
    "events": ("dockyard.cli.events:events", "Get real time events from the server"),
    "service": ("dockyard.cli.service:service", "Serve the Docker Engine API (docker CLI, docker-py, compose)"),
}

_C = "dockyard.cli.containers:"
CONTAINER_COMMANDS: dict[str, tuple[str, str]] = {
    name: (_C + attr, text) for name, attr, text in [
        ("run", "run", "Create and run a new container from an image"),
        ("create", "create", "Create a new container"),
        ("start", "start", "Start one or more stopped containers"),
        ("stop", "stop", "Stop one or more running containers"),
        ("kill", "kill", "Kill one or more running containers"),
        ("restart", "restart", "Restart one or more containers"),
        ("rm", "rm", "Remove one or more containers"),
        ("remove", "rm", "Remove one or more containers"),
        ("ls", "ps", "List containers"),
        ("list", "ps", "List containers"),
        ("ps", "ps", "List containers"),
        ("logs", "logs", "Fetch the logs of a container"),
        ("exec", "exec_", "Execute a command in a running container"),
        ("inspect", "container_inspect", "Display detailed information on one or more containers"),
        ("wait", "wait", "Block until one or more containers stop, then print their exit codes"),
        ("rename", "rename", "Rename a container"),
        ("pause", "pause", "Pause all processes within one or more containers"),
        ("unpause", "unpause", "Unpause all processes within one or more containers"),
        ("top", "top", "Display the running processes of a container"),
        ("stats", "stats", "Display container(s) resource usage statistics"),
        ("attach", "attach", "Attach to a running container's input and output"),
        ("cp", "cp", "Copy files/folders between a container and the local filesystem"),
        ("prune", "prune", "Remove all stopped containers"),
    ]
}
CONTAINER_COMMANDS["port"] = ("dockyard.cli.networks:port", "List port mappings or a specific mapping for the container")
_CH = "dockyard.cli.changes:"
CONTAINER_COMMANDS.update({
    "diff": (_CH + "diff", "Inspect changes to files or directories on a container's filesystem"),
    "commit": (_CH + "commit", "Create a new image from a container's changes"),
    "export": (_CH + "export", "Export a container's filesystem as a tar archive"),
    "update": (_CH + "update", "Update configuration of one or more containers"),
})

_V = "dockyard.cli.volumes:"
VOLUME_COMMANDS: dict[str, tuple[str, str]] = {
    "create": (_V + "create", "Create a volume"),
    "ls": (_V + "ls", "List volumes"),
    "list": (_V + "ls", "List volumes"),
    "inspect": (_V + "inspect", "Display detailed information on one or more volumes"),
    "rm": (_V + "rm", "Remove one or more volumes"),
    "remove": (_V + "rm", "Remove one or more volumes"),
    "prune": (_V + "prune", "Remove unused local volumes"),
}


_N = "dockyard.cli.networks:"
NETWORK_COMMANDS: dict[str, tuple[str, str]] = {
    "create": (_N + "create", "Create a network"),
    "ls": (_N + "ls", "List networks"),
    "list": (_N + "ls", "List networks"),
    "inspect": (_N + "inspect", "Display detailed information on one or more networks"),
    "rm": (_N + "rm", "Remove one or more networks"),
    "remove": (_N + "rm", "Remove one or more networks"),
    "connect": (_N + "connect", "Connect a container to a network"),
    "disconnect": (_N + "disconnect", "Disconnect a container from a network"),
    "prune": (_N + "prune", "Remove all unused networks"),
    "reload": (_N + "reload", "Re-create bridges and firewall rules from the state"),
}


@click.group(cls=LazyGroup, lazy=NETWORK_COMMANDS)
def network() -> None:
    """Manage networks."""


@click.group(cls=LazyGroup, lazy=IMAGE_COMMANDS)
def image() -> None:
    """Manage images."""


@click.group(cls=LazyGroup, lazy=SYSTEM_COMMANDS)
def system() -> None:
    """Manage dockyard."""


@click.group(cls=LazyGroup, lazy=CONTAINER_COMMANDS)
def container() -> None:
    """Manage containers."""


@click.group(cls=LazyGroup, lazy=VOLUME_COMMANDS)
def volume() -> None:
    """Manage volumes."""
