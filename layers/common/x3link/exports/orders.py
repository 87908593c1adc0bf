"""The pure rules of export delivery (docs/exports.md): the queue's two messages, a file version's identity,
Sage's checksum and Retry-After read. No AWS and no Sage here: what the switch, the queue and the worker
agree on, testable on its own.

Two kinds of message share the delivery queue:
- a scan (`{"scan": tenant, "folder"?}`), sent by the schedule for every enabled folder and by a signed
  notification for its tenant: the worker lists the folder's files at Sage and queues one file message each;
- a file (`{"tenant", "folder", "filename", "size", "checksum", "last_modified"}`): the worker streams it
  into the bucket, verifies it, records it, announces `FileDelivered` and only then deletes it at Sage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

# Any: an SQS message's JSON body, untrusted: checked field by field.
from typing import Any

from x3link.data.integration import file_name, folder_name
from x3link.errors import X3LinkError

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class FileOrder:
    tenant: str
    folder: str
    filename: str
    size: int | None
    checksum: str | None
    last_modified: str | None

    def body(self) -> str:
        return json.dumps(
            {
                "tenant": self.tenant,
                "folder": self.folder,
                "filename": self.filename,
                "size": self.size,
                "checksum": self.checksum,
                "last_modified": self.last_modified,
            }
        )

    @property
    def version(self) -> str:
        return version_of(self)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.folder}/{self.filename}"


@dataclass(frozen=True)
class ScanOrder:
    tenant: str
    folder: str | None = None

    def body(self) -> str:
        return json.dumps({"scan": self.tenant, "folder": self.folder})


Order = FileOrder | ScanOrder


def version_of(order: FileOrder) -> str:
    """A file version's identity: a name Sage reuses later with another `lastModified` or checksum is a new
    version (delivered again); the same one listed twice is the same version."""
    parts = [order.tenant, order.folder, order.filename, order.last_modified or "", order.checksum or ""]
    parts.append("" if order.size is None else str(order.size))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def parse_order(body: str) -> Order | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        if "scan" in data:
            folder = data.get("folder")
            return ScanOrder(
                _tenant(data["scan"]), folder_name(folder) if isinstance(folder, str) and folder else None
            )
        size = data.get("size")
        return FileOrder(
            tenant=_tenant(data["tenant"]),
            folder=folder_name(data["folder"]),
            filename=file_name(data["filename"]),
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            checksum=data["checksum"] if isinstance(data.get("checksum"), str) else None,
            last_modified=data["last_modified"] if isinstance(data.get("last_modified"), str) else None,
        )
    except (KeyError, X3LinkError):
        return None


def _tenant(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise KeyError("tenant")
    return value


def checksum_matches(given: str | None, md5: bytes, sha256: bytes) -> bool | None:
    """Sage's `checksum` against the bytes read: True or False when its form is known (MD5 or SHA-256, hex
    or base64), None when Sage gave none or one of a form it does not document [gap]."""
    if not given:
        return None
    text = given.strip().strip('"')
    if _HEX32.fullmatch(text):
        return text.lower() == md5.hex()
    if _HEX64.fullmatch(text):
        return text.lower() == sha256.hex()
    for digest in (md5, sha256):
        if text == base64.b64encode(digest).decode():
            return True
    return None
