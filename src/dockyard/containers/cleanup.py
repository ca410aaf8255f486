"""Removing what a container leaves on disk; shared by ``rm`` and the shim's ``--rm``."""

from __future__ import annotations

import os
import shutil


def remove_container_files(root: str, container_id: str, container_dir: str,
                           anonymous_volumes: "list[str]") -> None:
    """Unmount the rootfs, delete the container's directory and its anonymous volumes."""
    from dockyard.runtime import rootfs

    rootfs.unmount(container_dir)
    if os.path.isdir(container_dir):
        shutil.rmtree(container_dir, ignore_errors=True)
    if anonymous_volumes:
        from dockyard.store import db

        conn = db.connect(root)
        try:
            for name in anonymous_volumes:
                users = [r[0] for r in conn.execute("SELECT id, config FROM containers WHERE id != ?",
                                                     (container_id,)) if f'"Name": "{name}"' in r[1]]
                if users:
                    continue
                shutil.rmtree(os.path.join(root, "volumes", name), ignore_errors=True)
                conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
        finally:
            conn.close()
