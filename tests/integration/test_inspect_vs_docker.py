"""``inspect`` side by side with Docker 20.10: the same busybox, the same ``create``/``run``
commands against a private dockerd and against dockyard, and the key trees compared (every
dotted key path and the JSON type at it). What may differ is listed below, each with its reason;
values a user reads (HostConfig defaults, mount specs, Env, Hostname, sizes) are compared too."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.testing import dockerd

ZERO_TIME = "0001-01-01T00:00:00Z"
NANO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

# Maps whose keys are data (names, ports, labels): their entries count as one "*" path.
_DATA_MAPS = {"NetworkSettings.Networks", "NetworkSettings.Ports", "Config.Labels", "Config.Volumes",
              "Config.ExposedPorts", "HostConfig.PortBindings", "HostConfig.LogConfig.Config", "HostConfig.Tmpfs",
              "HostConfig.Sysctls", "HostConfig.StorageOpt", "ContainerConfig.Labels"}

# Key paths allowed to differ, with the reason.
CONTAINER_ALLOWED = {
    "Config.NetworkDisabled": "the private dockerd runs with --bridge none, so Docker marks every container on "
                              "the default network network-disabled; a normal daemon (and --network none) omits it",
    "NetworkSettings.Networks.*.DNSNames": "dockyard's network code prints Docker 25's DNSNames beside 20.10's keys",
}
IMAGE_ALLOWED = {
    "GraphDriver.Data.MergedDir": "dockyard never mounts an image by itself: it has no merged dir to name",
    "GraphDriver.Data.WorkDir": "dockyard never mounts an image by itself: it has no work dir to name",
}


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}[type(value)]


def key_tree(value: Any, path: str = "") -> dict[str, str]:
    """Every dotted key path of a JSON value with the JSON type found there (``[]`` for list items)."""
    out = {path or ".": _type(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            name = "*" if path in _DATA_MAPS else key
            out.update(key_tree(item, f"{path}.{name}" if path else name))
    elif isinstance(value, list):
        for item in value:
            out.update(key_tree(item, path + "[]"))
    return out


def tree_differences(docker: dict[str, Any], ours: dict[str, Any], allowed: dict[str, str]) -> list[str]:
    want, got = key_tree(docker), key_tree(ours)
    out = []
    for path in sorted(set(want) | set(got)):
        if path in allowed or want.get(path) == got.get(path):
            continue
        out.append(f"{path}: docker {want.get(path, 'absent')}, dockyard {got.get(path, 'absent')}")
    return out


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def dy(run_cli: Callable[..., subprocess.CompletedProcess[str]], busybox_tar: Path) -> Callable[..., Any]:
    run_cli("import", "--change", 'CMD ["sh"]', busybox_tar, "busybox", check=True)
    return run_cli


@pytest.fixture
def clean_docker(docker: dockerd.PrivateDockerd) -> Iterator[dockerd.PrivateDockerd]:
    """The module's dockerd, with what a test created removed afterwards."""
    yield docker
    ids = docker.run("ps", "-aq").stdout.split()
    if ids:
        docker.run("rm", "-f", "-v", *ids)
    docker.run("volume", "prune", "-f")


def _both(docker: dockerd.PrivateDockerd, dy: Callable[..., Any], *args: str) -> tuple[str, str]:
    """Run ``args`` in both; the container IDs they print (the last line)."""
    theirs, ours = docker.run(*args), dy(*args)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    if args[0] == "run" and "-d" not in args:  # attached: the ID of the newest container
        return docker.cli("ps", "-alq", "--no-trunc").strip(), dy("ps", "-alq", "--no-trunc").stdout.strip()
    return theirs.stdout.strip().splitlines()[-1], ours.stdout.strip().splitlines()[-1]


def _inspect(runner: Callable[..., Any], *args: str) -> Any:
    result = runner("inspect", *args)
    stdout = result.stdout if isinstance(result, subprocess.CompletedProcess) else result
    assert not isinstance(result, subprocess.CompletedProcess) or result.returncode == 0, result.stderr
    return json.loads(stdout)[0]


