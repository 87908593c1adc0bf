"""Plain records the emulator keeps in memory.

Why: keeping the data shapes apart from HTTP and locking lets the Python API, the route functions and
the tests share one vocabulary.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_FOLDERS: tuple[str, ...] = ("SEED", "X3", "DEMO")


def customer_key(url: str) -> str:
    """Why: one customer URL may arrive with or without a trailing slash; both name the same customer."""
    return url.strip().rstrip("/")


def gateway_host(region: str) -> str:
    """The DNS name a region's gateway puts in `iss` and `aud` (the real names are not published)."""
    return f"api.{region}-sagex3.com"


def iso_time(timestamp: float) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, as the gateway's documents show."""
    text = datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass
class Customer:
    """One Sage X3 cloud configuration; `config_id` becomes the JWT `sub`."""

    url: str
    folders: list[str]
    region: str | None = None
    config_id: str | None = None

    def __post_init__(self) -> None:
        self.folders = list(self.folders)
        if self.config_id is None:
            # Stable across runs so that tests and benchmarks can predict `sub`.
            self.config_id = str(uuid.uuid5(uuid.NAMESPACE_URL, customer_key(self.url)))


@dataclass
class Client:
    """An app registered in the Sage App Registry."""

    client_id: str
    secret: str
    redirect_uris: list[str] | None = None
    enabled: bool = True

    def accepts_redirect(self, redirect_uri: str) -> bool:
        """Why: `None` means "accept any", which keeps ad-hoc local setups friction-free."""
        return self.redirect_uris is None or redirect_uri in self.redirect_uris


@dataclass
class PendingRequest:
    """An authorise request waiting for the X3 user's decision."""

    request_id: str
    client_id: str
    scopes: list[str]
    customer_url: str
    redirect_uri: str
    state: str
    region: str
    created_at: float


@dataclass
class AuthCode:
    """A single-use authorization code, bound to its client, redirect URI and home region."""

    code: str
    client_id: str
    redirect_uri: str
    customer_url: str
    config_id: str
    folders: list[str]
    scopes: list[str]
    home_region: str
    issued_at: float
    used: bool = False


@dataclass
class Grant:
    """One pairing between the app and a customer: the thing a refresh token keeps alive."""

    grant_id: str
    client_id: str
    customer_url: str
    config_id: str
    home_region: str
    scopes: list[str]
    folders: list[str]
    created_seq: int
    alive: bool = True
    refresh_jti: str | None = None
    refresh_token: str | None = None

    def scope_list(self) -> list[str]:
        """The requested scopes plus one `folder.<NAME>` per granted folder."""
        return [*self.scopes, *(f"folder.{name}" for name in self.folders)]


@dataclass
class AccessRecord:
    """Server-side facts about an issued access token (a JWT alone cannot be revoked)."""

    grant_id: str
    exp: int
    valid: bool = True


@dataclass
class StoredFile:
    """A file in a delivery or ingestion folder."""

    content: bytes
    last_modified: float

    @property
    def checksum(self) -> str:
        """MD5 hex, as an S3 ETag of a single-part upload."""
        return hashlib.md5(self.content, usedforsecurity=False).hexdigest()


@dataclass
class DownloadLink:
    """A presigned-like download URL served by the emulator itself."""

    customer_url: str
    folder: str
    name: str
    expires_at: float


@dataclass
class UploadSlot:
    """A presigned-like upload URL handed out by data ingestion."""

    customer_url: str
    folder: str
    name: str
    tracking_id: str
    expires_at: float


@dataclass
class Tracking:
    """The ingestion tracking document of one uploaded file."""

    tracking_id: str
    url: str
    customer_url: str
    customer_code: str
    folder: str
    file_name: str
    created_at: float
    status: str = "awaiting_upload"
    status_message: str = "Waiting for the file to be uploaded"
    last_status_update: float = field(default=0.0)
    # Set by the upload: the final (status, message) the scan gives once `scan_delay` has passed.
    scan_verdict: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The document `GET .../tracking/{uuid}` answers."""
        return {
            "$url": self.url,
            "fileName": self.file_name,
            "createdAt": iso_time(self.created_at),
            "status": self.status,
            "statusMessage": self.status_message,
            "lastStatusUpdate": iso_time(self.last_status_update or self.created_at),
            "customerCode": self.customer_code,
            "folder": self.folder,
        }


@dataclass
class NotificationRecord:
    """A data delivery notification the gateway sent, kept so that its `detailUrl` can answer."""

    notification_id: str
    client_id: str
    customer_url: str
    customer_id: str
    folder: str
    files: list[str]
    created_at: float
