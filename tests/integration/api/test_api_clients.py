"""Real clients against dockyard's API service: docker-py 7 (its high-level API), testcontainers
(a container with a published port and a wait strategy) and docker-compose 1.29 (a two-service
project on its own network with a named volume). What they made is what the dockyard CLI sees."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

docker = pytest.importorskip("docker", reason="docker-py is installed by make deps")


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


@pytest.fixture
def client(api):
    c = docker.DockerClient(base_url=api.url, timeout=120)
    try:
        yield c
    finally:
        c.close()


# ---------------------------------------------------------------- docker-py

def test_docker_py_version_ping_and_images(client) -> None:
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.41" and version["Os"] == "linux"
    tags = [tag for image in client.images.list() for tag in image.tags]
    assert "busybox:latest" in tags
    image = client.images.get("busybox")
    assert image.tags == ["busybox:latest"] and image.id.startswith("sha256:")


def test_docker_py_run_attached_and_detached(client, run_cli) -> None:
    assert client.containers.run("busybox", ["echo", "hello from docker-py"], remove=True) == b"hello from docker-py\n"
    container = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line $i; done; exit 3"],
                                      detach=True, name="pydetached")
    try:
        lines = b"".join(container.logs(stream=True, follow=True))
        assert lines == b"line 1\nline 2\nline 3\n"
        assert container.wait(timeout=60)["StatusCode"] == 3
        assert "pydetached" in ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()
    finally:
        container.remove(force=True)
    assert "pydetached" not in ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()


def test_docker_py_container_lifecycle_exec_and_archives(client, run_cli) -> None:
    container = client.containers.create("busybox", ["sleep", "300"], name="pylife", labels={"walk": "py"})
    try:
        assert [c.name for c in client.containers.list(all=True, filters={"label": "walk=py"})] == ["pylife"]
        assert client.containers.list() == []
        container.start()
        container.reload()
        assert container.status == "running"
        assert [c.name for c in client.containers.list()] == ["pylife"]
        assert client.containers.get("pylife").id == container.id
        assert "pylife" in ok(run_cli("ps", "--format", "{{.Names}}")).split()

        result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert result.exit_code == 7 and b"out\n" in result.output and b"err\n" in result.output
        assert container.exec_run("cat /etc/hostname").output.decode().strip() == container.id[:12]

        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            payload = b"put by docker-py\n"
            info = tarfile.TarInfo("hello.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        assert container.put_archive("/tmp", data.getvalue()) is True
        assert container.exec_run("cat /tmp/hello.txt").output == b"put by docker-py\n"
        stream, stat = container.get_archive("/tmp/hello.txt")
        assert stat["name"] == "hello.txt" and stat["size"] == len(b"put by docker-py\n")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            assert tar.extractfile("hello.txt").read() == b"put by docker-py\n"

        container.kill(signal="SIGKILL")
        assert container.wait(timeout=30)["StatusCode"] == 137
        container.reload()
        assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 137
        assert ok(run_cli("inspect", "--format", "{{.State.ExitCode}}", "pylife")).strip() == "137"
    finally:
        container.remove(force=True)
    stopped = client.containers.run("busybox", ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"],
                                    detach=True, name="pystop")
    try:
        deadline = time.monotonic() + 30   # the trap is set: SIGTERM ends it (PID 1 without one ignores it)
        while b"ready" not in stopped.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped.stop(timeout=10)
        stopped.reload()
        assert stopped.status == "exited" and stopped.attrs["State"]["ExitCode"] == 0
    finally:
        stopped.remove(force=True)


def test_docker_py_starts_a_stopped_container_again(client) -> None:
    container = client.containers.create("busybox", ["sleep", "300"], name="pyagain")
    try:
        container.start()
        container.stop(timeout=1)
        container.start()
        time.sleep(0.5)
        container.reload()
        assert container.status == "running", container.attrs["State"]
    finally:
        container.remove(force=True)


def test_docker_py_networks_and_volumes(client, run_cli) -> None:
    network = client.networks.create("pynet", driver="bridge", labels={"walk": "py"},
                                     ipam=docker.types.IPAMConfig(pool_configs=[
                                         docker.types.IPAMPool(subnet="10.231.20.0/24")]))
    volume = client.volumes.create("pyvol", labels={"walk": "py"})
    container = client.containers.create("busybox", ["sleep", "300"], name="pynetuser",
                                         mounts=[docker.types.Mount("/data", "pyvol")])
    try:
        assert "pynet" in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
        assert [n.name for n in client.networks.list(filters={"label": "walk=py"})] == ["pynet"]
        network.connect(container, aliases=["pyalias"], ipv4_address="10.231.20.33")
        network.reload()
        container.start()
        assert "10.231.20.33/24" in container.exec_run("ip -4 addr").output.decode()
        network.reload()
        assert [c.name for c in network.containers] == ["pynetuser"]
        network.disconnect(container)
        assert [v.name for v in client.volumes.list(filters={"label": "walk=py"})] == ["pyvol"]
        assert client.volumes.get("pyvol").attrs["Labels"] == {"walk": "py"}
        container.exec_run(["sh", "-c", "echo kept > /data/f"])
    finally:
        container.remove(force=True)
    volume.reload()
    volume.remove()
    network.remove()
    assert "pynet" not in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
    assert "pyvol" not in ok(run_cli("volume", "ls", "-q")).split()


def test_docker_py_events_between_since_and_until(client, run_cli) -> None:
    since = time.time()
    ok(run_cli("volume", "create", "pyevent"))
    ok(run_cli("network", "create", "pyeventnet"))
    until = time.time() + 0.5
    events = list(client.events(since=since, until=until, decode=True))
    assert [(e["Type"], e["Action"]) for e in events] == [("volume", "create"), ("network", "create")]
    assert events[0]["Actor"]["ID"] == "pyevent"
    filtered = list(client.events(since=since, until=until, decode=True, filters={"type": "network"}))
    assert [e["Actor"]["Attributes"]["name"] for e in filtered] == ["pyeventnet"]


def _walk_networks_volumes_events(client) -> dict:
    """The same docker-py calls against either engine: what each answered."""
    since = time.time()
    network = client.networks.create("sidenet", labels={"walk": "side"}, check_duplicate=True,
                                     ipam=docker.types.IPAMConfig(pool_configs=[
                                         docker.types.IPAMPool(subnet="10.231.30.0/24")]))
    volume = None
    try:   # dockerd's bridges outlive it: the network goes even when a step fails
        volume = client.volumes.create("sidevol", labels={"walk": "side"},
                                       driver_opts={"type": "tmpfs", "device": "tmpfs"})
        with pytest.raises(docker.errors.APIError) as twice:
            client.networks.create("sidenet", check_duplicate=True)
        with pytest.raises(docker.errors.NotFound) as missing:
            client.volumes.get("no-such-volume")
        answers = {
            "network": client.networks.get("sidenet").attrs,
            "listed": [n.name for n in client.networks.list(filters={"label": "walk=side"})],
            "volume": client.volumes.get("sidevol").attrs,
            "volumes": [v.name for v in client.volumes.list(filters={"label": "walk=side"})],
            "twice": (twice.value.status_code, twice.value.explanation),
            "missing": (missing.value.status_code, missing.value.explanation),
        }
    finally:
        if volume is not None:
            volume.remove()
        network.remove()
    answers["events"] = [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name", e["Actor"]["ID"]))
                         for e in client.events(since=since, until=time.time() + 0.5, decode=True,
                                                filters={"type": ["network", "volume"]})]
    return answers


@pytest.fixture
def dockerd(docker):   # the conftest's private dockerd, under a name that leaves the docker module alone
    return docker


def test_docker_py_networks_volumes_events_as_dockerd_answers(client, dockerd) -> None:
    """docker-py's view of both engines: the same names, errors, events and attribute keys."""
    theirs_client = docker.DockerClient(base_url=dockerd.env["DOCKER_HOST"], timeout=120)
    try:
        theirs = _walk_networks_volumes_events(theirs_client)
    finally:
        theirs_client.close()
    ours = _walk_networks_volumes_events(client)
    for key in ("listed", "volumes", "twice", "missing", "events"):
        assert ours[key] == theirs[key], key
    assert set(ours["network"]) == set(theirs["network"]) and set(ours["volume"]) == set(theirs["volume"])
    for field in ("Name", "Driver", "Scope", "Labels", "Internal", "Containers"):
        assert ours["network"][field] == theirs["network"][field], field
    # dockerd echoes the IPAM Options a client sent (docker-py none: null; the docker CLI {}); dockyard
    # keeps no IPAM options and always shows {} for a user network.
    assert ours["network"]["IPAM"]["Config"] == theirs["network"]["IPAM"]["Config"]
    for field in ("Name", "Driver", "Labels", "Options", "Scope"):
        assert ours["volume"][field] == theirs["volume"][field], field


