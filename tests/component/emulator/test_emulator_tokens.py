"""`POST /v1/token`: code and refresh grants, JWT claims, rotation, expiry, revocation."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from local.sagex3_emulator.jwt import read_claims
from tests.component.emulator.conftest import FakeClock, Sage

NO_ASSOCIATION = (
    "Could not associate the requested url with an customer application registered on Sage Business Cloud"
)


def approve_code(sage: Sage, **kwargs: str) -> str:
    return sage.emu.approve(sage.authorise_url(**kwargs))["authorizationCode"]


def test_code_grant_returns_tokens_with_documented_claims(sage: Sage, clock: FakeClock) -> None:
    code = sage.emu.approve(sage.authorise_url(scope="api.dataDelivery api.dataIngestion"), ["SEED", "X3"])
    reply = sage.exchange(code["authorizationCode"])
    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "scope", "expires_in", "token_type"}
    assert body["scope"] == "api.dataDelivery api.dataIngestion folder.SEED folder.X3"
    assert body["expires_in"] == 300 and body["token_type"] == "Bearer"
    access = read_claims(body["access_token"])
    assert len(access.pop("tid")) == 32  # unique per token, so invalidating one never touches another
    iat = int(clock.now)
    customer = sage.emu.get_customer(sage.ACME)
    assert customer is not None
    assert access == {
        "iss": "api.eu-prod-sagex3.com",
        "aud": "api.eu-prod-sagex3.com",
        "iat": iat,
        "exp": iat + 300,
        "region": "eu-prod",
        "sub": customer.config_id,
        "azp": "demo-app",
        "scopes": ["api.dataDelivery", "api.dataIngestion", "folder.SEED", "folder.X3"],
    }
    refresh = read_claims(body["refresh_token"])
    assert refresh["exp"] - refresh["iat"] == int(30.4 * 86400)
    assert {k: v for k, v in refresh.items() if k not in ("exp", "jti")} == {
        k: v for k, v in access.items() if k != "exp"
    }
    uuid.UUID(refresh["jti"])
    assert customer.config_id == str(uuid.uuid5(uuid.NAMESPACE_URL, sage.ACME))
    header = body["access_token"].split(".")[0]
    assert "=" not in body["access_token"] and header.startswith("eyJ")


def test_code_is_single_use(sage: Sage) -> None:
    code = approve_code(sage)
    assert sage.exchange(code).status == 200
    second = sage.exchange(code)
    assert second.status == 403
    assert second.json() == {"message": "Pairing request not found"}
    assert sage.exchange("never-issued").json() == {"message": "Pairing request not found"}


def test_concurrent_redemptions_exactly_one_succeeds(sage: Sage) -> None:
    for _ in range(3):
        code = approve_code(sage)
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def redeem(
            code: str = code, barrier: threading.Barrier = barrier, statuses: list[int] = statuses
        ) -> None:
            barrier.wait()
            statuses.append(sage.exchange(code).status)

        threads = [threading.Thread(target=redeem) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 403, 403, 403]


def test_code_grant_errors(sage: Sage, clock: FakeClock) -> None:
    code = approve_code(sage)
    assert sage.exchange(code, client_secret="wrong").status == 401
    assert sage.exchange(code, client_secret="wrong").json() == {"message": "Unauthorised"}
    assert sage.exchange(code, client_id="nobody").status == 404
    wrong_redirect = sage.exchange(code, redirect_uri="http://127.0.0.1:3000/other")
    assert wrong_redirect.status == 404 and set(wrong_redirect.json()) == {"message"}
    wrong_region = sage.exchange(code, region="us-prod")
    assert wrong_region.status == 404
    assert wrong_region.json() == {"message": NO_ASSOCIATION}
    # None of the refusals consumed the code.
    assert sage.exchange(code).status == 200

    code = approve_code(sage)
    clock.advance(601)
    expired = sage.exchange(code)
    assert expired.status == 403 and expired.json() == {"message": "The request has expired."}


def test_foreign_region_code_redeemable_only_at_home(sage: Sage) -> None:
    params = sage.emu.approve(sage.authorise_url(region="eu-prod", customer=sage.GLOBEX))
    assert sage.exchange(params["authorizationCode"], region="eu-prod").status == 404
    reply = sage.exchange(params["authorizationCode"], region="us-prod")
    assert reply.status == 200
    assert read_claims(reply.json()["access_token"])["iss"] == "api.us-prod-sagex3.com"


def test_malformed_token_requests(sage: Sage) -> None:
    reply = sage.call(
        "POST", sage.url("/token"), body=b"grant_type=refresh_token", headers={"Content-Type": "x"}
    )
    assert reply.status == 400 and reply.json() == {"message": "Missing required request parameters"}
    assert sage.token_call({"grant_type": "password", "client_id": "demo-app"}).json() == {
        "message": "Invalid grant type"
    }
    assert sage.token_call({"grant_type": "authorization_code", "code": "x"}).status == 400
    assert sage.token_call({"grant_type": "refresh_token", "client_id": "demo-app"}).status == 400


def test_refresh_rotates_and_kills_the_old_token_at_once(sage: Sage, clock: FakeClock) -> None:
    first = sage.pair()
    clock.advance(10)
    second = sage.refresh(first["refresh_token"])
    assert second.status == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    assert new["scope"] == first["scope"]
    assert sage.emu.current_refresh_token(sage.ACME) == new["refresh_token"]
    old = sage.refresh(first["refresh_token"])
    assert old.status == 401 and old.json() == {"message": "Unauthorised"}
    assert sage.refresh(new["refresh_token"]).status == 200
    assert sage.refresh(new["refresh_token"]).status == 401


def test_refresh_errors(sage: Sage) -> None:
    tokens = sage.pair()
    assert sage.refresh(tokens["refresh_token"], client_secret="nope").status == 401
    assert sage.refresh(tokens["refresh_token"], client_id="nobody").status == 404
    assert sage.refresh(tokens["refresh_token"], region="us-prod").json() == {"message": NO_ASSOCIATION}
    assert sage.refresh(tokens["access_token"]).status == 401
    assert sage.refresh("garbage").status == 401
    sage.emu.configure(dead_refresh_status=400)
    assert sage.refresh("garbage").status == 400
    assert set(sage.refresh("garbage").json()) == {"message"}
    # Refusals did not rotate anything.
    sage.emu.configure(dead_refresh_status=401)
    assert sage.refresh(tokens["refresh_token"]).status == 200


def test_expired_tokens_are_refused(sage: Sage, clock: FakeClock) -> None:
    sage.emu.configure(access_lifetime=60, refresh_lifetime=120)
    tokens = sage.pair()
    assert tokens["expires_in"] == 60
    assert sage.call("GET", sage.url("/folders"), token=tokens["access_token"]).status == 200
    clock.advance(60)
    expired = sage.call("GET", sage.url("/folders"), token=tokens["access_token"])
    assert expired.status == 401 and expired.json() == {"message": "Unauthorised"}
    assert sage.refresh(tokens["refresh_token"]).status == 200
    tokens = sage.pair()
    clock.advance(120)
    assert sage.refresh(tokens["refresh_token"]).status == 401


def test_revoke_kills_refresh_and_access_tokens(sage: Sage) -> None:
    acme = sage.pair()
    globex = sage.pair(customer=sage.GLOBEX)
    sage.emu.revoke(sage.ACME)
    assert sage.call("GET", sage.url("/folders"), token=acme["access_token"]).status == 401
    assert sage.refresh(acme["refresh_token"]).status == 401
    assert sage.emu.current_refresh_token(sage.ACME) is None
    assert sage.call("GET", sage.url("/folders", "us-prod"), token=globex["access_token"]).status == 200
    # Pairing again works.
    assert sage.call("GET", sage.url("/folders"), token=sage.pair()["access_token"]).status == 200


def test_invalidate_access_tokens_keeps_refresh_working(sage: Sage) -> None:
    acme = sage.pair()
    globex = sage.pair(customer=sage.GLOBEX)
    sage.emu.invalidate_access_tokens(sage.ACME)
    assert sage.call("GET", sage.url("/folders"), token=acme["access_token"]).json() == {
        "message": "Unauthorised"
    }
    assert sage.call("GET", sage.url("/folders", "us-prod"), token=globex["access_token"]).status == 200
    renewed = sage.refresh(acme["refresh_token"]).json()
    assert sage.call("GET", sage.url("/folders"), token=renewed["access_token"]).status == 200
    sage.emu.invalidate_access_tokens()
    assert sage.call("GET", sage.url("/folders", "us-prod"), token=globex["access_token"]).status == 401
    assert sage.call("GET", sage.url("/folders"), token=renewed["access_token"]).status == 401


@pytest.mark.parametrize(
    ("knobs", "absent"),
    [({"send_expires_in": False}, "expires_in"), ({"send_token_type": False}, "token_type")],
)
def test_optional_response_fields(sage: Sage, knobs: dict[str, Any], absent: str) -> None:
    sage.emu.configure(**knobs)
    tokens = sage.pair()
    assert absent not in tokens
    assert {"access_token", "refresh_token", "scope"} <= set(tokens)
    refreshed = sage.refresh(tokens["refresh_token"]).json()
    assert absent not in refreshed


def test_disabled_application(sage: Sage) -> None:
    code = approve_code(sage)
    sage.emu.set_client_enabled("demo-app", False)
    reply = sage.exchange(code)
    assert reply.status == 403
    assert reply.json() == {"message": "The application registered on Sage Business Cloud is disabled"}
    sage.emu.set_client_enabled("demo-app", True)
    assert sage.exchange(code).status == 200


def test_configure_rejects_unknown_knobs(sage: Sage) -> None:
    with pytest.raises(TypeError):
        sage.emu.configure(nonsense=1)  # type: ignore[call-arg]  # an unknown knob, on purpose
