"""Every failure a caller can see, with the HTTP status and snake_case code the contract gives it.

Messages are written for people and must never carry a code, a token or the client secret.
"""

from __future__ import annotations


class X3LinkError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(X3LinkError):
    status, code = 400, "bad_request"


class ConfigurationError(X3LinkError):
    status, code = 500, "configuration_error"


class NotPaired(X3LinkError):
    status, code = 404, "not_paired"


class PairingExpired(X3LinkError):
    status, code = 409, "pairing_expired"


class UpstreamError(X3LinkError):
    status, code = 502, "upstream_error"


class UpstreamTimeout(X3LinkError):
    status, code = 504, "upstream_timeout"


class Unauthorised(UpstreamError):
    """Sage X3 answered 401 to an access token: refresh once and retry once."""


class GrantRefused(UpstreamError):
    """Sage X3's token endpoint refused a grant (a 4xx): the code or refresh token may be dead."""

    def __init__(self, status: int, sage_message: str) -> None:
        super().__init__(f"Sage X3 refused the grant ({status}): {sage_message}")
        self.upstream_status = status
        self.sage_message = sage_message


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
