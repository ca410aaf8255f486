"""Docker Compose v2's ``com.docker.compose.*`` labels, and the config hash that decides
whether ``up`` keeps a container or recreates it.

Membership of a project is by these labels only (no state of our own), so ``docker compose``
pointed at dockyard's Engine API and ``dockyard compose`` see the same project.

The config hash: Docker Compose v2 (pkg/compose/hash.go) hashes Go's JSON of the service
struct without ``build``, ``pull_policy``, ``scale``, ``deploy.replicas``, ``depends_on`` and
``profiles``. Go's field order is not reproducible from the canonical dict, so ours is the
sha256 of the same service dict, those keys removed, as JSON with sorted keys and no spaces:
stable across runs (an unchanged service hashes the same on each ``up``), changed by any
key that changes the container, unchanged by a scale or a new dependency alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

PREFIX = "com.docker.compose."
PROJECT = PREFIX + "project"
SERVICE = PREFIX + "service"
NUMBER = PREFIX + "container-number"
ONEOFF = PREFIX + "oneoff"
CONFIG_HASH = PREFIX + "config-hash"
WORKING_DIR = PREFIX + "project.working_dir"
CONFIG_FILES = PREFIX + "project.config_files"
ENVIRONMENT_FILE = PREFIX + "project.environment_file"
DEPENDS_ON = PREFIX + "depends_on"
IMAGE = PREFIX + "image"
VERSION = PREFIX + "version"
REPLACE = PREFIX + "replace"
NETWORK = PREFIX + "network"
VOLUME = PREFIX + "volume"
SLUG = PREFIX + "slug"

COMPOSE_VERSION = "2.24.0-dockyard"
_NOT_HASHED = ("build", "pull_policy", "scale", "depends_on", "profiles")


def config_hash(service: Mapping[str, Any]) -> str:
    """The hex sha256 of the service's canonical JSON without the keys that do not change its
    containers (build, pull_policy, scale, deploy.replicas, depends_on, profiles)."""
    data = {k: v for k, v in service.items() if k not in _NOT_HASHED}
    deploy = data.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        deploy = {k: v for k, v in deploy.items() if k != "replicas"}
        if deploy:
            data["deploy"] = deploy
        else:
            del data["deploy"]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def depends_on_label(service: Mapping[str, Any]) -> str:
    """``db:service_healthy:false,...`` as Docker Compose v2 writes it (service:condition:restart)."""
    items = []
    for name, dep in sorted((service.get("depends_on") or {}).items()):
        dep = dep or {}
        items.append(f"{name}:{dep.get('condition') or 'service_started'}:{str(bool(dep.get('restart'))).lower()}")
    return ",".join(items)


def container_labels(project: str, service_name: str, service: Mapping[str, Any], number: int, *,
                     working_dir: str = "", config_files: Iterable[str] = (), image_id: str = "",
                     oneoff: bool = False, replace: str = "", slug: str = "") -> dict[str, str]:
    """Every label Docker Compose v2 puts on a service's container, over the service's own."""
    labels = {str(k): str(v) for k, v in (service.get("labels") or {}).items()}
    labels.update({
        PROJECT: project,
        SERVICE: service_name,
        NUMBER: str(number),
        ONEOFF: "True" if oneoff else "False",
        CONFIG_HASH: config_hash(service),
        WORKING_DIR: working_dir,
        CONFIG_FILES: ",".join(config_files),
        DEPENDS_ON: depends_on_label(service),
        IMAGE: image_id,
        VERSION: COMPOSE_VERSION,
    })
    if replace:
        labels[REPLACE] = replace
    if slug:
        labels[SLUG] = slug
    return labels


def object_labels(project: str, kind: str, key: str, own: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A network's or volume's labels (``kind``: NETWORK or VOLUME) under the project."""
    labels = {str(k): str(v) for k, v in (own or {}).items()}
    labels.update({PROJECT: project, kind: key, VERSION: COMPOSE_VERSION})
    return labels


def project_filter(project: str) -> dict[str, list[str]]:
    """The engine's list filter for a project's objects."""
    return {"label": [f"{PROJECT}={project}"]}
