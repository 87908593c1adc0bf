"""Pairing a customer: the authorisation link, then the callback that turns a code into stored tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from x3link.callback_params import CallbackParams
from x3link.config import DEFAULT_SCOPE, TENANT_PATTERN, Settings
from x3link.endpoints import EndpointPolicy
from x3link.errors import (
    AuthorisationDenied,
    BadRequest,
    CallbackError,
    ExchangeRefused,
    GrantRefused,
    InvalidState,
    UpstreamError,
)
from x3link.logs import scrub
from x3link.oauth import ClientCredentials, authorization_url, code_grant, parse_token_response
from x3link.pairing_states import PairingStates, PendingPairing
from x3link.token_store import Pairing, TokenStore, iso

if TYPE_CHECKING:
    from x3link.sage_client import SageX3Client

logger = Logger(child=True)

SCOPE_ITEM = re.compile(r"^[A-Za-z][A-Za-z0-9._?-]{0,63}$")
MAX_CUSTOMER_LENGTH = 2048


@dataclass(frozen=True)
class PairingRequest:
    tenant: str
    customer: str
    scope: str

    @classmethod
    def parse(cls, body: Any) -> PairingRequest:
        if not isinstance(body, dict):
            raise BadRequest('The body must be a JSON object: {"tenant": ..., "customer": ...}.')
        unknown = set(body) - {"tenant", "customer", "scope"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
        tenant, customer, scope = body.get("tenant"), body.get("customer"), body.get("scope", DEFAULT_SCOPE)
        if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
            raise BadRequest(
                "tenant must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
        if not isinstance(customer, str) or not _is_absolute_url(customer):
            raise BadRequest("customer must be the customer's absolute http(s) X3 URL.")
        if not isinstance(scope, str) or not _is_scope(scope):
            raise BadRequest("scope must be space-separated Sage X3 scopes such as 'api.dataDelivery'.")
        return cls(tenant=tenant, customer=customer, scope=" ".join(scope.split()))


def _is_absolute_url(value: str) -> bool:
    if len(value) > MAX_CUSTOMER_LENGTH or any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:  # e.g. an unbalanced "[" in the host, or port 99999
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None


def _is_scope(value: str) -> bool:
    items = value.split()
    return 0 < len(items) <= 10 and all(
        SCOPE_ITEM.fullmatch(item) and not item.startswith("folder.") for item in items
    )


class PairingService:
    def __init__(
        self,
        settings: Settings,
        states: PairingStates,
        store: TokenStore,
        sage: Callable[[], SageX3Client],
        credentials: Callable[[], ClientCredentials],
        *,
        clock: Callable[[], float] = time.time,
        accepted: Callable[[float, ClientCredentials], None] = lambda _at, _credentials: None,
    ) -> None:
        self._settings = settings
        self._states = states
        self._store = store
        self._sage = sage
        self._credentials = credentials
        self._clock = clock
        self._accepted = accepted
        self._endpoints = EndpointPolicy(settings.sage_x3_url, settings.allowed_endpoints)

    def start(self, request: PairingRequest, redirect_uri: str) -> dict[str, str]:
        """Store a single-use state bound to the request, and give back the link the customer opens."""
        client = self._credentials()
        now = self._clock()
        expires_at = now + self._settings.state_lifetime_seconds
        state = self._states.create(
            PendingPairing(request.tenant, request.customer, request.scope, redirect_uri, now, expires_at)
        )
        url = authorization_url(
            self._settings.sage_x3_url,
            client_id=client.client_id,
            scope=request.scope,
            customer=request.customer,
            redirect_uri=redirect_uri,
            state=state,
        )
        logger.info("Pairing started", extra={"tenant": request.tenant})
        return {"tenant": request.tenant, "authorization_url": url, "expires_at": iso(expires_at) or ""}

    def complete(self, callback: CallbackParams) -> Pairing:
        """Validate everything that can be checked locally, consume the state once, then exchange the code."""
        if not callback.state:
            raise InvalidState("The callback has no state: open the pairing link again.")
        if not callback.error and not callback.code:
            raise CallbackError("The callback has no authorization code.")
        base_url = self._endpoints.resolve(callback.endpoint)
        pending = self._states.consume(callback.state, self._clock())
        if callback.error:
            logger.info("Customer refused the pairing", extra={"tenant": pending.tenant})
            # What Sage (or whoever sent the callback) said: for the log only, never for the page.
            logger.debug(
                "Sage X3's refusal",
                extra={
                    "error": scrub(callback.error),
                    "error_description": scrub(callback.error_description or ""),
                    "status_code": scrub(callback.status_code or ""),
                },
            )
            raise AuthorisationDenied("Sage X3 did not grant access.")
        assert callback.code
        credentials = self._credentials()
        grant = code_grant(callback.code, credentials, pending.redirect_uri)
        try:
            payload = self._sage().token(base_url, grant)
        except GrantRefused as refusal:
            # Sage's message (already scrubbed by the client) is for the log only, never for the page.
            logger.debug(
                "Sage X3 refused the code exchange",
                extra={"upstream_status": refusal.upstream_status, "sage_message": refusal.sage_message},
            )
            raise ExchangeRefused(f"Sage X3 refused the code exchange ({refusal.upstream_status}).") from None
        except UpstreamError as exc:
            raise ExchangeRefused(exc.message) from None
        tokens = parse_token_response(payload, self._clock())
        pairing = self._store.save_pairing(pending.tenant, pending.customer, base_url, tokens, self._clock())
        self._accepted(self._clock(), credentials)
        logger.info("Pairing completed", extra={"tenant": pending.tenant, "folders": pairing.folders})
        return pairing
