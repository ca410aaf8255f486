"""``kube generate``: containers, pods and compose projects as Kubernetes documents.

The conversion is pure: it takes Docker-shaped inspect dicts (the container's and its image's
``Config``) and returns documents, so it is tested from recorded dicts. ``generate`` resolves the
names a user typed through the engine and hands the dicts over. As podman does, a container
contributes only what differs from its image (command/args, env), and the names of everything
are made DNS-1123 labels.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
from typing import TYPE_CHECKING, Any, Callable, Sequence

from dockyard.kube.model import DEFAULT_CAPS, KubeError, cpu_quantity, dns1123, memory_quantity, unique

if TYPE_CHECKING:
    from dockyard.engine import Engine

# The annotation on a PersistentVolumeClaim keeping the volume's own name when its claim name
# had to be changed to a DNS-1123 label (kube play uses the volume again: a round trip keeps data).
VOLUME_NAME = "volume.dockyard.io/name"
NODE_PORTS = range(30000, 32768)
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
DEPENDS_LABEL = "com.docker.compose.depends_on"
_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")

Member = tuple[dict[str, Any], dict[str, Any]]   # (container inspect, image Config)


class Volumes:
    """The pod's ``volumes`` and the PersistentVolumeClaim documents its members' mounts need,
    one entry per source however many members mount it."""

    def __init__(self, path_kind: Callable[[str], str] | None = None) -> None:
        self.pod: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self._by_source: dict[tuple[str, str], str] = {}
        self._names: set[str] = set()
        self._path_kind = path_kind or _path_kind

    def _add(self, key: tuple[str, str], base: str, spec: dict[str, Any]) -> str:
        if key in self._by_source:
            return self._by_source[key]
        name = unique(dns1123(base), self._names)
        self.pod.append({"name": name, **spec})
        self._by_source[key] = name
        return name

    def named(self, volume: str) -> str:
        claim = dns1123(volume, 253)
        name = self._add(("volume", volume), f"{volume}-pvc", {"persistentVolumeClaim": {"claimName": claim}})
        if not any(c["metadata"]["name"] == claim for c in self.claims):
            metadata: dict[str, Any] = {"name": claim}
            if claim != volume:
                metadata["annotations"] = {VOLUME_NAME: volume}
            self.claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
                                "spec": {"accessModes": ["ReadWriteOnce"],
                                         "resources": {"requests": {"storage": "1Gi"}}}})
        return name

    def host_path(self, path: str) -> str:
        spec: dict[str, Any] = {"path": path}
        kind = self._path_kind(path)
        if kind:
            spec["type"] = kind
        return self._add(("bind", path), f"{path.strip('/').replace('/', '-') or 'root'}-host", {"hostPath": spec})

    def empty_dir(self, target: str, memory: bool) -> str:
        spec: dict[str, Any] = {"medium": "Memory"} if memory else {}
        return self._add(("empty", target + str(memory)), f"{target.strip('/').replace('/', '-')}-empty",
                         {"emptyDir": spec})


def _path_kind(path: str) -> str:
    if os.path.isdir(path):
        return "Directory"
    if os.path.isfile(path):
        return "File"
    return ""


def _container_name(inspect: dict[str, Any]) -> str:
    return (inspect.get("Name") or "").lstrip("/") or inspect["Id"][:12]


def _member_name(inspect: dict[str, Any]) -> str:
    """A compose container is its service (``wordpress``, not ``lab-wordpress-1``), else its name."""
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    return labels.get(SERVICE_LABEL) or _container_name(inspect)


def _env(config: dict[str, Any], image: dict[str, Any]) -> list[dict[str, str]]:
    """The container's variables that its image does not set to the same value."""
    given = set(image.get("Env") or [])
    out = []
    for item in config.get("Env") or []:
        if item in given:
            continue
        key, _, value = item.partition("=")
        out.append({"name": key, "value": value})
    return out


def _ports(inspect: dict[str, Any]) -> list[dict[str, Any]]:
    """containerPort for each exposed or published port, hostPort (and hostIP) where published."""
    bindings = (inspect.get("HostConfig") or {}).get("PortBindings") or {}
    exposed = (inspect.get("Config") or {}).get("ExposedPorts") or {}
    out = []
    for spec in list(dict.fromkeys([*bindings, *exposed])):
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").upper()
        if proto not in ("TCP", "UDP", "SCTP"):
            continue
        published = [b for b in bindings.get(spec) or [] if b]
        if not published:
            out.append({"containerPort": int(port), "protocol": proto})
        for binding in published:
            entry: dict[str, Any] = {"containerPort": int(port), "protocol": proto}
            if binding.get("HostPort"):
                entry["hostPort"] = int(binding["HostPort"])
            if binding.get("HostIp") not in (None, "", "0.0.0.0", "::"):
                entry["hostIP"] = binding["HostIp"]
            out.append(entry)
    return out


