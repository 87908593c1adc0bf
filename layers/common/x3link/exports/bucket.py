"""The app's bucket (S3) as the export worker writes it: a file streamed in parts, at most one part in
memory, verified before it becomes an object, its file version in the object's metadata. Its own module:
the S3 side of delivery, measured on its own by bench/bench_exports.py."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = Logger(child=True)

MIB = 1024 * 1024
# S3's smallest part but the last: 8 MiB parts keep a 2 GB file at 245 parts (S3 allows 10,000) and the
# worker's memory at one part plus one read.
PART_SIZE = 8 * MIB
_BINARY = "application/octet-stream"


@dataclass(frozen=True)
class StoredObject:
    size: int
    md5: bytes
    sha256: bytes
    version_id: str | None


class DeliveryBucket:
    """The app's bucket: objects streamed in parts, each one's file version in its metadata."""

    def __init__(self, name: str, s3: S3Client, part_size: int = PART_SIZE) -> None:
        self.name = name
        self._s3 = s3
        self._part_size = max(5 * MIB, part_size)

    def holds(self, key: str, version: str) -> str | None:
        """The S3 version id of the object at `key` when it was written for this file version, else None:
        what a worker that died after writing it left."""
        try:
            head = self._s3.head_object(Bucket=self.name, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        if head.get("Metadata", {}).get("x3-version") != version:
            return None
        version_id: str | None = head.get("VersionId") or ""
        return version_id

    def stream(
        self,
        key: str,
        chunks: Iterator[bytes],
        metadata: dict[str, str],
        verify: Callable[[StoredObject], None],
    ) -> StoredObject:
        """Write `chunks` to `key`, at most one part in memory: a file smaller than a part in one PUT, a
        larger one as a multipart upload. `verify` sees the totals before the object is written (the PUT,
        or the upload's completion); an upload that fails or is refused is aborted: a half file never
        becomes an object."""
        md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        parts: list[CompletedPartTypeDef] = []
        upload: str | None = None
        buffer = bytearray()
        try:
            for chunk in chunks:
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) >= self._part_size:
                    if upload is None:
                        upload = self._s3.create_multipart_upload(
                            Bucket=self.name, Key=key, Metadata=metadata, ContentType=_BINARY
                        )["UploadId"]
                    parts.append(self._part(key, upload, len(parts) + 1, bytes(buffer[: self._part_size])))
                    del buffer[: self._part_size]
            totals = StoredObject(size, md5.digest(), sha256.digest(), None)
            if upload is None:
                verify(totals)
                done = self._s3.put_object(
                    Bucket=self.name, Key=key, Body=bytes(buffer), Metadata=metadata, ContentType=_BINARY
                )
                return StoredObject(size, totals.md5, totals.sha256, done.get("VersionId"))
            if buffer:
                parts.append(self._part(key, upload, len(parts) + 1, bytes(buffer)))
            buffer = bytearray()
            verify(totals)
            completed = self._s3.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload is not None:
                try:
                    self._s3.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload)
                except Exception as exc:  # the bucket's lifecycle rule removes what is left
                    logger.warning("An upload could not be aborted", extra={"error": type(exc).__name__})
            raise
        return StoredObject(size, totals.md5, totals.sha256, completed.get("VersionId"))

    def _part(self, key: str, upload: str, number: int, body: bytes) -> CompletedPartTypeDef:
        answer = self._s3.upload_part(
            Bucket=self.name, Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}
