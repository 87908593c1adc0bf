"""Each AWS call on the refresh path, and Sage's token call, failing in turn: the pairing is alive afterwards
whenever Sage still holds its grant, and no fault ever publishes a wrong PairingExpired.

One case per (call, mode). A tenant is paired, its access tokens are invalidated at Sage, and a folder query
on a cold execution environment meets a 401 and refreshes, with one call failing:
- `error`: the service's own 5xx (InternalServerError, ...), once botocore's retries are spent;
- `throttle`: ProvisionedThroughputExceededException (DynamoDB) or ThrottlingException;
- `timeout`: botocore's ReadTimeoutError before anything was applied;
- `applied_lost`: the call applied, then ReadTimeoutError (the answer never came back).
The faulty query must answer a clear JSON error (or 200), never a 500. Then, with no faults, the rescue
queue's trigger, a sweep and a second query run, and the pairing must be `active` on Sage's current refresh
token with nothing published but what its real changes announce.

The rescue's KMS and SQS calls are only reached when the commit keeps failing: those cases are the double
failure docs/refresh-safety.md names as the one way to lose a pairing; each says so in a CRITICAL log line.

The table `fault | pairings lost | refresh tokens destroyed | events expected | events delivered` is
written to test-artifacts/fault-matrix.json and .md for the closing note; the tests assert its numbers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import Answer, call
from tests.support.aws_faults import (
    ERROR,
    MODES,
    AwsCalls,
    Fault,
    Received,
    watch_token_answers,
)
from tests.support.events import lifecycle_events
from tests.support.keeper import stored, sweep, tune
from tests.support.sage import pair
from x3link import wiring

TENANT, CUSTOMER = "acme", "https://x3.acme.example"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CLEAR_STATUSES = {200, 409, 429, 502, 503, 504}  # 429: Sage asked to slow down (Retry-After)
CRITICAL_LOSS = "could neither be stored nor rescued"
# A commit that keeps failing gives up within a second or two and parks the tokens (or fails to).
QUICK_COMMIT = {
    "connect_seconds": 0.2,
    "token_timeout": 1.0,
    "min_token_timeout": 0.5,
    "commit_seconds": 0.5,
    "store_call_seconds": 0.2,
    "park_seconds": 0.9,  # as in production: one try at worst (2 calls), a second if the first fails fast
    "margin_seconds": 0.2,
}

ALIVE, REPLY_LOST, LOST = "alive", "reply_lost", "lost"

RESULTS: dict[str, dict[str, Any]] = {}


# ---------------------------------------------------------------------- which call fails
def _key(params: dict[str, Any]) -> str:
    return str(params.get("Key", {}).get("tenant", {}).get("S", ""))


def _expression(params: dict[str, Any]) -> str:
    return str(params.get("UpdateExpression", ""))


def is_pairing_read(params: dict[str, Any]) -> bool:
    return _key(params) == TENANT


def is_lease(params: dict[str, Any]) -> bool:
    return _key(params) == TENANT and "lease_owner = :owner" in _expression(params)


def is_commit(params: dict[str, Any]) -> bool:
    return _key(params) == TENANT and "refreshed_at = :now" in _expression(params)


@dataclass(frozen=True)
class Call:
    """One call on the refresh path, as a fault: which call, which of them, and what it needs besides."""

    slug: str
    name: str
    service: str
    operation: str
    matches: Callable[[dict[str, Any]], bool] = lambda _params: True
    nth: int = 1
    # The rescue's calls are made only when the commit keeps failing: that is injected alongside.
    behind_failing_commit: bool = False


AWS_CALLS = [
    # The query reads the pairing and the app's breaker in one request, then the pairing again after the 401.
    Call("read-both", "DynamoDB BatchGetItem (pairing and breaker)", "dynamodb", "BatchGetItem"),
    Call("get-pairing", "DynamoDB GetItem (pairing, after the 401)", "dynamodb", "GetItem", is_pairing_read),
    Call("lease", "DynamoDB UpdateItem (lease)", "dynamodb", "UpdateItem", is_lease),
    Call("commit", "DynamoDB UpdateItem (commit)", "dynamodb", "UpdateItem", is_commit),
    Call("secret", "Secrets Manager GetSecretValue (cold start)", "secretsmanager", "GetSecretValue"),
    Call("rescue-encrypt", "KMS Encrypt (rescue)", "kms", "Encrypt", behind_failing_commit=True),
    Call("rescue-send", "SQS SendMessage (rescue)", "sqs", "SendMessage", behind_failing_commit=True),
]


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    outcome: str  # ALIVE, REPLY_LOST or LOST
    aws: Call | None = None
    mode: str = ""
    sage_fault: dict[str, Any] | None = None
    commit_always_fails: bool = False
    critical: bool = False  # the CRITICAL "could neither be stored nor rescued" line is logged


def _aws_case(aws: Call, mode: str) -> Case:
    if not aws.behind_failing_commit:
        return Case(f"{aws.slug}-{mode}", f"{aws.name}: {mode}", ALIVE, aws, mode)
    # Sealing or sending the rescue fails once after the table refused the tokens: the keeper parks them
    # again while its lease has time for it (both failing for good is test_the_double_failure_...).
    return Case(
        f"{aws.slug}-{mode}-commit-keeps-failing",
        f"{aws.name}: {mode} once, while the commit keeps failing",
        ALIVE,
        aws,
        mode,
        commit_always_fails=True,
    )


CASES = [_aws_case(aws, mode) for aws in AWS_CALLS for mode in MODES] + [
    Case(
        "commit-error-until-deadline",
        "DynamoDB UpdateItem (commit): error on every try until the commit deadline (tokens parked)",
        ALIVE,
        commit_always_fails=True,
    ),
    Case("sage-token-500", "Sage token call: 500", ALIVE, sage_fault={"status": 500}),
    Case("sage-token-429", "Sage token call: 429", ALIVE, sage_fault={"status": 429}),
    Case("sage-token-timeout", "Sage token call: read timeout", ALIVE, sage_fault={"timeout": True}),
    Case(
        "sage-token-drop_after_apply",
        "Sage token call: applied, answer lost (Sage rotated)",
        REPLY_LOST,
        sage_fault={"drop_after_apply": True},
    ),
]


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module", autouse=True)
def fault_table() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    rows = [RESULTS[case.id] for case in CASES if case.id in RESULTS]
    (ARTIFACTS / "fault-matrix.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    lines = [
        "| fault injected | pairings lost | refresh tokens destroyed | events expected | events delivered |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        expected = ", ".join(row["events_expected"]) or "none"
        delivered = ", ".join(row["events_delivered"]) or "none"
        lines.append(
            f"| {row['fault']} | {row['pairings_lost']} | {row['refresh_tokens_destroyed']} | "
            f"{expected} | {delivered} |"
        )
    table = "\n".join(lines) + "\n"
    (ARTIFACTS / "fault-matrix.md").write_text(table, encoding="utf-8")
    print("\n" + table)  # for the closing note (shown with -s)


@pytest.fixture
def aws(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    return AwsCalls.install(monkeypatch)


@pytest.fixture
def received(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Received:
    return watch_token_answers(monkeypatch)


@pytest.fixture
def critical_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING)
    return lambda: [record.getMessage() for record in caplog.records if record.levelno >= logging.CRITICAL]


def assert_clear(answer: Answer) -> None:
    """One of the contract's answers, and an error in its JSON shape: never an unexplained 500."""
    assert answer.status in CLEAR_STATUSES, (answer.status, answer.body)
    if answer.status != 200:
        body = answer.json
        assert set(body) == {"error", "message"}, body
        assert isinstance(body["error"], str) and isinstance(body["message"], str), body


