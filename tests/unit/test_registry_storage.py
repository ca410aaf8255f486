"""One conformance suite for every storage driver (filesystem, and S3 on moto's server)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from dockyard.registry.storage import PathNotFound, StorageDriver
from dockyard.registry.storage.filesystem import FilesystemDriver
from dockyard.testing.s3 import MotoS3


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with MotoS3() as s3:
        yield s3


@pytest.fixture(params=["filesystem", "s3"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    if request.param == "filesystem":
        d: StorageDriver = FilesystemDriver(tmp_path / "data", fsync=False)
    else:
        from dockyard.registry.storage.s3 import S3Driver

        s3 = request.getfixturevalue("moto")
        d = S3Driver(**s3.s3_config(f"b-{uuid.uuid4().hex[:12]}", prefix="pre"))
    yield d
    await d.close()


async def test_put_get_stat(driver: StorageDriver) -> None:
    await driver.put("a/b/c", b"hello")
    assert await driver.get("a/b/c") == b"hello"
    st = await driver.stat("a/b/c")
    assert st is not None and st.size == 5 and not st.is_dir and st.mtime > 0
    d = await driver.stat("a/b")
    assert d is not None and d.is_dir
    assert await driver.stat("a/nope") is None


async def test_reader_offset(driver: StorageDriver) -> None:
    await driver.put("x", b"0123456789")
    chunks = [c async for c in driver.reader("x", 4)]
    assert b"".join(chunks) == b"456789"
    assert b"".join([c async for c in driver.reader("x", 10)]) == b""


async def test_missing(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFound):
        [c async for c in driver.reader("missing")]
    with pytest.raises(PathNotFound):
        await driver.delete("missing")
    with pytest.raises(PathNotFound):
        await driver.move("missing", "elsewhere")


async def test_streaming_writer_is_atomic(driver: StorageDriver) -> None:
    await driver.put("obj", b"old")
    w = await driver.writer("obj")
    part = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(10):  # > one S3 part: multipart
        await w.write(part)
    assert await driver.get("obj") == b"old"  # invisible until commit
    await w.commit()
    assert w.size == 10 * len(part)
    st = await driver.stat("obj")
    assert st is not None and st.size == 10 * len(part)
    assert b"".join([c async for c in driver.reader("obj")]) == part * 10


async def test_cancelled_writer_leaves_nothing(driver: StorageDriver) -> None:
    w = await driver.writer("dir/never")
    await w.write(b"x" * 100)
    await w.cancel()
    assert await driver.stat("dir/never") is None
    assert await driver.list("dir") == []


async def test_list_sorted_and_paged(driver: StorageDriver) -> None:
    names = ["p/a", "p/b/c", "p/b/d", "p/c", "q/z"]
    for n in reversed(names):
        await driver.put(n, b"")
    assert await driver.list("p") == ["p/a", "p/b/c", "p/b/d", "p/c"]
    assert await driver.list("p", start_after="p/b/c") == ["p/b/d", "p/c"]
    assert await driver.list("p", limit=2) == ["p/a", "p/b/c"]
    assert await driver.list("nothing") == []


async def test_move_and_delete(driver: StorageDriver) -> None:
    await driver.put("m/src", b"data")
    await driver.put("m/dst", b"replaced")
    await driver.move("m/src", "m/dst")
    assert await driver.stat("m/src") is None
    assert await driver.get("m/dst") == b"data"
    await driver.put("t/1", b"")
    await driver.put("t/2/3", b"")
    await driver.delete("t")
    assert await driver.list("t") == []
    await driver.delete("m/dst")
    assert await driver.stat("m/dst") is None


async def test_empty_object(driver: StorageDriver) -> None:
    await driver.put("empty", b"")
    assert await driver.get("empty") == b""
    assert (await driver.stat("empty")).size == 0


@pytest.mark.parametrize("bad", ["../x", "a/../b", ""])
async def test_paths_cannot_escape(driver: StorageDriver, bad: str) -> None:
    with pytest.raises(ValueError):
        await driver.put(bad, b"x")
