"""``-v``, ``--mount`` and ``--tmpfs`` into Docker's mount records, and those records into
OCI mounts at start.

A record is what ``inspect`` shows under ``Mounts`` (Type, Name, Source, Destination,
Driver, Mode, RW, Propagation) plus two private keys: ``NoCopy`` and ``TmpfsOptions``.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any


class MountError(DockyardError):
    exit_code = 125


def parse_volume(spec: str) -> dict[str, Any]:
    """``-v [SRC:]DST[:OPTS]``: a host path (absolute) binds, a name is a named volume, no
    source is an anonymous volume."""
    parts = spec.split(":")
    if len(parts) == 1:
        source, target, opts = "", parts[0], ""
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            source, target, opts = parts[0], parts[1], ""
        else:
            source, target, opts = "", parts[0], parts[1]
    elif len(parts) == 3:
        source, target, opts = parts
    else:
        raise MountError(f"invalid volume specification: '{spec}'")
    if not target.startswith("/"):
        raise MountError(f"invalid volume specification: '{spec}': invalid mount config for type \"volume\": "
                         f"invalid mount path: '{target}' mount path must be absolute")
    options = [o for o in opts.split(",") if o]
    for o in options:
        if o not in ("ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave",
                     "rslave", "consistent", "cached", "delegated"):
            raise MountError(f"invalid mode: {o}")
    read_only = "ro" in options
    mode = ",".join(o for o in options if o not in ("nocopy",))
    if source.startswith("/") or source.startswith("."):
        source = os.path.abspath(source)
        propagation = next((o for o in options if o.endswith(("private", "shared", "slave"))), "rprivate")
        return {"Type": "bind", "Source": source, "Destination": target, "Mode": mode, "RW": not read_only,
                "Propagation": propagation, "CreateSource": True}
    return {"Type": "volume", "Name": source, "Source": "", "Destination": target, "Driver": "local",
            "Mode": mode or "z", "RW": not read_only, "Propagation": "", "NoCopy": "nocopy" in options}


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...``"""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep and key in ("readonly", "ro", "volume-nocopy"):
            value = "true"
        elif not sep:
            raise MountError(f"invalid argument for --mount: invalid field '{item}' must be a key=value pair")
        fields[key] = value
    kind = fields.get("type", "volume")
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    source = fields.get("source") or fields.get("src") or ""
    if not target:
        raise MountError("invalid argument for --mount: target is required")
    read_only = fields.get("readonly", fields.get("ro", "false")).lower() in ("1", "true")
    if kind == "bind":
        if not source:
            raise MountError("invalid argument for --mount: source is required when type is bind")
        source = os.path.abspath(source)
        if not os.path.exists(source):
            raise MountError(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
        return {"Type": "bind", "Source": source, "Destination": target, "Mode": "", "RW": not read_only,
                "Propagation": fields.get("bind-propagation", "rprivate"), "CreateSource": False}
    if kind == "volume":
        return {"Type": "volume", "Name": source, "Source": "", "Destination": target, "Driver": "local",
                "Mode": "z", "RW": not read_only, "Propagation": "",
                "NoCopy": fields.get("volume-nocopy", "false").lower() in ("1", "true")}
    if kind == "tmpfs":
        if source:
            raise MountError("invalid argument for --mount: source must not be specified for tmpfs")
        options = ["nosuid", "nodev"]
        if "tmpfs-size" in fields:
            options.append(f"size={fields['tmpfs-size']}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields['tmpfs-mode']}")
        return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": not read_only,
                "Propagation": "", "TmpfsOptions": options}
    raise MountError(f"invalid argument for --mount: unknown mount type '{kind}'")


def parse_tmpfs(spec: str) -> dict[str, Any]:
    """``--tmpfs /run[:opts]``: Docker's defaults are noexec,nosuid,nodev."""
    target, _, opts = spec.partition(":")
    if not target.startswith("/"):
        raise MountError(f"invalid mount path for tmpfs: {target} must be absolute")
    options = ["noexec", "nosuid", "nodev"] + [o for o in opts.split(",") if o]
    return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": opts, "RW": "ro" not in options,
            "Propagation": "", "TmpfsOptions": options}


def check_unique(mounts: list[dict[str, Any]]) -> None:
    seen = set()
    for m in mounts:
        dest = os.path.normpath(m["Destination"])
        if dest in seen:
            raise MountError(f"Duplicate mount point: {dest}")
        seen.add(dest)


def to_oci(m: dict[str, Any]) -> dict[str, Any]:
    """One record as an OCI mount (sources already resolved)."""
    if m["Type"] == "tmpfs":
        options = list(m.get("TmpfsOptions") or ["nosuid", "nodev"])
        if not m["RW"] and "ro" not in options:
            options.append("ro")
        return {"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs", "options": options}
    options = ["rbind", m.get("Propagation") or "rprivate"]
    options.append("rw" if m["RW"] else "ro")
    return {"destination": m["Destination"], "type": "bind", "source": m["Source"], "options": options}
