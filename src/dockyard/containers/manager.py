"""``engine.containers``: the container lifecycle and its state machine.

    created --start--> running --(exit)--> exited --start--> running ...
                        |  ^                  ^
                  pause |  | unpause          | (policy says no / stop)
                        v  |                  |
                       paused            restarting (policy says restart; the shim waits, restarts)

The CLI front (``dockyard.cli.containers``) parses and prints; everything else is here.
The container's process is watched by its shim (``shim.py``); this module writes the
bundle, launches the shim, and talks to it through the attach socket. A shim that died
(kill -9) is noticed by the next command that reads the container (``_reconcile``): the
container is stopped and marked exited with an error saying so.
"""

from __future__ import annotations

import json
import os
import signal as signals
import time

from dockyard.containers import DEVNULL, frames, names
from dockyard.containers.spawn import ShimProcess, SpawnedShim, spawn_shim
from dockyard.containers.store import (ACTIVE, CREATED, EXITED, PAUSED, RESTARTING, RUNNING, ContainerRecord,
                                       ContainerStore)
from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard import events
from dockyard.fsutil import tree_size
from dockyard import records

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping, Sequence
    import socket

    from dockyard.engine import Engine
    from dockyard.runtime.adapter import Runtime
    from dockyard.runtime.cgroupfs import CgroupPaths

DEFAULT_STOP_TIMEOUT = 10
POD_LABEL = "io.dockyard.pod"               # a pod's infra and members: the pod's ID (pods/service.py)
POD_INFRA_LABEL = "io.dockyard.pod.infra"   # the infra only: "true"
DEFAULT_RUNTIME = "pyrunc"  # dockyard.runtime.adapter.DEFAULT_RUNTIME (not imported: run's start-up)
SHIM_DIED = "the container's shim (dockyard monitor, pid {pid}) died; the container was stopped"
LIST_FILTERS = frozenset({"status", "name", "label", "ancestor", "id", "exited", "before", "since", "health",
                          "network", "volume", "publish", "expose", "is-task", "isolation"})


class ContainerError(DockyardError):
    """An engine-side failure while starting or driving a container (Docker's 125)."""

    exit_code = 125


@records.record
class StartHandle:
    """A shim being launched: read its reports with ``wait_created`` / ``wait_started``."""

    record: ContainerRecord
    ready: Any            # the read end of the ready pipe (a file)
    shim: "ShimProcess"
    pid: int = 0
    started_at: float = 0.0

    def _line(self) -> str:
        line = self.ready.readline().decode(errors="replace").rstrip("\n")
        if not line:
            self.shim.wait()
            return f"E125 the container's shim exited before reporting (exit status {self.shim.returncode})"
        return line

    def wait_created(self) -> int:
        line = self._line()
        if line.startswith("C"):
            self.pid = int(line[1:])
            return self.pid
        self._fail(line)
        return 0

    def wait_started(self) -> None:
        line = self._line()
        self.ready.close()
        if not line.startswith("S"):
            self._fail(line)
        self.started_at = float(line[1:] or 0)

    def _fail(self, line: str) -> None:
        self.ready.close()
        code, _, message = line[1:].partition(" ")
        raise ContainerError(f"failed to start container {self.record.id[:12]}: {message}",
                             exit_code=int(code) if code.isdigit() else 125)


