"""The refusal policy, row by row: what a refused refresh means on the evidence of its gateway.

Pure: no AWS, no Sage. Each row names the situation a user would meet and the verdict the bundle owes it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from x3link.refresh.refusal_policy import (
    GatewayEvidence,
    Judgement,
    Reason,
    RefusalKind,
    RefusedRefresh,
    Verdict,
    classify,
    judge,
    retry_due,
)

NOW = 1_000_000.0
GRACE = 3 * 86400.0
HOLD = 3600.0
WINDOW = 900.0
ME, OTHER, THIRD = "acme", "globex", "initech"

REFUSED = RefusedRefresh(tenant=ME, kind=RefusalKind.UNCLEAR, at=NOW, suspended=False)
QUIET = GatewayEvidence()


def verdict(refused: RefusedRefresh, evidence: GatewayEvidence) -> Judgement:
    return judge(refused, evidence, grace_seconds=GRACE, hold_seconds=HOLD, health_window_seconds=WINDOW)


@pytest.mark.parametrize(
    ("status", "message", "from_sage", "kind"),
    [
        (400, "Missing required request parameters", True, RefusalKind.APP_NAMED),
        (400, "Invalid grant type", True, RefusalKind.APP_NAMED),
        (403, "The application registered on Sage Business Cloud is disabled", True, RefusalKind.APP_NAMED),
        (
            404,
            "Could not associate the requested url with an customer application",
            True,
            RefusalKind.APP_NAMED,
        ),
        (404, "no message", True, RefusalKind.APP_NAMED),  # an unknown client id
        (415, "Unsupported Media Type", True, RefusalKind.APP_NAMED),  # about the request the app sent
        (403, "The request has expired.", True, RefusalKind.GRANT_DEAD),
        (401, "Unauthorised", True, RefusalKind.UNCLEAR),  # a wrong secret and a dead grant alike
        (403, "Pairing request not found", True, RefusalKind.UNCLEAR),
        (403, "Forbidden", True, RefusalKind.FRONT),  # API Gateway's and many WAFs' own JSON
        (401, "Invalid client credentials", True, RefusalKind.FRONT),  # undocumented: nobody's word
        (403, "no message", False, RefusalKind.FRONT),  # an HTML page from a proxy
        (400, "no message", False, RefusalKind.FRONT),
    ],
)
def test_a_refusal_is_classified_by_what_sage_documents_and_nothing_else(
    status: int, message: str, from_sage: bool, kind: RefusalKind
) -> None:
    assert classify(status, message, from_sage=from_sage) == kind


ROWS: list[tuple[str, RefusedRefresh, GatewayEvidence, Verdict, Reason]] = [
    (
        "Sage names the app: the breaker opens at once, no pairing changes",
        replace(REFUSED, kind=RefusalKind.APP_NAMED),
        GatewayEvidence(success_at=NOW - 1, success_by=OTHER),
        Verdict.APP_REFUSED,
        Reason.SAGE_NAMED_THE_APP,
    ),
    (
        "the gateway's breaker is open (a probe refused): still the app",
        REFUSED,
        GatewayEvidence(breaker_open=True, success_at=NOW - 10, success_by=OTHER),
        Verdict.APP_REFUSED,
        Reason.BREAKER_OPEN,
    ),
    (
        "a first refusal, the gateway healthy minutes before (a secret just regenerated at Sage): held",
        REFUSED,
        GatewayEvidence(success_at=NOW - 120, success_by=OTHER),
        Verdict.HOLD,
        Reason.NO_EVIDENCE_YET,
    ),
    (
        "a first refusal on a quiet gateway: held",
        REFUSED,
        QUIET,
        Verdict.HOLD,
        Reason.NO_EVIDENCE_YET,
    ),
    (
        "another pairing refused since the last success: the app (or a proxy) is refused",
        REFUSED,
        GatewayEvidence(success_at=NOW - 120, success_by=OTHER, refusal_at=NOW - 5, refusal_by=THIRD),
        Verdict.APP_REFUSED,
        Reason.REFUSED_ACROSS_PAIRINGS,
    ),
    (
        "a proxy's JSON 403 for the second pairing in a row: the app, not the grant",
        replace(REFUSED, kind=RefusalKind.FRONT),
        GatewayEvidence(refusal_at=NOW - 1, refusal_by=OTHER),
        Verdict.APP_REFUSED,
        Reason.REFUSED_ACROSS_PAIRINGS,
    ),
    (
        "only its own refusal since the last success: not two pairings, still held",
        replace(REFUSED, held_since=NOW - 60),
        GatewayEvidence(success_at=NOW - 120, success_by=OTHER, refusal_at=NOW - 60, refusal_by=ME),
        Verdict.HOLD,
        Reason.NO_EVIDENCE_YET,
    ),
    (
        "another pairing succeeded after its first refusal: the grant is refused",
        replace(REFUSED, held_since=NOW - 60),
        GatewayEvidence(success_at=NOW - 30, success_by=OTHER, refusal_at=NOW - 60, refusal_by=ME),
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "its own success after its refusal proves nothing about the others",
        replace(REFUSED, held_since=NOW - 60),
        GatewayEvidence(success_at=NOW - 30, success_by=ME),
        Verdict.HOLD,
        Reason.NO_EVIDENCE_YET,
    ),
    (
        "a success after another pairing's refusal outweighs that refusal: the grant is refused",
        replace(REFUSED, held_since=NOW - 60),
        GatewayEvidence(success_at=NOW - 30, success_by=OTHER, refusal_at=NOW - 40, refusal_by=THIRD),
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "Sage says the request has expired just after its own code exchange: ended",
        replace(REFUSED, kind=RefusalKind.GRANT_DEAD),
        GatewayEvidence(success_at=NOW - 60, success_by=ME),
        Verdict.EXPIRE,
        Reason.GRANT_DEAD,
    ),
    (
        "held for the whole hold with no evidence either way (alone on its gateway): suspended",
        replace(REFUSED, held_since=NOW - HOLD),
        QUIET,
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "Sage says the request has expired while the gateway accepts these credentials: ended",
        replace(REFUSED, kind=RefusalKind.GRANT_DEAD),
        GatewayEvidence(success_at=NOW - 60, success_by=OTHER),
        Verdict.EXPIRE,
        Reason.GRANT_DEAD,
    ),
    (
        "Sage says the request has expired on a quiet gateway: suspended, not expired",
        replace(REFUSED, kind=RefusalKind.GRANT_DEAD),
        QUIET,
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "a refresh whose answer was lost, then a refusal: the token was rotated unseen",
        replace(REFUSED, reply_maybe_lost=True),
        QUIET,
        Verdict.SUSPEND,
        Reason.REPLY_LOST,
    ),
    (
        "a reply lost while the gateway's breaker is open: still the app's trouble first",
        replace(REFUSED, reply_maybe_lost=True),
        GatewayEvidence(breaker_open=True),
        Verdict.APP_REFUSED,
        Reason.BREAKER_OPEN,
    ),
    (
        "suspended, refused again within the grace period: stays suspended",
        replace(REFUSED, suspended=True, suspended_at=NOW - 3600),
        GatewayEvidence(success_at=NOW - 60, success_by=OTHER),
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "suspended past the grace period while others kept refreshing: expired",
        replace(REFUSED, suspended=True, suspended_at=NOW - GRACE),
        GatewayEvidence(success_at=NOW - 60, success_by=OTHER, opened_at=NOW - GRACE - 10),
        Verdict.EXPIRE,
        Reason.GRACE_PERIOD_OVER,
    ),
    (
        "suspended past the grace period, but the gateway's breaker opened meanwhile: not expired",
        replace(REFUSED, suspended=True, suspended_at=NOW - GRACE),
        GatewayEvidence(success_at=NOW - 60, success_by=OTHER, opened_at=NOW - 86400),
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "suspended past the grace period with no other pairing refreshing since: not expired",
        replace(REFUSED, suspended=True, suspended_at=NOW - GRACE),
        GatewayEvidence(success_at=NOW - GRACE - 60, success_by=OTHER),
        Verdict.SUSPEND,
        Reason.GRANT_REFUSED,
    ),
    (
        "suspended, and other pairings refused since the last success: the app, the pairing untouched",
        replace(REFUSED, suspended=True, suspended_at=NOW - 3600),
        GatewayEvidence(success_at=NOW - 120, success_by=OTHER, refusal_at=NOW - 5, refusal_by=THIRD),
        Verdict.APP_REFUSED,
        Reason.REFUSED_ACROSS_PAIRINGS,
    ),
    (
        "a refused grant whose refresh token has itself expired: expired",
        replace(REFUSED, held_since=NOW - 60, refresh_token_expires_at=NOW - 1),
        GatewayEvidence(success_at=NOW - 30, success_by=OTHER),
        Verdict.EXPIRE,
        Reason.REFRESH_TOKEN_EXPIRED,
    ),
]


@pytest.mark.parametrize(
    ("refused", "evidence", "expected", "reason"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_the_verdict_on_every_row(
    refused: RefusedRefresh, evidence: GatewayEvidence, expected: Verdict, reason: Reason
) -> None:
    assert verdict(refused, evidence) == Judgement(expected, reason)


def test_every_verdict_and_reason_has_a_row() -> None:
    assert {row[3] for row in ROWS} == set(Verdict)
    assert {row[4] for row in ROWS} == set(Reason)


@pytest.mark.parametrize(
    ("situation", "kwargs", "due"),
    [
        ("backoff over", {"next_attempt_at": NOW}, True),
        ("backoff running", {}, False),
        (
            "the secret changed since Sage refused it",
            {"suspended_version": "v1", "credentials_version": "v2"},
            True,
        ),
        ("the same secret", {"suspended_version": "v2", "credentials_version": "v2"}, False),
        ("suspended before versions were recorded", {"suspended_version": None}, False),
        ("its gateway's breaker closed after opening around its refusal", {"closed": True}, True),
    ],
)
def test_a_suspended_pairing_is_retried_at_once_when_the_reason_may_be_gone(
    situation: str, kwargs: dict[str, object], due: bool
) -> None:
    arguments: dict[str, object] = {
        "now": NOW,
        "next_attempt_at": NOW + 600,
        "suspended_version": "v1",
        "credentials_version": "v1",
        "breaker_closed_since_refusal": kwargs.pop("closed", False),
        **kwargs,
    }
    assert retry_due(**arguments) is due, situation  # type: ignore[arg-type]
