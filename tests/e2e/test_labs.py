"""The two labs end to end, as a reader of the lesson runs them, with dockyard in place of docker.

Real everything: the images are built here from Debian packages (tests/e2e/conftest.py), the
containers run under pyrunc or crun on the kernel, WordPress is installed and written to over
HTTP through Nginx's published port, MariaDB is asked what it stored, and Debian's chromium
loads the site.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.integration.test_registry_clients import podman_env  # noqa: F401 - a fixture

Lab = Callable[..., subprocess.CompletedProcess[str]]
RUNTIMES = ["pyrunc", "crun"]
ADMIN_PASSWORD = "Lab-Passw0rd!"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def get(url: str, timeout: float = 30) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def fetch(url: str, timeout: float = 30) -> tuple[int, Any, str]:
    """(status, headers, body) of a GET, errors included; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")
    except OSError as e:
        return 0, {}, str(e)


def title(html: str) -> str:
    found = re.search(r"<title>([^<]*)", html)
    return found[1] if found else ""


# ---------------------------------------------------------------- lab 1: a private registry

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_registry_lab_twice_from_a_clean_state(lab: Lab, runtime: str) -> None:
    port = str(_free_port())
    for _ in range(2):
        out = ok(lab("registry/lab.sh", runtime=runtime, REGISTRY_PORT=port))
        for check in ("push reported the manifest digest", "rmi removed the tag", "pulled it back",
                      "the catalog lists nginx", "nginx has the tag alpine",
                      "the recreated registry still has nginx:alpine", "pulled from the recreated registry"):
            assert f"ok: {check}" in out
        ps = ok(lab.dockyard("ps", "--format", "{{.Names}} {{.Ports}}"))
        assert f"registry 0.0.0.0:{port}->5000/tcp" in ps
        inspect = json.loads(ok(lab.dockyard("inspect", "registry")))[0]
        assert inspect["HostConfig"]["Runtime"] == runtime
    catalog = json.loads(get(f"http://127.0.0.1:{port}/v2/_catalog"))
    assert catalog == {"repositories": ["nginx"]}
    ok(lab("registry/lab.sh", "down"))
    assert "registry" not in ok(lab.dockyard("ps", "-a", "--format", "{{.Names}}")).split()


def test_registry_lab_serves_skopeo_and_podman(lab: Lab, podman_env: list[str], tmp_path: Path) -> None:  # noqa: F811
    port = str(_free_port())
    ok(lab("registry/lab.sh", REGISTRY_PORT=port))
    ref = f"127.0.0.1:{port}/nginx:alpine"
    local_id = ok(lab.dockyard("image", "inspect", "--format", "{{.Id}}", ref)).strip()
    inspected = json.loads(ok(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                                             capture_output=True, text=True, timeout=120)))
    assert inspected["Name"] == f"127.0.0.1:{port}/nginx"
    config = json.loads(ok(subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{ref}"],
                                          capture_output=True, text=True, timeout=120)))
    assert config["config"]["Cmd"] == ["nginx", "-g", "daemon off;"]
    ok(subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:x"],
                      capture_output=True, text=True, timeout=300))
    env = {**os.environ, "REGISTRIES_CONFIG_PATH": "/dev/null", "CONTAINERS_REGISTRIES_CONF": "/dev/null"}
    ok(subprocess.run([*podman_env, "pull", "--tls-verify=false", ref], capture_output=True, text=True, env=env,
                      timeout=300))
    podman_id = ok(subprocess.run([*podman_env, "image", "inspect", "--format", "{{.Id}}", ref],
                                  capture_output=True, text=True, env=env)).strip()
    assert "sha256:" + podman_id == local_id  # the same image config, byte for byte


