"""How errors leave the JSON routes: `{"error": code, "message": sentence}`, the contract's shape."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from botocore.exceptions import BotoCoreError, ClientError

from x3link import request_json
from x3link.budget import Budget
from x3link.config import TENANT_PATTERN
from x3link.errors import BadRequest, NotFound, StorageUnavailable, X3LinkError

logger = Logger(child=True)

_BAD_TENANT = "tenant must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."


def error_response(error: X3LinkError) -> Response[Any]:
    if error.status >= 500:
        logger.warning("Request failed", extra={"error": error.code, "detail": error.message})
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error.code, "message": error.message},
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


def tenant_parameter(tenant: str) -> str:
    """The `{tenant}` path parameter, held to the same pattern as when the pairing was started."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise BadRequest(_BAD_TENANT)
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


def request_budget(app: APIGatewayRestResolver) -> Budget:
    """The deadlines of the request `app` is resolving: its invocation's end and API Gateway's 29 s."""
    return Budget.for_api_request(
        app.current_event.raw_event, app.lambda_context.get_remaining_time_in_millis()
    )


def json_api() -> APIGatewayRestResolver:
    """A REST resolver whose failures all leave in the contract's JSON error shape."""
    app = APIGatewayRestResolver()

    def no_route(_: Exception) -> Response[Any]:
        # API Gateway routed the request here, so a path that no route matches is a `{tenant}` holding an
        # encoded "/" or the like: the request is bad, not the bundle.
        tenant = (app.current_event.path_parameters or {}).get("tenant")
        if tenant is not None:
            return error_response(BadRequest(_BAD_TENANT))
        return error_response(NotFound("No such route."))

    app.not_found(no_route)
    app.exception_handler(X3LinkError)(error_response)
    app.exception_handler([ClientError, BotoCoreError])(aws_unavailable)
    app.exception_handler(Exception)(unexpected_error)
    return app
