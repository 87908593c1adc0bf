"""`POST /v1/token` (code and refresh grants), token issuing, and bearer-token checks.

Why: the token rules (single-use codes, rotation that kills the old refresh token at once, home-region
binding, revocation) are what the app under test must survive, so they live together and run under
the shared lock.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import Any

from werkzeug.wrappers import Response

from . import messages, web
from .models import AccessRecord, Client, Grant, gateway_host
from .state import State
from .web import ApiError, GatewayRequest, status_phrase

_MAX_ACCESS_RECORDS = 10_000
TOKEN_TYPE = "Bearer"  # nosec B105  # the OAuth token type, not a password


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, messages.MISSING_PARAMETERS)
    return value


def _authenticate_client(state: State, client_id: str, secret: str) -> Client:
    client = state.clients.get(client_id)
    if client is None:
        raise ApiError(404, messages.NO_ASSOCIATION)
    if not client.enabled:
        raise ApiError(403, messages.APP_DISABLED)
    if not hmac.compare_digest(client.secret.encode("utf-8"), secret.encode("utf-8")):
        raise ApiError(401, messages.UNAUTHORISED)
    return client


def token_endpoint(state: State, req: GatewayRequest) -> Response:
    """Dispatch on `grant_type`; errors are `{"message"}` as Sage's, never OAuth's `error`."""
    body = req.json_body
    if not isinstance(body, dict):
        raise ApiError(400, messages.MISSING_PARAMETERS)
    grant_type = _field(body, "grant_type")
    if grant_type == "authorization_code":
        return _code_grant(state, req, body)
    if grant_type == "refresh_token":
        return _refresh_grant(state, req, body)
    raise ApiError(400, messages.INVALID_GRANT_TYPE)


def _code_grant(state: State, req: GatewayRequest, body: dict[str, Any]) -> Response:
    code = _field(body, "code")
    client_id = _field(body, "client_id")
    secret = _field(body, "client_secret")
    redirect_uri = _field(body, "redirect_uri")
    with state.lock:
        _authenticate_client(state, client_id, secret)
        record = state.codes.get(code)
        if record is None or record.used or record.client_id != client_id:
            raise ApiError(403, messages.PAIRING_NOT_FOUND)
        if state.now() >= record.issued_at + state.settings.code_lifetime:
            raise ApiError(403, messages.REQUEST_EXPIRED)
        if record.redirect_uri != redirect_uri:
            raise ApiError(404, messages.NO_ASSOCIATION)
        if record.home_region != req.region:
            raise ApiError(404, messages.NO_ASSOCIATION)
        record.used = True
        state.grant_seq += 1
        grant = Grant(
            grant_id=uuid.uuid4().hex,
            client_id=client_id,
            customer_url=record.customer_url,
            config_id=record.config_id,
            home_region=record.home_region,
            scopes=list(record.scopes),
            folders=list(record.folders),
            created_seq=state.grant_seq,
        )
        state.grants[grant.grant_id] = grant
        return web.json_answer(200, issue_tokens(state, grant))


def _refresh_grant(state: State, req: GatewayRequest, body: dict[str, Any]) -> Response:
    token = _field(body, "refresh_token")
    client_id = _field(body, "client_id")
    secret = _field(body, "client_secret")
    settings = state.settings
    dead_status = settings.dead_refresh_status
    dead = ApiError(dead_status, messages.UNAUTHORISED if dead_status == 401 else status_phrase(dead_status))
    with state.lock:
        _authenticate_client(state, client_id, secret)
        claims = state.signer.decode(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            raise dead
        grant = state.grants.get(state.refresh_index.get(claims["jti"], ""))
        if grant is None or not grant.alive or grant.refresh_jti != claims["jti"]:
            raise dead
        if grant.client_id != client_id or state.now() >= float(claims.get("exp", 0)):
            raise dead
        if grant.home_region != req.region:
            raise ApiError(404, messages.NO_ASSOCIATION)
        return web.json_answer(200, issue_tokens(state, grant))


def issue_tokens(state: State, grant: Grant) -> dict[str, Any]:
    """A fresh access token and a rotated refresh token (the previous one dies at once)."""
    settings = state.settings
    iat = int(state.now())
    host = gateway_host(grant.home_region)
    scopes = grant.scope_list()
    claims: dict[str, Any] = {
        "iss": host,
        "aud": host,
        "iat": iat,
        "exp": iat + int(settings.access_lifetime),
        "region": grant.home_region,
        "sub": grant.config_id,
        "azp": grant.client_id,
        "scopes": scopes,
    }
    # Why `tid`: two tokens issued in the same second must still differ, or invalidating one would
    # invalidate (and re-issuing would revive) the other. Real gateways' tokens are unique too.
    access = state.signer.encode({**claims, "tid": uuid.uuid4().hex})
    jti = str(uuid.uuid4())
    refresh = state.signer.encode({**claims, "exp": iat + int(settings.refresh_lifetime), "jti": jti})
    if grant.refresh_jti is not None:
        state.refresh_index.pop(grant.refresh_jti, None)
    grant.refresh_jti = jti
    grant.refresh_token = refresh
    state.refresh_index[jti] = grant.grant_id
    _remember_access(state, access, AccessRecord(grant.grant_id, claims["exp"]))
    payload: dict[str, Any] = {"access_token": access, "refresh_token": refresh, "scope": " ".join(scopes)}
    if settings.send_expires_in:
        payload["expires_in"] = int(settings.access_lifetime)
    if settings.send_token_type:
        payload["token_type"] = TOKEN_TYPE
    return payload


def _remember_access(state: State, token: str, record: AccessRecord) -> None:
    if len(state.access_tokens) >= _MAX_ACCESS_RECORDS:
        # Why: long benchmarks issue many tokens; expired ones can never be accepted again anyway.
        now = state.now()
        for old in [key for key, value in state.access_tokens.items() if value.exp <= now]:
            del state.access_tokens[old]
    state.access_tokens[token] = record


def authenticate(state: State, req: GatewayRequest) -> Grant:
    """The live grant behind the request's bearer access token, or 401 `Unauthorised`."""
    unauthorised = ApiError(401, messages.UNAUTHORISED)
    scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorised
    claims = state.signer.decode(token)
    if claims is None or "jti" in claims or claims.get("region") != req.region:
        raise unauthorised
    with state.lock:
        if state.now() >= float(claims.get("exp", 0)):
            raise unauthorised
        record = state.access_tokens.get(token)
        grant = state.grants.get(record.grant_id) if record is not None else None
        if record is None or not record.valid or grant is None or not grant.alive:
            raise unauthorised
        return grant


def new_code() -> str:
    """An unguessable authorization code."""
    return secrets.token_urlsafe(24)
