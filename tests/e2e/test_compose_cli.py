"""The WordPress lab as a compose project, brought up by ``dockyard compose`` itself
(examples/wordpress/compose.yaml, the file tests/e2e/test_compose_api.py runs through
docker-compose 1.29): ``up -d --wait`` returns with MariaDB healthy, the site answers through
Nginx on a free port, the views show the project, and ``down -v`` leaves nothing."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import EXAMPLES
from tests.e2e.test_labs import Lab, ok, wait_for_site

pytestmark = pytest.mark.e2e

PROJECT = "wpcli"


def test_wordpress_lab_with_dockyard_compose(lab: Lab, http_port: str) -> None:
    compose = ("compose", "-p", PROJECT, "-f", str(EXAMPLES / "wordpress" / "compose.yaml"))

    def run(*args: str, timeout: float = 600):  # noqa: ANN202 - a CompletedProcess
        return lab.dockyard(*compose, *args, timeout=timeout, HTTP_PORT=http_port)

    try:
        up = run("up", "-d", "--wait")
        assert up.returncode == 0, up.stdout + up.stderr
        progress = up.stderr.splitlines()
        assert f" Network {PROJECT}_default  Created" in progress and f" Volume {PROJECT}_db  Created" in progress
        assert f" Container {PROJECT}-mariadb-1  Healthy" in progress, up.stderr
        # wordpress waited for mariadb's health (depends_on: service_healthy) before it started
        assert progress.index(f" Container {PROJECT}-mariadb-1  Healthy") < \
            progress.index(f" Container {PROJECT}-wordpress-1  Started"), up.stderr
        health = ok(lab.dockyard("inspect", "--format", "{{.State.Health.Status}}", f"{PROJECT}-mariadb-1"))
        assert health.strip() == "healthy"

        page = wait_for_site(f"http://127.0.0.1:{http_port}/", timeout=180)
        assert "WordPress" in page

        rows = [json.loads(line) for line in ok(run("ps", "--format", "json")).splitlines()]
        assert [(r["Service"], r["State"]) for r in rows] == [
            ("mariadb", "running"), ("nginx", "running"), ("wordpress", "running")]
        assert rows[0]["Health"] == "healthy"
        assert rows[1]["Publishers"][0]["PublishedPort"] == int(http_port)
        assert f"{PROJECT}  " in ok(lab.dockyard("compose", "ls"))
        logs = ok(run("logs", "--no-color", "nginx"))
        assert "nginx-1  | " in logs and "GET / HTTP/1.1" in logs, logs[-2000:]
        tables = ok(run("exec", "-T", "mariadb", "mysql", "-u", "wp", "-p123", "db", "-e", "SELECT USER()"))
        assert "wp@localhost" in tables
    finally:
        down = run("down", "-v")
    assert down.returncode == 0, down.stderr
    assert ok(lab.dockyard("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q")) == ""
    assert f"{PROJECT}_default" not in ok(lab.dockyard("network", "ls", "--format", "{{.Name}}")).split()
    assert f"{PROJECT}_db" not in ok(lab.dockyard("volume", "ls", "-q")).split()


def test_demo_with_the_plain_command_variant(lab_env: dict[str, str]) -> None:
    """`DEMO_VARIANT=ip make demo`: lab 2 as the lesson's plain commands (lab.sh) instead of the
    default compose project, and `make demo-down` removes it."""
    import subprocess
    import sys

    from dockyard.testing.registry import free_port

    demo = EXAMPLES / "demo.py"
    http_port, registry_port = str(free_port()), str(free_port())
    env = {**lab_env, "HTTP_PORT": http_port, "REGISTRY_PORT": registry_port, "DEMO_VARIANT": "ip"}
    dockyard = lab_env["DOCKYARD"]
    try:
        result = subprocess.run([sys.executable, str(demo)], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "containers wired by ip" in result.stdout
        assert f"ok: Nginx on port {http_port} proxies to WordPress" in result.stdout
        names = subprocess.run([dockyard, "ps", "--format", "{{.Names}}"], env=env, capture_output=True,
                               text=True).stdout.split()
        assert sorted(names) == ["db", "ng", "registry", "wp"]
    finally:
        down = subprocess.run([sys.executable, str(demo), "--down"], env=env, capture_output=True, text=True,
                              timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    left = subprocess.run([dockyard, "ps", "-a", "--format", "{{.Names}}"], env=env, capture_output=True, text=True)
    assert left.stdout.split() == []
    volumes = subprocess.run([dockyard, "volume", "ls", "-q"], env=env, capture_output=True, text=True).stdout.split()
    assert "wp-db" not in volumes and "registry-data" not in volumes
