"""``import``: a rootfs tarball (file, http(s) URL or stdin) becomes a one-layer image.

The tarball may be plain, gzip, zstd, xz or bzip2. Its uncompressed bytes are the
layer's diff ID (as in Docker); they are stored gzip-compressed at level 1 (fast, and
what Docker's import produces: a ``tar.gzip`` layer) in one streaming pass, under a
Docker schema2 manifest so Docker-era tools accept the image. The config carries the
``--change`` settings and one history entry commented ``Imported from -`` (or from the URL).
"""

from __future__ import annotations

import contextlib
import bz2
import io
import json
import lzma
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, Sequence, TypeVar

from dockyard import digest as digests
from dockyard import reference as references
from dockyard.errors import DockyardError, InvalidArchiveError, InvalidReferenceError
from dockyard.images.changes import apply_changes
from dockyard.oci import mediatypes as mt

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.oci.platform import Platform
    from dockyard.store.content import Writer
    from dockyard.store.images import Image

CHUNK = 1 << 20
GZIP_LEVEL = 1  # import is about speed; the layer can be recompressed harder on push if wanted
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"
T = TypeVar("T")


def import_image(
    engine: "Engine",
    source: str | BinaryIO,
    reference: str | None = None,
    changes: Sequence[str] = (),
    message: str = "",
    platform: "Platform | None" = None,
) -> "Image":
    from dockyard.timefmt import rfc3339_nano_utc
    from dockyard.oci.platform import host
    from dockyard.store.owned import image_lease

    # Everything the user typed is checked before a byte of the tarball is read.
    tags = []
    if reference:
        ref = references.parse(reference)
        if ref.digest:
            raise InvalidReferenceError(f"invalid reference {reference!r}: cannot import to a digest reference")
        tags.append(str(ref))
    container_config = apply_changes({}, changes)
    platform = platform or host()
    created = rfc3339_nano_utc(_now())
    # The lease keeps a collector off the blobs and the layer committed before the image.
    with image_lease(engine.root):
        return _import(engine, source, tags, container_config, platform, created, message)


def _import(engine: "Engine", source: str | BinaryIO, tags: list[str], container_config: dict,
            platform: "Platform", created: str, message: str) -> "Image":
    from dockyard.images.commit import commit

    written: list[str] = []  # blobs this import added, removed again if it fails
    layer_chain = ""
    try:
        with _open_source(engine, source) as (stream, origin):
            layer_digest, layer_size, diff_id = _store_layer(engine, stream, written)
        layer_chain = diff_id  # a base layer's chain ID is its diff ID
        # Docker's import: the message (by default "Imported from -" or the URL) is the image's
        # comment and its one history entry's; that entry has no created_by.
        comment = message or f"Imported from {origin}"
        history = {"created": created, "comment": comment}
        config: dict = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            config["variant"] = platform.variant
        config.update({
            "config": container_config,
            "created": created,
            "history": [history],
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        })
        config["comment"] = comment
        config_bytes = _json(config)
        config_digest = _write(engine, config_bytes, written)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
            "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "size": layer_size, "digest": layer_digest}],
        }
        manifest_digest = _write(engine, _json(manifest), written)
        return commit(engine, manifest_digest, tags)
    except BaseException:
        # Only what this import created goes; commit() records the image last, so none is used.
        for digest in written:
            engine.content.delete(digest)
        if layer_chain:
            _drop_if_unused(engine, layer_chain)
        raise


def _now() -> float:
    import time

    return time.time()


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _write(engine: "Engine", data: bytes, written: list[str]) -> str:
    digest = digests.of_bytes(data)
    if not engine.content.has(digest):
        engine.content.write_bytes(data, digest)
        written.append(digest)
    return digest