def _mounts(inspect: dict[str, Any], volumes: Volumes) -> list[dict[str, Any]]:
    out = []
    for mount in inspect.get("Mounts") or []:
        target = mount.get("Destination") or ""
        if mount.get("Type") == "volume":
            name = mount.get("Name") or ""
            volume = volumes.empty_dir(target, False) if _ANONYMOUS.match(name) else volumes.named(name)
        elif mount.get("Type") == "bind":
            volume = volumes.host_path(mount.get("Source") or "")
        elif mount.get("Type") == "tmpfs":
            volume = volumes.empty_dir(target, True)
        else:
            continue
        entry: dict[str, Any] = {"name": volume, "mountPath": target}
        if mount.get("RW") is False:
            entry["readOnly"] = True
        out.append(entry)
    for target in ((inspect.get("HostConfig") or {}).get("Tmpfs") or {}):
        if not any(m["mountPath"] == target for m in out):
            out.append({"name": volumes.empty_dir(target, True), "mountPath": target})
    return out


def _caps(host: dict[str, Any]) -> dict[str, list[str]]:
    """Capabilities against the default set every runtime gives (Docker's = containerd's)."""
    def names(values: Sequence[str] | None) -> list[str]:
        return [v.upper().removeprefix("CAP_") for v in values or []]

    added, dropped = names(host.get("CapAdd")), names(host.get("CapDrop"))
    out: dict[str, list[str]] = {}
    add = ["ALL"] if "ALL" in added else [c for c in added if c not in DEFAULT_CAPS]
    drop = ["ALL"] if "ALL" in dropped else [c for c in dropped if c in DEFAULT_CAPS and c not in added]
    if add:
        out["add"] = add
    if drop:
        out["drop"] = drop
    return out