# ---------------------------------------------------------------- lab 2: WordPress

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wordpress_lab_by_address_twice_from_a_clean_state(lab: Lab, runtime: str, http_port: str) -> None:
    for _ in range(2):
        out = ok(lab("wordpress/lab.sh", "ip", runtime=runtime, HTTP_PORT=http_port))
        assert "ok: mysql -u wp logs in to database db" in out
        assert f"ok: Nginx on port {http_port} proxies to WordPress" in out
        db_ip = ok(lab.dockyard("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "db")).strip()
        assert f"--env WORDPRESS_DB_HOST={db_ip} " in out  # the address `inspect | grep IPAddress` gave
        assert title(get(f"http://127.0.0.1:{http_port}/wp-admin/install.php")) == "WordPress &rsaquo; Installation"
        for name in ("db", "wp", "ng"):
            assert json.loads(ok(lab.dockyard("inspect", name)))[0]["HostConfig"]["Runtime"] == runtime


@pytest.mark.parametrize("variant", ["network", "link"])
def test_wordpress_lab_by_name(lab: Lab, variant: str, http_port: str) -> None:
    for _ in range(2):
        out = ok(lab("wordpress/lab.sh", variant, HTTP_PORT=http_port))
        assert f"ok: Nginx on port {http_port} proxies to WordPress" in out
    conf = (Path(lab.env["LAB_DIR"]) / "wp.conf").read_text()
    assert "proxy_pass http://wp1;" in conf  # by name: the network's DNS or the link's hosts entry
    if variant == "network":
        nets = json.loads(ok(lab.dockyard("inspect", "--format", "{{json .NetworkSettings.Networks}}", "wp1")))
        assert list(nets) == ["wp-net"]
    else:
        hosts = ok(lab.dockyard("exec", "ng1", "cat", "/etc/hosts"))
        assert re.search(r"^\S+\s+wp1\b", hosts, re.M), hosts


def install_wordpress(url: str) -> None:
    form = urllib.parse.urlencode({
        "weblog_title": "WP Lab", "user_name": "admin", "admin_password": ADMIN_PASSWORD,
        "admin_password2": ADMIN_PASSWORD, "pw_weak": "1", "admin_email": "admin@example.com", "blog_public": "0",
        "Submit": "Install WordPress", "language": ""}).encode()
    with urllib.request.urlopen(f"{url}wp-admin/install.php?step=2", form, timeout=120) as resp:
        body = resp.read().decode()
    assert "<h1>Success!</h1>" in body, body[-2000:]


def new_post(url: str, post_title: str) -> int:
    """A post, published over XML-RPC (an HTTP POST with the admin's password)."""
    rpc: Any = xmlrpc.client.ServerProxy(f"{url}xmlrpc.php")
    return int(rpc.wp.newPost(1, "admin", ADMIN_PASSWORD, {
        "post_title": post_title, "post_content": "Written through Nginx and WordPress into MariaDB.",
        "post_status": "publish"}))


def posts_in_db(lab: Lab, container: str) -> list[str]:
    out = ok(lab.dockyard("exec", container, "mysql", "-u", "wp", "-p123", "db", "--batch", "--skip-column-names",
                          "-e", "SELECT post_title FROM wp_posts WHERE post_type = 'post' AND post_status = 'publish'"))
    return out.splitlines()


def chromium(url: str, out: Path) -> str:
    """Load ``url`` in headless chromium: save a screenshot to ``out``, return the rendered DOM."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium not installed: run `make deps`")
    with tempfile.TemporaryDirectory(prefix="dy-chromium-") as profile:
        # Root needs --no-sandbox; the rest keeps the browser off every network but the site's.
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                 f"--user-data-dir={profile}", "--window-size=1280,1024"]
        shot = subprocess.run([browser, *flags, f"--screenshot={out}", url], capture_output=True, text=True,
                              timeout=120)
        assert shot.returncode == 0 and out.exists(), shot.stderr[-2000:]
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def run_stack(lab: Lab, http_port: str) -> None:
    """The network variant's three `run`s, by hand: what a reader types to recreate them."""
    conf = str(Path(lab.env["LAB_DIR"]) / "wp.conf")
    ok(lab.dockyard("run", "-d", "--name", "db1", "--network", "wp-net", "-e", "MARIADB_DATABASE=db",
                    "-e", "MARIADB_USER=wp", "-e", "MARIADB_PASSWORD=123", "-e", "MARIADB_ROOT_PASSWORD=123",
                    "-v", "wp-db:/var/lib/mysql", "mariadb:10"))
    ok(lab.dockyard("run", "-d", "--name", "wp1", "--network", "wp-net", "-e", "WORDPRESS_DB_HOST=db1",
                    "-e", "WORDPRESS_DB_USER=wp", "-e", "WORDPRESS_DB_PASSWORD=123", "-e", "WORDPRESS_DB_NAME=db",
                    "wordpress:5"))
    ok(lab.dockyard("run", "-d", "--name", "ng1", "--network", "wp-net", "-p", f"{http_port}:80",
                    "-v", f"{conf}:/etc/nginx/conf.d/default.conf", "nginx:alpine"))


def wait_for_site(url: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(url)
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_wordpress_installed_posted_browsed_and_recreated(lab: Lab, http_port: str) -> None:
    ok(lab("wordpress/lab.sh", "network", HTTP_PORT=http_port))
    url = f"http://127.0.0.1:{http_port}/"
    assert title(get(url)) == "WordPress &rsaquo; Installation"  # redirected there through Nginx
    install_wordpress(url)
    post_id = new_post(url, "Hello from dockyard")
    assert post_id > 0
    assert "Hello from dockyard" in posts_in_db(lab, "db1")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = chromium(url, ARTIFACTS / "wordpress-front-page.png")
    assert "<title>WP Lab</title>" in dom
    assert "Hello from dockyard" in dom
    png = (ARTIFACTS / "wordpress-front-page.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000  # a rendered page, not a blank one

    # Remove and recreate all three; MariaDB keeps its volume, and so the site keeps its data.
    ok(lab.dockyard("rm", "-f", "ng1", "wp1", "db1"))
    assert "wp-db" in ok(lab.dockyard("volume", "ls", "-q")).split()
    run_stack(lab, http_port)
    front = wait_for_site(url)
    assert title(front) == "WP Lab"
    assert "Hello from dockyard" in front
    assert "Hello from dockyard" in posts_in_db(lab, "db1")
    assert f'href="{url}?p={post_id}"' in front or f"?p={post_id}" in front


def test_an_editor_replacing_wp_conf_is_warned_about(lab: Lab, http_port: str) -> None:
    ok(lab("wordpress/lab.sh", "network", HTTP_PORT=http_port))
    conf = Path(lab.env["LAB_DIR"]) / "wp.conf"
    url = f"http://127.0.0.1:{http_port}/"
    # An editor that saves by writing a new file and renaming it over the old one (vim, sed -i):
    # the container's bind mount still shows the old inode.
    edited = conf.with_name(".wp.conf.swp")
    edited.write_text(conf.read_text().replace("location / {", "location / {\n        add_header X-Lab edited always;"))
    os.replace(edited, conf)
    reload = lab.dockyard("exec", "ng1", "nginx", "-s", "reload")
    assert reload.returncode == 0, reload.stderr
    assert f"WARNING: {conf} was replaced on the host after container ng1 started" in reload.stderr
    # What is checked is Nginx's own header (`always`: on any status), so the answer does not
    # depend on WordPress reaching its database at that moment.
    time.sleep(0.5)
    status, headers, body = fetch(url + "wp-admin/install.php")
    assert status != 0, body
    assert headers.get("X-Lab") is None  # nginx re-read the old file
    ok(lab.dockyard("restart", "ng1"))  # a restart mounts the file the path names now
    deadline = time.monotonic() + 30
    while (answer := fetch(url + "wp-admin/install.php"))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, headers, body = answer
    assert status != 0, body
    assert headers.get("X-Lab") == "edited"
    assert "WARNING" not in lab.dockyard("exec", "ng1", "true").stderr


def test_mariadb_without_a_password_says_why_it_exited(lab: Lab) -> None:
    result = lab.dockyard("run", "-d", "--name", "db-no-password", "-e", "MARIADB_DATABASE=db", "mariadb:10",
                          DOCKYARD_EARLY_EXIT_WINDOW="10")
    try:
        assert "exited with code 1" in result.stderr, result.stderr
        assert "You need to specify one of MARIADB_ROOT_PASSWORD" in result.stderr
        state = ok(lab.dockyard("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "db-no-password"))
        assert state.split() == ["exited", "1"]
    finally:
        lab.dockyard("rm", "-f", "db-no-password")


def _free_port() -> int:
    from dockyard.testing.registry import free_port

    return free_port()


def test_mysql_prompt_through_exec_it(lab: Lab, http_port: str) -> None:
    """The lesson's `dockyard exec -it <id> mysql -u wp -p`, typed at a terminal."""
    import pty
    import select

    ok(lab("wordpress/lab.sh", "ip", HTTP_PORT=http_port))
    db_id = ok(lab.dockyard("ps", "-q", "--filter", "name=^db$")).strip()
    master, slave = pty.openpty()
    proc = subprocess.Popen([lab.env["DOCKYARD"], "exec", "-it", db_id, "mysql", "-u", "wp", "-p"], env=lab.env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {seen[-800:]!r}"
            if select.select([master], [], [], left)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # the terminal closed: the process ended
                    assert marker in seen, f"no {marker!r} in {seen[-800:]!r}"

    try:
        read_until(b"Enter password:")
        os.write(master, b"123\r")
        read_until(b"MariaDB [(none)]>")
        os.write(master, b"SELECT CONCAT('answer=', 6*7) AS x;\r")
        read_until(b"answer=42")
        os.write(master, b"exit\r")
        read_until(b"Bye")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
