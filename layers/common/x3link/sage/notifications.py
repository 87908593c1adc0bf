"""Sage X3's data delivery notifications as pure functions: the signature, the payload, where its details
may be read, and what the details say (docs/sage-x3.md#data-delivery-notifications).

Sage signs a notification with HMAC-SHA256 keyed with the app's client id, which is no secret: every
authorise URL a browser opens shows it. The signature keeps strangers out, not someone who has seen a pairing
link. So a notification is believed only through its details, read from the tenant's own gateway with the
tenant's token: a `detailUrl` anywhere else is never fetched, lest the token go to whoever named that host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Any: Sage's webhook JSON and headers, untrusted: checked field by field.
from typing import Any
from urllib.parse import urlsplit

from x3link.errors import BadRequest
from x3link.web import request_json

SIGNATURE_HEADER = "HMAC_SHA256"
# A proxy on the way may turn the underscore into a dash (nginx drops such headers unless told otherwise).
_SIGNATURE_NAMES = frozenset({"hmac_sha256", "hmac-sha256"})
DELIVERY_SOURCE = "dataDeliveryApi"
MAX_FILES = 100  # files named in one event: the rest are listed with GET .../files (`truncated`)
_MAX_ID = 200
_MAX_TEXT = 1024
_HEX = re.compile(r"^[0-9A-Fa-f]{64}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]{43}=?$")
# Printable ASCII without space, backslash or '#', and no '@' in the authority: urllib.parse and urllib3
# then agree on the host, so the host checked is the host called.
_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?][\x21-\x22\x24-\x5b\x5d-\x7e]*)?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Notification:
    """What Sage POSTs to the notification URL; `sent_at` is its `datetime`, as Sage wrote it."""

    notification_id: str
    source: str | None
    customer_url: str
    customer_id: str | None
    sent_at: str | None
    detail_url: str

    @property
    def is_delivery(self) -> bool:
        """About files exported from X3 (the only source documented); absent counts as that too."""
        return self.source in (None, DELIVERY_SOURCE)


@dataclass(frozen=True)
class DeliveredFile:
    name: str
    size: int | None = None
    last_modified: str | None = None
    checksum: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "last_modified": self.last_modified,
            "checksum": self.checksum,
        }


@dataclass(frozen=True)
class Details:
    """What a notification's detail document says was delivered."""

    folder: str | None
    files: tuple[DeliveredFile, ...]
    truncated: bool = False


# ---------------------------------------------------------------------------------------------- signature
def signature_header(
    headers: Mapping[str, Any] | None, multi_value_headers: Mapping[str, Any] | None
) -> str | None:
    """The one `HMAC_SHA256` value, its name in any case; None when absent or sent with two values."""
    values: set[str] = set()
    for source in (multi_value_headers or {}, headers or {}):
        for name, value in source.items():
            if name.lower() in _SIGNATURE_NAMES:
                values.update(value if isinstance(value, list) else [value])
    texts = {value.strip() for value in values if isinstance(value, str)}
    return texts.pop() if len(texts) == 1 else None


def expected_signature(body: bytes, client_id: str) -> bytes:
    return hmac.new(client_id.encode("utf-8"), body, hashlib.sha256).digest()


def is_signed(body: bytes, signature: str | None, client_id: str) -> bool:
    """Whether `signature` is the HMAC-SHA256 of the raw body keyed with the client id.

    Sage does not say how the digest is written [gap]: lowercase or uppercase hex and base64 (standard or
    URL-safe) are all read. The comparison is constant-time.
    """
    if not signature or not client_id:
        return False
    given = _digest(signature)
    return given is not None and hmac.compare_digest(given, expected_signature(body, client_id))


def _digest(signature: str) -> bytes | None:
    if _HEX.fullmatch(signature):
        return bytes.fromhex(signature)
    if _BASE64.fullmatch(signature):
        text = signature.replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


# ---------------------------------------------------------------------------------------------- payload
def parse(body: bytes) -> Notification:
    """The notification in a (signed) body; BadRequest when it is not one."""
    try:
        document = request_json.loads(body)
    except request_json.NotAcceptableJson as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object: Sage X3's notification.")
    notification_id = _required(document, "notificationId", _MAX_ID)
    if any(char.isspace() or not char.isprintable() for char in notification_id):
        raise BadRequest("notificationId must be printable, without spaces.")
    customer_url = _required(document, "customerUrl", _MAX_TEXT)
    if not customer_spellings(customer_url):
        raise BadRequest("customerUrl must be the customer's absolute http(s) X3 URL.")
    return Notification(
        notification_id=notification_id,
        source=_text(document, "source", _MAX_TEXT),
        customer_url=customer_url,
        customer_id=_text(document, "customerID", _MAX_TEXT),
        sent_at=_text(document, "datetime", _MAX_TEXT),
        detail_url=_required(document, "detailUrl", _MAX_TEXT * 2),
    )


def _text(document: Mapping[str, Any], name: str, limit: int) -> str | None:
    return None if document.get(name) is None else _required(document, name, limit)


def _required(document: Mapping[str, Any], name: str, limit: int) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"{name} must be a string of 1 to {limit} characters.")
    return value


# ---------------------------------------------------------------------------------------------- addresses
def customer_spellings(url: str) -> list[str]:
    """The ways a `customer` given at POST /pairings may spell Sage's `customerUrl`: as sent, and with its
    scheme and host in lower case, with and without a trailing slash. Empty when it is no http(s) URL."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return []
    try:
        port = parts.port
    except ValueError:
        return []
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    canonical = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    return list(dict.fromkeys([url, canonical, f"{canonical}/"]))


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a plain http(s) URL; None for anything the check could misread."""
    found = _URL.fullmatch(url)
    if found is None:
        return None
    scheme = found["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    port = int(found["port"]) if found["port"] else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        return None
    return scheme, found["host"].lower(), port


def on_gateway(detail_url: str, endpoint: str) -> bool:
    """Whether `detail_url` is on the same origin (scheme, host and port) as the pairing's gateway."""
    found = origin(detail_url)
    return found is not None and found == origin(endpoint)


# ---------------------------------------------------------------------------------------------- details
def parse_details(document: Any) -> Details:
    """The folder and files a detail document names.

    Sage publishes only its first fields (`notificationID`, `applicationId`) [gap]; the folder is read
    from `folder` or `folderName`, the files from `files` or `items`, each named by `key`, `fileName`,
    `filename` or `name` (the delivery listing's `key`). Anything else is left out, never guessed at.
    """
    if not isinstance(document, dict):
        return Details(folder=None, files=())
    folder = _first_text(document, ("folder", "folderName"))
    listed: list[Any] = next(
        (document[k] for k in ("files", "items") if isinstance(document.get(k), list)), []
    )
    files = [found for found in map(_file, listed) if found is not None]
    return Details(folder=folder, files=tuple(files[:MAX_FILES]), truncated=len(files) > MAX_FILES)


def _file(entry: Any) -> DeliveredFile | None:
    if isinstance(entry, str):
        return DeliveredFile(entry[:_MAX_TEXT]) if entry else None
    if not isinstance(entry, dict):
        return None
    name = _first_text(entry, ("key", "fileName", "filename", "name"))
    if name is None:
        return None
    size = entry.get("size")
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    return DeliveredFile(
        name=name,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        last_modified=_first_text(entry, ("lastModified", "last_modified")),
        checksum=_first_text(entry, ("checksum",)),
    )


def _first_text(document: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = document.get(name)
        if isinstance(value, str) and value:
            return value[:_MAX_TEXT]
    return None
