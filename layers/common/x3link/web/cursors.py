"""The opaque `cursor` of a paged listing: base64url JSON that only the listing which made it reads back.

A cursor comes back from the app, so it is read as untrusted input: bounded, and BadRequest for anything
that is not base64url JSON. What the JSON may hold is the listing's own check.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

# Any: a cursor holds untrusted JSON: the listing that reads it back checks its shape.
from typing import Any

from x3link.aws.dynamo_attrs import only
from x3link.errors import BadRequest

_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,2048}")


def encode(document: dict[str, Any]) -> str:
    text = json.dumps(document, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str, refusal: str) -> Any:
    """The JSON a cursor holds; BadRequest(refusal) when it is not a cursor at all."""
    if not _CURSOR.fullmatch(cursor):
        raise BadRequest(refusal)
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest(refusal) from None


def tenant_start_key(cursor: str, tenant: str, sort_key: str, pattern: re.Pattern[str], refusal: str) -> Any:
    """A cursor that is exactly a key of the tenant's own partition, `{"tenant", sort_key}`, whose sort key
    matches `pattern`: another tenant's key, or any other shape, is BadRequest(refusal)."""
    key = decode(cursor, refusal)
    if not isinstance(key, dict) or key.get("tenant") != {"S": tenant} or set(key) != {"tenant", sort_key}:
        raise BadRequest(refusal)
    value = only(key[sort_key], "S")
    if not isinstance(value, str):
        raise BadRequest(refusal)
    if not pattern.fullmatch(value):
        raise BadRequest(refusal)
    return key


def page_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """A listing's `?limit=`: `default` when absent, else a whole number from 1 to `maximum`."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= maximum):
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}.")
    return int(raw)
