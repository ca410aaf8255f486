"""The builder's small parts that need no kernel: RUN --mount parsing, cache keys and state,
the progress printer, the CLI's --build-arg/--secret parsing."""

from __future__ import annotations

import io

import pytest

from dockyard.build import cache, mounts
from dockyard.build.dockerfile import DockerfileError
from dockyard.build.progress import Progress

pytestmark = pytest.mark.unit


def test_mount_specs_read_as_buildkit_reads_them() -> None:
    cache_mount, secret, bind, tmpfs = mounts.parse([
        "type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=10",
        "type=secret,id=token",
        "source=conf,target=etc/app,rw",
        "type=tmpfs,target=/scratch,size=64m",
    ], {})
    assert (cache_mount.type, cache_mount.target, cache_mount.id, cache_mount.sharing) == ("cache", "/root/.cache", "pip", "locked")
    assert (cache_mount.mode, cache_mount.uid) == (0o700, 10)
    assert (secret.type, secret.target, secret.id) == ("secret", "/run/secrets/token", "token")
    assert (bind.type, bind.target, bind.source, bind.readonly) == ("bind", "/etc/app", "conf", False)
    assert (tmpfs.type, tmpfs.size) == ("tmpfs", "64m")
    assert mounts.parse(["type=bind,target=/x"], {})[0].readonly is True       # bind mounts are read-only by default
    assert mounts.parse(["type=cache,target=/c/$V"], {"V": "pip"})[0].target == "/c/pip"


@pytest.mark.parametrize("text, message", [
    ("type=ssh", "unsupported mount type 'ssh' (ssh is not supported)"),
    ("type=volume,target=/x", "unsupported mount type 'volume'"),
    ("type=cache", "mount target is required"),
    ("type=cache,target=/x,sharing=sometimes", "unsupported sharing value 'sometimes'"),
    ("type=cache,target=/x,colour=blue", "unexpected key 'colour'"),
    ("type=cache,target=/x,uid=root", "invalid uid 'root'"),
])
def test_bad_mount_specs_are_refused(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as e:
        mounts.parse([text], {})
    assert message in e.value.message


def test_cache_keys_follow_every_input_and_state_keeps_key_order() -> None:
    base = cache.key("sha256:parent", "RUN", ["/bin/sh", "-c", "x"], [("A", "1")])
    assert base == cache.key("sha256:parent", "RUN", ["/bin/sh", "-c", "x"], [("A", "1")])
    assert base != cache.key("sha256:other", "RUN", ["/bin/sh", "-c", "x"], [("A", "1")])
    assert base != cache.key("sha256:parent", "RUN", ["/bin/sh", "-c", "y"], [("A", "1")])
    assert base != cache.key("sha256:parent", "RUN", ["/bin/sh", "-c", "x"], [("A", "2")])
    state = cache.State(config={"z": 1, "a": {"y": 2, "b": 3}}, chains=["sha256:c1"])
    again = cache.State.from_json(state.to_json())
    assert list(again.config) == ["z", "a"] and list(again.config["a"]) == ["y", "b"]   # the image ID depends on it
    assert again.top == "sha256:c1" and cache.State(config={}, chains=[]).top is None


def test_plain_progress_and_the_failure_box() -> None:
    out = io.StringIO()
    progress = Progress(out)
    first = progress.vertex("[stage-0 1/2] FROM busybox")
    first.done()
    step = progress.vertex("[stage-0 2/2] RUN make")
    step.log(b"compiling\npartial")
    step.log(b" line\n")
    step.error('process "/bin/sh -c make" did not complete successfully: exit code: 2')
    text = out.getvalue().splitlines()
    assert text[0] == "#1 [stage-0 1/2] FROM busybox" and text[1].startswith("#1 DONE ")
    assert text[3] == "#2 [stage-0 2/2] RUN make"
    assert text[4].startswith("#2 0.") and text[4].endswith(" compiling")
    assert text[5].endswith(" partial line")
    assert text[6] == '#2 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2'
    box = progress.failure_report("FROM busybox\nRUN make\nRUN true\n", 2)
    assert box == ("------\n > [stage-0 2/2] RUN make:\n#2 compiling\n#2 partial line\n------\n"
                   "--------------------\n   1 |     FROM busybox\n   2 | >>> RUN make\n   3 |     RUN true\n"
                   "--------------------\n")
    quiet = Progress(None)
    quiet.vertex("x").done()   # prints nothing, still counts
    assert quiet.vertices[0].status == "DONE"


def test_build_args_and_secrets_as_docker_reads_them(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    from dockyard.cli import buildops

    monkeypatch.setenv("FROM_ENV", "env-value")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert buildops._build_args(("A=1", "B=", "FROM_ENV", "UNSET_ONE")) == {"A": "1", "B": "", "FROM_ENV": "env-value"}
    with pytest.raises(buildops.UsageError):
        buildops._build_args(("=x",))
    secret = tmp_path / "token"
    secret.write_text("t")
    assert buildops._secrets((f"id=tok,src={secret}",)) == {"tok": str(secret)}
    assert buildops._secrets((f"source={secret}",)) == {"token": str(secret)}
    for bad in ("id=x", "id=x,src=/nonexistent/file", "id=x,src=f,colour=blue", "novalue"):
        with pytest.raises(buildops.UsageError):
            buildops._secrets((bad,))
