"""``kube play``: Kubernetes documents run locally, as ``podman kube play`` runs them.

``parse`` reads the documents into a plan (pure: tested from YAML text): the pods to make
(a Deployment's replicas are pods ``<deployment>-pod-<n>``), each container as a Docker-shaped
create body, the volumes they need (PersistentVolumeClaims as named volumes; ConfigMaps,
Secrets and emptyDirs as volumes of the pod filled with their files), the ports to publish
(hostPorts, and NodePorts of the Services selecting the pod: a port without a nodePort takes
the first free one of 30000-32767 when the pod starts) and the DNS names of each pod on
the pods' network (its name and its Services' names). A field or kind it cannot honour is
listed in the plan's warnings, never dropped silently; a document that cannot run at all is a
KubeError before anything is made.

``play`` makes the plan through the engine (and removes what it made if a step fails);
``down`` removes what a play of the same documents made, found by the labels play set.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from dockyard.engine import at_once
from dockyard.kube.model import (LABEL_FILE, LABEL_KIND, LABEL_POD, NETWORK, KubeError, dns1123,
                                 parse_quantity)

if TYPE_CHECKING:
    from dockyard.engine import Engine

VOLUME_NAME = "volume.dockyard.io/name"   # generate keeps a volume's own name here
KINDS = ("Pod", "Deployment", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service")

# The fields each level honours; any other field that is set becomes a warning.
POD_SPEC = {"containers", "volumes", "restartPolicy", "hostname", "terminationGracePeriodSeconds"}
CONTAINER = {"name", "image", "command", "args", "env", "envFrom", "ports", "volumeMounts", "resources",
             "securityContext", "livenessProbe", "workingDir", "tty", "stdin", "imagePullPolicy"}
# what the cluster (or podman) records about an object: read back, it asks for nothing
METADATA = {"name", "labels", "annotations", "namespace", "creationTimestamp", "uid", "resourceVersion", "generation"}
# pod fields whose false is what play does anyway (no service account token, no service env)
FALSE_ONLY = ("automountServiceAccountToken", "enableServiceLinks")
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
NODE_PORT_RANGE = "30000-32767"   # Kubernetes' default service-node-port-range, as a publish range


class Plan:
    """Everything a file asks for, in the engine's terms."""

    def __init__(self) -> None:
        self.pods: list[PodPlan] = []
        self.claims: dict[str, str] = {}           # claim name -> volume name
        self.config_maps: dict[str, dict[str, bytes]] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.services: list[dict[str, Any]] = []
        self.warnings: list[str] = []


class PodPlan:
    def __init__(self, name: str, labels: Mapping[str, str]) -> None:
        self.name = name
        self.labels = dict(labels)
        self.hostname = name
        self.containers: list[tuple[str, dict[str, Any]]] = []   # (container name, create body)
        # pod volume name -> ("volume", volume name, kind) | ("bind", host path, hostPath type)
        self.volumes: dict[str, tuple[str, str, str]] = {}
        # files for the pod's own volumes: volume name -> {relative path: bytes}
        self.files: dict[str, dict[str, bytes]] = {}
        # (host port, container port, proto, host ip); host port NODE_PORT_RANGE: the first free one of the range
        self.publish: list[tuple[int | str, int, str, str]] = []
        self.aliases: list[str] = [name]


# ------------------------------------------------------------------ parsing

def _unknown(where: str, mapping: Mapping[str, Any], known: Iterable[str], warnings: list[str]) -> None:
    for key, value in mapping.items():
        if key not in known and value not in (None, [], {}, ""):
            warnings.append(f"{where}: field {key} is not supported")


def _name(doc: Mapping[str, Any], index: int) -> str:
    name = (doc.get("metadata") or {}).get("name")
    if not name or not isinstance(name, str):
        raise KubeError(f"document {index + 1} ({doc.get('kind')}): metadata.name is required")
    return name


