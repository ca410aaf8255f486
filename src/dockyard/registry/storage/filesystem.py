"""The filesystem driver: one file per path under a root directory.

Writes go to a hidden temp file beside the target and are renamed into place
(after fsync, unless turned off), so a crash leaves either the old object or the
new one. Blocking calls run in the default thread pool so the event loop keeps
serving; reads of blobs bypass this driver altogether through ``local_path``
(handlers/send.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from stat import S_ISDIR
from typing import AsyncIterator

from dockyard.registry.storage import CHUNK, PathNotFound, Stat, StorageDriver, Writer

TMP_PREFIX = ".tmp-"


def _check(path: str) -> str:
    parts = path.strip("/").split("/")
    if not path or any(p in ("", ".", "..") or p.startswith(TMP_PREFIX) for p in parts):
        raise ValueError(f"invalid storage path {path!r}")
    return "/".join(parts)


class FileWriter(Writer):
    def __init__(self, target: Path, fsync: bool) -> None:
        self.target = target
        self.fsync = fsync
        self.tmp = target.parent / f"{TMP_PREFIX}{target.name}-{uuid.uuid4().hex[:12]}"
        for attempt in range(5):  # a concurrent delete may prune the directory we just made
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.file = open(self.tmp, "wb", buffering=0)
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise
        self.size = 0

    async def write(self, data: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.write_sync, data)

    def write_sync(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self.file.write(view)
            view = view[n:]
        self.size += len(data)

    async def commit(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.commit_sync)

    def commit_sync(self) -> None:
        if self.fsync:
            os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.target)

    async def cancel(self) -> None:
        self.cancel_sync()

    def cancel_sync(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def _path(self, path: str) -> Path:
        return self.root / _check(path)

    def local_path(self, path: str) -> str | None:
        return str(self._path(path))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            f = open(self._path(path), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        try:
            f.seek(offset)
            while chunk := await loop.run_in_executor(None, f.read, CHUNK):
                yield chunk
        finally:
            f.close()

    async def writer(self, path: str) -> Writer:
        return FileWriter(self._path(path), self.fsync)

    async def stat(self, path: str) -> Stat | None:
        return self.stat_sync(path)

    def stat_sync(self, path: str) -> Stat | None:
        clean = _check(path)
        try:
            st = os.stat(self.root / clean)  # one syscall: the blob HEAD path calls this
        except (FileNotFoundError, NotADirectoryError):
            return None
        is_dir = S_ISDIR(st.st_mode)
        return Stat(clean, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(None, self.list_sync, prefix, start_after, limit)

    def list_sync(self, prefix: str, start_after: str | None = None, limit: int | None = None) -> list[str]:
        base = self._path(prefix)
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            found.extend(f"{rel}/{f}" for f in filenames if not f.startswith(TMP_PREFIX))
        found.sort(key=lambda p: p.encode())
        if start_after is not None:
            found = [p for p in found if p.encode() > start_after.encode()]
        return found[:limit] if limit is not None else found

    async def move(self, src: str, dst: str) -> None:
        s, d = self._path(src), self._path(dst)
        for attempt in range(5):  # see FileWriter: the parent may be pruned under us
            d.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(s, d)
                break
            except FileNotFoundError:
                if not s.exists():
                    raise PathNotFound(src) from None
                if attempt == 4:
                    raise
        self._prune(s.parent)

    async def delete(self, path: str) -> None:
        p = self._path(path)
        try:
            if p.is_dir():
                await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, p)
            else:
                p.unlink()
        except FileNotFoundError:
            raise PathNotFound(path) from None
        self._prune(p.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty parent directories (never the root), so listings stay short."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent
