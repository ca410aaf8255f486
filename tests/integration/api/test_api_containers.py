"""The container routes of the Engine API, driven by the docker CLI 20.10 through
``dockyard system service`` and checked against dockyard's own CLI on the same root and, where
a shape or an error matters, against a private dockerd (the ``docker`` fixture)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ID = re.compile(r"\b[0-9a-f]{64}\b")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(url: str, method: str, path: str, body: object = None) -> tuple[int, dict[str, str], bytes]:
    """One request to a DOCKER_HOST (unix://PATH): (status, headers, body)."""
    conn = UnixConnection(url[len("unix://"):])
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def dockerd_url(docker) -> str:  # noqa: ANN001
    return docker.env["DOCKER_HOST"]


def daemon_error(result: subprocess.CompletedProcess) -> tuple[int, str]:
    """(exit code, the message after "Error response from daemon:" with IDs replaced)."""
    text = result.stderr.strip()
    text = text.split("Error response from daemon: ", 1)[-1]
    return result.returncode, ID.sub("<id>", text)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sleeper(run_cli):  # noqa: ANN001, ANN201
    """A name for a `dockyard run -d busybox sleep 300` container, started on demand."""
    def start(name: str = "sleeper", *flags: str) -> str:
        result = run_cli("run", "-d", "--name", name, *flags, "busybox", "sleep", "300", check=True)
        return result.stdout.strip()
    return start


# ---------------------------------------------------------------- create, list, inspect, rename, rm

def test_create_ps_inspect_rename_rm_through_the_api_and_the_cli(api, run_cli) -> None:
    cid = ok(api.docker("create", "--name", "web", "-l", "tier=front", "-e", "A=1", "busybox", "sleep", "300")).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    assert ok(api.docker("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Labels}}")).split("\n")[0] == \
        "web Created tier=front"
    # the same container for dockyard's CLI, and the same inspect
    assert ok(run_cli("ps", "-a", "--format", "{{.ID}} {{.Names}}")).strip() == f"{cid[:12]} web"
    through_api = json.loads(ok(api.docker("inspect", "web")))[0]
    through_cli = json.loads(ok(run_cli("inspect", "web")))[0]
    assert through_api["Id"] == through_cli["Id"] == cid
    assert through_api["Config"] == through_cli["Config"]
    assert through_api["HostConfig"] == through_cli["HostConfig"]
    assert through_api["Config"]["Env"] == ["A=1"] and through_api["Config"]["Cmd"] == ["sleep", "300"]
    # and it is stored as `dockyard create` stores the same flags
    run_cli("create", "--name", "twin", "-l", "tier=front", "-e", "A=1", "busybox", "sleep", "300", check=True)
    twin = json.loads(ok(run_cli("inspect", "twin")))[0]
    for key in ("Config", "HostConfig"):
        mine = {k: v for k, v in through_api[key].items() if k != "Hostname"}
        theirs = {k: v for k, v in twin[key].items() if k != "Hostname"}
        assert mine == theirs, key
    exported = subprocess.run("/usr/bin/docker export web | tar t", shell=True, env=api.env, capture_output=True,
                              text=True, timeout=120)   # never started: the image's tree
    assert exported.returncode == 0 and "bin/sh" in exported.stdout.split(), exported.stderr
    ok(api.docker("rename", "web", "web2"))
    assert "web2" in ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()
    ok(api.docker("rm", "web2"))
    assert ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split() == ["twin"]
    assert "twin" in ok(api.docker("ps", "-a", "--format", "{{.Names}}")).split()


def test_docker_run_flags_reach_the_engine_as_dockyard_run_stores_them(api, run_cli) -> None:
    flags = ("-p", "8080:80", "--expose", "9000", "--restart", "on-failure:3", "-m", "64m", "--cpus", "0.5",
             "--pids-limit", "50", "--ulimit", "nofile=512:1024", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
             "--tmpfs", "/run:size=1m", "-v", "/data", "--read-only", "--init", "--hostname", "box", "-w", "/tmp",
             "--entrypoint", "sh", "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--shm-size", "32m",
             "--sysctl", "net.ipv4.ip_forward=1", "--security-opt", "no-new-privileges", "--add-host", "h:10.0.0.1",
             "--dns", "9.9.9.9", "--log-opt", "max-size=1m", "--mac-address", "92:d0:c6:0a:29:33")
    ok(api.docker("create", "--name", "api-made", *flags, "busybox", "-c", "true"))
    run_cli("create", "--name", "cli-made", *flags, "busybox", "-c", "true", check=True)
    api_made = json.loads(ok(run_cli("inspect", "api-made")))[0]
    cli_made = json.loads(ok(run_cli("inspect", "cli-made")))[0]
    for key in ("Config", "HostConfig"):
        assert {k: v for k, v in api_made[key].items()} == {k: v for k, v in cli_made[key].items()}, key
    assert [(m["Type"], m["Destination"]) for m in api_made["Mounts"]] == \
        [(m["Type"], m["Destination"]) for m in cli_made["Mounts"]]
    assert api_made["NetworkSettings"]["Networks"] == cli_made["NetworkSettings"]["Networks"]
    assert api_made["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert api_made["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    more = ("--network", "none", "--ipc", "host", "--pid", "host", "--uts", "host", "--device", "/dev/null:/dev/xnull",
            "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1048576", "--mount", "type=volume,source=named,target=/v",
            "--security-opt", "seccomp=unconfined", "--group-add", "10", "--oom-score-adj", "100",
            "--memory-reservation", "16m", "--cpu-shares", "512", "--cpuset-cpus", "0", "--label", "x=y",
            "--user", "nobody", "-e", "B=2", "--domainname", "example.org", "--privileged")
    ok(api.docker("create", "--name", "api-more", *more, "busybox", "true"))
    run_cli("create", "--name", "cli-more", *more, "busybox", "true", check=True)
    api_more = json.loads(ok(run_cli("inspect", "api-more")))[0]
    cli_more = json.loads(ok(run_cli("inspect", "cli-more")))[0]
    api_more["Config"].pop("Hostname"), cli_more["Config"].pop("Hostname")   # each its own ID's
    for key in ("Config", "HostConfig", "Mounts"):
        assert api_more[key] == cli_more[key], key


def test_create_refuses_what_the_engine_cannot_honour_naming_the_field(api) -> None:
    # a Go client sends every field: zero values are not "set"
    body = {"Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"KernelMemory": 0, "CpuRealtimePeriod": 0, "DeviceRequests": None, "VolumeDriver": "",
                           "StorageOpt": None, "IOMaximumBandwidth": 0, "ConsoleSize": [0, 0]},
            "NetworkingConfig": {"EndpointsConfig": {}}}
    status, _, data = request(api.url, "POST", "/v1.41/containers/create", body)
    assert status == 201, data
    assert set(json.loads(data)) == {"Id", "Warnings"} and json.loads(data)["Warnings"] == []
    for field, value in (("KernelMemory", 64 * 1024 * 1024), ("CpuRealtimeRuntime", 1000),
                         ("DeviceRequests", [{"Driver": "nvidia", "Count": -1}]), ("StorageOpt", {"size": "1G"}),
                         ("VolumeDriver", "flocker")):
        status, headers, data = request(api.url, "POST", "/v1.41/containers/create",
                                        {"Image": "busybox", "HostConfig": {field: value}})
        assert status == 400, (field, data)
        assert headers["content-type"] == "application/json"
        assert field in json.loads(data)["message"]
    status, _, data = request(api.url, "POST", "/v1.41/containers/create",
                              {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {
                                  "bridge": {"IPAMConfig": {"IPv6Address": "fd00::5"}}}}})
    assert status == 400 and "IPv6Address" in json.loads(data)["message"]
    status, _, data = request(api.url, "POST", "/v1.41/containers/create",
                              {"Image": "busybox", "HostConfig": {"Mounts": [
                                  {"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]}})
    assert status == 400 and "bind source path does not exist: /no/such/dir" in json.loads(data)["message"]


def test_create_answers_missing_images_and_names_in_use_as_dockerd(api, docker) -> None:
    name = unique("taken")
    ok(api.docker("create", "--name", name, "busybox"))
    ok(docker.run("create", "--name", name, "busybox"))
    try:
        for body, query in (({"Image": "busybox:nosuch"}, ""), ({"Image": "nosuch"}, ""),
                            ({"Image": "busybox"}, f"?name={name}"), ({"Image": "busybox"}, "?name=bad/name")):
            mine = request(api.url, "POST", "/v1.41/containers/create" + query, body)
            theirs = request(dockerd_url(docker), "POST", "/v1.41/containers/create" + query, body)
            assert mine[0] == theirs[0], (body, query, mine, theirs)
            assert ID.sub("<id>", json.loads(mine[2])["message"]) == ID.sub("<id>", json.loads(theirs[2])["message"])
        # the docker CLI: a 404 for the image makes it say so and pull, as with dockerd
        mine, theirs = api.docker("create", "busybox:nosuch"), docker.run("create", "busybox:nosuch")
        assert mine.returncode == theirs.returncode == 1
        assert mine.stderr.splitlines()[0] == theirs.stderr.splitlines()[0] == \
            "Unable to find image 'busybox:nosuch' locally"
        mine, theirs = api.docker("create", "--name", name, "busybox"), docker.run("create", "--name", name, "busybox")
        assert daemon_error(mine) == daemon_error(theirs)
    finally:
        docker.run("rm", "-f", name)


def test_list_and_inspect_shapes_match_dockerd(api, docker, run_cli) -> None:
    name = unique("shape")
    ok(api.docker("create", "--name", name, "-l", "a=b", "busybox", "sleep", "300"))
    ok(docker.run("create", "--name", name, "-l", "a=b", "busybox", "sleep", "300"))
    try:
        for query in ("?all=1", "?all=1&size=1"):
            _, headers, mine = request(api.url, "GET", "/v1.41/containers/json" + query)
            _, _, theirs = request(dockerd_url(docker), "GET", "/v1.41/containers/json" + query)
            assert headers["content-type"] == "application/json"
            mine_entry = next(c for c in json.loads(mine) if c["Names"] == [f"/{name}"])
            their_entry = next(c for c in json.loads(theirs) if c["Names"] == [f"/{name}"])
            assert list(mine_entry) == list(their_entry), query
            for key in ("Names", "Image", "Command", "Ports", "Labels", "State", "Status", "HostConfig", "Mounts"):
                assert mine_entry[key] == their_entry[key], key
            assert list(mine_entry["NetworkSettings"]["Networks"]["bridge"]) == \
                list(their_entry["NetworkSettings"]["Networks"]["bridge"])
            assert isinstance(mine_entry["Created"], int) and abs(mine_entry["Created"] - time.time()) < 120
        mine = json.loads(ok(api.docker("ps", "-a", "--format", "{{json .}}")).splitlines()[0])
        theirs = json.loads(ok(docker.run("ps", "-a", "--filter", f"name={name}", "--format", "{{json .}}"))
                            .splitlines()[0])
        assert sorted(mine) == sorted(theirs)
        for key in ("Command", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks", "Ports", "State",
                    "Status"):
            assert mine[key] == theirs[key], key
        assert re.fullmatch(r"0B \(virtual [0-9.]+MB\)", mine["Size"])   # the image's size is each engine's own
        mine = json.loads(ok(api.docker("inspect", name)))[0]
        theirs = json.loads(ok(docker.run("inspect", name)))[0]
        assert list(mine) == list(theirs)
        assert list(mine["State"]) == list(theirs["State"])
    finally:
        docker.run("rm", "-f", name)


def test_ps_through_the_api_prints_what_dockyard_ps_prints(api, run_cli, sleeper) -> None:
    run_cli("create", "--name", "first", "-l", "k=v", "busybox", "true", check=True)
    time.sleep(1.1)   # distinct creation seconds: -n and -l pick by creation order
    sleeper("second")
    ok(api.docker("create", "--name", "third", "busybox", "sleep", "1"))
    stable = "{{.ID}} {{.Image}} {{.Command}} {{.Names}} {{.Labels}} {{.State}} {{.Networks}} {{.Mounts}}"
    for args in (("-a",), (), ("-a", "--no-trunc"), ("-q",), ("-aq",), ("-a", "-q", "--no-trunc"), ("-n", "2"),
                 ("-l",), ("-a", "--filter", "label=k=v"), ("-a", "--filter", "status=created"),
                 ("-a", "--filter", "name=sec"), ("-a", "--filter", "ancestor=busybox"), ("-a", "-s"),
                 ("--filter", "status=running", "-q")):
        fmt = () if "-q" in args or "-aq" in args else ("--format", stable + (" {{.Size}}" if "-s" in args else ""))
        mine = api.docker("ps", *args, *fmt)
        theirs = run_cli("ps", *args, *fmt)
        assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout), args
    lines = ok(api.docker("ps", "-a", "--no-trunc")).splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 4 and all(re.match(r"[0-9a-f]{64} ", line) for line in lines[1:])
    sized = ok(api.docker("ps", "-s")).splitlines()
    assert sized[0].endswith("SIZE") and "(virtual " in sized[1]
    bad = api.docker("ps", "--filter", "status=bogus")
    assert (bad.returncode, bad.stderr.strip()) == (1, "Error response from daemon: Invalid filter 'status=bogus'")


# ---------------------------------------------------------------- the lifecycle verbs

def test_rm_of_a_running_container_needs_force(api, run_cli, sleeper) -> None:
    cid = sleeper("busy")
    refused = api.docker("rm", "busy")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"Error response from daemon: You cannot remove a running container {cid}. "
                                      "Stop the container before attempting removal or force remove")
    ok(api.docker("rm", "-f", "busy"))
    assert ok(run_cli("ps", "-a", "-q")) == ""
    missing = api.docker("rm", "busy")
    assert (missing.returncode, missing.stderr.strip()) == (1, "Error: No such container: busy")   # the CLI's words


def test_stop_kill_restart_pause_unpause(api, run_cli, sleeper) -> None:
    sleeper("cycle")

    def state() -> str:
        return ok(run_cli("inspect", "--format", "{{.State.Status}}", "cycle")).strip()

    ok(api.docker("pause", "cycle"))
    assert state() == "paused"
    assert ok(api.docker("ps", "--format", "{{.Status}}")).strip().endswith("(Paused)")
    ok(api.docker("unpause", "cycle"))
    assert state() == "running"
    started = time.monotonic()
    assert ok(api.docker("stop", "-t", "1", "cycle")).strip() == "cycle"
    assert time.monotonic() - started < 8   # sleep ignores TERM: killed after the 1 s given
    assert state() == "exited"
    again = request(api.url, "POST", "/v1.41/containers/cycle/stop")
    assert again[0] == 304   # already stopped: dockerd's answer, which the CLI takes as success
    ok(api.docker("stop", "cycle"))
    ok(api.docker("restart", "-t", "1", "cycle"))
    assert state() == "running"
    first_pid = ok(run_cli("inspect", "--format", "{{.State.Pid}}", "cycle")).strip()
    ok(api.docker("restart", "-t", "1", "cycle"))
    assert ok(run_cli("inspect", "--format", "{{.State.Pid}}", "cycle")).strip() != first_pid
    ok(api.docker("kill", "-s", "KILL", "cycle"))
    deadline = time.monotonic() + 10
    while state() != "exited" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(run_cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "cycle")).strip() == "exited 137"
    for verb in ("stop", "kill", "restart", "pause", "unpause", "rename"):
        status, _, body = request(api.url, "POST", f"/v1.41/containers/nosuch/{verb}?name=x")
        message = ("Cannot kill container: nosuch: " if verb == "kill" else "") + "No such container: nosuch"
        assert (status, json.loads(body)) == (404, {"message": message}), verb


def test_errors_side_by_side_with_dockerd(api, docker, run_cli, sleeper) -> None:
    name, other = unique("errs"), unique("other")
    sleeper(name)
    run_cli("create", "--name", other, "busybox", check=True)
    ok(docker.run("run", "-d", "--name", name, "busybox", "sleep", "300"))
    ok(docker.run("create", "--name", other, "busybox"))
    try:
        cases = [("inspect", "nosuch"), ("stop", "nosuch"), ("kill", "nosuch"), ("rm", "nosuch"), ("top", "nosuch"),
                 ("kill", other), ("rm", name), ("rename", name, other), ("rename", name, name),
                 ("rename", name, "bad/name"), ("pause", other), ("unpause", name), ("top", other),
                 ("update", "--memory", "64m", name), ("diff", "nosuch"), ("stats", "--no-stream", "nosuch"),
                 ("ps", "--filter", "bogus=1"), ("container", "prune", "-f", "--filter", "bogus=1")]
        for args in cases:
            mine, theirs = api.docker(*args), docker.run(*args)
            assert daemon_error(mine) == daemon_error(theirs), args
        for verb in ("pause", "unpause", "kill"):   # the statuses behind those messages
            mine = request(api.url, "POST", f"/v1.41/containers/{other}/{verb}")
            theirs = request(dockerd_url(docker), "POST", f"/v1.41/containers/{other}/{verb}")
            assert mine[0] == theirs[0], verb
    finally:
        docker.run("rm", "-f", name, other)


def test_top_diff_export_stats(api, run_cli, sleeper, tmp_path: Path) -> None:
    sleeper("busy")
    run_cli("exec", "busy", "sh", "-c", "echo x > /tmp/new && rm /bin/arch && mkdir -p /etc/extra", check=True)
    top = ok(api.docker("top", "busy")).splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(line.endswith("sleep 300") for line in top[1:])
    assert ok(api.docker("top", "busy", "-o", "pid,comm")).splitlines()[0].split() == ["PID", "COMMAND"]
    diff = ok(api.docker("diff", "busy")).splitlines()
    assert ok(run_cli("diff", "busy")).splitlines() == diff
    assert {"A /tmp/new", "D /bin/arch", "A /etc/extra", "C /tmp", "C /bin"} <= set(diff)
    tar = tmp_path / "busy.tar"
    ok(api.docker("export", "-o", str(tar), "busy"))
    names = subprocess.run(["tar", "tf", str(tar)], capture_output=True, text=True, check=True).stdout.split()
    assert "tmp/new" in names and "bin/sh" in names and "bin/arch" not in names
    piped = subprocess.run(f"/usr/bin/docker export busy | tar t", shell=True, env=api.env, capture_output=True,
                           text=True, timeout=120)
    assert piped.returncode == 0 and piped.stdout.split() == names
    row = ok(api.docker("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "busy"))
    name, mem, pids, cpu = row.strip().split("|")
    assert name == "busy" and pids == "1" and cpu.endswith("%") and " / " in mem
    table = ok(api.docker("stats", "--no-stream")).splitlines()
    assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and "busy" in table[1]


def test_stats_json_shape_and_streaming(api, docker, sleeper) -> None:
    sleeper("busy")
    name = unique("stats")
    ok(docker.run("run", "-d", "--name", name, "busybox", "sleep", "300"))
    try:
        for query in ("?stream=0", "?stream=0&one-shot=1"):
            _, headers, mine = request(api.url, "GET", "/v1.41/containers/busy/stats" + query)
            _, _, theirs = request(dockerd_url(docker), "GET", f"/v1.41/containers/{name}/stats" + query)
            mine, theirs = json.loads(mine), json.loads(theirs)
            assert headers["content-type"] == "application/json"
            assert set(mine) - {"networks"} == set(theirs), query   # that dockerd's containers have no network
            assert mine["name"] == "/busy" and mine["pids_stats"]["current"] == 1
            for key in ("cpu_usage", "system_cpu_usage", "online_cpus"):
                assert key in mine["cpu_stats"], key
            assert set(mine["memory_stats"]) >= {"usage", "limit", "stats"}
        # a container that is not running: dockerd's zeros, key for key
        ok(api.docker("create", "--name", "idle", "busybox"))
        ok(docker.run("create", "--name", name + "-idle", "busybox"))
        mine = json.loads(request(api.url, "GET", "/v1.41/containers/idle/stats?stream=0")[2])
        theirs = json.loads(request(dockerd_url(docker), "GET", f"/v1.41/containers/{name}-idle/stats?stream=0")[2])
        for answer in (mine, theirs):
            answer.pop("name"), answer.pop("id")
        assert json.dumps(mine) == json.dumps(theirs)
    finally:
        docker.run("rm", "-f", name, name + "-idle")
    # streaming `docker stats` prints a new table every second until stopped
    proc = subprocess.Popen(["/usr/bin/docker", "stats", "--format", "{{.Name}} {{.PIDs}}", "busy"], env=api.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert out.decode().count("busy 1") >= 2, (out, err, api.logs()[-2000:])


def test_update_memory_takes_effect(api, run_cli, sleeper) -> None:
    sleeper("limited", "-m", "32m")
    result = api.docker("update", "--memory", "64m", "--memory-swap", "128m", "--restart", "on-failure:2", "limited")
    assert result.stdout.strip() == "limited", result.stderr
    shown = ok(run_cli("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} "
                                         "{{.HostConfig.RestartPolicy.Name}}", "limited")).strip()
    assert shown == f"{64 * 1024 * 1024} {128 * 1024 * 1024} on-failure"
    limit = ok(api.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "limited")).strip()
    assert limit.endswith("/ 64MiB"), limit
    status, _, body = request(api.url, "POST", "/v1.41/containers/limited/update", {"Memory": 0, "CpuShares": 512,
                                                                                   "KernelMemory": 0})
    assert (status, json.loads(body)) == (200, {"Warnings": []})
    status, _, body = request(api.url, "POST", "/v1.41/containers/limited/update", {"Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]})
    assert status == 400 and "Devices" in json.loads(body)["message"]


def test_container_prune(api, run_cli, sleeper) -> None:
    sleeper("keeps-running")
    run_cli("create", "--name", "old", "-l", "keep=no", "busybox", "true", check=True)
    ok(api.docker("create", "--name", "labelled", "-l", "keep=yes", "busybox", "true"))
    out = ok(api.docker("container", "prune", "-f", "--filter", "label=keep=no"))
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert sorted(ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()) == ["keeps-running", "labelled"]
    status, _, body = request(api.url, "POST", "/v1.41/containers/prune")
    answer = json.loads(body)
    assert status == 200 and set(answer) == {"ContainersDeleted", "SpaceReclaimed"}
    assert len(answer["ContainersDeleted"]) == 1 and isinstance(answer["SpaceReclaimed"], int)
    assert ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split() == ["keeps-running"]
    status, _, body = request(api.url, "POST", "/v1.41/containers/prune")
    assert json.loads(body) == {"ContainersDeleted": None, "SpaceReclaimed": 0}


def test_a_client_leaving_an_export_midway_leaks_nothing(api, run_cli, sleeper) -> None:
    sleeper("big")
    run_cli("exec", "big", "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=48", check=True)
    pid = api.process.pid

    def descriptors() -> int:
        """The service's open descriptors but a worker engine's DB files (each pool thread has its own)."""
        count = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += "dockyard.db" not in os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
        return count

    def leave_midway(clients: int) -> None:
        for _ in range(clients):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(api.socket))
            sock.sendall(b"GET /v1.41/containers/big/export HTTP/1.1\r\nHost: docker\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.close()   # gone after the first bytes, with tens of MiB still to come

    status, _, body = request(api.url, "GET", "/v1.41/containers/big/export")
    assert status == 200 and len(body) > 48 * 1024 * 1024
    baseline = descriptors()
    for _ in range(2):
        leave_midway(10)
        deadline = time.monotonic() + 30
        while descriptors() > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        # every producer ended: its connection and the descriptors of its walk are closed
        assert descriptors() <= baseline, (baseline, os.listdir(f"/proc/{pid}/fd"), api.logs()[-2000:])
    status, _, _ = request(api.url, "GET", "/v1.41/containers/big/json")
    assert status == 200


def test_rm_v_removes_the_anonymous_volumes(api, run_cli) -> None:
    ok(api.docker("create", "--name", "vols", "-v", "/data", "busybox", "true"))
    volume = json.loads(ok(api.docker("inspect", "vols")))[0]["Mounts"][0]["Name"]
    assert volume in ok(run_cli("volume", "ls", "-q")).split()
    ok(api.docker("rm", "-v", "vols"))
    assert volume not in ok(run_cli("volume", "ls", "-q")).split()


def test_create_platform_and_relative_binds_as_dockerd(api, docker) -> None:
    for body, query in (({"Image": "busybox"}, "?platform=linux/arm64"), ({"Image": "busybox"}, "?platform=bogus"),
                        ({"Image": "busybox", "HostConfig": {"Binds": ["./rel:/x"]}}, ""),
                        ({"Image": "busybox", "HostConfig": {"Binds": ["rel/x:/x"]}}, "")):
        mine = request(api.url, "POST", "/v1.41/containers/create" + query, body)
        theirs = request(dockerd_url(docker), "POST", "/v1.41/containers/create" + query, body)
        assert (mine[0], json.loads(mine[2])) == (theirs[0], json.loads(theirs[2])), (body, query)
    status, _, data = request(api.url, "POST", "/v1.41/containers/create?platform=linux/amd64",
                              {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201, data


def test_prune_keeps_what_label_not_names(api, run_cli) -> None:
    run_cli("create", "--name", "keep", "-l", "keep=1", "busybox", "true", check=True)
    run_cli("create", "--name", "drop", "busybox", "true", check=True)
    out = ok(api.docker("container", "prune", "-f", "--filter", "label!=keep"))
    assert out.startswith("Deleted Containers:\n")
    assert ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split() == ["keep"]


def test_inspect_right_after_a_restart_sees_it_running(api, sleeper) -> None:
    """A client that inspects the moment restart answers (docker-py's restart then reload) must
    not find the new shim taken for dead: the old shim's start time went with the old shim."""
    sleeper("quick")
    for _ in range(3):
        status, _, _ = request(api.url, "POST", "/v1.41/containers/quick/restart?t=0")
        assert status == 204
        _, _, body = request(api.url, "GET", "/v1.41/containers/quick/json")
        state = json.loads(body)["State"]
        assert (state["Status"], state["ExitCode"], state["Error"]) == ("running", 0, ""), state


def test_docker_py_walks_the_container_routes(api, run_cli, tmp_path: Path) -> None:
    docker_py = pytest.importorskip("docker")
    import io
    import tarfile

    client = docker_py.DockerClient(base_url=api.url)
    try:
        (tmp_path / "shared").mkdir()
        made = client.containers.create("busybox", ["sleep", "300"], name="py", labels={"a": "b"},
                                        environment={"K": "V"}, mem_limit="64m", ports={"80/tcp": None},
                                        volumes={str(tmp_path / "shared"): {"bind": "/shared", "mode": "ro"}})
        assert (made.name, made.status, made.labels) == ("py", "created", {"a": "b"})
        assert "py" in ok(run_cli("ps", "-a", "--format", "{{.Names}}")).split()
        got = client.containers.get("py")
        assert got.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
        assert got.attrs["HostConfig"]["Binds"] == [f"{tmp_path / 'shared'}:/shared:ro"]
        assert [m["Destination"] for m in got.attrs["Mounts"]] == ["/shared"]
        assert [c.name for c in client.containers.list(all=True, filters={"label": "a=b"})] == ["py"]
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
        assert made.put_archive("/tmp", data.getvalue()) is True
        chunks, stat = made.get_archive("/tmp/hello.txt")
        assert stat["name"] == "hello.txt" and stat["size"] == 5
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            assert tar.extractfile("hello.txt").read() == b"hello"
        assert {"Path": "/tmp/hello.txt", "Kind": 1} in made.diff()
        assert b"".join(made.export())[:512].rstrip(b"\0")   # a tar, streamed
        made.rename("py2")
        made.reload()
        assert made.name == "py2"
        run_cli("start", "py2", check=True)
        made.reload()
        assert made.top()["Titles"][-1] == "CMD"
        sample = made.stats(stream=False)
        assert sample["name"] == "/py2" and sample["memory_stats"]["limit"] == 64 * 1024 * 1024
        assert made.update(mem_limit="128m", memswap_limit="256m") == {"Warnings": []}
        made.pause()
        made.reload()
        assert made.status == "paused"
        made.unpause()
        made.restart(timeout=0)
        made.reload()
        assert made.status == "running"
        made.kill()
        made.wait(timeout=30)
        assert client.containers.prune()["ContainersDeleted"] == [made.id]
        assert ok(run_cli("ps", "-a", "-q")) == ""
    finally:
        client.close()


def test_many_stats_streams_pin_no_worker(api, sleeper) -> None:
    """`docker stats` opens a stream per container: 40 of them (more than the service's worker
    threads) leave the API answering, and end when their clients leave."""
    sleeper("watched")
    streams = []
    try:
        for _ in range(40):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(str(api.socket))
            sock.sendall(b"GET /v1.41/containers/watched/stats HTTP/1.1\r\nHost: docker\r\n\r\n")
            streams.append(sock)
        for sock in streams:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        status, _, _ = request(api.url, "GET", "/v1.41/containers/json")
        assert status == 200 and time.monotonic() - started < 5
    finally:
        for sock in streams:
            sock.close()
    status, _, _ = request(api.url, "GET", "/v1.41/containers/watched/json")
    assert status == 200


def test_kill_answers_once_the_container_is_dead(api, sleeper) -> None:
    """dockerd's SIGKILL is a Kill: it answers after the container stopped, so an inspect right
    after sees it exited (docker-py's kill then reload; the default signal and -s KILL alike)."""
    for name, args in (("k-default", ()), ("k-named", ("-s", "KILL")), ("k-number", ("-s", "9"))):
        cid = sleeper(name, "--network", "none")
        status, _, _ = request(api.url, "POST", f"/v1.41/containers/{cid}/kill"
                               + ("" if not args else f"?signal={args[1]}"))
        assert status == 204
        status, _, body = request(api.url, "GET", f"/v1.41/containers/{cid}/json")
        state = json.loads(body)["State"]
        assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False), name
