"""Every failure a caller can see, with the HTTP status and snake_case code the contract gives it.

Messages are written for people and must never carry a code, a token or the client secret.
"""

from __future__ import annotations


class X3LinkError(Exception):
    status: int = 500
    code: str = "internal_error"
    # True when a request left for Sage X3 and no answer was read: Sage may have applied it.
    maybe_applied: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Headers the error's JSON answer carries besides its body (none but for a few)."""
        return {}


class BadRequest(X3LinkError):
    status, code = 400, "bad_request"


class BadSignature(X3LinkError):
    """A notification whose `HMAC_SHA256` header is missing or is not the body's: nothing else is done."""

    status, code = 401, "bad_signature"


class ConfigurationError(X3LinkError):
    status, code = 500, "configuration_error"


class NotFound(X3LinkError):
    status, code = 404, "not_found"


class NotPaired(X3LinkError):
    status, code = 404, "not_paired"


class RunNotFound(X3LinkError):
    """No keep-alive run has this id (or the run's report has expired, weeks after it ran)."""

    status, code = 404, "unknown_run"


class LinkNotFound(X3LinkError):
    """No pairing link has this public id (or it expired long enough ago to be gone)."""

    status, code = 404, "unknown_link"


class LinkUsed(X3LinkError):
    """The pairing link was opened already: revoking it would change nothing."""

    status, code = 409, "link_used"


class PairingExpired(X3LinkError):
    status, code = 409, "pairing_expired"


class PairingSuspended(X3LinkError):
    """Sage refuses this pairing's grant, but the grace period runs: it is retried with backoff."""

    status, code = 409, "pairing_suspended"


class AppUnavailable(X3LinkError):
    """Sage refuses the app itself (the circuit breaker is open): no pairing is touched meanwhile."""

    status, code = 503, "app_unavailable"


class RefusalHeld(AppUnavailable):
    """Sage refused a refresh, and nothing shows yet whether it refuses the app or the grant: the pairing
    keeps its status until the evidence across pairings decides, and the caller tries again later."""


class StorageUnavailable(X3LinkError):
    """An AWS service the bundle keeps its state in did not answer; nothing was changed for good."""

    status, code = 503, "service_unavailable"


class SealedTokensUnreadable(X3LinkError):
    """A pairing's sealed tokens do not open for its tenant and table (moved from another item, altered, or
    sealed with another key). Nothing is overwritten or deleted because of it; the message names no secret."""

    status, code = 500, "tokens_unreadable"

    def __init__(
        self,
        message: str = "This pairing's stored tokens cannot be opened: they were not sealed for this tenant "
        "in this table (copied from another item, altered, or sealed with another key). Nothing was "
        "changed; restore the item or pair the tenant again.",
    ) -> None:
        super().__init__(message)


class UpstreamError(X3LinkError):
    status, code = 502, "upstream_error"


class GatewayNotAllowed(X3LinkError):
    """A call that would carry a token or the client secret goes to a URL off the configured allow-list
    (a pairing's stored endpoint, or a URL in Sage's answer): refused, nothing sent. Never names the URL."""

    status, code = 502, "endpoint_not_allowed"

    def __init__(
        self,
        message: str = "This pairing's Sage X3 endpoint is not one of the configured gateways, so nothing "
        "was sent to it: an operator must check the pairing's endpoint (SAGE_X3_URL and "
        "SAGE_X3_ALLOWED_ENDPOINTS list the gateways allowed).",
    ) -> None:
        super().__init__(message)


class UpstreamTimeout(X3LinkError):
    status, code = 504, "upstream_timeout"


class Unauthorised(UpstreamError):
    """Sage X3 answered 401 to an access token: refresh once and retry once."""

    def __init__(self, message: str, sage_message: str = "") -> None:
        super().__init__(message)
        # What Sage said (scrubbed): a data route may know a 401 that is no token refusal at all.
        self.sage_message = sage_message


class UpstreamRefused(UpstreamError):
    """Sage X3 refused a data request (a 4xx other than 401 and 429); the data route says what it means."""

    def __init__(self, status: int, sage_message: str) -> None:
        super().__init__(f"Sage X3 refused the request ({status}): {sage_message}")
        self.upstream_status = status
        self.sage_message = sage_message


class QuotaExceeded(X3LinkError):
    """Sage X3's per-customer daily request quota is spent (its 429); Sage's `Retry-After` is passed on."""

    status, code = 429, "quota_exceeded"

    def __init__(self, retry_after: str | None = None) -> None:
        super().__init__("Sage X3's daily request quota for this customer is spent; try again later.")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}


class FolderNotGranted(X3LinkError):
    """The customer did not grant the pairing this folder: refused before Sage is called."""

    status, code = 403, "folder_not_granted"


class ScopeNotGranted(X3LinkError):
    """The pairing was not granted the scope a route needs (`api.graphQL`): refused before Sage is called."""

    status, code = 403, "scope_not_granted"


class BodyTooLarge(X3LinkError):
    """A request body past the route's documented cap: refused before Sage is called."""

    status, code = 413, "body_too_large"


class FileNotFound(X3LinkError):
    status, code = 404, "file_not_found"


class UploadNotFound(X3LinkError):
    """Sage X3 knows no upload under this tracking id (for this customer)."""

    status, code = 404, "upload_not_found"


class FileExists(X3LinkError):
    """Sage X3 already holds a file of that name in the folder's ingestion area."""

    status, code = 409, "file_exists"


class GrantRefused(UpstreamError):
    """Sage X3's token endpoint refused a grant (a 4xx): the code or refresh token may be dead."""

    def __init__(self, status: int, sage_message: str, *, from_sage: bool = True) -> None:
        super().__init__(f"Sage X3 refused the grant ({status}): {sage_message}")
        self.upstream_status = status
        self.sage_message = sage_message
        # False when the body is not Sage's `{"message"}` JSON: a proxy or firewall answered, not Sage.
        self.from_sage = from_sage


# Callback failures: shown to a person in a browser, as HTML.
class CallbackError(X3LinkError):
    status, code = 400, "invalid_callback"


class InvalidState(CallbackError):
    code = "invalid_state"


class EndpointNotAllowed(CallbackError):
    code = "endpoint_not_allowed"


class AuthorisationDenied(CallbackError):
    code = "authorisation_denied"


class ExchangeRefused(CallbackError):
    status, code = 502, "exchange_refused"


class BrowserMismatch(CallbackError):
    """The callback came without the cookie of the browser that opened the pairing link."""

    code = "browser_mismatch"


class IdentityMismatch(CallbackError):
    """Sage X3 granted another X3 than the one the tenant is paired with, and no replace was asked."""

    status, code = 409, "identity_mismatch"


class PairingLinkInvalid(CallbackError):
    """A pairing link that is unknown, used or expired (one answer for all three: it reveals nothing)."""

    status, code = 404, "pairing_link_invalid"
