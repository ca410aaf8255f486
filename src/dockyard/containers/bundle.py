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
    _make_working_dir(target, conf.get("WorkingDir") or "")
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
    hostname = conf.get("Hostname") or (os.uname().nodename if "host" in (mode, host.get("UTSMode")) else cid[:12])
    if mode.startswith("container:"):
        # dockerd gives a container joining another's network that one's hostname (and files)
        donor = containers.find(mode.partition(":")[2])
        if donor is not None:
            hostname = donor.container_config.get("Hostname") or donor.id[:12]
    extra = host_options(containers, host, cdir)   # before the network: a missing device or donor fails first
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
        cpu_quota=int(host["NanoCpus"] / 1e9 * 100000) if host.get("NanoCpus") else host.get("CpuQuota") or None,
        cpu_period=100000 if host.get("NanoCpus") else host.get("CpuPeriod") or None,
        cpu_shares=host.get("CpuShares") or None,
        pids_limit=host.get("PidsLimit") or None, cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []), privileged=bool(host.get("Privileged")),
        ulimits={u["Name"]: (u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []},
        cgroups_path=cgroups_path(record),
        annotations={"org.dockyard.container.name": record.name},
        **extra,
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


def _make_working_dir(rootfs: str, workdir: str) -> None:
    """Docker creates a missing working directory in the container's own layer before it starts
    (so ``--read-only -w /new`` works, where the runtime's chdir would find nothing to create it in)."""
    if workdir in ("", "/") or not workdir.startswith("/"):
        return
    from dockyard import saferoot

    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(saferoot.mkdirs(root_fd, workdir))
    except OSError as e:
        raise BundleError(f"cannot create the working directory {workdir}: {e.strerror}") from None
    finally:
        os.close(root_fd)


def host_options(containers: "Containers", host: "dict[str, Any]", cdir: str) -> "dict[str, Any]":
    """RunOptions fields of the namespace, device, security and resource flags
    (containers/runflags.py made the HostConfig fields)."""
    from dockyard.containers import runflags

    out: dict[str, Any] = {"shm_size": host.get("ShmSize") or None, "sysctls": dict(host.get("Sysctls") or {}),
                           "group_add": list(host.get("GroupAdd") or []),
                           "cpuset_cpus": host.get("CpusetCpus") or None, "cpuset_mems": host.get("CpusetMems") or None,
                           "memory_reservation": host.get("MemoryReservation") or None,
                           "memory_swappiness": host.get("MemorySwappiness"),
                           "oom_kill_disable": bool(host.get("OomKillDisable")),
                           "oom_score_adj": host.get("OomScoreAdj") or None}
    namespaces: dict[str, str] = {}
    ipc = host.get("IpcMode") or "private"
    if ipc == "host":
        namespaces["ipc"], out["shm"] = "host", "/dev/shm"
    elif ipc == "none":
        out["shm"] = "none"
    elif ipc == "shareable":
        out["shm"] = shareable_shm(cdir, host.get("ShmSize") or runflags.DEFAULT_SHM_SIZE)
    elif ipc.startswith("container:"):
        donor = _running_donor(containers, ipc.partition(":")[2], "IPC")
        donor_ipc = donor.host_config.get("IpcMode") or "private"
        if donor_ipc not in ("shareable", "host"):
            raise BundleError(f"can't join IPC of container {donor.id}: non-shareable IPC (hint: use "
                              "IpcMode:shareable for the donor container)")
        namespaces["ipc"] = f"/proc/{donor.pid}/ns/ipc"
        out["shm"] = os.path.join(containers.container_dir(donor.id), "shm") if donor_ipc == "shareable" else "/dev/shm"
    pid = host.get("PidMode") or ""
    if pid == "host":
        namespaces["pid"] = "host"
    elif pid.startswith("container:"):
        namespaces["pid"] = f"/proc/{_running_donor(containers, pid.partition(':')[2], 'PID').pid}/ns/pid"
    uts = host.get("UTSMode") or ""
    if uts == "host":
        namespaces["uts"] = "host"
    elif uts.startswith("container:"):   # a pod's members share its infra's
        namespaces["uts"] = f"/proc/{_running_donor(containers, uts.partition(':')[2], 'UTS').pid}/ns/uts"
    if host.get("CgroupnsMode") == "host":
        namespaces["cgroup"] = "host"
    out["namespaces"] = namespaces
    devices, rules = [], []
    for mapping in host.get("Devices") or []:
        for node, rule in _device_nodes(mapping):
            devices.append(node)
            rules.append(rule)
    for text in host.get("DeviceCgroupRules") or []:
        kind, numbers, access = text.split(" ")
        major, _, minor = numbers.partition(":")
        rule = {"allow": True, "type": kind, "access": access}
        if major != "*":
            rule["major"] = int(major)
        if minor != "*":
            rule["minor"] = int(minor)
        rules.append(rule)
    out["devices"], out["device_rules"] = devices, rules
    out["block_io"] = _block_io(host)
    seccomp_profile: Any = "default"
    for opt in host.get("SecurityOpt") or []:
        key, value = runflags.parse_security_opt(opt)
        if key == "no-new-privileges":
            out["no_new_privileges"] = runflags.GO_BOOLS[value]
        elif key == "seccomp":
            seccomp_profile = value if value == "unconfined" else ("docker", value)
        elif key == "systempaths":
            out["unmasked"] = True
    out["seccomp"] = seccomp_profile
    if host.get("MaskedPaths") == [] and host.get("ReadonlyPaths") == []:
        out["unmasked"] = True   # --security-opt systempaths=unconfined, as docker's CLI stores it
    return out


def shareable_shm(cdir: str, size: int) -> str:
    """--ipc shareable: /dev/shm is a tmpfs on the host (<container dir>/shm), so that a
    container joining its IPC namespace can bind the same one (a mount inside another
    mount namespace cannot be bound); unmounted when the container is removed."""
    from dockyard import linux

    path = os.path.join(cdir, "shm")
    os.makedirs(path, exist_ok=True)
    from dockyard.runtime.rootfs import is_mounted

    if not is_mounted(path):
        linux.mount("shm", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                    f"mode=1777,size={size // 1024}k")
    return path


def _running_donor(containers: "Containers", name: str, what: str) -> "ContainerRecord":
    donor = containers.get(name)
    if donor.status not in ("running", "paused") or not donor.pid:
        raise BundleError(f"cannot join {what} of a non running container: {donor.id}")
    return donor


def _device_nodes(mapping: "dict[str, str]") -> "list[tuple[dict[str, Any], dict[str, Any]]]":
    """A --device mapping's OCI device(s) and cgroup rule(s); a directory maps every node below it."""
    import stat

    src, dst, access = mapping["PathOnHost"], mapping["PathInContainer"], mapping.get("CgroupPermissions") or "rwm"
    try:
        st = os.stat(src)
    except OSError as e:
        raise BundleError(f"error gathering device information while adding custom device \"{src}\": "
                          f"{(e.strerror or str(e)).lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        out = []
        for base, _, files in os.walk(src):
            for name in sorted(files):
                path = os.path.join(base, name)
                sub = {"PathOnHost": path, "PathInContainer": os.path.join(dst, os.path.relpath(path, src)),
                       "CgroupPermissions": access}
                if stat.S_ISCHR(os.stat(path).st_mode) or stat.S_ISBLK(os.stat(path).st_mode):
                    out += _device_nodes(sub)
        return out
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise BundleError(f"error gathering device information while adding custom device \"{src}\": "
                          "not a device node")
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = {"path": dst, "type": kind, "major": major, "minor": minor, "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}
    return [(node, {"allow": True, "type": kind, "major": major, "minor": minor, "access": access})]


def _block_io(host: "dict[str, Any]") -> "dict[str, Any]":
    """OCI blockIO of the --blkio-weight* and --device-*-bps/iops flags (device paths to numbers)."""
    out: dict[str, Any] = {}
    if host.get("BlkioWeight"):
        out["weight"] = host["BlkioWeight"]
    if host.get("BlkioWeightDevice"):
        out["weightDevice"] = [{**_numbers(d["Path"]), "weight": d["Weight"]} for d in host["BlkioWeightDevice"]]
    for key, oci in (("BlkioDeviceReadBps", "throttleReadBpsDevice"), ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
                     ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
                     ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice")):
        if host.get(key):
            out[oci] = [{**_numbers(d["Path"]), "rate": d["Rate"]} for d in host[key]]
    return out


def _numbers(path: str) -> "dict[str, int]":
    try:
        rdev = os.stat(path).st_rdev
    except OSError as e:
        raise BundleError(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    return {"major": os.major(rdev), "minor": os.minor(rdev)}


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
