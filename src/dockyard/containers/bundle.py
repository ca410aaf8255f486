"""A container's OCI bundle, made fresh at every start: the rootfs overlay mounted, new
volumes filled, the network attached, /etc files written, Docker's options turned into
the runtime spec.

The network attachment (``dockyard.network.attach``) runs before the spec is written: its
namespace, hosts entries and --link variables go into the spec and the /etc files here,
and what undoes it goes to the shim (``record.extra["network_teardown"]``, not stored).
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError
from dockyard.network import attach as network

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any

    from dockyard.containers.manager import Containers
    from dockyard.containers.store import ContainerRecord

INIT_PATH = "/sbin/docker-init"


class BundleError(DockyardError):
    exit_code = 125


def prepare(containers: "Containers", record: "ContainerRecord") -> "dict[str, Any]":
    """Mount the rootfs, fill new volumes, attach the network, write the /etc files; the
    OCI spec. ``record.config`` gains the bind mounts' inodes (the caller stores it)."""
    from dockyard.containers import mounts as mounts_mod
    from dockyard.runtime import rootfs
    from dockyard.runtime import spec as specs

    engine = containers.engine
    cid = record.id
    cdir = containers.container_dir(cid)
    conf = record.container_config
    host = record.host_config
    chain = record.config.get("ImageChain")
    if not chain or not engine.layers.has(chain):
        raise BundleError(f"the image of container {cid[:12]} ({record.image}) is gone")
    target = rootfs.mount(engine.layers.lowerdirs(chain), cdir, volatile=bool(host.get("AutoRemove")))
    oci_mounts = []
    inodes = {}
    for m in record.config.get("Mounts") or []:
        if m["Type"] == "volume":
            engine.volumes.prepare(m["Name"], target, m["Destination"], copy=not m.get("NoCopy"))
        elif m["Type"] == "bind":
            if not os.path.exists(m["Source"]):
                if not m.get("CreateSource"):
                    raise BundleError(f"invalid mount config for type \"bind\": bind source path does not exist: {m['Source']}")
                os.makedirs(m["Source"], exist_ok=True)
            st = os.stat(m["Source"])
            if not os.path.isdir(m["Source"]):
                inodes[m["Source"]] = [st.st_dev, st.st_ino]
        oci_mounts.append(mounts_mod.to_oci(m))
    mode = host.get("NetworkMode") or "default"
    hostname = conf.get("Hostname") or (os.uname().nodename if mode == "host" else cid[:12])
    attachment = network.attach(engine, record, hostname)
    try:
        oci_mounts += _etc_files(cdir, hostname, attachment, {m["destination"] for m in oci_mounts})
    except BaseException:
        if attachment.teardown is not None:
            network.teardown(engine.root, engine.settings.runroot, cid, attachment.teardown, engine=engine)
        raise
    config = dict(record.config)
    config["BindInodes"] = inodes
    record.config = config
    record.extra["network_teardown"] = attachment.teardown
    options = specs.RunOptions(
        command=conf.get("Cmd") or [], entrypoint=conf.get("Entrypoint") or [""],
        env=list(conf.get("Env") or []) + attachment.env,
        workdir=conf.get("WorkingDir") or None, user=conf.get("User") or "",
        hostname=hostname, terminal=bool(conf.get("Tty")), read_only=bool(host.get("ReadonlyRootfs")),
        mounts=oci_mounts, network=attachment.namespace,
        memory=host.get("Memory") or None, memory_swap=host.get("MemorySwap") or None,
        cpu_quota=int(host["NanoCpus"] / 1e9 * 100000) if host.get("NanoCpus") else None,
        cpu_period=100000 if host.get("NanoCpus") else None, cpu_shares=host.get("CpuShares") or None,
        pids_limit=host.get("PidsLimit") or None, cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []), privileged=bool(host.get("Privileged")),
        ulimits={u["Name"]: (u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []},
        cgroups_path=cgroups_path(record),
        annotations={"org.dockyard.container.name": record.name},
    )
    # The image config carries the defaults; Config already has them merged.
    spec = specs.build({"Env": []}, target, options, cid)
    spec["process"]["args"] = [record.config["Path"], *record.config["Args"]]
    if conf.get("Domainname") and mode != "host":
        spec["domainname"] = conf["Domainname"]
    if host.get("Init"):
        # Docker's --init: its tini (docker-init) bind-mounted in, as PID 1 in front of the command.
        spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                               "options": ["rbind", "ro", "rprivate"]})
        spec["process"]["args"] = [INIT_PATH, "--", *spec["process"]["args"]]
    return spec


def cgroups_path(record: "ContainerRecord") -> str:
    """Where every runtime puts the container's cgroup (read back by stats and OOM)."""
    return f"/{record.host_config.get('CgroupParent') or 'dockyard'}/{record.id}"


def _etc_files(cdir: str, hostname: str, attachment: network.Attachment, taken: "set[str]") -> "list[dict[str, Any]]":
    """/etc/hostname, /etc/hosts and /etc/resolv.conf, bind-mounted as Docker does (unless
    the user mounted their own there)."""
    files = {"hostname": hostname + "\n", "hosts": network.hosts_file(attachment),
             "resolv.conf": attachment.resolv_conf}
    out = []
    for name, text in files.items():
        dest = f"/etc/{name}"
        if dest in taken:
            continue
        path = os.path.join(cdir, name)
        with open(path, "w") as f:
            f.write(text)
        out.append({"destination": dest, "type": "bind", "source": path, "options": ["rbind", "rprivate"]})
    return out


def init_binary() -> str:
    import shutil

    for name in ("docker-init", "tini-static", "tini"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    raise BundleError("--init needs an init binary on the host: docker-init or tini (apt-get install tini)")
