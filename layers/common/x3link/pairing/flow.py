"""Pairing a customer: a pairing link for the app to send, the browser that opens it sent on to Sage X3's
consent page, then the callback that turns a code into stored tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

# Any: the request's JSON body, untrusted: checked field by field.
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from x3link.config import DEFAULT_SCOPE, TENANT_PATTERN, TENANT_RULE, Settings
from x3link.endpoints import EndpointPolicy
from x3link.errors import (
    AuthorisationDenied,
    BadRequest,
    CallbackError,
    ExchangeRefused,
    GrantRefused,
    IdentityMismatch,
    InvalidState,
    PairingLinkInvalid,
    QuotaExceeded,
    UpstreamError,
)
from x3link.logs import scrub
from x3link.pairing import browser_binding
from x3link.pairing.browser_binding import Binding
from x3link.pairing.states import AlreadyCompleted, Paired, PairingStates, PendingPairing
from x3link.sage.callback_params import CallbackParams
from x3link.sage.oauth import (
    ClientCredentials,
    authorization_url,
    code_grant,
    parse_token_response,
    x3_identity,
)
from x3link.tokens.model import Pairing, iso
from x3link.tokens.store import TokenStore

if TYPE_CHECKING:
    from x3link.sage.client import SageX3Client

logger = Logger(child=True)

SCOPE_ITEM = re.compile(r"^[A-Za-z][A-Za-z0-9._?-]{0,63}$")
MAX_CUSTOMER_LENGTH = 2048


@dataclass(frozen=True)
class PairingRequest:
    tenant: str
    customer: str
    scope: str
    # The tenant may move to another X3 (another `sub` or gateway) than the one it is paired with.
    replace: bool = False

    @classmethod
    def parse(cls, body: Any) -> PairingRequest:
        if not isinstance(body, dict):
            raise BadRequest('The body must be a JSON object: {"tenant": ..., "customer": ...}.')
        unknown = set(body) - {"tenant", "customer", "scope", "replace"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
        tenant, customer, scope = body.get("tenant"), body.get("customer"), body.get("scope", DEFAULT_SCOPE)
        if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
            raise BadRequest(TENANT_RULE)
        if not isinstance(customer, str) or not _is_absolute_url(customer):
            raise BadRequest("customer must be the customer's absolute http(s) X3 URL.")
        if not isinstance(scope, str) or not _is_scope(scope):
            raise BadRequest("scope must be space-separated Sage X3 scopes such as 'api.dataDelivery'.")
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            raise BadRequest("replace must be true or false.")
        return cls(tenant=tenant, customer=customer, scope=" ".join(scope.split()), replace=replace)


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


# The code exchange's read timeout and the write after it fit well inside this.
SEAL_WITHIN_SECONDS = 120
# What `secrets.token_urlsafe(32)` makes: a link id is checked before it reaches the table.
LINK_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class OpenedLink:
    tenant: str
    authorise_url: str = field(repr=False)
    binding: Binding | None
    max_age: int


@dataclass(frozen=True)
class Completed:
    """What the success page shows: the tenant, its folders, and which X3 it now reaches, through which
    gateway, so that a pairing with an X3 nobody meant to pair is seen at once."""

    paired: Paired
    # A reload of the success page: nothing was exchanged or stored this time.
    again: bool = False

    @property
    def tenant(self) -> str:
        return self.paired.tenant

    @property
    def folders(self) -> list[str]:
        return self.paired.folders


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
        accepted: Callable[[float, ClientCredentials, str, str], None] = lambda *_: None,
    ) -> None:
        self._settings = settings
        self._states = states
        self._store = store
        self._sage = sage
        self._credentials = credentials
        self._clock = clock
        self._accepted = accepted
        self._endpoints = EndpointPolicy(settings.sage_x3_url, settings.allowed_endpoints)

    def start(
        self, request: PairingRequest, redirect_uri: str, link_url: Callable[[str], str]
    ) -> dict[str, str]:
        """Store a single-use pairing link for the request; `link_url` makes its public URL from its id."""
        self._credentials()  # a stack whose secret is not set up yet says so now, to the app
        now = self._clock()
        expires_at = now + self._settings.link_lifetime_seconds
        link_id = self._states.create_link(
            PendingPairing(
                request.tenant,
                request.customer,
                request.scope,
                redirect_uri,
                now,
                expires_at,
                request.replace,
            )
        )
        logger.info("Pairing started", extra={"tenant": request.tenant, "replace": request.replace})
        return {
            "tenant": request.tenant,
            "pairing_url": link_url(link_id),
            "expires_at": iso(expires_at) or "",
        }

    def open_link(self, link_id: str) -> OpenedLink:
        """The link's one opening: a state whose 10-minute clock starts now, bound to this browser."""
        if not LINK_ID.fullmatch(link_id):
            raise PairingLinkInvalid("The pairing link's id is malformed.")
        client = self._credentials()  # first: a stack not set up yet must not spend the link
        now = self._clock()
        link = self._states.open_link(link_id, now)
        expires_at = now + self._settings.state_lifetime_seconds
        pending = replace(link, created_at=now, expires_at=expires_at)
        binding = None
        if self._settings.browser_binding:
            cookie = browser_binding.new_cookie_value()
            state = self._states.create(pending, browser_binding.digest(cookie))
            binding = browser_binding.Binding(browser_binding.cookie_name(state), cookie)
        else:
            state = self._states.create(pending)
        url = authorization_url(
            self._settings.sage_x3_url,
            client_id=client.client_id,
            scope=pending.scope,
            customer=pending.customer,
            redirect_uri=pending.redirect_uri,
            state=state,
        )
        logger.info("Pairing link opened", extra={"tenant": pending.tenant})
        return OpenedLink(pending.tenant, url, binding, self._settings.state_lifetime_seconds)

    def complete(self, callback: CallbackParams, cookies: dict[str, str]) -> Completed:
        """Validate everything that can be checked locally, consume the state once, then exchange the code.

        A state whose pairing has completed already gives its result again (a reload of the success page),
        to the browser it is bound to, without a second exchange.
        """
        if not callback.state:
            raise InvalidState("The callback has no state: open the pairing link again.")
        if not callback.error and not callback.code:
            raise CallbackError("The callback has no authorization code.")
        base_url = self._endpoints.resolve(callback.endpoint)
        state = callback.state
        cookie = cookies.get(browser_binding.cookie_name(state))
        try:
            pending = self._states.consume(
                state, self._clock(), cookie=cookie, bound=self._settings.browser_binding
            )
        except AlreadyCompleted as done:  # a reload carries the same code and endpoint: they passed again
            return Completed(done.paired, again=True)
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
        if not callback.code:  # unreachable (checked above); says so to the type checker
            raise CallbackError("The callback has no authorization code.")
        pairing = self._exchange(pending, callback.code, base_url)
        identity = pairing.x3_identity
        paired = Paired(
            pairing.tenant,
            pairing.folders,
            pairing.endpoint,
            identity.issuer if identity else None,
            identity.subject if identity else None,
        )
        self._states.record_completion(state, paired, self._clock())
        return Completed(paired)

    def _exchange(self, pending: PendingPairing, code: str, base_url: str) -> Pairing:
        credentials = self._credentials()
        grant = code_grant(code, credentials, pending.redirect_uri)
        # Before the single-use code is spent: storing Sage's answer then needs no KMS call that could fail.
        self._store.prepare_to_seal(pending.tenant, SEAL_WITHIN_SECONDS)
        try:
            payload = self._sage().token(base_url, grant)
        except GrantRefused as refusal:
            # Sage's message (already scrubbed by the client) is for the log only, never for the page.
            logger.debug(
                "Sage X3 refused the code exchange",
                extra={"upstream_status": refusal.upstream_status, "sage_message": refusal.sage_message},
            )
            raise ExchangeRefused(f"Sage X3 refused the code exchange ({refusal.upstream_status}).") from None
        except (UpstreamError, QuotaExceeded) as exc:
            raise ExchangeRefused(exc.message) from None
        tokens = parse_token_response(payload, self._clock())
        self._accepted(self._clock(), credentials, base_url, pending.tenant)
        identity = x3_identity(tokens.access_token)
        pairing = self._store.save_pairing(
            pending.tenant,
            pending.customer,
            base_url,
            tokens,
            self._clock(),
            identity=identity,
            replace=pending.replace,
        )
        if pairing is None:
            # The grant is dropped unused: Sage publishes no revocation, and the customer can delete it.
            logger.warning(
                "Pairing refused: another X3 than the paired one",
                extra={"tenant": pending.tenant, "x3_issuer": identity.issuer if identity else None},
            )
            raise IdentityMismatch("Sage X3 granted another X3 than the one the tenant is paired with.")
        logger.info("Pairing completed", extra={"tenant": pending.tenant, "folders": pairing.folders})
        return pairing
