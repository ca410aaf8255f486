"""``dockyard build``: Dockerfiles built on the real kernel (snapshots on overlayfs, RUN through
pyrunc and crun, the default bridge), checked as a user sees the result: the image's config and
history, what its containers print, what the cache reuses, and what is left after failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, dockyard_env, dy, wait_for)
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(params=["pyrunc", "crun"])
def rt(request: pytest.FixtureRequest, dy: Dockyard, cgroup_parent: str) -> Dockyard:  # noqa: F811
    import shutil

    if request.param != "pyrunc" and shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    dy.runtime = request.param
    return dy


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    return context


def _build(dy: Dockyard, ctx: Path, dockerfile: str, *args: str, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    (ctx / "Dockerfile").write_text(dockerfile)
    return dy.cli("build", "--progress", "plain", *args, str(ctx), check=check, timeout=timeout)


def _config(dy: Dockyard, name: str) -> dict:
    return json.loads(dy.cli("image", "inspect", name, check=True).stdout)[0]


def _image_id(dy: Dockyard, name: str) -> str:
    return _config(dy, name)["Id"]


def _leftovers(dy: Dockyard) -> dict[str, object]:
    """Everything a build holds while it runs; all empty once it is over."""
    snapshots = dy.root / "layers" / "snapshots"
    work = dy.root / "build" / "work"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(dy.base))]
    netns = [n for n in os.listdir(dy.runroot / "netns") if n.startswith("b-")] if (dy.runroot / "netns").is_dir() else []
    runtime_states = []
    base = dy.runroot / "build" / "runtime"
    if base.is_dir():
        runtime_states = [p.name for r in base.iterdir() for p in r.iterdir() if p.name.startswith("dyb-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    engine = dy.engine()
    try:
        leases = engine.db.execute("SELECT owner FROM build_leases").fetchall()
    finally:
        engine.close()
    return {
        "snapshots": sorted(os.listdir(snapshots)) if snapshots.is_dir() else [],
        "work": sorted(os.listdir(work)) if work.is_dir() else [],
        "mounts": [m for m in mounts if "/layers/" in m or "/build/" in m],
        "netns": netns,
        "runtime": runtime_states,
        "veths": [w for w in links.split() if w.startswith("dyz")],
        "leases": [r[0] for r in leases],
    }


NOTHING = {"snapshots": [], "work": [], "mounts": [], "netns": [], "runtime": [], "veths": [], "leases": []}


# ---------------------------------------------------------------------------- the basics


def test_run_and_metadata_steps_make_the_image_docker_would(rt: Dockyard, ctx: Path) -> None:
    out = _build(rt, ctx, """\
