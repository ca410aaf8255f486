"""Small filesystem helpers shared by the stores and the container code."""

from __future__ import annotations

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
