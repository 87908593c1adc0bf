"""GET /tenants: the pairings a page at a time, optionally those in one status, never a token.

Without a status the table is scanned; with one, the `by-refresh-expiry` index (status, refresh expiry; keys
only) names the tenants and one BatchGetItem reads their pairings. A pairing is listed under the status its
view shows (`Pairing.describe`): an `active` pairing whose refresh token ran out shows `expired`, so
`?status=expired` reads two ranges of the index, the expired pairings and then the active ones past their
refresh expiry. A page may hold fewer than `limit` pairings; the listing is over when no cursor comes back.

The cursor is base64url JSON of where the listing stopped (which range, and DynamoDB's LastEvaluatedKey),
checked on its way back in: it must come from a listing with the same status, and hold a key of that range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Any: a cursor's untrusted JSON and the DynamoDB keys it holds; the listing's JSON.
from typing import Any

from x3link.aws.dynamo_attrs import only
from x3link.errors import BadRequest
from x3link.tokens.model import ACTIVE, EXPIRED, SUSPENDED, Pairing
from x3link.tokens.store import TokenStore
from x3link.web import cursors

STATUSES = (ACTIVE, SUSPENDED, EXPIRED)
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
# DynamoDB reads one request may make to fill a page that filtering left short.
READS_PER_PAGE = 5
_NUMBER = re.compile(r"-?\d{1,38}(\.\d{1,38})?(E-?\d{1,3})?")
_BAD_CURSOR = "cursor is not one that this listing handed out."


@dataclass(frozen=True)
class _Range:
    """One run of reads: the whole table (`status` None), or one status of the index."""

    status: str | None
    lapsed_only: bool = False  # active pairings whose refresh token ran out: they show `expired`

    @property
    def key_names(self) -> set[str]:
        return {"tenant"} if self.status is None else {"tenant", "status", "refresh_token_expires_epoch"}


_RANGES: dict[str | None, tuple[_Range, ...]] = {
    None: (_Range(None),),
    ACTIVE: (_Range(ACTIVE),),
    SUSPENDED: (_Range(SUSPENDED),),
    EXPIRED: (_Range(EXPIRED), _Range(ACTIVE, lapsed_only=True)),
}


def page_limit(raw: str | None) -> int:
    return cursors.page_limit(raw, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def status_filter(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}.")
    return raw


def encode_cursor(status: str | None, part: int, key: dict[str, Any] | None) -> str:
    return cursors.encode({"status": status, "part": part, "key": key})


def _is_key(key: Any, within: _Range) -> bool:
    """A LastEvaluatedKey of `within`'s reads: its key attributes, each as DynamoDB spells its type."""
    if not isinstance(key, dict) or set(key) != within.key_names:
        return False
    tenant = only(key["tenant"], "S")
    if not isinstance(tenant, str):
        return False
    if not 0 < len(tenant) <= 256 or not tenant.isprintable():
        return False
    if within.status is None:
        return True
    status, expiry = key["status"], only(key["refresh_token_expires_epoch"], "N")
    return status == {"S": within.status} and isinstance(expiry, str) and bool(_NUMBER.fullmatch(expiry))


def decode_cursor(cursor: str, status: str | None) -> tuple[int, dict[str, Any] | None]:
    """Where a listing with this status stopped: (range, key); BadRequest for anything it did not hand out."""
    document = cursors.decode(cursor, _BAD_CURSOR)
    if not isinstance(document, dict) or set(document) != {"status", "part", "key"}:
        raise BadRequest(_BAD_CURSOR)
    if document["status"] != status:
        raise BadRequest("cursor belongs to a listing with another status filter.")
    ranges, part, key = _RANGES[status], document["part"], document["key"]
    if type(part) is not int or not 0 <= part < len(ranges):
        raise BadRequest(_BAD_CURSOR)
    # A range starts without a key: only a later range may (the earlier one ended exactly at a page's end).
    if not (key is None and part > 0) and not _is_key(key, ranges[part]):
        raise BadRequest(_BAD_CURSOR)
    return part, key


def _read(
    store: TokenStore, within: _Range, limit: int, start: dict[str, Any] | None, now: float
) -> tuple[list[Pairing], dict[str, Any] | None]:
    if within.status is None:
        return store.scan_pairings(limit, start)
    cutoff = now if within.lapsed_only else None
    tenants, last = store.tenants_page(within.status, limit, start, refresh_expires_before=cutoff)
    return store.get_pairings(tenants), last


def list_tenants(
    store: TokenStore, *, status: str | None, limit: int, cursor: str | None, now: float
) -> dict[str, Any]:
    """One page of pairings' views: `{"tenants": [...], "cursor"?}`."""
    ranges = _RANGES[status]
    part, key = decode_cursor(cursor, status) if cursor is not None else (0, None)
    views: list[dict[str, Any]] = []
    for _ in range(READS_PER_PAGE):
        pairings, key = _read(store, ranges[part], limit - len(views), key, now)
        views += [p.describe(now) for p in pairings if status is None or p.status_at(now) == status]
        if key is None:
            part += 1
            if part == len(ranges):
                return {"tenants": views}
        if len(views) >= limit:
            break
    return {"tenants": views, "cursor": encode_cursor(status, part, key)}
