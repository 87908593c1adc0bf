"""How errors leave the JSON routes: `{"error": code, "message": sentence}`, the contract's shape."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from x3link.errors import X3LinkError

logger = Logger(child=True)


def error_response(error: X3LinkError) -> Response:
    if error.status >= 500:
        logger.warning("Request failed", extra={"error": error.code, "detail": error.message})
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error.code, "message": error.message},
    )


def unexpected_error(error: Exception) -> Response:
    logger.exception("Unexpected failure")
    return Response(
        status_code=500,
        content_type=content_types.APPLICATION_JSON,
        body={"error": "internal_error", "message": "Something went wrong; it has been logged."},
    )


def json_api() -> APIGatewayRestResolver:
    """A REST resolver whose failures all leave in the contract's JSON error shape."""
    app = APIGatewayRestResolver()
    app.exception_handler(X3LinkError)(error_response)
    app.exception_handler(Exception)(unexpected_error)
    return app
