"""``dockyard build``: Dockerfiles built on the real kernel (snapshots on overlayfs, RUN through
pyrunc and crun, the default bridge), checked as a user sees the result: the image's config and
history, what its containers print, what the cache reuses, and what is left after failures."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, dockyard_env, dy, rt, wait_for)
from tests.integration.test_registry_clients import podman_env  # noqa: F401 - fixture
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401

pytestmark = pytest.mark.integration


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
    engine = dy.engine()
    try:
        leases = engine.db.execute("SELECT owner FROM build_leases").fetchall()
        bridge = engine.db.execute("SELECT bridge FROM networks WHERE name = 'bridge'").fetchone()
    finally:
        engine.close()
    links = ""   # the build veths on this root's bridge (other roots may be building meanwhile)
    if bridge is not None:
        links = subprocess.run(["ip", "-o", "link", "show", "master", bridge[0]], capture_output=True, text=True).stdout
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
    # A tag moved to another image meanwhile comes back with the cached rebuild.
    _build(dy, ctx, "FROM busybox\nENV OTHER=1\n", "-t", "cached:2")
    assert _image_id(dy, "cached:2") != _image_id(dy, "cached:1")
    _build(dy, ctx, dockerfile, "-t", "cached:2")
    assert _image_id(dy, "cached:2") == _image_id(dy, "cached:1")
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
    verbose = dy.cli("system", "df", "-v", check=True).stdout
    listing = verbose[verbose.index("Build cache usage:"):].splitlines()
    assert listing[2].split() == ["CACHE", "ID", "CACHE", "TYPE", "SIZE", "CREATED", "LAST", "USED", "USAGE", "SHARED"]
    assert len(listing) - 3 == int(row.split("|")[1])
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
    assert wait_for(lambda: not sleepers(), timeout=10), [(p, _cgroups(p)) for p in sleepers()]


def _cgroups(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b"").decode(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------- COPY and ADD


def test_copy_follows_dockerignore_and_docker_rules(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    (ctx / "src" / "sub").mkdir(parents=True)
    (ctx / "src" / "a.txt").write_text("a")
    (ctx / "src" / "sub" / "b.txt").write_text("b")
    (ctx / "src" / "skip.log").write_text("log")
    (ctx / "src" / "keep.log").write_text("kept")
    (ctx / "secret.env").write_text("TOKEN=1")
    (ctx / "outside").symlink_to("/etc/hostname")
    (ctx / ".dockerignore").write_text("*.env\nsrc/*.log\n!src/keep.log\n")
    dockerfile = """\
