"""What ``ps`` and ``GET /containers/json`` say of a container beyond its record: Docker's
COMMAND and STATUS texts (both front ends show them; neither owns them), and the record's
summary: the few parts of its config a ``ps`` row reads, kept beside the config in the state DB
so that listing 200 containers decodes 200 small objects, not 200 whole configs."""

from __future__ import annotations

TYPE_CHECKING = False  # the ps path: typing costs start-up
if TYPE_CHECKING:
    from typing import Any, Sequence

    from dockyard.containers.store import ContainerRecord


def status_text(r: "ContainerRecord", now: float) -> str:
    from dockyard.units import human_duration

    if r.status in ("running", "paused"):
        text = f"Up {human_duration(now - (r.started_at or now))}"
        if r.status == "paused":
            return text + " (Paused)"
        health = r.extra.get("health")   # filled by containers.list for a container with a check
        if health in ("starting", "healthy", "unhealthy"):
            return f"{text} (health: starting)" if health == "starting" else f"{text} ({health})"
        return text
    if r.status == "restarting":
        return f"Restarting ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.status == "exited":
        if not r.finished_at:
            return "Created"
        return f"Exited ({r.exit_code}) {human_duration(now - r.finished_at)} ago"
    if r.status == "removing":
        return "Removal In Progress"
    if r.status == "dead":
        return "Dead"
    return "Created"


def ps_command(path: str, args: "Sequence[str]") -> str:
    """The daemon's COMMAND: the arguments with a space in single quotes (daemon/list.go)."""
    if not args:
        return path
    return path + " " + " ".join(f"'{a}'" if " " in a else a for a in args)


def summarize(config: "dict[str, Any]") -> "dict[str, Any]":
    """The parts of a container's config ``ps`` shows, as they are there (None where absent).
    store/db.py's migration builds the same object in SQL for the rows of an older DB: change both."""
    inner = config.get("Config") or {}
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig")
    mounts = config.get("Mounts")
    return {"Path": config.get("Path"), "Args": config.get("Args"), "Labels": inner.get("Labels"),
            "ExposedPorts": inner.get("ExposedPorts"),
            "Mounts": [{"Type": m.get("Type"), "Name": m.get("Name"), "Source": m.get("Source")}
                       for m in mounts] if isinstance(mounts, list) else [],
            "NetworkMode": (config.get("HostConfig") or {}).get("NetworkMode"),
            "Networks": list(endpoints) if isinstance(endpoints, dict) else []}
