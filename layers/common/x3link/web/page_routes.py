"""How failures leave the routes a person's browser opens (`/pair/{id}`, `/callback`): an HTML page.

The page says one fixed sentence per kind of failure (x3link.web.pages); the reason goes to the log only.
"""

from __future__ import annotations

from collections.abc import Callable

# Any: Powertools' Response is generic over its body.
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from x3link.errors import StorageUnavailable, X3LinkError
from x3link.web.pages import failure_page

HTML = "text/html; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

logger = Logger(child=True)


def page(status: int, body: str, **headers: str) -> Response[Any]:
    return Response(status_code=status, content_type=HTML, body=body, headers={**NO_STORE, **headers})


def html_resolver(
    *, refused: Callable[[X3LinkError], None], not_found: Callable[[], X3LinkError]
) -> APIGatewayRestResolver:
    """A resolver whose failures are pages: `refused` hears of each expected one (to count it), and
    `not_found` says what a path the routes do not match is (the catch-all must not take it for a 500)."""
    app = APIGatewayRestResolver()

    def failed(error: X3LinkError) -> Response[Any]:
        logger.info("Page refused", extra={"error": error.code, "detail": error.message})
        refused(error)
        return page(error.status, failure_page(error.code))

    def aws_unavailable(error: Exception) -> Response[Any]:
        code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
        logger.warning("An AWS service did not answer", extra={"error": code or type(error).__name__})
        return failed(StorageUnavailable("An AWS service did not answer."))

    def crashed(_: Exception) -> Response[Any]:
        logger.exception("Page failed unexpectedly")
        return page(500, failure_page("internal_error"))

    app.not_found(lambda _: failed(not_found()))
    app.exception_handler(X3LinkError)(failed)
    app.exception_handler([ClientError, BotoCoreError])(aws_unavailable)
    app.exception_handler(Exception)(crashed)
    return app
