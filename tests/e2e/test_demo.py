"""`make demo` brings both labs up and `make demo-down` takes them away: the demo must keep working.

It runs in the e2e session's root, whose images the fixture built (the cold path of the demo's
first step); so here the demo's image step is the warm one a second `make demo` takes.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from dockyard.testing.registry import free_port

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_up_and_down(lab_env: dict[str, str]) -> None:
    http_port, registry_port = str(free_port()), str(free_port())
    env = {**lab_env, "HTTP_PORT": http_port, "REGISTRY_PORT": registry_port}
    dockyard = lab_env["DOCKYARD"]
    try:
        result = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        out = result.stdout
        assert "up to date" in out  # the base was not imported again
        assert result.stderr.count(" CACHED") >= 4  # nor any image rebuilt (progress goes to stderr)
        assert "ok: pulled it back" in out and "ok: the catalog lists nginx" in out
        assert f"ok: Nginx on port {http_port} proxies to WordPress" in out
        assert f"WordPress:  http://127.0.0.1:{http_port}/" in out
        # lab 2 is the compose project by default, mariadb health-gated
        assert "dockyard compose -f examples/wordpress/compose.yaml up -d --wait" in out
        assert " Container wordpress-mariadb-1  Healthy" in result.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=30) as resp:
            assert "<title>WordPress &rsaquo; Installation</title>" in resp.read().decode()
        names = subprocess.run([dockyard, "ps", "--format", "{{.Names}}"], env=env, capture_output=True,
                               text=True).stdout.split()
        if sorted(names) != ["registry", "wordpress-mariadb-1", "wordpress-nginx-1",
                             "wordpress-wordpress-1"]:  # say why a container is gone
            every = subprocess.run([dockyard, "ps", "-a", "--format", "{{.Names}}: {{.Status}}"], env=env,
                                   capture_output=True, text=True).stdout
            logs = subprocess.run([dockyard, "logs", "--tail", "30", "registry"], env=env, capture_output=True,
                                  text=True)
            state = subprocess.run([dockyard, "inspect", "--format", "{{json .State}}", "registry"], env=env,
                                   capture_output=True, text=True).stdout
            raise AssertionError(f"running: {names}\n{every}\nregistry: {state}\n{logs.stdout[-3000:]}"
                                 f"{logs.stderr[-3000:]}\ndemo output:\n{result.stdout[-3000:]}")
    finally:
        down = subprocess.run([sys.executable, str(DEMO), "--down"], env=env, capture_output=True, text=True,
                              timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    left = subprocess.run([dockyard, "ps", "-a", "--format", "{{.Names}}"], env=env, capture_output=True, text=True)
    assert left.stdout.split() == []
    volumes = subprocess.run([dockyard, "volume", "ls", "-q"], env=env, capture_output=True, text=True).stdout.split()
    assert "wordpress_db" not in volumes and "registry-data" not in volumes
