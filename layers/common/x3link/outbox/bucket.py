"""The outbox's S3 side: what the worker (worker.py) reads of the app's object and the outcome it
writes on it as tags. The object is never deleted nor read whole: its size from HeadObject, a bounded prefix
to sniff, then its body streamed to Sage. An object, version or bucket that is not there reads as gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from x3link.outbox.rules import SNIFF_BYTES, tags_with

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

# What S3 says of an object, version or bucket that is not there (HeadObject's 404 has no body).
_GONE = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NoSuchBucket"})


class OutboxBucket:
    """One object version of the outbox bucket at a time, named by bucket, key and version."""

    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def size(self, bucket: str, key: str, version: str) -> int | None:
        """The object's size as HeadObject gives it, or None when it is gone."""
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key, **_version(version))
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _GONE:
                raise
            return None
        return int(head["ContentLength"])

    def prefix(self, bucket: str, key: str, version: str) -> bytes:
        """The object's first bytes, at most SNIFF_BYTES of them."""
        found = self._s3.get_object(
            Bucket=bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}", **_version(version)
        )
        prefix: bytes = found["Body"].read()
        return prefix

    def body(self, bucket: str, key: str, version: str) -> StreamingBody:
        """The object's body to stream (the caller closes it)."""
        return self._s3.get_object(Bucket=bucket, Key=key, **_version(version))["Body"]

    def tag(self, bucket: str, key: str, version: str, outcome: dict[str, str]) -> bool:
        """Write the outcome's tags beside the app's own; False when the object is gone."""
        try:
            found = self._s3.get_object_tagging(Bucket=bucket, Key=key, **_version(version))
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _GONE:
                raise
            return False
        existing = found.get("TagSet", [])
        self._s3.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": tags_with(existing, outcome)}, **_version(version)
        )
        return True


class _Version(TypedDict, total=False):
    VersionId: str


def _version(version: str) -> _Version:
    """The VersionId argument for a versioned object (an unversioned one's events name none)."""
    return (
        {}
        if version in ("", "null") or not version.isprintable() or len(version) > 1024
        else {"VersionId": version}
    )
