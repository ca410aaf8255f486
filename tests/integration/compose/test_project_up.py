"""ComposeProject on the real engine (busybox only): the containers a user sees after ``up``
(names, Docker Compose's labels), a service reaching another by name, idempotent ``up``, a
changed service recreated alone, scale, orphans, health gating, completion gating, and
``down -v`` leaving nothing.

Services stop with SIGKILL (``stop_signal``): busybox's httpd and sleep run as PID 1 and
ignore SIGTERM, so a stop would otherwise wait its 10 s."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from dockyard.compose import labels as L
from dockyard.compose.project import ComposeProject, ProjectError, list_projects
from dockyard.engine import Engine

pytestmark = pytest.mark.integration


class StandIn:
    """The few attributes of model.Project (contract 1) that ComposeProject reads."""

    def __init__(self, model: dict[str, Any], working_dir: str) -> None:
        self.name = model["name"]
        self.model = model
        self.services = model["services"]
        self.disabled: dict[str, Any] = {}
        self.working_dir = working_dir
        self.files = [os.path.join(working_dir, "compose.yaml")]
        self.environment: dict[str, str] = {}


def _svc(command: str, **more: Any) -> dict[str, Any]:
    return {"image": "busybox", "command": ["sh", "-c", command], "stop_signal": "SIGKILL",
            "networks": {"default": None}, **more}


def _model(name: str, services: dict[str, Any], volumes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "services": services, "networks": {"default": {"name": f"{name}_default"}},
            "volumes": volumes or {}}


def _ids(p: ComposeProject) -> dict[str, str]:
    return {r.name: r.id for r in p.containers(all=True)}


def _fetch(run_cli: Callable[..., subprocess.CompletedProcess[str]], container: str, url: str) -> str:
    """wget from inside ``container``, again while the server is not listening yet (a started
    httpd binds its port a moment after the start)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        out = run_cli("exec", container, "wget", "-qO-", url)
        if out.returncode == 0 or time.monotonic() > deadline:
            assert out.returncode == 0, out.stderr
            return out.stdout
        time.sleep(0.1)


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_up_ps_dns_idempotence_recreate_scale_orphans_and_down(
        engine: Engine, tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from web\n")
    model = _model("shop", {
        "web": _svc("exec httpd -f -p 80 -h /www", volumes=[
            {"type": "bind", "source": str(www), "target": "/www", "read_only": True,
             "bind": {"create_host_path": True}},
            {"type": "volume", "source": "data", "target": "/data", "volume": {}}]),
        "client": _svc("exec sleep 1000", environment={"MODE": "one"},
                       depends_on={"web": {"condition": "service_started", "required": True}}),
    }, volumes={"data": {"name": "shop_data"}})
    seen: list[tuple[str, str, str]] = []
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        records = p.up(progress=lambda *a: seen.append(a))
        assert [r.name for r in records] == ["shop-client-1", "shop-web-1"]
        assert ("Network", "shop_default", "Created") in seen and ("Volume", "shop_data", "Created") in seen
        assert seen.index(("Container", "shop-web-1", "Started")) < seen.index(("Container", "shop-client-1",
                                                                                 "Started"))
        web = engine.containers.inspect("shop-web-1")
        labels = web["Config"]["Labels"]
        assert labels[L.PROJECT] == "shop" and labels[L.SERVICE] == "web" and labels[L.NUMBER] == "1"
        assert labels[L.ONEOFF] == "False" and len(labels[L.CONFIG_HASH]) == 64
        assert labels[L.IMAGE] == engine.images.get("busybox").id
        assert engine.containers.inspect("shop-client-1")["Config"]["Labels"][L.DEPENDS_ON] == \
            "web:service_started:false"
        assert web["State"]["Running"]
        assert [r.name for r in p.containers()] == ["shop-client-1", "shop-web-1"]
        assert list_projects(engine) == [{"Name": "shop", "Status": "running(2)",
                                          "ConfigFiles": str(tmp_path / "compose.yaml")}]

        # by service name and by container name, over the project network
        for host in ("web", "shop-web-1"):
            assert _fetch(run_cli, "shop-client-1", f"http://{host}/") == "hello from web\n"
        net = engine.networks.get("shop_default")
        assert net.labels[L.PROJECT] == "shop" and net.labels[L.NETWORK] == "default"
        assert engine.volumes.get("shop_data").labels[L.VOLUME] == "data"

        # a second up with no change recreates nothing
        before = _ids(p)
        p.up()
        assert _ids(p) == before
        # a stopped container is started again, not recreated
        engine.containers.stop("shop-client-1")
        p.up()
        assert _ids(p) == before and engine.containers.get("shop-client-1").status == "running"

        # a changed service is recreated alone, with its number
        changed = copy.deepcopy(model)
        changed["services"]["client"]["environment"] = {"MODE": "two"}
        p = ComposeProject(engine, StandIn(changed, str(tmp_path)))
        p.up()
        after = _ids(p)
        assert after["shop-web-1"] == before["shop-web-1"]
        assert after["shop-client-1"] != before["shop-client-1"]
        client = engine.containers.inspect("shop-client-1")
        assert "MODE=two" in client["Config"]["Env"]
        assert client["Config"]["Labels"][L.REPLACE] == "client-1"   # Docker Compose v2.40: service-number

        # scale up, then down: the highest numbers go first
        p.up(scale={"web": 3})
        assert [r.name for r in p.containers(["web"])] == ["shop-web-1", "shop-web-2", "shop-web-3"]
        assert _ids(p)["shop-web-1"] == before["shop-web-1"]
        assert _fetch(run_cli, "shop-client-1", "http://shop-web-3/") == "hello from web\n"
        p.up(scale={"web": 1})
        assert [r.name for r in p.containers(all=True)] == ["shop-client-1", "shop-web-1"]

        # a service gone from the model is an orphan: kept (with a warning), then removed on demand
        alone = copy.deepcopy(changed)
        del alone["services"]["client"]
        p = ComposeProject(engine, StandIn(alone, str(tmp_path)))
        warnings: list[tuple[str, str, str]] = []
        p.up(progress=lambda *a: warnings.append(a))
        assert any(kind == "Warning" and "shop-client-1" in name for kind, name, _ in warnings)
        assert "shop-client-1" in _ids(p)
        p.up(remove_orphans=True)
        assert list(_ids(p)) == ["shop-web-1"]
        bridge = net.bridge
        assert bridge in _links()

        # down with the file known leaves an orphan (with a warning) unless told to remove it
        ComposeProject(engine, StandIn(changed, str(tmp_path))).up()
        warnings.clear()
        p.down(progress=lambda *a: warnings.append(a))
        assert list(_ids(p)) == ["shop-client-1"]
        assert any(kind == "Warning" and name == "shop-client-1" for kind, name, _ in warnings)
        p.down(remove_orphans=True)
        assert _ids(p) == {}
        assert engine.volumes.get("shop_data")   # no -v: named volumes stay
    finally:
        ComposeProject.by_name(engine, "shop").down(volumes=True)
    # down -v by labels alone leaves nothing of the project
    assert engine.containers.list(all=True) == []
    assert [n.name for n in engine.networks.list()] == ["bridge", "host", "none"]
    assert engine.volumes.list() == []
    assert bridge not in _links()
    assert list_projects(engine, all=True) == []


def test_health_and_completion_gate_dependents(engine: Engine, tmp_path: Path) -> None:
    model = _model("gate", {
        "db": _svc("sleep 2; touch /tmp/ready; exec sleep 1000", healthcheck={
            "test": ["CMD-SHELL", "test -f /tmp/ready"], "interval": "500ms", "timeout": "2s", "retries": 30}),
        "init": _svc("sleep 1; echo seeded > /data/seed", volumes=[
            {"type": "volume", "source": "data", "target": "/data", "volume": {}}]),
        "app": _svc("exec sleep 1000", volumes=[{"type": "volume", "source": "data", "target": "/data",
                                                 "volume": {}}],
                    depends_on={"db": {"condition": "service_healthy", "required": True},
                                "init": {"condition": "service_completed_successfully", "required": True}}),
    }, volumes={"data": {"name": "gate_data"}})
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up(wait=True, wait_timeout=60)
        db = engine.containers.inspect("gate-db-1")
        init = engine.containers.inspect("gate-init-1")
        app = engine.containers.inspect("gate-app-1")
        assert db["State"]["Health"]["Status"] == "healthy"
        healthy_at = min(entry["End"] for entry in db["State"]["Health"]["Log"] if entry["ExitCode"] == 0)
        assert app["State"]["StartedAt"] > healthy_at, (app["State"]["StartedAt"], healthy_at)
        assert init["State"]["Status"] == "exited" and init["State"]["ExitCode"] == 0
        assert app["State"]["StartedAt"] > init["State"]["FinishedAt"]
        assert app["State"]["Running"]
        # the dependency's work is there for the dependent (the same named volume)
        with open(os.path.join(engine.volumes.get("gate_data").mountpoint, "seed")) as f:
            assert f.read() == "seeded\n"
    finally:
        p.down(volumes=True)
    assert engine.containers.list(all=True) == [] and engine.volumes.list() == []


def test_unhealthy_dependency_fails_and_dependent_is_not_created(engine: Engine, tmp_path: Path) -> None:
    model = _model("sick", {
        "db": _svc("exec sleep 1000", healthcheck={"test": ["CMD", "false"], "interval": "300ms", "retries": 1}),
        "app": _svc("exec sleep 1000", depends_on={"db": {"condition": "service_healthy", "required": True}}),
        "opt": _svc("exec sleep 1000", depends_on={"db": {"condition": "service_healthy", "required": False}}),
    })
    seen: list[tuple[str, str, str]] = []
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        with pytest.raises(ProjectError, match="dependency failed to start: container sick-db-1 is unhealthy"):
            p.up(progress=lambda *a: seen.append(a))
        # required: false: the dependent starts all the same, the dependency marked skipped
        assert [(r.name, r.status) for r in p.containers(all=True)] == [("sick-db-1", "running"),
                                                                         ("sick-opt-1", "running")]
        assert ("Container", "sick-db-1", "Skipped") in seen
    finally:
        p.down()
    assert engine.containers.list(all=True) == []


def test_invalid_project_starts_nothing(engine: Engine, tmp_path: Path) -> None:
    unsupported = _model("bad", {"web": _svc("true", gpus=[{"driver": "nvidia"}]), "db": _svc("true")})
    with pytest.raises(Exception, match=r"services\.web\.gpus is not supported by dockyard"):
        ComposeProject(engine, StandIn(unsupported, str(tmp_path))).up()
    cycle = _model("bad", {"a": _svc("true", depends_on={"b": {"condition": "service_started"}}),
                           "b": _svc("true", depends_on={"a": {"condition": "service_started"}})})
    with pytest.raises(ProjectError, match="dependency cycle detected"):
        ComposeProject(engine, StandIn(cycle, str(tmp_path))).up()
    assert engine.containers.list(all=True) == []
    assert [n.name for n in engine.networks.list()] == ["bridge", "host", "none"]


def test_port_published_and_oneoff_run(engine: Engine, tmp_path: Path,
                                       run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("published\n")
    model = _model("pub", {"web": _svc("exec httpd -f -p 80 -h /www", ports=[
        {"mode": "ingress", "target": 80, "published": str(port), "protocol": "tcp", "host_ip": "127.0.0.1"}],
        volumes=[{"type": "bind", "source": str(www), "target": "/www", "bind": {"create_host_path": True}}])})
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up()
        assert p.port("web", 80) == f"127.0.0.1:{port}"
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 10
        while True:   # started is not listening yet: httpd binds its port a moment later
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.read() == b"published\n"
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        run = p.create_oneoff("web", ["wget", "-qO-", "http://web/"])
        assert run.name.startswith("pub-web-run-") and len(run.name) == len("pub-web-run-") + 12
        labels = run.container_config["Labels"]
        assert labels[L.ONEOFF] == "True" and labels[L.SERVICE] == "web"
        assert not run.host_config.get("PortBindings")
        out = run_cli("start", "-a", run.name, check=True)
        assert out.stdout == "published\n"
        assert [r.name for r in p.containers(all=True)] == ["pub-web-1"]
        assert len(p.containers(all=True, oneoff=True)) == 2
        # an up again keeps the port its own container holds
        p.up()
        assert [r.name for r in p.containers()] == ["pub-web-1"]
        # a second project publishing the same port fails before anything is made, naming the port
        published = {"mode": "ingress", "target": 80, "published": str(port), "protocol": "tcp",
                     "host_ip": "127.0.0.1"}
        clash = _model("clash", {"db": _svc("exec sleep 1000"), "web": _svc("exec sleep 1000", ports=[published])})
        with pytest.raises(ProjectError, match=rf"^services\.web\.ports\[0\]: Error starting userland proxy: "
                                               rf"listen tcp4 127\.0\.0\.1:{port}: bind: address already in use$"):
            ComposeProject(engine, StandIn(clash, str(tmp_path))).up()
        assert ComposeProject.by_name(engine, "clash").containers(all=True) == []
        assert "clash_default" not in [n.name for n in engine.networks.list()]
        # so does a port published twice in one project (on all addresses and on one of them)
        twice = _model("twice", {"a": _svc("true", ports=[{**published, "host_ip": "", "published": "18999"}]),
                                 "b": _svc("true", ports=[{**published, "published": "18999"}])})
        with pytest.raises(ProjectError, match=r"^services\.b\.ports\[0\]: Bind for 127\.0\.0\.1:18999 failed: "
                                               r"port is already allocated \(services\.a\.ports\[0\] publishes it too\)$"):
            ComposeProject(engine, StandIn(twice, str(tmp_path))).up()
        assert "twice_default" not in [n.name for n in engine.networks.list()]
    finally:
        ComposeProject.by_name(engine, "clash").down()
        p.down()
    assert engine.containers.list(all=True) == []


def test_recreate_keeps_anonymous_volumes_and_network_mode_service(
        engine: Engine, busybox_tar: Path, tmp_path: Path,
        run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    engine.images.import_(str(busybox_tar), "busyvol", ['CMD ["sh"]', "VOLUME /vol"])
    model = _model("keep", {
        "db": {**_svc("exec sleep 1000", volumes=[{"type": "volume", "target": "/anon", "volume": {}}]),
               "image": "busyvol", "restart": "always"},
        "side": {"image": "busybox", "command": ["sleep", "1000"], "stop_signal": "SIGKILL",
                 "network_mode": "service:db"},
    })
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up()
        run_cli("exec", "keep-db-1", "sh", "-c", "echo a > /anon/f; echo v > /vol/f", check=True)
        db = engine.containers.get("keep-db-1")
        side = engine.containers.inspect("keep-side-1")
        assert side["HostConfig"]["NetworkMode"] == f"container:{db.id}"
        changed = copy.deepcopy(model)
        changed["services"]["db"]["environment"] = {"V": "2"}
        p = ComposeProject(engine, StandIn(changed, str(tmp_path)))
        p.up()
        new_db = engine.containers.get("keep-db-1")
        assert new_db.id != db.id
        # the service sharing db's network namespace follows it to the new container
        assert engine.containers.inspect("keep-side-1")["HostConfig"]["NetworkMode"] == f"container:{new_db.id}"
        out = run_cli("exec", "keep-db-1", "cat", "/anon/f", "/vol/f", check=True)
        assert out.stdout == "a\nv\n"
        # a one-off with --rm drops the service's restart policy (the engine refuses both)
        run = p.create_oneoff("db", ["true"], remove=True)
        assert run.host_config["AutoRemove"] and run.host_config["RestartPolicy"]["Name"] == "no"
    finally:
        p.down(volumes=True)
    assert engine.containers.list(all=True) == [] and engine.volumes.list() == []


def test_names_with_underscores(engine: Engine, tmp_path: Path,
                                run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Compose project and service names may hold ``_`` (dockerd takes such aliases): up works,
    the service is reached by its container name and by its service name, with no warning."""
    model = _model("my_app", {
        "web_app": _svc("echo ok > /tmp/index.html; exec httpd -f -p 80 -h /tmp"),
        "client": _svc("exec sleep 1000"),
    })
    seen: list[tuple[str, str, str]] = []
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up(progress=lambda *a: seen.append(a))
        assert [r.name for r in p.containers()] == ["my_app-client-1", "my_app-web_app-1"]
        assert not [event for event in seen if event[0] == "Warning"]
        assert _fetch(run_cli, "my_app-client-1", "http://my_app-web_app-1/") == "ok\n"
        assert _fetch(run_cli, "my_app-client-1", "http://web_app/") == "ok\n"
    finally:
        p.down()
    assert engine.containers.list(all=True) == []


def test_down_stops_a_step_at_once_dependents_first(engine: Engine, tmp_path: Path) -> None:
    """Shells that ignore SIGTERM (PID 1) wait out their 2 s stop timeout together: the project
    goes down in about one timeout per dependency step, not one per container; and by name
    alone the depends_on labels keep the order (web stopped before db)."""
    import time

    stubborn = {"image": "busybox", "command": ["sleep", "1000"], "stop_grace_period": "2s",
                "networks": {"default": None}}
    model = _model("slow", {
        "db": dict(stubborn),
        "web": {**stubborn, "deploy": {"replicas": 3},
                "depends_on": {"db": {"condition": "service_started", "required": True}}},
    })
    ComposeProject(engine, StandIn(model, str(tmp_path))).up()
    seen: list[tuple[float, str, str]] = []
    started = time.monotonic()
    ComposeProject.by_name(engine, "slow").down(
        progress=lambda kind, name, state: seen.append((time.monotonic() - started, name, state)))
    elapsed = time.monotonic() - started
    assert engine.containers.list(all=True) == []
    assert 3.5 < elapsed < 7, elapsed   # two steps of 2 s (web's three at once, then db), not 8 s
    stopped = {name: at for at, name, state in seen if state == "Stopped"}
    assert max(stopped[f"slow-web-{n}"] for n in (1, 2, 3)) < stopped["slow-db-1"]


def test_force_recreate_and_no_recreate(engine: Engine, tmp_path: Path) -> None:
    model = _model("flags", {"one": _svc("exec sleep 1000", environment={"V": "1"})})
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up()
        first = _ids(p)["flags-one-1"]
        p.up(force_recreate=True)   # unchanged, recreated all the same
        second = _ids(p)["flags-one-1"]
        assert second != first
        changed = copy.deepcopy(model)
        changed["services"]["one"]["environment"] = {"V": "2"}
        p = ComposeProject(engine, StandIn(changed, str(tmp_path)))
        p.up(no_recreate=True)   # changed, kept all the same
        assert _ids(p)["flags-one-1"] == second
        p.up(no_start=True)      # recreated, not started
        third = engine.containers.get("flags-one-1")
        assert third.id != second and third.status == "created"
        assert "V=2" in third.container_config["Env"]
        p.start()
        assert engine.containers.get("flags-one-1").status == "running"
    finally:
        p.down()
    assert engine.containers.list(all=True) == []
