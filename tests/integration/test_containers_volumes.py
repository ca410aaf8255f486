"""Volumes (named, anonymous, binds, --mount, tmpfs; the volume commands) and cp."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.integration.test_containers_harness import dockyard_env, dy, Dockyard  # noqa: F401 - fixtures


def test_named_volume_persists_across_rm_and_copies_image_content(dy: Dockyard) -> None:
    dy.cli("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo persisted > /data/f", check=True)
    assert dy.cli("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f").stdout == "persisted\n"
    # first use over a directory the image has: the volume starts with the image's content
    assert "passwd" in dy.cli("run", "--rm", "-v", "etcvol:/etc", "busybox", "ls", "/etc").stdout.split()
    info = json.loads(dy.cli("volume", "inspect", "keep", check=True).stdout)[0]
    assert info["Name"] == "keep" and info["Driver"] == "local" and Path(info["Mountpoint"], "f").exists()
    assert set(dy.cli("volume", "ls", "-q").stdout.split()) == {"keep", "etcvol"}
    dy.cli("create", "--name", "holder", "-v", "keep:/data", "busybox", "true", check=True)
    busy = dy.cli("volume", "rm", "keep")
    assert busy.returncode == 1 and "volume is in use" in busy.stderr
    dy.cli("rm", "holder", check=True)
    assert dy.cli("volume", "rm", "keep", "etcvol", check=True).stdout == "keep\netcvol\n"


def test_anonymous_volume_and_rm_v(dy: Dockyard) -> None:
    dy.cli("run", "--name", "anon", "-v", "/scratch", "busybox", "touch", "/scratch/x", check=True)
    mounts = json.loads(dy.cli("inspect", "anon").stdout)[0]["Mounts"]
    assert mounts[0]["Type"] == "volume" and len(mounts[0]["Name"]) == 64
    dy.cli("rm", "-v", "anon", check=True)
    assert dy.cli("volume", "ls", "-q").stdout == ""


def test_binds_mount_flag_and_tmpfs(dy: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host\n")
    script = "cat /in/in.txt; echo back > /rw/out.txt; touch /in/nope 2>/dev/null || echo ro; " \
             "grep ' /t ' /proc/mounts | cut -d' ' -f3"
    rw = tmp_path / "rw"
    result = dy.cli("run", "--rm", "-v", f"{tmp_path}:/in:ro", "--mount", f"type=bind,source={tmp_path},target=/rw",
                    "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from host\nro\ntmpfs\n"
    assert (tmp_path / "out.txt").read_text() == "back\n"
    missing = dy.cli("run", "--rm", "--mount", f"type=bind,source={rw}/missing,target=/x", "busybox", "true")
    assert missing.returncode == 125 and "bind source path does not exist" in missing.stderr


def test_cp_both_ways(dy: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a").write_text("A\n")
    dy.cli("run", "-d", "--name", "box", "busybox", "sleep", "60", check=True)
    dy.cli("cp", tmp_path / "hello.txt", "box:/tmp/", check=True)         # into an existing directory
    dy.cli("cp", tmp_path / "tree", "box:/tmp/newtree", check=True)       # a directory under a new name
    dy.cli("cp", tmp_path / "hello.txt", "box:/renamed.txt", check=True)  # a file under a new name
    listing = dy.cli("exec", "box", "sh", "-c", "cat /tmp/hello.txt /tmp/newtree/a /renamed.txt").stdout
    assert listing == "hi\nA\nhi\n"
    out = tmp_path / "out"
    out.mkdir()
    dy.cli("cp", "box:/etc/passwd", out, check=True)
    dy.cli("cp", "box:/tmp/newtree", out / "copied", check=True)
    assert "root:" in (out / "passwd").read_text() and (out / "copied" / "a").read_text() == "A\n"
    missing = dy.cli("cp", "box:/nope", out)
    assert missing.returncode == 1 and "Could not find the file /nope in container box" in missing.stderr
    # a stopped container: through a temporary mount of its rootfs
    dy.cli("stop", "-t", "0", "box", check=True)
    dy.cli("cp", "box:/renamed.txt", out / "after-stop.txt", check=True)
    assert (out / "after-stop.txt").read_text() == "hi\n"
    dy.cli("cp", tmp_path / "hello.txt", "box:/stopped.txt", check=True)
    dy.cli("start", "box", check=True)
    assert dy.cli("exec", "box", "cat", "/stopped.txt").stdout == "hi\n"
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert len([p for p in points if p.startswith(str(dy.root))]) == 1  # the temporary mounts are gone
    # tar out to stdout
    tar_bytes = subprocess.run([sys.executable, "-m", "dockyard", "cp", "box:/tmp/newtree", "-"], env=dy.env,
                               capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert sorted(tar.getnames()) == ["newtree", "newtree/a"]
