"""Pods as a user sees them (podman 4.3's commands and words): members share the infra's network
namespace (one address, ``localhost`` between them, one hostname), the PID namespace when asked,
ports published on the pod; the pod verbs, ``ps --pod``, ``inspect``'s Pod; podman's refusals;
and nothing left behind (containers, network namespaces, firewall rules)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.test_containers_harness import (  # noqa: F401 - fixtures
    Dockyard, dockyard_env, dy, rt, wait_for)
from tests.integration.test_runtime_harness import cgroup_parent  # noqa: F401 - crun's hugetlb fix

pytestmark = pytest.mark.integration

HTTPD = "mkdir -p /www && echo hello-pod > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture
def pods(dy: Dockyard) -> Iterator[Dockyard]:  # noqa: F811
    """``dy`` with every pod removed after the test (before ``dy`` removes the containers)."""
    try:
        yield dy
    finally:
        engine = dy.engine()
        try:
            engine.pods.reset()
        finally:
            engine.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def _ok(dy: Dockyard, *args: str) -> str:  # noqa: F811
    return dy.cli(*args, check=True).stdout


def _eth0(text: str) -> str:
    return re.search(r"inet (\d+\.\d+\.\d+\.\d+)/\d+ .*eth0", text).group(1)


def _rules_mentioning(text: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line]


def test_members_share_one_network_namespace_and_hostname(rt: Dockyard) -> None:  # noqa: F811
    dy = rt
    pod_id = _ok(dy, "pod", "create", "--name", "web").strip()
    try:
        assert re.fullmatch(r"[0-9a-f]{64}", pod_id)
        server = _ok(dy, "run", "-d", "--name", "srv", "--pod", "web", "busybox", "sh", "-c", HTTPD).strip()

        def fetch() -> str | None:
            got = dy.cli("run", "--rm", "--pod", "web", "busybox", "wget", "-qO-", "http://localhost:8080/")
            return got.stdout if got.returncode == 0 else None

        assert wait_for(fetch, timeout=10) == "hello-pod\n"
        inside = _ok(dy, "exec", "srv", "ip", "-4", "addr")
        other = _ok(dy, "run", "--rm", "--pod", "web", "busybox", "ip", "-4", "addr")
        assert _eth0(inside) == _eth0(other)   # one address: the infra's
        assert _ok(dy, "exec", "srv", "hostname") == "web\n"   # podman: the pod's name
        assert _ok(dy, "run", "--rm", "--pod", "web", "busybox", "hostname") == "web\n"
        # without --share pid each member has its own PID namespace: the server is its PID 1
        assert "httpd" not in _ok(dy, "run", "--rm", "--pod", "web", "busybox", "ps")
        # inspect shows the pod (podman's top-level "Pod"); ps --pod its ID and name
        inspected = json.loads(_ok(dy, "inspect", "srv"))[0]
        assert inspected["Pod"] == pod_id
        assert list(inspected)[list(inspected).index("Image") + 1] == "Pod"
        lines = _ok(dy, "ps", "--pod").splitlines()
        assert lines[0].split()[-3:] == ["POD", "ID", "PODNAME"]
        rows = {line.split()[-3]: line.split()[-2:] for line in lines[1:]}
        assert rows == {"srv": [pod_id[:12], "web"], f"{pod_id[:12]}-infra": [pod_id[:12], "web"]}
        assert server.startswith(_ok(dy, "ps", "-q", "--filter", "name=srv").strip())
        plain = _ok(dy, "ps").splitlines()[0]
        assert "POD" not in plain
    finally:
        dy.cli("pod", "rm", "-f", "web")


def test_share_pid_shows_each_others_processes(pods: Dockyard) -> None:
    dy = pods
    _ok(dy, "pod", "create", "--name", "pids", "--share", "net,pid,uts", "--hostname", "pidhost")
    _ok(dy, "run", "-d", "--pod", "pids", "busybox", "sleep", "1001")
    seen = _ok(dy, "run", "--rm", "--pod", "pids", "busybox", "ps")
    assert "sleep 1001" in seen and "/pause" in seen
    assert re.search(r"^\s*1\s+\S+\s+/pause", seen, re.M)   # the infra is the namespace's init
    inspected = json.loads(_ok(dy, "pod", "inspect", "pids"))
    assert inspected["SharedNamespaces"] == ["net", "pid", "uts"] and inspected["Hostname"] == "pidhost"
    assert _ok(dy, "run", "--rm", "--pod", "pids", "busybox", "hostname") == "pidhost\n"


def test_share_uts_joins_the_infras_namespace(pods: Dockyard) -> None:
    """Sharing uts is sharing the namespace, not copying a name: a hostname one member sets is
    the one every member sees, without sharing the network."""
    dy = pods
    _ok(dy, "pod", "create", "--name", "utsonly", "--share", "uts", "--hostname", "before")
    _ok(dy, "run", "-d", "--pod", "utsonly", "--name", "utsa", "busybox", "sleep", "1002")
    assert _ok(dy, "exec", "utsa", "hostname") == "before\n"
    _ok(dy, "run", "--rm", "--pod", "utsonly", "--cap-add", "SYS_ADMIN", "busybox", "hostname", "after")
    assert _ok(dy, "exec", "utsa", "hostname") == "after\n"
    assert _ok(dy, "run", "--rm", "--pod", "utsonly", "busybox", "hostname") == "after\n"


def test_ports_are_published_on_the_pod(pods: Dockyard) -> None:
    dy = pods
    port = _free_port()
    _ok(dy, "pod", "create", "--name", "pub", "-p", f"{port}:8080")
    _ok(dy, "run", "-d", "--pod", "pub", "busybox", "sh", "-c", HTTPD)
    assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=10) == "hello-pod\n"
    assert json.loads(_ok(dy, "pod", "inspect", "pub"))["InfraConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    # a member may not publish: podman's refusal
    refused = dy.cli("run", "-d", "--pod", "pub", "-p", f"{_free_port()}:80", "busybox", "true")
    assert refused.returncode == 125
    assert refused.stderr == ("Error: invalid config provided: published or exposed ports must be defined when "
                              "the pod is created: network cannot be configured when it is shared with a pod\n")
    assert _rules_mentioning(f"--dport {port}")
    _ok(dy, "pod", "rm", "-f", "pub")
    # nothing left: containers, network namespaces, rules, the pod
    assert _ok(dy, "ps", "-aq") == ""
    assert _ok(dy, "pod", "ps", "-q") == ""
    netns = Path(dy.runroot) / "netns"
    assert not netns.exists() or os.listdir(netns) == []
    assert _rules_mentioning(f"--dport {port}") == []
    assert _get(f"http://127.0.0.1:{port}/") is None


def test_pod_lifecycle_ps_and_inspect(pods: Dockyard) -> None:
    dy = pods
    pod_id = _ok(dy, "pod", "create", "--share", "net,pid,ipc,uts", "--label", "tier=front", "life").strip()
    infra = f"{pod_id[:12]}-infra"
    lines = _ok(dy, "pod", "ps").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["POD ID", "NAME", "STATUS", "CREATED", "INFRA ID", "# OF CONTAINERS"]
    row = re.split(r"\s{2,}", lines[1])
    assert row[:3] == [pod_id[:12], "life", "Created"] and row[5] == "1"
    inspected = json.loads(_ok(dy, "pod", "inspect", "life"))
    assert list(inspected)[:6] == ["Id", "Name", "Created", "ExitPolicy", "State", "Hostname"]
    assert {"InfraContainerID", "InfraConfig", "SharedNamespaces", "NumContainers", "Containers"} <= set(inspected)
    assert inspected["Labels"] == {"tier": "front"} and inspected["State"] == "Created"
    assert inspected["Containers"] == [{"Id": inspected["InfraContainerID"], "Name": infra, "State": "created"}]
    member = _ok(dy, "create", "--pod", "life", "--name", "m1", "busybox", "sh", "-c",
                 "echo started-m1; exec sleep 1000").strip()

    def status() -> str:
        return _ok(dy, "pod", "ps", "--filter", "name=^life$", "--format", "{{.Status}} {{.NumberOfContainers}}")

    assert status() == "Created 2\n"
    assert _ok(dy, "pod", "start", "life") == pod_id + "\n"
    assert status() == "Running 2\n"
    assert json.loads(_ok(dy, "pod", "inspect", "life"))["State"] == "Running"
    top = [re.split(r"\s{2,}", line) for line in _ok(dy, "pod", "top", "life").splitlines()]
    assert top[0] == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]   # podman's
    assert top[1][:3] == ["0", "1", "0"] and top[1][-1] == "/pause "   # the infra: PID 1 of the shared namespace
    assert [row[-1] for row in top[2:]] == ["sleep 1000 "]
    assert wait_for(lambda: _ok(dy, "pod", "logs", "life") == f"{member[:12]} started-m1\n", timeout=5)
    assert _ok(dy, "pod", "stop", "life") == pod_id + "\n"
    assert status() == "Exited 2\n"
    _ok(dy, "pod", "restart", "life")
    assert status() == "Running 2\n"
    _ok(dy, "pod", "kill", "life")
    assert status() == "Exited 2\n"
    _ok(dy, "start", "m1")   # a member started alone: its infra comes up first
    assert status() == "Running 2\n"
    assert _ok(dy, "pod", "exists", "life") == ""
    assert dy.cli("pod", "exists", "nosuch").returncode == 1
    # quiet and filtered listings; json
    assert _ok(dy, "pod", "ps", "-q") == pod_id + "\n"
    assert _ok(dy, "pod", "ps", "-q", "--filter", "name=nomatch") == ""
    listed = json.loads(_ok(dy, "pod", "ps", "--format", "json"))
    assert [p["Id"] for p in listed] == [pod_id] and listed[0]["Status"] == "Running"
    assert {c["Names"] for c in listed[0]["Containers"]} == {infra, "m1"}
    assert _ok(dy, "pod", "ps", "--no-trunc", "--format", "{{.ID}} {{.InfraID}}").split() == [
        pod_id, inspected["InfraContainerID"]]
    # prune leaves a running pod alone, removes a stopped one with its containers
    assert _ok(dy, "pod", "prune", "-f") == ""
    _ok(dy, "pod", "stop", "life")
    assert _ok(dy, "pod", "prune", "-f") == pod_id + "\n"
    assert dy.cli("inspect", member).returncode != 0
    assert _ok(dy, "ps", "-aq") == ""


def test_refusals_in_podmans_words(pods: Dockyard) -> None:
    dy = pods
    pod_id = _ok(dy, "pod", "create", "--name", "busy").strip()
    member = _ok(dy, "run", "-d", "--pod", "busy", "busybox", "sleep", "1000").strip()
    infra = json.loads(_ok(dy, "pod", "inspect", "busy"))["InfraContainerID"]
    got = dy.cli("pod", "rm", "busy")
    assert got.returncode == 125
    assert got.stderr == (f"Error: removing container {member} from pod {pod_id}: cannot remove container "
                          f"{member} as it is running - running or paused containers cannot be removed without "
                          "force: container state improper\n")
    got = dy.cli("rm", "-f", infra)
    assert got.returncode == 125
    assert got.stderr == (f"Error: container {infra} is the infra container of pod {pod_id} and cannot be "
                          "removed without removing the pod\n")
    got = dy.cli("run", "--rm", "--pod", "nosuch", "busybox", "true")
    assert (got.returncode, got.stderr) == (125, "Error: no pod with name or ID nosuch found: no such pod\n")
    got = dy.cli("pod", "create", "--name", "busy")
    assert (got.returncode, got.stderr) == (125, 'Error: adding pod to state: name "busy" is in use: pod already '
                                                 "exists\n")
    got = dy.cli("pod", "create", "--name", "bad name")
    assert got.returncode == 125 and "names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*" in got.stderr
    got = dy.cli("pod", "rm", "nosuch")
    assert (got.returncode, got.stderr) == (1, "Error: no pod with name or ID nosuch found: no such pod\n")
    assert dy.cli("pod", "rm", "-f", "nosuch").returncode == 0
    for verb in ("start", "stop", "top"):
        got = dy.cli("pod", verb, "nosuch")
        assert (got.returncode, got.stderr) == (125, "Error: no pod with name or ID nosuch found: no such pod\n")
    got = dy.cli("pod", "inspect", "nosuch")
    assert (got.returncode, got.stderr) == (125, "Error: inspecting object: no such pod nosuch\n")
    got = dy.cli("pod", "create", "--share", "net,bogus")
    assert got.returncode == 125 and "invalid kernel namespace to share: bogus" in got.stderr
    # container prune leaves the (stopped) infra to its pod
    _ok(dy, "pod", "stop", "-t", "0", "busy")
    _ok(dy, "container", "prune", "-f")
    assert json.loads(_ok(dy, "pod", "inspect", "busy"))["InfraContainerID"] == infra
    assert json.loads(_ok(dy, "inspect", infra))[0]["Id"] == infra
    assert _ok(dy, "pod", "rm", "busy") == pod_id + "\n"
    assert _ok(dy, "ps", "-aq") == ""


def test_system_reset_removes_pods(run_cli) -> None:  # noqa: ANN001 - a root of its own: reset wipes it
    import sys

    # two creates at once in a fresh root make the infra image once
    creates = [subprocess.Popen([sys.executable, "-m", "dockyard", "pod", "create", "--name", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outs = [p.communicate(timeout=60) for p in creates]
    assert [p.returncode for p in creates] == [0, 0], outs
    images = run_cli("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    assert images.splitlines() == ["localhost/dockyard-pause:" + __import__("dockyard").__version__]
    ids = {out.strip() for out, _ in outs}
    out = run_cli("system", "reset", "--force", check=True).stdout
    assert {line for line in out.splitlines() if line.startswith("Deleted pod: ")} == {
        f"Deleted pod: {i}" for i in ids}
    assert run_cli("pod", "ps", "-q", check=True).stdout == ""
    assert run_cli("ps", "-aq", check=True).stdout == ""


def test_engine_surface_makes_members_as_run_does(pods: Dockyard) -> None:
    """What kube play and the API use: create, member_fields into a create body, start, members
    (the infra aside), inspect, remove (the containers' IDs)."""
    from dockyard.containers.request import normalise
    from dockyard.pods.service import INFRA_LABEL, POD_LABEL

    engine = pods.engine()
    try:
        pod = engine.pods.create(name="api", labels={"app": "x"}, share=("net", "pid"))
        assert engine.pods.get("api") == engine.pods.get(pod.id[:12]) == pod
        fields = engine.pods.member_fields("api")
        assert fields == {"HostConfig": {"NetworkMode": f"container:{pod.infra_id}",
                                         "PidMode": f"container:{pod.infra_id}"},
                          "Labels": {POD_LABEL: pod.id}}
        body = {"Image": "busybox", "Cmd": ["sleep", "1000"], "Labels": {"mine": "1", **fields["Labels"]},
                "HostConfig": fields["HostConfig"]}
        config, host, networking, _ = normalise(body)
        member = engine.containers.create(config, host, "api-m", networking)
        assert [r.id for r in engine.pods.members("api")] == [member.id]
        infra = engine.containers.get(pod.infra_id)
        assert infra.container_config["Labels"] == {POD_LABEL: pod.id, INFRA_LABEL: "true"}
        assert infra.name == f"{pod.id[:12]}-infra"
        engine.pods.start("api")
        assert engine.containers.get(member.id).status == "running"
        assert [p.id for p in engine.pods.list({"label": ["app=x"], "status": ["running"]})] == [pod.id]
        assert engine.pods.inspect("api")["NumContainers"] == 2
        with pytest.raises(Exception, match="cannot remove container .* as it is running"):
            engine.pods.remove("api")
        assert sorted(engine.pods.remove("api", force=True)) == sorted([member.id, pod.infra_id])
        assert engine.pods.find("api") is None and engine.containers.list(all=True) == []
    finally:
        engine.close()


def test_the_engine_keeps_a_pods_infra_for_every_front_end(pods: Dockyard) -> None:
    """The rules live in the engine, so the API and compose get them as the CLI does: the infra
    is not removed alone nor pruned; a member started alone brings its infra up first."""
    from dockyard.errors import ConflictError

    _ok(pods, "pod", "create", "--name", "kept")
    member = _ok(pods, "create", "--pod", "kept", "busybox", "sleep", "1003").strip()
    engine = pods.engine()
    try:
        pod = engine.pods.get("kept")
        with pytest.raises(ConflictError, match="is the infra container of pod"):
            engine.containers.remove(pod.infra_id)
        assert engine.containers.get(pod.infra_id).status == "created"
        removed, _ = engine.containers.prune()
        assert removed == [member]   # the stopped member goes, the stopped infra stays
        member = _ok(pods, "create", "--pod", "kept", "busybox", "sleep", "1003").strip()
        engine.containers.start_and_wait(member)
        assert engine.containers.get(pod.infra_id).status == "running"
        engine.pods.remove("kept", force=True)
    finally:
        engine.close()


def test_pod_aliases_answer_on_its_network(pods: Dockyard) -> None:
    """engine.pods.create(aliases=...): more DNS names of the pod on a user network (kube play's
    Services), answered for every member."""
    dy = pods
    _ok(dy, "network", "create", "podnet")
    engine = dy.engine()
    try:
        engine.pods.create(name="named", network="podnet", aliases=["svc-a", "svc-b"])
    finally:
        engine.close()
    _ok(dy, "run", "-d", "--pod", "named", "busybox", "sh", "-c", HTTPD)
    for name in ("svc-a", "svc-b", "named"):   # the pod's name too: its infra's hostname
        got = wait_for(lambda n=name: dy.cli("run", "--rm", "--network", "podnet", "busybox", "wget", "-qO-",
                                             f"http://{n}:8080/").stdout, timeout=10)
        assert got == "hello-pod\n", name
    got = dy.cli("pod", "create", "--share", "ipc", "--network", "podnet")
    assert got.returncode == 125 and "you must share network namespace" in got.stderr


def test_go_durations_as_podman_prints_them() -> None:
    from dockyard.pods.top import go_duration

    assert [go_duration(x) for x in (0, 1.982744711, 0.35, 62.5, 3600, 0.000001, 7322.1)] == [
        "0s", "1.982744711s", "350ms", "1m2.5s", "1h0m0s", "1µs", "2h2m2.1s"]