FROM busybox
COPY src /app/
COPY src/a.txt /single/renamed.txt
COPY --chown=1000:100 --chmod=640 src/a.txt /owned/
COPY . /all/
"""
    _build(dy, ctx, dockerfile, "-t", "copy:1")
    listing = dy.cli("run", "--rm", "copy:1", "find", "/app", "/single", "/all", "-type", "f", check=True).stdout.split()
    assert sorted(listing) == sorted(["/app/a.txt", "/app/sub/b.txt", "/app/keep.log", "/single/renamed.txt",
                                      "/all/Dockerfile", "/all/.dockerignore", "/all/src/a.txt",
                                      "/all/src/sub/b.txt", "/all/src/keep.log"])
    assert dy.cli("run", "--rm", "copy:1", "stat", "-c", "%u:%g %a", "/owned/a.txt", check=True).stdout == "1000:100 640\n"
    # The symlink is copied as a link; what it points at on the host never enters the image.
    assert dy.cli("run", "--rm", "copy:1", "readlink", "/all/outside", check=True).stdout == "/etc/hostname\n"
    escape = _build(dy, ctx, "FROM busybox\nCOPY outside /leak\n", check=False)
    assert escape.returncode == 1
    assert escape.stderr.splitlines()[-1] == 'Error: Dockerfile:2: failed to compute cache key: "/outside": not found'
    missing = _build(dy, ctx, "FROM busybox\nCOPY nope.txt /x\n", check=False)
    assert missing.stderr.splitlines()[-1] == 'Error: Dockerfile:2: failed to compute cache key: "/nope.txt": not found'
    ignored = _build(dy, ctx, "FROM busybox\nCOPY secret.env /x\n", check=False)
    assert ignored.stderr.splitlines()[-1] == 'Error: Dockerfile:2: failed to compute cache key: "/secret.env": not found'
    many = _build(dy, ctx, "FROM busybox\nCOPY src/a.txt src/sub/b.txt /notadir\n", check=False)
    assert "the destination must be a directory and end with a /" in many.stderr.splitlines()[-1]
    assert NOTHING == _leftovers(dy)


def test_copy_cache_follows_content_not_mtime(dy: Dockyard, ctx: Path) -> None:
    (ctx / "data").mkdir()
    for n in range(20):
        (ctx / "data" / f"f{n}").write_text(f"content {n}\n")
    dockerfile = "FROM busybox\nCOPY data /data\nRUN cat /data/f3\n"
    _build(dy, ctx, dockerfile, "-t", "cc:1")
    os.utime(ctx / "data" / "f3", (1, 1))   # a touch changes nothing that matters
    touched = _build(dy, ctx, dockerfile, "-t", "cc:2")
    assert "#3 CACHED" in touched.stderr and "#4 CACHED" in touched.stderr
    (ctx / "data" / "f3").write_text("content X\n")   # same size, new content
    changed = _build(dy, ctx, dockerfile, "-t", "cc:3")
    assert "#3 CACHED" not in changed.stderr and "content X" in changed.stderr
    assert dy.cli("run", "--rm", "cc:3", "cat", "/data/f3", check=True).stdout == "content X\n"


def test_add_extracts_local_archives_and_copies_other_files(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    (payload / "dir").mkdir(parents=True)
    (payload / "dir" / "inside.txt").write_text("from the archive")
    subprocess.run(["tar", "-C", str(payload), "-czf", str(ctx / "bundle.tar.gz"), "dir"], check=True)
    (ctx / "plain.txt").write_text("plain")
    _build(dy, ctx, "FROM busybox\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/\n", "-t", "add:1")
    assert dy.cli("run", "--rm", "add:1", "cat", "/opt/dir/inside.txt", check=True).stdout == "from the archive"
    assert dy.cli("run", "--rm", "add:1", "cat", "/opt/plain.txt", check=True).stdout == "plain"
    assert dy.cli("run", "--rm", "add:1", "test", "-e", "/opt/bundle.tar.gz").returncode == 1


# ---------------------------------------------------------------------------- other engines run what we build


def test_built_images_run_under_podman_from_distribution_and_from_save(
        dy: Dockyard, ctx: Path, tmp_path: Path, distribution, repo_name: str, podman_env: list[str]) -> None:  # noqa: ANN001
    (ctx / "msg").write_text("built by dockyard\n")
    _build(dy, ctx, """\
