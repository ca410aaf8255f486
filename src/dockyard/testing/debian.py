"""The debian:bookworm base image, made on this machine with debootstrap (no Docker Hub here).

    from dockyard.testing.debian import base_tarball
    tar = base_tarball()            # /var/cache/dockyard-test/debian-bookworm-minbase.tar

    .venv/bin/python -m dockyard.testing.debian [--cache-dir DIR] [--force]   # build now, print the path

``base_tarball`` returns an uncompressed rootfs tarball of ``debootstrap --variant=minbase
bookworm`` from the mirror the host's apt is configured with, cleaned up the way Docker's
``debian:bookworm`` is: no .debs in /var/cache/apt/archives, no /var/lib/apt/lists, no logs,
no device nodes (engines give /dev), the host's resolv.conf and hostname not left in it
(empty files, for the engines to bind-mount over), sources with bookworm, bookworm-updates and
bookworm-security (deb822, /etc/apt/sources.list.d/debian.sources as Docker's image has), and
the apt/dpkg settings Docker's image carries (policy-rc.d exit 101, so maintainer scripts do
not start services during a build; apt keeps no .debs; no translations; gzip'd lists).
Numeric owners, no xattrs/ACLs/SELinux labels, names sorted; ``dockyard import``,
``podman import`` and ``docker import`` all take it as it is. Plain tar because it is the
fastest to import: every importer reads it without a decompressor (the image stores its own
compressed layer anyway).

Cost: debootstrap takes 25-40 s here (measured 24.5, 28.5, 28.6 and 35.5 s; it fetches ~31 MB
of .debs and uses ~31 MB of RAM); cleaning and the tar add well under a second. The tarball is
121 MB (~6,700 entries); importing it takes 2-4 s in dockyard, podman or docker. It is
reused while younger than 7 days (``max_age``), else rebuilt. Callers in several processes
at once build it once: the build runs under an flock on ``<cache>/.debian-bookworm.lock``
and the others wait for it. A build works in ``<cache>/.build-*`` and renames the finished
tarball into place, so a killed build never leaves a partial tarball under the final name;
its leftovers are removed by the next caller. debootstrap runs in a private mount namespace
(the /proc and /sys it mounts inside the rootfs vanish with it) and a private PID namespace
tied to the caller: when the caller dies, even by SIGKILL, the whole build dies with it.

Needs root (debootstrap) and ``apt-get install debootstrap``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

DEFAULT_CACHE = "/var/cache/dockyard-test"
SUITE = "bookworm"
VARIANT = "minbase"
TARBALL = f"debian-{SUITE}-{VARIANT}.tar"
MAX_AGE = 7 * 24 * 3600
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBOOTSTRAP_TIMEOUT = 900

# Files of the finished rootfs that describe the build machine or the build, not the image.
_REMOVE = ("var/log/dpkg.log", "var/log/bootstrap.log", "var/log/alternatives.log", "var/log/apt/history.log",
           "var/log/apt/term.log", "var/cache/ldconfig/aux-cache", "etc/apt/apt.conf.d/01autoremove-kernels",
           "run/mount/utab")
_EMPTIED = ("var/cache/apt/archives", "var/lib/apt/lists", "dev", "proc", "sys", "tmp", "var/tmp")

# What Docker's debian image sets up for builds (the intent of debuerreotype's minimizing config).
_CONFIG = {
    "usr/sbin/policy-rc.d": (0o755, "#!/bin/sh\n# Package installs in an image build start no services.\n"
                                    "exit 101\n"),
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": (0o644, "# No sync() after each unpack: a build is redone, "
                                                      "not recovered.\nforce-unsafe-io\n"),
    "etc/apt/apt.conf.d/docker-clean": (0o644, (
        "# Keep no .debs or package caches in image layers.\n"
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')),
    "etc/apt/apt.conf.d/docker-no-languages": (0o644, 'Acquire::Languages "none";\n'),
    "etc/apt/apt.conf.d/docker-gzip-indexes": (0o644, 'Acquire::GzipIndexes "true";\n'),
    "etc/apt/apt.conf.d/docker-autoremove-suggests": (0o644, 'Apt::AutoRemove::SuggestsImportant "false";\n'),
}


def base_tarball(cache_dir: str = DEFAULT_CACHE, *, max_age: float = MAX_AGE, mirror: str | None = None,
                 force: bool = False) -> str:
    """Path of the cached debian:bookworm minbase rootfs tarball; built first (30-40 s) when
    missing, older than ``max_age`` seconds, or ``force``. ``mirror`` defaults to the host's."""
    cache = Path(cache_dir)
    final = cache / TARBALL
    if not force and _fresh(final, max_age):
        if any(cache.glob(".build-*")):
            with contextlib.suppress(OSError):  # a caller that may not write the cache still gets the tarball
                _remove_stale(cache)
        return str(final)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with _locked(cache / f".debian-{SUITE}.lock"):
        # Another caller may have built it while this one waited for the lock.
        if _fresh(final, max_age) and (not force or final.stat().st_mtime >= started):
            return str(final)
        _build(cache, final, mirror or host_mirror())
    return str(final)


