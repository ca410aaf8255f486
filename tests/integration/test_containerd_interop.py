"""containerd (Debian's 1.6, through ``ctr``) pulls and runs what dockyard pushed to dockyard's
registry: over plain HTTP on loopback, over HTTPS with a private CA and htpasswd credentials,
and a multi-platform list made with ``dockyard manifest``, resolved to the right platform."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard.oci.platform import host
from dockyard.testing import containerd as containerd_helper
from dockyard.testing.images import skopeo
from dockyard.testing.registry import DockyardRegistry, bcrypt_htpasswd_line

USER, PASSWORD = "kube", "n0de-pass"
RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def containerd() -> Iterator[containerd_helper.PrivateContainerd]:
    if not containerd_helper.available():
        pytest.fail("containerd and ctr are needed as root: apt-get install containerd (make deps)")
    with containerd_helper.PrivateContainerd() as c:
        yield c


@pytest.fixture(scope="module")
def registry() -> Iterator[DockyardRegistry]:
    with DockyardRegistry() as r:
        yield r


def marked_tar(busybox_tar: Path, dest: Path, marker: str) -> Path:
    """busybox plus ``/marker`` holding ``marker``: the run proves which image it came from."""
    shutil.copy(busybox_tar, dest)
    source = dest.with_suffix(".marker")
    source.write_text(marker + "\n")
    with tarfile.open(dest, "a") as tar:
        tar.add(source, arcname="marker")
    return dest


def push_image(run_cli: RunCli, tar: Path, ref: str, marker: str, platform: str | None = None) -> None:
    extra = ["--platform", platform] if platform else []
    run_cli("import", *extra, "--change", f"LABEL marker={marker}", "--change", 'CMD ["sh"]', tar, ref, check=True)
    run_cli("push", ref, check=True)


def run_marker(containerd: containerd_helper.PrivateContainerd, image: str, name: str) -> str:
    """What ``cat /marker`` prints in a container of ``image`` run by containerd.

    ctr can lose the output of a process that exits right after printing (containerd#770,
    concourse#6775; seen here about once in ten runs): the process lingers a moment, and an
    empty result is tried again."""
    out = ""
    for attempt in range(3):
        out = containerd.ctr("run", "--rm", image, f"{name}-{attempt}", "sh", "-c", "cat /marker && sleep 0.2").stdout
        if out:
            break
    return out.strip()


def test_plain_http_pull_and_run(containerd, registry: DockyardRegistry, run_cli: RunCli, busybox_tar: Path,
                                 tmp_path: Path) -> None:
    image = f"{registry.address}/interop/plain:1"
    push_image(run_cli, marked_tar(busybox_tar, tmp_path / "plain.tar", "plain-http"), image, "plain-http")
    pulled = containerd.ctr("images", "pull", "--plain-http", image)
    assert "done" in pulled.stdout
    try:
        assert image in containerd.ctr("images", "ls", "-q").stdout.split()
        assert run_marker(containerd, image, "plain") == "plain-http"
    finally:
        containerd.ctr("images", "rm", image, check=False)


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate it signed for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed (in the Makefile's APT_PACKAGES)")
    d = tmp_path_factory.mktemp("ca")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem",
            "-subj", "/CN=dockyard test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-out", "server.pem", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key", "dir": d}


@pytest.fixture(scope="module")
def tls_registry(tls_ca: dict[str, Path], registry: DockyardRegistry) -> Iterator[DockyardRegistry]:
    """HTTPS (the private CA's certificate) with htpasswd auth, serving the plain registry's storage:
    dockyard pushes over plain HTTP, containerd pulls over TLS with credentials; dockyard's own
    push over TLS with credentials is tested on its own below."""
    htpasswd = tls_ca["dir"] / "htpasswd"
    htpasswd.write_text(bcrypt_htpasswd_line(USER, PASSWORD) + "\n")
    with DockyardRegistry({"auth": {"htpasswd": str(htpasswd), "realm": "dockyard-test"}}, root=registry.root,
                          tls=(str(tls_ca["cert"]), str(tls_ca["key"]))) as r:
        yield r


def hosts_dir(base: Path, address: str, ca: Path | None) -> Path:
    """containerd's registry host config: ``DIR/HOST:PORT/hosts.toml``, naming the CA if given."""
    (base / address).mkdir(parents=True)
    (base / address / "hosts.toml").write_text(
        f'server = "https://{address}"\n\n[host."https://{address}"]\n'
        f'  capabilities = ["pull", "resolve"]\n' + (f'  ca = "{ca}"\n' if ca else ""))
    return base


def test_https_with_ca_and_htpasswd(containerd, registry: DockyardRegistry, tls_registry: DockyardRegistry,
                                    tls_ca: dict[str, Path], run_cli: RunCli, busybox_tar: Path,
                                    tmp_path: Path) -> None:
    push_image(run_cli, marked_tar(busybox_tar, tmp_path / "secure.tar", "over-tls"),
               f"{registry.address}/interop/secure:1", "over-tls")
    image = f"{tls_registry.address}/interop/secure:1"
    hosts = hosts_dir(tmp_path / "certs.d", tls_registry.address, tls_ca["ca"])

    # without the CA containerd refuses the certificate
    no_ca = hosts_dir(tmp_path / "no-ca.d", tls_registry.address, None)
    untrusted = containerd.ctr("images", "pull", "--hosts-dir", str(no_ca), "--user", f"{USER}:{PASSWORD}", image,
                               check=False)
    assert untrusted.returncode != 0 and "x509" in untrusted.stderr, untrusted.stderr
    # a wrong password, or none, is refused by the registry
    refused = containerd.ctr("images", "pull", "--hosts-dir", str(hosts), "--user", f"{USER}:wrong", image,
                             check=False)
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr
    anonymous = containerd.ctr("images", "pull", "--hosts-dir", str(hosts), image, check=False)
    assert anonymous.returncode != 0 and "401" in anonymous.stderr, anonymous.stderr

    containerd.ctr("images", "pull", "--hosts-dir", str(hosts), "--user", f"{USER}:{PASSWORD}", image)
    try:
        assert run_marker(containerd, image, "secure") == "over-tls"
    finally:
        containerd.ctr("images", "rm", image, check=False)


def test_dockyard_push_over_tls_with_auth(tls_registry: DockyardRegistry, run_cli: RunCli, busybox_tar: Path,
                                          tmp_path: Path) -> None:
    run_cli("login", "-u", USER, "--password-stdin", tls_registry.address, input=PASSWORD + "\n", check=True)
    push_image(run_cli, marked_tar(busybox_tar, tmp_path / "direct.tar", "direct"),
               f"{tls_registry.address}/interop/direct:1", "direct")


def test_multi_platform_index(containerd, registry: DockyardRegistry, run_cli: RunCli, busybox_tar: Path,
                              tmp_path: Path) -> None:
    # The host's image runs; the other platform's (arm64 on an amd64 host) is only resolved and fetched.
    native = host().architecture
    foreign = "amd64" if native == "arm64" else "arm64"
    address = registry.address
    here, there = f"{address}/interop/multi:{native}", f"{address}/interop/multi-other:{foreign}"
    push_image(run_cli, marked_tar(busybox_tar, tmp_path / "native.tar", f"for-{native}"), here, f"for-{native}",
               f"linux/{native}")
    # in another repository of the registry: `manifest push` mounts its blobs into the list's
    push_image(run_cli, marked_tar(busybox_tar, tmp_path / "foreign.tar", f"for-{foreign}"), there,
               f"for-{foreign}", f"linux/{foreign}")
    index = f"{address}/interop/multi:latest"
    created = run_cli("manifest", "create", index, here, there, check=True)
    assert created.stdout.strip() == f"Created manifest list {index}"
    pushed = run_cli("manifest", "push", "--purge", index, check=True).stdout.splitlines()
    list_digest = pushed[-1]
    assert list_digest.startswith("sha256:")

    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{index}").stdout)
    platforms = {m["platform"]["architecture"]: m["digest"] for m in raw["manifests"]}
    assert {m["platform"]["os"] for m in raw["manifests"]} == {"linux"} and set(platforms) == {native, foreign}
    assert pushed[:-1] == [f"Pushed ref {address}/interop/multi@{platforms[foreign]} with digest: {platforms[foreign]}"]

    # default platform: the host's, and only its manifest is fetched
    containerd.ctr("images", "pull", "--plain-http", index)
    try:
        content = containerd.ctr("content", "ls", "-q").stdout.split()
        assert list_digest in content and platforms[native] in content
        assert platforms[foreign] not in content
        assert run_marker(containerd, index, "multi") == f"for-{native}"
        # asked for the other platform: containerd resolves the list to its manifest
        foreign_pull = containerd.ctr("images", "pull", "--plain-http", "--platform", f"linux/{foreign}", index)
        assert platforms[foreign] in containerd.ctr("content", "ls", "-q").stdout.split()
        assert f"manifest-{platforms[foreign]}" in foreign_pull.stdout  # ctr names what it fetched
        config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", "--override-arch", foreign,
                                   f"docker://{index}").stdout)
        assert config["architecture"] == foreign and config["config"]["Labels"]["marker"] == f"for-{foreign}"
    finally:
        containerd.ctr("images", "rm", index, check=False)


