"""How errors leave the JSON routes: `{"error": code, "message": sentence}`, the contract's shape."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Mapping

# Any: events and Powertools' Response bodies are JSON; a route handler takes any arguments.
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from x3link.budget import Budget
from x3link.config import TENANT_PATTERN, TENANT_RULE
from x3link.errors import BadRequest, NotFound, StorageUnavailable, X3LinkError
from x3link.web import request_json

logger = Logger(child=True)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

_BAD_NAME = "A folder, file name or tracking id in the path holds a '/', a '\\' or a control character."


def error_response(error: X3LinkError) -> Response[Any]:
    if error.status >= 500:
        logger.warning("Request failed", extra={"error": error.code, "detail": error.message})
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error.code, "message": error.message},
        headers=error.headers() or None,  # e.g. Sage's Retry-After on quota_exceeded
    )


def aws_unavailable(error: Exception) -> Response[Any]:
    """An AWS call that failed after its retries: say so (503), never with AWS's message."""
    code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
    logger.warning("An AWS service did not answer", extra={"error": code or type(error).__name__})
    return error_response(
        StorageUnavailable("A service the bundle keeps its state in did not answer; try again.")
    )


def unexpected_error(error: Exception) -> Response[Any]:
    logger.exception("Unexpected failure")
    return Response(
        status_code=500,
        content_type=content_types.APPLICATION_JSON,
        body={"error": "internal_error", "message": "Something went wrong; it has been logged."},
    )


def _bad_path(parameters: Mapping[str, str]) -> X3LinkError:
    """Why a path that no route of its function takes is refused: its `{tenant}`, or another name in it."""
    tenant = parameters.get("tenant")
    if tenant is not None and (len(parameters) == 1 or not TENANT_PATTERN.fullmatch(tenant)):
        return BadRequest(TENANT_RULE)
    if parameters:
        return BadRequest(_BAD_NAME)
    return NotFound("No such route.")


def tenant_parameter(tenant: str) -> str:
    """The `{tenant}` path parameter, held to the same pattern as when the pairing was started."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise BadRequest(TENANT_RULE)
    return tenant


def json_body(app: APIGatewayRestResolver) -> Any:
    """The request's body as JSON, read within `request_json`'s bounds (None when there is no body).

    Not Powertools' `json_body`: a body nested too deep would raise RecursionError there, a 500.
    """
    event = app.current_event
    body = event.body
    if not body:
        return None
    if event.is_base64_encoded:
        try:
            raw: str | bytes = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The body is not valid base64.") from None
    else:
        raw = body
    try:
        return request_json.loads(raw)
    except request_json.NotAcceptableJson as exc:
        raise BadRequest(str(exc)) from None


def body_bytes(app: APIGatewayRestResolver) -> bytes:
    """The request's body as the bytes that were sent (what a signature over the body covers)."""
    event = app.current_event
    if not event.body:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(event.body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The body is not valid base64.") from None
    return event.body.encode("utf-8", "surrogatepass")


def request_budget(app: APIGatewayRestResolver) -> Budget:
    """The deadlines of the request `app` is resolving: its invocation's end and API Gateway's 29 s."""
    return Budget.for_api_request(
        app.current_event.raw_event, app.lambda_context.get_remaining_time_in_millis()
    )


class TemplateRoutedResolver(APIGatewayRestResolver):
    """A resolver that answers the route API Gateway chose, with the parameters API Gateway decoded.

    The resolver matches the event's decoded `path` against a pattern that refuses many characters a file
    name may hold (`"`, `#`, `?`, `€`, a no-break space...): a file Sage listed could then never be fetched.
    API Gateway has already matched the request to a template route (`resource`) and decoded its parameters
    (`pathParameters`), so the path is rebuilt from those, percent-encoded (which the resolver accepts), and
    each handler is called with API Gateway's own values.
    """

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        return super().resolve(_routable(event), context)

    def route(self, *args: Any, **kwargs: Any) -> Callable[[_Handler], _Handler]:
        """Powertools' `route` (which `get`, `post`... call), registering the handler wrapped so that it is
        called with API Gateway's decoded path parameters: our own code, never a write into the resolver's
        private route arguments."""
        register = super().route(*args, **kwargs)

        def decorator(handler: _Handler) -> _Handler:
            register(self._with_api_gateway_arguments(handler))
            return handler

        return decorator

    def _with_api_gateway_arguments(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def called(**arguments: Any) -> Any:
            # The arguments are the resolver's, parsed from the rebuilt (percent-encoded) path: each becomes
            # API Gateway's own decoded value.
            decoded = self.current_event.path_parameters or {}
            return handler(
                **{
                    name: decoded.get(name, unquote(value)) if isinstance(value, str) else value
                    for name, value in arguments.items()
                }
            )

        return called


_TEMPLATE_PARAMETER = re.compile(r"\{(\w+)\+?\}")


def _routable(event: Mapping[str, Any]) -> Mapping[str, Any]:
    resource, parameters = event.get("resource"), event.get("pathParameters") or {}
    if not isinstance(resource, str) or "{" not in resource or not isinstance(parameters, dict):
        return event
    try:
        path = _TEMPLATE_PARAMETER.sub(lambda found: quote(parameters[found.group(1)], safe=""), resource)
    except (KeyError, TypeError):
        return event
    return {**event, "path": path}


def json_api() -> APIGatewayRestResolver:
    """A REST resolver whose failures all leave in the contract's JSON error shape."""
    app = TemplateRoutedResolver()

    def no_route(_: Exception) -> Response[Any]:
        # API Gateway routed the request here, so a path that no route matches is a `{tenant}` (or a folder,
        # file name or tracking id) holding an encoded "/" or the like: the request is bad, not the bundle.
        return error_response(_bad_path(app.current_event.path_parameters or {}))

    def same_route(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        # The resolver matches the decoded path and ignores trailing slashes: `/tenants/%2F` would reach
        # GET /tenants. Only the route API Gateway chose (the event's `resource`) may answer; the route the
        # resolver matched is `app.request.route`, in the same `{name}` form.
        route, resource = app.request.route, app.current_event.resource
        if resource and route != resource:
            return error_response(_bad_path(app.current_event.path_parameters or {}))
        return next_middleware(app)

    app.not_found(no_route)
    app.use([same_route])
    app.exception_handler(X3LinkError)(error_response)
    app.exception_handler([ClientError, BotoCoreError])(aws_unavailable)
    app.exception_handler(Exception)(unexpected_error)
    return app
