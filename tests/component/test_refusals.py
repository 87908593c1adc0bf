"""A pairing dies only when its customer ends it: refusals about the app open the circuit breaker and touch
no pairing; a refused grant is suspended, kept and retried, and expires only past the grace period.

Sage X3 is the emulator over loopback; DynamoDB, SQS, KMS, Secrets Manager and EventBridge are moto, and
the lifecycle events are read from the bus after the table's stream was delivered to its function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call
from tests.support.events import lifecycle_events
from tests.support.keeper import pair_many, put_credentials, stored, sweep, tune
from tests.support.sage import CLIENT_ID, pair
from x3link import wiring

PAIRINGS = 20  # enough that a refusal per due pairing (4 x 20) is told from a probe a second
PROXY_PAGE = "<html><body><h1>403 Forbidden</h1><p>Request blocked by the firewall.</p></body></html>"


def breaker_state() -> str:
    return str(wiring.app_breaker().view(fresh=True).state)


def detail_types(events: list[dict[str, Any]]) -> list[str]:
    return [event["detail-type"] for event in events]


def wrong_secret(sage: Emulator, stack: Stack) -> Callable[[], None]:
    put_credentials(stack, client_secret="a-typo-during-rotation")
    return lambda: put_credentials(stack)


def unknown_client(sage: Emulator, stack: Stack) -> Callable[[], None]:
    put_credentials(stack, client_id="an-app-sage-never-registered")
    return lambda: put_credentials(stack)


def proxy_page(sage: Emulator, stack: Stack) -> Callable[[], None]:
    sage.fail_next("refresh", status=403, html=PROXY_PAGE, count=100_000)
    return sage.clear_faults


@pytest.mark.parametrize("break_the_app", [wrong_secret, unknown_client, proxy_page])
def test_a_day_of_refusals_about_the_app_loses_no_pairing(
    sage: Emulator, stack: Stack, break_the_app: Callable[[Emulator, Stack], Callable[[], None]]
) -> None:
    read_events = lifecycle_events(stack)
    sage.configure(refresh_lifetime=3 * 86400)  # every pairing is due at every sweep
    pairs = pair_many(sage, PAIRINGS)
    read_events()
    tune(credentials_recheck_seconds=0)
    # A probe per look: a run looks at held pairings twice (the second look 1 s later, its spread here),
    # and the day's four runs are seconds apart here.
    wiring.app_breaker().probe_interval = 1.0
    refresh_tokens = {tenant: stored(tenant).refresh_token for tenant in pairs}

    repair = break_the_app(sage, stack)
    wiring.credentials_source().reload()  # the functions' cached credentials have expired meanwhile
    sage.invalidate_access_tokens()  # hours have passed: every query needs a new access token
    started = time.monotonic()
    for _hour in range(0, 24, 6):
        summary = sweep()
        assert (summary["suspended"], summary["expired"], summary["refreshed"]) == (0, 0, 0), summary
        for tenant in list(pairs)[:5]:
            answer = call("GET", f"/tenants/{tenant}/folders")
            assert (answer.status, answer.json["error"]) == (503, "app_unavailable")
            assert "client credentials secret" in answer.json["message"]
        time.sleep(1.05)

    assert breaker_state() == "open"
    for tenant in pairs:
        pairing = stored(tenant)
        assert (pairing.status, pairing.refresh_token) == ("active", refresh_tokens[tenant])
        assert call("GET", f"/tenants/{tenant}").json["status"] == "active"
    published = read_events()
    assert detail_types(published) == ["AppCredentialsRejected"]
    # Held by the breaker: a few refusals to judge the app, then at most one probe an interval (a second
    # here), however many refreshes were due: not 4 x 20 calls.
    assert sage.count("refresh") <= 3 + (time.monotonic() - started) / wiring.app_breaker().probe_interval

    repair()
    time.sleep(0.25)
    summary = sweep()
    assert (summary["refreshed"], summary["suspended"], summary["expired"]) == (PAIRINGS, 0, 0), summary
    assert breaker_state() == "closed"
    for tenant, customer in pairs.items():
        assert stored(tenant).refresh_token == sage.current_refresh_token(customer)
    for tenant in list(pairs)[:5]:
        assert call("GET", f"/tenants/{tenant}/folders").status == 200
    assert "PairingExpired" not in detail_types(read_events())


def test_a_grant_revoked_while_others_refresh_is_suspended_then_expired_past_the_grace_period(
    sage: Emulator, stack: Stack
) -> None:
    read_events = lifecycle_events(stack)
    sage.configure(refresh_lifetime=3 * 86400)
    pairs = pair_many(sage, 4)
    read_events()
    tune(retry_base_seconds=0.1, retry_max_seconds=0.1, grace_seconds=1.0)
    revoked = "t000"
    sage.revoke(pairs[revoked])

    summary = sweep()  # the revoked pairing is met first; the others prove the app healthy meanwhile
    assert (summary["refreshed"], summary["suspended"], summary["expired"]) == (3, 1, 0), summary
    view = call("GET", f"/tenants/{revoked}").json
    assert view["status"] == "suspended"
    assert view["last_refusal"]["status"] == 401 and view["last_refusal"]["message"] == "Unauthorised"
    assert view["next_attempt_at"]
    assert stored(revoked).refresh_token  # kept: Sage may yet honour it
    assert breaker_state() == "closed"
    answer = call("POST", f"/tenants/{revoked}/refresh")
    assert (answer.status, answer.json["error"]) == (409, "pairing_suspended")
    folders = call("GET", f"/tenants/{revoked}/folders")
    assert (folders.status, folders.json["error"]) == (409, "pairing_suspended")

    time.sleep(1.1)  # past the grace period
    # Expired once the gateway is seen healthy past its suspension: the other pairings' next refreshes.
    wiring.app_breaker().success_write_interval = 0.0
    summaries = [sweep(), sweep()]
    assert sum(summary["expired"] for summary in summaries) == 1, summaries
    expired = stored(revoked)
    assert (expired.status, expired.reason) == ("expired", "grace_period_over")
    assert expired.refresh_token  # the last refresh token stays until the pairing is deleted or re-paired
    answer = call("POST", f"/tenants/{revoked}/refresh")
    assert (answer.status, answer.json["error"]) == (409, "pairing_expired")
    sweep()
    published = read_events()
    assert detail_types(published).count("PairingExpired") == 1
    assert detail_types(published).count("PairingSuspended") == 1
    assert "AppCredentialsRejected" not in detail_types(published)
    for other in list(pairs)[1:]:
        assert stored(other).status == "active"


def test_a_lone_refusal_after_only_its_own_success_is_held_not_judged(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", "https://x3.acme.example")  # its own code exchange: no evidence about the others
    sage.revoke("https://x3.acme.example")
    sage.invalidate_access_tokens()

    answer = call("GET", "/tenants/acme/folders")

    assert (answer.status, answer.json["error"]) == (503, "app_unavailable")
    assert stored("acme").status == "active" and stored("acme").held_at is not None
    assert breaker_state() == "closed"

    tune(hold_seconds=0.0)  # the hold is over, and no other pairing spoke for the gateway: suspended
    answer = call("GET", "/tenants/acme/folders")
    assert (answer.status, answer.json["error"]) == (409, "pairing_suspended")


def test_sage_naming_the_grant_dead_while_the_app_is_healthy_expires_it_at_once(
    sage: Emulator, stack: Stack
) -> None:
    read_events = lifecycle_events(stack)
    pair(sage, "acme", "https://x3.acme.example")
    sage.invalidate_access_tokens()
    sage.fail_next("refresh", status=403, body={"message": "The request has expired."})

    answer = call("GET", "/tenants/acme/folders")

    assert (answer.status, answer.json["error"]) == (409, "pairing_expired")
    assert (stored("acme").status, stored("acme").reason) == ("expired", "grant_dead")
    assert detail_types(read_events()) == ["PairingCompleted", "PairingExpired"]


def test_an_operator_retry_brings_a_suspended_pairing_back_once_sage_accepts(
    sage: Emulator, stack: Stack
) -> None:
    read_events = lifecycle_events(stack)
    pair(sage, "acme", "https://x3.acme.example")
    sage.invalidate_access_tokens()
    tune(hold_seconds=0.0)  # alone on its gateway: suspended at once rather than held
    sage.fail_next("refresh", status=400, body={"message": "Something Sage never documented"})
    assert call("GET", "/tenants/acme/folders").json["error"] == "pairing_suspended"
    refresh_token = stored("acme").refresh_token

    answer = call("POST", "/tenants/acme/refresh")

    assert answer.status == 200, answer.body
    assert answer.json["status"] == "active"
    assert "last_refusal" not in answer.json
    assert stored("acme").refresh_token != refresh_token  # the kept one was honoured and rotated
    assert stored("acme").reason == "operator_retry"
    assert call("GET", "/tenants/acme/folders").status == 200
    assert detail_types(read_events()) == ["PairingCompleted", "PairingSuspended", "PairingRecovered"]
    assert call("POST", "/tenants/nobody/refresh").json["error"] == "not_paired"


def test_a_rotated_secret_takes_effect_before_any_refusal_is_judged(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", "https://x3.acme.example")
    sage.invalidate_access_tokens()
    sage.add_client(CLIENT_ID, "the-rotated-secret-0123456789")  # rotated in the App Registry...
    put_credentials(stack, client_secret="the-rotated-secret-0123456789")  # ...and in the secret
    wiring.credentials_source().current()  # the function still holds the old value in its cache

    answer = call("GET", "/tenants/acme/folders")

    assert answer.status == 200, answer.body
    assert sage.count("refresh") == 2  # refused with the cached secret, accepted with the re-read one
    assert breaker_state() == "closed"
    assert stored("acme").status == "active"


def test_a_refusal_after_a_refresh_whose_reply_was_lost_is_judged_as_that_loss(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", "https://x3.acme.example")
    sage.invalidate_access_tokens()
    sage.fail_next("refresh", drop_after_apply=True)  # Sage rotated; the answer never arrived

    first = call("GET", "/tenants/acme/folders")
    assert first.status == 502, first.body
    assert stored("acme").refresh_timed_out_at is not None

    second = call("POST", "/tenants/acme/refresh")

    assert (second.status, second.json["error"]) == (409, "pairing_suspended")
    assert (stored("acme").status, stored("acme").reason) == ("suspended", "reply_lost")
    assert breaker_state() == "closed"