def _data(doc: Mapping[str, Any], where: str, secret: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in (doc.get("data") or {}).items():
        if secret:
            try:
                out[key] = base64.b64decode(str(value), validate=True)
            except ValueError:
                raise KubeError(f"{where}: data.{key} is not base64") from None
        else:
            out[key] = str(value).encode()
    for key, value in (doc.get("stringData" if secret else "binaryData") or {}).items():
        out[key] = str(value).encode() if secret else base64.b64decode(str(value))
    return out


def parse(documents: Sequence[Mapping[str, Any]]) -> Plan:
    """The plan of a file's documents (ConfigMaps, Secrets and claims may come in any order)."""
    plan = Plan()
    workloads: list[tuple[str, Mapping[str, Any], str]] = []
    for i, doc in enumerate(documents):
        kind = doc.get("kind")
        if kind not in KINDS:
            plan.warnings.append(f"kind {kind} ({(doc.get('metadata') or {}).get('name', '?')}) is not supported")
            continue
        name = _name(doc, i)
        where = f"{kind} {name}"
        _unknown(f"{where}: metadata", doc.get("metadata") or {}, METADATA, plan.warnings)
        if kind == "ConfigMap":
            _unknown(where, doc, {"apiVersion", "kind", "metadata", "data", "binaryData"}, plan.warnings)
            plan.config_maps[name] = _data(doc, where, secret=False)
        elif kind == "Secret":
            _unknown(where, doc, {"apiVersion", "kind", "metadata", "data", "stringData", "type"}, plan.warnings)
            plan.secrets[name] = _data(doc, where, secret=True)
        elif kind == "PersistentVolumeClaim":
            _unknown(where, doc, {"apiVersion", "kind", "metadata", "spec"}, plan.warnings)
            _unknown(f"{where}: spec", doc.get("spec") or {}, {"accessModes", "resources", "volumeMode"},
                     plan.warnings)
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            plan.claims[name] = annotations.get(VOLUME_NAME) or name
        elif kind == "Service":
            _unknown(where, doc, {"apiVersion", "kind", "metadata", "spec"}, plan.warnings)
            plan.services.append(_service(name, doc.get("spec") or {}, plan.warnings))
        else:
            workloads.append((name, doc, kind))
    if not workloads:
        error = KubeError("the file has no Pod or Deployment to run")
        error.warnings = plan.warnings   # type: ignore[attr-defined] - the CLI lists them first
        raise error
    for name, doc, kind in workloads:
        if kind == "Pod":
            _unknown(f"Pod {name}", doc, {"apiVersion", "kind", "metadata", "spec", "status"}, plan.warnings)
            labels = (doc.get("metadata") or {}).get("labels") or {}
            plan.pods.append(_pod(dns1123(name), labels, doc.get("spec") or {}, f"Pod {name}", plan))
            continue
        where = f"Deployment {name}"
        _unknown(where, doc, {"apiVersion", "kind", "metadata", "spec", "status"}, plan.warnings)
        spec = doc.get("spec") or {}
        _unknown(f"{where}: spec", spec, {"replicas", "selector", "template", "strategy"}, plan.warnings)
        template = spec.get("template") or {}
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise KubeError(f"{where}: spec.replicas must be a number of pods")
        labels = (template.get("metadata") or {}).get("labels") or {}
        for n in range(replicas):
            plan.pods.append(_pod(f"{dns1123(name)}-pod-{n}", labels, template.get("spec") or {},
                                  f"{where}: spec.template", plan, alias=dns1123(name)))
    _apply_services(plan)
    return plan


def _service(name: str, spec: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    where = f"Service {name}: spec"
    _unknown(where, spec, {"selector", "ports", "type", "clusterIP", "sessionAffinity"}, warnings)
    kind = spec.get("type") or "ClusterIP"
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer"):
        warnings.append(f"{where}: type {kind} is not supported")
    ports = []
    for i, port in enumerate(spec.get("ports") or []):
        _unknown(f"{where}.ports[{i}]", port, {"name", "port", "targetPort", "nodePort", "protocol"}, warnings)
        # without a nodePort, Kubernetes takes a free one of its range: so do we, at the start
        node = port.get("nodePort") or NODE_PORT_RANGE
        ports.append({"port": port.get("port"), "target": port.get("targetPort", port.get("port")),
                      "node": node if kind in ("NodePort", "LoadBalancer") else None,
                      "protocol": (port.get("protocol") or "TCP").lower()})
    return {"name": dns1123(name), "selector": dict(spec.get("selector") or {}), "ports": ports}


def _apply_services(plan: Plan) -> None:
    """Each Service's name becomes a DNS name of the pods it selects; its node ports are
    published on them (once per host port: a pod already publishing it keeps its own)."""
    for svc in plan.services:
        if not svc["selector"]:
            plan.warnings.append(f"Service {svc['name']}: no selector: it selects no pod")
            continue
        chosen = [p for p in plan.pods if all(p.labels.get(k) == v for k, v in svc["selector"].items())]
        for pod in chosen:
            if svc["name"] not in pod.aliases:
                pod.aliases.append(svc["name"])
        for port in svc["ports"]:
            if not port["node"] or not chosen:
                continue
            target = _target_port(chosen[0], port["target"])
            if target is None:
                plan.warnings.append(f"Service {svc['name']}: targetPort {port['target']} names no container port")
                continue
            if port["node"] != NODE_PORT_RANGE and any(
                    (port["node"], port["protocol"]) in {(h, pr) for h, _c, pr, _i in p.publish} for p in plan.pods):
                continue
            node = port["node"] if port["node"] == NODE_PORT_RANGE else int(port["node"])
            chosen[0].publish.append((node, target, port["protocol"], ""))
            if len(chosen) > 1:
                plan.warnings.append(f"Service {svc['name']}: node port {port['node']} is published on "
                                     f"{chosen[0].name} only (no load balancing between pods)")


def _target_port(pod: PodPlan, target: Any) -> int | None:
    if isinstance(target, int):
        return target
    for _name, body in pod.containers:
        for spec, name in (body.get("_port_names") or {}).items():
            if name == target:
                return int(spec)
    return int(target) if str(target).isdigit() else None


def _pod(name: str, labels: Mapping[str, str], spec: Mapping[str, Any], where: str, plan: Plan,
         alias: str = "") -> PodPlan:
    pod = PodPlan(name, labels)
    if alias and alias not in pod.aliases:
        pod.aliases.append(alias)
    _unknown(f"{where}: spec", spec, POD_SPEC | {k for k in FALSE_ONLY if spec.get(k) is False}, plan.warnings)
    if spec.get("hostname"):
        pod.hostname = dns1123(str(spec["hostname"]))
    restart = spec.get("restartPolicy") or "Always"
    if restart not in RESTART:
        raise KubeError(f"{where}: spec.restartPolicy {restart!r} is not Always, OnFailure or Never")
    for i, volume in enumerate(spec.get("volumes") or []):
        _volume(pod, volume, f"{where}: spec.volumes[{i}]", plan)
    containers = spec.get("containers") or []
    if not containers:
        raise KubeError(f"{where}: spec.containers is empty: nothing to run")
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cname = dns1123(str(c.get("name") or f"container-{i}"))
        if cname in seen:
            raise KubeError(f"{where}: two containers are named {cname}")
        seen.add(cname)
        body = _container(pod, c, f"{where}: spec.containers[{i}]", plan)
        body["HostConfig"]["RestartPolicy"] = {"Name": RESTART[restart], "MaximumRetryCount": 0}
        if spec.get("terminationGracePeriodSeconds") is not None:
            body["StopTimeout"] = int(spec["terminationGracePeriodSeconds"])
        pod.containers.append((cname, body))
    return pod


def _volume(pod: PodPlan, volume: Mapping[str, Any], where: str, plan: Plan) -> None:
    name = volume.get("name")
    if not name:
        raise KubeError(f"{where}: name is required")
    sources = [k for k in volume if k != "name"]
    if len(sources) != 1:
        raise KubeError(f"{where}: one volume source is needed, not {sources or 'none'}")
    source, spec = sources[0], volume[sources[0]] or {}
    own = f"{pod.name}-{dns1123(name)}"
    if source == "persistentVolumeClaim":
        _unknown(where + ".persistentVolumeClaim", spec, {"claimName", "readOnly"}, plan.warnings)
        claim = spec.get("claimName")
        if not claim:
            raise KubeError(f"{where}: persistentVolumeClaim.claimName is required")
        pod.volumes[name] = ("volume", plan.claims.get(claim, claim), "pvc")
    elif source == "hostPath":
        _unknown(where + ".hostPath", spec, {"path", "type"}, plan.warnings)
        path, kind = spec.get("path") or "", spec.get("type") or ""
        if not path.startswith("/"):
            raise KubeError(f"{where}: hostPath.path must be absolute")
        if kind not in ("", "Directory", "DirectoryOrCreate", "File", "FileOrCreate"):
            plan.warnings.append(f"{where}: hostPath.type {kind} is not supported: taken as unset")
            kind = ""
        pod.volumes[name] = ("bind", path, kind)
    elif source == "emptyDir":
        _unknown(where + ".emptyDir", spec, {"medium"}, plan.warnings)
        pod.volumes[name] = ("volume", own, "emptydir")
    elif source in ("configMap", "secret"):
        key = "name" if source == "configMap" else "secretName"
        _unknown(f"{where}.{source}", spec, {key, "items", "optional", "defaultMode"}, plan.warnings)
        store = plan.config_maps if source == "configMap" else plan.secrets
        ref = spec.get(key)
        if ref not in store:
            if spec.get("optional"):
                store = {ref: {}}
            else:
                raise KubeError(f"{where}: {source} {ref!r} is not in the file")
        data = store[ref]
        files: dict[str, bytes] = {}
        for item in spec.get("items") or [{"key": k, "path": k} for k in data]:
            if item.get("key") not in data:
                raise KubeError(f"{where}: {source} {ref} has no key {item.get('key')!r}")
            path = str(item.get("path") or item["key"])
            if path.startswith("/") or ".." in path.split("/"):   # Kubernetes' rule: inside the volume
                raise KubeError(f"{where}: {source} path {path!r} must be relative, without '..'")
            files[path] = data[item["key"]]
        pod.volumes[name] = ("volume", own, source.lower())
        pod.files[name] = files
    else:
        raise KubeError(f"{where}: volume source {source} is not supported")


def _lookup(plan: Plan, kind: str, ref: Mapping[str, Any], where: str) -> dict[str, bytes] | None:
    store = plan.config_maps if kind == "configMap" else plan.secrets
    name = ref.get("name")
    if name not in store:
        if ref.get("optional"):
            return None
        raise KubeError(f"{where}: {'ConfigMap' if kind == 'configMap' else 'Secret'} {name!r} is not in the file")
    return store[name]


def _env(c: Mapping[str, Any], where: str, plan: Plan) -> list[str]:
    env: dict[str, str] = {}
    for i, source in enumerate(c.get("envFrom") or []):
        prefix = source.get("prefix") or ""
        _unknown(f"{where}.envFrom[{i}]", source, {"prefix", "configMapRef", "secretRef"}, plan.warnings)
        for key, kind in (("configMapRef", "configMap"), ("secretRef", "secret")):
            if key in source:
                data = _lookup(plan, kind, source[key], f"{where}.envFrom[{i}].{key}") or {}
                env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
    for i, item in enumerate(c.get("env") or []):
        name = item.get("name")
        if not name:
            raise KubeError(f"{where}.env[{i}]: name is required")
        if "valueFrom" not in item:
            env[name] = str(item.get("value", ""))
            continue
        source = item["valueFrom"] or {}
        for key, kind in (("configMapKeyRef", "configMap"), ("secretKeyRef", "secret")):
            if key in source:
                ref = source[key]
                data = _lookup(plan, kind, ref, f"{where}.env[{i}].valueFrom.{key}")
                if data is None:
                    break
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        break
                    raise KubeError(f"{where}.env[{i}].valueFrom.{key}: {ref.get('name')} has no key "
                                    f"{ref.get('key')!r}")
                env[name] = data[ref["key"]].decode(errors="replace")
                break
        else:
            plan.warnings.append(f"{where}.env[{i}]: field valueFrom.{next(iter(source), '?')} is not supported")
    return [f"{k}={v}" for k, v in env.items()]


def _container(pod: PodPlan, c: Mapping[str, Any], where: str, plan: Plan) -> dict[str, Any]:
    _unknown(where, c, CONTAINER, plan.warnings)
    image = c.get("image")
    if not image:
        raise KubeError(f"{where}: image is required")
    host: dict[str, Any] = {}
    body: dict[str, Any] = {"Image": str(image), "Env": _env(c, where, plan), "HostConfig": host}
    if c.get("command"):
        body["Entrypoint"] = [str(a) for a in c["command"]]
        body["Cmd"] = [str(a) for a in c.get("args") or []]
    elif c.get("args"):
        body["Cmd"] = [str(a) for a in c["args"]]
    if c.get("workingDir"):
        body["WorkingDir"] = c["workingDir"]
    body["Tty"], body["OpenStdin"] = bool(c.get("tty")), bool(c.get("stdin"))
    exposed: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for i, port in enumerate(c.get("ports") or []):
        _unknown(f"{where}.ports[{i}]", port, {"containerPort", "hostPort", "protocol", "name", "hostIP"},
                 plan.warnings)
        number, proto = port.get("containerPort"), (port.get("protocol") or "TCP").lower()
        if not isinstance(number, int):
            raise KubeError(f"{where}.ports[{i}]: containerPort must be a number")
        exposed[f"{number}/{proto}"] = {}
        if port.get("name"):
            names[str(number)] = port["name"]
        if port.get("hostPort"):
            pod.publish.append((int(port["hostPort"]), number, proto, port.get("hostIP") or ""))
    if exposed:
        body["ExposedPorts"] = exposed
    body["_port_names"] = names
    binds: list[str] = []
    for i, mount in enumerate(c.get("volumeMounts") or []):
        _unknown(f"{where}.volumeMounts[{i}]", mount, {"name", "mountPath", "readOnly"}, plan.warnings)
        volume = pod.volumes.get(mount.get("name"))
        if volume is None:
            raise KubeError(f"{where}.volumeMounts[{i}]: no volume named {mount.get('name')!r} in the pod")
        target = mount.get("mountPath") or ""
        read_only = bool(mount.get("readOnly")) or volume[2] in ("configmap", "secret")
        binds.append(f"{volume[1]}:{target}" + (":ro" if read_only else ""))
    host["Binds"] = binds
    _resources(c.get("resources") or {}, host, where, plan)
    _security(c.get("securityContext") or {}, body, host, where, plan)
    probe = c.get("livenessProbe")
    if probe:
        health = _probe(probe, f"{where}.livenessProbe", plan)
        if health:
            body["Healthcheck"] = health
    return body


def _resources(resources: Mapping[str, Any], host: dict[str, Any], where: str, plan: Plan) -> None:
    _unknown(f"{where}.resources", resources, {"limits", "requests"}, plan.warnings)
    limits = resources.get("limits") or {}
    _unknown(f"{where}.resources.limits", limits, {"memory", "cpu"}, plan.warnings)
    if limits.get("memory") is not None:
        host["Memory"] = int(parse_quantity(limits["memory"], f"{where}.resources.limits.memory"))
    if limits.get("cpu") is not None:
        host["NanoCpus"] = int(parse_quantity(limits["cpu"], f"{where}.resources.limits.cpu") * 1e9)
    requests = resources.get("requests") or {}
    for key in requests:   # a request only places a pod on a node: one machine has nothing to place
        plan.warnings.append(f"{where}.resources.requests: field {key} is not supported (no scheduler)")


def _security(ctx: Mapping[str, Any], body: dict[str, Any], host: dict[str, Any], where: str, plan: Plan) -> None:
    _unknown(f"{where}.securityContext", ctx, {"capabilities", "privileged", "readOnlyRootFilesystem", "runAsUser",
                                               "runAsGroup", "allowPrivilegeEscalation"}, plan.warnings)
    caps = ctx.get("capabilities") or {}
    if caps.get("add"):
        host["CapAdd"] = [str(c) for c in caps["add"]]
    if caps.get("drop"):
        host["CapDrop"] = [str(c) for c in caps["drop"]]
    if ctx.get("privileged"):
        host["Privileged"] = True
    if ctx.get("readOnlyRootFilesystem"):
        host["ReadonlyRootfs"] = True
    if ctx.get("allowPrivilegeEscalation") is False:
        host["SecurityOpt"] = ["no-new-privileges"]
    if ctx.get("runAsUser") is not None:
        body["User"] = str(ctx["runAsUser"]) + (f":{ctx['runAsGroup']}" if ctx.get("runAsGroup") is not None else "")
    elif ctx.get("runAsGroup") is not None:
        plan.warnings.append(f"{where}.securityContext: field runAsGroup without runAsUser is not supported")


def _probe(probe: Mapping[str, Any], where: str, plan: Plan) -> dict[str, Any] | None:
    _unknown(where, probe, {"exec", "periodSeconds", "timeoutSeconds", "failureThreshold", "initialDelaySeconds"},
             plan.warnings)
    command = (probe.get("exec") or {}).get("command")
    if not command:
        return None
    second = 1_000_000_000
    return {"Test": ["CMD", *map(str, command)], "Interval": int(probe.get("periodSeconds") or 10) * second,
            "Timeout": int(probe.get("timeoutSeconds") or 1) * second,
            "Retries": int(probe.get("failureThreshold") or 3),
            "StartPeriod": int(probe.get("initialDelaySeconds") or 0) * second}


# ------------------------------------------------------------------ running

class Made:
    """What a play made so far: removed again if a later step fails."""

    def __init__(self) -> None:
        self.pods: list[str] = []
        self.volumes: list[str] = []
        self.network = ""


def _ensure_images(engine: "Engine", plan: Plan) -> None:
    """Every image present (pulled if not, as podman does) before anything is made."""
    for image in dict.fromkeys(body["Image"] for pod in plan.pods for _n, body in pod.containers):
        if engine.images.find(image) is None:
            try:
                engine.images.pull(image)
            except Exception as e:  # noqa: BLE001 - whatever the pull's failure, the play cannot run
                raise KubeError(f"image {image}: not found locally and the pull failed: "
                                f"{getattr(e, 'message', e)}") from None


def _check_free(engine: "Engine", plan: Plan) -> None:
    from dockyard.containers.names import check_name

    taken = {r.name for r in engine.containers.list(all=True)}
    for pod in plan.pods:
        if engine.pods.find(pod.name) is not None:
            raise KubeError(f"pod {pod.name} exists: `kube play --replace` or `kube down` first")
        for cname, _body in pod.containers:
            full = f"{pod.name}-{cname}"
            check_name(full)
            if full in taken:
                raise KubeError(f"container name {full} is in use: `kube play --replace` or `kube down` first")


def _labels(label: str, pod: str) -> dict[str, str]:
    return {LABEL_FILE: label, LABEL_POD: pod}


def _pod_volumes(engine: "Engine", pod: PodPlan, label: str, made: Made) -> None:
    import os

    for vname, (what, source, kind) in pod.volumes.items():
        if what == "bind":
            if kind in ("DirectoryOrCreate", "") and not os.path.exists(source):
                os.makedirs(source, exist_ok=True)
            elif kind == "FileOrCreate" and not os.path.exists(source):
                open(source, "a").close()
            elif kind in ("Directory", "File") and not os.path.exists(source):
                raise KubeError(f"pod {pod.name}: hostPath {source} does not exist")
            continue
        if engine.volumes.find(source) is not None:
            continue
        labels = {LABEL_FILE: label, LABEL_KIND: kind}
        if kind != "pvc":
            labels[LABEL_POD] = pod.name
        engine.volumes.create(source, labels=labels)
        made.volumes.append(source)
        for rel, data in pod.files.get(vname, {}).items():
            path = os.path.join(engine.volumes.path(source), rel.lstrip("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)


def _ensure_network(engine: "Engine", made: Made) -> None:
    from dockyard.errors import NotFoundError

    try:
        engine.networks.get(NETWORK)
    except NotFoundError:
        engine.networks.create(NETWORK, labels={LABEL_KIND: "network"})
        made.network = NETWORK


def _create(engine: "Engine", body: dict[str, Any], name: str) -> str:
    from dockyard.containers.request import RequestError, normalise

    body = {k: v for k, v in body.items() if not k.startswith("_")}
    try:
        config, host, networking, _warnings = normalise(body)
    except RequestError as e:
        raise KubeError(f"container {name}: {e.message}") from None
    return engine.containers.create(config, host, name, networking).id


def _publish(entry: tuple[int | str, int, str, str]) -> str:
    host_port, container_port, proto, ip = entry
    return (f"{ip}:" if ip else "") + f"{host_port}:{container_port}/{proto}"


def _make_pod(engine: "Engine", pod: PodPlan, label: str, made: Made) -> tuple[str, list[str]]:
    """The pod (engine.pods: its infra holds the network, IPC and UTS namespaces, the DNS names
    and the published ports) and its members, made through the engine's create path with the
    fields a member of that pod needs. (pod id, member ids)."""
    from dockyard.network import ipam

    for alias in pod.aliases:
        ipam.check_dns_name(alias)
    record = engine.pods.create(name=pod.name, publish=[_publish(p) for p in pod.publish], network=NETWORK,
                                labels=_labels(label, pod.name), hostname=pod.hostname, aliases=pod.aliases)
    made.pods.append(record.name)
    fields = engine.pods.member_fields(record)
    ids: list[str] = []
    for cname, body in pod.containers:
        body = {**body, "HostConfig": {**body["HostConfig"], **fields["HostConfig"]},
                "Labels": {**(body.get("Labels") or {}), **_labels(label, pod.name), **fields["Labels"]}}
        body.pop("ExposedPorts", None)   # the infra's: a member has no network of its own
        ids.append(_create(engine, body, f"{pod.name}-{cname}"))
    return record.id, ids


def play(engine: "Engine", plan: Plan, label: str, start: bool = True) -> list[tuple[str, list[str]]]:
    """Make the plan's pods (and start them, in the file's order, unless ``start`` is false):
    [(pod id, container ids)]. If any step fails, everything made so far is removed and the
    error raised."""
    _ensure_images(engine, plan)
    _check_free(engine, plan)
    made = Made()
    out: list[tuple[str, list[str]]] = []
    try:
        _ensure_network(engine, made)
        for pod in plan.pods:
            _pod_volumes(engine, pod, label, made)
            out.append(_make_pod(engine, pod, label, made))
        if start:
            # every pod's infra first (its DNS names are then answered), then the members, the
            # pods side by side: a member resolving another pod's name at start finds it
            names = [pod.name for pod in plan.pods]
            at_once(engine, names, lambda e, name: e.pods.start_infra(name))
            at_once(engine, names, lambda e, name: e.pods.start(name))
    except BaseException:
        _undo(engine, made)
        raise
    return out


def _undo(engine: "Engine", made: Made) -> None:
    for name in reversed(made.pods):
        try:
            engine.pods.remove(name, force=True)
        except Exception:  # noqa: BLE001 - the undo goes on; the error raised is the play's own
            pass
    for volume in made.volumes:
        try:
            engine.volumes.remove(volume, force=True)
        except Exception:  # noqa: BLE001
            pass
    if made.network:
        try:
            engine.networks.remove(made.network)
        except Exception:  # noqa: BLE001
            pass


def down(engine: "Engine", plan: Plan) -> list[str]:
    """Remove the plan's pods that a play made (members and infra), the volumes it made for
    them (claims too, when play created them), and the pods' network when no container uses
    it any more. Returns the names of the pods removed, in reverse order of the file."""
    removed: list[str] = []
    for pod in reversed(plan.pods):
        record = engine.pods.find(pod.name)
        if record is not None and LABEL_FILE in record.labels:
            removed.append(record.name)
    at_once(engine, removed, lambda e, name: e.pods.remove(name, force=True))
    pods = {pod.name for pod in plan.pods}
    claims = {source for pod in plan.pods for what, source, kind in pod.volumes.values()
              if what == "volume" and kind == "pvc"}
    for volume in engine.volumes.list(filters={"label": [LABEL_KIND]}):
        if volume.labels.get(LABEL_POD) in pods or (volume.labels.get(LABEL_KIND) == "pvc" and volume.name in claims):
            engine.volumes.remove(volume.name, force=True)
    try:
        if not engine.containers.list(all=True, filters={"network": [NETWORK]}):
            engine.networks.remove(NETWORK)
    except Exception:  # noqa: BLE001 - a network still used or already gone stays as it is
        pass
    return removed


def read(source: str, stdin: Callable[[], str]) -> tuple[list[dict[str, Any]], str]:
    """(documents, label) of FILE or ``-``; the label is the file's absolute path."""
    import os

    from dockyard.kube.model import load

    if source == "-":
        return load(stdin(), "stdin"), "-"
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KubeError(f"{source}: {e.strerror}") from None
    return load(text, source), os.path.abspath(source)
