"""Small filesystem helpers shared by the stores and the container code."""

from __future__ import annotations

import errno
import os


def tree_size(path: str | os.PathLike) -> int:
    """Apparent size of the files below ``path`` (symlinks not followed; vanished files skipped):
    what prune reports as reclaimed."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def in_root(root: str, path: str) -> str:
    """``root``/``path`` with every symlink resolved as if ``root`` were / (never leaving it).

    A *name*: every later use resolves it again, so it is only safe where nobody can change
    the tree under ``root`` meanwhile (an image being built, a stopped container's rootfs
    that nothing else shares). Where a running container or one sharing a volume could
    swap a component for a symlink (mounts into a rootfs, ``cp``, volume copy-up),
    resolve and use through one descriptor instead: ``dockyard.saferoot``."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)


def remove_cgroup(name: str, base: str = "/sys/fs/cgroup") -> None:
    """Remove the cgroup ``name`` and its (empty) children from every hierarchy under
    ``base``, deepest first; a cgroup still holding processes stays, silently."""
    from pathlib import Path  # here: tree_size is on the paths of run and prune

    root = Path(base)
    if not root.is_dir():
        return
    for hierarchy in [root] + [p for p in root.iterdir() if p.is_dir()]:
        group = hierarchy / name
        if not (group / "cgroup.procs").exists():
            continue  # not a cgroup (or not in this hierarchy)
        # os.walk, not rglob: another process may remove a child cgroup meanwhile (walk skips it)
        children = sorted((Path(top) / d for top, dirs, _ in os.walk(group) for d in dirs),
                          key=lambda p: len(p.parts), reverse=True)
        for directory in [*children, group]:
            try:
                directory.rmdir()
            except OSError:
                pass


def kill_cgroup(name: str, base: str = "/sys/fs/cgroup") -> list[int]:
    """SIGKILL every process left in the cgroup ``name`` (and its children) in each hierarchy
    under ``base``, then remove the cgroups; the PIDs killed. For what a dead owner left behind
    when its runtime's own clean-up could not finish."""
    import signal

    killed: list[int] = []
    if not os.path.isdir(base):
        return killed
    for hierarchy in [base] + [os.path.join(base, d) for d in os.listdir(base)]:
        group = os.path.join(hierarchy, name)
        if not os.path.exists(os.path.join(group, "cgroup.procs")):
            continue
        for top, _, _ in os.walk(group):
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    pids = [int(line) for line in f if line.strip()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
    if killed:
        import time

        deadline = time.monotonic() + 2.0   # a killed process leaves its cgroup once reaped
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in killed):
            time.sleep(0.02)
    remove_cgroup(name, base)
    return sorted(set(killed))
