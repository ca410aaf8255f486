"""``dockyard import``: a busybox rootfs tarball becomes a one-layer image, whatever its
compression and wherever it comes from (file, stdin, http URL)."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from dockyard import config
from dockyard.cli.formatting import human_size
from dockyard.engine import Engine
from dockyard.oci import mediatypes as mt

pytestmark = pytest.mark.integration


def engine_for(root: Path) -> Engine:
    return Engine(config.load(root))


def inspect(run_cli, name: str) -> dict:
    return json.loads(run_cli("image", "inspect", name, check=True).stdout)[0]


def blobs(root: Path) -> list[str]:
    d = root / "content" / "blobs" / "sha256"
    return sorted(os.listdir(d)) if d.exists() else []


def layer_dirs(root: Path) -> list[str]:
    d = root / "layers"
    return sorted(n for n in os.listdir(d) if n not in ("tmp", "locks")) if d.exists() else []


def test_import_lists_the_image_with_its_size(run_cli, busybox_tar: Path, dockyard_root: Path) -> None:
    result = run_cli("import", busybox_tar, "busybox", check=True)
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert result.stderr == ""

    info = inspect(run_cli, "busybox")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["busybox:latest"]
    lines = run_cli("images", check=True).stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = lines[1].split()
    assert row[:3] == ["busybox", "latest", image_id[7:19]]
    assert row[-1] == human_size(info["Size"], 3)
    assert info["Size"] > 1_000_000  # busybox itself

    # The layer is unpacked and holds busybox and its applet links.
    with _engine(dockyard_root) as engine:
        image = engine.image_store.lookup("busybox")
        diff = engine.layers.path(image.layers[0])
        assert (diff / "bin" / "busybox").is_file()
        assert os.readlink(diff / "bin" / "sh") == "busybox"


class _engine:
    """An in-process engine on a test root, closed afterwards."""

    def __init__(self, root: Path) -> None:
        self.engine = engine_for(root)

    def __enter__(self) -> Engine:
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.close()


def test_import_stores_a_gzip_layer_under_a_docker_schema2_manifest(run_cli, busybox_tar: Path,
                                                                   dockyard_root: Path) -> None:
    run_cli("import", "-m", "first import", busybox_tar, "bb:v1", check=True)
    with _engine(dockyard_root) as engine:
        image = engine.image_store.lookup("bb:v1")
        manifest = engine.image_store.manifest(image)
        assert image.manifest_media_type == mt.DOCKER_MANIFEST
        assert manifest["mediaType"] == mt.DOCKER_MANIFEST
        assert manifest["config"]["mediaType"] == mt.DOCKER_CONFIG
        [layer] = manifest["layers"]
        assert layer["mediaType"] == mt.DOCKER_LAYER_GZIP
        with engine.content.open(layer["digest"]) as f:
            assert f.read(2) == b"\x1f\x8b"
        with engine.content.open(layer["digest"]) as f:
            assert gzip.decompress(f.read()) == busybox_tar.read_bytes()
        config = engine.image_store.config(image)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + _sha256(busybox_tar)]
    assert "created_by" not in config["history"][0]  # Docker: the message is the only word of it
    assert config["history"][0]["comment"] == config["comment"] == "first import"
    assert config["history"][0]["created"] == config["created"]
    assert config["comment"] == "first import"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_changes_appear_in_inspect(run_cli, busybox_tar: Path) -> None:
    run_cli(
        "import",
        "-c", 'CMD ["sh", "-c", "echo hi"]',
        "-c", "ENTRYPOINT /bin/env",
        "--change", "ENV A=1 B=\"two words\"",
        "-c", "ENV PATH=/bin:$A",
        "-c", "WORKDIR /srv",
        "-c", "WORKDIR app",
        "-c", "EXPOSE 80 53/udp",
        "-c", "USER nobody",
        "-c", "LABEL org.example.name=busy version=1",
        "-c", "VOLUME /data",
        "-c", "STOPSIGNAL SIGINT",
        busybox_tar, "changed:1", check=True)
    cfg = inspect(run_cli, "changed:1")["Config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/env"]
    assert cfg["Env"] == ["A=1", "B=two words", "PATH=/bin:1"]
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["User"] == "nobody"
    assert cfg["Labels"] == {"org.example.name": "busy", "version": "1"}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    out = run_cli("image", "inspect", "-f", "{{.Config.Cmd}}|{{json .Config.Labels}}|{{.Config.User}}", "changed:1",
                  check=True).stdout
    assert out == '[sh -c echo hi]|{"org.example.name":"busy","version":"1"}|nobody\n'


def test_shell_form_cmd(run_cli, busybox_tar: Path) -> None:
    run_cli("import", "-c", "CMD sh -c x", busybox_tar, "shell", check=True)
    assert inspect(run_cli, "shell")["Config"]["Cmd"] == ["/bin/sh", "-c", "sh -c x"]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "xz"])
def test_compressed_tarballs_give_the_same_layer(run_cli, busybox_tar: Path, tmp_path: Path, compression: str) -> None:
    data = busybox_tar.read_bytes()
    if compression == "gzip":
        packed = gzip.compress(data)
    elif compression == "zstd":
        import zstandard

        packed = zstandard.ZstdCompressor().compress(data)
    else:
        packed = lzma.compress(data)
    src = tmp_path / f"rootfs.tar.{compression}"
    src.write_bytes(packed)
    run_cli("import", busybox_tar, "plain", check=True)
    run_cli("import", src, "packed", check=True)
    assert inspect(run_cli, "packed")["RootFS"]["Layers"] == inspect(run_cli, "plain")["RootFS"]["Layers"]
    assert inspect(run_cli, "packed")["Size"] == inspect(run_cli, "plain")["Size"]


def test_import_from_stdin(busybox_tar: Path, dockyard_root: Path, run_cli) -> None:
    with open(busybox_tar, "rb") as f:
        result = subprocess.run([sys.executable, "-m", "dockyard", "import", "-", "from-stdin:1"], stdin=f,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert inspect(run_cli, "from-stdin:1")["Id"] == result.stdout.strip()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server serving ``tmp_path``: (base URL, directory)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_import_from_url(run_cli, busybox_tar: Path, http_server: tuple[str, Path], dockyard_root: Path) -> None:
    base, directory = http_server
    (directory / "rootfs.tar.gz").write_bytes(gzip.compress(busybox_tar.read_bytes()))
    url = f"{base}/rootfs.tar.gz"
    run_cli("import", url, "from-url", check=True)
    with _engine(dockyard_root) as engine:
        config_ = engine.image_store.config(engine.image_store.lookup("from-url"))
    assert config_["history"][0]["comment"] == config_["comment"] == f"Imported from {url}"
    assert config_["rootfs"]["diff_ids"] == ["sha256:" + _sha256(busybox_tar)]
    assert list((dockyard_root / "tmp").iterdir()) == []  # the download is gone

    missing = run_cli("import", f"{base}/nope.tar", "x")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: cannot import") and "404" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1


def test_platform_and_untagged_import(run_cli, busybox_tar: Path) -> None:
    image_id = run_cli("import", "--platform", "linux/arm64/v8", busybox_tar, check=True).stdout.strip()
    info = inspect(run_cli, image_id)
    assert (info["Os"], info["Architecture"], info["Variant"]) == ("linux", "arm64", "v8")
    assert info["RepoTags"] == []
    assert run_cli("images", check=True).stdout.splitlines()[1].split()[:3] == ["<none>", "<none>", image_id[7:19]]


@pytest.mark.parametrize("args,message", [
    (["-c", "FROM scratch"], "Error: FROM is not a valid change command"),
    (["-c", "EXPOSE http"], "Error: invalid containerPort: http"),
])
def test_bad_changes_fail_before_reading(run_cli, busybox_tar: Path, dockyard_root: Path, args, message) -> None:
    result = run_cli("import", *args, busybox_tar, "x")
    assert result.returncode == 1
    assert result.stderr == message + "\n"
    assert blobs(dockyard_root) == []


def test_not_a_tarball_leaves_nothing(run_cli, tmp_path: Path, dockyard_root: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    result = run_cli("import", junk, "junk")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert run_cli("images", "-q", check=True).stdout == ""
    assert blobs(dockyard_root) == []
    assert layer_dirs(dockyard_root) == []


def test_truncated_gzip_tarball_leaves_nothing(run_cli, busybox_tar: Path, tmp_path: Path, dockyard_root: Path) -> None:
    packed = gzip.compress(busybox_tar.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    result = run_cli("import", cut, "cut")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "truncated" in result.stderr
    assert blobs(dockyard_root) == []
    assert layer_dirs(dockyard_root) == []


def test_missing_file(run_cli, tmp_path: Path) -> None:
    result = run_cli("import", tmp_path / "nope.tar")
    assert result.returncode == 1
    assert result.stderr == f"Error: cannot open {tmp_path / 'nope.tar'}: No such file or directory\n"
