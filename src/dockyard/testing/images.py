"""Test images: a busybox rootfs, random layers, and OCI image layouts built from them.

Everything here is deterministic (fixed mtimes, numeric owners, sorted entries,
seeded random data, gzip without timestamps) so that two builds give the same
digests, and streams with bounded memory so 256 MiB layers are fine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import Platform
from dockyard.oci.platform import host as host_platform
from dockyard.oci.platform import parse as parse_platform

MTIME = 1704067200  # 2024-01-01T00:00:00Z, for every tar entry we write
CREATED = "2024-01-01T00:00:00Z"
CHUNK = 1 << 20
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
REF_NAME = "org.opencontainers.image.ref.name"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


# --- busybox rootfs ----------------------------------------------------------------------

def find_busybox() -> Path:
    """Debian's busybox-static binary (a dynamic busybox would not run in an empty rootfs)."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file():
            if not _is_static_elf(candidate):
                raise RuntimeError(f"{candidate} is dynamically linked: install busybox-static")
            return candidate
    raise FileNotFoundError("busybox not found: apt-get install busybox-static")


def _is_static_elf(path: Path) -> bool:
    """True if the ELF file has no PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        wide, order = head[4] == 2, "little" if head[5] == 1 else "big"

        def num(offset: int, size: int) -> int:
            return int.from_bytes(head[offset:offset + size], order)

        phoff, phentsize, phnum = (num(0x20, 8), num(0x36, 2), num(0x38, 2)) if wide else \
            (num(0x1C, 4), num(0x2A, 2), num(0x2C, 2))
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    PT_INTERP = 3
    return all(int.from_bytes(table[i:i + 4], order) != PT_INTERP for i in range(0, len(table), phentsize))


def _applets(busybox: Path) -> list[str]:
    """Install paths of every applet, e.g. ``bin/sh``, ``usr/bin/[`` (from ``--list-full``)."""
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()} - {"bin/busybox"})


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
    return info


def busybox_rootfs_tar(out: Path, busybox: Path | None = None) -> Path:
    """Write an uncompressed rootfs tar: busybox, one relative symlink per applet,
    /etc/passwd and /etc/group, and the usual empty directories. Same input, same bytes."""
    busybox = busybox or find_busybox()
    applets = _applets(busybox)
    dirs = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "proc": 0o555, "root": 0o700,
            "sys": 0o555, "tmp": 0o1777, "usr": 0o755}
    for applet in applets:  # every parent of an applet (sbin, usr/bin, usr/sbin, ...)
        parent = os.path.dirname(applet)
        while parent:
            dirs.setdefault(parent, 0o755)
            parent = os.path.dirname(parent)
    files = {"bin/busybox": (busybox.read_bytes(), 0o755),
             "etc/passwd": (PASSWD.encode(), 0o644), "etc/group": (GROUP.encode(), 0o644)}

    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    entries += [(_info(d, tarfile.DIRTYPE, mode), None) for d, mode in dirs.items()]
    entries += [(_info(n, tarfile.REGTYPE, mode, len(data)), data) for n, (data, mode) in files.items()]
    entries += [(_info(a, tarfile.SYMTYPE, 0o777, linkname=os.path.relpath("bin/busybox", os.path.dirname(a) or ".")),
                 None) for a in applets]
    entries.sort(key=lambda e: e[0].name)  # a parent is a prefix of its children, so it sorts first

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


# --- random layers -----------------------------------------------------------------------

class _RandomStream(io.RawIOBase):
    """An endless, seeded stream of incompressible bytes (SHAKE-128 per 1 MiB block)."""

    def __init__(self, seed: int) -> None:
        self._seed, self._block, self._buf = seed, 0, b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        parts, want = [], n
        while want > 0:
            if not self._buf:
                self._buf = hashlib.shake_128(b"dockyard-random:%d:%d" % (self._seed, self._block)).digest(CHUNK)
                self._block += 1
            part, self._buf = self._buf[:want], self._buf[want:]
            parts.append(part)
            want -= len(part)
        return b"".join(parts)


def random_layer_tar(out: Path, size: int, seed: int, name: str = "data.bin") -> Path:
    """Write an uncompressed tar holding one file of ``size`` pseudo-random bytes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
        tar.addfile(_info(name, tarfile.REGTYPE, 0o644, size), _RandomStream(seed))
    return out


# --- OCI image layouts -------------------------------------------------------------------

@dataclass
class ImageSpec:
    """One image (one platform) to write into a layout."""

    layers: Sequence[Path]
    compression: str | Sequence[str] = "gzip"  # "gzip" | "zstd" | "", for all layers or per layer
    platform: Platform | str | None = None      # None: the host's
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    flavour: str = "oci"                        # "oci" | "docker" (Docker schema2 media types)

    def compressions(self) -> list[str]:
        if isinstance(self.compression, str):
            return [self.compression] * len(self.layers)
        if len(self.compression) != len(self.layers):
            raise ValueError("compression needs one entry per layer")
        return list(self.compression)

    def layer_media_types(self) -> list[str]:
        """The media type of each layer; raises ValueError for a spec we cannot write."""
        if self.flavour not in ("oci", "docker"):
            raise ValueError(f"unknown manifest flavour {self.flavour!r}: use 'oci' or 'docker'")
        types = []
        for compression in self.compressions():
            if compression not in ("", "gzip", "zstd"):
                raise ValueError(f"unknown compression {compression!r}: use 'gzip', 'zstd' or ''")
            media_type = _LAYER_TYPES.get((self.flavour, compression))
            if media_type is None:  # Docker schema2 has no zstd layer type
                raise ValueError(f"a {self.flavour} manifest cannot hold a {compression} layer")
            types.append(media_type)
        return types

    def resolved_platform(self) -> Platform:
        if self.platform is None:
            return host_platform()
        return parse_platform(self.platform) if isinstance(self.platform, str) else self.platform


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what a compressor writes before it reaches the file."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self._hash, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self._hash.update(data)
        self.size += len(data)
        self._f.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


_LAYER_TYPES = {
    ("oci", ""): mt.OCI_LAYER, ("oci", "gzip"): mt.OCI_LAYER_GZIP, ("oci", "zstd"): mt.OCI_LAYER_ZSTD,
    ("docker", ""): mt.DOCKER_LAYER, ("docker", "gzip"): mt.DOCKER_LAYER_GZIP,
}


class _Layout:
    """Writes content-addressed blobs into ``dest/blobs/sha256`` (each one once)."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.blobs = dest / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._layers: dict[tuple[str, str], tuple[dict, str]] = {}

    def add_bytes(self, data: bytes, media_type: str) -> dict:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        path = self.blobs / digest[7:]
        if not path.exists():
            tmp = self.blobs / f".tmp-{os.getpid()}-{digest[7:19]}"
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_json(self, obj: dict, media_type: str) -> dict:
        return self.add_bytes(json.dumps(obj, separators=(",", ":")).encode(), media_type)

    def add_layer(self, tar_path: Path, compression: str, media_type: str) -> tuple[dict, str]:
        """Compress ``tar_path`` into a blob, streaming; return (descriptor, diff_id)."""
        key = (str(Path(tar_path).resolve()), compression)
        if key not in self._layers:
            self._layers[key] = self._write_layer(Path(tar_path), compression)
        descriptor, diff_id = self._layers[key]
        return {**descriptor, "mediaType": media_type}, diff_id

    def _write_layer(self, tar_path: Path, compression: str) -> tuple[dict, str]:
        diff = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=self.blobs)
        try:
            with open(fd, "wb") as raw, open(tar_path, "rb") as src:
                out = _HashingWriter(raw)
                sink, close = _compressor(out, compression)
                while chunk := src.read(CHUNK):
                    diff.update(chunk)
                    sink.write(chunk)
                close()
            os.replace(tmp_name, self.blobs / out.digest[7:])
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return {"mediaType": "", "digest": out.digest, "size": out.size}, f"sha256:{diff.hexdigest()}"


def _compressor(out: _HashingWriter, compression: str):
    """(writer, close) compressing into ``out``; close finishes the stream, not ``out``."""
    if compression == "":
        return out, lambda: None
    if compression == "gzip":
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)  # mtime=0: reproducible
        return gz, gz.close
    if compression == "zstd":
        import zstandard  # only layouts that ask for zstd pay for it

        zw = zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
        return zw, zw.close
    raise AssertionError(compression)  # ImageSpec.layer_media_types() let it through


def _image_config(spec: ImageSpec, platform: Platform, diff_ids: list[str]) -> dict:
    config: dict = {"Env": list(spec.env)}
    for key, value in (("Entrypoint", spec.entrypoint), ("Cmd", spec.cmd), ("WorkingDir", spec.working_dir),
                       ("User", spec.user), ("Labels", spec.labels)):
        if value:
            config[key] = value
    doc: dict = {"created": CREATED, "architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        doc["variant"] = platform.variant
    doc["config"] = config
    doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    doc["history"] = [{"created": CREATED, "created_by": f"dockyard.testing layer {i}"} for i in range(len(diff_ids))]
    return doc


def _write_image(layout: _Layout, spec: ImageSpec) -> tuple[dict, Platform]:
    """Write one image's layers, config and manifest; return the manifest descriptor."""
    platform = spec.resolved_platform()
    layers, diff_ids = [], []
    for tar_path, compression, media_type in zip(spec.layers, spec.compressions(), spec.layer_media_types()):
        descriptor, diff_id = layout.add_layer(tar_path, compression, media_type)
        layers.append(descriptor)
        diff_ids.append(diff_id)
    docker = spec.flavour == "docker"
    config = layout.add_json(_image_config(spec, platform, diff_ids), mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG)
    manifest_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    manifest = {"schemaVersion": 2, "mediaType": manifest_type, "config": config, "layers": layers}
    return layout.add_json(manifest, manifest_type), platform


def _platform_object(platform: Platform) -> dict:
    obj = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        obj["variant"] = platform.variant
    return obj


def write_oci_layout(dest: Path, images: list[ImageSpec], tag: str = "latest") -> str:
    """Write ``images`` into an OCI image layout at ``dest`` under ``tag`` and return the
    digest of the top-level manifest (one image) or index (several: an OCI index, or a
    Docker manifest list for docker-flavoured images). An existing layout is extended;
    an older entry with the same tag is replaced."""
    if not images:
        raise ValueError("write_oci_layout needs at least one image")
    # Check every spec before writing anything (layers can be hundreds of MiB).
    for spec in images:
        spec.layer_media_types()
        spec.resolved_platform()
    flavours = {spec.flavour for spec in images}
    if len(flavours) != 1:
        raise ValueError("a multi-platform image needs one manifest flavour for all its images")
    dest = Path(dest)
    layout = _Layout(dest)
    written = [_write_image(layout, spec) for spec in images]
    if len(written) == 1:
        top = written[0][0]
    else:
        index_type = mt.DOCKER_MANIFEST_LIST if flavours == {"docker"} else mt.OCI_INDEX
        entries = [{**descriptor, "platform": _platform_object(platform)} for descriptor, platform in written]
        top = layout.add_json({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}, index_type)

    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = dest / "index.json"
    manifests = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    manifests = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) != tag]
    manifests.append({**top, "annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}))
    return top["digest"]


# --- skopeo ------------------------------------------------------------------------------

def skopeo(*args: str, check: bool = True, timeout: float = 600, input: str | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """Run skopeo with no policy and a private HOME, so that it reads no user or system
    registries.conf, auth file or blob-info cache and two runs cannot influence each other
    (with a shared blob-info cache skopeo mounts or substitutes blobs it saw earlier)."""
    exe = shutil.which("skopeo")
    if exe is None:
        raise FileNotFoundError("skopeo not found: apt-get install skopeo")
    with tempfile.TemporaryDirectory(prefix="dockyard-skopeo-") as home:
        (Path(home) / "registries.d").mkdir()
        (Path(home) / "registries.conf").write_text("")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_DATA_HOME": f"{home}/share",
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_RUNTIME_DIR": f"{home}/run",
            "REGISTRY_AUTH_FILE": f"{home}/auth.json",
            "CONTAINERS_REGISTRIES_CONF": f"{home}/registries.conf",
            # As root, containers/image keeps its blob-info cache in /var/lib/containers and
            # ignores HOME; claiming to be rootless moves it under XDG_DATA_HOME.
            "_CONTAINERS_ROOTLESS_UID": str(os.geteuid() or 65534),
            "TMPDIR": home,
        }
        cmd = [exe, "--insecure-policy", "--registries.d", f"{home}/registries.d", *args]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise SkopeoError(result.returncode, cmd, result.stdout, result.stderr)
    return result


class SkopeoError(subprocess.CalledProcessError):
    """A failed skopeo run; unlike CalledProcessError its message includes skopeo's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()}"


def push_oci_layout(layout: Path, dest: str, tag: str = "latest", creds: tuple[str, str] | None = None) -> None:
    """Copy the image tagged ``tag`` in ``layout`` (all platforms, digests unchanged) to
    ``docker://dest``, e.g. ``dest="127.0.0.1:5000/repo:tag"``, over plain HTTP.

    skopeo's ``oci:`` transport ignores index.json entries with Docker media types, so a
    docker-flavoured image is pushed from a ``dir:`` view of the same blobs instead."""
    args = ["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    layout = Path(layout)
    top = _tagged_descriptor(layout, tag)
    if top["mediaType"] in (mt.OCI_MANIFEST, mt.OCI_INDEX):
        skopeo(*args, f"oci:{layout}:{tag}", f"docker://{dest}")
        return
    with tempfile.TemporaryDirectory(prefix=".skopeo-dir-", dir=_writable_parent(layout)) as view:
        _dir_transport_view(layout, top, Path(view))
        skopeo(*args, f"dir:{view}", f"docker://{dest}")


def _tagged_descriptor(layout: Path, tag: str) -> dict:
    for descriptor in json.loads((layout / "index.json").read_text())["manifests"]:
        if descriptor.get("annotations", {}).get(REF_NAME) == tag:
            return descriptor
    raise KeyError(f"no image tagged {tag!r} in {layout}")


def _writable_parent(layout: Path) -> str | None:
    # Same filesystem as the blobs, so the view can hard-link instead of copying.
    parent = layout.resolve().parent
    return str(parent) if os.access(parent, os.W_OK) else None


def _dir_transport_view(layout: Path, top: dict, view: Path) -> None:
    """Lay out the image ``top`` as containers/image's ``dir:`` transport expects it:
    manifest.json, ``<hex>.manifest.json`` per list entry, and blobs named ``<hex>``."""
    blobs = layout / "blobs" / "sha256"

    def link(digest: str, name: str) -> None:
        target = view / name
        if not target.exists():
            try:
                os.link(blobs / digest[7:], target)
            except OSError:
                shutil.copyfile(blobs / digest[7:], target)

    def add_manifest(digest: str, name: str) -> None:
        link(digest, name)
        manifest = json.loads((blobs / digest[7:]).read_text())
        for blob in [manifest["config"], *manifest["layers"]]:
            link(blob["digest"], blob["digest"][7:])

    (view / "version").write_text("Directory Transport Version: 1.1\n")
    if top["mediaType"] in mt.INDEXES:
        link(top["digest"], "manifest.json")
        for entry in json.loads((blobs / top["digest"][7:]).read_text())["manifests"]:
            add_manifest(entry["digest"], entry["digest"][7:] + ".manifest.json")
    else:
        add_manifest(top["digest"], "manifest.json")