FROM busybox AS base
ARG GREETING=hello
ENV A=1 B="two words"
WORKDIR /app
RUN echo "$GREETING $A $B" > /app/out.txt && echo built-by-run
LABEL org.example.kind="test image" version=$A
EXPOSE 8080 53/udp
STOPSIGNAL SIGTERM
VOLUME /data
HEALTHCHECK --interval=5s --retries=2 CMD test -f /app/out.txt
ENTRYPOINT ["cat"]
CMD ["/app/out.txt"]
""", "-t", "built:1", "--label", "from.cli=yes")
    assert "built-by-run" in out.stderr
    assert "[base 2/2] RUN echo" in out.stderr
    assert rt.cli("run", "--rm", "built:1", check=True).stdout == "hello 1 two words\n"
    conf = _config(rt, "built:1")["Config"]
    assert conf["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=two words"]
    assert conf["WorkingDir"] == "/app"
    assert conf["Labels"] == {"org.example.kind": "test image", "version": "1", "from.cli": "yes"}
    assert conf["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert conf["Volumes"] == {"/data": {}}
    assert conf["StopSignal"] == "SIGTERM"
    assert conf["Entrypoint"] == ["cat"] and conf["Cmd"] == ["/app/out.txt"]
    assert conf["Healthcheck"] == {"Test": ["CMD-SHELL", "test -f /app/out.txt"], "Interval": 5_000_000_000,
                                   "Retries": 2}
    history = rt.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "built:1", check=True)
    lines = history.stdout.splitlines()
    assert lines[0] == 'CMD ["/app/out.txt"]|0B'
    run_line = next(line for line in lines if line.startswith("RUN"))
    assert run_line.startswith('RUN |1 GREETING=hello /bin/sh -c echo "$GREETING $A $B"')
    assert not run_line.endswith("|0B")
    assert NOTHING == _leftovers(rt)


def test_a_rebuild_takes_every_step_from_the_cache_and_yields_the_same_image(dy: Dockyard, ctx: Path) -> None:
    dockerfile = "FROM busybox\nRUN head -c 8 /dev/urandom | od -x > /rand\nENV X=1\nCMD cat /rand\n"
    first = _build(dy, ctx, dockerfile, "-t", "cached:1")
    assert "CACHED" not in first.stderr
    second = _build(dy, ctx, dockerfile, "-t", "cached:2")
    assert "#3 CACHED" in second.stderr
    assert _image_id(dy, "cached:1") == _image_id(dy, "cached:2")
    assert dy.cli("run", "--rm", "cached:1", check=True).stdout == dy.cli("run", "--rm", "cached:2", check=True).stdout
    again = _build(dy, ctx, dockerfile, "-t", "cached:3", "--no-cache")
    assert "CACHED" not in again.stderr
    assert _image_id(dy, "cached:3") != _image_id(dy, "cached:1")
    # A changed build arg is a changed step; the one before it stays cached.
    args = "FROM busybox\nRUN echo base > /base\nARG V=1\nRUN echo $V > /v\n"
    _build(dy, ctx, args, "-t", "args:1")
    changed = _build(dy, ctx, args, "-t", "args:2", "--build-arg", "V=2")
    assert "#3 CACHED" in changed.stderr and "#4 CACHED" not in changed.stderr
    assert dy.cli("run", "--rm", "args:2", "cat", "/v", check=True).stdout == "2\n"


def test_a_failing_run_names_its_line_and_code_tags_nothing_and_leaves_nothing(rt: Dockyard, ctx: Path) -> None:
    result = _build(rt, ctx, "FROM busybox\nRUN echo first-line && echo to-stderr >&2 && exit 3\nRUN true\n",
                    "-t", "never:1", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        'Error: Dockerfile:2: process "/bin/sh -c echo first-line && echo to-stderr >&2 && exit 3" did not '
        "complete successfully: exit code: 3")
    assert "first-line" in result.stderr and "to-stderr" in result.stderr
    assert "   2 | >>> RUN echo first-line" in result.stderr
    assert rt.cli("image", "inspect", "never:1").returncode == 1
    assert NOTHING == _leftovers(rt)


@pytest.mark.parametrize("dockerfile, args, expected", [
    ("FROM busybox\nFROB x\n", (), "Error: Dockerfile:2: unknown instruction: FROB"),
    ("FROM busybox\nRUN [\"unterminated\n", (), "Error: Dockerfile:"),
    ("FROM busybox\nCOPY --from=nowhere /x /y\n", (), "Error: Dockerfile:2: "),
    ("FROM b AS a\nFROM a AS b\n", (), "Error: Dockerfile:1: circular dependency detected on stage: b"),
    ("FROM busybox\n", ("--build-arg", "=x"), 'Error: invalid argument \'=x\' for "--build-arg" flag'),
    ("FROM busybox\n", ("--secret", "id=s"), "Error: invalid secret 'id=s': src=FILE is needed"),
    ("FROM busybox\n", ("--target", "nope"), 'Error: target stage "nope" could not be found'),
    ("FROM busybox\n", ("-t", "Bad:Tag"), 'Error: invalid argument "Bad:Tag" for "-t, --tag" flag'),
])
def test_bad_input_is_one_line_and_leaves_nothing(dy: Dockyard, ctx: Path, dockerfile: str, args: tuple[str, ...],
                                                  expected: str) -> None:
    result = _build(dy, ctx, dockerfile, *args, check=False)
    assert result.returncode in (1, 125), result
    assert result.stderr.splitlines()[-1].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert NOTHING == _leftovers(dy)


def test_missing_context_and_dockerfile(dy: Dockyard, tmp_path: Path) -> None:
    gone = dy.cli("build", str(tmp_path / "nope"))
    assert gone.returncode == 1 and gone.stderr == f'Error: unable to prepare context: path "{tmp_path / "nope"}" not found\n'
    (tmp_path / "empty").mkdir()
    no_file = dy.cli("build", str(tmp_path / "empty"))
    assert no_file.returncode == 1 and "Dockerfile" in no_file.stderr and "no such file" in no_file.stderr


def test_the_target_decides_which_stages_run(dy: Dockyard, ctx: Path) -> None:
    dockerfile = """\
