"""``engine.pods``: podman's pods. A pod is a row in the ``pods`` table plus an infra container
(``<pod id[:12]>-infra``, the image ``localhost/dockyard-pause:<version>`` whose one program
holds the namespaces); its members are ordinary containers that join the infra's network, IPC,
UTS and PID namespaces as the pod shares them (``container:<infra id>`` modes), labelled with
the pod's ID. ``member_fields`` gives the fields a member's create body needs, so that
``run --pod``, kube play and the API make members the same way.
"""

from __future__ import annotations

import json
import os
import time

from dockyard import records
from dockyard.containers.manager import POD_INFRA_LABEL as INFRA_LABEL, POD_LABEL
from dockyard.errors import ConflictError, DockyardError, NotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Sequence

    from dockyard.containers.store import ContainerRecord
    from dockyard.engine import Engine

NAMESPACES = ("cgroup", "ipc", "net", "pid", "uts")
SHARABLE = ("ipc", "net", "pid", "uts")     # what a member can join (container: modes)
DEFAULT_SHARE = ("ipc", "net", "uts")
_MODE_KEYS = {"net": "NetworkMode", "ipc": "IpcMode", "uts": "UTSMode", "pid": "PidMode"}
LIST_FILTERS = frozenset({"name", "id", "label", "status"})
# The pods table, made by the first pod command of a root (not a store/db.py migration: the
# migration tests step the version back by one over the summary column's migration).
# Members are containers labelled with the pod's ID, so there is no table of members.
SCHEMA = """
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,                 -- 64 hex
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    share TEXT NOT NULL DEFAULT '[]',    -- JSON: of ipc, net, pid, uts
    infra_id TEXT NOT NULL DEFAULT '',   -- the infra container ('' while it is being made)
    hostname TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL DEFAULT '{}'   -- JSON: Publish (as typed), Network
)"""
POD_STATES = ("created", "running", "stopped", "exited", "dead", "degraded", "paused", "error")


class PodError(DockyardError):
    """podman's refusals of a pod command (its exit code 125)."""

    exit_code = 125


class NoSuchPod(NotFoundError):
    """podman's exit code for it is 125 (``pod rm``'s alone is 1: the CLI says so)."""

    exit_code = 125


@records.record
class PodRecord:
    id: str
    name: str
    created: float
    labels: dict[str, str]
    share: list[str]
    infra_id: str
    hostname: str = ""
    options: dict[str, Any] = records.field(default_factory=dict)


def pause_reference() -> str:
    from dockyard import __version__

    return f"localhost/dockyard-pause:{__version__}"