def test_crashed_run_leftovers_are_cleaned(tmp_path: Path) -> None:
    """A dir a crashed run left (its containerd dead, a shim alive, a mount inside) goes on the next start."""
    stale = Path(tempfile.mkdtemp(prefix=containerd_helper.DIR_PREFIX, dir=tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (stale / containerd_helper.PID_FILE).write_text(str(dead.pid))
    (stale / "snapshot").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(stale / "snapshot")], check=True)
    # a "shim": a process naming the dead daemon's socket on its command line
    shim = subprocess.Popen(["sh", "-c", "sleep 300; true", str(stale / "c.sock")], start_new_session=True)
    try:
        cmdline = Path(f"/proc/{shim.pid}/cmdline")
        deadline = time.monotonic() + 5
        while str(stale).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the fork has exec'd sh
        containerd_helper.clean_stale(tmp_path)
        assert shim.wait(timeout=10) == -9
        assert not stale.exists()
        assert str(stale) not in Path("/proc/self/mountinfo").read_text()
    finally:
        try:
            os.killpg(shim.pid, signal.SIGKILL)  # its sleep too
        except ProcessLookupError:
            pass
        shim.wait()
        subprocess.run(["umount", "-l", str(stale / "snapshot")], stderr=subprocess.DEVNULL, check=False)
