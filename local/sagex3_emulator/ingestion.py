"""Data ingestion (files imported into X3): upload URL, raw upload, tracking document.

Why: the upload goes to a presigned-like URL on the emulator (`/_upload/<opaque>`, no auth), and the
tracking status moves `awaiting_upload` → `awaiting_scan`, as the facts page describes, then, `scan_delay`
seconds after the upload, to a final status. Sage does not publish its statuses past `awaiting_scan` [gap];
the emulator assumes `integrated` for a clean text file, and `virus_detected` for a file that carries the
EICAR test string or whose name says `eicar` (the antivirus industry's harmless test marker).
"""

from __future__ import annotations

import secrets
import uuid

from werkzeug.wrappers import Response

from . import messages, web
from .delivery import data_grant, named_file, presigned_url
from .models import StoredFile, Tracking, UploadSlot
from .state import State
from .web import ApiError, GatewayRequest

EICAR_MARKER = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"


def scan_verdict(name: str, content: bytes) -> tuple[str, str]:
    """The final tracking status (and message) the emulated virus scan and import give a file."""
    if "eicar" in name.lower() or EICAR_MARKER in content:
        return "virus_detected", "The virus scan found a threat: the file was not integrated"
    return "integrated", "The file was integrated into X3"


def _scan_if_due(state: State, record: Tracking) -> None:
    """Give an uploaded file its final status once `scan_delay` has passed (call under `lock`)."""
    if record.status != "awaiting_scan" or record.scan_verdict is None:
        return
    scanned_at = record.last_status_update + state.settings.scan_delay
    if state.now() >= scanned_at:
        record.status, record.status_message = record.scan_verdict
        record.last_status_update = scanned_at


def request_upload(state: State, req: GatewayRequest) -> Response:
    """`POST /v1/dataingestion/{FOLDER}?filename=NAME` → `{"uploadUrl", "trackingUrl"}`."""
    grant, folder, filename = named_file(state, req)
    with state.lock:
        if filename in state.ingestion_folder(grant.customer_url, folder):
            raise ApiError(403, messages.FILE_EXISTS)
        now = state.now()
        tracking_id = str(uuid.uuid4())
        tracking_url = f"{req.api_base}/dataingestion/tracking/{tracking_id}"
        state.tracking[tracking_id] = Tracking(
            tracking_id=tracking_id,
            url=tracking_url,
            customer_url=grant.customer_url,
            customer_code=grant.config_id,
            folder=folder,
            file_name=filename,
            created_at=now,
            last_status_update=now,
        )
        opaque = secrets.token_urlsafe(24)
        lifetime = state.settings.link_lifetime
        state.uploads[opaque] = UploadSlot(grant.customer_url, folder, filename, tracking_id, now + lifetime)
    upload_url = presigned_url(req.server_origin, f"/_upload/{opaque}", now, lifetime)
    return web.json_answer(200, {"uploadUrl": upload_url, "trackingUrl": tracking_url})


def _is_text(content: bytes) -> bool:
    if b"\x00" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def upload(state: State, req: GatewayRequest) -> Response:
    """`PUT /_upload/<opaque>`: store the raw bytes (text only; the size limit is checked earlier)."""
    with state.lock:
        slot = state.uploads.get(req.params["slot"])
        if slot is None:
            return web.s3_error(403, "AccessDenied", "Access Denied")
        if state.now() >= slot.expires_at:
            return web.s3_error(403, "AccessDenied", "Request has expired")
        if not _is_text(req.get_data()):
            return web.s3_error(400, "InvalidContent", "Only text files can be ingested")
        stored = StoredFile(req.get_data(), state.now())
        state.ingestion_folder(slot.customer_url, slot.folder)[slot.name] = stored
        tracking = state.tracking.get(slot.tracking_id)
        if tracking is not None:
            tracking.status = "awaiting_scan"
            tracking.status_message = "The file was received and is waiting for the virus scan"
            tracking.last_status_update = state.now()
            tracking.scan_verdict = scan_verdict(slot.name, req.get_data())
    return web.Answer(status=200, headers={"ETag": f'"{stored.checksum}"'})


def tracking(state: State, req: GatewayRequest) -> Response:
    """`GET /v1/dataingestion/tracking/{uuid}`: the tracking document, for its own customer only."""
    grant = data_grant(state, req)
    with state.lock:
        record = state.tracking.get(req.params["tracking_id"])
        if record is None or record.customer_url != grant.customer_url:
            raise ApiError(404, messages.NOT_FOUND)
        _scan_if_due(state, record)
        return web.json_answer(200, record.to_json())
