"""GET /pairings: the pairing links issued, newest first, a page at a time, with what became of each;
never a link's secret part (a link's `id` is the SHA-256 of it: states.py says why that is safe).

A link's status is read from its marks: `revoked`, `used` (its state was spent by a callback), `opened`
(a browser opened it, no callback yet), `expired` (past its expiry, never opened), else `pending`. The
links come from the states table's `by-link-created` index, which holds links only; `?status=` filters
what each read returns, so a page may hold fewer than `limit` links: the listing is over when no cursor
comes back. The cursor is base64url JSON of the status filter and DynamoDB's LastEvaluatedKey, checked on
its way back in.
"""

from __future__ import annotations

import re

# Any: DynamoDB items, the JSON views, and a cursor's untrusted JSON.
from typing import Any

from x3link.aws.dynamo_attrs import n, n_or_none, only, s
from x3link.errors import BadRequest
from x3link.pairing.states import LINK_LIST, LINK_PUBLIC_ID, PairingStates
from x3link.tokens.model import iso
from x3link.web import cursors

STATUSES = ("pending", "opened", "used", "expired", "revoked")
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
READS_PER_PAGE = 5  # index reads one request may make to fill a page that filtering left short
_NUMBER = re.compile(r"\d{1,12}(\.\d{1,20})?")
_BAD_CURSOR = "cursor is not one that this listing handed out."


def status_of(item: dict[str, Any], now: float) -> str:
    if "revoked_at" in item:
        return "revoked"
    if "used_at" in item:
        return "used"
    if "opened_at" in item:
        return "opened"
    expires = n_or_none(item, "link_expires_at")
    return "expired" if expires is not None and expires <= now else "pending"


def view(item: dict[str, Any], now: float) -> dict[str, Any]:
    """A link as GET /pairings lists it: the contract's fields, and nothing of the link's secret."""
    return {
        "id": s(item, "state_hash").removeprefix("link:"),
        "tenant": s(item, "tenant"),
        "customer": s(item, "customer"),
        "status": status_of(item, now),
        "created_at": iso(n(item, "created_at")),
        "expires_at": iso(n(item, "link_expires_at")),
    }


def status_filter(raw: str | None) -> str | None:
    if raw is not None and raw not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}.")
    return raw


def page_limit(raw: str | None) -> int:
    return cursors.page_limit(raw, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def _is_key(key: Any) -> bool:
    """A LastEvaluatedKey of the links' index: a link's key, `link_list` and its creation time."""
    if not isinstance(key, dict) or set(key) != {"state_hash", "link_list", "created_at"}:
        return False
    hashed, created = only(key["state_hash"], "S"), only(key["created_at"], "N")
    return (
        isinstance(hashed, str)
        and hashed.startswith("link:")
        and bool(LINK_PUBLIC_ID.fullmatch(hashed.removeprefix("link:")))
        and key["link_list"] == {"S": LINK_LIST}
        and isinstance(created, str)
        and bool(_NUMBER.fullmatch(created))
    )


def decode_cursor(cursor: str, status: str | None) -> dict[str, Any]:
    document = cursors.decode(cursor, _BAD_CURSOR)
    if not isinstance(document, dict) or set(document) != {"status", "key"}:
        raise BadRequest(_BAD_CURSOR)
    if document["status"] != status:
        raise BadRequest("cursor belongs to a listing with another status filter.")
    if not _is_key(document["key"]):
        raise BadRequest(_BAD_CURSOR)
    key: dict[str, Any] = document["key"]
    return key


def list_links(
    states: PairingStates, *, status: str | None, limit: int, cursor: str | None, now: float
) -> dict[str, Any]:
    """One page of links, newest first: `{"pairings": [...], "cursor"?}`."""
    key = decode_cursor(cursor, status) if cursor is not None else None
    links: list[dict[str, Any]] = []
    for _ in range(READS_PER_PAGE):
        items, key = states.links_page(limit - len(links), key)
        links += [view(item, now) for item in items if status is None or status_of(item, now) == status]
        if key is None:
            return {"pairings": links}
        if len(links) >= limit:
            break
    return {"pairings": links, "cursor": cursors.encode({"status": status, "key": key})}