FROM busybox AS broken
RUN exit 1
FROM busybox AS one
RUN echo one > /which
FROM one AS two
RUN echo two >> /which
"""
    _build(dy, ctx, dockerfile, "-t", "staged:two")
    assert dy.cli("run", "--rm", "staged:two", "cat", "/which", check=True).stdout == "one\ntwo\n"
    _build(dy, ctx, dockerfile, "-t", "staged:one", "--target", "one")
    assert dy.cli("run", "--rm", "staged:one", "cat", "/which", check=True).stdout == "one\n"
    assert _build(dy, ctx, dockerfile, "--target", "broken", check=False).returncode == 1


def test_dockerfile_and_context_from_stdin(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nRUN echo from-stdin > /f\n"
    alone = subprocess.run([sys.executable, "-m", "dockyard", "build", "-q", "-t", "stdin:1", "-"],
                           input=dockerfile, capture_output=True, text=True, env=dy.env, timeout=120)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.startswith("sha256:")
    assert dy.cli("run", "--rm", "stdin:1", "cat", "/f", check=True).stdout == "from-stdin\n"
    tar = tmp_path / "ctx.tar"
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo from-tar > /f\n")
    subprocess.run(["tar", "-C", str(ctx), "-cf", str(tar), "."], check=True)
    with open(tar, "rb") as f:
        from_tar = subprocess.run([sys.executable, "-m", "dockyard", "build", "-q", "-t", "stdin:2", "-"],
                                  stdin=f, capture_output=True, text=True, env=dy.env, timeout=120)
    assert from_tar.returncode == 0, from_tar.stderr
    assert dy.cli("run", "--rm", "stdin:2", "cat", "/f", check=True).stdout == "from-tar\n"
    piped = subprocess.run([sys.executable, "-m", "dockyard", "build", "-q", "-t", "stdin:3", "-f", "-", str(ctx)],
                           input="FROM busybox\nRUN echo dash-f > /f\n", capture_output=True, text=True,
                           env=dy.env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert dy.cli("run", "--rm", "stdin:3", "cat", "/f", check=True).stdout == "dash-f\n"
    iid = tmp_path / "iid"
    _build(dy, ctx, "FROM busybox\nENV IID=1\n", "--iidfile", str(iid), "-t", "stdin:4")
    assert iid.read_text() == _image_id(dy, "stdin:4")


def test_heredoc_shell_and_onbuild(dy: Dockyard, ctx: Path) -> None:
    _build(dy, ctx, """\
