"""What a refused refresh means, decided on evidence across pairings: a pure function, no I/O.

Sage does not document how it answers a wrong client secret or a dead grant, and a proxy or WAF in front of
it answers in shapes of its own (`403 {"message": "Forbidden"}`, an HTML page). So no rule keyed on a status
or a message can tell "Sage refuses the app" from "Sage refuses this pairing's grant". Evidence can, and it
is kept per gateway (the endpoint a pairing's calls go to) and per client credentials version:

- refusals of two or more distinct pairings on one gateway with no success in between: the app, or what
  stands in front of Sage, is refused. The gateway's breaker opens; no pairing changes status;
- a success on that gateway, for another pairing, after this pairing was refused: its grant is refused;
- neither yet: the refusal is held. The pairing stays `active`, the caller is told to try again, and the
  refusal is recorded so that the next one on the gateway can be judged against it.

Only Sage's own documented messages are taken at their word: one naming the app ("Invalid grant type", a
disabled app, an unknown client) opens the breaker at once, and "The request has expired." names the grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalKind(StrEnum):
    """What a refusal's body says, before any evidence."""

    APP_NAMED = "app_named"  # one of Sage's documented messages about the app or the request it sent
    GRANT_DEAD = "grant_dead"  # Sage's documented "The request has expired.": the grant is gone
    UNCLEAR = "unclear"  # Sage's JSON shape, but nothing documented for a refresh (a 401 "Unauthorised")
    FRONT = "front"  # not Sage's vocabulary: an HTML page, no message, `{"message": "Forbidden"}`


class Verdict(StrEnum):
    APP_REFUSED = "app_refused"  # open (or keep open) the gateway's breaker; no pairing changes
    HOLD = "hold"  # no evidence yet: record the refusal, change nothing, answer "try again"
    SUSPEND = "suspend"  # the grant is refused for now: keep it, retry with backoff
    EXPIRE = "expire"  # the customer ended it: the pairing must be renewed


class Reason(StrEnum):
    SAGE_NAMED_THE_APP = "sage_named_the_app"
    BREAKER_OPEN = "breaker_open"
    REFUSED_ACROSS_PAIRINGS = "refused_across_pairings"
    NO_EVIDENCE_YET = "no_evidence_yet"
    REPLY_LOST = "reply_lost"
    GRANT_REFUSED = "grant_refused"
    GRANT_DEAD = "grant_dead"
    GRACE_PERIOD_OVER = "grace_period_over"
    REFRESH_TOKEN_EXPIRED = "refresh_token_expired"  # noqa: S105  # nosec B105  # a reason, not a secret


# Sage's documented token-endpoint messages (lower case, as they start).
_APP_MESSAGES = (
    "missing required request parameters",
    "invalid grant type",
    "the application registered on sage business cloud is disabled",
    "could not associate the requested url",
)
_GRANT_DEAD_MESSAGE = "the request has expired"
_OTHER_SAGE_MESSAGES = (
    "unauthorised",
    "unauthorized",
    "the pairing request has not been accepted",
    "pairing request not found",
)


def classify(status: int, message: str, *, from_sage: bool) -> RefusalKind:
    """What a refused refresh's answer says by itself. `from_sage`: the body was `{"message": "..."}` JSON."""
    text = message.strip().lower()
    if not from_sage:
        return RefusalKind.FRONT
    if text.startswith(_APP_MESSAGES) or status == 404:
        return RefusalKind.APP_NAMED
    if status == 403 and text.startswith(_GRANT_DEAD_MESSAGE):
        return RefusalKind.GRANT_DEAD
    if status not in (400, 401, 403):
        return RefusalKind.APP_NAMED  # 405, 413, 415...: about the request the app sent, not the grant
    if text.startswith(_OTHER_SAGE_MESSAGES):
        return RefusalKind.UNCLEAR
    return RefusalKind.FRONT


