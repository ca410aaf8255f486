"""``dockyard manifest`` side by side with Docker 20.10's ``docker manifest`` (Debian's CLI; it needs
no daemon for these verbs): same output, same list bytes (so the same digest), same errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard.testing.images import skopeo
from dockyard.testing.registry import DockyardRegistry, bcrypt_htpasswd_line
from tests.conftest import _unmount_below

DOCKER = "/usr/bin/docker"
RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def registry() -> Iterator[DockyardRegistry]:
    with DockyardRegistry() as r:
        yield r


@pytest.fixture(scope="module")
def images(registry: DockyardRegistry, busybox_tar: Path) -> Iterator[dict[str, str]]:
    """amd64 and arm64 images and a list of both, pushed once for the module (from a root of their own)."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-manifest-"))
    env = {**os.environ, "DOCKYARD_ROOT": str(base / "root"), "DOCKYARD_RUNROOT": str(base / "run"),
           "DOCKER_CONFIG": str(base / "docker-config")}
    a = registry.address
    refs = {"amd64": f"{a}/mf/app:amd64", "arm64": f"{a}/mf/app:arm64", "other": f"{a}/mf/other:arm64"}

    def dockyard(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, check=True, capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)

    try:
        dockyard("import", "--change", "LABEL arch=amd64", str(busybox_tar), refs["amd64"])
        dockyard("import", "--platform", "linux/arm64", "--change", "LABEL arch=arm64", str(busybox_tar),
                 refs["arm64"])
        dockyard("tag", refs["arm64"], refs["other"])
        for ref in refs.values():
            dockyard("push", ref)
        refs["list"] = f"{a}/mf/app:multi"
        dockyard("manifest", "create", refs["list"], refs["amd64"], refs["arm64"])
        dockyard("manifest", "push", refs["list"])
        yield refs
    finally:
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def docker(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Debian's docker CLI with a private config dir (its local manifest lists live there)."""
    if not os.path.exists(DOCKER):
        pytest.fail(f"{DOCKER} (Debian's docker.io, in the Makefile's APT_PACKAGES) is needed to compare with")
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-cli"), "DOCKER_CLI_EXPERIMENTAL": "enabled",
           "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    return run


def same(ours: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess) -> None:
    """Same exit code, stdout and message (ours says ``Error: `` first, as every dockyard error does)."""
    assert ours.returncode == theirs.returncode, (ours, theirs)
    assert ours.stdout == theirs.stdout
    assert ours.stderr.strip().removeprefix("Error: ") == theirs.stderr.strip()


def test_create_annotate_inspect_push_as_docker(registry: DockyardRegistry, images: dict[str, str],
                                                run_cli: RunCli, docker) -> None:
    a = registry.address
    ours, theirs = f"{a}/mf/app:ours", f"{a}/mf/app:theirs"
    created = run_cli("manifest", "create", ours, images["amd64"], images["arm64"])
    assert created.returncode == 0 and created.stdout == f"Created manifest list {ours}\n"
    assert docker("manifest", "create", "--insecure", theirs, images["amd64"], images["arm64"]).returncode == 0

    # the local list: same document (the list name is not in it), same verbose entries
    same(run_cli("manifest", "inspect", ours), docker("manifest", "inspect", theirs))
    same(run_cli("manifest", "inspect", "-v", ours), docker("manifest", "inspect", "-v", theirs))
    local = json.loads(run_cli("manifest", "inspect", ours).stdout)
    assert [m["platform"] for m in local["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                           {"architecture": "arm64", "os": "linux"}]

    for run, name in ((run_cli, ours), (docker, theirs)):
        done = run("manifest", "annotate", "--variant", "v8", "--os-features", "f1,f2", name, images["arm64"])
        assert done.returncode == 0 and done.stdout == "", done.stderr
    same(run_cli("manifest", "inspect", "-v", ours), docker("manifest", "inspect", "-v", theirs))
    annotated = json.loads(run_cli("manifest", "inspect", ours).stdout)["manifests"][1]["platform"]
    assert annotated == {"architecture": "arm64", "os": "linux", "os.features": ["f1", "f2"], "variant": "v8"}

    # pushed: byte for byte the list Docker pushes, so one digest
    pushed = run_cli("manifest", "push", ours)
    assert pushed.returncode == 0, pushed.stderr
    docker_pushed = docker("manifest", "push", "--insecure", theirs)
    assert docker_pushed.returncode == 0, docker_pushed.stderr
    assert pushed.stdout == docker_pushed.stdout
    digest = pushed.stdout.strip()
    assert digest.startswith("sha256:")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ours}").stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"

    # from the registry (no local list by that name): the same for both
    run_cli("manifest", "rm", ours, check=True)
    same(run_cli("manifest", "inspect", ours), docker("manifest", "inspect", "--insecure", ours))
    same(run_cli("manifest", "inspect", "-v", ours), docker("manifest", "inspect", "-v", "--insecure", ours))
    same(run_cli("manifest", "inspect", images["amd64"]), docker("manifest", "inspect", "--insecure", images["amd64"]))
    same(run_cli("manifest", "inspect", "-v", images["amd64"]),
         docker("manifest", "inspect", "-v", "--insecure", images["amd64"]))


def test_push_mounts_members_of_other_repositories(registry: DockyardRegistry, images: dict[str, str],
                                                   run_cli: RunCli) -> None:
    a = registry.address
    target = f"{a}/mf/mounted:1"
    run_cli("manifest", "create", target, images["amd64"], images["other"], check=True)
    pushed = run_cli("manifest", "push", "--purge", target, check=True).stdout.splitlines()
    listed = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout)
    digests = {m["platform"]["architecture"]: m["digest"] for m in listed["manifests"]}
    # both members now live in the list's repository (Docker re-serializes the manifest it copies
    # and so puts a different digest than the list names; we put the bytes as they are)
    assert pushed[:-1] == [f"Pushed ref {a}/mf/mounted@{digests[arch]} with digest: {digests[arch]}"
                           for arch in ("amd64", "arm64")]
    assert pushed[-1].startswith("sha256:")
    config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", "--override-arch", "arm64",
                               f"docker://{target}").stdout)
    assert config["architecture"] == "arm64" and config["config"]["Labels"] == {"arch": "arm64"}
    # --purge removed the local list: inspect now reads the registry's
    assert run_cli("manifest", "rm", target).stderr.strip() == f"Error: No such manifest: {target}"
    assert json.loads(run_cli("manifest", "inspect", target, check=True).stdout) == listed


