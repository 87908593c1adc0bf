"""GET /tenants/{tenant}/folders: Sage X3's folder list read with the tenant's tokens, refreshed as needed."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
import urllib3

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.events import lifecycle_events
from tests.support.keeper import stored, tune
from tests.support.sage import pair
from x3link import wiring

ACME = "https://x3.acme.example"

for _function in ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "FoldersFunction"):
    tpl.load_handler(_function)


def _folders(tenant: str = "acme") -> Answer:
    return call("GET", f"/tenants/{tenant}/folders")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _access_token(tenant: str = "acme") -> str:
    """The access token stored for the tenant (sealed in the table: opened as the functions open it)."""
    token = stored(tenant).access_token
    assert token
    return token


def _bearers(sage: Emulator) -> list[str]:
    return [
        entry["headers"]["Authorization"].removeprefix("Bearer ")
        for entry in sage.requests
        if entry["route"] == "folders"
    ]


def _jwt_exp(token: str) -> int:
    import base64

    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


# ---------------------------------------------------------------------------------------------- success
def test_folders_are_exactly_what_sage_returns_for_the_grant(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME, folders=["SEED", "DEMO"])

    answer = _folders()

    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    # What Sage itself answers to the same token, fetched independently
    token = _access_token()
    direct = urllib3.request(
        "GET", f"{sage.base_url('eu-prod')}/folders", headers={"Authorization": f"Bearer {token}"}
    )
    assert direct.status == 200
    assert answer.json == {"folders": json.loads(direct.data)["folders"]}
    names = [folder["name"] for folder in answer.json["folders"]]
    assert names == ["SEED", "DEMO"]
    seed = answer.json["folders"][0]
    assert seed["$urls"]["dataDelivery"] == f"{sage.base_url('eu-prod')}/datadelivery/SEED/"
    assert sage.count("refresh") == 0


def test_unknown_tenant_is_404_not_paired(sage: Emulator, stack: Stack) -> None:
    answer = _folders("nobody")
    assert answer.status == 404
    assert answer.json["error"] == "not_paired"
    assert sage.requests == []


# ---------------------------------------------------------------------------------------------- dead grant
def test_revoked_grant_is_409_pairing_suspended_with_one_event(sage: Emulator, stack: Stack) -> None:
    drain = lifecycle_events(stack)
    pair(sage, "acme", ACME)
    assert [event["detail-type"] for event in drain()] == ["PairingCompleted"]
    tune(hold_seconds=0.0)  # alone on its gateway: judged at once, as after the hour a refusal is held
    sage.revoke(ACME)

    first = _folders()

    assert first.status == 409, first.body
    assert first.json["error"] == "pairing_suspended"
    assert first.json["message"].strip()
    assert sage.count("refresh") == 1
    events = drain()
    assert len(events) == 1
    event = events[0]
    assert event["detail-type"] == "PairingSuspended"
    assert event["detail"]["tenant"] == "acme"
    assert event["detail"]["customer"] == ACME

    # Later queries know at once while the retry backoff runs: no Sage call, no second event.
    requests_before = len(sage.requests)
    second = _folders()
    assert second.status == 409
    assert second.json["error"] == "pairing_suspended"
    assert len(sage.requests) == requests_before
    assert drain() == []
    assert call("GET", "/tenants/acme").json["status"] == "suspended"

    # Pairing again revives the tenant with the new grant.
    pair(sage, "acme", ACME, folders=["X3"])
    answer = _folders()
    assert answer.status == 200
    assert [f["name"] for f in answer.json["folders"]] == ["X3"]


# ---------------------------------------------------------------------------------------------- upstream
UPSTREAM_FAILURES = [(500, 1, 1), (503, 3, 3), (502, 3, 3), (504, 3, 3), (404, 1, 1)]


def test_sage_failure_is_502_upstream_error(sage: Emulator, stack: Stack, subtests: Any) -> None:
    pair(sage, "acme", ACME)
    for status, count, requests in UPSTREAM_FAILURES:
        with subtests.test(msg=f"{status} x{count}"):
            sage.clear_requests()
            sage.fail_next("folders", status=status, count=count)

            answer = _folders()

            assert answer.status == 502, answer.body
            assert answer.json["error"] == "upstream_error"
            assert answer.json["message"].strip()
            assert sage.count("folders") == requests  # 502/503/504 are retried, the rest are not
            assert sage.count("refresh") == 0
            # a Sage hiccup is no dead grant
            assert call("GET", "/tenants/acme").json["status"] == "active"
            assert _folders().status == 200


def test_sages_quota_is_429_quota_exceeded_with_its_retry_after(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.fail_next("folders", status=429, retry_after=120)

    answer = _folders()

    assert (answer.status, answer.json["error"]) == (429, "quota_exceeded"), answer.body
    assert answer.headers["retry-after"] == "120"
    assert sage.count("folders") == 1  # not retried
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_a_transient_5xx_is_retried(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.fail_next("folders", status=503, count=1)
    answer = _folders()
    assert answer.status == 200
    assert sage.count("folders") == 2


def test_sage_timeout_is_504_upstream_timeout(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGE_X3_TIMEOUT_SECONDS", "0.5")
    wiring.reset()
    pair(sage, "acme", ACME)
    sage.configure(timeout_sleep=1.5)
    sage.fail_next("folders", timeout=True, count=2)

    started = time.monotonic()
    answer = _folders()
    elapsed = time.monotonic() - started

    assert answer.status == 504, answer.body
    assert answer.json["error"] == "upstream_timeout"
    assert elapsed < 5
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_sage_unreachable_is_502(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.stop()
    answer = _folders()
    assert answer.status == 502
    assert answer.json["error"] == "upstream_error"


# ---------------------------------------------------------------------------------------------- refresh
def test_token_close_to_expiry_is_refreshed_before_the_query(sage: Emulator, stack: Stack) -> None:
    sage.configure(access_lifetime=60)  # below the refresh margin from the start
    pair(sage, "acme", ACME)

    answer = _folders()

    assert answer.status == 200, answer.body
    assert sage.count("refresh") == 1
    assert sage.count("folders") == 1
    (used,) = _bearers(sage)
    assert used == _access_token()
    names = [entry["route"] for entry in sage.requests if entry["route"] in ("refresh", "folders")]
    assert names == ["refresh", "folders"]  # the refresh came first, the query never saw a 401


def test_fresh_token_is_not_refreshed(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    for _ in range(3):
        assert _folders().status == 200
    assert sage.count("refresh") == 0
    assert len(set(_bearers(sage))) == 1


def test_401_refreshes_once_and_retries_once(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME, folders=["X3"])
    old = _access_token()
    sage.invalidate_access_tokens()

    answer = _folders()

    assert answer.status == 200, answer.body
    assert [f["name"] for f in answer.json["folders"]] == ["X3"]
    assert sage.count("refresh") == 1
    assert sage.count("folders") == 2
    names = [entry["route"] for entry in sage.requests if entry["route"] in ("refresh", "folders")]
    assert names == ["folders", "refresh", "folders"]
    first, second = _bearers(sage)
    assert first == old
    assert second == _access_token()
    # the rotated refresh token was stored: the next refresh still works
    sage.invalidate_access_tokens()
    assert _folders().status == 200
    assert sage.count("refresh") == 2


def test_a_second_401_after_the_refresh_is_502(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.fail_next("folders", status=401, count=2)

    answer = _folders()

    assert answer.status == 502, answer.body
    assert answer.json["error"] == "upstream_error"
    assert sage.count("refresh") == 1
    assert sage.count("folders") == 2
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_refresh_failing_transiently_is_502_and_keeps_the_pairing(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.invalidate_access_tokens()
    sage.fail_next("refresh", status=503)

    answer = _folders()

    assert answer.status == 502
    assert answer.json["error"] == "upstream_error"
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_expiry_comes_from_the_jwt_when_expires_in_is_missing(sage: Emulator, stack: Stack) -> None:
    sage.configure(send_expires_in=False, access_lifetime=1000)
    pair(sage, "acme", ACME)
    assert _folders().status == 200
    (token,) = _bearers(sage)

    described = call("GET", "/tenants/acme").json

    assert _epoch(described["access_token_expires_at"]) == _jwt_exp(token)
    assert sage.count("refresh") == 0  # 1000 s left: no refresh


def test_sage_messages_are_scrubbed_of_anything_token_shaped(sage: Emulator, stack: Stack) -> None:
    pair(sage, "scrub")
    token = _access_token("scrub")
    sage.fail_next("folders", status=500, count=3, body={"message": f"bad token {token} and sk_{'x' * 30}"})

    answer = call("GET", "/tenants/scrub/folders")

    assert answer.status == 502
    assert token not in answer.body
    assert "x" * 30 not in answer.body
    assert "[redacted]" in answer.json["message"]
