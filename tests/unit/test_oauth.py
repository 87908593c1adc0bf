"""x3link.sage.oauth as a pure unit: requests built for Sage X3, and token responses read robustly."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from x3link.errors import UpstreamError
from x3link.sage.oauth import (
    ACCESS_TOKEN_LIFETIME,
    AMBIGUOUS,
    APP,
    GRANT_DEAD,
    REFRESH_TOKEN_LIFETIME,
    ClientCredentials,
    authorization_url,
    code_grant,
    folders_from_scope,
    judge_refusal,
    jwt_claims,
    parse_token_response,
    refresh_grant,
    token_url,
)

NOW = 1_700_000_000.0
BASE = "https://api.eu-prod-sagex3.com/v1"
CLIENT = ClientCredentials(client_id="app-id", client_secret="app-secret")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: Any, header: Any = None) -> str:
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.c2lnbmF0dXJl"


def response(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "access_token": jwt({"exp": int(NOW) + 250}),
        "refresh_token": jwt({"exp": int(NOW) + 20 * 86400, "jti": "r1"}),
        "scope": "api.dataDelivery folder.SEED folder.X3",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


# ---------------------------------------------------------------------------------------------- requests
def test_authorization_url_carries_every_parameter_encoded() -> None:
    url = authorization_url(
        BASE,
        client_id="app id&x=1",
        scope="api.dataDelivery api.dataIngestion",
        customer="https://x3.acme.example/path?a=1&b=2",
        redirect_uri="https://abc.execute-api.us-east-1.amazonaws.com/prod/callback",
        state="s t&a=te",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/token/authorise"
    assert parse_qs(parts.query, keep_blank_values=True) == {
        "client_id": ["app id&x=1"],
        "scope": ["api.dataDelivery api.dataIngestion"],
        "customer": ["https://x3.acme.example/path?a=1&b=2"],
        "redirect_uri": ["https://abc.execute-api.us-east-1.amazonaws.com/prod/callback"],
        "state": ["s t&a=te"],
    }


def test_token_url() -> None:
    assert token_url(BASE) == f"{BASE}/token"


def test_code_grant_body() -> None:
    assert code_grant("the-code", CLIENT, "https://app.example/callback") == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "client_id": "app-id",
        "client_secret": "app-secret",
        "redirect_uri": "https://app.example/callback",
    }


def test_refresh_grant_body() -> None:
    assert refresh_grant("the-refresh", CLIENT) == {
        "grant_type": "refresh_token",
        "refresh_token": "the-refresh",
        "client_id": "app-id",
        "client_secret": "app-secret",
    }


def test_client_credentials_repr_hides_the_secret() -> None:
    assert "app-secret" not in repr(CLIENT)
    assert "app-id" in repr(CLIENT)


# ---------------------------------------------------------------------------------------------- folders
@pytest.mark.parametrize(
    ("scope", "folders"),
    [
        ("api.dataDelivery folder.SEED folder.X3", ["SEED", "X3"]),
        ("folder.SEED", ["SEED"]),
        ("api.dataDelivery", []),
        ("", []),
        ("  folder.A\tfolder.B\nfolder.C  ", ["A", "B", "C"]),
        ("folder. folder.SEED", ["SEED"]),
        ("folders.X myfolder.Y FOLDER.Z folder.SEED", ["SEED"]),
        ("folder.with.dots", ["with.dots"]),
    ],
)
def test_folders_from_scope(scope: str, folders: list[str]) -> None:
    assert folders_from_scope(scope) == folders


# ---------------------------------------------------------------------------------------------- JWT claims
def test_jwt_claims_reads_the_payload_without_verifying() -> None:
    assert jwt_claims(jwt({"exp": 123, "region": "eu-prod"})) == {"exp": 123, "region": "eu-prod"}


def test_jwt_claims_without_padding_of_any_length() -> None:
    for extra in ("", "a", "ab", "abc"):
        claims = {"exp": 1, "x": extra}
        assert jwt_claims(jwt(claims)) == claims


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "..",
        "a.!!!.c",
        "a.%%%%.c",
        f"a.{_b64(b'not json')}.c",
        f"a.{_b64(b'[1, 2]')}.c",
        f"a.{_b64(b'42')}.c",
        f"a.{_b64(b'null')}.c",
        f"a.{_b64(bytes([0xFF, 0xFE, 0x00]))}.c",
        f"a.{_b64(b'{')}.c",
    ],
)
def test_jwt_claims_of_garbage_is_empty(token: str) -> None:
    assert jwt_claims(token) == {}


# ---------------------------------------------------------------------------------------------- expiry
def test_expires_in_wins_over_the_jwt() -> None:
    tokens = parse_token_response(response(expires_in=300), NOW)
    assert tokens.access_token_expires_at == NOW + 300


def test_expires_in_as_a_numeric_string() -> None:
    assert parse_token_response(response(expires_in="120"), NOW).access_token_expires_at == NOW + 120


@pytest.mark.parametrize(
    "expires_in",
    [..., None, 0, -5, "abc", "", True, False, [300], {"s": 300}, "nan", float("nan"), "inf", 1e999, 10**400],
    ids=repr,
)
def test_unusable_expires_in_falls_back_to_the_jwt_exp(expires_in: Any) -> None:
    tokens = parse_token_response(response(expires_in=expires_in), NOW)
    assert tokens.access_token_expires_at == NOW + 250


def test_without_expires_in_or_exp_the_documented_lifetimes_apply() -> None:
    tokens = parse_token_response(
        {"access_token": "opaque-access", "refresh_token": "opaque-refresh", "scope": "api.dataDelivery"}, NOW
    )
    assert tokens.access_token_expires_at == NOW + ACCESS_TOKEN_LIFETIME == NOW + 300
    assert tokens.refresh_token_expires_at == NOW + REFRESH_TOKEN_LIFETIME == NOW + 30 * 86400


@pytest.mark.parametrize(
    "exp",
    ["1700000250", True, None, [1], {"v": 1}, 0, 1e999, 10**400],
    ids=repr,
)
def test_unusable_jwt_exp_falls_back_to_the_default(exp: Any) -> None:
    tokens = parse_token_response(
        {
            "access_token": jwt({"exp": exp}),
            "refresh_token": jwt({"exp": exp, "jti": "r"}),
            "scope": "api.dataDelivery",
        },
        NOW,
    )
    assert tokens.access_token_expires_at == NOW + 300
    assert tokens.refresh_token_expires_at == NOW + 30 * 86400


def test_refresh_expiry_comes_from_the_refresh_jwt() -> None:
    tokens = parse_token_response(response(expires_in=300), NOW)
    assert tokens.refresh_token_expires_at == int(NOW) + 20 * 86400


def test_float_exp_is_accepted() -> None:
    tokens = parse_token_response({"access_token": jwt({"exp": NOW + 99.5}), "refresh_token": "r"}, NOW)
    assert tokens.access_token_expires_at == NOW + 99.5


def test_garbage_access_jwt_gets_the_default_lifetime() -> None:
    tokens = parse_token_response({"access_token": "a.!!!.c", "refresh_token": "x.y.z"}, NOW)
    assert tokens.access_token_expires_at == NOW + 300
    assert tokens.refresh_token_expires_at == NOW + 30 * 86400


# ---------------------------------------------------------------------------------------------- refresh token
@pytest.mark.parametrize("missing", [..., None, "", 42, ["r"]], ids=repr)
def test_response_without_a_refresh_token_keeps_the_previous_one(missing: Any) -> None:
    tokens = parse_token_response(
        response(refresh_token=missing, expires_in=300),
        NOW,
        previous_refresh_token="previous-refresh",
        previous_refresh_expires_at=NOW + 1234,
    )
    assert tokens.refresh_token == "previous-refresh"
    assert tokens.refresh_token_expires_at == NOW + 1234
    assert tokens.access_token_expires_at == NOW + 300


def test_previous_refresh_token_without_a_known_expiry_gets_the_documented_lifetime() -> None:
    tokens = parse_token_response(response(refresh_token=...), NOW, previous_refresh_token="previous-refresh")
    assert tokens.refresh_token == "previous-refresh"
    assert tokens.refresh_token_expires_at == NOW + 30 * 86400


def test_a_new_refresh_token_replaces_the_previous_one() -> None:
    fresh = jwt({"exp": int(NOW) + 86400, "jti": "new"})
    tokens = parse_token_response(
        response(refresh_token=fresh),
        NOW,
        previous_refresh_token="previous-refresh",
        previous_refresh_expires_at=NOW + 5,
    )
    assert tokens.refresh_token == fresh
    assert tokens.refresh_token_expires_at == int(NOW) + 86400


def test_first_response_without_a_refresh_token_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as failure:
        parse_token_response(response(refresh_token=...), NOW)
    assert failure.value.status == 502


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "access",
        {},
        {"refresh_token": "r"},
        {"access_token": "", "refresh_token": "r"},
        {"access_token": None, "refresh_token": "r"},
        {"access_token": 7, "refresh_token": "r"},
        {"message": "Unauthorised"},
    ],
    ids=repr,
)
def test_response_without_an_access_token_is_an_upstream_error(payload: Any) -> None:
    with pytest.raises(UpstreamError):
        parse_token_response(payload, NOW, previous_refresh_token="previous")


# ---------------------------------------------------------------------------------------------- scope
def test_scope_and_folders_come_from_the_response() -> None:
    tokens = parse_token_response(response(), NOW)
    assert tokens.scope == "api.dataDelivery folder.SEED folder.X3"
    assert tokens.folders == ["SEED", "X3"]


@pytest.mark.parametrize("scope", [..., None, 5, ["folder.SEED"]], ids=repr)
def test_missing_or_odd_scope_is_empty(scope: Any) -> None:
    tokens = parse_token_response(response(scope=scope), NOW)
    assert tokens.scope == ""
    assert tokens.folders == []


def test_token_set_repr_hides_the_tokens() -> None:
    tokens = parse_token_response(response(), NOW)
    text = repr(tokens) + str(tokens)
    assert tokens.access_token not in text
    assert tokens.refresh_token not in text
    assert "folder.SEED" in text  # the rest is still there to help debugging


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("status", "message", "from_sage", "verdict"),
    [
        # What a wrong client secret gets, and (a gap in Sage's documentation) maybe a dead grant too
        (401, "Unauthorised", True, AMBIGUOUS),
        (400, "Bad Request", True, AMBIGUOUS),
        (403, "The pairing request has not been accepted.", True, AMBIGUOUS),
        # The grant names itself as dead
        (403, "The request has expired.", True, GRANT_DEAD),
        (403, "  the request has expired.", True, GRANT_DEAD),
        # About the app: never a customer's pairing
        (404, "Pairing request not found", True, APP),
        (
            404,
            "Could not associate the requested url with an customer application registered on Sage "
            "Business Cloud",
            True,
            APP,
        ),
        (404, "no message", True, APP),
        (400, "Missing required request parameters", True, APP),
        (400, "Invalid grant type", True, APP),
        (403, "The application registered on Sage Business Cloud is disabled", True, APP),
        (403, "  THE APPLICATION REGISTERED ON SAGE BUSINESS CLOUD IS DISABLED  ", True, APP),
        # A proxy's or firewall's page in front of Sage is not Sage speaking
        (403, "no message", False, APP),
        (401, "no message", False, APP),
        # Other 4xx speak about the request the app sent
        (405, "Method Not Allowed", True, APP),
        (409, "Conflict", True, APP),
    ],
)
def test_refusals_are_judged_by_what_they_speak_about(
    status: int, message: str, from_sage: bool, verdict: str
) -> None:
    assert judge_refusal(status, message, from_sage=from_sage) == verdict
