"""The image routes and /auth through Debian's docker CLI 20.10, beside dockerd where shapes matter."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ID = re.compile(r"sha256:[0-9a-f]{64}")


def ok(result: subprocess.CompletedProcess, api=None) -> str:
    assert result.returncode == 0, (result.stderr, api.logs()[-3000:] if api else "")
    return result.stdout


def keys(text: str) -> set[str]:
    return set(json.loads(text.splitlines()[0]))


# ---------------------------------------------------------------- list, inspect, history

def test_docker_images_table_quiet_and_json_keys_match_dockerd(api, docker) -> None:
    table = ok(api.docker("images"), api).splitlines()
    theirs = docker.cli("images").splitlines()
    assert table[0].split() == theirs[0].split()   # REPOSITORY TAG IMAGE ID CREATED SIZE (widths follow the rows)
    assert table[1].split()[:2] == ["busybox", "latest"]
    ours_id = json.loads(ok(api.docker("image", "inspect", "busybox")))[0]["Id"]
    assert ok(api.docker("images", "-q")).split() == [ours_id[7:19]]
    assert ok(api.docker("images", "-q", "--no-trunc")).split() == [ours_id]
    assert keys(ok(api.docker("images", "--format", "{{json .}}"))) == \
        keys(docker.cli("images", "--format", "{{json .}}"))
    digests = ok(api.docker("images", "--digests")).splitlines()
    assert digests[0].split() == docker.cli("images", "--digests").splitlines()[0].split()
    assert digests[1].split()[2] == "<none>"   # imported: no repo digest


def test_images_api_shape_and_dangling_filter_match_dockerd(api, docker, busybox_tar: Path) -> None:
    import docker as docker_py

    ours = docker_py.APIClient(base_url=api.url, version="1.41")
    theirs = docker_py.APIClient(base_url=docker.env["DOCKER_HOST"], version="1.41")
    listed = ours.images()
    assert set(listed[0]) == {"Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
                              "SharedSize", "Size", "VirtualSize"}
    assert set(theirs.images()[0]) == set(listed[0])
    # An import without a name is dangling: <none> in the table, found by dangling=true.
    image_id = ok(api.docker("import", "-", input=busybox_tar.read_bytes(), text=False)).decode().strip()
    assert ID.fullmatch(image_id)
    assert ok(api.docker("images", "--filter", "dangling=true", "-q", "--no-trunc")).split() == [image_id]
    assert image_id not in ok(api.docker("images", "--filter", "dangling=false", "-q", "--no-trunc"))
    row = [r for r in ok(api.docker("images")).splitlines() if r.split()[:2] == ["<none>", "<none>"]]
    assert len(row) == 1 and image_id[7:19] in row[0]
    dangling = [i for i in ours.images() if i["Id"] == image_id][0]
    theirs_id = docker.cli("import", "-", input=busybox_tar.read_bytes(), text=False).decode().strip()
    try:
        theirs_dangling = [i for i in theirs.images() if i["Id"] == theirs_id][0]
        for key in ("RepoTags", "RepoDigests", "ParentId", "Labels", "SharedSize", "Containers"):
            assert dangling[key] == theirs_dangling[key], key
    finally:
        docker.run("rmi", theirs_id)
    # The old single-name parameter and a reference filter.
    assert [i["RepoTags"] for i in ours.images(name="busybox")] == [["busybox:latest"]]


def test_image_inspect_and_history_keys_match_dockerd(api, docker) -> None:
    ours = json.loads(ok(api.docker("image", "inspect", "busybox")))[0]
    theirs = json.loads(docker.cli("image", "inspect", "busybox"))[0]
    assert set(ours) == set(theirs)
    assert ours["RepoTags"] == ["busybox:latest"] and ours["Config"]["Cmd"] == ["sh"]
    missing = api.docker("image", "inspect", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr.strip() == docker.run("image", "inspect", "nosuch").stderr.strip()
    history = ok(api.docker("history", "busybox")).splitlines()
    assert history[0].split() == docker.cli("history", "busybox").splitlines()[0].split()
    assert history[1].startswith(ours["Id"][7:19])
    assert keys(ok(api.docker("history", "--format", "{{json .}}", "busybox"))) == \
        keys(docker.cli("history", "--format", "{{json .}}", "busybox"))


# ---------------------------------------------------------------- tag, rmi

def test_tag_then_rmi_prints_untagged_and_deleted_lines(api, run_cli) -> None:
    image_id = json.loads(ok(api.docker("image", "inspect", "busybox")))[0]["Id"]
    ok(api.docker("tag", "busybox", "team/app:1"), api)
    assert "team/app:1" in run_cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert ok(api.docker("rmi", "team/app:1")) == "Untagged: team/app:1\n"
    removed = ok(api.docker("rmi", "busybox")).splitlines()
    # the image, then its layer (dockerd lists the layers it deleted too)
    assert removed[:2] == ["Untagged: busybox:latest", f"Deleted: {image_id}"] and len(removed) == 3
    assert ID.fullmatch(removed[2].removeprefix("Deleted: "))
    assert run_cli("images", "-q").stdout == ""
    bad = api.docker("tag", "nosuch", "x:1")
    assert bad.returncode == 1 and "No such image: nosuch" in bad.stderr


def test_rmi_of_an_image_in_use_is_dockerds_409(api, docker, run_cli) -> None:
    cid = run_cli("create", "busybox", "true", check=True).stdout.strip()
    ours = api.docker("rmi", "busybox")
    assert ours.returncode == 1
    assert ours.stderr.strip() == (
        f"Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - "
        f"container {cid[:12]} is using its referenced image "
        f"{json.loads(ok(api.docker('image', 'inspect', 'busybox')))[0]['Id'][7:19]}")
    theirs_cid = docker.cli("create", "busybox", "true").strip()
    try:
        theirs = docker.run("rmi", "busybox")
        mask = re.compile(r"[0-9a-f]{12}")
        assert mask.sub("ID", ours.stderr) == mask.sub("ID", theirs.stderr)
    finally:
        docker.run("rm", theirs_cid)
    # Deleting by ID: dockerd's (must be forced) wording; -f untags and keeps the image for the container.
    image_id = json.loads(ok(api.docker("image", "inspect", "busybox")))[0]["Id"]
    by_id = api.docker("rmi", image_id[7:19])
    assert by_id.returncode == 1 and by_id.stderr.strip() == (
        f"Error response from daemon: conflict: unable to delete {image_id[7:19]} (must be forced) - "
        f"image is being used by stopped container {cid[:12]}")
    forced = ok(api.docker("rmi", "-f", "busybox"), api)
    assert forced.startswith("Untagged: busybox:latest\n")


# ---------------------------------------------------------------- save, load, import

def test_save_load_round_trip_and_loading_dockerds_save(api, docker, tmp_path: Path) -> None:
    saved = api.docker("save", "busybox", text=False)
    assert saved.returncode == 0, saved.stderr
    assert len(saved.stdout) > 100_000 and saved.stdout[257:262] == b"ustar"
    ok(api.docker("rmi", "busybox"))
    loaded = api.docker("load", input=saved.stdout, text=False)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.decode() == "Loaded image: busybox:latest\n"
    # A tar dockerd wrote loads too.
    archive = tmp_path / "theirs.tar"
    docker.cli("tag", "busybox", "fromdockerd:v1")
    docker.cli("save", "-o", str(archive), "fromdockerd:v1")
    result = api.docker("load", "-i", str(archive))
    assert ok(result, api) == "Loaded image: fromdockerd:v1\n"
    assert ok(api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "fromdockerd")) == "fromdockerd:v1\n"
    missing = api.docker("save", "nosuch", text=False)
    assert missing.returncode == 1 and b"No such image: nosuch" in missing.stderr
    # Two names in one tar (GET /images/get?names=..), and /images/{name}/get (docker-py's save).
    both = api.docker("save", "busybox", "fromdockerd:v1", text=False)
    assert both.returncode == 0
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(both.stdout)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert sorted(t for m in manifest for t in m["RepoTags"]) == ["busybox:latest", "fromdockerd:v1"]
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    one = b"".join(client.get_image("fromdockerd:v1"))
    with tarfile.open(fileobj=io.BytesIO(one)) as tar:
        assert [m["RepoTags"] for m in json.load(tar.extractfile("manifest.json"))] == [["fromdockerd:v1"]]
    quiet = api.docker("load", "-q", input=one, text=False)
    assert quiet.returncode == 0 and quiet.stdout.decode() == "Loaded image: fromdockerd:v1\n"
    garbage = api.docker("load", input=b"not a tar at all" * 100, text=False)
    assert garbage.returncode == 1 and garbage.stderr.startswith(b"Error response from daemon: ")


def test_import_from_stdin_with_changes_and_message(api, busybox_tar: Path) -> None:
    result = api.docker("import", "--change", "ENV A=1", "--change", 'CMD ["echo","hi"]', "-m", "from api",
                        "-", "imported:v2", input=busybox_tar.read_bytes(), text=False)
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.decode().strip()
    info = json.loads(ok(api.docker("image", "inspect", "imported:v2")))[0]
    assert info["Id"] == image_id and info["Comment"] == "from api"
    assert info["Config"]["Cmd"] == ["echo", "hi"] and "A=1" in info["Config"]["Env"]
    other = api.docker("import", "--platform", "linux/arm64", "-", "imported:arm", input=busybox_tar.read_bytes(),
                       text=False)
    assert other.returncode == 0, other.stderr
    arm = json.loads(ok(api.docker("image", "inspect", "imported:arm")))[0]
    assert (arm["Os"], arm["Architecture"]) == ("linux", "arm64")


def test_import_from_a_url(api, busybox_tar: Path) -> None:
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(busybox_tar.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{busybox_tar.name}"
        result = api.docker("import", url, "fromurl:1")
        assert result.returncode == 0, (result.stderr, api.logs()[-2000:])
        info = json.loads(ok(api.docker("image", "inspect", "fromurl:1")))[0]
        assert result.stdout.strip() == info["Id"]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- pull, push, login

def test_push_and_pull_against_a_local_registry(api, docker, distribution, repo_name) -> None:
    target = f"{distribution.address}/{repo_name}:v1"
    ok(api.docker("tag", "busybox", target))
    pushed = ok(api.docker("push", target), api)
    assert f"The push refers to repository [{distribution.address}/{repo_name}]" in pushed
    assert re.search(r"^[0-9a-f]{12}: Pushed$", pushed, re.M)
    assert re.search(r"^v1: digest: sha256:[0-9a-f]{64} size: \d+$", pushed, re.M)
    theirs_target = f"{distribution.address}/{repo_name}-dockerd:v1"
    docker.cli("tag", "busybox", theirs_target)
    theirs_pushed = docker.cli("push", theirs_target)
    docker.run("rmi", theirs_target)
    mask = [(re.compile(r"[0-9a-f]{64}"), "DIGEST"), (re.compile(r"\b[0-9a-f]{12}\b"), "LAYER"),
            (re.compile(r"size: \d+"), "size: N"), (re.compile(r"-dockerd\b"), "")]

    def masked(text: str) -> str:
        for pattern, replacement in mask:
            text = pattern.sub(replacement, text)
        return text

    assert masked(pushed) == masked(theirs_pushed)
    ok(api.docker("rmi", target))
    ok(api.docker("rmi", "busybox"))
    pulled = ok(api.docker("pull", target), api)
    lines = pulled.splitlines()
    assert lines[0] == f"v1: Pulling from {repo_name}"
    assert re.search(r"^[0-9a-f]{12}: Pulling fs layer$", pulled, re.M)
    assert re.search(r"^[0-9a-f]{12}: Pull complete$", pulled, re.M)
    assert re.search(r"^Digest: sha256:[0-9a-f]{64}$", pulled, re.M)
    assert f"Status: Downloaded newer image for {target}" in lines and lines[-1] == target
    theirs_pull = docker.cli("pull", target)
    # dockerd says the same, with transient states per layer that it prints or not
    # depending on timing ("Verifying Checksum" always, "Download complete" in most runs).
    transient = (": Verifying Checksum", ": Download complete")

    def settled(text_lines: list[str]) -> list[str]:
        return [line for line in text_lines if not line.endswith(transient)]

    try:
        assert settled(theirs_pull.splitlines()) == settled(lines)
    finally:
        docker.run("rmi", target)
    again = ok(api.docker("pull", target))
    assert f"Status: Image is up to date for {target}" in again
    # By digest (tag=sha256:... on the wire), beside dockerd.
    by_digest = f"{distribution.address}/{repo_name}@{re.search(r'^Digest: (sha256:[0-9a-f]{64})$', pulled, re.M)[1]}"
    ok(api.docker("rmi", target))
    ours_digest = ok(api.docker("pull", by_digest), api)
    theirs_digest = docker.cli("pull", by_digest)
    docker.run("rmi", by_digest)

    def not_layers(text: str) -> list[str]:   # which layers each one still had differs
        return [line for line in text.splitlines() if not re.match(r"[0-9a-f]{12}: ", line)]

    assert not_layers(ours_digest) == not_layers(theirs_digest) == [
        f"{by_digest}: Pulling from {repo_name}", f"Digest: {by_digest.partition('@')[2]}",
        f"Status: Downloaded newer image for {by_digest}", by_digest]
    ok(api.docker("tag", by_digest, target))
    digest = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", pulled, re.M)[1]
    row = [r.split() for r in ok(api.docker("images", "--digests")).splitlines() if r.startswith(distribution.address)]
    assert row[0][:3] == [f"{distribution.address}/{repo_name}", "v1", digest]
    wrong = api.docker("pull", "--platform", "linux/s390x", target)
    assert wrong.returncode == 1 and "does not match the specified platform" in wrong.stderr
    # A missing tag: dockerd's error, before any progress.
    ours = api.docker("pull", f"{distribution.address}/{repo_name}:nosuch")
    theirs = docker.run("pull", f"{distribution.address}/{repo_name}:nosuch")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stdout == theirs.stdout and ours.stderr == theirs.stderr


def test_login_against_htpasswd_registry_then_push_with_stored_credentials(api, distribution_auth,
                                                                           repo_name) -> None:
    server = distribution_auth.address
    wrong = api.docker("login", "-u", "dockyard", "--password-stdin", server, input="wrong\n")
    assert wrong.returncode == 1 and "Error response from daemon" in wrong.stderr
    assert "unauthorized" in wrong.stderr.lower() or "authentication" in wrong.stderr.lower()
    target = f"{server}/{repo_name}:v1"
    ok(api.docker("tag", "busybox", target))
    denied = api.docker("push", target)
    assert denied.returncode == 1
    login = api.docker("login", "-u", "dockyard", "--password-stdin", server, input="test-password\n")
    assert login.returncode == 0, (login.stderr, api.logs()[-2000:])
    assert "Login Succeeded" in login.stdout
    config = json.loads((Path(api.env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert server in config["auths"]
    pushed = ok(api.docker("push", target), api)
    assert re.search(r"^v1: digest: sha256:[0-9a-f]{64} size: \d+$", pushed, re.M)


def test_auth_route_answers_401_with_the_registrys_message(api, distribution_auth) -> None:
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    answer = client.login("dockyard", "test-password", registry=distribution_auth.address, reauth=True)
    assert answer["Status"] == "Login Succeeded"
    with pytest.raises(docker_py.errors.APIError) as failed:
        client.login("dockyard", "nope", registry=distribution_auth.address, reauth=True)
    assert failed.value.status_code == 401


def test_push_and_pull_use_the_x_registry_auth_header_only(api, distribution_auth, repo_name) -> None:
    """No docker login: the service has no stored credentials; what the client sends is used."""
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    repo = f"{distribution_auth.address}/{repo_name}"
    client.tag("busybox", repo, "v1")
    refused = list(client.push(repo, "v1", stream=True, decode=True))
    assert "error" in refused[-1] and "errorDetail" in refused[-1]
    creds = {"username": "dockyard", "password": "test-password"}
    pushed = list(client.push(repo, "v1", stream=True, decode=True, auth_config=creds))
    assert "error" not in pushed[-1], pushed[-1]
    assert any(m.get("aux", {}).get("Tag") == "v1" for m in pushed)
    client.remove_image(f"{repo}:v1")
    client.remove_image("busybox")
    with pytest.raises(docker_py.errors.APIError) as denied:
        client.pull(repo, "v1")
    assert "pull access denied" in str(denied.value) or "unauthorized" in str(denied.value).lower()
    messages = list(client.pull(repo, "v1", auth_config=creds, stream=True, decode=True))
    assert messages[0] == {"status": f"Pulling from {repo_name}", "id": "v1"}
    layer = messages[1]["id"]
    assert messages[1] == {"status": "Pulling fs layer", "progressDetail": {}, "id": layer}
    downloading = [m for m in messages if m.get("status") == "Downloading"]
    assert downloading and downloading[-1]["progressDetail"]["current"] == downloading[-1]["progressDetail"]["total"]
    statuses = [m["status"] for m in messages if m.get("id") == layer]
    assert statuses.index("Download complete") < statuses.index("Pull complete")
    assert messages[-2]["status"].startswith("Digest: sha256:")
    assert messages[-1] == {"status": f"Status: Downloaded newer image for {repo}:v1"}
    assert client.inspect_image(f"{repo}:v1")["RepoTags"] == [f"{repo}:v1"]


# ---------------------------------------------------------------- prune, search

def test_image_prune_removes_dangling_images_only(api, busybox_tar: Path, run_cli) -> None:
    dangling = api.docker("import", "-", input=busybox_tar.read_bytes(), text=False).stdout.decode().strip()
    assert ID.fullmatch(dangling)
    result = ok(api.docker("image", "prune", "-f"), api)
    assert f"deleted: {dangling}" in result and "Total reclaimed space:" in result
    assert "busybox" in ok(api.docker("images"))
    assert dangling not in run_cli("images", "-q", "--no-trunc").stdout
    assert ok(api.docker("image", "prune", "-f")) == "Total reclaimed space: 0B\n"
    labelled = api.docker("import", "-c", "LABEL team=web", "-", "labelled:1", input=busybox_tar.read_bytes(),
                          text=False).stdout.decode().strip()
    only = ok(api.docker("image", "prune", "-a", "-f", "--filter", "label=team=web"), api)
    assert "untagged: labelled:1" in only and f"deleted: {labelled}" in only and "busybox" not in only
    run_cli("tag", "busybox", "extra:1", check=True)
    # until: only images created before that moment (these are seconds old)
    assert ok(api.docker("image", "prune", "-a", "-f", "--filter", "until=1h")) == "Total reclaimed space: 0B\n"
    everything = ok(api.docker("image", "prune", "-a", "-f"))
    assert "untagged: busybox:latest" in everything and "untagged: extra:1" in everything
    assert run_cli("images", "-q").stdout == ""


def test_search_of_a_registry_without_v1_search_is_a_clear_error(api, distribution) -> None:
    result = api.docker("search", f"{distribution.address}/busybox")
    assert result.returncode == 1
    assert "does not support search" in result.stderr


def test_a_pull_failing_mid_stream_ends_with_the_error_line(api, distribution, repo_name, tmp_path: Path) -> None:
    import io
    import os
    import tarfile

    # A layer of its own (the registry's blobs are shared by every repository in the session).
    layer = tmp_path / "unique.tar"
    with tarfile.open(layer, "w") as tar:
        data = os.urandom(64 << 10)
        info = tarfile.TarInfo("unique.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    target = f"{distribution.address}/{repo_name}:v1"
    assert api.docker("import", str(layer), target).returncode == 0
    pushed = ok(api.docker("push", target), api)
    ok(api.docker("rmi", target))
    blobs = distribution.storage / "docker/registry/v2/blobs/sha256"
    digests = re.findall(r"^([0-9a-f]{12}): Pushed$", pushed, re.M)
    assert len(digests) == 1
    (data_file,) = [p for p in blobs.glob(f"*/{digests[0]}*/data")]
    data_file.unlink()
    result = api.docker("pull", target)
    assert result.returncode == 1
    assert f"{digests[0]}: Pulling fs layer" in result.stdout   # the stream had begun
    # the errorDetail line, printed as it is (not an "Error response from daemon")
    assert result.stderr.strip() == "blob unknown: blob unknown to registry"
    assert api.docker("image", "inspect", target).returncode == 1


def test_pull_all_tags(api, docker, distribution, repo_name) -> None:
    repo = f"{distribution.address}/{repo_name}"
    for tag in ("a", "b"):
        ok(api.docker("tag", "busybox", f"{repo}:{tag}"))
        ok(api.docker("push", f"{repo}:{tag}"), api)
        ok(api.docker("rmi", f"{repo}:{tag}"))
    ours = ok(api.docker("pull", "-a", repo), api)
    theirs = docker.cli("pull", "-a", repo)
    # every tag (dockerd's order differs: it is not a promise)
    assert sorted(line for line in ours.splitlines() if "Pulling from" in line) == \
        sorted(line for line in theirs.splitlines() if "Pulling from" in line) == \
        [f"a: Pulling from {repo_name}", f"b: Pulling from {repo_name}"]
    assert ours.splitlines()[-2:] == theirs.splitlines()[-2:] == \
        [f"Status: Downloaded newer image for {repo}", repo]
    tags = ok(api.docker("images", "--format", "{{.Tag}}", repo)).split()
    assert sorted(tags) == ["a", "b"]


def test_search_answers_from_a_registry_with_v1_search(api) -> None:
    """No registry at hand has the v1 search API: a small stand-in answers it as Docker Hub's index does."""
    import http.server
    import threading
    import urllib.parse

    asked: list[dict] = []

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            asked.append(urllib.parse.parse_qs(url.query))
            results = [{"name": "team/app", "description": "the app", "star_count": 7, "is_official": False,
                        "is_automated": False},
                       {"name": "team/app-old", "description": "", "star_count": 1, "is_official": False,
                        "is_automated": True}]
            body = json.dumps({"num_results": 2, "query": "app", "results": results}).encode()
            self.send_response(200 if url.path == "/v1/search" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        term = f"127.0.0.1:{server.server_address[1]}/app"
        rows = ok(api.docker("search", "--limit", "5", term), api).splitlines()
        assert rows[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
        assert rows[1].split() == ["team/app", "the", "app", "7"]
        assert rows[2].split() == ["team/app-old", "1", "[OK]"]
        assert asked[-1] == {"q": ["app"], "n": ["5"]}
        starred = ok(api.docker("search", "--filter", "stars=5", term)).splitlines()
        assert [r.split()[0] for r in starred[1:]] == ["team/app"]
        manual = ok(api.docker("search", "--filter", "is-automated=true", term)).splitlines()
        assert [r.split()[0] for r in manual[1:]] == ["team/app-old"]
    finally:
        server.shutdown()
        server.server_close()


def peak_rss_growth(pid: int, action) -> tuple[int, object]:  # noqa: ANN001
    """(the service's peak RSS growth in MiB while ``action`` runs, what it returned)."""
    import threading
    import time

    def rss() -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))

    start = rss()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return max(peak) - start, result