FROM busybox AS build
COPY msg /src/msg
RUN cat /src/msg > /src/out && echo step-two >> /src/out
FROM busybox
COPY --from=build /src/out /out
ENV GREETING=hi
CMD ["cat", "/out"]
""", "-t", "interop:1")
    expected = "built by dockyard\nstep-two\n"
    assert dy.cli("run", "--rm", "interop:1", check=True).stdout == expected
    target = f"{distribution.address}/{repo_name}:1"
    dy.cli("tag", "interop:1", target, check=True)
    dy.cli("push", target, check=True, timeout=120)
    env = {**os.environ, "REGISTRIES_CONFIG_PATH": "/dev/null", "CONTAINERS_REGISTRIES_CONF": "/dev/null"}

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*podman_env, *args], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        return r

    podman("pull", "--tls-verify=false", target)
    assert podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", target).stdout == expected
    assert "GREETING=hi" in podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", target, "env").stdout
    saved = tmp_path / "saved.tar"
    dy.cli("save", "-o", str(saved), "interop:1", check=True)
    podman("rmi", "-a", "-f")
    podman("load", "-i", str(saved))
    assert podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "interop:1").stdout == expected


def test_independent_stages_build_at_the_same_time(rt: Dockyard, ctx: Path) -> None:
    stage = "FROM busybox AS {n}\nRUN cut -d' ' -f1 /proc/uptime > /{n} && sleep 2 && cut -d' ' -f1 /proc/uptime >> /{n}\n"
    dockerfile = "".join(stage.format(n=n) for n in "abc") + (
        "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n")
    _build(rt, ctx, dockerfile, "-t", "parallel:1")
    spans = []
    for n in "abc":
        start, end = map(float, rt.cli("run", "--rm", "parallel:1", "cat", f"/{n}", check=True).stdout.split())
        spans.append((start, end))
    # Every stage's RUN was running while each of the others was.
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans


def test_copy_link_stays_cached_when_an_earlier_step_changes(dy: Dockyard, ctx: Path) -> None:
    (ctx / "app.txt").write_text("the app\n")
    dockerfile = "FROM busybox\nARG V=1\nRUN echo $V > /v\nCOPY --link app.txt /opt/app.txt\nCOPY app.txt /plain.txt\n"
    _build(dy, ctx, dockerfile, "-t", "link:1")
    again = _build(dy, ctx, dockerfile, "-t", "link:2", "--build-arg", "V=2")
    assert "#3 CACHED" not in again.stderr    # the RUN changed
    assert "#4 CACHED" in again.stderr        # the linked copy did not need doing again
    assert "#5 CACHED" not in again.stderr    # an ordinary COPY after a changed step is done again
    for path, text in (("/v", "2\n"), ("/opt/app.txt", "the app\n"), ("/plain.txt", "the app\n")):
        assert dy.cli("run", "--rm", "link:2", "cat", path, check=True).stdout == text


def test_predefined_args_and_bind_mounts(dy: Dockyard, ctx: Path) -> None:
    import platform as host_platform

    (ctx / "conf").mkdir()
    (ctx / "conf" / "x.conf").write_text("from-context\n")
    (ctx / "conf" / "secret.key").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("**/*.key\n")
    dockerfile = """\
FROM busybox AS tool
RUN echo tool-output > /tool
FROM busybox
ARG TARGETPLATFORM
RUN echo "$TARGETPLATFORM" > /platform && echo "proxy=$HTTP_PROXY" > /proxy
RUN --mount=type=bind,source=conf,target=/mnt/conf cat /mnt/conf/x.conf > /from-context && ls /mnt/conf > /listed
RUN --mount=type=bind,from=tool,source=/tool,target=/mnt/tool cat /mnt/tool > /from-stage
"""
    _build(dy, ctx, dockerfile, "-t", "args:p", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host_platform.machine(), host_platform.machine())
    assert dy.cli("run", "--rm", "args:p", "cat", "/platform", check=True).stdout.startswith(f"linux/{arch}")
    assert dy.cli("run", "--rm", "args:p", "cat", "/proxy", check=True).stdout == "proxy=http://proxy.invalid:3128\n"
    assert dy.cli("run", "--rm", "args:p", "cat", "/from-context", check=True).stdout == "from-context\n"
    assert dy.cli("run", "--rm", "args:p", "cat", "/from-stage", check=True).stdout == "tool-output\n"
    assert dy.cli("run", "--rm", "args:p", "cat", "/listed", check=True).stdout == "x.conf\n"   # .dockerignore holds
    assert dy.cli("run", "--rm", "args:p", "ls", "/mnt", check=True).stdout == ""
    assert "proxy.invalid" not in dy.cli("history", "--no-trunc", "args:p", check=True).stdout
    # Proxy values are not part of the cache key (as in Docker): another proxy, the same steps.
    again = _build(dy, ctx, dockerfile, "--build-arg", "HTTP_PROXY=http://other.invalid:1")
    assert "CACHED" in again.stderr and "did not complete" not in again.stderr
    assert again.stderr.count("CACHED") == 4


def test_add_from_a_url_checks_its_checksum(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "tool.txt").write_bytes(b"downloaded tool\n")
    digest = "sha256:" + hashlib.sha256(b"downloaded tool\n").hexdigest()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tool.txt"
        _build(dy, ctx, f"FROM busybox\nADD --checksum={digest} {url} /opt/\n", "-t", "url:1")
        assert dy.cli("run", "--rm", "url:1", "cat", "/opt/tool.txt", check=True).stdout == "downloaded tool\n"
        wrong = _build(dy, ctx, f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /opt/\n", check=False)
        assert wrong.returncode == 1 and "digest mismatch" in wrong.stderr.splitlines()[-1]
        missing = _build(dy, ctx, f"FROM busybox\nADD {url}.nope /opt/\n", check=False)
        assert missing.returncode == 1 and "404" in missing.stderr.splitlines()[-1]
    finally:
        server.shutdown()
        server.server_close()
    assert NOTHING == _leftovers(dy)


def test_progress_modes(dy: Dockyard, ctx: Path) -> None:
    dockerfile = "FROM busybox\nRUN echo visible-output\n"
    live = _build(dy, ctx, dockerfile, "--progress", "tty", "--no-cache")
    assert "[+] Building" in live.stderr and " => [stage-0 2/2] RUN echo visible-output" in live.stderr
    quiet = dy.cli("build", "-q", str(ctx), check=True)
    assert quiet.stderr == "" and quiet.stdout.startswith("sha256:") and len(quiet.stdout.strip()) == 71
    auto = dy.cli("build", "--no-cache", str(ctx), check=True)   # not a terminal: plain
    assert re.search(r"^#3 \d+\.\d{3} visible-output$", auto.stderr, re.M), auto.stderr


def test_copy_from_a_stage_keeps_owners(dy: Dockyard, ctx: Path) -> None:
    (ctx / "ctxfile").write_text("x")
    os.chown(ctx / "ctxfile", 1234, 1234)
    _build(dy, ctx, """\
