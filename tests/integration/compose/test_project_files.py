"""ComposeProject on projects loaded from compose files (model.load): a built service, secrets
and configs from files, environment, replicas, --wait, the ``restart: true`` dependent of a
recreated service, one-offs removed by down, and the labels alone enough for ps/stop/down."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from dockyard.compose import labels as L
from dockyard.compose.model import LoadOptions, load
from dockyard.compose.project import ComposeProject, list_projects
from dockyard.engine import Engine

pytestmark = pytest.mark.integration

COMPOSE = """
name: files
services:
  api:
    build:
      context: ./api
      args: {GREETING: hello}
      secrets: [token, {source: buildenv, target: fromenv}]
    environment:
      LEVEL: ${LEVEL:-info}
    secrets: [token]
    configs:
      - source: settings
        target: /etc/api.conf
    stop_signal: SIGKILL
    depends_on:
      db: {condition: service_healthy, restart: true}
  db:
    image: busybox
    command: sh -c 'touch /tmp/up; exec sleep 1000'
    environment: {VERSION: "1"}
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/up"], interval: 300ms, retries: 20}
    stop_signal: SIGKILL
    volumes: [dbdata:/var/lib/db]
  worker:
    image: busybox
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
    deploy: {replicas: 2}
volumes:
  dbdata: {}
secrets:
  token: {file: ./token.txt}
  buildenv: {environment: BUILD_SECRET}
configs:
  settings: {file: ./settings.conf}
"""

DOCKERFILE = """FROM busybox
ARG GREETING
RUN echo "$GREETING from the build" > /greeting
RUN --mount=type=secret,id=token --mount=type=secret,id=fromenv cat /run/secrets/token /run/secrets/fromenv > /seen
CMD ["sleep", "1000"]
"""


def _project(directory: Path, **environ: str) -> object:
    return load(LoadOptions(files=[str(directory / "compose.yaml")], environ={**os.environ, **environ}))


def test_built_service_secrets_configs_replicas_wait_restart_and_down(
        engine: Engine, tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "token.txt").write_text("s3cret\n")
    (tmp_path / "settings.conf").write_text("port=80\n")
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    seen: list[tuple[str, str, str]] = []
    p = ComposeProject(engine, _project(tmp_path, BUILD_SECRET="env-secret\n"))
    try:
        p.up(wait=True, wait_timeout=60, progress=lambda *a: seen.append(a))
        assert ("Image", "files-api", "Built") in seen
        assert [r.name for r in p.containers()] == ["files-api-1", "files-db-1", "files-worker-1",
                                                    "files-worker-2"]

        def cat(path: str) -> str:
            return run_cli("exec", "files-api-1", "cat", path, check=True).stdout

        assert cat("/greeting") == "hello from the build\n"
        assert cat("/seen") == "s3cret\nenv-secret\n"   # build secrets from a file and the environment
        assert cat("/run/secrets/token") == "s3cret\n"
        assert cat("/etc/api.conf") == "port=80\n"
        assert "LEVEL=info" in run_cli("exec", "files-api-1", "env", check=True).stdout
        api = engine.containers.inspect("files-api-1")
        assert api["Config"]["Image"] == "files-api"
        assert api["Config"]["Labels"][L.CONFIG_FILES] == str(tmp_path / "compose.yaml")
        assert api["Config"]["Labels"][L.WORKING_DIR] == str(tmp_path)
        assert api["Config"]["Labels"][L.DEPENDS_ON] == "db:service_healthy:true"

        # a second up: the built image is not built again, nothing is recreated
        ids = {r.name: r.id for r in p.containers(all=True)}
        seen.clear()
        p.up(progress=lambda *a: seen.append(a))
        assert not any(kind == "Image" for kind, _, _ in seen)
        assert {r.name: r.id for r in p.containers(all=True)} == ids

        # db changes: it is recreated; api (depends_on db with restart: true) is restarted, not recreated
        started = api["State"]["StartedAt"]
        (tmp_path / "compose.yaml").write_text(COMPOSE.replace('VERSION: "1"', 'VERSION: "2"'))
        p = ComposeProject(engine, _project(tmp_path, BUILD_SECRET="env-secret\n"))
        p.up()
        now = {r.name: r.id for r in p.containers(all=True)}
        assert now["files-db-1"] != ids["files-db-1"]
        assert now["files-api-1"] == ids["files-api-1"] and now["files-worker-1"] == ids["files-worker-1"]
        assert engine.containers.inspect("files-api-1")["State"]["StartedAt"] > started

        # a one-off and the verbs that need only the labels
        run = p.create_oneoff("worker", ["true"], remove=False)
        by_name = ComposeProject.by_name(engine, "files")
        assert {r.name for r in by_name.containers(all=True, oneoff=True)} == set(now) | {run.name}
        by_name.stop(["worker"])
        assert [r.name for r in by_name.containers()] == ["files-api-1", "files-db-1"]
        assert list_projects(engine) == [{"Name": "files", "Status": "created(1), exited(2), running(2)",
                                          "ConfigFiles": str(tmp_path / "compose.yaml")}]
    finally:
        ComposeProject.by_name(engine, "files").down(volumes=True, rmi="local")
    assert engine.containers.list(all=True) == []
    assert engine.volumes.list() == []
    assert engine.images.find("files-api") is None and engine.images.find("busybox") is not None
    assert [n.name for n in engine.networks.list()] == ["bridge", "host", "none"]


REFERENCES = """
name: refs
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo shared > /shared/x; exec sleep 1000"]
    stop_signal: SIGKILL
    volumes: [/shared]
  app:
    image: busybox
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
    links: ["db:database"]
    volumes_from: [db]
    secrets: [token]
    configs:
      - source: settings
        target: /tmp/conf/settings.conf
        mode: 0400