def test_errors_as_docker(registry: DockyardRegistry, images: dict[str, str], run_cli: RunCli, docker) -> None:
    a = registry.address
    name = f"{a}/mf/errors:1"
    for run in (run_cli, docker):
        assert run("manifest", "create", "--insecure", name, images["amd64"]).returncode == 0
    cases = [
        ("create", "--insecure", name, images["amd64"]),                   # exists, no --amend
        ("create", "--insecure", f"{a}/mf/other:2", images["list"]),      # a list is no member
        ("create", "--insecure", f"{a}/mf/other:3", f"{a}/mf/app:nope"),  # no such manifest
        ("annotate", "--arch", "arm64", name, images["arm64"]),           # not in the list
        ("annotate", "--arch", "bogus", name, images["amd64"]),           # os/arch Go does not know
        ("inspect", "--insecure", f"{a}/mf/app:nope"),
        ("push", "--insecure", f"{a}/mf/app:nope"),
        ("rm", f"{a}/mf/app:nope"),
    ]
    for case in cases:
        ours = run_cli("manifest", *[arg for arg in case if arg != "--insecure"])
        same(ours, docker("manifest", *case))
    # --amend adds to the list
    for run in (run_cli, docker):
        assert run("manifest", "create", "--amend", "--insecure", name, images["arm64"]).returncode == 0
    same(run_cli("manifest", "inspect", name), docker("manifest", "inspect", name))
    for run in (run_cli, docker):
        assert run("manifest", "rm", name).returncode == 0
    same(run_cli("manifest", "rm", name), docker("manifest", "rm", name))


def test_local_image_member_is_uploaded(registry: DockyardRegistry, images: dict[str, str], run_cli: RunCli,
                                        busybox_tar: Path) -> None:
    """Beyond Docker: a member the registry lacks but the local store holds is uploaded by push."""
    a = registry.address
    local = f"{a}/mf/local:riscv"
    run_cli("import", "--platform", "linux/riscv64", "--change", "LABEL arch=riscv64", busybox_tar, local, check=True)
    target = f"{a}/mf/withlocal:1"
    run_cli("manifest", "create", target, images["amd64"], local, check=True)
    listed = json.loads(run_cli("manifest", "inspect", target, check=True).stdout)
    assert [m["platform"]["architecture"] for m in listed["manifests"]] == ["amd64", "riscv64"]
    pushed = run_cli("manifest", "push", target, check=True).stdout.splitlines()
    assert len(pushed) == 3 and pushed[-1].startswith("sha256:")
    config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", "--override-arch", "riscv64",
                               f"docker://{target}").stdout)
    assert config["architecture"] == "riscv64" and config["config"]["Labels"] == {"arch": "riscv64"}
    # the local image's own tag was never pushed
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{local}", check=False).returncode != 0


def test_credentials_from_login(run_cli: RunCli, busybox_tar: Path, tmp_path: Path) -> None:
    """Lists go to and come from a registry with htpasswd auth with the credentials `login` stored."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(bcrypt_htpasswd_line("lister", "pa55") + "\n")
    with DockyardRegistry({"auth": {"htpasswd": str(htpasswd)}}) as reg:
        image, target = f"{reg.address}/auth/app:1", f"{reg.address}/auth/app:list"
        run_cli("import", busybox_tar, image, check=True)
        # nothing stored yet: the registry refuses, create says so in one line
        refused = run_cli("manifest", "create", target, image)
        assert refused.returncode == 1 and refused.stderr.startswith("Error: ") and "authentication required" in \
            refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        run_cli("login", "-u", "lister", "--password-stdin", reg.address, input="pa55\n", check=True)
        run_cli("manifest", "create", target, image, check=True)  # a local member: not pushed yet
        digest = run_cli("manifest", "push", target, check=True).stdout.splitlines()[-1]
        run_cli("manifest", "rm", target, check=True)
        remote = json.loads(run_cli("manifest", "inspect", target, check=True).stdout)
        assert [m["platform"]["os"] for m in remote["manifests"]] == ["linux"]
        raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "lister:pa55", f"docker://{target}").stdout
        assert hashlib.sha256(raw.encode()).hexdigest() == digest.removeprefix("sha256:")
