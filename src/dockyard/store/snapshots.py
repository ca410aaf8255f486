"""Snapshots: a writable layer prepared on a parent chain, then committed to a layer or dropped.

The layer store's half of containerd's ``snapshots`` idea, as build uses it (containers keep
their own upper dir under their directory for now and can move here later):

    prepare(parent chain)  -> Snapshot: ``diff/`` (the overlay upper dir), ``work/``, and
                              ``rootfs/`` (the overlay mount of the parent chain + diff)
    commit(snapshot)       -> the layer: ``diff/`` packed into an uncompressed tar blob in the
                              content store (its digest is the diff ID) and then *renamed* into
                              the layer store as the new chain: nothing is unpacked again
    remove(snapshot)       -> unmount and delete

An overlay upper dir already is a layer in the store's on-disk form (whiteouts as 0/0 char
devices, ``trusted.overlay.opaque``), which is why a rename suffices. Every snapshot dir lives
in ``<root>/layers/snapshots`` (one filesystem with the layers, so the rename is atomic) and is
flocked by the process using it: ``reclaim`` unmounts and removes those of dead processes.
"""

from __future__ import annotations

import contextlib
import os

from dockyard.store.owned import TempArea

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

    from dockyard.engine import Engine
    from dockyard.store.layers import LayerInfo
    from dockyard.store.owned import Leftover


class Snapshot:
    """One writable layer being prepared: its directory (flocked while ``held``)."""

    __slots__ = ("path", "parent", "lowerdirs", "name")

    def __init__(self, path: str, parent: str | None, lowerdirs: list[str]) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.parent = parent            # the parent chain ID (None: on nothing)
        self.lowerdirs = lowerdirs      # top first

    @property
    def diff(self) -> str:
        return os.path.join(self.path, "diff")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, "rootfs")

    def mount(self) -> str:
        """Mount the parent chain with ``diff`` on top at ``rootfs``; returns the mount point.
        With no parent layer, ``rootfs`` is a bind of ``diff`` itself (overlay wants a lower)."""
        from dockyard import linux
        from dockyard.runtime import rootfs as overlay

        target = self.rootfs
        if overlay.is_mounted(target):
            return target
        if not self.lowerdirs:
            linux.mount(self.diff, target, "", linux.MS_BIND, "")
            return target
        options, cwd = overlay.overlay_options(self.lowerdirs, self.diff, os.path.join(self.path, "work"))
        # volatile: no sync of the upper dir at unmount (~60 ms a step here). A snapshot is
        # packed and renamed into the layer store, which does not fsync layer files either.
        if len(options) + len(",volatile") < overlay.PAGE - 1:
            options += ",volatile"
        if cwd is None:
            try:
                linux.mount("overlay", target, "overlay", 0, options)
            except OSError:
                if not options.endswith(",volatile"):
                    raise
                linux.mount("overlay", target, "overlay", 0, options[: -len(",volatile")])  # a kernel before 5.10
        else:
            import subprocess

            result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, target], cwd=cwd,
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise OSError(f"cannot mount the snapshot: {result.stderr.strip()}")
        return target

    def unmount(self) -> None:
        unmount_below(self.path)

    def is_empty(self) -> bool:
        """Nothing changed on top of the parent (an empty upper dir)."""
        with os.scandir(self.diff) as it:
            return next(it, None) is None


class Snapshots:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        layers = engine.layers
        self.area = TempArea(os.path.join(layers.root, "snapshots"), os.path.join(layers.locks_dir, "snapshots"),
                             "unfinished build step")

    @contextlib.contextmanager
    def prepare(self, parent: str | None) -> "Iterator[Snapshot]":
        """A fresh Snapshot on ``parent`` (not mounted yet); on leaving the block it is
        unmounted and removed unless it was committed."""
        lowerdirs = self.engine.layers.lowerdirs(parent) if parent else []
        with self.area.new_dir() as path:   # removed at the end unless renamed (committed)
            try:
                os.chmod(path, 0o711)
                for name in ("diff", "work", "rootfs"):
                    os.mkdir(os.path.join(path, name), 0o755)
                yield Snapshot(path, parent, lowerdirs)
            finally:
                if os.path.isdir(path):
                    unmount_below(path)

    def commit(self, snap: Snapshot) -> "tuple[LayerInfo, str, int]":
        """Turn the snapshot's diff into a layer on its parent: (layer, blob digest, blob size).
        The snapshot is used up (unmounted; its directory becomes the layer's)."""
        from pathlib import Path

        from dockyard.store import archive

        snap.unmount()
        content = self.engine.content
        with content.ingest() as writer:
            archive.pack(Path(snap.diff), writer, hash=False)   # the writer hashes it once
            blob_size = writer.count
            diff_id = writer.commit()   # an uncompressed layer's digest is its diff ID
        for name in ("work", "rootfs"):
            _remove_tree(os.path.join(snap.path, name))
        info = self.engine.layers.adopt(snap.path, diff_id, snap.parent, archive.content_size(Path(snap.diff)))
        return info, diff_id, blob_size

    # ---- what dead builds left

    def reclaim(self) -> "list[Leftover]":
        self._unmount_dead()
        return self.area.reclaim()

    def alive(self, name: str) -> bool:
        """Is the snapshot ``name`` held by a live process?"""
        return self.area.held(name)

    def _unmount_dead(self) -> None:
        base = self.area.directory + "/"
        names = {m[len(base):].split("/", 1)[0] for m in _mounts() if m.startswith(base)}
        for name in names:
            if not self.alive(name):
                unmount_below(os.path.join(base, name))


def _mounts() -> list[str]:
    from dockyard.runtime.rootfs import _unescape

    try:
        with open("/proc/self/mountinfo") as f:
            return [_unescape(line.split()[4]) for line in f]
    except OSError:
        return []


def unmount_below(path: str) -> None:
    """Unmount everything mounted at or below ``path``, deepest first (detached if busy)."""
    from dockyard import linux

    real = os.path.realpath(path)
    targets = sorted({m for m in _mounts() if m == real or m.startswith(real + "/")}, key=len, reverse=True)
    for target in targets:
        try:
            linux.umount(target)
        except OSError:
            try:
                linux.umount(target, 2)   # MNT_DETACH: a process of a dead build may still hold it
            except OSError:
                pass


def _remove_tree(path: str) -> None:
    from dockyard.store.owned import remove_tree

    remove_tree(path)