secrets:
  token: {environment: TOKEN}
configs:
  settings: {content: "a=1"}
"""


def test_links_volumes_from_and_secrets_from_environment_and_content(
        engine: Engine, tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    (tmp_path / "compose.yaml").write_text(REFERENCES)
    p = ComposeProject(engine, _project(tmp_path, TOKEN="from-the-environment"))
    try:
        p.up()

        def sh(command: str) -> str:
            return run_cli("exec", "refs-app-1", "sh", "-c", command, check=True).stdout

        assert sh("cat /run/secrets/token") == "from-the-environment"
        assert sh("cat /tmp/conf/settings.conf; stat -c %a /tmp/conf/settings.conf") == "a=1400\n"
        assert sh("stat -c %a /tmp") == "1777\n"   # the copy made /tmp/conf, and left /tmp as it was
        assert sh("cat /shared/x") == "shared\n"   # volumes_from: db's anonymous volume
        db = engine.containers.get("refs-db-1")
        app = engine.containers.inspect("refs-app-1")
        assert app["HostConfig"]["VolumesFrom"] == [db.id]
        address = engine.networks.address_of(db.id, engine.networks.get("refs_default").id)
        assert any(line.split()[0] == address and "database" in line.split() for line in sh("cat /etc/hosts").splitlines()
                   if line.strip())
        # db recreated: app follows it (its volumes_from names db's container by ID)
        (tmp_path / "compose.yaml").write_text(REFERENCES.replace("stop_signal: SIGKILL\n    volumes",
                                                                  "stop_signal: SIGKILL\n    user: root\n    volumes"))
        p = ComposeProject(engine, _project(tmp_path, TOKEN="from-the-environment"))
        p.up()
        new_db = engine.containers.get("refs-db-1")
        assert new_db.id != db.id
        assert engine.containers.inspect("refs-app-1")["HostConfig"]["VolumesFrom"] == [new_db.id]
    finally:
        p.down(volumes=True)
    assert engine.containers.list(all=True) == [] and engine.volumes.list() == []


def test_rebuilt_image_recreates_its_service(engine: Engine, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "Dockerfile").write_text("FROM busybox\nRUN date +%s%N > /built\nCMD [\"sleep\", \"1000\"]\n")
    (tmp_path / "compose.yaml").write_text("services:\n  api:\n    build: ./api\n    stop_signal: SIGKILL\n")
    p = ComposeProject(engine, _project(tmp_path))
    try:
        p.up()
        first = engine.containers.get(f"{p.name}-api-1")
        capfd.readouterr()
        p.build(no_cache=True)
        assert "RUN date +%s%N > /built" in capfd.readouterr().err   # the build's own output
        p.build(no_cache=True, quiet=True)
        assert capfd.readouterr().err == ""
        assert engine.images.get(f"{p.name}-api").id != first.image_id
        p.up()   # same config, new image: recreated
        second = engine.containers.get(f"{p.name}-api-1")
        assert second.id != first.id and second.image_id == engine.images.get(f"{p.name}-api").id
        assert second.container_config["Labels"][L.IMAGE] == second.image_id
    finally:
        p.down(rmi="local")
    assert engine.containers.list(all=True) == []
