"""The browser side of pairing: `GET /v1/token/authorise`, the consent decision, and the callback.

Why: `Emulator.approve()` and the HTML form must follow one set of rules, so both call
`open_request` and `decide` here; only the HTTP wrappers at the bottom render pages.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from werkzeug.wrappers import Response

from . import messages, pages, web
from .models import AuthCode, PendingRequest, customer_key
from .state import State
from .tokens import new_code
from .web import ApiError, GatewayRequest


@dataclass
class Callback:
    """What the browser delivers to the app's redirect URI."""

    redirect_uri: str
    params: dict[str, str]


class CallbackInstead(Exception):
    """The authorise request ends in an error callback instead of the consent page."""

    def __init__(self, callback: Callback) -> None:
        super().__init__(callback.params.get("error", "callback"))
        self.callback = callback


class DecisionError(ValueError):
    """A decision that cannot be applied; `pending` is set when the consent page should be shown again."""

    def __init__(self, status: int, message: str, pending: PendingRequest | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.pending = pending


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0].strip()


def split_scope(scope: str) -> tuple[list[str], str]:
    """Scope entries, and a `customer=<url>` placed inside the scope (one of Sage's samples does so)."""
    entries: list[str] = []
    customer = ""
    for item in scope.split():
        if item.startswith("customer="):
            customer = item.removeprefix("customer=")
        else:
            entries.append(item)
    return entries, customer


def open_request(state: State, region: str, query: dict[str, list[str]]) -> PendingRequest:
    """Validate an authorise request and park it until the X3 user decides.

    Raises ApiError for requests with no trustworthy redirect URI, CallbackInstead when the app
    must be told through its callback (unknown customer).
    """
    client_id = _first(query, "client_id")
    scope_text = _first(query, "scope")
    redirect_uri = _first(query, "redirect_uri")
    state_value = _first(query, "state")
    scopes, customer_in_scope = split_scope(scope_text)
    customer_url = _first(query, "customer") or customer_in_scope
    if not (client_id and scopes and customer_url and redirect_uri and state_value):
        raise ApiError(400, messages.MISSING_PARAMETERS)
    with state.lock:
        client = state.clients.get(client_id)
        if client is None:
            raise ApiError(404, messages.NO_ASSOCIATION)
        if not client.enabled:
            raise ApiError(403, messages.APP_DISABLED)
        if not client.accepts_redirect(redirect_uri):
            raise ApiError(404, messages.NO_ASSOCIATION)
        customer = state.find_customer(customer_url, create=True)
        if customer is None:
            params = {
                "error": messages.CUSTOMER_NOT_FOUND,
                "error_description": f"No Sage X3 cloud configuration is registered for {customer_url}",
                "statusCode": "404",
                "state": state_value,
            }
            raise CallbackInstead(Callback(redirect_uri, params))
        pending = PendingRequest(
            request_id=secrets.token_urlsafe(18),
            client_id=client_id,
            scopes=scopes,
            customer_url=customer_key(customer.url),
            redirect_uri=redirect_uri,
            state=state_value,
            region=region,
            created_at=state.now(),
        )
        state.pending[pending.request_id] = pending
        return pending


def decide(state: State, request_id: str, *, accept: bool, folders: list[str] | None) -> Callback:
    """Apply the X3 user's decision; accepting needs at least one of the customer's folders."""
    with state.lock:
        pending = state.pending.get(request_id)
        if pending is None:
            raise DecisionError(404, messages.PAIRING_NOT_FOUND)
        if state.now() >= pending.created_at + state.settings.pairing_request_lifetime:
            del state.pending[request_id]
            raise DecisionError(403, messages.REQUEST_EXPIRED)
        customer = state.find_customer(pending.customer_url, create=False)
        if customer is None:
            del state.pending[request_id]
            raise DecisionError(404, messages.CUSTOMER_NOT_FOUND)
        if not accept:
            del state.pending[request_id]
            params = {
                "error": messages.ACCESS_DENIED,
                "error_description": "The X3 user rejected the application's pairing request.",
                "statusCode": "403",
                "state": pending.state,
            }
            return Callback(pending.redirect_uri, params)
        chosen = list(customer.folders) if folders is None else list(dict.fromkeys(folders))
        if not chosen:
            raise DecisionError(400, "Select at least one folder to accept the request.", pending)
        unknown = [name for name in chosen if name not in customer.folders]
        if unknown:
            raise DecisionError(400, f"Unknown folder(s): {', '.join(unknown)}", pending)
        del state.pending[request_id]
        home = state.home_region(customer)
        code = AuthCode(
            code=new_code(),
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            customer_url=pending.customer_url,
            config_id=customer.config_id or "",
            folders=[name for name in customer.folders if name in chosen],
            scopes=list(pending.scopes),
            home_region=home,
            issued_at=state.now(),
        )
        state.codes[code.code] = code
        params = {"authorizationCode": code.code, "state": pending.state}
        if home != pending.region:
            params["endpoint"] = state.base_urls[home]
        return Callback(pending.redirect_uri, params)


# --- HTTP wrappers ----------------------------------------------------------------------------------


def _consent(state: State, pending: PendingRequest, checked: list[str], error: str | None) -> str:
    customer = state.find_customer(pending.customer_url, create=False)
    return pages.consent_page(
        request_id=pending.request_id,
        client_id=pending.client_id,
        scope=" ".join(pending.scopes),
        customer_url=pending.customer_url,
        folders=customer.folders if customer else [],
        checked=checked,
        error=error,
    )


def authorise_page(state: State, req: GatewayRequest) -> Response:
    """`GET /v1/token/authorise`: the consent page, a JSON error, or an auto-submitted error callback."""
    try:
        pending = open_request(state, req.region, dict(req.args.lists()))
    except CallbackInstead as redirect:
        return web.html(200, pages.callback_page(redirect.callback.redirect_uri, redirect.callback.params))
    return web.html(200, _consent(state, pending, [], None))


def decision_page(state: State, req: GatewayRequest) -> Response:
    """`POST /v1/token/authorise/decision`: the consent form's target."""
    request_id = req.form.get("request_id", "")
    decision = req.form.get("decision", "")
    if decision not in ("accept", "reject"):
        return web.html(400, pages.notice_page("Invalid decision", "Choose Accept or Reject."))
    folders = req.form.getlist("folder")
    try:
        callback = decide(state, request_id, accept=decision == "accept", folders=folders)
    except DecisionError as error:
        if error.pending is not None:
            return web.html(error.status, _consent(state, error.pending, folders, error.message))
        return web.html(error.status, pages.notice_page("Pairing request", error.message))
    return web.html(200, pages.callback_page(callback.redirect_uri, callback.params))
