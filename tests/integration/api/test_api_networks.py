"""Network routes through Debian's docker CLI (20.10) against dockyard's API service, side by side
with a private dockerd where the answer's shape or words matter (its dockerd runs with
``--bridge none``, so shapes are compared on user networks)."""

from __future__ import annotations

import json
import subprocess
from typing import Iterator

import pytest

pytestmark = pytest.mark.integration

SUBNET = "10.231.7.0/24"   # the same on both sides: the private dockerd has no bridge to clash with


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


@pytest.fixture
def oracle(docker) -> Iterator:
    """The module's private dockerd, left without this test's networks and containers."""
    yield docker
    ids = docker.run("ps", "-aq").stdout.split()
    if ids:
        docker.run("rm", "-f", *ids)
    docker.run("network", "prune", "-f")


def keys(tree: object) -> object:
    """The key structure of a JSON value (values dropped), to compare shapes."""
    if isinstance(tree, dict):
        return {k: keys(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [keys(v) for v in tree[:1]]
    return type(tree).__name__


def test_create_inspect_ls_rm_match_dockerd_and_the_dockyard_cli(api, run_cli, oracle) -> None:
    args = ("network", "create", "--subnet", SUBNET, "--gateway", "10.231.7.254", "--ip-range", "10.231.7.128/25",
            "--label", "tier=front", "--internal", "-o", "com.docker.network.driver.mtu=1400", "front")
    net_id = ok(api.docker(*args)).strip()
    ok(oracle.run(*args))
    assert len(net_id) == 64
    # The dockyard CLI sees the same network, with what the API was given.
    rows = ok(run_cli("network", "ls", "--no-trunc", "--filter", "name=front", "--format",
                      "{{.ID}} {{.Name}} {{.Internal}} {{.Label \"tier\"}}")).split()
    assert rows == [net_id, "front", "true", "front"]

    ours = json.loads(ok(api.docker("network", "inspect", "front")))[0]
    theirs = json.loads(ok(oracle.run("network", "inspect", "front")))[0]
    assert keys(ours) == keys(theirs)
    for field in ("Name", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Options", "Labels", "Containers"):
        assert ours[field] == theirs[field], field
    assert ours["Id"] == net_id

    # The list: dockerd's fields, Containers left empty; the filters apply.
    listed = json.loads(ok(api.docker("network", "ls", "--filter", "label=tier=front", "--format", "{{json .}}")))
    assert listed["Name"] == "front" and listed["Internal"] == "true"
    assert ok(api.docker("network", "ls", "-q", "--filter", "name=nothing-like-it")) == ""
    assert ok(api.docker("network", "ls", "--format", "{{.Name}}")).split() == \
        ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()

    ok(api.docker("network", "rm", "front"))
    ok(oracle.run("network", "rm", "front"))
    assert "front" not in ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()


def test_list_route_shape_and_filters(api) -> None:
    import urllib.parse

    ok(api.docker("network", "create", "--label", "a=b", "shaped"))
    status, body = raw(api, "GET", "/v1.41/networks?filters=" + urllib.parse.quote(json.dumps({"name": ["shaped"]})))
    assert status == 200
    [net] = json.loads(body)
    assert list(net) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable",
                         "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    assert net["Labels"] == {"a": "b"} and net["Containers"] == {}
    for key in ("bogus", "until"):
        status, body = raw(api, "GET", "/networks?filters=" + urllib.parse.quote(json.dumps({key: ["1"]})))
        assert (status, json.loads(body)) == (400, {"message": f"Invalid filter '{key}'"})
    for key, value, names in (("driver", "bridge", ["shaped"]), ("type", "custom", ["shaped"]),
                              ("label", "a=b", ["shaped"]), ("label", "a=c", []), ("scope", "local", ["shaped"]),
                              ("dangling", "true", ["shaped"]), ("dangling", "false", [])):
        query = urllib.parse.quote(json.dumps({key: [value], "name": ["shaped"]}))
        status, body = raw(api, "GET", "/networks?filters=" + query)
        assert [n["Name"] for n in json.loads(body)] == names, (key, value)
    status, body = raw(api, "GET", "/networks/shaped?scope=swarm")
    assert (status, json.loads(body)) == (404, {"message": "network shaped not found"})
    status, body = raw(api, "GET", "/networks/shaped?scope=local&verbose=true")
    assert status == 200 and json.loads(body)["Name"] == "shaped"


def raw(api, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(api.socket))
    head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n" \
           f"Content-Length: {len(body)}\r\n\r\n".encode()
    sock.sendall(head + body)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), payload


def test_create_body_fields_and_errors(api) -> None:
    body = {"Name": "made", "CheckDuplicate": True, "Driver": "bridge", "Internal": True, "Attachable": True,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.231.9.0/24", "Gateway": "10.231.9.1",
                                                      "IPRange": "10.231.9.64/26"}]},
            "EnableIPv6": False, "Options": {"com.docker.network.driver.mtu": "1450"}, "Labels": {"k": "v"}}
    status, answer = raw(api, "POST", "/v1.41/networks/create", json.dumps(body).encode())
    assert status == 201, answer
    created = json.loads(answer)
    assert list(created) == ["Id", "Warning"] and created["Warning"] == ""
    inspect = json.loads(ok(api.docker("network", "inspect", "made")))[0]
    assert inspect["Id"] == created["Id"] and inspect["Internal"] is True
    # dockerd shows a gateway only when it was not the first address (the one it would choose)
    assert inspect["IPAM"]["Config"] == [{"Subnet": "10.231.9.0/24", "IPRange": "10.231.9.64/26"}]
    assert inspect["Options"] == {"com.docker.network.driver.mtu": "1450"} and inspect["Labels"] == {"k": "v"}

    status, answer = raw(api, "POST", "/networks/create", json.dumps({"Name": "made"}).encode())
    assert (status, json.loads(answer)) == (409, {"message": "network with name made already exists"})
    status, answer = raw(api, "POST", "/networks/create", json.dumps({"Name": "x", "Driver": "bogus"}).encode())
    assert (status, json.loads(answer)) == (404, {"message": 'plugin "bogus" not found'})
    status, answer = raw(api, "POST", "/networks/create", json.dumps({"Name": "x", "EnableIPv6": True}).encode())
    assert status == 400 and "IPv6" in json.loads(answer)["message"]
    two = {"Name": "x", "IPAM": {"Config": [{"Subnet": "10.231.10.0/24"}, {"Subnet": "10.231.11.0/24"}]}}
    status, answer = raw(api, "POST", "/networks/create", json.dumps(two).encode())
    assert status == 400 and "one IPAM config" in json.loads(answer)["message"]
    assert "x" not in ok(api.docker("network", "ls", "--format", "{{.Name}}")).split()


