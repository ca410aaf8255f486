"""The distribution spec, endpoint by endpoint, against dockyard's registry (filesystem and
S3 storage) and against CNCF distribution 2.8 as the reference. What distribution lacks
is marked xfail(strict) on it, so these notes stay true."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Iterator

import pytest

from dockyard.oci import mediatypes as mt
from dockyard.testing.client import Client
from dockyard.testing.registry import DistributionRegistry, DockyardRegistry
from dockyard.testing.s3 import MotoS3
from tests.conftest import require

_names = itertools.count()


@pytest.fixture(scope="module", params=["dockyard", "dockyard-s3", "distribution"])
def api(request: pytest.FixtureRequest) -> Iterator[tuple[str, Client]]:
    kind = request.param
    if kind == "distribution":
        require("docker-registry")
        with DistributionRegistry() as reg:
            yield kind, Client(reg.url)
    elif kind == "dockyard-s3":
        with MotoS3() as s3, DockyardRegistry({"storage": "s3", "s3": s3.s3_config("conformance")}) as reg:
            yield kind, Client(reg.url)
    else:
        with DockyardRegistry() as reg:
            yield kind, Client(reg.url)


@pytest.fixture
def c(api: tuple[str, Client]) -> Client:
    return api[1]


@pytest.fixture
def repo() -> str:
    return f"conformance/repo-{next(_names)}"


def lacks(api: tuple[str, Client], request: pytest.FixtureRequest, reason: str) -> None:
    if api[0] == "distribution":
        request.applymarker(pytest.mark.xfail(reason=f"distribution 2.8: {reason}", strict=True))


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def push_blob(c: Client, repo: str, data: bytes) -> str:
    d = sha(data)
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data,
                  {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
    if r.status == 202:  # a registry may ignore the monolithic POST (the spec allows it)
        r = c.request("PUT", f"{r.headers['location']}{'&' if '?' in r.headers['location'] else '?'}digest={d}", data)
    assert r.status == 201, r
    return d


def push_image(c: Client, repo: str, tag: str | None, *, layers: int = 1, seed: bytes = b"",
               media_type: str = mt.OCI_MANIFEST, extra: dict | None = None) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
    cd = push_blob(c, repo, config)
    layer_descs = []
    for i in range(layers):
        data = b"layer-%d-" % i + seed + bytes(100)
        layer_descs.append({"mediaType": mt.OCI_LAYER if media_type == mt.OCI_MANIFEST else mt.DOCKER_LAYER,
                            "digest": push_blob(c, repo, data), "size": len(data)})
    config_type = mt.OCI_CONFIG if media_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG
    manifest = {"schemaVersion": 2, "mediaType": media_type,
                "config": {"mediaType": config_type, "digest": cd, "size": len(config)}, "layers": layer_descs,
                **(extra or {})}
    body = json.dumps(manifest).encode()
    d = sha(body)
    r = c.request("PUT", f"/v2/{repo}/manifests/{tag or d}", body, {"Content-Type": media_type})
    assert r.status == 201, r
    assert r.headers["docker-content-digest"] == d
    return d, body


# --- base, blobs ---------------------------------------------------------------------------

def test_base(c: Client) -> None:
    r = c.request("GET", "/v2/")
    assert r.status == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_monolithic_upload_and_pull(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "ignores the body of a monolithic POST ?digest= (answers 202)")
    data = b"hello monolithic"
    d = sha(data)
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data, {"Content-Length": str(len(data))})
    assert r.status == 201, r
    assert r.headers["location"].endswith(f"/v2/{repo}/blobs/{d}")
    assert r.headers["docker-content-digest"] == d
    r = c.request("GET", f"/v2/{repo}/blobs/{d}")
    assert (r.status, r.body, r.headers["docker-content-digest"]) == (200, data, d)
    r = c.request("HEAD", f"/v2/{repo}/blobs/{d}")
    assert (r.status, r.headers["content-length"], r.body) == (200, str(len(data)), b"")


def test_post_then_put(c: Client, repo: str) -> None:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    assert r.headers["location"] and r.headers["docker-upload-uuid"]
    data = b"post then put"
    loc = r.headers["location"]
    r = c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={sha(data)}", data)
    assert r.status == 201, r
    assert c.request("GET", f"/v2/{repo}/blobs/{sha(data)}").body == data


def test_chunked_upload(c: Client, repo: str) -> None:
    data = bytes(range(256)) * 40
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    offset = 0
    for chunk in (data[:1000], data[1000:5000], data[5000:]):
        r = c.request("PATCH", loc, chunk, {"Content-Type": "application/octet-stream",
                                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                                            "Content-Length": str(len(chunk))})
        assert r.status == 202, r
        offset += len(chunk)
        assert r.headers["range"] == f"0-{offset - 1}"
        loc = r.headers["location"]
        status = c.request("GET", loc)
        assert status.status == 204
        assert status.headers["range"] == f"0-{offset - 1}"
    r = c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={sha(data)}")
    assert r.status == 201, r
    assert c.request("GET", f"/v2/{repo}/blobs/{sha(data)}").body == data


def test_out_of_order_chunk_is_416(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "accepts a chunk whose Content-Range does not start at the offset")
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    r = c.request("PATCH", loc, b"abcd", {"Content-Range": "0-3", "Content-Length": "4"})
    assert r.status == 202
    loc = r.headers["location"]
    r = c.request("PATCH", loc, b"efgh", {"Content-Range": "10-13", "Content-Length": "4"})
    assert r.status == 416, r


def test_streamed_upload(c: Client, repo: str) -> None:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    r = c.request("PATCH", loc, b"stream-1 ")
    assert r.status == 202
    r = c.request("PATCH", r.headers["location"], b"stream-2")
    assert r.status == 202 and r.headers["range"] == "0-16"
    loc = r.headers["location"]
    data = b"stream-1 stream-2"
    r = c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={sha(data)}")
    assert r.status == 201
    assert c.request("GET", f"/v2/{repo}/blobs/{sha(data)}").body == data


def test_cancel_upload(c: Client, repo: str) -> None:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    assert c.request("DELETE", loc).status == 204
    r = c.request("GET", loc)
    assert (r.status, r.error_code) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "answers BLOB_UPLOAD_INVALID for an unknown session id")
    r = c.request("PATCH", f"/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000", b"x")
    assert (r.status, r.error_code) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_digest_mismatch(c: Client, repo: str) -> None:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    r = c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={sha(b'other')}", b"content")
    assert (r.status, r.error_code) == (400, "DIGEST_INVALID")


def test_sha512_blob(c: Client, repo: str) -> None:
    data = b"sha512 content"
    d = sha(data, "sha512")
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["location"]
    r = c.request("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", data)
    assert r.status == 201, r
    r = c.request("GET", f"/v2/{repo}/blobs/{d}")
    assert (r.status, r.body) == (200, data)


def test_range_request(c: Client, repo: str) -> None:
    data = b"0123456789abcdef"
    d = push_blob(c, repo, data)
    r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=2-5"})
    assert (r.status, r.body) == (206, b"2345")
    assert r.headers["content-range"] == f"bytes 2-5/{len(data)}"
    r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=-3"})  # the last 3 bytes
    assert (r.status, r.body) == (206, b"def")
    r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=10-"})
    assert (r.status, r.body) == (206, b"abcdef")


def test_range_past_the_end_is_416(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "answers 416 with the blob's Content-Length but no body")
    data = b"0123456789abcdef"
    d = push_blob(c, repo, data)
    r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{len(data)}"


def test_blob_etag_is_the_digest(c: Client, repo: str) -> None:
    d = push_blob(c, repo, b"cache me")
    r = c.request("GET", f"/v2/{repo}/blobs/{d}")
    assert r.headers["etag"] == f'"{d}"' and r.headers["docker-content-digest"] == d
    r = c.request("GET", f"/v2/{repo}/blobs/{d}", headers={"If-None-Match": f'"{d}"'})
    assert (r.status, r.body) == (304, b"")


def test_blob_unknown(c: Client, repo: str) -> None:
    push_blob(c, repo, b"make the repo exist")
    r = c.request("GET", f"/v2/{repo}/blobs/{sha(b'never pushed')}")
    assert (r.status, r.error_code) == (404, "BLOB_UNKNOWN")
    assert c.request("HEAD", f"/v2/{repo}/blobs/{sha(b'never pushed')}").status == 404


def test_blob_not_linked_in_other_repo(c: Client, repo: str) -> None:
    d = push_blob(c, repo, b"only in one repository")
    assert c.request("GET", f"/v2/{repo}-other/blobs/{d}").status == 404


def test_invalid_digest(c: Client, repo: str) -> None:
    r = c.request("GET", f"/v2/{repo}/blobs/sha256:nothex")
    assert (r.status, r.error_code) == (400, "DIGEST_INVALID")


def test_mount(c: Client, repo: str) -> None:
    d = push_blob(c, repo, b"mount me")
    r = c.request("POST", f"/v2/{repo}-dest/blobs/uploads/?mount={d}&from={repo}")
    assert r.status == 201, r
    assert r.headers["location"].endswith(f"/v2/{repo}-dest/blobs/{d}")
    assert c.request("GET", f"/v2/{repo}-dest/blobs/{d}").body == b"mount me"


def test_mount_unknown_falls_back_to_upload(c: Client, repo: str) -> None:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/?mount={sha(b'nowhere')}&from={repo}-none")
    assert r.status == 202
    assert r.headers["docker-upload-uuid"]


def test_delete_blob(c: Client, repo: str) -> None:
    d = push_blob(c, repo, b"delete me")
    assert c.request("DELETE", f"/v2/{repo}/blobs/{d}").status == 202
    assert c.request("GET", f"/v2/{repo}/blobs/{d}").status == 404


# --- manifests ----------------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_manifest_by_tag_and_digest(c: Client, repo: str, media_type: str) -> None:
    d, body = push_image(c, repo, "v1", media_type=media_type)
    for ref in ("v1", d):
        r = c.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        assert (r.status, r.body) == (200, body)
        assert r.headers["content-type"] == media_type
        assert r.headers["docker-content-digest"] == d
        r = c.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        assert (r.status, r.headers["content-length"]) == (200, str(len(body)))
        assert r.headers["docker-content-digest"] == d


def test_invalid_reference_reads_as_unknown(c: Client, repo: str, api) -> None:
    """The conformance suite's ``.INVALID_MANIFEST_NAME``: a reference that can name nothing
    is a 404 to a GET or HEAD (a PUT of it stays a 400)."""
    push_image(c, repo, "v1")
    for method in ("GET", "HEAD"):
        r = c.request(method, f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME")
        assert r.status == 404, (method, r.status)
        if method == "GET" and api[0] != "distribution":  # distribution's router 404s with no body
            assert json.loads(r.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    if api[0] != "distribution":  # distribution's router 404s a PUT too; we say what is wrong
        r = c.request("PUT", f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME", b"{}", {"Content-Type": mt.OCI_MANIFEST})
        assert r.status == 400


@pytest.mark.parametrize("index_type,child_type", [(mt.OCI_INDEX, mt.OCI_MANIFEST),
                                                   (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)])
def test_index(c: Client, repo: str, index_type: str, child_type: str) -> None:
    children = [push_image(c, repo, None, seed=bytes([i]), media_type=child_type) for i in range(2)]
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": child_type, "digest": d, "size": len(b),
         "platform": {"architecture": arch, "os": "linux"}} for (d, b), arch in zip(children, ("amd64", "arm64"))]}
    body = json.dumps(index).encode()
    r = c.request("PUT", f"/v2/{repo}/manifests/multi", body, {"Content-Type": index_type})
    assert r.status == 201, r
    r = c.request("GET", f"/v2/{repo}/manifests/multi", headers={"Accept": index_type})
    assert (r.status, r.body, r.headers["content-type"]) == (200, body, index_type)


def test_index_with_unknown_child(c: Client, repo: str) -> None:
    push_blob(c, repo, b"x")
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": sha(b"no such manifest"), "size": 16}]}
    r = c.request("PUT", f"/v2/{repo}/manifests/bad", json.dumps(index).encode(), {"Content-Type": mt.OCI_INDEX})
    assert r.status in (400, 404) and r.error_code == "MANIFEST_BLOB_UNKNOWN", r


def test_manifest_blob_unknown(c: Client, repo: str) -> None:
    cd = push_blob(c, repo, b"{}")
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": cd, "size": 2},
                "layers": [{"mediaType": mt.OCI_LAYER, "digest": sha(b"missing layer"), "size": 13}]}
    r = c.request("PUT", f"/v2/{repo}/manifests/t", json.dumps(manifest).encode(), {"Content-Type": mt.OCI_MANIFEST})
    assert r.status in (400, 404) and r.error_code == "MANIFEST_BLOB_UNKNOWN", r


def test_manifest_invalid(c: Client, repo: str) -> None:
    push_blob(c, repo, b"x")
    r = c.request("PUT", f"/v2/{repo}/manifests/t", b"{not json", {"Content-Type": mt.OCI_MANIFEST})
    assert (r.status, r.error_code) == (400, "MANIFEST_INVALID")


def test_manifest_too_large(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "no manifest size limit")
    push_blob(c, repo, b"x")
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "pad": "x" * (4 << 20)}).encode()
    r = c.request("PUT", f"/v2/{repo}/manifests/big", body, {"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 413, r


def test_manifest_digest_mismatch(c: Client, repo: str) -> None:
    d, body = push_image(c, repo, None)
    r = c.request("PUT", f"/v2/{repo}/manifests/{sha(b'other')}", body, {"Content-Type": mt.OCI_MANIFEST})
    assert (r.status, r.error_code) == (400, "DIGEST_INVALID")


def test_manifest_unknown(c: Client, repo: str) -> None:
    push_image(c, repo, "exists")
    r = c.request("GET", f"/v2/{repo}/manifests/missing")
    assert (r.status, r.error_code) == (404, "MANIFEST_UNKNOWN")
    assert c.request("HEAD", f"/v2/{repo}/manifests/missing").status == 404


def test_delete_manifest(c: Client, repo: str) -> None:
    d, _ = push_image(c, repo, "gone")
    assert c.request("DELETE", f"/v2/{repo}/manifests/{d}").status == 202
    assert c.request("GET", f"/v2/{repo}/manifests/{d}").status == 404
    assert c.request("GET", f"/v2/{repo}/manifests/gone").status == 404


def test_delete_tag(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "cannot delete a tag, only a manifest by digest")
    d, _ = push_image(c, repo, "t1")
    c.request("PUT", f"/v2/{repo}/manifests/t2", c.request("GET", f"/v2/{repo}/manifests/t1").body,
              {"Content-Type": mt.OCI_MANIFEST})
    assert c.request("DELETE", f"/v2/{repo}/manifests/t1").status == 202
    assert c.request("GET", f"/v2/{repo}/manifests/t1").status == 404
    assert c.request("GET", f"/v2/{repo}/manifests/t2").status == 200
    assert c.request("GET", f"/v2/{repo}/manifests/{d}").status == 200


# --- listings -----------------------------------------------------------------------------

def _tag_four(c: Client, repo: str) -> None:
    d, body = push_image(c, repo, "a")
    for tag in ("c", "b", "d"):
        assert c.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": mt.OCI_MANIFEST}).status == 201


def test_tags_list(c: Client, repo: str) -> None:
    _tag_four(c, repo)
    r = c.request("GET", f"/v2/{repo}/tags/list")
    assert r.json()["name"] == repo
    assert sorted(r.json()["tags"]) == ["a", "b", "c", "d"]


def test_tags_pagination(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "lists tags in storage order, not lexically, so pages are not ordered")
    _tag_four(c, repo)
    r = c.request("GET", f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": ["a", "b", "c", "d"]}
    r = c.request("GET", f"/v2/{repo}/tags/list?n=2")
    assert r.json()["tags"] == ["a", "b"]
    assert 'rel="next"' in r.headers["link"]
    link = r.headers["link"].split(";")[0].strip("<>")
    r = c.request("GET", link)
    assert r.json()["tags"] == ["c", "d"]
    r = c.request("GET", f"/v2/{repo}/tags/list?n=2&last=b")
    assert r.json()["tags"] == ["c", "d"]


def test_tags_unknown_repo(c: Client) -> None:
    r = c.request("GET", "/v2/conformance/never-pushed/tags/list")
    assert (r.status, r.error_code) == (404, "NAME_UNKNOWN")


def test_catalog_pagination(c: Client, repo: str) -> None:
    for suffix in ("x", "y", "z"):
        push_blob(c, f"{repo}/{suffix}", b"catalog")
        push_image(c, f"{repo}/{suffix}", "t")
    everything = c.request("GET", "/v2/_catalog?n=1000").json()["repositories"]
    assert {f"{repo}/x", f"{repo}/y", f"{repo}/z"} <= set(everything)
    start = everything.index(f"{repo}/x")
    r = c.request("GET", f"/v2/_catalog?n=2&last={everything[start - 1] if start else ''}")
    assert r.status == 200
    r = c.request("GET", f"/v2/_catalog?n=1&last={repo}/x")
    assert r.json()["repositories"] == [f"{repo}/y"]
    assert 'rel="next"' in r.headers["link"]


def test_name_invalid(c: Client, api, request) -> None:
    lacks(api, request, "answers 404 (no route) for an invalid name")
    r = c.request("GET", "/v2/Upper/Case/tags/list")
    assert (r.status, r.error_code) == (400, "NAME_INVALID")


# --- referrers ----------------------------------------------------------------------------

def test_referrers(c: Client, repo: str, api, request) -> None:
    lacks(api, request, "no referrers API")
    subject, subject_body = push_image(c, repo, "subject")
    empty = push_blob(c, repo, b"{}")
    for i, artifact in enumerate(("application/vnd.example.sbom", "application/vnd.example.sig")):
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": artifact,
                    "config": {"mediaType": mt.OCI_EMPTY, "digest": empty, "size": 2}, "layers": [],
                    "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(subject_body)},
                    "annotations": {"n": str(i)}}
        r = c.request("PUT", f"/v2/{repo}/manifests/{sha(json.dumps(manifest).encode())}",
                      json.dumps(manifest).encode(), {"Content-Type": mt.OCI_MANIFEST})
        assert r.status == 201, r
        assert r.headers["oci-subject"] == subject
    r = c.request("GET", f"/v2/{repo}/referrers/{subject}")
    assert r.status == 200 and r.headers["content-type"].startswith(mt.OCI_INDEX)
    found = r.json()["manifests"]
    assert sorted(m["artifactType"] for m in found) == ["application/vnd.example.sbom", "application/vnd.example.sig"]
    assert all(m["annotations"]["n"] in ("0", "1") for m in found)
    r = c.request("GET", f"/v2/{repo}/referrers/{subject}?artifactType=application/vnd.example.sig")
    assert [m["artifactType"] for m in r.json()["manifests"]] == ["application/vnd.example.sig"]
    assert r.headers["oci-filters-applied"] == "artifactType"
    r = c.request("GET", f"/v2/{repo}/referrers/{sha(b'nothing refers to me')}")
    assert (r.status, r.json()["manifests"]) == (200, [])
