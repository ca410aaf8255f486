"""A service with most container keys, loaded from a file and brought up: what ``inspect`` and
the running container show is what the file asked for (convert.build -> the engine)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest

from dockyard.compose.convert import UnsupportedError
from dockyard.compose.model import LoadOptions, load
from dockyard.compose.project import ComposeProject
from dockyard.engine import Engine

pytestmark = pytest.mark.integration

COMPOSE = """
name: keys
services:
  box:
    image: busybox
    entrypoint: ["sh", "-c"]
    command: ["exec sleep 1000"]
    hostname: boxhost
    domainname: example.test
    user: "1000:1000"
    working_dir: /tmp
    environment: {GREETING: hi}
    labels: {tier: test}
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    read_only: true
    tmpfs: ["/scratch:size=1m"]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    init: true
    stop_signal: SIGKILL
    stop_grace_period: 7s
    extra_hosts: ["registry.local=10.9.8.7"]
    dns_search: [example.test]
    logging: {driver: json-file, options: {max-size: 1m, max-file: "2"}}
    healthcheck: {test: ["CMD", "true"], interval: 1m30s, timeout: 3s, retries: 4, start_period: 2s}
    restart: on-failure:2
    mem_limit: 64m
    cpus: 0.5
    pids_limit: 64
    shm_size: 8m
    expose: ["7000"]
    ports: ["127.0.0.1::8000"]
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs: {size: 65536}
"""


def test_service_keys_reach_the_container(engine: Engine, tmp_path: Path,
                                          run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    p = ComposeProject(engine, load(LoadOptions(files=[str(tmp_path / "compose.yaml")])))
    try:
        p.up()
        info = engine.containers.inspect("keys-box-1")
        c, h = info["Config"], info["HostConfig"]
        assert c["Entrypoint"] == ["sh", "-c"] and c["Cmd"] == ["exec sleep 1000"]
        assert (c["Hostname"], c["Domainname"], c["User"], c["WorkingDir"]) == \
            ("boxhost", "example.test", "1000:1000", "/tmp")
        assert "GREETING=hi" in c["Env"] and c["Labels"]["tier"] == "test"
        assert c["StopSignal"] == "SIGKILL" and c["StopTimeout"] == 7
        assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 90_000_000_000, "Timeout": 3_000_000_000,
                                    "StartPeriod": 2_000_000_000, "Retries": 4}
        assert set(c["ExposedPorts"]) == {"7000/tcp", "8000/tcp"}
        assert h["CapAdd"] == ["CAP_NET_ADMIN"] and h["CapDrop"] == ["CAP_MKNOD"]   # as Docker Compose v2 sends them
        assert h["ReadonlyRootfs"] is True and h["Init"] is True
        assert h["Tmpfs"] == {"/scratch": "size=1m"}
        assert h["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert h["ExtraHosts"] == ["registry.local:10.9.8.7"] and h["DnsSearch"] == ["example.test"]
        assert h["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        assert h["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert (h["Memory"], h["NanoCpus"], h["PidsLimit"], h["ShmSize"]) == (64 << 20, 500_000_000, 64, 8 << 20)
        assert h["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        assert [(m["Type"], m["Target"], m["TmpfsOptions"]) for m in h["Mounts"]] == \
            [("tmpfs", "/cache", {"SizeBytes": 65536})]

        def sh(command: str) -> str:
            return run_cli("exec", "keys-box-1", "sh", "-c", command, check=True).stdout

        assert sh("hostname; id -u; ulimit -n; pwd") == "boxhost\n1000\n1024\n/tmp\n"
        assert ["10.9.8.7", "registry.local"] in [line.split() for line in sh("cat /etc/hosts").splitlines()]
        assert "search example.test" in sh("cat /etc/resolv.conf")
        mounts = sh("cat /proc/mounts")
        assert " /cache tmpfs " in mounts and " /scratch tmpfs " in mounts
        assert run_cli("exec", "keys-box-1", "touch", "/not-writable").returncode != 0   # read_only
        assert p.port("box", 8000).startswith("127.0.0.1:")
    finally:
        p.down()
    assert engine.containers.list(all=True) == []


def test_keys_the_engine_cannot_honour_are_named(engine: Engine, tmp_path: Path) -> None:
    for extra, named in (("gpus: all", "services.box.gpus"),
                         ("storage_opt: {size: 1G}", "services.box.storage_opt"),
                         ("annotations: {com.example.a: b}", "services.box.annotations"),
                         ("deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}",
                          "services.box.deploy.resources.reservations.devices")):
        (tmp_path / "compose.yaml").write_text(f"services:\n  box:\n    image: busybox\n    {extra}\n")
        p = ComposeProject(engine, load(LoadOptions(files=[str(tmp_path / "compose.yaml")])))
        with pytest.raises(UnsupportedError, match=f"^{named.replace('.', '[.]')} is not supported by dockyard$"):
            p.up()
    assert engine.containers.list(all=True) == []
    assert [n.name for n in engine.networks.list()] == ["bridge", "host", "none"]


def test_a_later_service_that_cannot_be_created_stops_the_up_before_anything_starts(
        engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("""
services:
  first:
    image: busybox
    command: ["sleep", "1000"]
  second:
    image: busybox
    depends_on: [first]
    secrets: [token]
    volumes:
      - type: bind
        source: ./missing
        target: /data
        bind: {create_host_path: false}
secrets:
  token: {environment: NO_SUCH_VARIABLE_H2}
""")
    p = ComposeProject(engine, load(LoadOptions(files=[str(tmp_path / "compose.yaml")])))
    with pytest.raises(Exception, match="NO_SUCH_VARIABLE_H2"):
        p.up()
    (tmp_path / "compose.yaml").write_text((tmp_path / "compose.yaml").read_text().replace(
        "    secrets: [token]\n", ""))
    p = ComposeProject(engine, load(LoadOptions(files=[str(tmp_path / "compose.yaml")])))
    with pytest.raises(Exception, match="bind source path does not exist"):
        p.up()
    assert engine.containers.list(all=True) == []
    assert [n.name for n in engine.networks.list()] == ["bridge", "host", "none"]
