"""Sage X3's OAuth protocol as pure functions: build requests, parse answers. No I/O here.

Sage's documentation leaves the token response loosely specified, so expiry comes from `expires_in`,
else the JWT `exp` claim, else the documented lifetimes (5 minutes / 30 days).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field

# Any: a JWT's claims and the token endpoint's JSON answer, untrusted: checked field by field.
from typing import Any
from urllib.parse import urlencode

from x3link.errors import UpstreamError

ACCESS_TOKEN_LIFETIME = 300
REFRESH_TOKEN_LIFETIME = 30 * 86400


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)
    # Secrets Manager's VersionId of the secret these came from: tells a rotated secret from the same one.
    version: str = ""


@dataclass(frozen=True)
class TokenSet:
    """What one token response gave us. Tokens stay out of repr so they can never reach a log line."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scope: str
    access_token_expires_at: float
    refresh_token_expires_at: float

    @property
    def folders(self) -> list[str]:
        return folders_from_scope(self.scope)


def authorization_url(
    base_url: str, *, client_id: str, scope: str, customer: str, redirect_uri: str, state: str
) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "scope": scope,
            "customer": customer,
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{base_url}/token/authorise?{query}"


def token_url(base_url: str) -> str:
    return f"{base_url}/token"


def code_grant(code: str, client: ClientCredentials, redirect_uri: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uri": redirect_uri,
    }


def refresh_grant(refresh_token: str, client: ClientCredentials) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }


def folders_from_scope(scope: str) -> list[str]:
    return [item[len("folder.") :] for item in scope.split() if item.startswith("folder.") and len(item) > 7]


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: good for reading `exp`, never for a security decision."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class X3Identity:
    """Which Sage X3 a grant reaches: the cloud configuration (`sub`) at a regional gateway (`iss`)."""

    issuer: str
    subject: str


def x3_identity(access_token: str) -> X3Identity | None:
    """The X3 identity an access token names, or None when it names none.

    Read without verifying the signature (Sage publishes no keys). That is enough here, and only here: the
    token came straight from Sage's token endpoint over TLS, in answer to this bundle's own code exchange.
    """
    claims = jwt_claims(access_token)
    issuer, subject = claims.get("iss"), claims.get("sub")
    if isinstance(issuer, str) and isinstance(subject, str) and issuer and subject:
        return X3Identity(issuer=issuer, subject=subject)
    return None


def _jwt_exp(token: str) -> float | None:
    exp = jwt_claims(token).get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        seconds = float(exp)
    except OverflowError:  # an integer beyond any float
        return None
    return seconds if math.isfinite(seconds) else None


def _expires_in(payload: dict[str, Any]) -> float | None:
    value = payload.get("expires_in")
    try:
        seconds = float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None


def parse_token_response(
    payload: Any,
    now: float,
    *,
    previous_refresh_token: str | None = None,
    previous_refresh_expires_at: float | None = None,
) -> TokenSet:
    """Read a successful token response. A response without a refresh token keeps the previous one."""
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("access_token"), str)
        or not payload["access_token"]
    ):
        raise UpstreamError("Sage X3's token response has no access token.")
    access = payload["access_token"]
    expires_in = _expires_in(payload)
    if expires_in is not None:
        access_expires_at = now + expires_in
    else:
        access_expires_at = _jwt_exp(access) or now + ACCESS_TOKEN_LIFETIME
    refresh = payload.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        refresh_expires_at = _jwt_exp(refresh) or now + REFRESH_TOKEN_LIFETIME
    elif previous_refresh_token:
        refresh, refresh_expires_at = (
            previous_refresh_token,
            previous_refresh_expires_at or now + REFRESH_TOKEN_LIFETIME,
        )
    else:
        raise UpstreamError("Sage X3's token response has no refresh token.")
    scope = payload.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        scope=scope if isinstance(scope, str) else "",
        access_token_expires_at=access_expires_at,
        refresh_token_expires_at=refresh_expires_at,
    )


# Sage answers {"message"} instead of OAuth's `invalid_grant`, and does not document how a dead refresh
# token is reported. So a refusal is judged, never trusted: these messages speak about the app itself, and a
# misconfigured or disabled app must never mark its customers' pairings as expired.
_APP_LEVEL_REFUSALS = (
    "missing required request parameters",
    "invalid grant type",
    "the application registered on sage business cloud is disabled",
    "could not associate the requested url",
)
_GRANT_DEAD = "the request has expired"

APP, GRANT_DEAD, AMBIGUOUS = "app", "grant_dead", "ambiguous"


def judge_refusal(status: int, sage_message: str, *, from_sage: bool) -> str:
    """What a refused refresh grant is about: the `APP`, a grant Sage names as dead, or `AMBIGUOUS`.

    Ambiguous refusals (a 401 "Unauthorised", which is also what a wrong client secret gets, or a 400/403
    with an undocumented message) are settled by whether the app is known to be healthy right now.
    """
    message = sage_message.strip().lower()
    if not from_sage or status == 404 or message.startswith(_APP_LEVEL_REFUSALS):
        return APP  # a proxy's page, an unknown client id or redirect URI, a disabled app
    if status == 403 and message.startswith(_GRANT_DEAD):
        return GRANT_DEAD
    if status in (400, 401, 403):
        return AMBIGUOUS
    return APP  # 405, 413, 415...: about the request the app sent, not about the grant
