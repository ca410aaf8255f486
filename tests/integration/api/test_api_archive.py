"""``docker cp`` both ways through ``/containers/{id}/archive`` (HEAD, GET, PUT), checked with
dockyard's CLI on the same root and side by side with a private dockerd."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.integration.api.test_api_containers import daemon_error, dockerd_url, ok, request

pytestmark = pytest.mark.integration

SETUP = ("mkdir -p /d/sub /d/empty && echo hi > /d/f && echo deep > /d/sub/g && ln -s /etc /d/l "
         "&& ln -s ../../../../etc/passwd /d/esc && ln -s /hostside /d/out && echo mine > /etc/only-in-container")


@pytest.fixture
def box(run_cli) -> str:  # noqa: ANN001
    """A running container holding /d with a file, a directory and symlinks that point up and out."""
    run_cli("run", "-d", "--name", "box", "busybox", "sleep", "300", check=True)
    run_cli("exec", "box", "sh", "-c", SETUP, check=True)
    return "box"


def cat(run_cli, path: str) -> str:  # noqa: ANN001
    return ok(run_cli("exec", "box", "cat", path))


def path_stat(url: str, container: str, path: str) -> tuple[int, dict | None]:
    status, headers, _ = request(url, "HEAD", f"/v1.41/containers/{container}/archive?path={path}")
    header = headers.get("x-docker-container-path-stat")
    return status, json.loads(base64.b64decode(header)) if header else None


def test_cp_into_the_container(api, run_cli, box, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "inner" / "b.txt").write_text("deep\n")
    os.chown(src / "a.txt", 1234, 2345)
    ok(api.docker("cp", str(src / "a.txt"), "box:/d/"))                  # a file into a directory
    assert cat(run_cli, "/d/a.txt") == "hello\n"
    ok(api.docker("cp", str(src / "a.txt"), "box:/d/renamed.txt"))       # to a path that does not exist
    assert cat(run_cli, "/d/renamed.txt") == "hello\n"
    ok(api.docker("cp", str(src), "box:/d/newdir"))                      # a directory to a new name
    assert cat(run_cli, "/d/newdir/inner/b.txt") == "deep\n"
    ok(api.docker("cp", str(src), "box:/d/sub"))                         # a directory into a directory
    assert cat(run_cli, "/d/sub/src/a.txt") == "hello\n"
    ok(api.docker("cp", f"{src}/.", "box:/d/empty"))                     # a directory's content
    assert sorted(ok(run_cli("exec", "box", "ls", "/d/empty")).split()) == ["a.txt", "inner"]
    # owners: the tar's, as dockerd keeps them (-a gives the container user's, root here)
    assert ok(run_cli("exec", "box", "stat", "-c", "%u:%g", "/d/a.txt")).strip() == "1234:2345"
    ok(api.docker("cp", "-a", str(src / "a.txt"), "box:/d/archived.txt"))
    assert ok(run_cli("exec", "box", "stat", "-c", "%u:%g", "/d/archived.txt")).strip() == "1234:2345"
    # a stream on stdin: a tar unpacked into the directory
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("streamed.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    result = subprocess.run(["/usr/bin/docker", "cp", "-", "box:/d"], input=data.getvalue(), env=api.env,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert cat(run_cli, "/d/streamed.txt") == "abc"


def test_a_user_container_gets_its_user_with_cp_archive(api, run_cli, tmp_path: Path) -> None:
    run_cli("run", "-d", "--name", "user", "--user", "nobody", "busybox", "sleep", "300", check=True)
    (tmp_path / "f").write_text("x")
    ok(api.docker("cp", "-a", str(tmp_path / "f"), "user:/tmp/f"))
    assert ok(run_cli("exec", "user", "stat", "-c", "%u:%g", "/tmp/f")).strip() == "65534:65534"


def test_cp_out_of_the_container(api, run_cli, box, tmp_path: Path) -> None:
    run_cli("exec", "box", "rm", "/d/esc", check=True)   # the docker CLI refuses to write a link that leaves DEST
    ok(api.docker("cp", "box:/d/f", str(tmp_path / "f")))
    assert (tmp_path / "f").read_text() == "hi\n"
    ok(api.docker("cp", "box:/d", str(tmp_path / "d")))
    assert (tmp_path / "d" / "sub" / "g").read_text() == "deep\n"
    assert os.readlink(tmp_path / "d" / "l") == "/etc"
    ok(api.docker("cp", "box:/d/sub/.", str(tmp_path / "content")))
    assert os.listdir(tmp_path / "content") == ["g"]
    ok(api.docker("cp", "box:/d/f", str(tmp_path)))                     # into an existing directory
    assert (tmp_path / "f").read_text() == "hi\n"
    streamed = subprocess.run(["/usr/bin/docker", "cp", "box:/d/sub", "-"], env=api.env, capture_output=True,
                              timeout=60)
    assert streamed.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
        assert sorted(tar.getnames()) == ["sub", "sub/g"]
    # the same bytes as dockyard's own cp
    run_cli("cp", "box:/d/sub/g", str(tmp_path / "by-cli"), check=True)
    assert (tmp_path / "by-cli").read_bytes() == (tmp_path / "d" / "sub" / "g").read_bytes()


def test_symlinks_in_the_container_path_stay_inside_its_root(api, run_cli, box, tmp_path: Path) -> None:
    host_passwd = Path("/etc/passwd").read_text()
    # -L follows /d/esc -> ../../../../etc/passwd inside the container: the container's passwd
    ok(api.docker("cp", "-L", "box:/d/esc", str(tmp_path / "passwd")))
    assert (tmp_path / "passwd").read_text() == cat(run_cli, "/etc/passwd")
    assert (tmp_path / "passwd").read_text() != host_passwd
    # through a directory symlink: the container's /etc, not the host's
    ok(api.docker("cp", "box:/d/l/only-in-container", str(tmp_path / "only")))
    assert (tmp_path / "only").read_text() == "mine\n"
    # a write through /d/out -> /hostside lands in the container's /hostside, never the host's
    assert not os.path.exists("/hostside")
    (tmp_path / "payload").write_text("payload\n")
    result = api.docker("cp", str(tmp_path / "payload"), "box:/d/out/payload")
    assert not os.path.exists("/hostside/payload")
    if result.returncode == 0:
        assert cat(run_cli, "/hostside/payload") == "payload\n"
    # a directory that exists on both sides under one absolute name: the container's gets the file
    both = Path(f"/tmp/dy-cp-both-{uuid.uuid4().hex[:8]}")
    both.mkdir()
    try:
        run_cli("exec", "box", "sh", "-c", f"mkdir -p {both} && ln -s {both} /d/both", check=True)
        ok(api.docker("cp", str(tmp_path / "payload"), "box:/d/both/"))
        assert cat(run_cli, f"{both}/payload") == "payload\n"
        assert os.listdir(both) == []
        ok(api.docker("cp", str(tmp_path / "payload"), "box:/d/both/renamed"))
        assert cat(run_cli, f"{both}/renamed") == "payload\n" and os.listdir(both) == []
    finally:
        both.rmdir()
    # the stat the docker CLI follows links with: the target inside the container
    status, stat = path_stat(api.url, "box", "/d/esc")
    assert status == 200 and stat["linkTarget"] == "/etc/passwd"
    status, stat = path_stat(api.url, "box", "/d/l")
    assert stat["linkTarget"] == "/etc" and stat["mode"] == (1 << 27) | 0o777


def test_cp_with_a_stopped_container(api, run_cli, tmp_path: Path) -> None:
    run_cli("create", "--name", "idle", "busybox", "cat", "/tmp/f", check=True)
    (tmp_path / "f").write_text("before start\n")
    ok(api.docker("cp", str(tmp_path / "f"), "idle:/tmp/f"))
    ok(api.docker("cp", "idle:/tmp/f", str(tmp_path / "back")))
    assert (tmp_path / "back").read_text() == "before start\n"
    assert ok(run_cli("start", "-a", "idle")) == "before start\n"


def test_stat_header_matches_dockerd(api, docker, run_cli, box) -> None:
    name = f"box-{uuid.uuid4().hex[:8]}"
    ok(docker.run("run", "-d", "--name", name, "busybox", "sleep", "300"))
    try:
        ok(docker.run("exec", name, "sh", "-c", SETUP))
        for path in ("/d/f", "/d/sub", "/d/l", "/d/esc", "/d", "/etc/only-in-container"):
            mine_status, mine = path_stat(api.url, "box", path)
            their_status, theirs = path_stat(dockerd_url(docker), name, path)
            assert mine_status == their_status == 200, path
            assert list(mine) == list(theirs), path
            for key in ("name", "mode", "linkTarget"):
                assert mine[key] == theirs[key], (path, key)
            if path in ("/d/f", "/d/l", "/d/esc"):
                assert mine["size"] == theirs["size"], path
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", mine["mtime"])
        mine = request(api.url, "HEAD", "/v1.41/containers/box/archive?path=/nosuch")
        theirs = request(dockerd_url(docker), "HEAD", f"/v1.41/containers/{name}/archive?path=/nosuch")
        assert mine[0] == theirs[0] == 404
        for method in ("GET", "PUT"):
            mine = request(api.url, method, "/v1.41/containers/box/archive")
            theirs = request(dockerd_url(docker), method, f"/v1.41/containers/{name}/archive")
            assert (mine[0], json.loads(mine[2])) == (theirs[0], json.loads(theirs[2])), method
        mine = request(api.url, "PUT", "/v1.41/containers/box/archive?path=/d/f")
        theirs = request(dockerd_url(docker), "PUT", f"/v1.41/containers/{name}/archive?path=/d/f")
        assert (mine[0], json.loads(mine[2])) == (theirs[0], json.loads(theirs[2]))
    finally:
        docker.run("rm", "-f", name)


def test_cp_errors_side_by_side_with_dockerd(api, docker, run_cli, box, tmp_path: Path) -> None:
    name = f"box-{uuid.uuid4().hex[:8]}"
    ok(docker.run("run", "-d", "--name", name, "busybox", "sleep", "300"))
    try:
        ok(docker.run("exec", name, "sh", "-c", SETUP))
        (tmp_path / "f").write_text("x")
        (tmp_path / "dir").mkdir()
        for src, dst in (("C:/nosuch", str(tmp_path / "x")), (str(tmp_path / "f"), "C:/nosuchdir/x"),
                         (str(tmp_path / "f"), "C:/d/f/x"), (str(tmp_path / "dir"), "C:/d/f"),
                         ("nosuch:/d/f", str(tmp_path / "y")), ("C:/d/esc", str(tmp_path / "esc"))):
            mine = api.docker("cp", src.replace("C:", "box:"), dst.replace("C:", "box:"))
            theirs = docker.run("cp", src.replace("C:", f"{name}:"), dst.replace("C:", f"{name}:"))
            assert mine.returncode == theirs.returncode != 0, (src, dst, mine.stderr)
            assert daemon_error(mine)[1].replace("box", "C") == daemon_error(theirs)[1].replace(name, "C"), (src, dst)
    finally:
        docker.run("rm", "-f", name)


def test_large_copies_stream_both_ways(api, run_cli, box, tmp_path: Path) -> None:
    """A 96 MiB file in and out: the same bytes, and the service never holds more than a few
    chunks of it (its peak RSS grows by far less than the file)."""
    import hashlib

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()

    def peak_kib() -> int:
        for line in Path(f"/proc/{api.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")

    before = peak_kib()
    ok(api.docker("cp", str(big), "box:/tmp/big.bin"))
    assert ok(run_cli("exec", "box", "sha256sum", "/tmp/big.bin")).split()[0] == digest
    ok(api.docker("cp", "box:/tmp/big.bin", str(tmp_path / "back.bin")))
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest
    assert peak_kib() - before < 32 * 1024, (before, peak_kib())
