"""The index's semantics, for both implementations (sqlite, and objects in a driver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.registry.errors import APIError
from dockyard.registry.index import Index, ManifestRecord, ObjectIndex, SqliteIndex
from dockyard.registry.storage.filesystem import FilesystemDriver

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


@pytest.fixture(params=["sqlite", "objects"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Index:
    if request.param == "sqlite":
        return SqliteIndex(tmp_path / "index.db")
    return ObjectIndex(FilesystemDriver(tmp_path / "data", fsync=False))


def rec(digest: str, **kw) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", 100, **kw)


async def test_links(index: Index) -> None:
    assert not await index.blob_linked("r", D1)
    await index.link_blob("r", D1, 10)
    assert await index.blob_linked("r", D1) and not await index.blob_linked("other", D1)
    assert await index.repo_exists("r")
    assert await index.unlink_blob("r", D1)
    assert not await index.unlink_blob("r", D1)


async def test_manifests_and_tags(index: Index) -> None:
    await index.link_blob("r", D2)
    await index.put_manifest("r", rec(D1, refs=[D2]), "latest", blobs=[D2])
    assert await index.resolve("r", "latest") == D1
    assert (await index.get_manifest("r", D1)).media_type.endswith("manifest.v1+json")
    await index.put_manifest("r", rec(D1), "v1")
    assert await index.tags("r", None, None) == ["latest", "v1"]
    assert await index.delete_tag("r", "v1")
    assert await index.tags("r", None, None) == ["latest"]
    assert await index.delete_manifest("r", D1)
    assert await index.resolve("r", "latest") is None
    assert await index.get_manifest("r", D1) is None


async def test_put_manifest_checks_references(index: Index) -> None:
    with pytest.raises(APIError) as e:
        await index.put_manifest("r", rec(D1), "t", blobs=[D2])
    assert e.value.code == "MANIFEST_BLOB_UNKNOWN"
    with pytest.raises(APIError):
        await index.put_manifest("r", rec(D1), "t", manifests=[D3])
    assert await index.resolve("r", "t") is None


async def test_pagination(index: Index) -> None:
    for tag in ["b", "a", "d", "c"]:
        await index.put_manifest("r", rec(D1), tag)
    assert await index.tags("r", 2, None) == ["a", "b"]
    assert await index.tags("r", 2, "b") == ["c", "d"]
    assert await index.tags("r", 0, None) == []
    for repo in ["z", "m/a", "m", "a"]:
        await index.link_blob(repo, D1)
    everything = await index.catalog(None, None)
    assert set(everything) == {"a", "m", "m/a", "r", "z"}
    assert await index.catalog(2, everything[1]) == everything[2:4]


async def test_referrers(index: Index) -> None:
    await index.put_manifest("r", rec(D1), "subject")
    await index.put_manifest("r", rec(D2, subject=D1, artifact_type="a/sig", annotations={"k": "v"}), None)
    await index.put_manifest("other", rec(D3, subject=D1), None)
    found = await index.referrers("r", D1)
    assert [r.descriptor() for r in found] == [{"mediaType": rec(D2).media_type, "digest": D2, "size": 100,
                                                "artifactType": "a/sig", "annotations": {"k": "v"}}]
    await index.delete_manifest("r", D2)
    assert await index.referrers("r", D1) == []