def parse_share(text: "str | Sequence[str]") -> list[str]:
    """``--share net,ipc``: podman's checks; ``none`` (or empty) shares nothing."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    out: list[str] = []
    for item in items:
        if item == "none":
            continue
        if item not in NAMESPACES:
            raise PodError(f"invalid kernel namespace to share: {item}. Options are: cgroup, ipc, net, pid, "
                           "uts or none")
        if item == "cgroup":
            raise PodError("sharing the cgroup namespace of a pod is not supported by dockyard: members get "
                           "their own")
        if item not in out:
            out.append(item)
    return sorted(out)


class Pods:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.db = engine.db
        self.db.execute(SCHEMA)   # a no-op (no write lock) once the table is there

    # ------------------------------------------------------------------ records

    def _row(self, row: Any) -> PodRecord:
        return PodRecord(id=row["id"], name=row["name"], created=row["created"], labels=json.loads(row["labels"]),
                         share=json.loads(row["share"]), infra_id=row["infra_id"], hostname=row["hostname"],
                         options=json.loads(row["options"]))

    def _all(self) -> list[PodRecord]:
        return [self._row(r) for r in self.db.execute("SELECT * FROM pods ORDER BY created DESC")]

    def get(self, name_or_id: str) -> PodRecord:
        from dockyard.containers import names

        rows = self._all()
        try:
            pid = names.resolve(name_or_id, [(p.id, p.name) for p in rows])
        except names.NoSuchContainer:
            raise NoSuchPod(f"no pod with name or ID {name_or_id} found: no such pod") from None
        except DockyardError as e:   # an ambiguous prefix
            raise PodError(str(e)) from None
        return next(p for p in rows if p.id == pid)

    def find(self, name_or_id: str) -> PodRecord | None:
        try:
            return self.get(name_or_id)
        except NotFoundError:
            return None

    def exists(self, name_or_id: str) -> bool:
        return self.find(name_or_id) is not None

    # ------------------------------------------------------------------ create

    def create(self, name: str | None = None, publish: "Sequence[str]" = (), network: str | None = None,
               share: "Sequence[str]" = DEFAULT_SHARE, labels: "Mapping[str, str] | None" = None,
               hostname: str | None = None, aliases: "Sequence[str]" = ()) -> PodRecord:
        """podman's ``pod create``: the row, then its infra container (created, not started).
        ``aliases``: more DNS names of the pod on ``network`` (a user network), besides its infra's."""
        from dockyard.containers import names

        share = parse_share(share)
        if (publish or network or aliases) and "net" not in share:
            raise PodError("you must share network namespace to set network options (publish, network)")
        if name:
            import re

            if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):   # podman's rule (one character will do)
                raise PodError("running pod create option: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: "
                               "invalid argument")
        else:
            name = names.random_name(p.name for p in self._all())
        from dockyard.network import ports

        exposed, bindings = ports.parse_publish(tuple(publish))   # refused before anything is made
        image = self._pause_image()
        pod = PodRecord(id=names.new_id(), name=name, created=time.time(), labels=dict(labels or {}),
                        share=share, infra_id="", hostname=hostname or "",
                        options={"Publish": list(publish), "Network": network or ""})
        import sqlite3

        try:
            self.db.execute(
                "INSERT INTO pods (id, name, created, labels, share, infra_id, hostname, options) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (pod.id, pod.name, pod.created, json.dumps(pod.labels), json.dumps(pod.share), "", pod.hostname,
                 json.dumps(pod.options)))
        except sqlite3.IntegrityError:
            raise PodError(f'adding pod to state: name "{name}" is in use: pod already exists') from None
        try:
            infra = self._create_infra(pod, image, exposed, bindings, network, aliases)
        except BaseException:
            self.db.execute("DELETE FROM pods WHERE id = ?", (pod.id,))
            raise
        self.db.execute("UPDATE pods SET infra_id = ? WHERE id = ?", (infra.id, pod.id))
        pod.infra_id = infra.id
        return pod

    def _create_infra(self, pod: PodRecord, image: str, exposed: dict, bindings: dict,
                      network: str | None, aliases: "Sequence[str]" = ()) -> "ContainerRecord":
        from dockyard.containers.request import normalise

        body: dict[str, Any] = {
            "Image": image, "Labels": {POD_LABEL: pod.id, INFRA_LABEL: "true"},
            "Hostname": (pod.hostname or pod.name) if "uts" in pod.share else "",
            "HostConfig": {"PortBindings": bindings, "NetworkMode": (network or "default") if "net" in pod.share
                           else "default",
                           "IpcMode": "shareable" if "ipc" in pod.share else "private"},
        }
        if exposed:
            body["ExposedPorts"] = exposed
        if aliases:
            body["NetworkingConfig"] = {"EndpointsConfig": {network or "bridge": {"Aliases": list(aliases)}}}
        config, host, networking, _ = normalise(body)
        return self.engine.containers.create(config, host, f"{pod.id[:12]}-infra", networking)

    def _pause_image(self) -> str:
        """The infra image, made on first use under a lock (two creates at once make it once)."""
        ref = pause_reference()
        if self.engine.image_store.find(ref) is not None:
            return ref
        import fcntl

        from dockyard.pods import pause

        fd = os.open(os.path.join(self.engine.root, "pause-image.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self.engine.image_store.find(ref) is None:
                import io

                try:
                    data = pause.rootfs_tar()
                except pause.UnsupportedArchitecture as e:
                    raise PodError(str(e)) from None
                self.engine.images.import_(io.BytesIO(data), ref, ['ENTRYPOINT ["/pause"]'],
                                           message="dockyard pod infra")
        finally:
            os.close(fd)
        return ref

    # ------------------------------------------------------------------ members

    def members(self, name: str) -> "list[ContainerRecord]":
        """The pod's own containers, oldest first; not its infra (``infra_id``), which holds
        the namespaces and runs no workload."""
        pod = self.get(name)
        return [r for r in self._members(pod) if r.id != pod.infra_id]

    def containers_of(self, pods: "Sequence[PodRecord]") -> "dict[str, list[ContainerRecord]]":
        """{pod id: every container of it, the infra first} for many pods, from one listing
        (``pod ps`` of many pods)."""
        wanted = {p.id: p for p in pods}
        out: dict[str, list[ContainerRecord]] = {p.id: [] for p in pods}
        for r in self.engine.containers.list(all=True, filters={"label": [POD_LABEL]}):
            pod_id = self.pod_of(r)
            if pod_id in out:
                out[pod_id].append(r)
        for pod_id, found in out.items():
            found.sort(key=lambda r, infra=wanted[pod_id].infra_id: (r.id != infra, r.created))
        return out

    def all_containers(self, pod: PodRecord) -> "list[ContainerRecord]":
        """Every container of the pod, the infra first, then the others oldest first."""
        return self._members(pod)

    def _members(self, pod: PodRecord) -> "list[ContainerRecord]":
        """Every container of the pod, the infra first, then the others oldest first."""
        found = self.engine.containers.list(all=True, filters={"label": [f"{POD_LABEL}={pod.id}"]})
        return sorted(found, key=lambda r: (r.id != pod.infra_id, r.created))

    def member_fields(self, pod: "PodRecord | str") -> dict[str, Any]:
        """What a member's create body needs: ``{"HostConfig": {modes}, "Labels": {pod label}}``
        (merge HostConfig's keys over the body's, add the label)."""
        if isinstance(pod, str):
            pod = self.get(pod)
        host = {key: f"container:{pod.infra_id}" for ns, key in _MODE_KEYS.items() if ns in pod.share}
        return {"HostConfig": host, "Labels": {POD_LABEL: pod.id}}

    def pod_of(self, record: "ContainerRecord") -> str:
        """The ID of the pod a container belongs to ('' for none)."""
        return (record.container_config.get("Labels") or {}).get(POD_LABEL, "")

    # ------------------------------------------------------------------ state

    def status(self, pod: PodRecord, members: "Sequence[ContainerRecord] | None" = None) -> str:
        """podman's pod state from its containers' (libpod's createPodStatusResults)."""
        members = self._members(pod) if members is None else members
        if not members:
            return "Created"
        counts = {"running": 0, "paused": 0, "exited": 0, "created": 0, "error": 0}
        for r in members:
            state = {"running": "running", "restarting": "running", "paused": "paused", "created": "created",
                     "exited": "exited", "removing": "exited"}.get(r.status, "error")
            counts[state] += 1
        n = len(members)
        if counts["running"]:
            return "Running" if counts["running"] == n else "Degraded"
        if counts["paused"] == n:
            return "Paused"
        if counts["exited"] == n:
            return "Exited"
        if counts["exited"]:
            return "Stopped"
        if counts["error"]:
            return "Error"
        return "Created"

    def list(self, filters: "Mapping[str, Sequence[str]] | None" = None) -> list[PodRecord]:
        """Newest first; podman's filters name (a regular expression), id (prefix), label, status."""
        filters = dict(filters or {})
        for key in filters:
            if key not in LIST_FILTERS:
                raise PodError(f"{key} is an invalid filter")
        out = []
        for pod in self._all():
            if "name" in filters and not any(_search(v, pod.name) for v in filters["name"]):
                continue
            if "id" in filters and not any(pod.id.startswith(v) for v in filters["id"]):
                continue
            if "label" in filters and not all(_has_label(pod.labels, v) for v in filters["label"]):
                continue
            if "status" in filters:
                for v in filters["status"]:
                    if v.lower() not in POD_STATES:
                        raise PodError(f"{v} is not a valid status")
                if self.status(pod).lower() not in [v.lower() for v in filters["status"]]:
                    continue
            out.append(pod)
        return out

    # ------------------------------------------------------------------ verbs

    def start_infra(self, pod: "PodRecord | str") -> None:
        """Start the infra unless it runs: a member joins its namespaces, so it starts first."""
        if isinstance(pod, str):
            pod = self.get(pod)
        infra = self.engine.containers.find(pod.infra_id) if pod.infra_id else None
        if infra is None:
            raise PodError(f"pod {pod.id} has no infra container: remove the pod (pod rm -f) and create it again")
        if infra.status not in ("running", "paused", "restarting"):
            self.engine.containers.start_and_wait(infra.id)

    def start(self, name: str) -> PodRecord:
        """Infra first, then the members (oldest first) that do not run."""
        pod = self.get(name)
        self.start_infra(pod)
        errors = []
        for r in self._members(pod):
            if r.id == pod.infra_id or r.status in ("running", "paused", "restarting"):
                continue
            try:
                self.engine.containers.start_and_wait(r.id)
            except DockyardError as e:
                errors.append(f"starting container {r.id}: {e}")
        if errors:
            raise PodError("; ".join(errors))
        return pod

    def stop(self, name: str, timeout: int | None = None) -> PodRecord:
        """Members first (newest first), the infra last."""
        pod = self.get(name)
        members = self._members(pod)
        for r in reversed(members):
            if r.id != pod.infra_id:
                self.engine.containers.stop(r.id, timeout)
        if members and members[0].id == pod.infra_id:
            # SIGTERM ends /pause at once: no grace period to wait for
            self.engine.containers.stop(pod.infra_id, timeout)
        return pod

    def kill(self, name: str, signal: str = "KILL") -> PodRecord:
        pod = self.get(name)
        running = [r for r in self._members(pod) if r.status in ("running", "paused")]
        if not running:
            raise PodError(f"pod {pod.id} has no running containers to kill")
        for r in sorted(running, key=lambda r: r.id == pod.infra_id):
            try:
                self.engine.containers.kill(r.id, signal)
            except ConflictError:
                pass   # it exited meanwhile
        return pod

    def restart(self, name: str) -> PodRecord:
        self.stop(name)
        return self.start(name)

    def remove(self, name: str, force: bool = False) -> list[str]:
        """The pod, its members and infra; running ones only with ``force`` (podman's refusal
        otherwise). The IDs of the containers removed."""
        pod = self.get(name)
        members = self._members(pod)
        if not force:
            for r in sorted(members, key=lambda r: r.id == pod.infra_id):   # a member's name before the infra's
                if r.status in ("running", "paused", "restarting"):
                    raise PodError(f"removing container {r.id} from pod {pod.id}: cannot remove container {r.id} "
                                   "as it is running - running or paused containers cannot be removed without "
                                   "force: container state improper")
        removed = []
        for r in sorted(members, key=lambda r: r.id == pod.infra_id):   # the infra last
            try:
                removed.append(self.engine.containers.remove(r.id, force=True, with_pod=True))
            except NotFoundError:
                continue
        self.db.execute("DELETE FROM pods WHERE id = ?", (pod.id,))
        return removed

    def prune(self) -> list[str]:
        """Remove the pods none of whose containers runs (podman: the exited ones); their IDs."""
        out = []
        for pod in self._all():
            if self.status(pod) in ("Exited", "Stopped", "Created") and pod.infra_id:
                members = self._members(pod)
                if any(r.status in ("running", "paused", "restarting") for r in members):
                    continue
                if self.status(pod, members) == "Created" and members:
                    continue   # podman prunes only pods that ran and stopped
                self.remove(pod.id, force=True)
                out.append(pod.id)
        return out

    def reset(self) -> list[str]:
        """Every pod, members and all (system reset)."""
        out = []
        for pod in self._all():
            try:
                self.remove(pod.id, force=True)
            except NotFoundError:
                continue
            out.append(pod.id)
        return out

    def top(self, name: str, ps_args: "Sequence[str]" = ()) -> tuple[list[str], list[list[str]]]:
        """The processes of every running container of the pod, the infra's first: (header, rows);
        podman's columns (pods/top.py), or ``ps`` with ``ps_args`` as container ``top`` runs it."""
        pod = self.get(name)
        running = [r for r in self._members(pod) if r.status in ("running", "paused")]
        if not running:
            raise PodError(f"pod {pod.id} is not running")
        header: list[str] = []
        rows: list[list[str]] = []
        if not ps_args:   # podman's own columns, PIDs as the containers see them
            from dockyard.pods import top as tops

            for r in running:
                try:
                    rows += tops.rows(list(self.engine.containers.runtime_of(r).ps(r.id)))
                except DockyardError:
                    continue   # it stopped meanwhile
            return tops.HEADER, rows
        for r in running:
            try:
                header, got = self.engine.containers.top(r.id, list(ps_args))
            except DockyardError:
                continue
            rows += got
        return header, rows

    # ------------------------------------------------------------------ inspect

    def inspect(self, name: str) -> dict[str, Any]:
        """podman's ``pod inspect`` shape (4.3), with dockyard's values."""
        from dockyard.containers.inspect import nano_time

        pod = self.get(name)
        members = self._members(pod)
        infra = next((r for r in members if r.id == pod.infra_id), None)
        bindings = infra.host_config.get("PortBindings") or {} if infra else {}
        network = pod.options.get("Network") or "bridge"
        return {
            "Id": pod.id,
            "Name": pod.name,
            "Created": nano_time(pod.created),
            "ExitPolicy": "continue",
            "State": self.status(pod, members),
            "Hostname": pod.hostname,
            "Labels": pod.labels,
            "CreateCgroup": False,
            "CreateInfra": True,
            "InfraContainerID": pod.infra_id,
            "InfraConfig": {
                "PortBindings": bindings,
                "HostNetwork": network == "host",
                "StaticIP": "",
                "StaticMAC": "",
                "NoManageResolvConf": False,
                "DNSServer": None,
                "DNSSearch": None,
                "DNSOption": None,
                "NoManageHosts": False,
                "HostAdd": None,
                "Networks": [network],
                "NetworkOptions": None,
                "pid_ns": "private",
                "userns": "host",
                "uts_ns": "private",
            },
            "SharedNamespaces": list(pod.share),
            "NumContainers": len(members),
            "Containers": [{"Id": r.id, "Name": r.name, "State": r.status} for r in members],
        }


def _search(pattern: str, text: str) -> bool:
    import re

    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _has_label(labels: "Mapping[str, str]", wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def infra_of(record: "ContainerRecord") -> str:
    """The pod ID whose infra ``record`` is ('' for any other container)."""
    labels = record.container_config.get("Labels") or {}
    return labels.get(POD_LABEL, "") if labels.get(INFRA_LABEL) == "true" else ""


def pods_by_id(engine: "Engine", ids: "Iterable[str]") -> dict[str, str]:
    """{pod id: name} of the given IDs (ps --pod's PODNAME column), one query."""
    ids = [i for i in set(ids) if i]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    import sqlite3

    try:
        return {r[0]: r[1] for r in engine.db.execute(f"SELECT id, name FROM pods WHERE id IN ({marks})", ids)}
    except sqlite3.OperationalError:   # no pod was ever made in this root: no table yet
        return {}
