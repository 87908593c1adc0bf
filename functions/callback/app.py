"""GET|POST /callback: Sage X3 sends the customer's browser here after consent; answer with a page."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.callback_params import parse_callback
from x3link.errors import NotFound, X3LinkError
from x3link.pages import failure_page, success_page

HTML = "text/html; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()


def failed(error: X3LinkError) -> Response[Any]:
    logger.info("Pairing callback refused", extra={"error": error.code, "detail": error.message})
    metrics.add_metric(name="PairingsFailed", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=error.status, content_type=HTML, body=failure_page(error.code), headers=NO_STORE
    )


def crashed(error: Exception) -> Response[Any]:
    logger.exception("Pairing callback failed unexpectedly")
    return Response(
        status_code=500,
        content_type=HTML,
        body=failure_page("internal_error"),
        headers=NO_STORE,
    )


def not_found(_: Exception) -> Response[Any]:
    error = NotFound("No such page.")
    return Response(
        status_code=error.status, content_type=HTML, body=failure_page(error.code), headers=NO_STORE
    )


app.not_found(not_found)  # else the catch-all below would take the resolver's not-found for a 500
app.exception_handler(X3LinkError)(failed)
app.exception_handler(Exception)(crashed)


@app.get("/callback")
@app.post("/callback")
def callback() -> Response[Any]:
    pairing = wiring.pairing_service().complete(parse_callback(app.current_event.raw_event))
    logger.append_keys(tenant=pairing.tenant)
    metrics.add_metric(name="PairingsCompleted", unit=MetricUnit.Count, value=1)
    success_url = wiring.settings().success_url
    if success_url:
        return Response(status_code=303, headers={**NO_STORE, "Location": success_url}, body="")
    return Response(
        status_code=200,
        content_type=HTML,
        body=success_page(pairing.tenant, pairing.folders),
        headers=NO_STORE,
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
