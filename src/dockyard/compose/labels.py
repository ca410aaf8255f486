"""Docker Compose v2's ``com.docker.compose.*`` labels, and the config hash that decides
whether ``up`` keeps a container or recreates it.

Membership of a project is by these labels only (no state of our own), so ``docker compose``
pointed at dockyard's Engine API and ``dockyard compose`` see the same project.

The config hash is Docker Compose v2's (pkg/compose/hash.go): the sha256 of Go's JSON of the
service without ``build``, ``pull_policy``, ``scale``, ``deploy.replicas``, ``depends_on`` and
``profiles``. The canonical model keeps Go's field order (struct fields in declaration order,
map keys sorted), so the same JSON comes out of it: compact, keys in the model's order, ``<``,
``>`` and ``&`` escaped as Go escapes them, ``x-`` extensions left out (Go's ``json:"-"``).
Checked against Docker Compose v2.40.3 creating the same services through dockyard's Engine
API: the labels are equal, so neither tool recreates the other's containers.
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
# encoding/json's HTMLEscape and its line/paragraph separator escapes
_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
               ("\u2029", "\\u2029"))


def config_hash(service: Mapping[str, Any]) -> str:
    """The hex sha256 of the service's JSON as Docker Compose v2 hashes it (see the module's doc)."""
    data = {k: v for k, v in service.items() if k not in _NOT_HASHED and not str(k).startswith("x-")}
    deploy = data.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        data["deploy"] = {k: v for k, v in deploy.items() if k != "replicas"}   # Go keeps the struct
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:
        text = text.replace(char, escaped)
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