def paired_and_due(sage: Emulator, stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """The tenant paired (its PairingCompleted already read), due at every sweep, its access token dead."""
    read_events = lifecycle_events(stack)
    sage.configure(refresh_lifetime=3 * 86400)  # within the 7-day keep-alive window: every sweep refreshes
    pair(sage, TENANT, CUSTOMER)
    assert [e["detail-type"] for e in read_events()] == ["PairingCompleted"]
    sage.invalidate_access_tokens()  # the query meets a 401 and refreshes
    return read_events


def cold_start(**timing: Any) -> None:
    """A fresh execution environment: no cached credentials, breaker view or clients."""
    wiring.reset()
    if timing:
        tune(**timing)


def arm(calls: AwsCalls, sage: Emulator, case: Case) -> None:
    if case.commit_always_fails:
        calls.fail(Fault("dynamodb", "UpdateItem", ERROR, is_commit, times=None))
    if case.aws is not None:
        aws = case.aws
        calls.fail(Fault(aws.service, aws.operation, case.mode, aws.matches, nth=aws.nth))
    if case.sage_fault is not None:
        sage.fail_next("refresh", **case.sage_fault)


def rescue_trigger(stack: Stack) -> Triggers:
    return Triggers(stack, types=("SQS",))


# ---------------------------------------------------------------------- the matrix
@pytest.mark.parametrize(
    "case",
    [
        # A commit that keeps failing is given up at its deadline: timed, so alone on the machine.
        pytest.param(case, id=case.id, marks=[pytest.mark.serial] if case.commit_always_fails else [])
        for case in CASES
    ],
)
def test_a_fault_on_the_refresh_path_loses_no_pairing_whose_grant_sage_holds(
    case: Case,
    sage: Emulator,
    stack: Stack,
    aws: AwsCalls,
    received: Received,
    critical_lines: Callable[[], list[str]],
) -> None:
    read_events = paired_and_due(sage, stack)
    before = stored(TENANT)
    quick = case.commit_always_fails or bool((case.sage_fault or {}).get("timeout"))
    cold_start(**(QUICK_COMMIT if quick else {}))
    if case.sage_fault and case.sage_fault.get("timeout"):
        sage.configure(timeout_sleep=3)
    arm(aws, sage, case)

    faulty = call("GET", f"/tenants/{TENANT}/folders")

    on_path = case.aws is None or sum(fault.injected for fault in aws.faults) >= 1
    aws.heal()
    sage.clear_faults()
    sage.configure(timeout_sleep=30)
    critical = critical_lines()
    # Recovery, with no faults: the rescue queue's trigger, then (unless the pairing is known lost) a sweep
    # and a second query. Everything is measured first and asserted at the end, so the table is complete.
    parked = sum(len(delivery.records) for delivery in rescue_trigger(stack).pump())
    summary: dict[str, Any] = {}
    second: Answer | None = None
    if case.outcome != LOST:
        summary = sweep()
        second = call("GET", f"/tenants/{TENANT}/folders")
    after = stored(TENANT)
    delivered = [event["detail-type"] for event in read_events()]
    expected = ["PairingSuspended"] if case.outcome == REPLY_LOST else []
    current = sage.current_refresh_token(CUSTOMER)
    lost = int(after.status == "expired" or after.refresh_token != current)
    # Refresh tokens Sage still honours that reached the bundle and that it no longer holds, plus a stored
    # one a transition removed. A reply Sage applied and never sent back is lost in transit, not dropped.
    destroyed = int(after.refresh_token is None) + int(
        current in received.refresh_tokens and current != after.refresh_token
    )
    RESULTS[case.id] = {
        "fault": case.label,
        "answer": f"{faulty.status} {faulty.json.get('error', '')}".strip(),
        "second_answer": second.status if second else None,
        "pairings_lost": lost,
        "refresh_tokens_destroyed": destroyed,
        "events_expected": expected,
        "events_delivered": delivered,
        "critical_logged": any(CRITICAL_LOSS in line for line in critical),
    }

    assert on_path, f"{case.label}: the faulty call was never made, so the case tests nothing"
    assert_clear(faulty)
    if case.critical:
        assert faulty.status == 502, faulty.body
        assert any(CRITICAL_LOSS in line for line in critical), critical
    else:
        assert not any(CRITICAL_LOSS in line for line in critical), critical
    assert delivered == expected
    assert "PairingExpired" not in delivered
    assert lost == (0 if case.outcome == ALIVE else 1), (after.status, after.reason)
    assert destroyed == (1 if case.outcome == LOST else 0)
    if case.outcome == LOST:
        assert parked == 0
        assert after.status == "active"  # nothing judged: the loss is told by the log line, not by expiry
        assert after.refresh_token == before.refresh_token  # the old token stays: nothing removed it
        return
    assert summary["failed"] == 0, summary
    assert second is not None
    if case.outcome == ALIVE:
        assert (summary["refreshed"], summary["suspended"], summary["expired"]) == (1, 0, 0), summary
        assert second.status == 200, second.body
        assert after.status == "active", (after.status, after.reason)
        assert after.refresh_token == current
    else:  # Sage rotated and its answer was lost: unreachable, so suspended as that loss, never expired
        assert (summary["suspended"], summary["expired"]) == (1, 0), summary
        assert (second.status, second.json["error"]) == (409, "pairing_suspended")
        assert (after.status, after.reason) == ("suspended", "reply_lost")
        assert after.refresh_token == before.refresh_token


@pytest.mark.serial  # asserts a deadline
def test_a_commit_and_a_rescue_that_both_fail_answer_502_and_log_the_loss_as_critical(
    sage: Emulator,
    stack: Stack,
    aws: AwsCalls,
    received: Received,
    caplog: pytest.LogCaptureFixture,
) -> None:
    read_events = paired_and_due(sage, stack)
    caplog.set_level(logging.WARNING)
    cold_start(**QUICK_COMMIT)
    aws.fail(Fault("dynamodb", "UpdateItem", ERROR, is_commit, times=None))
    aws.fail(Fault("sqs", "SendMessage", ERROR, times=None))
    started = time.monotonic()

    answer = call("GET", f"/tenants/{TENANT}/folders")

    assert (answer.status, answer.json["error"]) == (502, "upstream_error")
    assert "could not be stored" in answer.json["message"]
    assert time.monotonic() - started < 10  # the commit deadline, not botocore's worst case, bounds it
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.getMessage() for r in critical if CRITICAL_LOSS in r.getMessage()], critical
    assert all(getattr(r, "tenant", TENANT) == TENANT for r in critical)
    # The rotated token reached the bundle and is now nowhere: this is the one way a pairing is lost.
    current = sage.current_refresh_token(CUSTOMER)
    assert current in received.refresh_tokens
    assert stored(TENANT).refresh_token != current
    assert stored(TENANT).status == "active"  # and nothing pretends the customer ended it
    assert [event["detail-type"] for event in read_events()] == []