def test_load_and_save_stream_without_holding_the_tar_in_memory(api, run_cli, tmp_path: Path) -> None:
    import io
    import os
    import tarfile

    layer = tmp_path / "big.tar"
    with tarfile.open(layer, "w") as tar:
        for i in range(3):
            data = os.urandom(32 << 20)
            info = tarfile.TarInfo(f"part{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    run_cli("import", str(layer), "big:1", check=True)
    saved = tmp_path / "saved.tar"
    growth, result = peak_rss_growth(api.process.pid, lambda: api.docker("save", "-o", str(saved), "big:1"))
    assert result.returncode == 0, result.stderr
    assert saved.stat().st_size > 96 << 20 and growth < 48, growth
    run_cli("rmi", "big:1", check=True)
    growth, result = peak_rss_growth(api.process.pid, lambda: api.docker("load", "-i", str(saved)))
    assert result.stdout == "Loaded image: big:1\n", result.stderr
    assert growth < 48, growth


@pytest.mark.parametrize("args", [
    ("rmi", "nosuch"), ("rmi", "nosuch:v2"), ("rmi", "abcdef123456"), ("tag", "nosuch", "x:1"),
    ("history", "nosuch"), ("save", "nosuch"), ("image", "inspect", "nosuch"), ("push", "127.0.0.1:1/nosuch"),
], ids=lambda args: "-".join(args))
def test_a_missing_image_is_reported_as_dockerd_reports_it(api, docker, args) -> None:
    ours, theirs = api.docker(*args), docker.run(*args)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_registry_lab_through_the_api_with_dockyards_registry(api) -> None:
    """The private-registry lab's client half through the service: tag, push to dockyard's own
    registry server, remove locally, pull back, then the catalog and tags as curl shows them."""
    import urllib.request

    from dockyard.testing.registry import DockyardRegistry

    with DockyardRegistry() as registry:
        target = f"{registry.address}/nginx:alpine"
        ok(api.docker("tag", "busybox", target), api)
        pushed = ok(api.docker("push", target), api)
        assert f"The push refers to repository [{registry.address}/nginx]" in pushed
        digest = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", pushed)[1]
        ok(api.docker("rmi", target), api)
        assert target not in ok(api.docker("images", "--format", "{{.Repository}}:{{.Tag}}"))
        pulled = ok(api.docker("pull", target), api)
        assert f"Digest: {digest}" in pulled and f"Status: Downloaded newer image for {target}" in pulled
        with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=10) as r:
            assert json.load(r) == {"repositories": ["nginx"]}
        with urllib.request.urlopen(f"{registry.url}/v2/nginx/tags/list", timeout=10) as r:
            assert json.load(r) == {"name": "nginx", "tags": ["alpine"]}


def test_commit_through_the_api_as_dockerd(api, docker, run_cli) -> None:
    """`docker commit` (the docker CLI, Docker Compose v2 and docker-py call POST /commit)."""
    run_cli("run", "--name", "box", "--network", "none", "busybox", "sh", "-c", "echo made > /made", check=True)
    out = ok(api.docker("commit", "-c", "ENV A=1", "-m", "the message", "-a", "me", "box", "committed:1"), api)
    assert ID.fullmatch(out.strip())
    image = json.loads(ok(api.docker("image", "inspect", "committed:1")))[0]
    assert (image["Comment"], image["Author"], image["Id"]) == ("the message", "me", out.strip())
    assert "A=1" in image["Config"]["Env"]
    assert ok(api.docker("run", "--rm", "--network", "none", "committed:1", "cat", "/made")) == "made\n"
    # docker-py's conf (a container config) is applied as --change would
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    made = client.commit("box", repository="committed", tag="2", conf={"Cmd": ["cat", "/made"], "Env": ["B=2"],
                                                                       "Labels": {"k": "v"}})
    assert ok(api.docker("run", "--rm", "--network", "none", "committed:2")) == "made\n"
    inspected = client.inspect_image(made["Id"])
    assert "B=2" in inspected["Config"]["Env"] and inspected["Config"]["Labels"] == {"k": "v"}
    # errors in dockerd's words
    ours, theirs = api.docker("commit", "nope", "x:1"), docker.run("commit", "nope", "x:1")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
