"""Garbage collection: what it removes and keeps, dry runs, referrers, crash safety, and
GC running while pushes go on (then everything pushed is pulled back)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from dockyard.cli.registry import registry as registry_cli
from dockyard.oci import mediatypes as mt
from dockyard.registry.gc import collect
from dockyard.registry.settings import Settings
from dockyard.testing.client import Client
from dockyard.testing.registry import DockyardRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(c: Client, repo: str, data: bytes) -> str:
    r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", data)
    assert r.status == 201, r
    return sha(data)


def push_image(c: Client, repo: str, tag: str | None, seed: str, subject: tuple[str, int] | None = None,
               shared: bytes = b"shared layer") -> tuple[str, list[str]]:
    config = json.dumps({"seed": seed}).encode()
    layer = f"layer {seed}".encode()
    blobs = [push_blob(c, repo, config), push_blob(c, repo, layer), push_blob(c, repo, shared)]
    manifest: dict = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                      "config": {"mediaType": mt.OCI_CONFIG, "digest": blobs[0], "size": len(config)},
                      "layers": [{"mediaType": mt.OCI_LAYER, "digest": blobs[1], "size": len(layer)},
                                 {"mediaType": mt.OCI_LAYER, "digest": blobs[2], "size": len(shared)}]}
    if subject:
        manifest["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
    body = json.dumps(manifest).encode()
    r = c.request("PUT", f"/v2/{repo}/manifests/{tag or sha(body)}", body, {"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, r
    return sha(body), blobs


def pullable(c: Client, repo: str, ref: str) -> bool:
    r = c.request("GET", f"/v2/{repo}/manifests/{ref}")
    if r.status != 200:
        return False
    m = r.json()
    return all(c.request("GET", f"/v2/{repo}/blobs/{d['digest']}").status == 200
               for d in [m["config"], *m["layers"]])


@pytest.fixture
def reg() -> Iterator[DockyardRegistry]:
    with DockyardRegistry() as r:
        yield r


def settings(reg: DockyardRegistry) -> Settings:
    return Settings(root=reg.root)


def test_gc_removes_only_unreachable(reg: DockyardRegistry) -> None:
    c = Client(reg.url)
    kept, kept_blobs = push_image(c, "gc/app", "v1", "kept")
    dropped, dropped_blobs = push_image(c, "gc/app", "v2", "dropped")
    referrer_body_size = len(c.request("GET", f"/v2/gc/app/manifests/{kept}").body)
    sig, sig_blobs = push_image(c, "gc/app", None, "signature", subject=(kept, referrer_body_size))
    stray = push_blob(c, "gc/app", b"never referenced")
    assert c.request("DELETE", "/v2/gc/app/manifests/v2").status == 202  # untag v2

    report = collect(settings(reg), dry_run=True, delete_untagged=True, grace=-1)
    assert stray in report.blobs and ("gc/app", dropped) in report.manifests
    assert pullable(c, "gc/app", dropped)  # a dry run removes nothing

    report = collect(settings(reg), delete_untagged=True, grace=-1)
    assert set(report.blobs) == {stray, dropped_blobs[0], dropped_blobs[1], dropped}
    assert report.manifests == [("gc/app", dropped)]
    assert pullable(c, "gc/app", "v1") and pullable(c, "gc/app", sig)  # referrers live with their subject
    assert c.request("GET", f"/v2/gc/app/blobs/{stray}").status == 404
    assert c.request("GET", f"/v2/gc/app/manifests/{dropped}").status == 404
    refs = c.request("GET", f"/v2/gc/app/referrers/{kept}").json()["manifests"]
    assert [m["digest"] for m in refs] == [sig]


def test_gc_keeps_untagged_manifests_by_default(reg: DockyardRegistry) -> None:
    c = Client(reg.url)
    digest, blobs = push_image(c, "gc/untagged", None, "untagged")
    result = CliRunner().invoke(registry_cli, ["gc", "--root", str(reg.root), "--grace-period", "-1"])
    assert result.exit_code == 0, result.output
    assert "removed 0 blobs" in result.output
    assert pullable(c, "gc/untagged", digest)


def test_gc_cli_errors_are_messages(tmp_path: Path) -> None:
    from dockyard.cli.main import main

    result = CliRunner().invoke(registry_cli, ["gc", "--root", str(tmp_path)])
    assert result.exit_code != 0 and "not a registry root" in str(result.exception)


def test_gc_while_pushing(reg: DockyardRegistry) -> None:
    """Pushes never stop while GC runs again and again; every pushed image stays whole.
    Each image shares a layer with older, already-untagged images (a blob the pusher only
    HEADs), which is exactly the blob a GC that ignored concurrent use would delete."""
    c = Client(reg.url)
    pushed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def pusher() -> None:
        try:
            i = 0
            while not stop.is_set():
                shared = f"shared {i // 5}".encode()
                # the client's usual dance: HEAD first, upload only if missing
                if c.request("HEAD", f"/v2/gc/live/blobs/{sha(shared)}").status != 200:
                    push_blob(c, "gc/live", shared)
                tag = f"t{i}"
                push_image(c, "gc/live", tag, f"live {i}", shared=shared)
                pushed.append(("gc/live", tag))
                if i % 3 == 1:  # make garbage as well: untag the image before this one
                    assert c.request("DELETE", f"/v2/gc/live/manifests/t{i - 1}").status == 202
                    pushed.remove(("gc/live", f"t{i - 1}"))
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=pusher)
    thread.start()
    removed = 0
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            # A short grace period (the default is an hour) so that this run finds garbage.
            removed += len(collect(settings(reg), delete_untagged=True, grace=1.0).blobs)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(pushed) > 20 and removed > 0
    broken = [tag for repo, tag in pushed if not pullable(c, repo, tag)]
    assert broken == []


def test_kill_mid_upload_loses_only_that_upload(reg: DockyardRegistry) -> None:
    c = Client(reg.url)
    digest, _ = push_image(c, "crash/app", "v1", "before")
    r = c.request("POST", "/v2/crash/app/blobs/uploads/")
    c.request("PATCH", r.headers["location"], b"half an upload")
    reg.kill()
    reg.restart()
    c = Client(reg.url)
    assert pullable(c, "crash/app", "v1")
    assert c.request("GET", r.headers["location"]).status == 404
    assert not (reg.root / "data" / "uploads").exists() or not any((reg.root / "data" / "uploads").iterdir())


def test_concurrent_pushes_of_one_blob_store_it_once(reg: DockyardRegistry) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    results: list[int] = []

    def push(n: int) -> None:
        cl = Client(reg.url)
        r = cl.request("POST", f"/v2/same/blob-{n}/blobs/uploads/")
        r = cl.request("PUT", f"{r.headers['location']}?digest={sha(data)}", data)
        results.append(r.status)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 8
    files = [p for p in (reg.root / "data" / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [sha(data)[7:]]
    assert all(Client(reg.url).request("GET", f"/v2/same/blob-{n}/blobs/{sha(data)}").body == data for n in range(8))