def _fresh(path: Path, max_age: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < max_age
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """The build lock (released by the kernel if this process dies); yields False if
    ``wait`` is off and someone else holds it."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale(cache: Path) -> None:
    """Work dirs of killed builds; only while no build runs (every builder holds the lock)."""
    with _locked(cache / f".debian-{SUITE}.lock", wait=False) as mine:
        if mine:
            for stale in cache.glob(".build-*"):
                _remove_tree(stale)


# ------------------------------------------------------------------ the host's apt sources

def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current = [], {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
        elif line.startswith("#"):
            continue
        elif line[0] in " \t" and current:
            continue  # a continuation line (a Signed-By key block): not needed here
        elif ":" in line:
            key, value = line.split(":", 1)
            current[key.strip().lower()] = value.strip()
    return stanzas


def _host_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled ``deb`` source of the host, deb822 files first."""
    found: list[tuple[str, list[str]]] = []
    apt = Path("/etc/apt")
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        try:
            stanzas = _deb822_stanzas(path.read_text())
        except OSError:
            continue
        for s in stanzas:
            if "deb" not in s.get("types", "").split() or s.get("enabled", "yes").lower() == "no":
                continue
            for uri in s.get("uris", "").split():
                found.append((uri.rstrip("/"), s.get("suites", "").split()))
    lists = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in lists:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                found.append((words[0].rstrip("/"), [words[1]]))
    return found


def host_mirror() -> str:
    """The Debian mirror the host's apt uses for the release itself (not -security)."""
    sources = _host_sources()
    for uri, suites in sources:
        if any(s == SUITE or s == f"{SUITE}-updates" for s in suites):
            return uri
    for uri, suites in sources:
        if not any(s.endswith("-security") for s in suites) and "security" not in uri:
            return uri
    return DEFAULT_MIRROR


def host_security_mirror(mirror: str) -> str:
    for uri, suites in _host_sources():
        if any(s == f"{SUITE}-security" for s in suites):
            return uri
    return mirror + "-security" if mirror.endswith("/debian") else "http://deb.debian.org/debian-security"


# ------------------------------------------------------------------ the build

def _build(cache: Path, final: Path, mirror: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"building {final} needs root (debootstrap)")
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                                  else None)
    if debootstrap is None:
        raise RuntimeError("debootstrap is not installed: apt-get install -y debootstrap")
    for stale in cache.glob(".build-*"):  # a killed build's leftovers (every builder holds the lock)
        _remove_tree(stale)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log = work / "debootstrap.log"
        print(f"dockyard.testing.debian: debootstrap --variant={VARIANT} {SUITE} from {mirror} "
              f"(30-40 s) -> {final}", file=sys.stderr, flush=True)
        started = time.monotonic()
        # A private mount namespace: the /proc and /sys debootstrap mounts in the rootfs vanish
        # with it. A private PID namespace whose init is debootstrap, and --kill-child plus a
        # parent-death signal on unshare: if this process dies, even by SIGKILL, every process
        # of the build dies with it (none is left writing into the work dir).
        argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL",
                debootstrap, f"--variant={VARIANT}", SUITE, str(rootfs), mirror]
        if Path(KEYRING).exists():
            argv.insert(argv.index(debootstrap) + 1, f"--keyring={KEYRING}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
            try:
                returncode = proc.wait(timeout=DEBOOTSTRAP_TIMEOUT)
            except BaseException as e:  # a timeout, Ctrl-C, SIGTERM turned into an exception
                proc.kill()  # unshare; its --kill-child takes the PID namespace down
                proc.wait()
                if isinstance(e, subprocess.TimeoutExpired):
                    raise RuntimeError(f"debootstrap took more than {DEBOOTSTRAP_TIMEOUT} s") from None
                raise
        if returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(f"debootstrap failed ({returncode}):\n" + "\n".join(tail))
        took = time.monotonic() - started
        _clean(rootfs, mirror, host_security_mirror(mirror))
        tmp = work / TARBALL
        subprocess.run(["tar", "--create", "--file", str(tmp), "--directory", str(rootfs), "--numeric-owner",
                        "--no-xattrs", "--no-acls", "--no-selinux", "--sort=name", "."],
                       check=True, capture_output=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dirfd = os.open(cache, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
        print(f"dockyard.testing.debian: debootstrap {took:.1f} s, total {time.monotonic() - started:.1f} s, "
              f"{final.stat().st_size / 1e6:.0f} MB", file=sys.stderr, flush=True)
    finally:
        _remove_tree(work)


def _die_with_parent(parent: int):  # noqa: ANN202 - a preexec_fn
    from dockyard.linux import PR_SET_PDEATHSIG, prctl  # imported before the fork, not in the child

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(1)
    return set_signal


def _clean(rootfs: Path, mirror: str, security: str) -> None:
    for rel in _EMPTIED:
        d = rootfs / rel
        if d.is_dir() and not d.is_symlink() and not os.path.ismount(d):
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    if rel in ("var/cache/apt/archives", "var/lib/apt/lists") and child.name == "partial":
                        _empty(child)  # apt's own directory stays, empty
                        continue
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for pattern in ("var/cache/apt/*.bin", "var/cache/debconf/*-old", "var/lib/dpkg/*-old"):
        for f in rootfs.glob(pattern):
            f.unlink()
    for rel in _REMOVE:
        with contextlib.suppress(FileNotFoundError):
            (rootfs / rel).unlink()
    for rel in ("etc/resolv.conf", "etc/hostname"):  # host values: engines bind-mount their own
        p = rootfs / rel
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        p.write_text("")
        p.chmod(0o644)
    (rootfs / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                                      "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n")
    with contextlib.suppress(FileNotFoundError):
        (rootfs / "etc/apt/sources.list").unlink()
    signed = f"Signed-By: {KEYRING}\n" if (rootfs / KEYRING.lstrip("/")).exists() else ""
    sources = rootfs / "etc/apt/sources.list.d/debian.sources"
    sources.parent.mkdir(parents=True, exist_ok=True)
    sources.write_text(f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n{signed}\n"
                       f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n{signed}")
    sources.chmod(0o644)
    for rel, (mode, text) in _CONFIG.items():
        p = rootfs / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that never descends into a mount (a /dev or /proc left mounted inside a rootfs)."""
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = _mounts_below(path)
    if left:
        raise RuntimeError(f"not removing {path}: still mounted below it: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (or find) the cached debian:bookworm base tarball.")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE)
    parser.add_argument("--force", action="store_true", help="rebuild even if the cached tarball is fresh")
    args = parser.parse_args(argv)
    print(base_tarball(args.cache_dir, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
