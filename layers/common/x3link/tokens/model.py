"""The pairing as the rest of the bundle sees it: its record, its statuses, a refusal, a lease's answer.

Plain values with no AWS in them, so a module that only reads a pairing (a route, a listing, the data
calls) never imports the table's adapter (store.py) to get the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

# Any: the JSON view GET /tenants answers.
from typing import Any

from x3link.sage.oauth import X3Identity, folders_from_scope


class Status(StrEnum):
    """A pairing's stored status (`expired` also when its refresh token's own expiry has passed)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"


ACTIVE, SUSPENDED, EXPIRED = Status.ACTIVE, Status.SUSPENDED, Status.EXPIRED


def iso(epoch: float | None) -> str | None:
    """An epoch as the API and the events show it: UTC, whole seconds, with a `Z`."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Refusal:
    """What Sage said when it refused a pairing's refresh grant (the message already scrubbed)."""

    at: float
    status: int
    message: str


@dataclass(frozen=True)
class Lease:
    """The answer to a lease write: taken or not, and whether it found another attempt's lease lapsed."""

    taken: bool
    lapsed: bool = False
    # The pairing as it was just before the lease was written: what happened since it was read (another
    # attempt's failure, a token call whose answer was lost) is seen here, not in the older read.
    before: Pairing | None = None


@dataclass(frozen=True)
class PairingRef:
    """A pairing as the customer index shows it (eventually consistent): never its tokens."""

    tenant: str
    customer: str
    endpoint: str
    status: str


@dataclass(frozen=True)
class Pairing:
    tenant: str
    customer: str
    endpoint: str
    scope: str
    status: str
    version: int
    # Random per pairing, so fencing never repeats after a delete and a re-pair ("" on items from before).
    generation: str = ""
    # None until opened (`TokenStore.open`) when the item holds them sealed.
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token_expires_at: float | None = None
    refresh_token_expires_at: float | None = None
    paired_at: float | None = None
    refreshed_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    refresh_failed_at: float | None = None
    refresh_timed_out_at: float | None = None
    reason: str | None = None
    suspended_at: float | None = None
    expired_at: float | None = None
    next_attempt_at: float | None = None
    last_refusal: Refusal | None = None
    refusal_count: int = 0
    # The tokens as the item holds them, sealed for this pairing (None: the item holds none it may use).
    sealed_tokens: bytes | None = field(default=None, repr=False)
    # Which X3 the grant reaches (None on pairings from before it was recorded).
    x3_identity: X3Identity | None = None
    # Its first refusal still held for want of evidence (x3link/refresh/refusal_policy.py), None once judged.
    held_at: float | None = None
    # The client credentials version Sage refused it under: a new secret makes it due again at once.
    suspended_version: str | None = None

    def binding(self) -> dict[str, str]:
        """What its sealed tokens are bound to: a blob sealed for another pairing of the tenant, another
        gateway or another X3 does not open as this one's."""
        return seal_binding(self.generation, self.endpoint, self.x3_identity)

    @property
    def folders(self) -> list[str]:
        return folders_from_scope(self.scope)

    def status_at(self, now: float) -> str:
        if self.status == ACTIVE and (
            not self.refresh_token_expires_at or self.refresh_token_expires_at <= now
        ):
            return EXPIRED
        return self.status

    def leased_at(self, now: float) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def describe(self, now: float) -> dict[str, Any]:
        """The public view of a pairing: everything but token material."""
        status = self.status_at(now)
        view: dict[str, Any] = {
            "tenant": self.tenant,
            "customer": self.customer,
            "status": status,
            "scope": self.scope,
            "folders": self.folders,
            "endpoint": self.endpoint,
            "access_token_expires_at": iso(self.access_token_expires_at),
            "refresh_token_expires_at": iso(self.refresh_token_expires_at),
            "paired_at": iso(self.paired_at),
            "refreshed_at": iso(self.refreshed_at),
        }
        if status != ACTIVE:
            refusal = self.last_refusal
            view["last_refusal"] = (
                {"at": iso(refusal.at), "status": refusal.status, "message": refusal.message}
                if refusal
                else None
            )
            view["next_attempt_at"] = iso(self.next_attempt_at) if status == SUSPENDED else None
        return view


def seal_binding(generation: str, endpoint: str, identity: X3Identity | None) -> dict[str, str]:
    return {
        "generation": generation,
        "endpoint": endpoint,
        "x3_issuer": identity.issuer if identity else "",
        "x3_subject": identity.subject if identity else "",
    }
