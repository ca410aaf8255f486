"""S3 storage against moto's server: two registry processes sharing one bucket serve what
either received (the index lives in the bucket), and large blobs go up in multipart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.testing.client import Client
from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout
from dockyard.testing.registry import DockyardRegistry
from dockyard.testing.s3 import MotoS3
from tests.conftest import require


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[DockyardRegistry, DockyardRegistry]]:
    with MotoS3() as s3:
        config = {"storage": "s3", "s3": s3.s3_config("shared", prefix="registry")}
        with DockyardRegistry(config) as a, DockyardRegistry(config) as b:
            yield a, b


def test_two_replicas_share_a_bucket(pair, busybox_layout: Path, tmp_path: Path) -> None:
    require("skopeo")
    a, b = pair
    layout = tmp_path / "oci"
    big = random_layer_tar(tmp_path / "big.tar", 20 << 20, seed=7)  # > one 8 MiB part: multipart
    write_oci_layout(layout, [ImageSpec([big], cmd=["sh"])])
    push_oci_layout(layout, f"{a.address}/shared/big:1")
    push_oci_layout(busybox_layout, f"{b.address}/shared/busybox:1")
    for reg in (a, b):
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{reg.address}/shared/big").stdout)
        assert tags["Tags"] == ["1"]
        catalog = Client(reg.url).request("GET", "/v2/_catalog").json()["repositories"]
        assert {"shared/big", "shared/busybox"} <= set(catalog)
        out = tmp_path / f"pulled-{reg.port}"
        skopeo("copy", "--src-tls-verify=false", f"docker://{reg.address}/shared/big:1", f"oci:{out}:1")
        skopeo("copy", "--src-tls-verify=false", f"docker://{reg.address}/shared/busybox:1", f"oci:{out}:2")
    # a delete through one replica is seen by the other at once (no cache to go stale)
    skopeo("delete", "--tls-verify=false", f"docker://{a.address}/shared/busybox:1")
    assert Client(b.url).request("GET", "/v2/shared/busybox/manifests/1").status == 404


def test_range_from_s3(pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 64
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    assert Client(a.url).request("POST", f"/v2/s3/range/blobs/uploads/?digest={d}", data).status == 201
    r = Client(b.url).request("GET", f"/v2/s3/range/blobs/{d}", headers={"Range": "bytes=100-199"})
    assert (r.status, r.body) == (206, data[100:200])
    r = Client(b.url).request("GET", f"/v2/s3/range/blobs/{d}", headers={"Range": "bytes=-10"})
    assert (r.status, r.body) == (206, data[-10:])