# ---------------------------------------------------------------- testcontainers

def test_testcontainers_busybox_httpd_on_a_published_port(api, monkeypatch, run_cli, tmp_path: Path) -> None:
    pytest.importorskip("testcontainers", reason="testcontainers is installed by make deps")
    monkeypatch.setenv("DOCKER_HOST", api.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (DockerContainer("busybox")
                 .with_command(["sh", "-c", "mkdir -p /www && echo served by busybox > /www/index.html && "
                                "echo listening && exec httpd -f -v -p 8080 -h /www"])
                 .with_exposed_ports(8080))
    with container:
        wait_for_logs(container, "listening", timeout=60)
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(8080))
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=5) as answer:
                    body = answer.read()
                break
            except OSError:
                time.sleep(0.2)
        assert body == b"served by busybox\n"
        name = container.get_wrapped_container().name
        assert name in ok(run_cli("ps", "--format", "{{.Names}}")).split()
    assert ok(run_cli("ps", "-aq")) == ""


# ---------------------------------------------------------------- docker-compose

COMPOSE_FILE = textwrap.dedent("""\
    version: "3.7"
    services:
      web:
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo composed > /www/index.html && exec httpd -f -p 80 -h /www"]
        volumes:
          - webdata:/data
      client:
        image: busybox
        depends_on: [web]
        command: ["sh", "-c", "for i in $$(seq 1 50); do wget -q -O - http://web/index.html && exit 0; sleep 0.2; done; exit 1"]
    volumes:
      webdata: {}
    """)