FROM busybox AS owners
RUN mkdir /made && echo y > /made/f && chown -R 1000:1000 /made
FROM busybox
COPY --from=owners /made /made
COPY ctxfile /ctxfile
""", "-t", "owners:1")
    assert dy.cli("run", "--rm", "owners:1", "stat", "-c", "%u:%g", "/made/f", "/ctxfile", check=True).stdout == \
        "1000:1000\n0:0\n"


def test_saved_build_loads_into_docker(dy: Dockyard, ctx: Path, tmp_path: Path) -> None:
    """A private dockerd (no bridge, no iptables: it changes nothing on the host) loads what
    ``dockyard save`` wrote of a built image and runs it."""
    import shutil

    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("docker.io is not installed (apt-get install docker.io): the docker oracle is optional")
    (ctx / "msg").write_text("for docker\n")
    _build(dy, ctx, "FROM busybox\nCOPY msg /msg\nRUN echo ran >> /msg\nCMD [\"cat\", \"/msg\"]\n", "-t", "todocker:1")
    saved = tmp_path / "saved.tar"
    dy.cli("save", "-o", str(saved), "todocker:1", check=True)
    base = Path(tempfile.mkdtemp(prefix="dy-docker-", dir="/tmp"))   # dockerd's socket path must be short
    sock = base / "docker.sock"
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    log = open(base / "dockerd.log", "wb")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"), "--pidfile",
         str(base / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge", "none", "--iptables=false",
         "--ip-forward=false", "--ip-masq=false", "--storage-driver", "overlay2"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        assert wait_for(lambda: subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0,
                        timeout=60), (base / "dockerd.log").read_text()[-2000:]
        loaded = subprocess.run(["docker", "load", "-i", str(saved)], env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stderr
        assert "todocker:1" in loaded.stdout
        ran = subprocess.run(["docker", "run", "--rm", "--network", "none", "todocker:1"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == "for docker\nran\n"
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = line.split()[4]
            if point.startswith(str(base) + "/"):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_the_store_stays_consistent_with_a_build_cache(dy: Dockyard, ctx: Path) -> None:
    (ctx / "f").write_text("data\n")
    _build(dy, ctx, "FROM busybox AS a\nCOPY f /f\nRUN cp /f /g\nFROM busybox\nCOPY --from=a /g /g\n", "-t", "chk:1")
    check = dy.cli("system", "check")
    assert check.returncode == 0, check.stdout   # cache-only layers and their tars are neither errors nor leftovers
    dy.cli("rmi", "chk:1", check=True)
    assert dy.cli("system", "check").returncode == 0
    again = _build(dy, ctx, "FROM busybox AS a\nCOPY f /f\nRUN cp /f /g\nFROM busybox\nCOPY --from=a /g /g\n",
                   "-t", "chk:2")
    assert again.stderr.count("CACHED") == 3
    assert dy.cli("run", "--rm", "chk:2", "cat", "/g", check=True).stdout == "data\n"
    dy.cli("rmi", "chk:2", check=True)
    dy.cli("builder", "prune", "-a", "-f", check=True)
    engine = dy.engine()
    try:   # the module's other images stay: only what they hold is left
        images = engine.image_store.list()
        chains = {r[0] for r in engine.db.execute("SELECT chain_id FROM layers")}
        held = set()
        for image in images:
            for chain in image.layers:
                while chain:
                    held.add(chain)
                    chain = engine.layers.get(chain).parent
        assert chains == held
        wanted = set()
        for image in images:
            manifest = engine.image_store.manifest(image)
            wanted |= {image.id, image.manifest_digest} | {d["digest"] for d in manifest["layers"]}
        assert set(engine.content.list()) == wanted
    finally:
        engine.close()
    assert dy.cli("system", "check").returncode == 0


def test_copy_from_a_stage_by_links_gives_what_a_copy_gives(dy: Dockyard, ctx: Path) -> None:
    source = """\
