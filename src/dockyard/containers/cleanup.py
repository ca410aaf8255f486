"""Removing what a container leaves on disk; shared by ``rm`` and the shim's ``--rm``."""

from __future__ import annotations

import os
import shutil


def remove_container_files(root: str, container_id: str, container_dir: str,
                           anonymous_volumes: "list[str]") -> None:
    """Unmount the rootfs, delete the container's directory and those of its anonymous
    volumes that no other container mounts."""
    from dockyard.runtime import rootfs

    rootfs.unmount(container_dir)
    shm = os.path.join(container_dir, "shm")   # --ipc shareable's /dev/shm (containers/bundle.py)
    if os.path.isdir(shm):
        from dockyard import linux

        if rootfs.is_mounted(shm):
            linux.umount(shm, linux.MNT_DETACH)
    if os.path.isdir(container_dir):
        shutil.rmtree(container_dir, ignore_errors=True)
    if anonymous_volumes:
        from dockyard.containers.store import ContainerStore
        from dockyard.store import db
        from dockyard.volumes import delete_volume

        conn = db.connect(root)
        try:
            used = ContainerStore(conn).volumes_in_use(except_id=container_id)
            for name in anonymous_volumes:
                if name not in used:
                    delete_volume(conn, root, name)
        finally:
            conn.close()
