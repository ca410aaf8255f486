"""Volume routes and ``/system/df`` through Debian's docker CLI (20.10) against dockyard's API
service, side by side with a private dockerd where the answer's shape or words matter."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.parse
from typing import Iterator

import pytest

pytestmark = pytest.mark.integration


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def raw(api, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), payload


@pytest.fixture
def oracle(docker) -> Iterator:
    yield docker
    ids = docker.run("ps", "-aq").stdout.split()
    if ids:
        docker.run("rm", "-f", *ids)
    names = docker.run("volume", "ls", "-q").stdout.split()
    if names:
        docker.run("volume", "rm", "-f", *names)


def keys(tree: object) -> object:
    if isinstance(tree, dict):
        return {k: keys(v) for k, v in tree.items()}
    return type(tree).__name__


def test_create_inspect_ls_rm_match_dockerd_and_the_dockyard_cli(api, run_cli, oracle) -> None:
    args = ("volume", "create", "--label", "app=web", "--label", "tier=db", "-o", "type=tmpfs", "-o", "device=tmpfs",
            "data")
    assert ok(api.docker(*args)) == ok(oracle.run(*args)) == "data\n"
    ours = json.loads(ok(api.docker("volume", "inspect", "data")))[0]
    theirs = json.loads(ok(oracle.run("volume", "inspect", "data")))[0]
    assert keys(ours) == keys(theirs)
    for field in ("Driver", "Labels", "Name", "Options", "Scope"):
        assert ours[field] == theirs[field], field
    assert ours == json.loads(ok(run_cli("volume", "inspect", "data")))[0]   # the same volume, the same words

    anonymous = ok(api.docker("volume", "create")).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert sorted(ok(api.docker("volume", "ls", "-q")).split()) == sorted(["data", anonymous]) == \
        sorted(ok(run_cli("volume", "ls", "-q")).split())
    assert ok(api.docker("volume", "ls", "-q", "--filter", "label=app=web")).split() == ["data"]
    assert ok(api.docker("volume", "ls", "-q", "--filter", "name=dat")).split() == ["data"]
    assert ok(api.docker("volume", "ls", "-q", "--filter", "driver=other")) == ""

    ok(api.docker("volume", "rm", "data", anonymous))
    assert ok(run_cli("volume", "ls", "-q")) == ""


def test_list_route_shape_and_filters(api, run_cli) -> None:
    ok(run_cli("volume", "create", "free"))
    ok(run_cli("create", "--name", "holder", "-v", "held:/data", "busybox", "true"))
    status, body = raw(api, "GET", "/v1.41/volumes")
    listed = json.loads(body)
    assert status == 200 and list(listed) == ["Volumes", "Warnings"] and listed["Warnings"] == []
    assert sorted(v["Name"] for v in listed["Volumes"]) == ["free", "held"]
    dangling = urllib.parse.quote(json.dumps({"dangling": ["true"]}))
    status, body = raw(api, "GET", f"/volumes?filters={dangling}")
    assert [v["Name"] for v in json.loads(body)["Volumes"]] == ["free"]
    bogus = urllib.parse.quote(json.dumps({"bogus": ["x"]}))
    status, body = raw(api, "GET", f"/volumes?filters={bogus}")
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'bogus'"})
    status, body = raw(api, "POST", "/volumes/create", json.dumps({"Name": "posted", "Labels": {"a": "b"}}).encode())
    assert status == 201 and json.loads(body)["Labels"] == {"a": "b"}
    status, body = raw(api, "GET", "/volumes/nope")
    assert (status, json.loads(body)) == (404, {"message": "get nope: no such volume"})
    run_cli("rm", "-f", "holder")


def test_errors_as_dockerd_words_them(api, run_cli, oracle) -> None:
    for args in (("volume", "inspect", "nope"), ("volume", "rm", "nope"), ("volume", "create", "bad/name"),
                 ("volume", "create", "-d", "nope", "v2")):
        ours, theirs = api.docker(*args), oracle.run(*args)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr), args
    assert api.docker("volume", "rm", "-f", "nope").returncode == 0
    # In use: 409 with dockerd's words, naming the container.
    ok(api.docker("volume", "create", "busy"))
    cid = ok(run_cli("create", "-v", "busy:/data", "busybox", "true")).strip()
    result = api.docker("volume", "rm", "busy")
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: remove busy: volume is in use - [{cid}]\n"
    status, _ = raw(api, "DELETE", "/volumes/busy")
    assert status == 409
    run_cli("rm", "-f", cid)
    ok(api.docker("volume", "rm", "busy"))


def test_prune_removes_unused_anonymous_volumes_as_dockerd(api, run_cli, oracle) -> None:
    for side in (api.docker, oracle.run):
        ok(side("volume", "create", "named"))
    anonymous = ok(api.docker("volume", "create", "--label", "drop=yes")).strip()
    kept = ok(api.docker("volume", "create")).strip()
    ok(oracle.run("volume", "create", "--label", "drop=yes"))
    cid = ok(run_cli("create", "-v", f"{kept}:/data", "busybox", "true")).strip()
    ours = ok(api.docker("volume", "prune", "-f", "--filter", "label=drop=yes"))
    assert ours == f"Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: 0B\n"
    theirs = ok(oracle.run("volume", "prune", "-f", "--filter", "label=drop=yes"))
    assert theirs.startswith("Deleted Volumes:\n") and theirs.endswith("\nTotal reclaimed space: 0B\n")
    # At API 1.41 a prune takes named volumes too (dockerd 20.10; newer ones at that version);
    # at 1.42 only anonymous ones unless the all filter says otherwise.
    ok(api.docker("volume", "create", "--label", "x=y", "named2"))
    status, body = raw(api, "POST", "/v1.42/volumes/prune")
    assert status == 200 and json.loads(body) == {"VolumesDeleted": [], "SpaceReclaimed": 0}
    status, body = raw(api, "POST", "/v1.42/volumes/prune?filters=" + urllib.parse.quote(json.dumps({"all": ["1"], "label": ["x=y"]})))
    assert status == 200 and json.loads(body) == {"VolumesDeleted": ["named2"], "SpaceReclaimed": 0}
    assert ok(api.docker("volume", "prune", "-f")) == ok(oracle.run("volume", "prune", "-f")) == \
        "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    assert ok(run_cli("volume", "ls", "-q")).split() == [kept]   # still used by a container
    run_cli("rm", "-f", cid)


def test_system_df_prints_what_dockyard_counts(api, run_cli) -> None:
    ok(run_cli("run", "--name", "writer", "-v", "store:/data", "busybox", "sh", "-c",
               "head -c 300000 /dev/zero > /data/f; head -c 200000 /dev/zero > /big"))
    ok(run_cli("volume", "create", "spare"))
    ours = ok(api.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}"))
    mine = ok(run_cli("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}"))
    assert ours == mine
    assert ours.splitlines()[:3] == [ours.splitlines()[0], "Containers 1 0 200kB", "Local Volumes 2 1 300kB"]
    assert ours.splitlines()[0].startswith("Images 1 1 ")
    verbose = ok(api.docker("system", "df", "-v"))
    for section in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                    "Build cache usage: 0B"):
        assert section in verbose
    assert re.search(r"^busybox +latest +[0-9a-f]{12} ", verbose, re.M)
    assert re.search(r"^[0-9a-f]{12} +busybox +\"sh -c 'head -c 3000…\" +1 +200kB .* writer$", verbose, re.M)
    assert re.search(r"^store +1 +300kB$", verbose, re.M) and re.search(r"^spare +0 +0B$", verbose, re.M)
    status, body = raw(api, "GET", "/v1.41/system/df")
    df = json.loads(body)
    assert list(df) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache", "BuilderSize"]
    [volume] = [v for v in df["Volumes"] if v["Name"] == "store"]
    assert volume["UsageData"] == {"RefCount": 1, "Size": 300000}


def unix_get(socket_path: str, path: str) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(socket_path)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data.partition(b"\r\n\r\n")[2]


def test_system_df_shape_is_dockerds(api, run_cli, oracle) -> None:
    args = ("--name", "sizer", "-v", "sized:/data", "busybox", "sh", "-c", "echo x > /data/f; echo y > /f")
    ok(run_cli("run", *args))
    ok(oracle.run("run", "--network", "none", *args))
    ours = json.loads(unix_get(str(api.socket), "/v1.41/system/df"))
    theirs = json.loads(unix_get(oracle.env["DOCKER_HOST"][len("unix://"):], "/v1.41/system/df"))
    assert sorted(ours) == sorted(theirs)
    assert set(ours["Images"][0]) == set(theirs["Images"][0])   # the /images/json entry (the image routes')
    assert keys(ours["Volumes"][0]) == keys(theirs["Volumes"][0])
    [our_box] = ours["Containers"]
    [their_box] = theirs["Containers"]
    assert set(our_box) == set(their_box)
    assert (our_box["Names"], our_box["State"], our_box["Mounts"][0]["Name"]) == \
        (their_box["Names"], their_box["State"], their_box["Mounts"][0]["Name"])
    assert ours["Volumes"][0]["UsageData"] == theirs["Volumes"][0]["UsageData"] == {"RefCount": 1, "Size": 2}
    assert our_box["SizeRootFs"] == our_box["SizeRw"] + ours["Images"][0]["Size"] and our_box["SizeRw"] > 0


def test_docker_system_prune_through_the_api(api, run_cli) -> None:
    ok(api.docker("network", "create", "unusednet"))
    anonymous = ok(api.docker("volume", "create")).strip()
    ok(api.docker("volume", "create", "namedvol"))
    cid = ok(run_cli("create", "--name", "stopped", "busybox", "true")).strip()
    result = api.docker("system", "prune", "-f", "--volumes")
    assert result.stdout.startswith(f"Deleted Containers:\n{cid}\n\nDeleted Networks:\nunusednet\n\n"
                                    f"Deleted Volumes:\n{anonymous}\nnamedvol\n\n") or \
        result.stdout.startswith(f"Deleted Containers:\n{cid}\n\nDeleted Networks:\nunusednet\n\n"
                                 f"Deleted Volumes:\nnamedvol\n{anonymous}\n\n"), result.stdout
    assert ok(run_cli("ps", "-aq")) == "" and ok(run_cli("volume", "ls", "-q")) == ""
    assert "unusednet" not in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
    assert result.returncode == 0 and result.stdout.endswith("Total reclaimed space: 0B\n"), result.stderr