FROM busybox AS src
RUN mkdir -p /data/sub /data/empty && echo one > /data/a && echo two > /data/sub/b && ln /data/a /data/hard \\
    && ln -s a /data/link && chmod 4750 /data/sub/b && chown 7:8 /data/a && mkfifo /data/fifo && touch -d @1000 /data/sub
FROM busybox
RUN mkdir /data && echo old > /data/a
"""
    # By links (a plain COPY --from), and by copies (--link takes the copy path): the same files.
    _build(dy, ctx, source + "COPY --from=src /data /data\nCOPY --from=src /data /fresh\n", "-t", "links:1")
    _build(dy, ctx, source + "COPY --from=src /data /data\nCOPY --link --from=src /data /fresh\n", "-t", "links:2")
    listing = ("cd /fresh && find . | sort | while read f; do stat -c '%n %F %a %u:%g %s %Y' \"$f\"; done; "
               "cat a sub/b; [ $(stat -c %i a) = $(stat -c %i hard) ] && echo hard-link-kept")
    linked = dy.cli("run", "--rm", "links:1", "sh", "-c", listing, check=True).stdout
    copied = dy.cli("run", "--rm", "links:2", "sh", "-c", listing, check=True).stdout
    assert linked.splitlines()[1:] == copied.splitlines()[1:]   # "." itself was made at build time
    assert "./sub/b regular file 4750 0:0 4 " in linked and "./a regular file 644 7:8 4 " in linked
    assert linked.endswith("one\ntwo\nhard-link-kept\n")
    # Over a file already there (/data/a), the copy's replace rules hold.
    assert dy.cli("run", "--rm", "links:1", "cat", "/data/a", check=True).stdout == "one\n"
    engine = dy.engine()
    try:
        image = engine.image_store.find("links:1")
        assert image is not None
        assert (Path(engine.layers.diff_dir(image.layers[-1])) / "fresh" / "a").stat().st_nlink >= 3   # shared
    finally:
        engine.close()
    # A later step that changes a linked file changes its own copy, never the source stage's.
    _build(dy, ctx, source + "COPY --from=src /data /fresh\nRUN echo changed >> /fresh/sub/b\n"
           "FROM src\nCOPY --from=1 /fresh/sub/b /changed\n", "-t", "links:3")
    assert dy.cli("run", "--rm", "links:3", "cat", "/data/sub/b", check=True).stdout == "two\n"
    assert dy.cli("run", "--rm", "links:3", "cat", "/changed", check=True).stdout == "two\nchanged\n"