def test_errors_as_dockerd_words_them(api, oracle) -> None:
    for args in (("network", "create", "twice"), ("network", "create", "twice"),
                 ("network", "inspect", "nope"), ("network", "rm", "nope"), ("network", "rm", "none"),
                 ("network", "rm", "host")):
        ours, theirs = api.docker(*args), oracle.run(*args)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr), args
    # The default bridge exists here (not in the private dockerd): dockerd's words for it.
    result = api.docker("network", "rm", "bridge")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: bridge is a pre-defined network and cannot be removed\n"
    status, answer = raw(api, "DELETE", "/networks/bridge")
    assert status == 403


def test_connect_and_disconnect_a_container(api, run_cli, oracle) -> None:
    ok(api.docker("network", "create", "--subnet", SUBNET, "backend"))
    ok(oracle.run("network", "create", "--subnet", SUBNET, "backend"))
    ok(run_cli("create", "--name", "app", "busybox", "sleep", "60"))   # the container routes are another module's
    ok(oracle.run("create", "--name", "app", "busybox", "sleep", "60"))
    for side in (api.docker, oracle.run):
        ok(side("network", "connect", "--alias", "db", "--ip", "10.231.7.50", "backend", "app"))
    settings = json.loads(ok(run_cli("inspect", "--format", "{{json .NetworkSettings.Networks}}", "app")))
    assert settings["backend"]["IPAMConfig"] == {"IPv4Address": "10.231.7.50"}
    assert "db" in settings["backend"]["Aliases"]
    # Connected again, and disconnecting what is not connected: errors, as dockerd's.
    again = api.docker("network", "connect", "backend", "app")
    assert again.returncode == 1 and "already exists in network backend" in again.stderr
    status, answer = raw(api, "POST", "/networks/backend/connect",
                         json.dumps({"Container": "app", "EndpointConfig": {"Links": ["other:alias"],
                                                                            "Aliases": []}}).encode())
    assert (status, json.loads(answer)) == (400, {"message": "EndpointConfig Links is not supported by dockyard"})
    missing = ("network", "connect", "backend", "no-such-container")
    ours, theirs = api.docker(*missing), oracle.run(*missing)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)

    for side in (api.docker, oracle.run):
        ok(side("network", "disconnect", "--force", "backend", "app"))
    settings = json.loads(ok(run_cli("inspect", "--format", "{{json .NetworkSettings.Networks}}", "app")))
    assert "backend" not in settings
    result = api.docker("network", "disconnect", "backend", "app")
    assert result.returncode == 1 and "is not connected to" in result.stderr
    run_cli("rm", "-f", "app")