VARIANTS = {
    "plain": ["create", "busybox", "sleep", "300"],
    "binds-env-labels": ["run", "-d", "-v", "{hostdir}:/data", "-e", "A=1", "-l", "k=v", "--name", "c1",
                         "busybox", "sleep", "300"],
    "tmpfs-mount": ["run", "-d", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "sleep", "300"],
    "volume-mount": ["run", "-d", "--mount", "type=volume,source=vol1,target=/v", "busybox", "sleep", "300"],
    "rm": ["run", "-d", "--rm", "busybox", "sleep", "300"],
    "restart": ["run", "-d", "--restart", "on-failure:3", "busybox", "sleep", "300"],
    "limits": ["run", "-d", "-m", "64m", "--cpus", "0.5", "busybox", "sleep", "300"],
    "network-none": ["run", "-d", "--network", "none", "busybox", "sleep", "300"],
    "exited": ["run", "busybox", "sh", "-c", "echo hi"],
    "anonymous-volume": ["create", "-v", "/anon", "busybox"],
    "privileged-init": ["create", "--init", "--privileged", "busybox"],
    "tmpfs-flag": ["create", "--tmpfs", "/run:size=1m", "busybox"],
    "host-tty-user": ["create", "--network", "host", "-t", "-i", "-u", "1000", "-w", "/tmp", "--entrypoint", "sh",
                      "--stop-signal", "SIGUSR1", "--read-only", "--cap-add", "NET_ADMIN", "--pids-limit", "50",
                      "busybox"],
}

# Values compared as they are (dockyard's own runtime, cgroup parent, paths and IDs aside).
SAME_VALUES = ("Path", "Args", "State.Status", "State.Running", "State.Paused", "State.Restarting",
               "State.OOMKilled", "State.Dead", "State.ExitCode", "State.Error", "Driver", "Platform",
               "RestartCount", "HostConfig.Binds", "HostConfig.NetworkMode", "HostConfig.RestartPolicy",
               "HostConfig.AutoRemove", "HostConfig.Memory", "HostConfig.NanoCpus", "HostConfig.ShmSize",
               "HostConfig.ConsoleSize", "HostConfig.Dns", "HostConfig.BlkioWeightDevice", "HostConfig.Devices",
               "HostConfig.OomKillDisable", "HostConfig.IpcMode", "HostConfig.LogConfig", "HostConfig.Mounts",
               "HostConfig.ReadonlyPaths", "Config.Env", "Config.Cmd", "Config.Labels", "Config.Volumes",
               "Config.Entrypoint", "Config.AttachStdout", "Config.Tty", "Config.Image", "HostConfig.SecurityOpt",
               "HostConfig.Init", "HostConfig.Tmpfs", "HostConfig.Privileged", "HostConfig.CapAdd",
               "HostConfig.PidsLimit", "HostConfig.ReadonlyRootfs", "Config.User", "Config.WorkingDir",
               "Config.StopSignal", "Config.OpenStdin")


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part, "<absent>") if isinstance(obj, dict) else "<absent>"
    return obj