def _security(inspect: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    host = inspect.get("HostConfig") or {}
    out: dict[str, Any] = {}
    caps = _caps(host)
    if caps:
        out["capabilities"] = caps
    if host.get("Privileged"):
        out["privileged"] = True
    if host.get("ReadonlyRootfs"):
        out["readOnlyRootFilesystem"] = True
    user = (inspect.get("Config") or {}).get("User") or ""
    if user:
        uid, _, gid = user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            out["runAsUser"] = int(uid)
            if gid:
                out["runAsGroup"] = int(gid)
        else:   # a name means nothing to the cluster's runtime without the image's /etc/passwd
            warn(f"container {_container_name(inspect)}: user {user!r} is not numeric: runAsUser not set")
    return out


def _probe(config: dict[str, Any]) -> dict[str, Any] | None:
    """A Docker health check as an exec livenessProbe (Docker's defaults where unset)."""
    health = config.get("Healthcheck") or {}
    test = list(health.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[0] == "CMD":
        command = test[1:]
    else:
        command = ["/bin/sh", "-c", " ".join(shlex.quote(t) for t in test)]

    def seconds(ns: int | None, default: int) -> int:
        return max(1, round(ns / 1e9)) if ns else default

    probe: dict[str, Any] = {"exec": {"command": command},
                             "periodSeconds": seconds(health.get("Interval"), 30),
                             "timeoutSeconds": seconds(health.get("Timeout"), 30),
                             "failureThreshold": int(health.get("Retries") or 3)}
    if health.get("StartPeriod"):
        probe["initialDelaySeconds"] = seconds(health["StartPeriod"], 0)
    return probe


def container(inspect: dict[str, Any], image: dict[str, Any], volumes: Volumes, name: str,
              warn: Callable[[str], None]) -> dict[str, Any]:
    """One Kubernetes container from a container's inspect and its image's Config."""
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    out: dict[str, Any] = {"name": name, "image": config.get("Image") or inspect.get("Image")}
    entrypoint, cmd = config.get("Entrypoint") or [], config.get("Cmd") or []
    if entrypoint != (image.get("Entrypoint") or []):
        out["command"] = list(entrypoint)
        if cmd:   # Kubernetes drops the image's Cmd once command is set: say it again
            out["args"] = list(cmd)
    elif cmd != (image.get("Cmd") or []):
        out["args"] = list(cmd)
    if config.get("WorkingDir") and config["WorkingDir"] != (image.get("WorkingDir") or ""):
        out["workingDir"] = config["WorkingDir"]
    env = _env(config, image)
    if env:
        out["env"] = env
    ports = _ports(inspect)
    if ports:
        out["ports"] = ports
    mounts = _mounts(inspect, volumes)
    if mounts:
        out["volumeMounts"] = mounts
    limits: dict[str, str] = {}
    if host.get("Memory"):
        limits["memory"] = memory_quantity(int(host["Memory"]))
    if host.get("NanoCpus"):
        limits["cpu"] = cpu_quantity(int(host["NanoCpus"]))
    elif host.get("CpuQuota") and host.get("CpuPeriod"):
        limits["cpu"] = cpu_quantity(int(host["CpuQuota"] * 1_000_000_000 / host["CpuPeriod"]))
    if limits:
        out["resources"] = {"limits": limits}
    security = _security(inspect, warn)
    if security:
        out["securityContext"] = security
    probe = _probe(config)
    if probe:
        out["livenessProbe"] = probe
    if config.get("Tty"):
        out["tty"] = True
    if config.get("OpenStdin"):
        out["stdin"] = True
    return out


RESTART = {"no": "Never", "": "Never", "always": "Always", "unless-stopped": "Always", "on-failure": "OnFailure"}


def pod_spec(members: Sequence[Member], warn: Callable[[str], None],
             path_kind: Callable[[str], str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the PodSpec of these members, the PersistentVolumeClaims it needs)."""
    volumes = Volumes(path_kind)
    names: set[str] = set()
    containers = [container(inspect, image, volumes, unique(dns1123(_member_name(inspect)), names), warn)
                  for inspect, image in members]
    policy = ((members[0][0].get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    spec: dict[str, Any] = {"restartPolicy": RESTART.get(policy, "Never"), "containers": containers}
    hostname = ((members[0][0].get("Config") or {}).get("Hostname") or "")
    if hostname and not members[0][0].get("Id", "").startswith(hostname) and dns1123(hostname) == hostname:
        spec["hostname"] = hostname
    if volumes.pod:
        spec["volumes"] = volumes.pod
    return spec, volumes.claims


def workload(name: str, spec: dict[str, Any], kind: str, replicas: int = 1) -> dict[str, Any]:
    """A Pod, or a Deployment (``apps/v1``) whose template is that pod, labelled ``app: name``."""
    labels = {"app": name}
    if kind == "pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}
    template_spec = {**spec, "restartPolicy": "Always"}   # the only policy a Deployment admits
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": template_spec}}}


def service(name: str, spec: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any] | None:
    """A Service selecting ``app: name`` with every container port: NodePort when any is
    published (the node port is the host port when that lies in 30000-32767, else the cluster
    chooses one), ClusterIP otherwise. None when the pod has no port."""
    ports: list[dict[str, Any]] = []
    published = False
    seen: set[tuple[int, str]] = set()
    for c in spec["containers"]:
        for p in c.get("ports") or []:
            key = (p["containerPort"], p["protocol"])
            if key in seen:
                continue
            seen.add(key)
            entry: dict[str, Any] = {"name": f"{p['containerPort']}-{p['protocol'].lower()}",
                                     "port": p["containerPort"], "targetPort": p["containerPort"],
                                     "protocol": p["protocol"]}
            if "hostPort" in p:
                published = True
                if p["hostPort"] in NODE_PORTS:
                    entry["nodePort"] = p["hostPort"]
                else:
                    warn(f"service {name}: host port {p['hostPort']} is outside the NodePort range "
                         "30000-32767: the cluster chooses the node port")
            ports.append(entry)
    if not ports:
        warn(f"service {name}: no container port: no Service generated")
        return None
    # a Service's name is a DNS-1035 label: a letter first
    svc_name = name if name[0].isalpha() else f"svc-{name}"[:63].rstrip("-")
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc_name, "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "type": "NodePort" if published else "ClusterIP", "ports": ports}}


def documents(groups: Sequence[tuple[str, Sequence[Member], int]], kind: str, with_service: bool,
              warn: Callable[[str], None], path_kind: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """Documents for groups of (name, members, replicas): claims first (each once), then per
    group its Pod or Deployment and, with ``with_service``, its Service."""
    claims: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    taken: set[str] = set()
    for name, members, replicas in groups:
        name = unique(dns1123(name), taken)
        spec, needed = pod_spec(members, warn, path_kind)
        for claim in needed:
            if not any(c["metadata"]["name"] == claim["metadata"]["name"] for c in claims):
                claims.append(claim)
        out.append(workload(name, spec, kind, replicas))
        if with_service:
            svc = service(name, spec, warn)
            if svc is not None:
                out.append(svc)
    return claims + out


# ------------------------------------------------------------------ resolving names

def _member(engine: "Engine", typed: str) -> Member:
    inspect = engine.containers.inspect(typed)
    image = (engine.images.inspect(inspect["Image"]).get("Config") or {}) if inspect.get("Image") else {}
    return inspect, image


def _pod_members(engine: "Engine", typed: str) -> tuple[str, list[Member]] | None:
    """A pod's name and members, or None if there is no such pod. The pod's published ports
    are its infra's: they go on its first member, as podman writes them."""
    from dockyard.errors import NotFoundError

    try:
        pod = engine.pods.get(typed)
    except NotFoundError:
        return None
    members = [_member(engine, record.id) for record in engine.pods.members(pod.name)]
    if members and pod.infra_id:
        infra = engine.containers.inspect(pod.infra_id)
        first = copy.deepcopy(members[0][0])
        bindings = (infra.get("HostConfig") or {}).get("PortBindings") or {}
        first.setdefault("HostConfig", {})["PortBindings"] = {**(first["HostConfig"].get("PortBindings") or {}),
                                                              **bindings}
        exposed = (infra.get("Config") or {}).get("ExposedPorts") or {}
        first.setdefault("Config", {})["ExposedPorts"] = {**(first["Config"].get("ExposedPorts") or {}), **exposed}
        if pod.hostname:
            first["Config"]["Hostname"] = pod.hostname
        members[0] = (first, members[0][1])
    return pod.name, members


def _dependency_order(by_service: dict[str, list[Any]]) -> list[str]:
    """Services after those they depend on (the depends_on label), else by name: a cluster
    starts them in any order, but kube play starts them in the file's (nginx resolves its
    upstream's name when it starts)."""
    depends = {name: [d.split(":")[0] for d in (_labels(records[0]).get(DEPENDS_LABEL) or "").split(",") if d]
               for name, records in by_service.items()}
    out: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        if name in out or name in seen or name not in depends:
            return
        for dep in sorted(depends[name]):
            visit(dep, seen | {name})
        out.append(name)

    for name in sorted(depends):
        visit(name, frozenset())
    return out


def _labels(record: Any) -> dict[str, str]:
    return record.container_config.get("Labels") or {}


def generate(engine: "Engine", targets: Sequence[str], kind: str = "pod", with_service: bool = False,
             warn: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """The documents for what ``targets`` name. Containers named together form one Pod named
    after the first (``<name>-pod``, as podman); a pod is one Pod of its members; a compose
    project is one Pod or Deployment per service (its replicas counted), each with a Service
    when asked."""
    containers: list[Member] = []
    groups: list[tuple[str, Sequence[Member], int]] = []
    for typed in targets:
        record = engine.containers.find(typed)
        if record is not None:
            containers.append(_member(engine, record.id))
            continue
        pod = _pod_members(engine, typed)
        if pod is not None:
            if not pod[1]:
                raise KubeError(f"pod {pod[0]} has no containers")
            groups.append((pod[0] if kind == "pod" else f"{pod[0]}-deployment", pod[1], 1))
            continue
        project = engine.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={typed}"]})
        if not project:
            raise KubeError(f"{typed}: no such container, pod or compose project")
        by_service: dict[str, list[Any]] = {}
        for r in sorted(project, key=lambda r: int(_labels(r).get(NUMBER_LABEL) or 0)):
            if _labels(r).get("com.docker.compose.oneoff") == "True":
                continue
            by_service.setdefault(_labels(r).get(SERVICE_LABEL) or r.name, []).append(r)
        for service_name in _dependency_order(by_service):
            records = by_service[service_name]
            groups.append((service_name, [_member(engine, records[0].id)], len(records)))
    if containers:
        first = _container_name(containers[0][0])
        groups.insert(0, (f"{first}-pod" if kind == "pod" else f"{first}-pod-deployment", containers, 1))
    return documents(groups, kind, with_service, warn)
