"""Data ingestion: a presigned link the app PUTs a file to, for Sage X3 to scan and import it, and Sage's
tracking of that file (docs/sage-x3.md#data-ingestion).

Pure functions build the requests and read the answers; each operation is one Sage call with a live token
(`with_live_token`). Sage's quirk lives here: it says "File already exists" with a 403, or elsewhere a 401,
and that 401 is no refused token (refreshing would not help; the request is not retried).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

# Any: Sage's JSON answers and the request's body, untrusted: each field is checked as it is read.
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from x3link.budget import Budget
from x3link.data.integration import absolute_link, file_name, folder_name, granted, link_expiry, quoted
from x3link.data.session import with_live_token
from x3link.data.uploads import UploadLog
from x3link.errors import (
    BadRequest,
    FileExists,
    FolderNotGranted,
    Unauthorised,
    UploadNotFound,
    UpstreamError,
    UpstreamRefused,
)
from x3link.refresh.keeper import TokenKeeper
from x3link.sage.client import SageX3Client
from x3link.tokens.model import Pairing, iso

logger = Logger(child=True)

TRACKING_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TRACKING_PATH = re.compile(r"/dataingestion/tracking/([^/]+)/?\Z")
_FILE_EXISTS = "file already exists"


# ------------------------------------------------------------------ requests
def upload_request_url(endpoint: str, folder: str, filename: str) -> str:
    return f"{endpoint}/dataingestion/{quoted(folder)}?filename={quoted(filename)}"


def tracking_url(endpoint: str, tracking_id: str) -> str:
    return f"{endpoint}/dataingestion/tracking/{quoted(tracking_id)}"


def checked_tracking_id(value: str) -> str:
    """A tracking id as Sage issues them, a UUID (8-4-4-4-12 hex digits), in lower case."""
    if not TRACKING_ID.fullmatch(value):
        raise BadRequest("tracking_id must be a UUID, as the upload's tracking_id gave it.")
    return value.lower()


def upload_filename(body: Any) -> str:
    """The `{"filename"}` body of an upload request."""
    if not isinstance(body, dict) or set(body) != {"filename"}:
        raise BadRequest('The body must be a JSON object: {"filename": ...}.')
    return file_name(body["filename"])


# ------------------------------------------------------------------ answers
def says_file_exists(sage_message: str) -> bool:
    return sage_message.strip().rstrip(".").lower() == _FILE_EXISTS


def tracking_id_of(url: Any) -> str:
    """The UUID a `trackingUrl` ends with (`.../dataingestion/tracking/{uuid}`)."""
    try:
        path = urlsplit(url).path if isinstance(url, str) else ""
    except ValueError:
        path = ""
    found = _TRACKING_PATH.search(path)
    if found is None or not TRACKING_ID.fullmatch(found[1]):
        raise UpstreamError("Sage X3's trackingUrl does not end with a tracking id.")
    return found[1].lower()


def parse_upload(document: Any, now: float) -> dict[str, Any]:
    """`{"uploadUrl", "trackingUrl"}` as the app's `{"upload_url", "expires_at", "tracking_id"}`."""
    if not isinstance(document, dict) or not isinstance(document.get("uploadUrl"), str):
        raise UpstreamError("Sage X3's answer has no uploadUrl.")
    upload_url = absolute_link(document["uploadUrl"])
    return {
        "upload_url": upload_url,
        "expires_at": iso(link_expiry(upload_url, now)),
        "tracking_id": tracking_id_of(document.get("trackingUrl")),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_tracking(document: Any, tracking_id: str) -> dict[str, Any]:
    """Sage's tracking document in the bundle's words; its status passed through (the list is not
    published: `awaiting_upload`, `awaiting_scan` and whatever follows)."""
    if not isinstance(document, dict) or not isinstance(document.get("status"), str):
        raise UpstreamError("Sage X3's tracking document has no status.")
    return {
        "tracking_id": tracking_id,
        "filename": _text(document.get("fileName")),
        "folder": _text(document.get("folder")),
        "status": document["status"],
        "status_message": _text(document.get("statusMessage")),
        "created_at": _text(document.get("createdAt")),
        "last_status_update": _text(document.get("lastStatusUpdate")),
    }


# ------------------------------------------------------------------ operations
def request_upload(
    tenant: str,
    folder: str,
    body: Any,
    keeper: TokenKeeper,
    sage: SageX3Client,
    budget: Budget | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Ask Sage for a presigned upload link into a granted folder, and the id to track the file by."""
    folder, filename = folder_name(folder), upload_filename(body)
    exists = f"Sage X3 already holds a file named {filename!r} in the folder {folder!r}."

    def ask(pairing: Pairing, token: str) -> Any:
        try:
            return sage.post_json(
                upload_request_url(pairing.endpoint, folder, filename), token, tenant=tenant
            )
        except Unauthorised as refused:
            if says_file_exists(refused.sage_message):
                raise FileExists(exists) from None
            raise
        except UpstreamRefused as refused:
            if says_file_exists(refused.sage_message):
                raise FileExists(exists) from None
            if refused.upstream_status == 403:
                raise FolderNotGranted(f"Sage X3 refuses the folder {folder!r} to this pairing.") from None
            raise

    document = with_live_token(tenant, keeper, ask, budget, check=granted(folder))
    return parse_upload(document, clock())


def upload_status(
    tenant: str, tracking_id: str, keeper: TokenKeeper, sage: SageX3Client, budget: Budget | None = None
) -> dict[str, Any]:
    """Sage's tracking document of an upload; UploadNotFound when Sage knows no such id for the customer."""
    tracking_id = checked_tracking_id(tracking_id)

    def read(pairing: Pairing, token: str) -> Any:
        try:
            return sage.get_json(tracking_url(pairing.endpoint, tracking_id), token, tenant=tenant)
        except UpstreamRefused as refused:
            if refused.upstream_status == 404:
                raise UploadNotFound("Sage X3 knows no upload with this tracking id.") from None
            raise

    return parse_tracking(with_live_token(tenant, keeper, read, budget), tracking_id)


def record_upload(
    log: UploadLog, tenant: str, folder: str, filename: str, upload: dict[str, Any], now: float | None = None
) -> None:
    """Note a link handed out in the tenant's uploads (GET .../uploads). Best effort: the link is issued
    already, and failing the request now would only lose it for the app."""
    try:
        log.record_api(tenant, upload["tracking_id"], folder, filename, time.time() if now is None else now)
    except Exception:
        logger.warning("Upload not recorded in the uploads table", exc_info=True)