def _mounts(inspected: dict[str, Any]) -> list[dict[str, Any]]:
    """Mounts without what each engine names itself (sources, anonymous volumes' random names),
    by destination (Docker's order is a map's)."""
    out = []
    for m in inspected["Mounts"]:
        m = {k: v for k, v in m.items() if k != "Source"}
        if re.fullmatch(r"[0-9a-f]{64}", m.get("Name", "")):
            m["Name"] = "<anonymous>"
        out.append(m)
    return sorted(out, key=lambda m: m["Destination"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_container_inspect_matches_docker(variant: str, clean_docker: dockerd.PrivateDockerd, dy: Callable[..., Any],
                                          tmp_path: Path) -> None:
    args = [a.format(hostdir=tmp_path) for a in VARIANTS[variant]]
    docker_id, our_id = _both(clean_docker, dy, *args)
    theirs, ours = _inspect(clean_docker.cli, docker_id), _inspect(dy, our_id)
    assert tree_differences(theirs, ours, CONTAINER_ALLOWED) == []
    assert list(ours) == list(theirs)  # the top-level keys in Docker's order
    assert list(ours["HostConfig"]) == list(theirs["HostConfig"])
    assert [k for k in ours["Config"] if k in theirs["Config"]] == [k for k in theirs["Config"] if k in ours["Config"]]
    for dotted in SAME_VALUES:
        assert _get(ours, dotted) == _get(theirs, dotted), dotted
    # docker's masked paths are masked here too (dockyard adds /sys/devices/virtual/powercap, as Docker 23 does)
    assert set(theirs["HostConfig"]["MaskedPaths"] or []) <= set(ours["HostConfig"]["MaskedPaths"] or [])
    assert (ours["HostConfig"]["MaskedPaths"] is None) == (theirs["HostConfig"]["MaskedPaths"] is None)
    if ours["HostConfig"]["NetworkMode"] == "host":   # the host's name, in both
        assert ours["Config"]["Hostname"] == theirs["Config"]["Hostname"]
    else:
        assert ours["Config"]["Hostname"] == our_id[:12]
    for dotted in ("Created", "State.StartedAt", "State.FinishedAt"):
        assert NANO_TIME.match(_get(ours, dotted)), dotted
        assert (_get(ours, dotted) == ZERO_TIME) == (_get(theirs, dotted) == ZERO_TIME), dotted
    assert _mounts(ours) == _mounts(theirs)
    data = ours["GraphDriver"]["Data"]
    assert ours["GraphDriver"]["Name"] == "overlay2"
    if ours["State"]["StartedAt"] != ZERO_TIME:  # dockyard makes the writable layer at the first start
        assert os.path.isdir(data["UpperDir"])
    image = _inspect(dy, "--type", "image", "busybox")
    assert data["LowerDir"] == image["GraphDriver"]["Data"]["UpperDir"]  # one layer: the image's
    if ours["State"]["Running"]:
        assert subprocess.run(["mountpoint", "-q", data["MergedDir"]]).returncode == 0


def test_inspect_size(clean_docker: dockerd.PrivateDockerd, dy: Callable[..., Any]) -> None:
    """``inspect -s``: SizeRw is the writable layer's files, SizeRootFs adds the image's."""
    docker_id, our_id = _both(clean_docker, dy, "run", "-d", "busybox", "sh", "-c",
                              "head -c 5000 /dev/zero > /f && sleep 300")
    for runner, cid in ((clean_docker.cli, docker_id), (dy, our_id)):
        for _ in range(50):
            sized = _inspect(runner, "-s", cid)
            if sized["SizeRw"] >= 5000:
                break
        image = _inspect(runner, "--type", "image", "busybox")
        assert 5000 <= sized["SizeRw"] < 6000
        assert sized["SizeRootFs"] == sized["SizeRw"] + image["Size"]
        assert "SizeRw" not in _inspect(runner, cid)
        assert list(sized).index("SizeRw") == list(sized).index("GraphDriver") + 1


def test_image_inspect_matches_docker(docker: dockerd.PrivateDockerd, dy: Callable[..., Any], busybox_tar: Path) -> None:
    theirs, ours = _inspect(docker.cli, "--type", "image", "busybox"), _inspect(dy, "--type", "image", "busybox")
    assert tree_differences(theirs, ours, IMAGE_ALLOWED) == []
    assert list(ours) == list(theirs)
    for key in ("Comment", "ContainerConfig", "Config", "RootFS", "Container", "Parent", "RepoTags", "RepoDigests"):
        assert ours[key] == theirs[key], key
    assert ours["Comment"] == "Imported from -"
    assert ours["VirtualSize"] == ours["Size"] and ours["GraphDriver"]["Name"] == "overlay2"
    assert NANO_TIME.match(ours["Metadata"]["LastTagTime"])
    # an import's -m message is its comment, in inspect and in history
    for runner in (docker.run, dy):
        assert runner("import", "-m", "my message", str(busybox_tar), "withmsg").returncode == 0
    assert _inspect(dy, "--type", "image", "withmsg")["Comment"] == "my message"
    fmt = "{{.CreatedBy}}|{{.Comment}}"
    assert dy("history", "--format", fmt, "withmsg").stdout == docker.cli("history", "--format", fmt, "withmsg")
    assert dy("history", "--format", fmt, "busybox").stdout == docker.cli("history", "--format", fmt, "busybox") \
        == "|Imported from -\n"
    docker.run("rmi", "withmsg")


RECORDED = Path(__file__).resolve().parents[1] / "compat"


def test_key_trees_match_the_recorded_docker_output(dy: Callable[..., Any], tmp_path: Path) -> None:
    """Without a dockerd: the recorded run and image of tests/compat, same command here."""
    recorded = json.loads((RECORDED / "docker20.10-container-inspect.json").read_text())[0]
    cid = dy("run", "-d", "--name", "c1", "--network", "none", "-e", "A=1", "-l", "k=v", "-v", f"{tmp_path}:/data",
             "busybox", "sleep", "300", check=True).stdout.strip()
    ours = _inspect(dy, cid)
    assert tree_differences(recorded, ours, CONTAINER_ALLOWED) == []
    assert list(ours) == list(recorded) and list(ours["HostConfig"]) == list(recorded["HostConfig"])
    assert list(ours["Config"]) == list(recorded["Config"])
    recorded_image = json.loads((RECORDED / "docker20.10-image-inspect.json").read_text())[0]
    image = _inspect(dy, "--type", "image", "busybox")
    assert tree_differences(recorded_image, image, IMAGE_ALLOWED) == []
    assert list(image) == list(recorded_image)
    dy("rm", "-f", cid)


def test_key_path_coverage(clean_docker: dockerd.PrivateDockerd, dy: Callable[..., Any], tmp_path: Path) -> None:
    """The closing note's number: docker's key paths over every variant, how many dockyard has."""
    docker_paths: set[str] = set()
    our_paths: set[str] = set()
    for variant, args in VARIANTS.items():
        docker_id, our_id = _both(clean_docker, dy, *[a.format(hostdir=tmp_path) for a in args])
        docker_paths |= set(key_tree(_inspect(clean_docker.cli, "-s", docker_id)))
        our_paths |= set(key_tree(_inspect(dy, "-s", our_id)))
        clean_docker.run("rm", "-f", docker_id)
        dy("rm", "-f", our_id)
    image_theirs = set(key_tree(_inspect(clean_docker.cli, "--type", "image", "busybox")))
    image_ours = set(key_tree(_inspect(dy, "--type", "image", "busybox")))
    print(f"\ncontainer key paths: {len(docker_paths & our_paths)}/{len(docker_paths)}; "
          f"image key paths: {len(image_theirs & image_ours)}/{len(image_theirs)}")
    assert docker_paths - our_paths <= set(CONTAINER_ALLOWED)
    assert image_theirs - image_ours <= set(IMAGE_ALLOWED)


def test_inspect_text_as_docker_prints_it(docker: dockerd.PrivateDockerd, dy: Callable[..., Any],
                                          busybox_tar: Path) -> None:
    """The daemon's JSON is printed as sent: ``&``, ``<``, ``>`` and UTF-8 text unescaped."""
    for runner in (docker.run, dy):
        assert runner("import", "--change", "LABEL x=a&b<c>é", str(busybox_tar), "labelled").returncode == 0
    try:
        line = [x for x in docker.cli("image", "inspect", "labelled").splitlines() if '"x"' in x]
        assert line == ['                "x": "a&b<c>é"']
        assert [x for x in dy("image", "inspect", "labelled").stdout.splitlines() if '"x"' in x] == line
        docker_id = docker.cli("create", "-l", "y=a&b<c>", "busybox").strip()
        our_id = dy("create", "-l", "y=a&b<c>", "busybox", check=True).stdout.strip()
        line = [x for x in docker.cli("inspect", docker_id).splitlines() if '"y"' in x]
        assert [x for x in dy("inspect", our_id).stdout.splitlines() if '"y"' in x] == line
    finally:
        docker.run("rm", "-f", *docker.run("ps", "-aq").stdout.split())
        docker.run("rmi", "labelled")


def test_process_env_as_docker(docker: dockerd.PrivateDockerd, dy: Callable[..., Any]) -> None:
    """No PATH in Config.Env, yet the process gets Docker's environment in Docker's order."""
    for args in (["-e", "A=1"], ["-t", "-e", "A=1", "-e", "PATH=/bin:/usr/bin"]):
        theirs = docker.cli("run", "--rm", *args, "busybox", "env").split()
        ours = dy("run", "--rm", *args, "busybox", "env", check=True).stdout.split()
        mask = lambda env: [re.sub(r"^HOSTNAME=.*", "HOSTNAME=?", e) for e in env]  # noqa: E731
        assert mask(ours) == mask(theirs)
