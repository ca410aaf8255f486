"""``image inspect``: an image as the JSON Docker's daemon returns (GET /images/{name}/json).

Scripts grep and template this output, so the keys, their order and their empty
values (``""``, ``false``, ``null``) follow Docker's, not the OCI config's.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs `image inspect` ~3 ms of start-up
if TYPE_CHECKING:
    from typing import Any

from dockyard import reference as references
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.store.images import Image

ZERO_TIME = "0001-01-01T00:00:00Z"

# Fields of Docker's container.Config: (name, value when the image config lacks it).
_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""),
    ("Domainname", ""),
    ("User", ""),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", None),     # omitted when empty
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", None),
    ("Cmd", None),
    ("Healthcheck", None),      # omitted when empty
    ("ArgsEscaped", None),      # omitted unless true
    ("Image", ""),
    ("Volumes", None),
    ("WorkingDir", ""),
    ("Entrypoint", None),
    ("OnBuild", None),
    ("Labels", None),
    ("StopSignal", None),       # omitted when empty
    ("Shell", None),            # omitted when empty
)
_OMIT_EMPTY = frozenset({"ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "Shell"})

# How a null field prints in ``-f`` templates: Docker templates typed structs, where a
# nil slice prints ``[]`` and a nil map ``map[]``.
TEMPLATE_NILS = {
    **{k: "[]" for k in ("Cmd", "Entrypoint", "Env", "OnBuild", "Shell", "RepoTags", "RepoDigests", "Layers")},
    **{k: "map[]" for k in ("Labels", "Volumes", "ExposedPorts")},
}


def container_config(config: dict[str, Any]) -> dict[str, Any]:
    """The image config's ``config`` object in the shape of Docker's container.Config."""
    out: dict[str, Any] = {}
    for name, default in _CONFIG_FIELDS:
        value = config.get(name, default)
        if name in _OMIT_EMPTY and not value:
            continue
        out[name] = value
    return out


def inspect_image(engine: "Engine", image: "Image") -> dict[str, Any]:
    config = engine.image_store.config(image)
    result: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": [references.parse(t).familiar() for t in image.tags],
        "RepoDigests": [references.parse(d).familiar() for d in image.repo_digests],
        "Parent": "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        # The builder container's ID and config, as the image config kept them (docker build
        # wrote them; an import or a dockyard build has none: Docker then prints the empty config).
        "Container": config.get("container", ""),
        "ContainerConfig": container_config(config.get("container_config") or {}),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": container_config(config.get("config") or {}),
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        result["Variant"] = config["variant"]
    result["Os"] = config.get("os", "")
    if config.get("os.version"):
        result["OsVersion"] = config["os.version"]
    result["Size"] = image.size
    result["VirtualSize"] = image.size   # Docker 20.10 prints both; without shared layers they agree
    result["GraphDriver"] = _graph_driver(engine, image)
    result["RootFS"] = {"Type": "layers", "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])}
    # No tag-time column yet: the time the image was stored is when its first tags were set.
    last_tag = ZERO_TIME
    if image.tags and image.added_at:
        from dockyard.containers.inspect import nano_time

        last_tag = nano_time(image.added_at)
    result["Metadata"] = {"LastTagTime": last_tag}
    return result


def _graph_driver(engine: "Engine", image: "Image") -> dict[str, Any]:
    """Where the layers are unpacked, in overlay2's words: the top layer's directory is
    UpperDir, the ones below it LowerDir (nearest first). Docker also names a MergedDir and
    WorkDir beside the top layer; dockyard never mounts an image by itself, so it has none."""
    try:
        dirs = [engine.layers.diff_dir(chain) for chain in reversed(image.layers)]  # str: no pathlib
    except DockyardError:
        dirs = []
    data: dict[str, str] = {}
    if len(dirs) > 1:
        data["LowerDir"] = ":".join(dirs[1:])
    if dirs:
        data["UpperDir"] = dirs[0]
    return {"Data": data or None, "Name": "overlay2"}


def inspect_json(objects: list[dict[str, Any]]) -> str:
    """``docker inspect`` text: a 4-space indented array of the daemon's JSON as it sent it
    (Docker 20.10's daemon writes ``<``, ``>``, ``&`` and non-ASCII text as they are; Go escapes
    only U+2028 and U+2029)."""
    import json

    if not objects:
        return "[]"
    text = json.dumps(objects, indent=4, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
