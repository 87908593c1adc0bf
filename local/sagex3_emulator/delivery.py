"""Data delivery (files exported from X3): list with paging, download by redirect, delete.

Why: downloads go through a presigned-like URL the emulator serves itself (`/_files/<opaque>`, no
auth, valid one hour), so the app's "follow the redirect, not the token" handling is exercised.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any
from urllib.parse import quote, unquote, urlencode

from werkzeug.wrappers import Response

from . import messages, web
from .models import DownloadLink, Grant, customer_key, iso_time
from .state import State
from .tokens import authenticate
from .web import ApiError, GatewayRequest

PAGE_SIZE = 50


def presigned_url(origin: str, path: str, now: float, lifetime: float) -> str:
    """An S3-like presigned URL: `X-Amz-Date` and `X-Amz-Expires` say until when it works, as S3's do;
    the opaque part of the path is what the emulator checks (the signature is decoration)."""
    query = urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)),
            "X-Amz-Expires": str(int(lifetime)),
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": secrets.token_hex(32),
        }
    )
    return f"{origin}{path}?{query}"


def data_grant(state: State, req: GatewayRequest) -> Grant:
    """The caller's grant, with this data request counted against its customer's daily quota (429 past it,
    with Retry-After up to the next UTC day)."""
    grant = authenticate(state, req)
    limit = state.settings.daily_quota
    if limit <= 0:
        return grant
    now = state.now()
    day = int(now // 86400)
    key = (customer_key(grant.customer_url), day)
    with state.lock:
        used = state.quota_used.get(key, 0)
        if used >= limit:
            retry_after = max(1, math.ceil((day + 1) * 86400 - now))
            raise ApiError(429, messages.QUOTA_EXCEEDED, {"Retry-After": str(retry_after)})
        state.quota_used[key] = used + 1
    return grant


def granted_folder(req: GatewayRequest, grant: Grant) -> str:
    """The folder named in the path, when the token was granted it; else 403."""
    folder = unquote(req.params["folder"])
    if folder not in grant.folders:
        raise ApiError(403, messages.FOLDER_FORBIDDEN)
    return folder


def named_file(state: State, req: GatewayRequest) -> tuple[Grant, str, str]:
    """The caller's grant, the granted folder and the required `filename` of a per-file request."""
    grant = data_grant(state, req)
    folder = granted_folder(req, grant)
    filename = req.args.get("filename")
    if not filename:
        raise ApiError(400, messages.MISSING_PARAMETERS)
    return grant, folder, filename


def _page_number(req: GatewayRequest) -> int:
    raw = req.args.get("page")
    if raw is None:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, messages.INVALID_PAGE)
    return int(raw)


def delivery_get(state: State, req: GatewayRequest) -> Response:
    """`GET /v1/datadelivery/{FOLDER}/`: the listing, or with `?filename=` a redirect to the file."""
    grant = data_grant(state, req)
    folder = granted_folder(req, grant)
    filename = req.args.get("filename")
    if filename is not None:
        return _download_redirect(state, req, grant, folder, filename)
    page = _page_number(req)
    with state.lock:
        files = sorted(state.delivery_folder(grant.customer_url, folder).items())
    start = (page - 1) * PAGE_SIZE
    chunk = files[start : start + PAGE_SIZE]
    items = [
        {
            "key": name,
            "downloadUrl": f"{folder}?filename={quote(name)}",
            "lastModified": iso_time(stored.last_modified),
            "checksum": stored.checksum,
            "size": len(stored.content),
            "deleteUrl": f"{folder}?filename={quote(name)}",
        }
        for name, stored in chunk
    ]
    truncated = start + PAGE_SIZE < len(files)
    document: dict[str, Any] = {
        "isTruncated": truncated,
        "maxItems": str(PAGE_SIZE),
        "itemsCount": len(items),
        "items": items,
    }
    if truncated:
        document["$next"] = f"{folder}?page={page + 1}"
    if page > 1:
        document["$previous"] = f"{folder}?page={page - 1}"
    return web.json_answer(200, document)


def _download_redirect(
    state: State, req: GatewayRequest, grant: Grant, folder: str, filename: str
) -> Response:
    if not filename:
        raise ApiError(400, messages.MISSING_PARAMETERS)
    with state.lock:
        if filename not in state.delivery_folder(grant.customer_url, folder):
            raise ApiError(404, messages.FILE_NOT_FOUND)
        opaque = secrets.token_urlsafe(24)
        now, lifetime = state.now(), state.settings.link_lifetime
        state.links[opaque] = DownloadLink(grant.customer_url, folder, filename, now + lifetime)
    location = presigned_url(req.server_origin, f"/_files/{opaque}", now, lifetime)
    return web.Answer(status=state.settings.download_redirect_status, headers={"Location": location})


def delivery_delete(state: State, req: GatewayRequest) -> Response:
    """`DELETE /v1/datadelivery/{FOLDER}/?filename=NAME` → 204."""
    grant, folder, filename = named_file(state, req)
    with state.lock:
        files = state.delivery_folder(grant.customer_url, folder)
        if files.pop(filename, None) is None:
            raise ApiError(404, messages.FILE_NOT_FOUND)
    return web.Answer(status=204)


def serve_file(state: State, req: GatewayRequest) -> Response:
    """`GET /_files/<opaque>`: the presigned-like download, answering as S3 would."""
    with state.lock:
        link = state.links.get(req.params["link"])
        if link is None:
            return web.s3_error(403, "AccessDenied", "Access Denied")
        if state.now() >= link.expires_at:
            return web.s3_error(403, "AccessDenied", "Request has expired")
        stored = state.delivery_folder(link.customer_url, link.folder).get(link.name)
    if stored is None:
        return web.s3_error(404, "NoSuchKey", "The specified key does not exist.")
    headers = {"Content-Type": "application/octet-stream", "ETag": f'"{stored.checksum}"'}
    return web.Answer(stored.content, 200, headers)