FROM busybox
SHELL ["/bin/sh", "-ec"]
RUN <<EOF
echo line1 > /heredoc
echo line2 >> /heredoc
EOF
ONBUILD RUN echo triggered > /onbuild
""", "-t", "parent:1")
    assert dy.cli("run", "--rm", "parent:1", "cat", "/heredoc", check=True).stdout == "line1\nline2\n"
    assert dy.cli("run", "--rm", "parent:1", "test", "-e", "/onbuild").returncode == 1
    assert _config(dy, "parent:1")["Config"]["OnBuild"] == ["RUN echo triggered > /onbuild"]
    _build(dy, ctx, "FROM parent:1\nRUN cat /onbuild\n", "-t", "child:1")
    assert dy.cli("run", "--rm", "child:1", "cat", "/onbuild", check=True).stdout == "triggered\n"
    assert not _config(dy, "child:1")["Config"].get("OnBuild")


# ---------------------------------------------------------------------------- network and mounts


def test_run_steps_get_the_network_asked_for(dy: Dockyard, ctx: Path) -> None:
    probe = "RUN cat /proc/net/route | tail -n +2 | wc -l > /routes; ls /sys/class/net | sort | tr '\\n' ' ' > /links; cat /etc/resolv.conf > /resolv\n"
    _build(dy, ctx, "FROM busybox\n" + probe, "-t", "net:default")
    assert dy.cli("run", "--rm", "--network", "none", "net:default", "cat", "/links", check=True).stdout == "eth0 lo "
    assert int(dy.cli("run", "--rm", "--network", "none", "net:default", "cat", "/routes", check=True).stdout) >= 2
    nameservers = dy.cli("run", "--rm", "--network", "none", "net:default", "cat", "/resolv", check=True).stdout
    assert "nameserver" in nameservers and "127.0.0.53" not in nameservers
    _build(dy, ctx, "FROM busybox\n" + probe, "-t", "net:none", "--network", "none")
    assert dy.cli("run", "--rm", "--network", "none", "net:none", "cat", "/links", check=True).stdout == "lo "
    _build(dy, ctx, "FROM busybox\nRUN --network=host ls /sys/class/net | sort | tr '\\n' ' ' > /links\n", "-t", "net:host")
    host_links = " ".join(sorted(os.listdir("/sys/class/net"))) + " "
    assert dy.cli("run", "--rm", "--network", "none", "net:host", "cat", "/links", check=True).stdout == host_links
    assert NOTHING == _leftovers(dy)


def test_run_mounts_cache_secret_tmpfs(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    dockerfile = """\
FROM busybox
ARG N=1
RUN --mount=type=cache,target=/var/cache/thing echo run-$N >> /var/cache/thing/log && cat /var/cache/thing/log > /seen
RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-size
RUN --mount=type=tmpfs,target=/scratch echo tmp > /scratch/f && ls /scratch > /tmpfs-listing
"""
    _build(dy, ctx, dockerfile, "-t", "mounts:1", "--secret", f"id=token,src={secret}")
    _build(dy, ctx, dockerfile, "-t", "mounts:2", "--secret", f"id=token,src={secret}", "--build-arg", "N=2")
    # The cache directory survived from the first build into the second.
    assert dy.cli("run", "--rm", "mounts:2", "cat", "/seen", check=True).stdout == "run-1\nrun-2\n"
    assert dy.cli("run", "--rm", "mounts:2", "cat", "/secret-size", check=True).stdout.strip() == "12"
    assert dy.cli("run", "--rm", "mounts:2", "cat", "/tmpfs-listing", check=True).stdout == "f\n"
    for path in ("/var/cache/thing/log", "/run/secrets/token", "/scratch/f"):
        assert dy.cli("run", "--rm", "mounts:2", "test", "-e", path).returncode == 1, path
    saved = tmp_path / "saved.tar"
    dy.cli("save", "-o", str(saved), "mounts:2", check=True)
    blob = subprocess.run(["tar", "-xOf", str(saved)], capture_output=True).stdout
    assert b"s3cr3t-value" not in blob
    history = dy.cli("history", "--no-trunc", "mounts:2", check=True).stdout
    assert "s3cr3t" not in history
    missing = _build(dy, ctx, "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n",
                     check=False)
    assert missing.returncode == 1 and "secret nope not found" in missing.stderr.splitlines()[-1]


# ---------------------------------------------------------------------------- cache accounting and crashes


def test_builder_prune_and_system_df_account_for_the_cache(dy: Dockyard, ctx: Path) -> None:
    _build(dy, ctx, "FROM busybox\nRUN head -c 100000 /dev/zero > /zeros\n")
    df = dy.cli("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Size}}", check=True).stdout
    row = next(line for line in df.splitlines() if line.startswith("Build Cache|"))
    assert row.split("|")[1] != "0" and row.split("|")[2] != "0B"
    pruned = dy.cli("builder", "prune", "-a", "-f", check=True)
    assert pruned.stdout.startswith("Deleted build cache objects:\n")
    df = dy.cli("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Size}}", check=True).stdout
    assert "Build Cache|0|0B" in df.splitlines()
    again = _build(dy, ctx, "FROM busybox\nRUN head -c 100000 /dev/zero > /zeros\n")
    assert "CACHED" not in again.stderr


def test_a_build_killed_mid_run_is_reclaimed_by_the_next_command(dy: Dockyard, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo started && sleep 300\n")
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "build", "--progress", "plain", str(ctx)],
                            env={**dy.env, "DOCKYARD_RUNTIME": dy.runtime}, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "started" in line and not line.startswith("#3 [") or time.monotonic() > deadline:
                break
        held = _leftovers(dy)
        assert held["snapshots"] and held["work"] and held["runtime"] and held["leases"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sleepers = lambda: [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep300"]  # noqa: E731
    assert sleepers()
    dy.cli("builder", "prune", "-f", check=True)
    assert NOTHING == _leftovers(dy)
    assert wait_for(lambda: not sleepers(), timeout=10)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b"").decode(errors="replace")
    except OSError:
        return ""
