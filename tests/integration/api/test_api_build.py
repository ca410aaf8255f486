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
    result = api.docker("build", "-q", "--network", "none", "--target", "first", "-t", "staged:1", str(ctx))
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