class Containers:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.store = ContainerStore(engine.db)
        self.base = os.path.join(engine.root, "containers")
        self.run_base = os.fspath(engine.settings.runroot)

    # ------------------------------------------------------------------ paths
    # Plain strings: pathlib is not loaded on the way of `run` and `exec` (see config.py).

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.base, cid)

    def shim_dir(self, cid: str) -> str:
        # Short: unix socket paths are limited to 108 bytes.
        return os.path.join(self.run_base, "shims", cid[:16])

    def socket_path(self, cid: str) -> str:
        return os.path.join(self.shim_dir(cid), "attach.sock")

    def log_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), f"{cid}-json.log")

    def runtime_root(self, name: str) -> str:
        return os.path.join(self.run_base, "runtime", name)

    def runtime(self, name: str) -> "Runtime":
        from dockyard.runtime.adapter import open_runtime

        return open_runtime(name, self.runtime_root(name))

    def runtime_of(self, record: ContainerRecord) -> "Runtime":
        return self.runtime(runtime_name(record))

    def event_attrs(self, record: ContainerRecord) -> dict[str, str]:
        """Docker's attributes of a container event: its labels, then ``image`` and ``name``."""
        return {**(record.container_config.get("Labels") or {}), "image": record.image, "name": record.name}

    def event(self, action: str, record: ContainerRecord, **extra: str) -> None:
        events.record(self.engine.root, "container", action, record.id, {**self.event_attrs(record), **extra})

    # ------------------------------------------------------------------ lookup

    def resolve(self, typed: str) -> str:
        return names.resolve(typed, self.store.ids_and_names())

    def get(self, typed: str) -> ContainerRecord:
        record = self.store.get(self.resolve(typed))
        if record is None:
            raise names.NoSuchContainer(f"No such container: {typed}")
        return self._reconcile(record)

    def find(self, typed: str) -> ContainerRecord | None:
        try:
            return self.get(typed)
        except NotFoundError:
            return None

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        return self.store.using_image(image_id)

    # ------------------------------------------------------------------ create

    def create(self, config: dict[str, Any], host_config: dict[str, Any], name: str | None = None,
               networking_config: dict[str, Any] | None = None) -> ContainerRecord:
        """Docker's ContainerCreate: ``config``, ``host_config`` and ``networking_config`` in
        the API's shape."""
        if name:
            return self._create(config, host_config, names.check_name(name), networking_config)
        from dockyard.containers.store import NameConflict

        for attempt in range(5):
            # a generated name is checked against those taken, but a create running meanwhile
            # may take it first (8 at once through the API did): then another name, as Docker
            generated = names.random_name(n for _, n in self.store.ids_and_names())
            try:
                return self._create(config, host_config, generated, networking_config)
            except NameConflict:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _create(self, config: dict[str, Any], host_config: dict[str, Any], name: str,
                networking_config: dict[str, Any] | None) -> ContainerRecord:
        image = self.engine.image_store.lookup(config["Image"])
        image_conf = (self.engine.image_store.config(image).get("config") or {})
        merged = _merge_config(config, image_conf)
        cid = names.new_id()
        host_config = dict(host_config)
        host_config.setdefault("NetworkMode", "default")
        host_config.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        host_config["Runtime"] = host_config.get("Runtime") or DEFAULT_RUNTIME
        host_config.setdefault("CgroupParent", os.environ.get("DOCKYARD_CGROUP_PARENT", "dockyard"))
        _check_host_config(host_config, merged)
        if merged.get("Healthcheck"):
            _check_healthcheck(merged["Healthcheck"])
        from dockyard.containers import runflags

        runflags.check(host_config, merged, self.get)  # namespaces, devices, security, resources
        if host_config.get("Memory") and not host_config.get("MemorySwap"):
            from dockyard.runtime.cgroupfs import swap_limit_supported

            # Docker: -m alone caps memory+swap at twice the memory, where swap can be limited
            host_config["MemorySwap"] = host_config["Memory"] * 2 if swap_limit_supported() else -1
        self._check_network(host_config, merged, name, networking_config or {})
        mounts = self._resolve_mounts(host_config, merged, image_conf)
        args = (merged.get("Entrypoint") or []) + (merged.get("Cmd") or [])
        if not args:
            raise ContainerError("no command specified")
        record = ContainerRecord(
            id=cid, name=name, image_id=image.id, image=config["Image"], created=time.time(),
            config={"Path": args[0], "Args": args[1:], "Config": merged, "HostConfig": host_config,
                    "NetworkingConfig": networking_config or {"EndpointsConfig": {}},
                    "Mounts": mounts, "ImageChain": image.layers[-1] if image.layers else ""})
        from dockyard.store.owned import recording_dir

        try:
            with recording_dir(self.engine.root, self.container_dir(cid)):  # no orphan while the row is written
                self.store.add(record)
        except BaseException:
            import shutil

            shutil.rmtree(self.container_dir(cid), ignore_errors=True)
            raise
        self.event("create", record)
        return record

    def _check_network(self, host: dict[str, Any], config: dict[str, Any], name: str,
                       networking: dict[str, Any]) -> None:
        """Docker's create-time checks of the network options; --link targets in Docker's
        stored form ("/db1:/wp/db1")."""
        from dockyard.network.attach import mode_of

        mode = mode_of(host)
        endpoint = (networking.get("EndpointsConfig") or {}).get(mode) or {}
        if endpoint.get("Aliases") and (mode in ("host", "none") or mode.startswith("container:")):
            raise ContainerError("network-scoped alias is supported only for containers in user defined networks")
        if mode.startswith("container:"):
            self.get(mode.partition(":")[2])
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise ContainerError("conflicting options: port publishing and the container type network mode")
            if config.get("Hostname"):
                raise ContainerError("conflicting options: hostname and the network mode")
            if host.get("Dns") or host.get("ExtraHosts"):
                raise ContainerError("conflicting options: dns and the network mode")
        elif mode not in ("host", "none"):
            net = self.engine.networks.get(mode)
            if (endpoint.get("IPAMConfig") or {}).get("IPv4Address") and (net.name == "bridge" or not net.subnet):
                raise ContainerError("user specified IP address is supported on user defined networks only")
            if endpoint.get("Aliases") and net.name == "bridge":
                raise ContainerError("network-scoped alias is supported only for containers in user defined networks")
            from dockyard.network.ipam import check_dns_name

            for alias in endpoint.get("Aliases") or []:
                check_dns_name(alias)
        elif host.get("Links"):
            raise ContainerError("conflicting options: host type networking can't be used with links. "
                                 "This would result in undefined behavior" if mode == "host" else
                                 "conflicting options: links and the none network mode")
        links = []
        for link in host.get("Links") or []:
            target, _, alias = link.partition(":")
            other = self.find(target.lstrip("/"))
            if other is None:
                raise ContainerError(f"could not get container for {target.lstrip('/')}")
            links.append(f"/{other.name}:/{name}/{alias or other.name}")
        if links:
            host["Links"] = links

    def _resolve_mounts(self, host_config: dict[str, Any], config: dict[str, Any],
                        image_conf: dict[str, Any]) -> list[dict[str, Any]]:
        from dockyard.containers import mounts as mounts_mod

        records = [mounts_mod.parse_volume(b) for b in host_config.get("Binds") or []]
        records += [dict(m) for m in host_config.get("Mounts") or []]
        records += [mounts_mod.parse_tmpfs(f"{k}:{v}" if v else k) for k, v in (host_config.get("Tmpfs") or {}).items()]
        taken = {os.path.normpath(m["Destination"]) for m in records}
        for item in host_config.get("VolumesFrom") or []:  # --volumes-from: its binds and volumes
            donor_name, _, mode = item.partition(":")
            if mode not in ("", "ro", "rw"):
                raise ContainerError(f"invalid mode: {mode}")
            for m in self.get(donor_name).config.get("Mounts") or []:
                if m["Type"] not in ("bind", "volume") or os.path.normpath(m["Destination"]) in taken:
                    continue
                m = {**m, "Anonymous": False}   # the donor's to remove, not ours
                if mode:
                    m["RW"], m["Mode"] = mode == "rw", mode
                records.append(m)
                taken.add(os.path.normpath(m["Destination"]))
        for dest in (image_conf.get("Volumes") or {}):  # the image's VOLUMEs get anonymous volumes
            if os.path.normpath(dest) not in taken:
                records.append({"Type": "volume", "Name": "", "Source": "", "Destination": dest,
                                "Driver": "local", "Mode": "", "RW": True, "Propagation": ""})
        mounts_mod.check_unique(records)
        for m in records:
            if m["Type"] == "volume":
                volume = self.engine.volumes.create(m["Name"] or None)
                m["Name"], m["Source"] = volume.name, volume.mountpoint
                m["Anonymous"] = m.get("Anonymous", volume.anonymous)
        return records

    # ------------------------------------------------------------------ start

    def spawn_shim(self) -> SpawnedShim:
        """Start a shim that waits for its orders on stdin. ``run`` calls this first, so that
        the shim's interpreter start-up overlaps the container's creation."""
        return spawn_shim()

    def start(self, typed: str, attach_first: bool = False, tty_size: tuple[int, int] | None = None,
              shim: "SpawnedShim | None" = None, attach_event: bool = True) -> StartHandle | None:
        """Launch the container's shim; None when it already runs (Docker: a no-op).
        ``attach_first``: the shim waits for a first client before it starts the container
        (an attach, or the API's watch of a ``wait``); ``attach_event``: that client attaches."""
        try:
            record = self.get(typed)
            if record.status == PAUSED:
                raise ContainerError("cannot start a paused container, try unpause instead")
            if record.status in (RUNNING, RESTARTING):
                if shim is not None:
                    shim.cancel()
                return None
            labels = record.container_config.get("Labels") or {}
            if labels.get(POD_LABEL) and labels.get(POD_INFRA_LABEL) != "true":
                # a pod member joins its infra's namespaces: the infra runs first (podman's order);
                # pods are imported only for a member
                self.engine.pods.start_infra(labels[POD_LABEL])
            return self._launch(record, attach_first, tty_size, shim, attach_event)
        except BaseException:
            if shim is not None and shim.process.returncode is None and not shim.process.stdin.closed:
                shim.cancel()
            raise

    def _launch(self, record: ContainerRecord, attach_first: bool, tty_size: tuple[int, int] | None,
                shim: "SpawnedShim | None", attach_event: bool = True) -> StartHandle:
        # The shim first: a fresh one's start-up, or a spare's warm-up, overlaps the bundle's
        # preparation. One made here is cancelled if the launch fails before its orders.
        spawned = shim if shim is not None else self.spawn_shim()
        try:
            return self._launch_with(record, attach_first, tty_size, spawned, attach_event)
        except BaseException:
            if shim is None and not spawned.process.stdin.closed:
                spawned.cancel()
            raise

    def _launch_with(self, record: ContainerRecord, attach_first: bool, tty_size: tuple[int, int] | None,
                     spawned: SpawnedShim, attach_event: bool) -> StartHandle:
        cid = record.id
        if attach_first and attach_event:  # Docker's order: a client attaches, then the container starts (or fails to)
            self.event("attach", record)
        bundle = self.container_dir(cid)
        # before anything is mounted or plugged in: a log the driver cannot rotate fails the start
        log_max_size, log_max_files = _log_rotation((record.host_config.get("LogConfig") or {}).get("Config") or {})
        from dockyard.containers import bundle as bundles
        from dockyard.runtime import spec as specs

        try:
            spec = bundles.prepare(self, record)
        except DockyardError as e:
            self.store.update(cid, error=str(e))
            raise

        network = record.extra.pop("network_teardown", None)
        try:
            specs.write_bundle(bundle, spec)
            shim_dir = self.shim_dir(cid)
            os.makedirs(shim_dir, exist_ok=True)
            name = runtime_name(record)
            if name != DEFAULT_RUNTIME:
                self.runtime(name)  # a runtime missing from this host fails here, not in the shim
        except BaseException:
            if network is not None:
                from dockyard.network import attach

                attach.teardown(str(self.engine.root), self.run_base, cid, network, engine=self.engine)
            raise
        host = record.host_config
        cfg = {
            "id": cid, "root": str(self.engine.root), "runtime": name,
            "runtime_root": str(self.runtime_root(name)),
            "bundle": str(bundle), "container_dir": str(bundle), "pid_file": os.path.join(shim_dir, "pid"),
            "log_path": str(self.log_path(cid)), "socket": str(self.socket_path(cid)),
            "log_max_size": log_max_size, "log_max_files": log_max_files,
            "terminal": bool(record.container_config.get("Tty")),
            "open_stdin": bool(record.container_config.get("OpenStdin")),
            "attach_first": attach_first, "tty_size": list(tty_size) if tty_size else None,
            "rm": bool(host.get("AutoRemove")), "restart": host.get("RestartPolicy") or {},
            "cgroup": spec["linux"]["cgroupsPath"],
            "anonymous_volumes": [m["Name"] for m in record.config.get("Mounts") or [] if m.get("Anonymous")],
            "network": network, "runroot": self.run_base,
            "health": _health_probe(record.container_config),   # None: no health check to run
            "event_attrs": self.event_attrs(record),  # the shim records start, die, destroy
            "event_volumes": [{"container": cid, "destination": m["Destination"], "driver": m.get("Driver") or "local",
                               "propagation": m.get("Propagation") or "", "read/write": "true" if m.get("RW", True)
                               else "false", "name": m["Name"]}
                              for m in record.config.get("Mounts") or [] if m.get("Type") == "volume"],
        }
        with open(os.path.join(shim_dir, "shim.json"), "w") as f:
            f.write(json.dumps(cfg))  # for the record: what the shim was told
        # One statement: the config with the bind inodes, the shim to watch, a clean slate. The
        # previous shim's start time goes: until the new shim writes its own, a reader that checks
        # the new PID against the old start time would take the new shim for dead and stop the
        # container (an API client's inspect right after a restart did).
        self.store.update(cid, config=record.config, stopped_by_user=0, error="", shim_pid=spawned.process.pid,
                          shim_start="")
        try:
            spawned.process.stdin.write(json.dumps(cfg).encode())
            spawned.process.stdin.close()
        except BrokenPipeError:
            pass
        read_fd = spawned.ready
        shim = spawned.process
        return StartHandle(record, os.fdopen(read_fd, "rb"), shim)

    def start_and_wait(self, typed: str, shim: "SpawnedShim | None" = None) -> ContainerRecord:
        handle = self.start(typed, shim=shim)
        if handle is None:
            return self.get(typed)
        handle.wait_created()
        handle.wait_started()
        self.mark_running(handle)
        return handle.record

    def mark_running(self, handle: StartHandle) -> None:
        """Record what the shim reported: its own write is asynchronous, and whoever reads
        the state after ``start`` returned must see it running (unless it exited already)."""
        self.store.mark_started(handle.record.id, handle.pid, handle.started_at)

    # ------------------------------------------------------------------ talking to the shim

    def connect(self, cid: str, stdin: bool = False, stdout: bool = False, stderr: bool = False,
                signal: int | None = None, timeout: float | None = None) -> socket.socket | None:
        """An attach connection to the container's shim; None when no shim listens."""
        # The C module's socket: importing socket.py (its enums, selectors) costs run ~2 ms,
        # and a unix stream socket needs none of it.
        import _socket

        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path(cid)))
        except OSError:
            sock.close()
            return None
        hello = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
        if stdin or stdout or stderr:
            # To a running container (``attach``); ``run``/``start -a`` said so at launch.
            record = self.store.get(cid)
            if record is not None and record.status in (RUNNING, PAUSED):
                self.event("attach", record)
        if signal:
            hello["signal"] = signal
        sock.sendall(json.dumps(hello).encode() + b"\n")
        sock.settimeout(timeout)
        return sock

    def wait_exit_frame(self, sock: socket.socket, timeout: float | None = None) -> dict[str, Any] | None:
        """Read frames until the exit frame; None on timeout or when the shim went away."""
        reader = frames.Reader()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    sock.settimeout(remaining)
                try:
                    data = sock.recv(65536)
                except OSError:  # a timeout too
                    return None
                if not data:
                    return None
                for stream, payload in reader.feed(data):
                    if stream == frames.EXIT:
                        return json.loads(payload)
        except ValueError:  # a frame no shim of ours sends
            return None

    def _signal(self, record: ContainerRecord, sig: int) -> bool:
        sock = self.connect(record.id, signal=sig)
        if sock is None:
            return False
        sock.close()
        return True

    # ------------------------------------------------------------------ stop, kill, restart, wait

    def stop(self, typed: str, timeout: int | None = None, signal: str | int | None = None) -> ContainerRecord:
        record = self.get(typed)
        if record.status not in ACTIVE:
            return record
        self.store.update(record.id, stopped_by_user=1)
        if record.status == RESTARTING:
            self._wake_shim(record)
            self._wait_shim_gone(record, 10)
            return self.get(record.id)
        conf = record.container_config
        sig = signal_number(signal or conf.get("StopSignal") or "SIGTERM")
        if timeout is None:
            timeout = conf.get("StopTimeout") if conf.get("StopTimeout") is not None else DEFAULT_STOP_TIMEOUT
        self.event("kill", record, signal=str(sig))
        sock = self.connect(record.id, signal=sig)
        if sock is None:
            return self._reconcile(self.store.get(record.id) or record)
        try:
            if record.status == PAUSED:
                self._thaw(record)
            if self.wait_exit_frame(sock, timeout if timeout >= 0 else None) is None:
                sock.close()
                self.event("kill", record, signal=str(int(signals.SIGKILL)))
                sock = self.connect(record.id, signal=signals.SIGKILL)
                if sock is not None:
                    self.wait_exit_frame(sock, 30)
        finally:
            if sock is not None:
                sock.close()
        self._wait_shim_gone(record, 5)
        self.event("stop", record)
        return self.store.get(record.id) or record

    def kill(self, typed: str, signal: str | int = "SIGKILL") -> ContainerRecord:
        # Docker: a name it does not know is refused before the container is looked up; a
        # number no process can be sent, after (both worded as dockerd words them)
        unsupported = None
        try:
            sig = signal_number(signal)
        except InvalidSignal as e:
            if e.message.startswith("Invalid signal"):
                raise
            sig, unsupported = 0, e.message
        try:
            record = self.get(typed)
        except NotFoundError as e:
            raise NotFoundError(f"Cannot kill container: {typed}: {e.message}") from None
        if unsupported:
            raise InvalidSignal(f"Cannot kill container: {typed}: {unsupported}")
        if record.status not in (RUNNING, PAUSED):
            raise ConflictError(f"Cannot kill container: {typed}: Container {record.id} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            # Docker: a kill the container dies of is a stop the restart policy respects.
            self.store.update(record.id, stopped_by_user=1)
        if not self._signal(record, sig):
            raise ConflictError(f"Cannot kill container: {typed}: Container {record.id} is not running")
        self.event("kill", record, signal=str(sig))
        if record.status == PAUSED and sig == signals.SIGKILL:
            self._thaw(record)
        if sig == signals.SIGKILL:   # dockerd's Kill: SIGKILL, then wait until it is not running
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                current = self.store.get(record.id)
                if current is None or current.status not in (RUNNING, PAUSED):
                    break
                time.sleep(0.005)
        return record

    def restart(self, typed: str, timeout: int | None = None) -> ContainerRecord:
        self.stop(typed, timeout)
        record = self.start_and_wait(typed)
        self.event("restart", record)
        return record

    def wait(self, typed: str, condition: str = "not-running") -> int:
        """Block until the container is not running; its exit code."""
        record = self.get(typed)
        while True:
            if record.status not in ACTIVE and condition == "not-running":
                return record.exit_code
            sock = self.connect(record.id)
            if sock is not None:
                frame = self.wait_exit_frame(sock)
                sock.close()
                if frame is not None and record.status != RESTARTING:
                    current = self.store.get(record.id)
                    if current is None or current.status != RESTARTING:
                        return int(frame.get("StatusCode", 0))
            time.sleep(0.05)
            current = self.store.get(record.id)
            if current is None:
                return record.exit_code
            record = self._reconcile(current)

    def _wake_shim(self, record: ContainerRecord) -> None:
        if record.shim_pid and _alive(record.shim_pid, record.shim_start or None):
            try:
                os.kill(record.shim_pid, signals.SIGUSR1)
            except ProcessLookupError:
                pass

    def _wait_shim_gone(self, record: ContainerRecord, timeout: float) -> None:
        current = self.store.get(record.id)
        pid = current.shim_pid if current else record.shim_pid
        start = current.shim_start if current else record.shim_start
        deadline = time.monotonic() + timeout
        while pid and _alive(pid, start or None) and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------------ remove, prune, rename

    def remove(self, typed: str, force: bool = False, volumes: bool = False, with_pod: bool = False) -> str:
        """Remove a container. A pod's infra goes only with its pod (``with_pod``: the pods
        service removing it), as podman refuses it; for every front end alike."""
        record = self.get(typed)
        labels = record.container_config.get("Labels") or {}
        if labels.get(POD_INFRA_LABEL) == "true" and not with_pod:
            raise ConflictError(f"container {record.id} is the infra container of pod {labels.get(POD_LABEL, '')} "
                                "and cannot be removed without removing the pod", exit_code=125)
        if record.status in ACTIVE:
            if not force:
                if record.status == PAUSED:
                    raise ConflictError(f"You cannot remove a paused container {record.id}. "
                                        "Unpause and then stop the container before attempting removal or force remove")
                raise ConflictError(f"You cannot remove a running container {record.id}. "
                                    "Stop the container before attempting removal or force remove")
            self.store.update(record.id, stopped_by_user=1)
            if record.status == RESTARTING:
                self._wake_shim(record)
            else:
                self.event("kill", record, signal=str(int(signals.SIGKILL)))
                sock = self.connect(record.id, signal=signals.SIGKILL)
                if record.status == PAUSED:
                    self._thaw(record)
                if sock is not None:
                    self.wait_exit_frame(sock, 30)
                    sock.close()
            self._wait_shim_gone(record, 10)
        self._remove_files(record, volumes)
        return record.id

    def _remove_files(self, record: ContainerRecord, volumes: bool) -> None:
        from dockyard.containers import cleanup

        runtime = self.runtime_of(record)
        if runtime.exists(record.id):
            try:
                runtime.delete(record.id, force=True)
            except DockyardError:
                pass
        anonymous = [m["Name"] for m in record.config.get("Mounts") or [] if m.get("Anonymous")] if volumes else []
        self._teardown_network(record.id)
        if self.store.get(record.id) is not None:  # else an --rm shim removed it and said so
            self.event("destroy", record)
        self.store.delete(record.id)   # its endpoints and published ports go with it
        cleanup.remove_container_files(str(self.engine.root), record.id, str(self.container_dir(record.id)), anonymous)
        import shutil

        shutil.rmtree(self.shim_dir(record.id), ignore_errors=True)

    def _teardown_network(self, cid: str) -> None:
        """What a dead shim or an interrupted start left of the container's network."""
        from dockyard.network import attach

        attach.teardown(str(self.engine.root), self.run_base, cid, None, engine=self.engine)

    def forget(self, cid: str) -> None:
        """Delete the record of a container whose files are gone (``run --rm``: its shim
        removed them and handed the record over to the attached client)."""
        self.store.delete(cid)

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> tuple[list[str], int]:
        """Remove stopped containers (Docker's filters: ``until``, ``label``); (IDs, bytes freed)."""
        filters = dict(filters or {})
        until = filters.pop("until", None)
        not_labels = filters.pop("label!", None) or ()   # prune's own filter (Docker's ps has none)
        if until:
            from dockyard.containers.logs import parse_since

            cutoff = parse_since(until[-1])
        removed, freed = [], 0
        for record in self.list(all=True, filters=filters):
            if record.status in ACTIVE or record.status == "removing":
                continue
            if until and record.created >= cutoff:
                continue
            if any(_matches(self, record, {"label": [v]}) for v in not_labels):
                continue
            if (record.container_config.get("Labels") or {}).get(POD_INFRA_LABEL) == "true":
                continue   # a pod's infra goes with its pod (pod rm / pod prune), as podman's prune skips it
            freed += tree_size(os.path.join(self.container_dir(record.id), "upper"))
            self.remove(record.id)
            removed.append(record.id)
        return removed, freed

    def rename(self, typed: str, new_name: str) -> None:
        record = self.get(typed)
        old_name = record.name
        new_name = names.check_name(new_name)
        if new_name == record.name:
            raise DockyardError("Renaming a container with the same name as its current name")
        try:
            self.store.update(record.id, name=new_name)
        except ConflictError as e:
            raise ConflictError(f"Error when allocating new name: {e.message}") from None
        record.name = new_name
        try:  # for the events its shim still records (die, ...)
            with open(os.path.join(self.shim_dir(record.id), "name"), "w") as f:
                f.write(new_name)
        except OSError:
            pass  # no shim: not running
        self.event("rename", record, oldName="/" + old_name)

    # ------------------------------------------------------------------ pause

    def pause(self, typed: str) -> None:
        record = self.get(typed)
        if record.status == PAUSED:
            raise ConflictError(f"Container {record.id} is already paused")
        if record.status != RUNNING:
            raise ConflictError(f"Container {record.id} is not running")
        self.runtime_of(record).pause(record.id)
        self.store.update(record.id, status=PAUSED)
        self.event("pause", record)

    def unpause(self, typed: str) -> None:
        record = self.get(typed)
        if record.status != PAUSED:
            raise ConflictError(f"Container {record.id} is not paused")
        self.runtime_of(record).resume(record.id)
        self.store.update(record.id, status=RUNNING)
        self.event("unpause", record)

    def _thaw(self, record: ContainerRecord) -> None:
        """Resume a paused container that is being stopped: a frozen process does not die
        of SIGKILL until it is thawed."""
        try:
            self.runtime_of(record).resume(record.id)
        except DockyardError:
            pass

    def cgroup(self, record: ContainerRecord) -> "CgroupPaths":
        from dockyard.containers.bundle import cgroups_path
        from dockyard.runtime.cgroupfs import CgroupPaths

        return CgroupPaths(cgroups_path(record))

    # ------------------------------------------------------------------ list, reconcile

    def list(self, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None,
             last: int = -1) -> list[ContainerRecord]:
        filters = dict(filters or {})
        for key in filters:
            if key not in LIST_FILTERS:
                raise DockyardError(f"Invalid filter '{key}'")
        for value in filters.get("status") or ():  # Docker refuses a state no container can be in
            if value not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise DockyardError(f"Invalid filter 'status={value}'")
        for value in filters.get("health") or ():
            if value not in ("starting", "healthy", "unhealthy", "none"):
                raise DockyardError(f"Unrecognised filter value for health: {value}")
        for value in filters.get("exited") or ():   # Go's strconv.Atoi, as the daemon parses it
            if not value.lstrip("+-").isdigit():
                raise DockyardError(f'strconv.Atoi: parsing "{value}": invalid syntax')
        if any(v not in ("true", "false") for v in filters.get("is-task") or ()):
            raise DockyardError(f"Invalid filter 'is-task=[{', '.join(filters['is-task'])}]'")
        for value in [*(filters.get("before") or ()), *(filters.get("since") or ())]:
            if self.find(value) is None:
                raise NotFoundError(f"no such container {value}")   # the daemon's words for a filter's
        shown = (RUNNING, PAUSED, RESTARTING)
        only_shown = not all and last <= 0 and "status" not in filters
        records = [self._reconcile(r) for r in self.store.all(shown if only_shown else None)]
        if last > 0:
            records = records[:last]
            all = True
        out = []
        for r in records:
            if not all and r.status not in shown and "status" not in filters:
                continue
            if not _matches(self, r, filters):
                continue
            if r.status == RUNNING and r.container_config.get("Healthcheck"):
                health_status(self, r)   # for ps's "Up 5 seconds (healthy)"
            out.append(r)
        return out

    def _reconcile(self, record: ContainerRecord) -> ContainerRecord:
        """A container whose shim is gone is not running, whatever its record says."""
        if record.status not in ACTIVE:
            return record
        if record.shim_pid and _alive(record.shim_pid, record.shim_start or None):
            return record
        if not record.shim_pid:
            return record
        # Re-read: the shim may just have finished and written its last word.
        current = self.store.get(record.id)
        if current is None:
            raise names.NoSuchContainer(f"No such container: {record.id}")
        if current.status not in ACTIVE:
            return current
        try:
            self.runtime_of(current).delete(current.id, force=True)  # thaws and kills what is left
        except DockyardError:
            pass
        from dockyard.runtime import rootfs

        rootfs.unmount(self.container_dir(current.id))
        self._teardown_network(current.id)
        message = SHIM_DIED.format(pid=current.shim_pid)
        self.store.update(current.id, status=EXITED, pid=0, exit_code=137, error=message, finished_at=time.time())
        import shutil

        shutil.rmtree(self.shim_dir(current.id), ignore_errors=True)
        return self.store.get(current.id) or current

    # ------------------------------------------------------------------ inspect, top, stats

    def inspect(self, typed: str, size: bool = False) -> dict[str, Any]:
        from dockyard.containers.inspect import inspect_container

        return inspect_container(self, self.get(typed), size=size)

    def replaced_binds(self, record: ContainerRecord) -> list[str]:
        """Single-file binds whose host file is no longer the file that was mounted (an editor
        saved a new inode): the container still sees the old one."""
        out = []
        if record.status not in ACTIVE:
            return out
        for source, (dev, ino) in (record.config.get("BindInodes") or {}).items():
            try:
                st = os.stat(source)
            except OSError:
                out.append(source)
                continue
            if (st.st_dev, st.st_ino) != (dev, ino):
                out.append(source)
        return out

    def top(self, typed: str, ps_args: Sequence[str] = ()) -> tuple[list[str], list[list[str]]]:
        record = self.get(typed)
        if record.status not in (RUNNING, PAUSED):
            raise ConflictError(f"Container {record.id} is not running")
        pids = set(self.runtime_of(record).ps(record.id))
        if not ps_args:   # Docker's default, `ps -ef`, read from /proc without running ps
            from dockyard.containers import top

            return top.HEADER, top.ps_ef(pids)
        args = list(ps_args)
        import subprocess

        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise DockyardError(f"Error running ps: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        header = lines[0].split()
        column = header.index("PID") if "PID" in header else 1
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(header) - 1)
            if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
                rows.append(fields)
        return header, rows

    def stats(self, record: ContainerRecord) -> dict[str, Any]:
        from dockyard.containers.stats import read_stats

        from dockyard.network.attach import traffic

        out = read_stats(self.cgroup(record))
        out["net_rx"], out["net_tx"] = traffic(record.id)
        return out

    # ------------------------------------------------------------------ exec

    def exec(self, typed: str, command: Sequence[str], *, env: Sequence[str] = (), user: str | None = None,
             workdir: str | None = None, detach: bool = False, stdin: Any = DEVNULL,
             stdout: Any = None, stderr: Any = None, privileged: bool = False,
             console_socket: str | None = None, exec_id: str | None = None) -> int:
        """Run ``command`` in the running container; its exit code (0 for ``detach``).
        ``exec_id``: an exec the API created (and recorded exec_create of) earlier."""
        from dockyard.containers.execute import run_exec

        record = self.get(typed)
        if record.status == PAUSED:
            raise ConflictError(f"Container {record.id} is paused, unpause the container before exec")
        if record.status != RUNNING:
            raise ConflictError(f"Container {record.id} is not running")
        return run_exec(self, record, list(command), env=list(env), user=user, workdir=workdir, detach=detach,
                        stdin=stdin, stdout=stdout, stderr=stderr, console_socket=console_socket,
                        exec_id=exec_id)

    # ------------------------------------------------------------------ logs

    def logs(self, typed: str, follow: bool = False, tail: int | None = None,
             since: float | None = None) -> Iterator[dict[str, str]]:
        from dockyard.containers import logs

        record = self.get(typed)
        log_type = (record.host_config.get("LogConfig") or {}).get("Type", "json-file")
        if log_type == "none":
            raise DockyardError("configured logging driver does not support reading")
        path = str(self.log_path(record.id))

        def alive() -> bool:
            current = self.store.get(record.id)
            if current is None or current.status not in ACTIVE:
                return False
            return bool(current.shim_pid) and _alive(current.shim_pid, current.shim_start or None)

        return logs.read(path, tail=tail, since=since, follow=follow and record.status in ACTIVE, alive=alive)

    # ------------------------------------------------------------------ diff, export, commit, update

    def diff(self, typed: str) -> list[tuple[str, str]]:
        """``docker diff``: (A|C|D, path) of the container's changes to its image."""
        from dockyard.containers.filesystem import changes

        record = self.get(typed)
        chain = record.config.get("ImageChain")
        lowerdirs = self.engine.layers.lowerdirs(chain) if chain and self.engine.layers.has(chain) else []
        return changes(os.path.join(self.container_dir(record.id), "upper"), lowerdirs)

    def export(self, typed: str, out: Any) -> None:
        """``docker export``: the container's filesystem as a tar written to ``out``."""
        from dockyard.containers.filesystem import export

        record = self.get(typed)
        export(self, record, out)
        self.event("export", record)

    def commit(self, typed: str, reference: str | None = None, changes: Sequence[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> Any:
        """``docker commit``: a new image of the container's image plus its changes; a running
        container is paused meanwhile unless ``pause`` is False."""
        from dockyard.images.commit import commit_container

        record = self.get(typed)
        paused_here = False
        if pause and record.status == RUNNING:
            self.pause(record.id)
            paused_here = True
        try:
            image = commit_container(self.engine, record, reference, changes, message, author)
        finally:
            if paused_here:
                self.unpause(record.id)
        # Docker's events of a commit: the image tagged (if named), the container committed.
        named = ""
        if reference:
            from dockyard import reference as references

            named = references.parse(reference).familiar()
            self.engine.images.event("tag", image.id, named, image.id)
        self.event("commit", record, comment=message, imageID=image.id, imageRef=named)
        return image

    def update(self, typed: str, resources: dict[str, Any], restart_policy: dict[str, Any] | None = None) -> list[str]:
        """``docker update``: new resource limits (Docker's HostConfig names) and restart
        policy, applied to a live container through its runtime; its warnings."""
        from dockyard.containers.update import update

        record = self.get(typed)
        warnings = update(self, record, resources, restart_policy)
        self.event("update", record)
        return warnings

    # ------------------------------------------------------------------ reset

    def reset(self) -> list[str]:
        """Force-remove every container (system reset)."""
        removed = []
        for record in self.store.all():
            try:
                self.remove(record.id, force=True, volumes=True)
            except NotFoundError:
                continue
            removed.append(record.id)
        return removed


# ------------------------------------------------------------------ helpers

def _merge_config(config: dict[str, Any], image_conf: dict[str, Any]) -> dict[str, Any]:
    """Docker's merge of the image's config under the container's (daemon/create.go)."""
    merged = dict(config)
    env: dict[str, str] = {}
    for item in list(image_conf.get("Env") or []) + list(config.get("Env") or []):
        key, sep, value = item.partition("=")
        if not sep:
            if key in os.environ:
                env[key] = os.environ[key]
            continue
        env[key] = value
    # No PATH added here: Docker's Config.Env is the image's and the user's only; the runtime
    # spec gives the process the default PATH when neither has one.
    merged["Env"] = [f"{k}={v}" for k, v in env.items()]
    if config.get("Entrypoint") is None:
        merged["Entrypoint"] = image_conf.get("Entrypoint")
        if not config.get("Cmd"):
            merged["Cmd"] = image_conf.get("Cmd")
    else:
        merged["Entrypoint"] = [a for a in config["Entrypoint"] if a] or None
    for key in ("WorkingDir", "User", "StopSignal"):
        if not merged.get(key) and image_conf.get(key):
            merged[key] = image_conf[key]
    labels = dict(image_conf.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    merged["Labels"] = labels
    if config.get("Healthcheck") or image_conf.get("Healthcheck"):
        from dockyard.containers import health

        merged["Healthcheck"] = health.merge(config.get("Healthcheck"), image_conf.get("Healthcheck"))
    if image_conf.get("Volumes"):
        merged["Volumes"] = {**image_conf["Volumes"], **(config.get("Volumes") or {})}
    if image_conf.get("ExposedPorts"):
        merged["ExposedPorts"] = {**image_conf["ExposedPorts"], **(config.get("ExposedPorts") or {})}
    for key, default in (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                         ("AttachStdout", False), ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
                         ("StdinOnce", False), ("WorkingDir", ""), ("OnBuild", None)):
        merged.setdefault(key, default)
    return merged


def _check_host_config(host: dict[str, Any], config: dict[str, Any]) -> None:
    from dockyard.runtime import RUNTIMES

    if host["Runtime"] not in RUNTIMES:
        raise ContainerError(f"unknown or invalid runtime name: {host['Runtime']}")
    policy = host["RestartPolicy"]
    if policy.get("Name") not in ("", "no", "always", "on-failure", "unless-stopped"):
        raise ContainerError(f"invalid restart policy '{policy.get('Name')}'")
    if host.get("AutoRemove") and policy.get("Name") not in ("", "no"):
        raise ContainerError("Conflicting options: --restart and --rm")
    if policy.get("MaximumRetryCount") and policy.get("Name") != "on-failure":
        raise ContainerError(f"maximum retry count cannot be used with restart policy '{policy['Name']}'")
    if config.get("StopSignal"):
        try:
            signal_number(config["StopSignal"])
        except InvalidSignal as e:
            raise ContainerError(e.message) from None   # docker's "Invalid signal: BOGUS" (runtime/signals.py)
    log_type = host["LogConfig"].get("Type") or "json-file"
    if log_type not in ("json-file", "none"):
        raise ContainerError(f"logging driver {log_type!r} is not supported (json-file, none)")
    if log_type == "json-file" and host["LogConfig"].get("Config"):
        from dockyard.containers.logs import check_options

        try:
            check_options(host["LogConfig"]["Config"])
        except ValueError as e:
            raise ContainerError(str(e)) from None
    if host.get("Memory") and host["Memory"] < 6 * 1024 * 1024:
        raise ContainerError("Minimum memory limit allowed is 6MB")


def _log_rotation(config: dict[str, str]) -> tuple[int, int]:
    """(max-size, max-file) of the json-file log: checked at start, as Docker's driver does."""
    if not config:
        return 0, 1
    from dockyard.containers.logs import rotation

    try:
        return rotation(config)
    except ValueError as e:
        raise ContainerError(f"failed to initialize logging driver: {e}") from None


def runtime_name(record: ContainerRecord) -> str:
    return record.host_config.get("Runtime") or DEFAULT_RUNTIME


class InvalidSignal(DockyardError):
    """Docker's answer to a signal no process can be sent (an invalid parameter)."""


def signal_number(sig: str | int) -> int:
    from dockyard.runtime import signals as signal_table

    try:
        return signal_table.parse(sig)
    except signal_table.SignalError as e:
        raise InvalidSignal(str(e)) from None


def _alive(pid: int, starttime: str | None) -> bool:
    from dockyard.proc import process_alive

    return process_alive(pid, starttime)


def _matches(containers: Containers, r: ContainerRecord, filters: Mapping[str, Sequence[str]]) -> bool:
    for key, values in filters.items():
        if key == "status" and r.status not in values:
            return False
        if key == "name" and not any(_name_match(v, r.name) for v in values):
            return False
        if key == "id" and not any(r.id.startswith(v) for v in values):
            return False
        if key == "health" and health_status(containers, r) not in values:
            return False
        if key == "exited" and not (r.status == EXITED and str(r.exit_code) in values):
            return False
        if key == "label":
            labels = r.container_config.get("Labels") or {}
            for v in values:
                k, sep, val = v.partition("=")
                if k not in labels or (sep and labels[k] != val):
                    return False
        if key == "ancestor" and not any(_is_ancestor(containers, v, r) for v in values):
            return False
        if key in ("network", "volume", "publish", "expose", "is-task", "isolation") and \
                not _matches_more(r, key, values):
            return False
        if key in ("before", "since"):
            other = containers.get(values[-1])
            if key == "before" and not r.created < other.created:
                return False
            if key == "since" and not r.created > other.created:
                return False
    return True


def _matches_more(r: ContainerRecord, key: str, values: Sequence[str]) -> bool:
    """Docker's other ps filters: network (name), volume (name, source or destination),
    publish/expose (``80``, ``80/udp``), is-task (no swarm here: never a task), isolation."""
    if key == "network":
        mode = r.host_config.get("NetworkMode") or "default"
        nets = {"bridge" if mode == "default" else mode,
                *((r.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})}
        return any(v in nets for v in values)
    if key == "volume":
        return any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                   for m in r.config.get("Mounts") or [] for v in values)
    if key in ("publish", "expose"):
        ports = set(r.host_config.get("PortBindings") or {})
        if key == "expose":
            ports |= set(r.container_config.get("ExposedPorts") or {})
        return any((v if "/" in v else v + "/tcp") in ports for v in values)
    if key == "is-task":
        return "false" in values
    return any(v in ("default", "") for v in values)   # isolation: Linux has only the default


def health_status(containers: Containers, r: ContainerRecord) -> str:
    """The container's health status (starting, healthy, unhealthy, none), kept on the record
    for ``ps``'s STATUS; a container without a health check costs no file read."""
    if "health" not in r.extra:
        if not r.container_config.get("Healthcheck"):
            return "none"
        from dockyard.containers import health

        r.extra["health"] = health.status_of(r.container_config, containers.container_dir(r.id), r.status in ACTIVE)
    return r.extra["health"]


def _health_probe(config: dict[str, Any]) -> dict[str, Any] | None:
    if not config.get("Healthcheck"):
        return None
    from dockyard.containers import health

    return health.shim_config(config)


def _check_healthcheck(healthcheck: dict[str, Any]) -> None:
    from dockyard.containers import health

    try:
        health.check(healthcheck)
    except health.HealthError as e:
        raise ContainerError(e.message) from None


def _name_match(pattern: str, name: str) -> bool:
    import re

    try:
        return re.search(pattern.lstrip("/"), name) is not None
    except re.error:
        return pattern in name


def _is_ancestor(containers: Containers, value: str, r: ContainerRecord) -> bool:
    if value == r.image:
        return True
    image = containers.engine.images.find(value)
    return image is not None and image.id == r.image_id
