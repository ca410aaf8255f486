"""Benchmark: dockyard's registry beside CNCF distribution 2.8, in one run, same client.

  A = one 256 MiB incompressible layer; B = 30 layers of 4 MiB.
  push / pull   skopeo copy (a private blob-info cache per run, a new repository per
                run, so every push uploads every byte), interleaved between servers;
                pulls write into tmpfs (/dev/shm) when it has room; median of --runs;
                for pulls also the server's CPU seconds (steadier than wall time here)
  parallel      64 concurrent curl processes each pulling B (manifest + config + 30
                layers on one keep-alive connection): aggregate MiB/s, failures, and
                the server's peak RSS while it serves them
  catalog       GET /v2/_catalog?n=1000 with 1000 repositories (median ms), and tags/list
  rss           idle RSS after start-up, peak RSS over the whole run (VmHWM)

  replicas      (issue 17) the parallel pulls again, against one dockyard replica
                directly, and through each load balancer (--balancer: Debian's nginx,
                HAProxy, or both; round-robin per request, no buffering) in front of
                one replica and of --replicas replicas, all serving one storage:
                aggregate MiB/s, failures, and the CPU seconds of each replica and of
                the balancer, so the scaling on a machine with more cores can be read
                off (here the 64 curl clients, the balancer and the replicas share two
                cores). nginx copies every body byte through its buffers; HAProxy
                splices it (pipe to socket in the kernel). Storage: one filesystem root
                shared by the replicas (pulls only read it: blobs by pread, the index by
                sqlite WAL readers), or with --replica-storage s3 moto's S3 server
                (which then bounds the throughput: it is one Python process). A
                column with no balancer, the clients taking turns at the replicas
                themselves, shows the most any balancer could reach on this machine.

Targets (issue 3): push/pull >= 1.0x distribution; parallel pulls with 0 failures,
>= 1.0x aggregate and <= 0.25x peak RSS; catalog >= 10x faster. Issue 17: three
replicas through a balancer >= one replica's aggregate, 0 failures.
Traffic goes only to 127.0.0.1. Usage: .venv/bin/python bench/registry.py [--quick]
[--only pull|replicas|index] [--replicas 3] [--balancer nginx|haproxy|both]
(``--only pull``: push each image once, then time only interleaved pulls; for iteration;
``--only replicas``: only the replica rows.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dockyard.testing.images import ImageSpec, push_oci_layout, random_layer_tar, skopeo, write_oci_layout  # noqa: E402
from dockyard.testing.registry import DistributionRegistry, DockyardRegistry  # noqa: E402

MiB = 1 << 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's RSS every 10 ms in a thread; ``peak`` in KiB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build(work: Path, size_a: int, layers_b: int, layer_b: int) -> dict[str, Path]:
    a = random_layer_tar(work / "a.tar", size_a, seed=1)
    write_oci_layout(work / "layout-a", [ImageSpec([a], compression="", cmd=["sh"])])
    b = [random_layer_tar(work / f"b{i}.tar", layer_b, seed=100 + i, name=f"d{i}.bin") for i in range(layers_b)]
    write_oci_layout(work / "layout-b", [ImageSpec(b, compression="", cmd=["sh"])])
    for p in (a, *b):
        p.unlink()
    return {"A": work / "layout-a", "B": work / "layout-b"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measured(fn, pid: int) -> tuple[float, float]:
    """Wall seconds of ``fn()`` and the CPU seconds the server ``pid`` spent meanwhile."""
    c, t = cpu_seconds(pid), time.perf_counter()
    fn()
    return time.perf_counter() - t, cpu_seconds(pid) - c


def layout_bytes(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())


def push_pull(servers: dict, layouts: dict[str, Path], work: Path, runs: int, pull_only: bool = False) -> dict:
    """Per (server, image, op), the (wall, server CPU) of every run, in run order (run i of
    each server ran back to back, so their ratio is a paired sample). ``pull_only``: push
    each image once, untimed, then time only the pulls (quick iteration on the pull path)."""
    # Pull into tmpfs when it has room: skopeo's disk writes otherwise dominate and add noise.
    shm = Path("/dev/shm")
    pull_dir = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2 * sum(map(layout_bytes, layouts.values())) \
        else work
    ops = ("pull",) if pull_only else ("push", "pull")
    results: dict = {(s, img, op): [] for s in servers for img in layouts for op in ops}
    if pull_only:
        for img, layout in layouts.items():
            for srv in servers.values():
                push_oci_layout(layout, f"{srv.address}/bench/{img.lower()}-0:latest")
    for run in range(runs):
        for img, layout in layouts.items():
            for name, srv in servers.items():  # interleaved: noise hits both alike
                ref = f"{srv.address}/bench/{img.lower()}-{0 if pull_only else run}:latest"
                if not pull_only:
                    results[(name, img, "push")].append(measured(lambda: push_oci_layout(layout, ref), srv.proc.pid))
                out = pull_dir / f"pull-{name}"
                results[(name, img, "pull")].append(measured(lambda: skopeo(
                    "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:latest"), srv.proc.pid))
                shutil.rmtree(out, ignore_errors=True)
    return results


def parallel_pulls(srv, clients: int, cpu_pids: dict[str, list[int]] | None = None,
                   spread: list[str] | None = None) -> dict:
    """``clients`` curl processes, each fetching all of image B over one connection.
    ``cpu_pids``: name -> processes whose CPU seconds over the run are reported (``cpu``).
    ``spread``: server addresses the clients take turns at, request by request, with no
    balancer between (what a perfect, free balancer would do)."""
    addresses = spread or [srv.address]
    conn = http.client.HTTPConnection(srv.address.split(":")[0], int(srv.address.split(":")[1]))
    conn.request("GET", "/v2/bench/b-0/manifests/latest",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest = json.loads(conn.getresponse().read())
    conn.close()
    paths = ["/v2/bench/b-0/manifests/latest"] + [f"/v2/bench/b-0/blobs/{d['digest']}"
                                                   for d in [manifest["config"], *manifest["layers"]]]
    expected = sum(d["size"] for d in [manifest["config"], *manifest["layers"]])

    def command(client: int) -> list[str]:
        cmd = ["curl", "-s", "--fail", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
               "-w", "%{http_code} %{size_download}\\n"]
        for i, path in enumerate(paths):
            cmd += ["-o", "/dev/null", f"http://{addresses[(client + i) % len(addresses)]}{path}"]
        return cmd

    cpu_pids = cpu_pids or {}
    cpu_before = {n: sum(map(cpu_seconds, pids)) for n, pids in cpu_pids.items()}
    with RssSampler(srv.proc.pid) as sampler:
        t = time.perf_counter()
        procs = [subprocess.Popen(command(c), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for c in range(clients)]
        outs = [p.communicate()[0] for p in procs]
        elapsed = time.perf_counter() - t
    cpu = {n: sum(map(cpu_seconds, pids)) - cpu_before[n] for n, pids in cpu_pids.items()}
    failures, total = 0, 0
    for p, out in zip(procs, outs):
        lines = out.split()
        codes, sizes = lines[0::2], [int(x) for x in lines[1::2]]
        ok = p.returncode == 0 and len(codes) == len(paths) and all(c == "200" for c in codes)
        failures += 0 if ok and sum(sizes[1:]) == expected else 1
        total += sum(sizes)
    return {"mibs": total / MiB / elapsed, "failures": failures, "peak_rss": sampler.peak, "seconds": elapsed,
            "cpu": cpu}


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (nginx's workers)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


BALANCERS = ("nginx", "haproxy")


def replica_header(replicas: int, balancers: tuple[str, ...]) -> tuple[str, ...]:
    cols = ["", "one replica", f"{replicas} replicas, no balancer"]
    for lb in balancers:
        cols += [f"one + {lb}", f"{replicas} replicas + {lb}", "ratio (vs one, vs one + LB)"]
    return (*cols, "target")


def replica_rows(work: Path, layout_b: Path, clients: int, replicas: int, runs: int, storage: str,
                 balancers: tuple[str, ...] = BALANCERS) -> list[tuple]:
    """Parallel pulls of B from one replica (direct, and through each load balancer) and
    from ``replicas`` behind each balancer, on one storage, interleaved ``runs`` times; the
    median run of each, with the CPU seconds of every process that served it."""
    from dockyard.testing.haproxy import HAProxy
    from dockyard.testing.nginx import Nginx
    from dockyard.testing.s3 import MotoS3

    kinds = {"nginx": Nginx, "haproxy": HAProxy}
    s3 = MotoS3().start() if storage == "s3" else None
    config: dict = {"fsync": False}
    if s3 is not None:
        config.update(storage="s3", s3=s3.s3_config("bench-replicas"))
    root = work / "replica-root"  # one root for every replica (filesystem storage)
    servers = [DockyardRegistry(config, root=root) for _ in range(replicas)]
    started: list = []
    try:
        servers[0].start()
        push_oci_layout(layout_b, f"{servers[0].address}/bench/b-0:latest")
        for srv in servers[1:]:
            srv.start()
        workers = os.cpu_count() or 2
        pids = {f"replica {i + 1}": [srv.proc.pid] for i, srv in enumerate(servers)}
        if s3 is not None:
            pids["moto"] = [s3.proc.pid]
        first = {k: v for k, v in pids.items() if k in ("replica 1", "moto")}
        # what serves, and the processes whose CPU it costs; "spread": the clients take turns at
        # the replicas themselves, no balancer: the most any balancer could reach here
        setups = {"one": (servers[0], first, None), "spread": (servers[0], pids, [srv.address for srv in servers])}
        for name in balancers:
            lb1 = kinds[name]([servers[0].address], workers=workers).start()
            started.append(lb1)
            lbn = kinds[name]([srv.address for srv in servers], workers=workers).start()
            started.append(lbn)
            setups[f"one+{name}"] = (lb1, {**first, name: [lb1.proc.pid, *children(lb1.proc.pid)]}, None)
            setups[f"many+{name}"] = (lbn, {**pids, name: [lbn.proc.pid, *children(lbn.proc.pid)]}, None)
        results: dict[str, list[dict]] = {k: [] for k in setups}
        for _ in range(runs):  # interleaved: noise hits all alike
            for name, (srv, cpu_pids, spread) in setups.items():
                results[name].append(parallel_pulls(srv, clients, cpu_pids, spread))
    finally:
        for proc in [*started, *servers]:
            proc.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(root, ignore_errors=True)
    med = {k: sorted(v, key=lambda r: r["mibs"])[len(v) // 2] for k, v in results.items()}
    failed = {k: sum(r["failures"] for r in v) for k, v in results.items()}
    o = med["one"]
    order = ["one", "spread"]
    for name in balancers:
        order += [f"one+{name}", f"many+{name}", None]  # None: the ratio column

    def cells(fn) -> list[str]:
        out = []
        for i, key in enumerate(order):
            if key is None:
                m, o1 = med[order[i - 1]], med[order[i - 2]]
                out.append(fn(None, m, o1))
            else:
                out.append(fn(key, med[key], None))
        return out

    def throughput(key, r, o1):
        if key is None:
            return f"{r['mibs'] / o['mibs']:.2f}x, {r['mibs'] / o1['mibs']:.2f}x"
        if key == "spread":
            return f"{r['mibs']:.0f} MiB/s ({r['mibs'] / o['mibs']:.2f}x), {failed[key]} failed"
        return f"{r['mibs']:.0f} MiB/s, {failed[key]} failed"

    rows = [(f"{clients} parallel pulls of B ({storage})", *cells(throughput), "≥ 1.0x, 0 failed"),
            ("  wall seconds (median run)",
             *cells(lambda k, r, _: "" if k is None else f"{r['seconds']:.2f} s"), "")]
    keys = list(dict.fromkeys(k for r in med.values() for k in r["cpu"]))
    for cpu_key in keys:
        rows.append((f"  CPU seconds, {cpu_key}",
                     *cells(lambda k, r, _: "" if k is None else (f"{r['cpu'][cpu_key]:.2f} s" if cpu_key in r["cpu"]
                                                                   else "-")), ""))
    for label, prefixes in (("replicas", ("replica",)), ("load balancer", balancers)):
        def per_gib(k, r, _):
            if k is None:
                return ""
            spent = sum(v for c, v in r["cpu"].items() if c.startswith(prefixes))
            return f"{spent / (r['mibs'] * r['seconds'] / 1024):.2f} s" if spent else "-"
        rows.append((f"  CPU s per GiB served, {label}", *cells(per_gib), ""))
    return rows


def index_rows(work: Path, layout_b: Path, replicas: int, repos: int) -> list[tuple]:
    """The index in the bucket (ObjectIndex) as replicas see it, on moto's S3 server behind
    nginx: push of B, tags/list and _catalog latency asked of each replica, a manifest PUT,
    and the S3 requests each costs (counted in moto's request log). moto answers a request
    in ~1 ms on loopback; S3 itself takes ~10-30 ms, so the request counts carry over."""
    from dockyard.testing.nginx import Nginx
    from dockyard.testing.s3 import MotoS3

    def s3_requests() -> int:
        return s3.logs().count(' HTTP/1.1" ')

    s3 = MotoS3().start()
    servers = [DockyardRegistry({"storage": "s3", "s3": s3.s3_config("bench-index")}) for _ in range(replicas)]
    lb = None
    try:
        for srv in servers:
            srv.start()
        lb = Nginx([srv.address for srv in servers]).start()
        before, t = s3_requests(), time.perf_counter()
        push_oci_layout(layout_b, f"{lb.address}/bench/b-0:latest")
        push_s, push_req = time.perf_counter() - t, s3_requests() - before
        before, t = s3_requests(), time.perf_counter()
        make_repos(lb, repos)
        seed_ms, seed_req = (time.perf_counter() - t) * 1000 / repos, (s3_requests() - before) / repos
        cat = statistics.median(median_ms(srv, f"/v2/_catalog?n={repos}", 11) for srv in servers)
        tags = statistics.median(median_ms(srv, f"/v2/catalog/r{repos // 2:04d}/tags/list", 11) for srv in servers)
        conn = http.client.HTTPConnection(*lb.address.split(":"))
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        conn.request("GET", "/v2/bench/b-0/manifests/latest", headers=accept)
        manifest = conn.getresponse().read()
        times, before = [], s3_requests()
        for i in range(11):
            t = time.perf_counter()
            conn.request("PUT", f"/v2/bench/b-0/manifests/t{i}", body=manifest,
                         headers={"Content-Type": accept["Accept"]})
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
            times.append((time.perf_counter() - t) * 1000)
        put_ms, put_req = statistics.median(times), (s3_requests() - before) / 11
        # Read-after-write across replicas: every replica lists the 11 new tags at once.
        for srv in servers:
            c = http.client.HTTPConnection(*srv.address.split(":"))
            c.request("GET", "/v2/bench/b-0/tags/list")
            listed = json.loads(c.getresponse().read())["tags"]
            assert {f"t{i}" for i in range(11)} <= set(listed), listed
            c.close()
        conn.close()
    finally:
        for proc in [lb, *servers, s3]:
            if proc is not None:
                proc.stop()
    size_b = layout_bytes(layout_b) / MiB
    return [(f"push B through nginx ({size_b:.0f} MiB)", f"{push_s:.2f} s ({size_b / push_s:.0f} MiB/s)",
             f"{push_req} S3 requests"),
            ("mount + manifest PUT per new repository", f"{seed_ms:.1f} ms", f"{seed_req:.1f} S3 requests"),
            (f"_catalog?n={repos} ({repos} repos), each replica", f"{cat:.2f} ms", "1 LIST"),
            ("tags/list, each replica", f"{tags:.2f} ms", "1 LIST"),
            (f"manifest PUT, {len(json.loads(manifest)['layers'])} layers, new tag", f"{put_ms:.1f} ms",
             f"{put_req:.1f} S3 requests")]


def make_repos(srv, count: int) -> None:
    """``count`` repositories with one tag each (a mounted blob and a manifest: 2 requests)."""
    host, port = srv.address.split(":")
    conn = http.client.HTTPConnection(host, int(port))

    def req(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> http.client.HTTPResponse:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r

    config = b"{}"
    import hashlib

    cd = "sha256:" + hashlib.sha256(config).hexdigest()
    r = req("POST", "/v2/catalog/seed/blobs/uploads/")
    loc = r.getheader("Location")
    loc = loc if loc.startswith("/") else "/" + loc.split("/", 3)[3]
    assert req("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={cd}", config).status == 201
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                      "size": 2}, "layers": []}).encode()
    for i in range(count):
        repo = f"catalog/r{i:04d}"
        assert req("POST", f"/v2/{repo}/blobs/uploads/?mount={cd}&from=catalog/seed").status == 201
        assert req("PUT", f"/v2/{repo}/manifests/v1", manifest,
                   {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status == 201
    conn.close()


def median_ms(srv, path: str, repeat: int) -> float:
    host, port = srv.address.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, r.status
    conn.close()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small images, 1 run (a smoke test of the script)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--only", choices=["pull", "replicas", "index"],
                    help="only the pull rows (each image pushed once, untimed), or only the replica rows")
    ap.add_argument("--replicas", type=int, default=3, help="replicas behind nginx in the replica rows")
    ap.add_argument("--replica-storage", choices=["filesystem", "s3"], default="filesystem")
    ap.add_argument("--balancer", choices=[*BALANCERS, "both"], default="both",
                    help="the load balancer(s) in front of the replicas")
    args = ap.parse_args()
    balancers = BALANCERS if args.balancer == "both" else (args.balancer,)
    size_a, layers_b, layer_b, runs = (256 * MiB, 30, 4 * MiB, args.runs)
    if args.quick:
        size_a, layers_b, layer_b, runs = (16 * MiB, 5, 1 * MiB, 1)

    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-registry-"))
    servers: dict = {}
    try:
        print(f"building images in {work} ...", file=sys.stderr)
        layouts = build(work, size_a, layers_b, layer_b)
        if args.only == "index":
            print("index on S3 ...", file=sys.stderr)
            print_table(index_rows(work, layouts["B"], args.replicas, args.repos),
                        ("ObjectIndex on moto S3", f"{args.replicas} replicas", "cost"))
            return
        if args.only == "replicas":
            print("replicas ...", file=sys.stderr)
            print_table(replica_rows(work, layouts["B"], args.clients, args.replicas, runs, args.replica_storage,
                                     balancers), replica_header(args.replicas, balancers))
            return
        servers["distribution"] = DistributionRegistry().start()
        servers["dockyard"] = DockyardRegistry({"fsync": True}).start()
        time.sleep(1)
        idle = {n: rss_kib(s.proc.pid) for n, s in servers.items()}
        if args.only == "pull":
            print("pulls ...", file=sys.stderr)
            pp = push_pull(servers, layouts, work, runs, pull_only=True)
            print_table(push_pull_rows(pp, {"A": size_a, "B": layers_b * layer_b}, ("pull",)))
            return
        print("push/pull ...", file=sys.stderr)
        pp = push_pull(servers, layouts, work, runs)
        print("parallel pulls ...", file=sys.stderr)
        par = {n: parallel_pulls(s, args.clients) for n, s in servers.items()}
        print("catalog ...", file=sys.stderr)
        cat, tags = {}, {}
        for n, s in servers.items():
            make_repos(s, args.repos)
            cat[n] = median_ms(s, f"/v2/_catalog?n={args.repos}", 21)
            tags[n] = median_ms(s, f"/v2/catalog/r{args.repos // 2:04d}/tags/list", 21)
        hwm = {n: rss_kib(s.proc.pid, "VmHWM") for n, s in servers.items()}
        for s in servers.values():
            s.stop()  # out of the way of the replica rows
        print("replicas ...", file=sys.stderr)
        replicas = replica_rows(work, layouts["B"], args.clients, args.replicas, runs, args.replica_storage,
                                balancers)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    sizes = {"A": size_a, "B": layers_b * layer_b}
    rows = push_pull_rows(pp, sizes, ("push", "pull"))
    d, y = par["distribution"], par["dockyard"]
    rows.append((f"{args.clients} parallel pulls of B", f"{d['mibs']:.0f} MiB/s, {d['failures']} failed",
                 f"{y['mibs']:.0f} MiB/s, {y['failures']} failed", f"{y['mibs'] / d['mibs']:.2f}x", "≥ 1.0x, 0 failed"))
    rows.append(("  peak RSS during them", f"{d['peak_rss'] / 1024:.1f} MiB", f"{y['peak_rss'] / 1024:.1f} MiB",
                 f"{y['peak_rss'] / d['peak_rss']:.2f}x", "≤ 0.25x"))
    rows.append((f"_catalog?n={args.repos} ({args.repos} repos)", f"{cat['distribution']:.2f} ms",
                 f"{cat['dockyard']:.2f} ms", f"{cat['distribution'] / cat['dockyard']:.1f}x faster", "≥ 10x"))
    rows.append(("tags/list", f"{tags['distribution']:.2f} ms", f"{tags['dockyard']:.2f} ms",
                 f"{tags['distribution'] / tags['dockyard']:.1f}x faster", ""))
    rows.append(("idle RSS", f"{idle['distribution'] / 1024:.1f} MiB", f"{idle['dockyard'] / 1024:.1f} MiB",
                 f"{idle['dockyard'] / idle['distribution']:.2f}x", ""))
    rows.append(("peak RSS (whole run, VmHWM)", f"{hwm['distribution'] / 1024:.1f} MiB",
                 f"{hwm['dockyard'] / 1024:.1f} MiB", f"{hwm['dockyard'] / hwm['distribution']:.2f}x", ""))
    print_table(rows)
    print()
    print_table(replicas, replica_header(args.replicas, balancers))


def push_pull_rows(pp: dict, sizes: dict[str, int], ops: tuple[str, ...]) -> list[tuple]:
    """Median wall and server CPU per op; the ratio column also gives the range of the
    per-run (paired) throughput ratios, since one run on a shared machine can swing 20%."""
    rows = []
    for img in ("A", "B"):
        for op in ops:
            dist, ours = pp[("distribution", img, op)], pp[("dockyard", img, op)]
            (d, dc), (y, yc) = _medians(dist), _medians(ours)
            paired = sorted(dw / yw for (dw, _), (yw, _) in zip(dist, ours))
            spread = f" ({paired[0]:.2f}-{paired[-1]:.2f})" if len(paired) > 1 else ""
            rows.append((f"{op} {img} ({sizes[img] // MiB} MiB)", f"{d:.2f} s ({sizes[img] / MiB / d:.0f} MiB/s)",
                         f"{y:.2f} s ({sizes[img] / MiB / y:.0f} MiB/s)", f"{d / y:.2f}x throughput{spread}", "≥ 1.0x"))
            if op == "pull":  # less noisy than wall time on a shared machine: the server's own cost
                rows.append(("  server CPU per pull", f"{dc:.2f} s", f"{yc:.2f} s",
                             f"{yc / dc:.2f}x" if dc else "", ""))
    return rows


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def print_table(rows: list[tuple], header: tuple = ("", "distribution 2.8", "dockyard", "ratio", "target")) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
