"""Bundle specs from image configs and run options, the seccomp profile, and pyrunc's
small parsers (no root, no kernel)."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from dockyard.runtime import seccomp, spec as specs
from dockyard.runtime.exitcodes import docker_exit_code
from dockyard.runtime.pyrunc import cgroups, cli, fastjson, mounts


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n"
                               "nogroup:x:65534:\n")
    return tmp_path


def build(rootfs: Path, image: dict | None = None, **options) -> dict:
    return specs.build(image or {"Cmd": ["sh"]}, rootfs, specs.RunOptions(**options), "0123456789abcdef")


def test_args_entrypoint_and_cmd(rootfs: Path) -> None:
    image = {"Entrypoint": ["/entry"], "Cmd": ["--default"]}
    assert build(rootfs, image)["process"]["args"] == ["/entry", "--default"]
    assert build(rootfs, image, command=["x"])["process"]["args"] == ["/entry", "x"]
    assert build(rootfs, image, entrypoint=["/other"])["process"]["args"] == ["/other"]
    assert build(rootfs, image, entrypoint=[""], command=["ls"])["process"]["args"] == ["ls"]
    with pytest.raises(specs.SpecError):
        build(rootfs, {"Env": []})


def test_image_config_whole_document_accepted(rootfs: Path) -> None:
    doc = {"architecture": "amd64", "rootfs": {"type": "layers"}, "config": {"Cmd": ["top"], "WorkingDir": "/srv"}}
    process = build(rootfs, doc)["process"]
    assert process["args"] == ["top"] and process["cwd"] == "/srv"


def test_env_merge(rootfs: Path) -> None:
    env = build(rootfs, {"Cmd": ["sh"], "Env": ["A=1", "PATH=/bin"]}, env=["A=2", "B=x=y"], terminal=True)["process"]["env"]
    assert env == ["PATH=/bin", "HOSTNAME=0123456789ab", "TERM=xterm", "A=2", "B=x=y", "HOME=/root"]  # docker's order


def test_users(rootfs: Path) -> None:
    assert specs.resolve_user(rootfs, "") == {"uid": 0, "gid": 0, "home": "/root", "additionalGids": [0]}
    app = specs.resolve_user(rootfs, "app")
    assert (app["uid"], app["gid"], app["additionalGids"], app["home"]) == (1000, 1000, [10, 29, 1000], "/home/app")
    # as Docker: the primary group is always listed; a given group drops the user's others
    assert specs.resolve_user(rootfs, "app:wheel") == {"uid": 1000, "gid": 10, "home": "/home/app",
                                                       "additionalGids": [10]}
    assert specs.resolve_user(rootfs, "4242:4343") == {"uid": 4242, "gid": 4343, "home": "/",
                                                       "additionalGids": [4343]}
    assert specs.resolve_user(rootfs, "nobody", ["audio"])["additionalGids"] == [29, 65534]
    with pytest.raises(specs.SpecError, match="unable to find user ghost"):
        specs.resolve_user(rootfs, "ghost")
    with pytest.raises(specs.SpecError, match="unable to find group"):
        specs.resolve_user(rootfs, "app:ghosts")


def test_passwd_symlink_cannot_escape_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").write_text("evil:x:7:7::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("../../outside")
    with pytest.raises(specs.SpecError):
        specs.resolve_user(root, "evil")  # the link resolves to <root>/outside, which is missing


def test_defaults_are_dockers(rootfs: Path) -> None:
    spec = build(rootfs)
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == specs.DEFAULT_CAPABILITIES
    assert "inheritable" not in caps and spec["process"]["noNewPrivileges"] is False
    assert spec["linux"]["maskedPaths"] == specs.MASKED_PATHS
    assert spec["linux"]["readonlyPaths"] == specs.READONLY_PATHS
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "cgroup", "network"}
    assert [m["destination"] for m in spec["mounts"]][:2] == ["/proc", "/dev"]
    assert spec["hostname"] == "0123456789ab" and spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    json.dumps(spec)


def test_rlimits_follow_hard_limits() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits = {r["type"]: r for r in specs.default_rlimits({"core": (0, 0)})}
    assert limits["RLIMIT_NOFILE"]["hard"] == limits["RLIMIT_NOFILE"]["soft"] == (
        hard if hard != resource.RLIM_INFINITY else 2**64 - 1)
    assert limits["RLIMIT_CORE"] == {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    with pytest.raises(specs.SpecError):
        specs.default_rlimits({"nofile": (10, 5)})


def test_capabilities_add_drop(rootfs: Path) -> None:
    caps = build(rootfs, cap_add=["sys_admin"], cap_drop=["CAP_NET_RAW", "mknod"])["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
    assert build(rootfs, cap_drop=["ALL"], cap_add=["KILL"])["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
    with pytest.raises(specs.SpecError):
        build(rootfs, cap_add=["CAP_FLY"])


def test_resources_and_network(rootfs: Path) -> None:
    linux = build(rootfs, memory=1 << 20, memory_swap=2 << 20, cpu_quota=5000, cpu_period=10000, pids_limit=7,
                  network="/run/netns/x")["linux"]
    assert linux["resources"]["memory"] == {"limit": 1 << 20, "swap": 2 << 20}
    assert linux["resources"]["cpu"] == {"quota": 5000, "period": 10000}
    assert linux["resources"]["pids"] == {"limit": 7}
    assert {"type": "network", "path": "/run/netns/x"} in linux["namespaces"]
    host = build(rootfs, network="host")["linux"]["namespaces"]
    assert all(n["type"] != "network" for n in host)
    with pytest.raises(specs.SpecError):
        build(rootfs, memory_swap=5)
    with pytest.raises(specs.SpecError):
        build(rootfs, workdir="relative")


def test_seccomp_profile_depends_on_capabilities() -> None:
    def allowed(profile: dict) -> set[str]:
        return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
                for n in r["names"]}

    default = seccomp.default_profile(specs.DEFAULT_CAPABILITIES)
    names = allowed(default)
    for blocked in ("mount", "umount2", "init_module", "finit_module", "kexec_load", "keyctl", "bpf", "reboot",
                    "clock_settime", "settimeofday", "unshare", "setns", "sethostname", "add_key", "open_by_handle_at"):
        assert blocked not in names, blocked
    assert {"read", "execve", "clone3"} - names == {"clone3"}  # clone3: ENOSYS, clone only without ns flags
    admin = allowed(seccomp.default_profile(specs.DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN", "CAP_SYS_MODULE"]))
    assert {"mount", "unshare", "sethostname", "init_module"} <= admin


def test_sample_of_pyrunc_parsers() -> None:
    assert cli.parse(["--root", "/r", "kill", "--all", "c1", "KILL"]) == ("/r", "kill", {"--all": ["true"]}, ["c1", "KILL"])
    root, command, options, words = cli.parse(["exec", "-e", "A=1", "--cwd=/tmp", "c1", "sh", "-c", "echo -e"])
    assert (command, options, words) == ("exec", {"-e": ["A=1"], "--cwd": ["/tmp"]}, ["c1", "sh", "-c", "echo -e"])
    assert [cli.parse_signal(s) for s in ("9", "KILL", "sigterm", "SIGRTMIN+1")] == [9, 9, 15, 35]
    with pytest.raises(cli.UsageError):
        cli.parse(["create", "--bogus", "x"])
    assert mounts.parse_options(["nosuid", "ro", "rw", "rbind", "rprivate", "mode=755", "size=1k"]) == (
        2 | 4096 | 16384, (1 << 18) | 16384, "mode=755,size=1k")
    assert cgroups._device_rule({"allow": True, "type": "c", "major": 136, "access": "rwm"}) == "c 136:* rwm"
    assert cgroups._device_rule({"allow": False, "access": "rwm"}) == "a"
    assert cgroups.controllers_of("rw,cpu,cpuacct") == ["cpu", "cpuacct"]
    assert cgroups.controllers_of("rw,name=systemd") == ["name=systemd"]


def test_fastjson_matches_json() -> None:
    doc = {"a": [1, -2.5e3, None, True, False, "é\n\"x\""], "b": {"c": {}}, "d": 2**64 - 1}
    assert fastjson.loads(fastjson.dumps(doc)) == doc == json.loads(fastjson.dumps(doc))
    assert fastjson.loads(b' {"x": [1]} \n') == {"x": [1]}
    with pytest.raises(ValueError):
        fastjson.loads('{"x": 1} trailing')


def test_in_root_resolves_symlinks_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("/real")
    (tmp_path / "up").symlink_to("../../../..")
    assert mounts.in_root(str(tmp_path), "/link/x") == f"{tmp_path}/real/x"
    assert mounts.in_root(str(tmp_path), "/up/etc") == f"{tmp_path}/etc"


@pytest.mark.parametrize("message, code", [
    ('exec: "x": executable file not found in $PATH', 127),
    ("executable file `x` not found in $PATH: No such file or directory", 127),
    ("open executable: Permission denied", 126),
    ("exec /badformat: exec format error", 126),
    ("cgroup: something else", 125),
])
def test_docker_exit_codes(message: str, code: int) -> None:
    assert docker_exit_code(message) == code
