"""Registry replicas behind a load balancer: three ``dockyard registry serve`` processes on
one bucket of moto's S3 server, behind a private nginx (round-robin, no sticky sessions).

Upload sessions live in the bucket, so a chunked upload whose requests land on different
replicas completes, one of two PATCHes at one offset wins (the other gets 416), a replica
killed mid-upload loses nothing its client cannot resume through the others, and tags and
the catalog agree across replicas as soon as a push returns."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.oci import mediatypes as mt
from dockyard.registry.index import ObjectIndex
from dockyard.registry.storage.s3 import S3Driver
from dockyard.registry.uploads import UPLOADS, SharedUploads
from dockyard.testing.client import Client
from dockyard.testing.haproxy import HAProxy
from dockyard.testing.images import ImageSpec, SkopeoError, random_layer_tar, skopeo, write_oci_layout
from dockyard.testing.nginx import Nginx
from dockyard.testing.registry import DockyardRegistry
from dockyard.testing.s3 import MotoS3

REPLICAS = 3
IMAGES = 20
MiB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Cluster:
    def __init__(self, s3: MotoS3, replicas: list[DockyardRegistry], lb: Nginx) -> None:
        self.s3, self.replicas, self.lb = s3, replicas, lb

    def by_address(self, address: str) -> DockyardRegistry:
        return next(r for r in self.replicas if r.address == address)

    def live(self) -> list[DockyardRegistry]:
        return [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]

    def revive(self) -> None:
        """Restart any killed replica on its port (nginx takes it back after fail_timeout)."""
        for r in self.replicas:
            if r.proc is None or r.proc.poll() is not None:
                r.restart()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with MotoS3() as s3:
        config = {"storage": "s3", "s3": s3.s3_config("scaleout", prefix="registry")}
        replicas = [DockyardRegistry(config) for _ in range(REPLICAS)]
        try:
            for r in replicas:
                r.start()
            # One worker: its round-robin order is the only one, so consecutive requests rotate.
            with Nginx([r.address for r in replicas], workers=1, fail_timeout=1) as lb:
                yield Cluster(s3, replicas, lb)
        finally:
            for r in replicas:
                r.stop()


@pytest.fixture(autouse=True)
def _all_replicas_up(cluster: Cluster) -> Iterator[None]:
    yield
    cluster.revive()


def _patch(url: str, location: str, chunk: bytes, start: int) -> tuple[int, dict[str, str]]:
    r = Client(url).request("PATCH", location, chunk, {
        "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(chunk) - 1}"})
    return r.status, r.headers


def test_chunked_upload_lands_on_every_replica(cluster: Cluster) -> None:
    _chunked_upload_across_replicas(cluster, cluster.lb.url)


def test_chunked_upload_lands_on_every_replica_behind_haproxy(cluster: Cluster) -> None:
    """The other balancer the issue names: HAProxy, splicing bodies, round-robin per request."""
    with HAProxy([r.address for r in cluster.replicas], workers=1, fail_timeout=1) as lb:
        _chunked_upload_across_replicas(cluster, lb.url)


def _chunked_upload_across_replicas(cluster: Cluster, lb_url: str) -> None:
    lb = Client(lb_url)
    data = os.urandom(5 * MiB + 123)
    digest = sha(data)
    r = lb.request("POST", "/v2/scale/chunked/blobs/uploads/")
    assert r.status == 202
    location, seen = r.headers["location"], {r.headers["x-upstream"]}
    offset = 0
    while offset < len(data):
        chunk = data[offset:offset + MiB]
        status, headers = _patch(lb_url, location, chunk, offset)
        assert status == 202, headers
        offset += len(chunk)
        assert headers["range"] == f"0-{offset - 1}"
        seen.add(headers["x-upstream"])
    assert len(seen) == REPLICAS  # round-robin: every replica took part of this one upload
    # Each replica reports where the session stands.
    for replica in cluster.replicas:
        r = Client(replica.url).request("GET", location)
        assert (r.status, r.headers["range"]) == (204, f"0-{len(data) - 1}")
    # A chunk that does not start at the shared offset: 416 with the offset, from any replica.
    status, headers = _patch(lb_url, location, b"x", 0)
    assert (status, headers["range"]) == (416, f"0-{len(data) - 1}")
    r = lb.request("PUT", f"{location}?digest={digest}")
    assert r.status == 201, r
    for replica in cluster.replicas:
        r = Client(replica.url).request("GET", f"/v2/scale/chunked/blobs/{digest}")
        assert (r.status, sha(r.body)) == (200, digest)
        assert Client(replica.url).request("GET", location).status == 404  # the session is gone


def test_a_wrong_digest_is_refused_after_parts_from_several_replicas(cluster: Cluster) -> None:
    lb = Client(cluster.lb.url)
    location = lb.request("POST", "/v2/scale/wrong/blobs/uploads/").headers["location"]
    assert _patch(cluster.lb.url, location, b"a" * 1000, 0)[0] == 202
    assert _patch(cluster.lb.url, location, b"b" * 1000, 1000)[0] == 202
    r = lb.request("PUT", f"{location}?digest={sha(b'c' * 2000)}")
    assert (r.status, r.error_code) == (400, "DIGEST_INVALID")
    assert lb.request("GET", f"/v2/scale/wrong/blobs/{sha(b'c' * 2000)}").status == 404


def test_monolithic_upload(cluster: Cluster) -> None:
    lb = Client(cluster.lb.url)
    data = os.urandom(300_000)
    r = lb.request("POST", f"/v2/scale/mono/blobs/uploads/?digest={sha(b'other')}", data)
    assert (r.status, r.error_code) == (400, "DIGEST_INVALID")
    assert lb.request("GET", f"/v2/scale/mono/blobs/{sha(b'other')}").status == 404
    assert lb.request("POST", f"/v2/scale/mono/blobs/uploads/?digest={sha(data)}", data).status == 201
    for replica in cluster.replicas:
        r = Client(replica.url).request("GET", f"/v2/scale/mono/blobs/{sha(data)}")
        assert (r.status, r.body == data) == (200, True)


def test_the_final_put_carries_the_last_chunk(cluster: Cluster) -> None:
    data = os.urandom(MiB + 77)
    first, second = cluster.replicas[0], cluster.replicas[1]
    location = Client(first.url).request("POST", "/v2/scale/last/blobs/uploads/").headers["location"]
    assert _patch(first.url, location, data[:MiB], 0)[0] == 202
    r = Client(second.url).request("PUT", f"{location}?digest={sha(data)}", data[MiB:],
                                   {"Content-Range": f"{MiB}-{len(data) - 1}"})
    assert r.status == 201, r
    r = Client(cluster.replicas[2].url).request("GET", f"/v2/scale/last/blobs/{sha(data)}")
    assert (r.status, sha(r.body)) == (200, sha(data))


def test_two_patches_at_one_offset_one_wins(cluster: Cluster) -> None:
    a, b = cluster.replicas[0], cluster.replicas[1]
    location = Client(a.url).request("POST", "/v2/scale/race/blobs/uploads/").headers["location"]
    bodies = [os.urandom(2 * MiB), os.urandom(2 * MiB)]
    results: list[tuple[int, dict[str, str]] | None] = [None, None]
    barrier = threading.Barrier(2)

    def send(i: int, replica: DockyardRegistry) -> None:
        barrier.wait()
        results[i] = _patch(replica.url, location, bodies[i], 0)

    threads = [threading.Thread(target=send, args=(i, rep)) for i, rep in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r[0] for r in results if r)
    assert statuses == [202, 416]
    winner = bodies[[r[0] for r in results if r].index(202)]
    loser = next(r for r in results if r and r[0] == 416)
    assert loser[1]["range"] == f"0-{2 * MiB - 1}"  # the 416 says where the upload now stands
    r = Client(b.url).request("PUT", f"{location}?digest={sha(winner)}")
    assert r.status == 201, r
    assert sha(Client(a.url).request("GET", f"/v2/scale/race/blobs/{sha(winner)}").body) == sha(winner)


def test_replica_killed_mid_patch_upload_resumes_through_the_others(cluster: Cluster) -> None:
    data = os.urandom(3 * MiB)
    digest = sha(data)
    victim = cluster.replicas[2]
    lb = Client(cluster.lb.url)
    location = lb.request("POST", "/v2/scale/resume/blobs/uploads/").headers["location"]
    assert _patch(cluster.lb.url, location, data[:MiB], 0)[0] == 202
    # The second chunk goes to the victim, which dies with half of it received.
    conn = http.client.HTTPConnection(victim.address, timeout=30)
    conn.putrequest("PATCH", location)
    for k, v in {"Content-Type": "application/octet-stream", "Content-Length": str(MiB),
                 "Content-Range": f"{MiB}-{2 * MiB - 1}"}.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(data[MiB:MiB + MiB // 2])
    time.sleep(0.3)
    victim.kill()
    conn.close()
    # The client asks the load balancer where the upload stands and goes on from there.
    r = lb.request("GET", location)
    assert (r.status, r.headers["range"]) == (204, f"0-{MiB - 1}")
    for start in (MiB, 2 * MiB):
        status, headers = _patch(cluster.lb.url, location, data[start:start + MiB], start)
        assert status == 202, headers
        assert headers["x-upstream"] != victim.address
    r = lb.request("PUT", f"{location}?digest={digest}")
    assert r.status == 201, r
    for replica in cluster.live():
        assert sha(Client(replica.url).request("GET", f"/v2/scale/resume/blobs/{digest}").body) == digest


def _verify_image(url: str, repo: str, tag: str, digest: str) -> None:
    """The manifest by tag has the pushed digest, and every blob it names hashes to its digest."""
    c = Client(url)
    r = c.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": mt.OCI_MANIFEST})
    assert (r.status, sha(r.body)) == (200, digest), r
    manifest = json.loads(r.body)
    for d in [manifest["config"]] + manifest["layers"]:
        blob = c.request("GET", f"/v2/{repo}/blobs/{d['digest']}")
        assert (blob.status, sha(blob.body), len(blob.body)) == (200, d["digest"], d["size"])


def _copy_with_retry(*args: str, attempts: int = 4) -> int:
    """skopeo copy; a copy cut by a killed replica (502) fails cleanly and is retried.
    Returns how many attempts failed."""
    for failed in range(attempts):
        try:
            skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *args, timeout=300)
            return failed
        except SkopeoError:
            if failed == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def test_parallel_skopeo_with_a_replica_killed(cluster: Cluster, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    shared = random_layer_tar(tmp_path / "shared.tar", 512 << 10, seed=1)  # in every image
    digests = {}
    for i in range(IMAGES):
        own = random_layer_tar(tmp_path / f"own{i}.tar", 2 * MiB + i * 4096, seed=100 + i)
        digests[i] = write_oci_layout(layout, [ImageSpec([shared, own], compression="", cmd=["sh"])], tag=f"t{i}")
    lb = cluster.lb.address
    done: list[int] = []
    failures: list[int] = []
    victim = cluster.replicas[0]

    def push(i: int) -> None:
        failures.append(_copy_with_retry("--preserve-digests", f"oci:{layout}:t{i}", f"docker://{lb}/scale/app{i}:v1"))
        # At once, every replica lists the tag (the victim may be dead: asked after revival).
        for replica in cluster.replicas[1:]:
            tags = Client(replica.url).request("GET", f"/v2/scale/app{i}/tags/list").json()
            assert tags == {"name": f"scale/app{i}", "tags": ["v1"]}
        done.append(i)

    def kill_mid_run() -> None:
        # Once the victim has finished a few chunks, others are in flight on it: kill it.
        deadline = time.monotonic() + 60
        while victim.new_logs().count('"PATCH ') < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.kill()

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    with ThreadPoolExecutor(max_workers=IMAGES) as pool:
        list(pool.map(push, range(IMAGES)))
    killer.join()
    assert sorted(done) == list(range(IMAGES))
    assert victim.proc is None or victim.proc.poll() is not None
    print(f"copies retried after the kill: {sum(failures)}")
    cluster.revive()
    for replica in cluster.replicas:
        catalog = Client(replica.url).request("GET", "/v2/_catalog").json()["repositories"]
        assert {f"scale/app{i}" for i in range(IMAGES)} <= set(catalog)
    # Pull all of them in parallel through nginx (skopeo checks every blob's digest) ...

    def pull(i: int) -> None:
        _copy_with_retry(f"docker://{lb}/scale/app{i}:v1", f"oci:{tmp_path / 'pulled'}{i}:v1", attempts=1)

    with ThreadPoolExecutor(max_workers=IMAGES) as pool:
        list(pool.map(pull, range(IMAGES)))
    # ... and check every digest ourselves, through every replica.
    for replica in cluster.replicas:
        for i in range(IMAGES):
            _verify_image(replica.url, f"scale/app{i}", "v1", digests[i])


async def test_expire_removes_idle_sessions_and_stale_multipart_uploads(cluster: Cluster) -> None:
    driver = S3Driver(**cluster.s3.s3_config("scaleout-expire"))
    uploads = SharedUploads(driver, ObjectIndex(driver))
    try:
        idle = await uploads.start("scale/expire")

        async def body():
            yield b"x" * 1000

        await uploads.append(idle, body())
        stuck = await driver.writer(f"{UPLOADS}/{idle.id}/parts/x", exclusive=True)
        await stuck.write(os.urandom(9 * MiB))  # > one S3 part: a multipart upload is open
        await asyncio.sleep(3)
        fresh = await uploads.start("scale/expire")
        assert await uploads.expire(ttl=2) == 1
        assert await driver.list(f"{UPLOADS}/{idle.id}") == []
        assert (await uploads.get("scale/expire", fresh.id)).offset == 0
        r = await driver._call("list_multipart_uploads", Bucket=driver.bucket, Prefix=f"{UPLOADS}/")
        assert r.get("Uploads", []) == []
    finally:
        await driver.close()
