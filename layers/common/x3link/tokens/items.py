"""A pairing's item in the table and the expressions that write it: marshalling, fences, projections.

Pure (no AWS call): the table's adapters (x3link/tokens/records.py, x3link/tokens/store.py) read items
into Pairings here and build their conditions from here, so the shape of a row has one home.
"""

from __future__ import annotations

# Any: a pairing's DynamoDB item, whose attributes are of mixed types.
from typing import Any, TypedDict

from x3link.aws.dynamo_attrs import b_or_none, n, n_or_none, s, s_or_none
from x3link.sage.oauth import X3Identity
from x3link.tokens.model import Lease, Pairing, Refusal


def lease_taken(old: dict[str, Any], owner: str) -> Lease:
    """A lease just taken, from the item as it was before the write (ALL_OLD)."""
    holder = s_or_none(old, "lease_owner")
    before = pairing_from_item(old) if is_pairing_item(old) else None
    return Lease(taken=True, lapsed=holder is not None and holder != owner, before=before)


def pairing_from_item(item: dict[str, Any]) -> Pairing:
    return Pairing(
        tenant=s(item, "tenant"),
        customer=s(item, "customer"),
        endpoint=s(item, "endpoint"),
        scope=s_or_none(item, "scope") or "",
        status=s(item, "status"),
        version=int(n(item, "version")),
        sealed_tokens=b_or_none(item, "sealed_tokens"),
        access_token_expires_at=n_or_none(item, "access_token_expires_epoch"),
        refresh_token_expires_at=n_or_none(item, "refresh_token_expires_epoch"),
        paired_at=n_or_none(item, "paired_at"),
        refreshed_at=n_or_none(item, "refreshed_at"),
        lease_owner=s_or_none(item, "lease_owner"),
        lease_until=n_or_none(item, "lease_until"),
        refresh_failed_at=n_or_none(item, "refresh_failed_at"),
        refresh_timed_out_at=n_or_none(item, "refresh_timed_out_at"),
        generation=s_or_none(item, "generation") or "",
        reason=s_or_none(item, "reason"),
        suspended_at=n_or_none(item, "suspended_at"),
        expired_at=n_or_none(item, "expired_at"),
        next_attempt_at=n_or_none(item, "next_attempt_at"),
        last_refusal=_refusal(item),
        refusal_count=int(n_or_none(item, "refusal_count") or 0),
        x3_identity=_identity(item),
        held_at=n_or_none(item, "held_at"),
        suspended_version=s_or_none(item, "suspended_version"),
    )


def _identity(item: dict[str, Any]) -> X3Identity | None:
    issuer, subject = s_or_none(item, "x3_issuer"), s_or_none(item, "x3_subject")
    return X3Identity(issuer=issuer, subject=subject) if issuer and subject else None


def _refusal(item: dict[str, Any]) -> Refusal | None:
    at, status = n_or_none(item, "last_refusal_at"), n_or_none(item, "last_refusal_status")
    if at is None or status is None:
        return None
    return Refusal(at=at, status=int(status), message=s_or_none(item, "last_refusal_message") or "")


SET_TOKENS = (
    "sealed_tokens = :sealed, access_token_expires_epoch = :access_exp, "
    "refresh_token_expires_epoch = :refresh_exp"
)
NAMES = {"#status": "status", "#version": "version"}
# Everything a status other than `active` carries, dropped when tokens are stored again.
TROUBLE = (
    "lease_owner, lease_until, refresh_failed_at, refresh_timed_out_at, suspended_at, expired_at, "
    "next_attempt_at, last_refusal_at, last_refusal_status, last_refusal_message, refusal_count, held_at, "
    "suspended_version"
)


def version_fence(generation: str, version: int) -> tuple[str, dict[str, dict[str, str]]]:
    """The condition that pins a write to one pairing (its generation) at one token version."""
    values = {":version": {"N": str(version)}}
    if not generation:
        return "attribute_not_exists(generation) AND #version = :version", values
    return "generation = :generation AND #version = :version", {**values, ":generation": {"S": generation}}


def refusal_values(refusal: Refusal) -> dict[str, dict[str, str]]:
    return {
        ":refused_at": {"N": repr(refusal.at)},
        ":refused_status": {"N": str(refusal.status)},
        ":refused_message": {"S": refusal.message or "no message"},
    }


SET_REFUSAL = (
    "last_refusal_at = :refused_at, last_refusal_status = :refused_status, "
    "last_refusal_message = :refused_message"
)

# What a pairing's public view (Pairing.describe) reads: a listing never has a token leave the table.
_METADATA = (
    "tenant",
    "customer",
    "endpoint",
    "scope",
    "status",
    "version",
    "access_token_expires_epoch",
    "refresh_token_expires_epoch",
    "paired_at",
    "refreshed_at",
    "next_attempt_at",
    "last_refusal_at",
    "last_refusal_status",
    "last_refusal_message",
)
_METADATA_NAMES = {f"#m{number}": name for number, name in enumerate(_METADATA)}


class Projection(TypedDict):
    """A read's ProjectionExpression and the names it uses, spread into GetItem, Scan or BatchGetItem."""

    ProjectionExpression: str
    ExpressionAttributeNames: dict[str, str]


METADATA_READ: Projection = {
    "ProjectionExpression": ", ".join(_METADATA_NAMES),
    "ExpressionAttributeNames": _METADATA_NAMES,
}
# What a keep-alive run reads of the pairings it queues: only the sealed blob (its header holds the data key).
SEALED_READ: Projection = {
    "ProjectionExpression": "#tenant, #sealed",
    "ExpressionAttributeNames": {"#tenant": "tenant", "#sealed": "sealed_tokens"},
}


def is_pairing_item(item: dict[str, Any]) -> bool:
    """A pairing's item, not another item the table keeps (the app breaker's `~app`)."""
    return all(name in item for name in ("tenant", "customer", "endpoint", "status", "version"))
