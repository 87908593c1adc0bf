"""Data delivery notifications (docs/sage-x3.md#data-delivery-notifications): signed as Sage signs them,
POSTed to the app's notification URL, and their details served at `GET {base}/notification/{id}` to a
bearer token of the customer's.

Why: the app must check the signature, read the details only from the customer's own gateway and
deduplicate on `notificationId`; the emulator sends notifications as Sage documents them, and can send them
wrong on purpose (unsigned, signed with another key, a `detailUrl` on another host).

Assumptions, since Sage does not publish them [gap]: the digest is written in lowercase hex (the
`notification_signature` knob switches to base64); the detail document starts with the two fields Sage's
example shows (`notificationID`, `applicationId`) and goes on with the notification's own fields, the
`folder` and its `files`, each as the delivery listing describes a file. The path `/v1/notification/{id}` is
the one of Sage's example.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from werkzeug.wrappers import Response

from . import web
from .models import NotificationRecord, customer_key, iso_time
from .state import State
from .tokens import authenticate
from .web import ApiError, GatewayRequest

SIGNATURE_HEADER = "HMAC_SHA256"
SOURCE = "dataDeliveryApi"
NOT_FOUND = "Notification not found"  # not documented by Sage [gap]


@dataclass
class SentNotification:
    """What was POSTed (body and signature, as sent) and how the app answered (None when not sent)."""

    notification_id: str
    payload: dict[str, Any]
    body: bytes
    signature: str | None
    status: int | None = None
    answer: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.answer) if self.answer else None


def sign(body: bytes, client_id: str, encoding: str = "hex") -> str:
    """HMAC-SHA256 of the body keyed with the app's client id, as Sage documents it."""
    digest = hmac.new(client_id.encode("utf-8"), body, hashlib.sha256).digest()
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    if encoding != "hex":
        raise ValueError("notification_signature must be 'hex' or 'base64'")
    return digest.hex()


def build(
    state: State,
    customer_url: str,
    folder: str,
    files: Iterable[str] | None,
    *,
    client_id: str,
    notification_id: str | None = None,
    detail_url: str | None = None,
) -> tuple[NotificationRecord, dict[str, Any]]:
    """Record a notification of the customer's folder and return it with the payload Sage would POST.

    `files` None names what the folder holds now; `detail_url` replaces the gateway's own.
    """
    customer = state.find_customer(customer_url, create=True)
    if customer is None:
        raise KeyError(f"unknown customer {customer_url!r}")
    with state.lock:
        names = sorted(state.delivery_folder(customer_url, folder)) if files is None else list(files)
        record = NotificationRecord(
            notification_id=notification_id or str(uuid.uuid4()),
            client_id=client_id,
            customer_url=customer_key(customer_url),
            customer_id=customer.config_id or "",
            folder=folder,
            files=names,
            created_at=state.now(),
        )
        state.notifications[record.notification_id] = record
        base = state.base_urls.get(state.home_region(customer), "")
    payload = {
        "notificationId": record.notification_id,
        "source": SOURCE,
        "customerUrl": record.customer_url,
        "customerID": record.customer_id,
        "datetime": iso_time(record.created_at),
        "detailUrl": detail_url or f"{base}/notification/{quote(record.notification_id, safe='')}",
    }
    return record, payload


def post(url: str, body: bytes, signature: str | None, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """POST a notification to the app, as the gateway does; the app's status, headers and body."""
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise ValueError("the notification URL must be an absolute http(s) URL")
    connection_type = http.client.HTTPSConnection if split.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(split.hostname, split.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    path = split.path or "/"
    if split.query:
        path = f"{path}?{split.query}"
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def notification_detail(state: State, req: GatewayRequest) -> Response:
    """`GET /v1/notification/{id}`: what was delivered, to a token of the notified customer only."""
    grant = authenticate(state, req)
    with state.lock:
        record = state.notifications.get(unquote(req.params["notification_id"]))
        if record is None or record.customer_url != grant.customer_url:
            raise ApiError(404, NOT_FOUND)
        files = state.delivery_folder(record.customer_url, record.folder)
        described = []
        for name in record.files:
            stored = files.get(name)
            entry: dict[str, Any] = {"key": name, "downloadUrl": f"{record.folder}?filename={quote(name)}"}
            if stored is not None:
                entry.update(
                    lastModified=iso_time(stored.last_modified),
                    checksum=stored.checksum,
                    size=len(stored.content),
                )
            described.append(entry)
    return web.json_answer(
        200,
        {
            "notificationID": record.notification_id,
            "applicationId": record.client_id,
            "source": SOURCE,
            "customerUrl": record.customer_url,
            "customerID": record.customer_id,
            "datetime": iso_time(record.created_at),
            "folder": record.folder,
            "files": described,
        },
    )