@dataclass(frozen=True)
class GatewayEvidence:
    """What one gateway has shown with one credentials version (its health record, as last read)."""

    breaker_open: bool = False
    success_at: float | None = None  # the latest successful token call with these credentials
    success_by: str | None = None  # whose pairing it was
    refusal_at: float | None = None  # the latest held refusal with these credentials
    refusal_by: str | None = None
    opened_at: float | None = None  # when the breaker last opened (any credentials): app trouble

    def success_by_other_after(self, tenant: str, since: float) -> bool:
        return self.success_at is not None and self.success_at > since and self.success_by != tenant

    def refused_by_other_since_success(self, tenant: str) -> bool:
        return (
            self.refusal_at is not None
            and self.refusal_by not in (None, tenant)
            and self.refusal_at > (self.success_at or float("-inf"))
        )

    def healthy_throughout(self, tenant: str, since: float) -> bool:
        """Other pairings refreshed after `since`, and the breaker has not opened since."""
        return self.success_by_other_after(tenant, since) and (self.opened_at or float("-inf")) < since


@dataclass(frozen=True)
class RefusedRefresh:
    """One refused refresh of one pairing, with what the pairing's record says about it."""

    tenant: str
    kind: RefusalKind
    at: float
    suspended: bool  # the pairing was already suspended
    suspended_at: float | None = None
    held_since: float | None = None  # its first refusal still held (none was judged since)
    refresh_token_expires_at: float | None = None
    reply_maybe_lost: bool = False  # a refresh was sent and its answer never stored: Sage may have rotated


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: Reason


def judge(
    refused: RefusedRefresh,
    evidence: GatewayEvidence,
    *,
    grace_seconds: float,
    hold_seconds: float,
    health_window_seconds: float,
) -> Judgement:
    """What `refused` means, given its gateway's evidence for the same credentials version."""
    kind, tenant, now = refused.kind, refused.tenant, refused.at
    if kind == RefusalKind.APP_NAMED:
        return Judgement(Verdict.APP_REFUSED, Reason.SAGE_NAMED_THE_APP)
    if evidence.breaker_open:
        return Judgement(Verdict.APP_REFUSED, Reason.BREAKER_OPEN)
    if refused.reply_maybe_lost:
        return Judgement(Verdict.SUSPEND, Reason.REPLY_LOST)
    first_refused = refused.held_since if refused.held_since is not None else now
    others_ok = evidence.success_by_other_after(tenant, first_refused)
    if not others_ok and kind != RefusalKind.GRANT_DEAD and evidence.refused_by_other_since_success(tenant):
        return Judgement(Verdict.APP_REFUSED, Reason.REFUSED_ACROSS_PAIRINGS)
    if others_ok or refused.suspended or kind == RefusalKind.GRANT_DEAD:
        if (refused.refresh_token_expires_at or now + 1) <= now:
            return Judgement(Verdict.EXPIRE, Reason.REFRESH_TOKEN_EXPIRED)
        suspended_at = refused.suspended_at
        if (
            refused.suspended
            and suspended_at is not None
            and now - suspended_at >= grace_seconds
            and evidence.healthy_throughout(tenant, suspended_at)
        ):
            return Judgement(Verdict.EXPIRE, Reason.GRACE_PERIOD_OVER)
        # Sage's own word that the grant is dead, while its gateway just accepted these credentials (its own
        # code exchange counts: the credentials are not what is refused).
        if (
            kind == RefusalKind.GRANT_DEAD
            and (evidence.success_at or float("-inf")) >= now - health_window_seconds
        ):
            return Judgement(Verdict.EXPIRE, Reason.GRANT_DEAD)
        return Judgement(Verdict.SUSPEND, Reason.GRANT_REFUSED)
    if now - (refused.held_since if refused.held_since is not None else now) >= hold_seconds:
        # Alone on its gateway, or no other pairing refreshed meanwhile: suspension keeps the grant, and
        # a success, a new secret or a breaker closing undoes it.
        return Judgement(Verdict.SUSPEND, Reason.GRANT_REFUSED)
    return Judgement(Verdict.HOLD, Reason.NO_EVIDENCE_YET)


def retry_due(
    *,
    now: float,
    next_attempt_at: float | None,
    suspended_version: str | None,
    credentials_version: str,
    breaker_closed_since_refusal: bool,
) -> bool:
    """Whether a suspended pairing may be tried now: its backoff is over, the secret has changed since Sage
    refused it (the refusal may have been the old secret's), or its gateway's breaker closed after opening
    around its refusal (the refusal may have been the same trouble)."""
    if (next_attempt_at or 0) <= now:
        return True
    if suspended_version is not None and suspended_version != credentials_version:
        return True
    return breaker_closed_since_refusal
