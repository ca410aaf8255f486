"""``ComposeProject``: the compose verbs (up, down, ps, start, stop, ...) over the engine's public
surface (engine.containers, .networks, .volumes, .images), with Docker Compose v2's labels for
membership: a project is the containers, networks and volumes labelled with its name.

``up`` converges: networks and volumes first (an existing one of the same name is reused),
images pulled or built, then each service in dependency order, its dependencies' conditions
waited for (service_started, service_healthy, service_completed_successfully). A container whose
config hash (labels.config_hash) and image are unchanged is kept (started if stopped); a changed
one is recreated with its number; the count is brought to the service's scale, highest numbers
removed first. A replacement mounts the anonymous volumes of the container it replaces (as
Docker Compose v2 does). A difference by choice: the old container is removed before its
replacement is created (Docker Compose v2 creates it under a temporary name first).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from dockyard.compose import convert, depends
from dockyard.compose import labels as L
from dockyard.errors import DockyardError, NotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.containers.store import ContainerRecord
    from dockyard.engine import Engine

Progress = Callable[[str, str, str], None]


class ProjectError(DockyardError):
    """A compose verb that cannot be carried out: one line, exit 1."""


def _quiet(kind: str, name: str, state: str) -> None:
    pass


def _number(record: "ContainerRecord") -> int:
    try:
        return int(record.container_config.get("Labels", {}).get(L.NUMBER) or 0)
    except ValueError:
        return 0


def _service_of(record: "ContainerRecord") -> str:
    return (record.container_config.get("Labels") or {}).get(L.SERVICE, "")


def _label(record: "ContainerRecord", key: str) -> str:
    return (record.container_config.get("Labels") or {}).get(key, "")


def _is_oneoff(record: "ContainerRecord") -> bool:
    return _label(record, L.ONEOFF) == "True"


def _has_probe(record: "ContainerRecord") -> bool:
    """A health check that runs (not ``disable: true``, Docker's ["NONE"])."""
    from dockyard.containers.health import probe_command

    return probe_command(record.container_config.get("Healthcheck")) is not None


def _sort_key(record: "ContainerRecord") -> tuple[str, int, str]:
    return (_service_of(record), _number(record), record.name)


class ComposeProject:
    """The verbs of one project. ``project``: the loaded Project (model.load); None for a
    project known only by name (``by_name``: the verbs that need only the labels)."""

    def __init__(self, engine: "Engine", project: Any) -> None:
        self.engine = engine
        self.project = project
        self.name: str = project.name if project is not None else ""

    @classmethod
    def by_name(cls, engine: "Engine", name: str) -> "ComposeProject":
        p = cls(engine, None)
        p.name = name
        return p

    # ------------------------------------------------------------------ model access

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.project.services) if self.project is not None else {}

    @property
    def model(self) -> dict[str, Any]:
        return self.project.model if self.project is not None else {}

    def _need_model(self, verb: str) -> None:
        if self.project is None:
            raise ProjectError(f"{verb} needs the project's compose file")

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(getattr(self.project, "environment", None) or {})
        return env

    def image_name(self, service_name: str) -> str:
        """The service's image: ``image:``, else Docker Compose v2's ``<project>-<service>``."""
        service = self.services.get(service_name) or {}
        return service.get("image") or f"{self.name}-{service_name}"

    def _check_services(self, services: Iterable[str] | None) -> list[str]:
        known = self.services
        names = list(services or [])
        for name in names:
            if self.project is not None and name not in known:
                if name in (getattr(self.project, "disabled", None) or {}):
                    raise ProjectError(f"service {name!r} is disabled by its profiles")
                raise ProjectError(f"no such service: {name}")
        return names

    # ------------------------------------------------------------------ containers

    def _all(self, oneoff: bool | None = False) -> list["ContainerRecord"]:
        records = self.engine.containers.list(all=True, filters=L.project_filter(self.name))
        if oneoff is not None:
            records = [r for r in records if _is_oneoff(r) == oneoff]
        return sorted(records, key=_sort_key)

    def containers(self, services: Iterable[str] | None = None, *, all: bool = False,
                   oneoff: bool = False) -> list["ContainerRecord"]:
        """The project's containers (running only unless ``all``), sorted by service and number;
        ``oneoff``: the ``run`` containers as well."""
        wanted = set(services or [])
        out = []
        for r in self._all(None if oneoff else False):
            if wanted and _service_of(r) not in wanted:
                continue
            if not all and not r.running:
                continue
            out.append(r)
        return out

    def _service_containers(self, service: str) -> list["ContainerRecord"]:
        return [r for r in self._all(False) if _service_of(r) == service]

    # ------------------------------------------------------------------ networks and volumes

    def _ensure_networks(self, progress: Progress) -> None:
        from dockyard.network.store import NetworkNotFound

        networks = self.engine.networks
        for key, conf in sorted((self.model.get("networks") or {}).items()):
            conf = conf or {}
            real = conf.get("name") or f"{self.name}_{key}"
            if conf.get("external"):
                try:
                    networks.get(real)
                except NetworkNotFound:
                    raise ProjectError(f"network {real} declared as external, but could not be found") from None
                continue
            if networks.store.find(real) is not None:
                continue
            driver = conf.get("driver") or "bridge"
            ipam = conf.get("ipam") or {}
            if ipam.get("driver") not in (None, "", "default"):
                raise convert.UnsupportedError(f"networks.{key}.ipam.driver is not supported by dockyard")
            pool = (ipam.get("config") or [{}])[0] or {}
            if conf.get("enable_ipv6"):
                raise convert.UnsupportedError(f"networks.{key}.enable_ipv6 is not supported by dockyard")
            try:
                networks.create(real, driver=driver, subnet=pool.get("subnet") or "",
                                gateway=pool.get("gateway") or "", ip_range=pool.get("ip_range") or "",
                                internal=bool(conf.get("internal")),
                                labels=L.object_labels(self.name, L.NETWORK, key, conf.get("labels")),
                                options={str(k): str(v) for k, v in (conf.get("driver_opts") or {}).items()})
            except DockyardError as e:
                if networks.store.find(real) is not None:   # made meanwhile by another up
                    continue
                raise ProjectError(f"network {real}: {e.message}") from None
            progress("Network", real, "Created")

    def _ensure_volumes(self, progress: Progress) -> None:
        volumes = self.engine.volumes
        for key, conf in sorted((self.model.get("volumes") or {}).items()):
            conf = conf or {}
            real = conf.get("name") or f"{self.name}_{key}"
            if conf.get("external"):
                if volumes.find(real) is None:
                    raise ProjectError(f"external volume \"{real}\" not found")
                continue
            if conf.get("driver") not in (None, "", "local"):
                raise convert.UnsupportedError(f"volumes.{key}.driver is not supported by dockyard")
            if conf.get("driver_opts"):
                raise convert.UnsupportedError(f"volumes.{key}.driver_opts is not supported by dockyard")
            if volumes.find(real) is not None:
                continue
            volumes.create(real, labels=L.object_labels(self.name, L.VOLUME, key, conf.get("labels")))
            progress("Volume", real, "Created")

    # ------------------------------------------------------------------ images

    def _image_id(self, service_name: str) -> str:
        image = self.engine.images.find(self.image_name(service_name))
        return image.id if image is not None else ""

    def _ensure_images(self, names: Sequence[str], build: bool, no_build: bool, pull: str,
                       progress: Progress) -> None:
        for name in names:
            service = self.services[name]
            image = self.image_name(name)
            present = self.engine.images.find(image) is not None
            # up --pull: always|missing|never override the file; "policy"/"missing": its pull_policy
            policy = pull if pull not in ("missing", "policy", "") else (service.get("pull_policy") or "missing")
            if service.get("build") and not no_build and (build or policy == "build" or not present):
                self._build_one(name, progress=progress)
                continue
            if policy == "always" or (not present and policy in ("missing", "if_not_present", "build", "daily",
                                                                  "weekly")):
                self._pull_one(name, progress)
            elif not present:
                raise ProjectError(f"service {name!r}: image {image} not found (pull_policy {policy})")

    def _pull_one(self, name: str, progress: Progress) -> None:
        image = self.image_name(name)
        progress("Image", image, "Pulling")
        try:
            self.engine.images.pull(image)
        except DockyardError as e:
            progress("Image", image, "Error")
            raise ProjectError(f"service {name!r}: pulling {image}: {e.message}") from None
        progress("Image", image, "Pulled")

    def _build_one(self, name: str, *, no_cache: bool = False, pull: bool = False,
                   progress: Progress = _quiet, quiet: bool = False) -> None:
        """Build the service's image with the engine's builder, tagged with its image name; the
        build's own output on stderr (BuildKit's plain or live view) unless ``quiet``."""
        import tempfile

        service = self.services[name]
        spec = service.get("build") or {}
        if isinstance(spec, str):
            spec = {"context": spec}
        for key, value in spec.items():
            if key not in ("context", "dockerfile", "args", "target", "labels", "no_cache", "pull", "network",
                           "secrets", "tags") and value not in (None, [], {}, "", False):
                raise convert.UnsupportedError(f"services.{name}.build.{key} is not supported by dockyard")
        context = spec.get("context") or "."
        if not os.path.isabs(context):
            context = os.path.join(getattr(self.project, "working_dir", "") or os.getcwd(), context)
        dockerfile = spec.get("dockerfile") or "Dockerfile"
        if not os.path.isabs(dockerfile):
            dockerfile = os.path.join(context, dockerfile)
        image = self.image_name(name)
        with tempfile.TemporaryDirectory(prefix="dockyard-compose-secrets-") as scratch:
            secrets = self._build_secrets(name, spec, scratch)
            self._run_build(name, image, spec, context, dockerfile, secrets, no_cache, pull, quiet, progress)

    def _build_secrets(self, name: str, spec: Mapping[str, Any], scratch: str) -> dict[str, str]:
        """Build secret id (the target, else the source) -> file; a secret from the environment
        or from content is written to a file in ``scratch`` for the build's length."""
        secrets = {}
        top_secrets = self.model.get("secrets") or {}
        environ = self._environ()
        for i, ref in enumerate(spec.get("secrets") or []):
            ref = {"source": ref} if isinstance(ref, str) else ref
            defined = top_secrets.get(ref.get("source")) or {}
            secret_id = ref.get("target") or ref["source"]
            if defined.get("file"):
                secrets[secret_id] = defined["file"]
                continue
            if "environment" in defined:
                if defined["environment"] not in environ:
                    raise ProjectError(f"environment variable {defined['environment']!r} required by secret "
                                       f"{ref['source']!r} is not set")
                data = environ[defined["environment"]]
            elif "content" in defined:
                data = str(defined["content"])
            else:
                raise convert.UnsupportedError(f"services.{name}.build.secrets[{i}]: secret {ref.get('source')} "
                                               "has no file, environment or content")
            path = os.path.join(scratch, f"{i}")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(data)
            secrets[secret_id] = path
        return secrets

    def _run_build(self, name: str, image: str, spec: Mapping[str, Any], context: str, dockerfile: str,
                   secrets: dict[str, str], no_cache: bool, pull: bool, quiet: bool, progress: Progress) -> None:
        from dockyard.build.builder import BuildOptions, Builder
        from dockyard.build.context import open_context
        from dockyard.build.progress import open_progress

        args = {str(k): ("" if v is None else str(v)) for k, v in (spec.get("args") or {}).items()}
        network = spec.get("network") or "default"
        options = BuildOptions(tags=[image, *(spec.get("tags") or [])], build_args=args, target=spec.get("target"),
                               no_cache=no_cache or bool(spec.get("no_cache")), pull=pull or bool(spec.get("pull")),
                               network="default" if network == "bridge" else network,
                               labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
                               secrets=secrets, runtime=os.environ.get("DOCKYARD_RUNTIME") or "")
        progress("Image", image, "Building")
        with open_context(self.engine, context, dockerfile) as ctx:
            reporter = open_progress("quiet" if quiet else "auto", sys.stderr)
            try:
                Builder(self.engine, ctx, options, reporter).run()
            finally:
                reporter.close()
        progress("Image", image, "Built")

    # ------------------------------------------------------------------ create, start

    def _container_name(self, service_name: str, number: int) -> str:
        service = self.services.get(service_name) or {}
        return service.get("container_name") or f"{self.name}-{service_name}-{number}"

    def _labels(self, service_name: str, service: Mapping[str, Any], number: int, *, oneoff: bool = False,
                replace: str = "", slug: str = "") -> dict[str, str]:
        return L.container_labels(self.name, service_name, service, number,
                                  working_dir=getattr(self.project, "working_dir", "") or "",
                                  config_files=getattr(self.project, "files", None) or (),
                                  image_id=self._image_id(service_name), oneoff=oneoff, replace=replace, slug=slug)

    def _service_container_id(self, name: str, what: str = "network namespace") -> str:
        for r in self._service_containers(name):
            return r.id
        raise ProjectError(f"cannot share {what} with service {name}: container missing")

    def _resolved(self, service_name: str, service: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The service with its references to other services made container IDs, as Docker
        Compose v2's resolveServiceReferences: ``volumes_from: [svc]`` -> the ID of svc's first
        container, ``network_mode``/``ipc``/``pid`` ``service:x`` -> ``container:<ID>``. The config
        hash is of this (so a recreated x recreates the services sharing its namespaces)."""
        service = dict(service if service is not None else self.services[service_name])
        if service.get("volumes_from"):
            resolved = []
            for item in service["volumes_from"]:
                spec = str(item).split(":")
                if spec[0] == "container":
                    resolved.append(spec[1] if len(spec) > 1 else "")
                else:
                    resolved.append(self._service_container_id(spec[0], "volume"))
            service["volumes_from"] = resolved
        for key, what in (("network_mode", "network namespace"), ("ipc", "IPC namespace"),
                          ("pid", "PID namespace")):
            value = str(service.get(key) or "")
            if value.startswith("service:"):
                service[key] = "container:" + self._service_container_id(value[8:], what)
        return service

    def _links(self, service: Mapping[str, Any]) -> list[str]:
        """HostConfig.Links of ``links: [svc[:alias]]``, as Docker Compose v2's getLinks: each
        container of svc under the alias, ``svc-N`` and its own name."""
        out = []
        for item in service.get("links") or []:
            target, _, alias = str(item).partition(":")
            for r in self._service_containers(target):
                number = _number(r)
                for name in (alias or target, f"{target}-{number}", r.name):
                    out.append(f"{r.name}:{name}")
        return out

    def _create(self, service_name: str, number: int, *, name: str | None = None, oneoff: bool = False,
                replace: str = "", slug: str = "", service: Mapping[str, Any] | None = None,
                use_aliases: bool = True, publish: bool = True, extra_labels: Mapping[str, str] | None = None,
                auto_remove: bool = False, inherit: Mapping[str, str] | None = None,
                progress: Progress = _quiet) -> "ContainerRecord":
        from dockyard.containers.request import RequestError, normalise

        service = self._resolved(service_name, service)
        labels = self._labels(service_name, service, number, oneoff=oneoff, replace=replace, slug=slug)
        labels.update(extra_labels or {})
        container_name = name or self._container_name(service_name, number)
        plan = convert.build(self.name, self.model, service_name, service, container_name=container_name,
                             labels=labels, environ=self._environ(),
                             working_dir=getattr(self.project, "working_dir", "") or "",
                             image=self.image_name(service_name), use_aliases=use_aliases, publish=publish,
                             service_container=self._service_container_id, inherit=inherit,
                             links=self._links(service))
        if auto_remove:
            plan.body["HostConfig"]["AutoRemove"] = True
        for warning in plan.warnings:
            progress("Warning", container_name, warning)
        try:
            config, host, networking, _warnings = normalise(plan.body)
        except RequestError as e:
            raise ProjectError(f"service {service_name!r}: {e.message}") from None
        record = self.engine.containers.create(config, host, container_name, networking)
        try:
            for net, aliases, ip in plan.connect:
                self.engine.networks.connect(net, record.id, aliases, ip)
            if plan.files:
                self._inject(record, plan.files)
        except BaseException:
            self.engine.containers.remove(record.id, force=True)
            raise
        return self.engine.containers.get(record.id)

    def _inject(self, record: "ContainerRecord", files: Sequence[tuple[str, bytes, int]]) -> None:
        """Secrets and configs from ``environment``/``content`` copied into the created container
        at their targets, owned by root (Docker Compose v2 sends dockerd such a tar). Only the
        files are in the tar: the extraction makes missing parents and leaves existing ones as
        they are (a /tmp keeps its 1777)."""
        import io
        import tarfile

        from dockyard.containers import copy

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for target, data, mode in files:
                info = tarfile.TarInfo(target.strip("/"))
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        copy.extract_to(self.engine.containers, record, "/", buffer)

    def _start(self, record: "ContainerRecord", progress: Progress) -> None:
        progress("Container", record.name, "Starting")
        self.engine.containers.start_and_wait(record.id)
        progress("Container", record.name, "Started")

    def _stop_remove(self, record: "ContainerRecord", timeout: int | None, progress: Progress,
                     volumes: bool = False, stop: bool = True) -> None:
        containers = self.engine.containers
        if stop and record.running:
            progress("Container", record.name, "Stopping")
            containers.stop(record.id, timeout)
            progress("Container", record.name, "Stopped")
        progress("Container", record.name, "Removing")
        try:
            containers.remove(record.id, force=True, volumes=volumes)
        except NotFoundError:
            pass   # an --rm container removed itself
        progress("Container", record.name, "Removed")

    # ------------------------------------------------------------------ dependency conditions

    def _wait_dependencies(self, service_name: str, progress: Progress, timeout: float | None = None) -> None:
        for dep, spec in sorted(depends.dependencies(self.services[service_name]).items()):
            if dep not in self.services:
                continue
            condition = spec.get("condition") or "service_started"
            waiting = self._service_containers(dep)
            try:
                for record in waiting:
                    self._wait_condition(record, condition, progress, timeout)
            except ProjectError:
                if spec.get("required", True):
                    raise
                for record in waiting:   # required: false: a failed dependency is not fatal
                    progress("Container", record.name, "Skipped")

    def _wait_condition(self, record: "ContainerRecord", condition: str, progress: Progress,
                        timeout: float | None) -> None:
        from dockyard.containers.manager import health_status

        containers = self.engine.containers
        deadline = None if timeout is None else time.monotonic() + timeout
        if condition == "service_started":
            return
        if condition == "service_healthy" and not _has_probe(record):
            raise ProjectError(f"dependency failed to start: container {record.name} has no healthcheck configured")
        progress("Container", record.name, "Waiting")
        while True:
            current = containers.get(record.id)
            if condition == "service_healthy":
                status = health_status(containers, current) if current.running else "exited"
                if status == "healthy":
                    progress("Container", record.name, "Healthy")
                    return
                if status == "unhealthy":
                    raise ProjectError(f"dependency failed to start: container {record.name} is unhealthy")
                if status == "exited" or not current.running:
                    raise ProjectError(f"dependency failed to start: container {record.name} exited "
                                       f"({current.exit_code})")
            elif condition == "service_completed_successfully":
                if not current.running and current.status != "created":
                    if current.exit_code == 0:
                        progress("Container", record.name, "Exited")
                        return
                    raise ProjectError(f"service {_service_of(record)!r} didn't complete successfully: "
                                       f"exit {current.exit_code}")
            else:
                raise ProjectError(f"unknown depends_on condition {condition!r}")
            if deadline is not None and time.monotonic() > deadline:
                raise ProjectError(f"timeout waiting for container {record.name}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ up

    def _scale(self, name: str, scale: Mapping[str, int]) -> int:
        service = self.services[name]
        if name in scale:
            return int(scale[name])
        if service.get("scale") is not None:
            return int(service["scale"])
        replicas = (service.get("deploy") or {}).get("replicas")
        return 1 if replicas is None else int(replicas)

    def _check(self, names: Sequence[str]) -> None:
        """Every check that needs no engine call: nothing is created when one fails."""
        depends.check_cycles(self.services)
        for name in names:
            convert.check_supported(name, self.services[name])
            service = self.services[name]
            if service.get("container_name") and self._scale(name, {}) > 1:
                raise ProjectError(f'services.{name}: can\'t set container_name and {name} as container name '
                                   "must be unique")
            # the whole create body, and the engine's request checks on it, before anything is made
            from dockyard.containers.request import RequestError, normalise

            plan = convert.build(self.name, self.model, name, service, container_name=self._container_name(name, 1),
                                 labels={}, environ=self._environ(),
                                 working_dir=getattr(self.project, "working_dir", "") or "",
                                 image=self.image_name(name), service_container=lambda _: "0" * 64)
            try:
                normalise(plan.body)
            except RequestError as e:
                raise ProjectError(f"service {name!r}: {e.message}") from None

    def _error(self, path: tuple[Any, ...], message: str) -> ProjectError:
        """An error placed at ``file:line`` of the node at ``path`` when the loader kept the
        positions (``project.positions``), else at its path alone."""
        positions = getattr(self.project, "positions", None)
        if positions is not None:
            placed = positions.error(path, message)
            return ProjectError(placed.message)
        from dockyard.compose.errors import format_path

        return ProjectError(f"{format_path(path)}: {message}")

    def _check_ports(self, names: Sequence[str], scale: Mapping[str, int]) -> None:
        """A fixed host port published twice in the project (two services, or replicas of one),
        or held on the host by anything but this project's own running containers, fails the up
        before anything is made; ranges and random ports are the engine's to pick."""
        from dockyard.network.firewall import bind_error

        held = set()
        for record in self._all(None):
            if record.running:
                for key, bindings in (record.host_config.get("PortBindings") or {}).items():
                    port, _, proto = key.partition("/")
                    for b in bindings or []:
                        held.add(((proto or "tcp"), b.get("HostIp") or "", str(b.get("HostPort") or "")))
        wanted: list[tuple[str, str, int, tuple[Any, ...], str]] = []
        for name in names:
            for i, port in enumerate(self.services[name].get("ports") or []):
                published = str(port.get("published") or "")
                if not published.isdigit():
                    continue
                proto, host_ip = port.get("protocol") or "tcp", port.get("host_ip") or ""
                path = ("services", name, "ports", i)
                where = f"{host_ip or '0.0.0.0'}:{published}"
                for other_proto, other_ip, other_port, other_path, _ in wanted:
                    if (other_proto, other_port) == (proto, int(published)) and \
                            (other_ip in ("", "0.0.0.0") or host_ip in ("", "0.0.0.0") or other_ip == host_ip):
                        from dockyard.compose.errors import format_path

                        raise self._error(path, f"Bind for {where} failed: port is already allocated "
                                                f"({format_path(other_path)} publishes it too)")
                if self._scale(name, scale) > 1:
                    raise self._error(path, f"Bind for {where} failed: port is already allocated "
                                            f"(services.{name} has {self._scale(name, scale)} replicas)")
                wanted.append((proto, host_ip, int(published), path, where))
        for proto, host_ip, port, path, where in wanted:
            if (proto, host_ip, str(port)) in held:
                continue   # this project's own container holds it (kept, or recreated in place)
            error = bind_error(proto, host_ip, port)
            if error:
                raise self._error(path, f"Error starting userland proxy: {error}")

    def up(self, services: Iterable[str] | None = None, *, detach: bool = True, build: bool = False,
           no_build: bool = False, pull: str = "missing", force_recreate: bool = False,
           no_recreate: bool = False, remove_orphans: bool = False, wait: bool = False,
           wait_timeout: float | None = None, scale: Mapping[str, int] | None = None, no_start: bool = False,
           no_deps: bool = False, timeout: int | None = None,
           progress: Progress | None = None) -> list["ContainerRecord"]:
        """Create and start the project (or ``services``, with their dependencies unless
        ``no_deps``); the containers of the services brought up, sorted."""
        self._need_model("up")
        progress = progress or _quiet
        scale = dict(scale or {})
        wanted = self._check_services(services)
        try:
            order = depends.start_order(self.services, wanted or None, with_deps=not no_deps)
        except depends.DependencyError as e:
            raise ProjectError(e.message) from None
        for name in scale:
            if name not in self.services:
                raise ProjectError(f"no such service: {name}")
        self._check(order)
        self._check_ports(order, scale)
        self._ensure_images(order, build, no_build, pull, progress)
        self._ensure_networks(progress)
        self._ensure_volumes(progress)
        self._orphans(remove_orphans, timeout, progress)
        recreated: set[str] = set()

        def converge(p: "ComposeProject", name: str) -> None:
            if not no_start and not no_deps:
                p._wait_dependencies(name, progress)
            restart = not no_start and any(
                spec.get("restart") and dep in recreated
                for dep, spec in depends.dependencies(p.services[name]).items())
            if p._converge(name, scale, force_recreate, no_recreate, no_start, timeout, progress, restart):
                recreated.add(name)

        # a dependency step at a time, the services of one step at once (Docker Compose v2 runs
        # each service as soon as its own dependencies are there; steps are near enough)
        depth = self._depths([])
        steps: dict[int, list[str]] = {}
        for name in order:
            steps.setdefault(depth.get(name, 0), []).append(name)
        for key in sorted(steps):
            self._at_once(steps[key], converge)
        if wait and not no_start:
            self._wait_up(order, wait_timeout, progress)
        return [r for r in self._all(False) if _service_of(r) in set(order)]

    def _orphans(self, remove: bool, timeout: int | None, progress: Progress) -> None:
        known = set(self.services) | set(getattr(self.project, "disabled", None) or {})
        orphans = [r for r in self._all(None) if _service_of(r) not in known]
        if not orphans:
            return
        if not remove:
            progress("Warning", ", ".join(r.name for r in orphans),
                     "Found orphan containers for this project. If you removed or renamed this service in your "
                     "compose file, you can run this command with the --remove-orphans flag to clean it up.")
            return
        for record in orphans:
            self._stop_remove(record, timeout, progress)

    def _converge(self, name: str, scale: Mapping[str, int], force_recreate: bool, no_recreate: bool,
                  no_start: bool, timeout: int | None, progress: Progress, restart: bool) -> bool:
        """One service to its wanted state; True when a container of it was (re)created."""
        want = self._scale(name, scale)
        existing = self._service_containers(name)
        for record in sorted(existing, key=_number, reverse=True)[:max(0, len(existing) - want)]:
            self._stop_remove(record, timeout, progress)
        existing = sorted(existing, key=_number)[:want]
        expected_hash = L.config_hash(self._resolved(name))
        image_id = self._image_id(name)
        changed = False
        for record in existing:
            outdated = (_label(record, L.CONFIG_HASH) != expected_hash
                        or (image_id and _label(record, L.IMAGE) not in ("", image_id)))
            if force_recreate or (outdated and not no_recreate):
                number = _number(record)
                inherit = {m["Destination"]: m["Name"] for m in record.config.get("Mounts") or []
                           if m.get("Type") == "volume" and m.get("Anonymous")}
                self._stop_remove(record, timeout, progress)
                progress("Container", record.name, "Recreate")
                record = self._create(name, number, replace=f"{name}-{number}", inherit=inherit, progress=progress)
                progress("Container", record.name, "Recreated")
                changed = True
                if not no_start:
                    self._start(record, progress)
                continue
            if no_start:
                continue
            if record.status == "paused":
                continue
            if not record.running:
                self._start(record, progress)
            elif restart:
                progress("Container", record.name, "Restarting")
                self.engine.containers.restart(record.id, timeout)
                progress("Container", record.name, "Restarted")
            else:
                progress("Container", record.name, "Running")
        # Docker Compose v2's nextContainerNumber: after the highest, gaps stay
        highest = max((_number(r) for r in self._service_containers(name)), default=0)
        numbers = list(range(highest + 1, highest + 1 + want - len(existing)))

        def scale_up(p: "ComposeProject", number: int) -> None:
            progress("Container", p._container_name(name, number), "Creating")
            record = p._create(name, number, progress=progress)
            progress("Container", record.name, "Created")
            if not no_start:
                p._start(record, progress)

        self._at_once(numbers, scale_up)   # the new replicas at once, as Docker Compose v2
        return changed or bool(numbers)

    def _wait_up(self, names: Sequence[str], timeout: float | None, progress: Progress) -> None:
        """``--wait``: every container running, and healthy where it has a health check; one that
        exited fails it, unless a dependent waits for its successful completion and it exited 0."""
        from dockyard.containers.manager import health_status

        completes = {dep for s in self.services.values() for dep, spec in depends.dependencies(s).items()
                     if spec.get("condition") == "service_completed_successfully"}
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = [r for r in self._all(False) if _service_of(r) in set(names)]
        containers = self.engine.containers
        while pending:
            left = []
            for record in pending:
                current = containers.get(record.id)
                if not current.running:
                    if current.exit_code == 0 and _service_of(current) in completes:
                        progress("Container", current.name, "Exited")
                        continue
                    raise ProjectError(f"container {current.name} exited ({current.exit_code})")
                if _has_probe(current):
                    status = health_status(containers, current)
                    if status == "unhealthy":
                        raise ProjectError(f"container {current.name} is unhealthy")
                    if status not in ("healthy", "none"):
                        left.append(current)
                        continue
                    progress("Container", current.name, "Healthy")
                else:
                    progress("Container", current.name, "Healthy")   # as v2 words it, health check or not
            pending = left
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    raise ProjectError("timeout waiting for " + ", ".join(r.name for r in pending))
                time.sleep(0.05)

    # ------------------------------------------------------------------ down

    def down(self, *, volumes: bool = False, rmi: str | None = None, remove_orphans: bool = False,
             timeout: int | None = None, progress: Progress | None = None) -> None:
        """Stop and remove the project's containers (one-offs too), its networks (not external
        ones), with ``volumes`` its named volumes and its containers' anonymous ones, with ``rmi``
        its images ("local": those without an ``image:`` of their own, "all": every one). With
        the file known, containers of services gone from it stay unless ``remove_orphans`` (a
        warning names them); by name alone, every container of the project goes."""
        progress = progress or _quiet
        if rmi not in (None, "", "local", "all"):
            raise ProjectError(f"invalid --rmi value {rmi!r}: local or all")
        records = self._all(None)
        if self.project is not None and not remove_orphans:
            # Docker Compose v2: with the file known, containers of services no longer in it stay
            known = set(self.services) | set(getattr(self.project, "disabled", None) or {})
            orphans = [r for r in records if _service_of(r) not in known]
            if orphans:
                progress("Warning", ", ".join(r.name for r in orphans),
                         "Found orphan containers for this project. If you removed or renamed this service in "
                         "your compose file, you can run this command with the --remove-orphans flag to clean "
                         "it up.")
                records = [r for r in records if _service_of(r) in known]
        images = set()
        self._stop_all(records, timeout, progress)
        for record in self._in_stop_order(records):
            images.add((_service_of(record), record.image))
            self._stop_remove(record, timeout, progress, volumes=volumes, stop=False)
        for net in self.engine.networks.list(filters=L.project_filter(self.name)):
            _remove_reported("Network", net.name, lambda: self.engine.networks.remove(net.id), progress)
        if volumes:
            for volume in self.engine.volumes.list(filters=L.project_filter(self.name)):
                _remove_reported("Volume", volume.name, lambda: self.engine.volumes.remove(volume.name), progress)
        if rmi:
            self._remove_images(rmi, images, progress)

    def _remove_images(self, rmi: str, used: set[tuple[str, str]], progress: Progress) -> None:
        names = set()
        if self.project is not None:
            for name, service in self.services.items():
                if rmi == "all" or not service.get("image"):
                    names.add(self.image_name(name))
        else:
            for service, image in used:
                if rmi == "all" or image == f"{self.name}-{service}":
                    names.add(image)
        for image in sorted(names):
            if self.engine.images.find(image) is None:
                continue
            progress("Image", image, "Removing")
            try:
                self.engine.images.remove(image)
            except DockyardError as e:
                progress("Image", image, f"Error: {e.message}")
                continue
            progress("Image", image, "Removed")

    def _stop_all(self, records: Sequence["ContainerRecord"], timeout: int | None, progress: Progress) -> None:
        """Stop the running ones among ``records`` as Docker Compose v2 does: one-offs first,
        then dependents before what they depend on, the containers of one step at once (a
        shell ignoring SIGTERM costs the project one stop timeout, not one per container)."""
        running = [r for r in records if r.running]
        steps: dict[int, list["ContainerRecord"]] = {}
        depth = self._depths(running)
        for record in running:
            key = 1 << 30 if _is_oneoff(record) else depth.get(_service_of(record), 0)
            steps.setdefault(key, []).append(record)

        def stop(p: "ComposeProject", record: "ContainerRecord") -> None:
            progress("Container", record.name, "Stopping")
            p.engine.containers.stop(record.id, timeout)
            progress("Container", record.name, "Stopped")

        for key in sorted(steps, reverse=True):
            self._at_once(steps[key], stop)

    def _depths(self, records: Sequence["ContainerRecord"]) -> dict[str, int]:
        """service -> its depth in the dependency graph (0: depends on nothing), from the model,
        or by name alone from the containers' com.docker.compose.depends_on labels."""
        if self.project is not None:
            graph = {name: set(depends.dependencies(conf)) for name, conf in self.services.items()}
        else:
            graph = {}
            for r in records:
                deps = {item.split(":")[0] for item in _label(r, L.DEPENDS_ON).split(",") if item}
                graph.setdefault(_service_of(r), set()).update(deps)
        depth: dict[str, int] = {}

        def visit(name: str, seen: frozenset[str]) -> int:
            if name not in depth:
                inner = [visit(d, seen | {name}) for d in graph.get(name, ()) if d in graph and d not in seen]
                depth[name] = 1 + max(inner) if inner else 0
            return depth[name]

        for name in graph:
            visit(name, frozenset())
        return depth

    def _at_once(self, items: Sequence[Any], action: Callable[["ComposeProject", Any], None]) -> None:
        """``action(project, item)`` for every item at the same time, each thread with a
        ComposeProject on an engine of its own (engine.at_once)."""
        from dockyard.engine import at_once

        def run(engine: "Engine", item: Any) -> None:
            if engine is self.engine:
                action(self, item)
                return
            clone = ComposeProject(engine, self.project)
            clone.name = self.name
            action(clone, item)

        at_once(self.engine, items, run)

    def _in_stop_order(self, records: Sequence["ContainerRecord"]) -> list["ContainerRecord"]:
        """Dependents before their dependencies when the model is known; one-offs first."""
        rank: dict[str, int] = {}
        if self.project is not None:
            try:
                for i, name in enumerate(depends.start_order(self.services)):
                    rank[name] = i
            except depends.DependencyError:
                pass
        return sorted(records, key=lambda r: (not _is_oneoff(r), -rank.get(_service_of(r), -1), _sort_key(r)))

    # ------------------------------------------------------------------ the other verbs

    def _targets(self, services: Iterable[str] | None, *, all: bool = True) -> list["ContainerRecord"]:
        names = self._check_services(services)
        return self.containers(names or None, all=all)

    def start(self, services: Iterable[str] | None = None, *, progress: Progress | None = None) -> None:
        """Start the stopped containers, dependencies first."""
        progress = progress or _quiet
        records = self._targets(services)
        if not records:
            raise ProjectError(f"no container found for project \"{self.name}\": not found")
        for record in reversed(self._in_stop_order(records)):
            if record.status in ("exited", "created"):
                if self.project is not None and _service_of(record) in self.services and not _is_oneoff(record):
                    self._wait_dependencies(_service_of(record), progress)
                self._start(record, progress)

    def stop(self, services: Iterable[str] | None = None, *, timeout: int | None = None,
             progress: Progress | None = None) -> None:
        progress = progress or _quiet
        self._stop_all(self._targets(services), timeout, progress)

    def restart(self, services: Iterable[str] | None = None, *, timeout: int | None = None,
                progress: Progress | None = None) -> None:
        progress = progress or _quiet
        for record in reversed(self._in_stop_order(self._targets(services))):
            progress("Container", record.name, "Restarting")
            self.engine.containers.restart(record.id, timeout)
            progress("Container", record.name, "Started")

    def kill(self, services: Iterable[str] | None = None, *, signal: str = "SIGKILL",
             progress: Progress | None = None) -> None:
        progress = progress or _quiet
        records = [r for r in self._targets(services) if r.status in ("running", "paused")]
        if not records:
            raise ProjectError("no containers to kill")
        for record in records:
            progress("Container", record.name, "Killing")
            self.engine.containers.kill(record.id, signal)
            progress("Container", record.name, "Killed")

    def pause(self, services: Iterable[str] | None = None, *, progress: Progress | None = None) -> None:
        progress = progress or _quiet
        for record in self._targets(services):
            if record.status == "running":
                progress("Container", record.name, "Pausing")
                self.engine.containers.pause(record.id)
                progress("Container", record.name, "Paused")

    def unpause(self, services: Iterable[str] | None = None, *, progress: Progress | None = None) -> None:
        progress = progress or _quiet
        for record in self._targets(services):
            if record.status == "paused":
                progress("Container", record.name, "Unpausing")
                self.engine.containers.unpause(record.id)
                progress("Container", record.name, "Unpaused")

    def remove(self, services: Iterable[str] | None = None, *, stop: bool = False, volumes: bool = False,
               timeout: int | None = None, progress: Progress | None = None) -> list[str]:
        """``rm``: the stopped containers (with ``stop``, the running ones stopped first); their names."""
        progress = progress or _quiet
        targets = [r for r in self._targets(services) if stop or not r.running]
        self._stop_all(targets, timeout, progress)
        for record in self._in_stop_order(targets):
            self._stop_remove(record, timeout, progress, volumes=volumes, stop=False)
        return [r.name for r in self._in_stop_order(targets)]

    def top(self, services: Iterable[str] | None = None) -> list[tuple[str, list[str], list[list[str]]]]:
        """(container name, header, rows) of each running container."""
        out = []
        for record in self._targets(services, all=False):
            header, rows = self.engine.containers.top(record.id)
            out.append((record.name, header, rows))
        return out

    def port(self, service: str, private_port: int | str, *, protocol: str = "tcp", index: int = 1) -> str:
        """``port``: the public ``host:port`` bound to the service container's private port ("" if none)."""
        self._check_services([service])
        records = [r for r in self.containers([service], all=True) if _number(r) == index]
        if not records:
            raise ProjectError(f"no container found for {service}_{index}")
        inspect = self.engine.containers.inspect(records[0].id)
        ports = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
        for binding in ports.get(f"{private_port}/{protocol}") or []:
            return f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}"
        return ""

    def images(self, services: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Rows of ``images``: Container, Repository, Tag, ImageId, Size."""
        rows = []
        for record in self._targets(services):
            image = self.engine.images.find(record.image_id) or self.engine.images.find(record.image)
            repo, _, tag = record.image.rpartition(":") if ":" in record.image.rsplit("/", 1)[-1] else \
                (record.image, "", "latest")
            size = 0
            if image is not None:
                for summary in self.engine.images.list():
                    if summary.id == image.id:
                        size = getattr(summary, "size", 0)
                        break
            rows.append({"Container": record.name, "Repository": repo, "Tag": tag, "ImageId": record.image_id,
                         "Size": size})
        return rows

    # ------------------------------------------------------------------ run

    def create_oneoff(self, service: str, command: Sequence[str] | None = None, *, env: Sequence[str] = (),
                      name: str | None = None, entrypoint: Sequence[str] | None = None, user: str | None = None,
                      workdir: str | None = None, service_ports: bool = False, publish: Sequence[str] = (),
                      remove: bool = False, tty: bool = False, interactive: bool = False, no_deps: bool = False,
                      labels: Sequence[str] = (), use_aliases: bool = False,
                      progress: Progress | None = None) -> "ContainerRecord":
        """The container of ``compose run`` (created, not started): labelled one-off, named
        ``<project>-<service>-run-<12 hex>``, no published ports unless ``service_ports`` or
        ``publish``; the service's dependencies are brought up first unless ``no_deps``."""
        self._need_model("run")
        progress = progress or _quiet
        self._check_services([service])
        deps = [d for d in depends.start_order(self.services, [service]) if d != service]
        self._check([service, *deps])
        if deps and not no_deps:
            self.up(deps, progress=progress)
        self._ensure_images([service], False, False, "missing", progress)
        self._ensure_networks(progress)
        self._ensure_volumes(progress)
        if not no_deps:
            self._wait_dependencies(service, progress)
        conf = dict(self.services[service])
        if command is not None:
            conf["command"] = list(command)
        if entrypoint is not None:
            conf["entrypoint"] = list(entrypoint)
        if user is not None:
            conf["user"] = user
        if workdir is not None:
            conf["working_dir"] = workdir
        environment = dict(conf.get("environment") or {})
        for item in env:
            key, sep, value = item.partition("=")
            environment[key] = value if sep else None
        if environment:
            conf["environment"] = environment
        conf["tty"], conf["stdin_open"] = tty, interactive
        if remove:   # a restart policy and --rm do not go together (the engine refuses both)
            conf.pop("restart", None)
            if conf.get("deploy"):
                conf["deploy"] = {k: v for k, v in conf["deploy"].items() if k != "restart_policy"}
        if publish:
            conf["ports"] = [_parse_publish(p) for p in publish]
            service_ports = True
        extra = {}
        for item in labels:
            key, _, value = item.partition("=")
            extra[key] = value
        slug = os.urandom(32).hex()
        container_name = name or f"{self.name}-{service}-run-{slug[:12]}"
        return self._create(service, 1, name=container_name, oneoff=True, slug=slug, service=conf,
                            use_aliases=use_aliases, publish=service_ports, extra_labels=extra,
                            auto_remove=remove, progress=progress)

    # ------------------------------------------------------------------ images

    def pull(self, services: Iterable[str] | None = None, *, ignore_buildable: bool = False,
             progress: Progress | None = None) -> None:
        self._need_model("pull")
        progress = progress or _quiet
        for name in self._check_services(services) or sorted(self.services):
            service = self.services[name]
            if service.get("build") and (ignore_buildable or not service.get("image")):
                continue
            self._pull_one(name, progress)

    def push(self, services: Iterable[str] | None = None, *, progress: Progress | None = None) -> None:
        """Push what the project builds, as Docker Compose v2: each service with both ``build``
        and ``image`` (its image and its build tags); the others are skipped."""
        self._need_model("push")
        progress = progress or _quiet
        for name in self._check_services(services) or sorted(self.services):
            service = self.services[name]
            if not service.get("build") or not service.get("image"):
                progress("Service", name, "Skipped")
                continue
            spec = service["build"] if isinstance(service["build"], dict) else {}
            for image in [service["image"], *(spec.get("tags") or [])]:
                progress("Image", image, "Pushing")
                try:
                    self.engine.images.push(image)
                except DockyardError as e:
                    raise ProjectError(f"service {name!r}: pushing {image}: {e.message}") from None
                progress("Image", image, "Pushed")

    def build(self, services: Iterable[str] | None = None, *, no_cache: bool = False, pull: bool = False,
              quiet: bool = False, progress: Progress | None = None) -> None:
        """Build the services that have ``build:`` (all, or ``services``)."""
        self._need_model("build")
        progress = progress or _quiet
        for name in self._check_services(services) or sorted(self.services):
            if self.services[name].get("build"):
                self._build_one(name, no_cache=no_cache, pull=pull, progress=progress, quiet=quiet)


def _parse_publish(item: str) -> dict[str, Any]:
    """``[ip:][host:]container[/proto]`` -> a long-syntax port."""
    spec, _, proto = item.partition("/")
    parts = spec.rsplit(":", 2)
    host_ip, published = "", ""
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        target = parts[0]
    return {"target": int(target), "published": published, "host_ip": host_ip, "protocol": proto or "tcp",
            "mode": "ingress"}


def list_projects(engine: "Engine", all: bool = False) -> list[dict[str, str]]:
    """``compose ls``: each project with containers (running ones only unless ``all``):
    Name, Status ("running(2), exited(1)"), ConfigFiles."""
    projects: dict[str, dict[str, Any]] = {}
    for record in engine.containers.list(all=True, filters={"label": [L.PROJECT]}):
        name = _label(record, L.PROJECT)
        entry = projects.setdefault(name, {"states": {}, "files": ""})
        entry["states"][record.status] = entry["states"].get(record.status, 0) + 1
        entry["files"] = entry["files"] or _label(record, L.CONFIG_FILES)
    out = []
    for name in sorted(projects):
        states = projects[name]["states"]
        if not all and not any(s in ("running", "paused", "restarting") for s in states):
            continue
        status = ", ".join(f"{s}({n})" for s, n in sorted(states.items()))
        out.append({"Name": name, "Status": status, "ConfigFiles": projects[name]["files"]})
    return out


def _remove_reported(kind: str, name: str, remove: Callable[[], Any], progress: Progress) -> None:
    """``down``'s removal of a network or volume, each step reported as Docker Compose v2 does; a
    refusal (still in use elsewhere) is reported and the rest goes on."""
    progress(kind, name, "Removing")
    try:
        remove()
    except DockyardError as e:
        progress(kind, name, f"Error: {e.message}")
        return
    progress(kind, name, "Removed")