@contextlib.contextmanager
def _open_source(engine: "Engine", source: str | BinaryIO) -> Iterator[tuple[BinaryIO, str]]:
    """The tarball as a stream, and how the history names it (``-`` or the URL)."""
    if not isinstance(source, str):
        yield source, "-"
        return
    if source == "-":
        yield sys.stdin.buffer, "-"
        return
    if source.startswith(("http://", "https://")):
        from dockyard.store.owned import scratch

        # Locked while we use it: a kill -9 leaves a file the next prune knows is dead.
        with scratch(engine.root).new_file("import-") as name:
            _download(source, Path(name))
            with open(name, "rb") as f:
                yield f, source
        return
    if "://" in source.split("/", 1)[0] + "/":
        raise DockyardError(f"unsupported import source {source!r}: only http:// and https:// URLs")
    try:
        f = open(source, "rb")
    except OSError as e:
        raise DockyardError(f"cannot open {source}: {e.strerror}") from None
    with f:
        yield f, "-"  # Docker's CLI sends a file's bytes as stdin: "Imported from -"


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` with aiohttp (imported only here), bounded memory."""
    import asyncio

    import aiohttp

    async def fetch() -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise DockyardError(f"cannot import {url}: HTTP {resp.status} {resp.reason or ''}".rstrip())
                with open(dest, "wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        f.write(chunk)

    try:
        asyncio.run(fetch())
    except aiohttp.ClientError as e:
        raise DockyardError(f"cannot import {url}: {e}") from None
    except asyncio.TimeoutError:
        raise DockyardError(f"cannot import {url}: timed out") from None


class Prefixed(io.RawIOBase):
    """``prefix`` then the rest of ``stream``: sniffing magic bytes of a pipe without seeking."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(view)) or b""
        view[: len(data)] = data
        return len(data)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of a tarball in any compression ``docker import`` takes."""
    from dockyard.store.archive import open_decompressed

    head = _read_up_to(stream, 6)
    source = io.BufferedReader(Prefixed(head, stream), buffer_size=CHUNK)
    if head.startswith(XZ_MAGIC):
        return lzma.LZMAFile(source)  # type: ignore[return-value]
    if head.startswith(BZIP2_MAGIC):
        return bz2.BZ2File(source)  # type: ignore[return-value]
    return open_decompressed(source, None)


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class _GzipTee(io.RawIOBase):
    """Reads the uncompressed tar for the layer store while gzipping the same bytes into
    the content store: one pass over the input unpacks, hashes and compresses it."""

    def __init__(self, source: BinaryIO, writer: "Writer") -> None:
        self._source = source
        self._writer = writer
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
        self._hash = digests.new_hasher("sha256")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        data = _guard(lambda: self._source.read(len(view)))
        if data:
            view[: len(data)] = data
            self._emit(self._compressor.compress(data))
        return len(data)

    def _emit(self, out: bytes) -> None:
        if out:
            self._hash.update(out)
            self._writer.write(out)

    def finish(self) -> str:
        """Compress whatever the unpacker left unread, close the gzip stream; the blob digest."""
        while data := _guard(lambda: self._source.read(CHUNK)):
            self._emit(self._compressor.compress(data))
        self._emit(self._compressor.flush())
        return f"sha256:{self._hash.hexdigest()}"


def _store_layer(engine: "Engine", stream: BinaryIO, written: list[str]) -> tuple[str, int, str]:
    """Unpack the tarball as a layer and store it gzipped. Returns (blob digest, size, diff ID)."""
    plain = _guard(lambda: decompressed(stream))
    with engine.content.ingest() as writer:
        tee = _GzipTee(plain, writer)
        info = engine.layers.unpack(io.BufferedReader(tee, buffer_size=CHUNK), "", None, None)
        try:
            blob = tee.finish()
            existed = engine.content.has(blob)  # an identical import before: not ours to remove
            writer.commit()
        except BaseException:
            _drop_if_unused(engine, info.chain_id)
            raise
        size = writer.count
    if not existed:
        written.append(blob)
    return blob, size, info.diff_id


def _drop_if_unused(engine: "Engine", chain: str) -> None:
    if chain in engine.layers.unused():
        engine.layers.delete(chain)


def _guard(read: Callable[[], T]) -> T:
    """Run a read of the input, turning decompressor and I/O errors into one clear error."""
    try:
        return read()
    except DockyardError:
        raise
    except (EOFError, OSError, ValueError, zlib.error, lzma.LZMAError) as e:
        raise InvalidArchiveError(f"cannot read the tarball: {e}") from None