def test_connect_a_running_container_plugs_it_in(api, run_cli) -> None:
    ok(api.docker("network", "create", "--subnet", "10.231.12.0/24", "live"))
    ok(run_cli("run", "-d", "--name", "runner", "busybox", "sleep", "60"))
    try:
        ok(api.docker("network", "connect", "--ip", "10.231.12.9", "live", "runner"))
        addresses = ok(run_cli("exec", "runner", "ip", "-4", "addr"))
        assert "10.231.12.9/24" in addresses
        inspect = json.loads(ok(api.docker("network", "inspect", "live")))[0]
        [(cid, entry)] = inspect["Containers"].items()
        assert entry["Name"] == "runner" and entry["IPv4Address"] == "10.231.12.9/24"
        rm = api.docker("network", "rm", "live")
        assert rm.returncode == 1 and "has active endpoints" in rm.stderr
        ok(api.docker("network", "disconnect", "live", "runner"))
        assert "10.231.12.9" not in ok(run_cli("exec", "runner", "ip", "-4", "addr"))
    finally:
        run_cli("rm", "-f", "runner")


def test_prune_removes_unused_user_networks_only(api, run_cli, oracle) -> None:
    for side in (api.docker, oracle.run):
        ok(side("network", "create", "--label", "keep=no", "unused"))
        ok(side("network", "create", "--label", "keep=yes", "kept"))
    ours = ok(api.docker("network", "prune", "-f", "--filter", "label=keep=no"))
    theirs = ok(oracle.run("network", "prune", "-f", "--filter", "label=keep=no"))
    assert ours == theirs == "Deleted Networks:\nunused\n\n"
    # A network only a running container holds is in use (dockerd counts live endpoints only).
    ok(api.docker("network", "create", "--subnet", "10.231.13.0/24", "used"))
    ok(run_cli("run", "-d", "--name", "user", "--network", "used", "busybox", "sleep", "60"))
    try:
        assert ok(api.docker("network", "prune", "-f")) == "Deleted Networks:\nkept\n\n"
        names = ok(run_cli("network", "ls", "--format", "{{.Name}}")).split()
        assert "used" in names and "bridge" in names and "kept" not in names
    finally:
        run_cli("rm", "-f", "user")


def test_docker_compose_v2s_endpoint_fields_are_taken(api, run_cli) -> None:
    """Docker Compose v2 sends a service's ipv4_address as EndpointsConfig.IPAddress too, and its
    links per endpoint: the address is the one given, the link's alias reaches the linked container."""
    import docker as docker_py

    client = docker_py.APIClient(base_url=api.url, version="1.41")
    run_cli("network", "create", "--subnet", "10.231.7.0/24", "v2net", check=True)
    run_cli("run", "-d", "--name", "target", "--network", "v2net", "busybox", "sleep", "60", check=True)
    endpoint = {"IPAMConfig": {"IPv4Address": "10.231.7.50"}, "IPAddress": "10.231.7.50",
                "Links": ["target:db"], "Aliases": ["web_app"]}
    created = client.create_container("busybox", ["sh", "-c", "ping -c1 -W2 db >/dev/null && hostname -i"],
                                      name="linker", host_config=client.create_host_config(network_mode="v2net"),
                                      networking_config={"EndpointsConfig": {"v2net": endpoint}})
    client.start(created["Id"])
    assert client.wait(created["Id"], timeout=30)["StatusCode"] == 0, client.logs(created["Id"])
    assert client.logs(created["Id"]).decode().split() == ["10.231.7.50"]
    assert client.inspect_container("linker")["HostConfig"]["Links"] == ["/target:/linker/db"]
    run_cli("rm", "-f", "linker", "target", check=True)
    run_cli("network", "rm", "v2net", check=True)