def test_docker_compose_up_ps_logs_down(api, run_cli, tmp_path: Path) -> None:
    compose = shutil.which("docker-compose") or "/usr/bin/docker-compose"
    if not os.path.exists(compose):
        pytest.skip("docker-compose 1.29 is installed by make deps")
    project = tmp_path / "walk"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**api.env, "COMPOSE_PROJECT_NAME": "walk"}

    def compose_run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([compose, *args], cwd=project, env=env, capture_output=True, text=True,
                              timeout=timeout)

    try:
        ok(compose_run("up", "-d"))
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = ok(run_cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "walk_client_1")).strip()
            if state.startswith("exited"):
                break
            time.sleep(0.3)
        assert state == "exited 0", ok(compose_run("logs"))
        ps = ok(compose_run("ps"))
        assert "walk_web_1" in ps and "Up" in ps and "walk_client_1" in ps and "Exit 0" in ps
        logs = ok(compose_run("logs", "--no-color", "client"))
        assert "composed" in logs
        assert sorted(ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()) == ["walk_client_1", "walk_web_1"]
        assert "walk_default" in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
        assert "walk_webdata" in ok(run_cli("volume", "ls", "-q")).split()
    finally:
        down = compose_run("down", "-v")
    ok(down)
    assert ok(run_cli("ps", "-aq")) == ""
    assert "walk_default" not in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
    assert ok(run_cli("volume", "ls", "-q")) == ""
