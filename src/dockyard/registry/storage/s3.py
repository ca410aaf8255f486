"""The S3 driver (boto3): objects under an optional key prefix in one bucket.

boto3 blocks, so every call runs in the default thread pool. Large objects are
written as multipart uploads of PART_SIZE parts (bounded memory: one part per
writer); ``move`` is a server-side copy (multipart above 5 GiB, done by boto3's
managed copy) plus a delete. ``writer(path, exclusive=True)`` commits with
``If-None-Match: *`` (S3's atomic create, on the PUT or on CompleteMultipartUpload) and
raises PathExists if the object is already there: what lets replicas share upload
sessions (registry/uploads.py). An S3 clone that ignores the condition lets the last
writer win; the final digest check still refuses the blob then.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, AsyncIterator

from dockyard.registry.storage import CHUNK, PathNotFound, Stat, StorageDriver, Writer

PART_SIZE = 8 << 20  # S3 needs >= 5 MiB for every part but the last


def _missing(e: Exception) -> bool:
    code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def _precondition_failed(e: Exception) -> bool:
    code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
    return code in ("412", "PreconditionFailed", "ConditionalRequestConflict")


class PathExists(Exception):
    """An exclusive write lost: another writer created the object first."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class S3Writer(Writer):
    def __init__(self, driver: "S3Driver", key: str, exclusive: bool = False) -> None:
        self.driver, self.key = driver, key
        # exclusive: commit with If-None-Match: * (S3's atomic create), PathExists if taken.
        self.condition: dict[str, str] = {"IfNoneMatch": "*"} if exclusive else {}
        self.buf = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.buf += data
        self.size += len(data)
        while len(self.buf) >= PART_SIZE:
            part, self.buf = bytes(self.buf[:PART_SIZE]), self.buf[PART_SIZE:]
            await self._upload_part(part)

    async def _upload_part(self, part: bytes) -> None:
        d = self.driver
        if self.upload_id is None:
            r = await d._call("create_multipart_upload", Bucket=d.bucket, Key=self.key)
            self.upload_id = r["UploadId"]
        number = len(self.parts) + 1
        r = await d._call("upload_part", Bucket=d.bucket, Key=self.key, UploadId=self.upload_id,
                          PartNumber=number, Body=part)
        self.parts.append({"ETag": r["ETag"], "PartNumber": number})

    async def commit(self) -> None:
        d = self.driver
        try:
            if self.upload_id is None:  # small: one PUT
                await d._call("put_object", Bucket=d.bucket, Key=self.key, Body=bytes(self.buf), **self.condition)
                self.buf = bytearray()
                return
            if self.buf:
                await self._upload_part(bytes(self.buf))
                self.buf = bytearray()
            await d._call("complete_multipart_upload", Bucket=d.bucket, Key=self.key, UploadId=self.upload_id,
                          MultipartUpload={"Parts": self.parts}, **self.condition)
        except Exception as e:  # noqa: BLE001
            if self.condition and _precondition_failed(e):
                await self.cancel()
                raise PathExists(self.key[len(d.prefix):]) from None
            raise

    async def cancel(self) -> None:
        self.buf = bytearray()
        if self.upload_id is not None:
            d = self.driver
            try:
                await d._call("abort_multipart_upload", Bucket=d.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception:  # noqa: BLE001 - best effort; abort_multipart_uploads reaps the rest
                pass
            self.upload_id = None


class S3Driver(StorageDriver):
    name = "s3"

    def __init__(self, bucket: str, endpoint: str | None = None, region: str = "us-east-1",
                 access_key: str | None = None, secret_key: str | None = None, prefix: str = "",
                 create_bucket: bool = False, **_ignored: Any) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=64,
                          retries={"max_attempts": 3, "mode": "standard"}))
        if create_bucket:
            try:
                self.client.head_bucket(Bucket=bucket)
            except Exception:  # noqa: BLE001 - missing: make it
                self.client.create_bucket(Bucket=bucket)

    def _key(self, path: str) -> str:
        path = path.strip("/")
        if not path or ".." in path.split("/"):
            raise ValueError(f"invalid storage path {path!r}")
        return self.prefix + path

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, partial(getattr(self.client, method), **kwargs))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(path)}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        try:
            r = await self._call("get_object", **kwargs)
        except Exception as e:  # noqa: BLE001
            if _missing(e):
                raise PathNotFound(path) from None
            if "InvalidRange" in str(e):  # offset == size: nothing left
                return
            raise
        body = r["Body"]
        loop = asyncio.get_running_loop()
        try:
            while chunk := await loop.run_in_executor(None, body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def writer(self, path: str, exclusive: bool = False) -> Writer:
        return S3Writer(self, self._key(path), exclusive)

    async def stat(self, path: str) -> Stat | None:
        try:
            r = await self._call("head_object", Bucket=self.bucket, Key=self._key(path))
            return Stat(path.strip("/"), r["ContentLength"], r["LastModified"].timestamp())
        except Exception as e:  # noqa: BLE001
            if not _missing(e):
                raise
        r = await self._call("list_objects_v2", Bucket=self.bucket, Prefix=self._key(path) + "/", MaxKeys=1)
        if r.get("KeyCount", 0):
            return Stat(path.strip("/"), 0, r["Contents"][0]["LastModified"].timestamp(), True)
        return None

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None) -> list[str]:
        base = self._key(prefix) + "/"
        found: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        if start_after is not None and (self.prefix + start_after) > base:
            kwargs["StartAfter"] = self.prefix + start_after
        while True:
            if limit is not None:
                kwargs["MaxKeys"] = min(1000, limit - len(found))
            r = await self._call("list_objects_v2", **kwargs)
            found.extend(obj["Key"][len(self.prefix):] for obj in r.get("Contents", []))
            if not r.get("IsTruncated") or (limit is not None and len(found) >= limit):
                return found
            kwargs["ContinuationToken"] = r["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    async def list_stats(self, prefix: str) -> list[Stat]:
        """Like ``list`` with sizes and times (one request per 1000 objects): for GC."""
        base = self._key(prefix) + "/"
        out: list[Stat] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        while True:
            r = await self._call("list_objects_v2", **kwargs)
            out.extend(Stat(o["Key"][len(self.prefix):], o["Size"], o["LastModified"].timestamp())
                       for o in r.get("Contents", []))
            if not r.get("IsTruncated"):
                return out
            kwargs["ContinuationToken"] = r["NextContinuationToken"]

    async def abort_multipart_uploads(self, prefix: str, older_than: float) -> int:
        """Abort multipart uploads under ``prefix`` started before ``older_than`` (epoch
        seconds): what a replica killed mid-write leaves behind. Returns how many."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix) + "/"}
        aborted = 0
        while True:
            r = await self._call("list_multipart_uploads", **kwargs)
            for u in r.get("Uploads", []):
                if u["Initiated"].timestamp() < older_than:
                    try:
                        await self._call("abort_multipart_upload", Bucket=self.bucket, Key=u["Key"],
                                         UploadId=u["UploadId"])
                        aborted += 1
                    except Exception as e:  # noqa: BLE001 - another replica aborted it first
                        if not _missing(e):
                            raise
            if not r.get("IsTruncated"):
                return aborted
            kwargs["KeyMarker"], kwargs["UploadIdMarker"] = r["NextKeyMarker"], r["NextUploadIdMarker"]

    async def move(self, src: str, dst: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        try:
            await self._call("copy", CopySource=source, Bucket=self.bucket, Key=self._key(dst))
        except Exception as e:  # noqa: BLE001
            if _missing(e) or "Not Found" in str(e):
                raise PathNotFound(src) from None
            raise
        await self._call("delete_object", Bucket=self.bucket, Key=self._key(src))

    async def delete(self, path: str) -> None:
        key = self._key(path)
        try:
            await self._call("head_object", Bucket=self.bucket, Key=key)
            await self._call("delete_object", Bucket=self.bucket, Key=key)
            return
        except Exception as e:  # noqa: BLE001
            if not _missing(e):
                raise
        keys = await self.list(path)
        if not keys:
            raise PathNotFound(path)
        for i in range(0, len(keys), 1000):
            objects = [{"Key": self.prefix + k} for k in keys[i:i + 1000]]
            await self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
