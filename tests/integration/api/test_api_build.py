"""``docker build`` (the classic builder's client, docker CLI 20.10) through POST /build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def steps(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Step ")]


def test_build_runs_copies_tags_and_prints_the_classic_steps(api, docker, run_cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nARG GREETING=hi\nRUN echo \"say $GREETING\" > /greeting\n"
                            "COPY data.txt /data.txt\nLABEL stage=one\n", **{"data.txt": "payload\n"})
    result = api.docker("build", "--network", "none", "--build-arg", "GREETING=hello", "--label", "from=api",
                        "-t", "built:v1", "-t", "built:v2", str(ctx))
    assert result.returncode == 0, (result.stderr, api.logs()[-3000:])
    out = result.stdout
    theirs = docker.run("build", "--network", "none", "--build-arg", "GREETING=hello", "-t", "built:v1", str(ctx))
    assert theirs.returncode == 0, theirs.stderr
    assert steps(out) == steps(theirs.stdout)   # Step 1/5 : FROM busybox ... Step 5/5 : LABEL stage=one
    busybox_id = json.loads(api.docker("image", "inspect", "busybox").stdout)[0]["Id"]
    assert out.splitlines()[out.splitlines().index("Step 1/5 : FROM busybox") + 1] == f" ---> {busybox_id[7:19]}"
    image = json.loads(api.docker("image", "inspect", "built:v1").stdout)[0]
    assert f"Successfully built {image['Id'][7:19]}" in out
    assert "Successfully tagged built:v1" in out and "Successfully tagged built:v2" in out
    assert image["Config"]["Labels"] == {"stage": "one", "from": "api"}
    # What RUN wrote and COPY copied, seen by a container of the CLI's.
    shown = run_cli("run", "--rm", "--network", "none", "built:v2", "cat", "/greeting", "/data.txt", check=True)
    assert shown.stdout == "say hello\npayload\n"
    again = api.docker("build", "--network", "none", "--build-arg", "GREETING=hello", "--label", "from=api",
                       "-t", "built:v1", str(ctx))
    assert again.returncode == 0 and " ---> Using cache" in again.stdout
    assert f"Successfully built {image['Id'][7:19]}" in again.stdout


def test_build_target_stops_at_the_stage_and_quiet_prints_the_id(api, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox AS first\nRUN echo one > /one\n\n"
                            "FROM busybox AS second\nRUN echo two > /two\n")
    result = api.docker("build", "-q", "--target", "first", "-t", "staged:1", str(ctx))
    assert result.returncode == 0, (result.stderr, api.logs()[-3000:])
    image = json.loads(api.docker("image", "inspect", "staged:1").stdout)[0]
    assert result.stdout.strip() == image["Id"]
    history = api.docker("history", "--no-trunc", "staged:1").stdout
    assert "echo one" in history and "echo two" not in history


def test_a_failing_run_exits_with_its_code_and_the_classic_message(api, docker, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo before-failing\nRUN exit 3\n")
    ours = api.docker("build", "--network", "none", "-t", "broken:1", str(ctx))
    theirs = docker.run("build", "--network", "none", "-t", "broken:1", str(ctx))
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == \
        (3, "The command '/bin/sh -c exit 3' returned a non-zero code: 3\n")
    assert "before-failing" in ours.stdout and steps(ours.stdout) == steps(theirs.stdout)
    assert api.docker("image", "inspect", "broken:1").returncode == 1


def test_a_bad_dockerfile_or_base_image_is_an_error_exit_1(api, tmp_path: Path) -> None:
    bad = context(tmp_path, "FROM busybox\nFROBNICATE now\n")
    result = api.docker("build", str(bad))
    assert result.returncode == 1 and "FROBNICATE" in result.stderr.upper()
    missing = tmp_path / "other"
    missing.mkdir()
    (missing / "Dockerfile").write_text("FROM 127.0.0.1:1/nosuch/image:v1\n")
    result = api.docker("build", str(missing))
    assert result.returncode == 1 and "nosuch/image" in result.stderr
    # the step was shown before its base failed to pull, as the classic builder shows it
    assert steps(result.stdout) == ["Step 1/1 : FROM 127.0.0.1:1/nosuch/image:v1"]


def test_no_cache_dockerfile_path_and_stdin_dockerfile(api, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo default\n",
                  **{"Other.dockerfile": "FROM busybox\nRUN echo from-other > /which\n"})
    first = api.docker("build", "--network", "none", "-f", str(ctx / "Other.dockerfile"), "-t", "other:1", str(ctx))
    assert first.returncode == 0, (first.stderr, api.logs()[-3000:])
    assert "Step 2/2 : RUN echo from-other > /which" in first.stdout
    cached = api.docker("build", "--network", "none", "-f", str(ctx / "Other.dockerfile"), "-t", "other:1", str(ctx))
    assert " ---> Using cache" in cached.stdout
    fresh = api.docker("build", "--network", "none", "--no-cache", "-f", str(ctx / "Other.dockerfile"), "-t", "other:1", str(ctx))
    assert fresh.returncode == 0 and "Using cache" not in fresh.stdout
    # docker build - < Dockerfile: the body is the Dockerfile alone, no context.
    piped = api.docker("build", "--network", "none", "-t", "piped:1", "-", input="FROM busybox\nLABEL piped=yes\n")
    assert piped.returncode == 0, piped.stderr
    labels = json.loads(api.docker("image", "inspect", "piped:1").stdout)[0]["Config"]["Labels"]
    assert labels == {"piped": "yes"}


def test_build_pulls_a_missing_base_and_pull_refreshes_a_stale_one(api, distribution, repo_name, busybox_tar: Path,
                                                                  tmp_path: Path) -> None:
    base = f"{distribution.address}/{repo_name}:base"
    assert api.docker("tag", "busybox", base).returncode == 0
    assert api.docker("push", base).returncode == 0
    assert api.docker("rmi", base).returncode == 0
    ctx = context(tmp_path, f"FROM {base}\nRUN true\n")
    missing = api.docker("build", "--network", "none", "-t", "onbase:1", str(ctx))
    assert missing.returncode == 0, (missing.stderr, api.logs()[-3000:])
    registry_id = json.loads(api.docker("image", "inspect", base).stdout)[0]["Id"]
    # A local image under the same name (other CMD): without --pull it is used, with --pull the registry's.
    stale = api.docker("import", "-c", 'CMD ["stale"]', "-", base, input=busybox_tar.read_bytes(), text=False)
    assert stale.returncode == 0
    local = api.docker("build", "--network", "none", "-t", "onbase:2", str(ctx))
    assert json.loads(api.docker("image", "inspect", "onbase:2").stdout)[0]["Config"]["Cmd"] == ["stale"], local
    pulled = api.docker("build", "--network", "none", "--pull", "-t", "onbase:3", str(ctx))
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(api.docker("image", "inspect", "onbase:3").stdout)[0]["Config"]["Cmd"] == ["sh"]
    assert json.loads(api.docker("image", "inspect", base).stdout)[0]["Id"] == registry_id


def test_build_for_another_platform_is_refused(api, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\n")
    import platform as host

    other = "linux/s390x" if host.machine() != "s390x" else "linux/amd64"
    result = api.docker("build", "--platform", other, str(ctx))
    assert result.returncode == 1 and f"platform {other} cannot be built" in result.stderr


def test_build_output_streams_while_the_step_runs(api, tmp_path: Path) -> None:
    """Each line reaches the client when the step prints it, not when the build ends."""
    import time

    import docker as docker_py

    ctx = context(tmp_path, "FROM busybox\nRUN echo first-line && sleep 3 && echo last-line\n")
    client = docker_py.APIClient(base_url=api.url, version="1.41", timeout=120)
    seen: dict[str, float] = {}
    for message in client.build(path=str(ctx), network_mode="none", decode=True):
        text = message.get("stream", "")
        for word in ("first-line", "last-line"):
            if text.strip() == word:
                seen[word] = time.monotonic()
        assert "error" not in message, message
    assert seen["last-line"] - seen["first-line"] > 2


def test_a_base_image_behind_auth_is_pulled_with_x_registry_config(api, distribution_auth, repo_name,
                                                                  tmp_path: Path) -> None:
    """docker-py keeps its login in memory and sends it with the build: the service has none stored."""
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41", timeout=120)
    base = f"{distribution_auth.address}/{repo_name}"
    creds = {"username": "dockyard", "password": "test-password"}
    client.tag("busybox", base, "v1")
    pushed = list(client.push(base, "v1", stream=True, decode=True, auth_config=creds))
    assert "error" not in pushed[-1], pushed[-1]
    client.remove_image(f"{base}:v1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}:v1\nLABEL behind=auth\n")
    refused = list(client.build(path=str(ctx), tag="authbase:1", decode=True))
    assert refused[0] == {"stream": f"Step 1/2 : FROM {base}:v1\n"}
    assert "pull access denied" in refused[-1]["error"] and refused[-1]["errorDetail"]["message"]
    client.login("dockyard", "test-password", registry=distribution_auth.address, reauth=True)
    built = list(client.build(path=str(ctx), tag="authbase:1", decode=True))
    assert not any("error" in m for m in built), built
    assert client.inspect_image("authbase:1")["Config"]["Labels"] == {"behind": "auth"}


def test_a_large_context_is_unpacked_as_it_arrives(api, tmp_path: Path) -> None:
    import os

    from tests.integration.api.test_api_images import peak_rss_growth

    ctx = context(tmp_path, "FROM busybox\nCOPY big.bin /big.bin\n")
    with open(ctx / "big.bin", "wb") as f:
        for _ in range(3):
            f.write(os.urandom(32 << 20))
    growth, result = peak_rss_growth(api.process.pid,
                                     lambda: api.docker("build", "-t", "bigctx:1", str(ctx), timeout=300))
    assert result.returncode == 0, (result.stderr, api.logs()[-2000:])
    assert growth < 48, growth
    size = json.loads(api.docker("image", "inspect", "bigctx:1").stdout)[0]["Size"]
    assert size > 96 << 20


def test_network_mode_decides_what_run_sees(api, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort\n")

    def interfaces(mode: str) -> set[str]:
        result = api.docker("build", "--no-cache", "--network", mode, str(ctx))
        assert result.returncode == 0, (result.stderr, api.logs()[-2000:])
        lines = result.stdout.splitlines()
        start = lines.index("Step 2/2 : RUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort") + 1
        return set(lines[start:lines.index(next(line for line in lines[start:] if line.startswith(" ---> ")))])

    assert interfaces("none") == {"lo"}
    # the host's interfaces (other tests add and remove veths meanwhile: its lasting ones suffice)
    seen = interfaces("host")
    host = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert "lo" in seen and (seen & host) - {"lo"}


def test_a_client_that_leaves_mid_build_leaves_the_service_working(api, tmp_path: Path) -> None:
    import subprocess
    import time

    ctx = context(tmp_path, "FROM busybox\nRUN echo started && sleep 3 && exit 5\n")
    client = subprocess.Popen(["/usr/bin/docker", "build", "--network", "none", str(ctx)], env=api.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        for line in client.stdout:
            if line.strip() == "started":
                break
        client.kill()
    finally:
        client.kill()
        client.wait()
    time.sleep(4)   # the job ends on its own (its RUN fails) with nobody listening
    assert api.docker("version", "--format", "{{.Server.Version}}").returncode == 0
    again = api.docker("build", "--network", "none", str(ctx))
    assert again.returncode == 5
    log = api.logs()
    assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]


def test_docker_py_high_level_build_finds_the_image(api, tmp_path: Path) -> None:
    """docker-py's images.build reads the image ID from the classic stream ("Successfully built")."""
    import docker as docker_py

    ctx = context(tmp_path, "FROM busybox\nRUN echo py > /py\n")
    client = docker_py.DockerClient(base_url=api.url, version="1.41", timeout=120)
    image, logs = client.images.build(path=str(ctx), tag="frompy:1", network_mode="none")
    assert image.tags == ["frompy:1"] and image.id == client.images.get("frompy:1").id
    assert any(entry.get("stream") == "py\n" or entry.get("stream", "").startswith("Step 2/2") for entry in logs)
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(docker_py.errors.BuildError) as failed:
        client.images.build(path=str(context(bad, "FROM busybox\nRUN exit 4\n")), network_mode="none")
    assert failed.value.msg == "The command '/bin/sh -c exit 4' returned a non-zero code: 4"


def test_builder_prune_empties_the_build_cache(api, run_cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo cached > /c\n")
    assert api.docker("build", "--network", "none", "-t", "pruned:1", str(ctx)).returncode == 0
    assert " ---> Using cache" in api.docker("build", "--network", "none", "-t", "pruned:1", str(ctx)).stdout
    result = api.docker("builder", "prune", "-af")
    assert result.returncode == 0, (result.stderr, api.logs()[-2000:])
    assert result.stdout.startswith("Deleted build cache objects:\n") and "Total reclaimed space:" in result.stdout
    # nothing cached is left: the next build runs its RUN again, and a second prune finds nothing
    assert " ---> Using cache" not in api.docker("build", "--network", "none", "-t", "pruned:1", str(ctx)).stdout
    assert api.docker("builder", "prune", "-af").returncode == 0
    again = api.docker("builder", "prune", "-af")
    assert again.stdout.strip() == "Total reclaimed space: 0B", again.stdout
    bad = api.docker("builder", "prune", "-af", "--filter", "bogus=1")
    assert bad.returncode == 1 and "invalid filter 'bogus'" in bad.stderr
