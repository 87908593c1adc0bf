"""GET|POST /callback: Sage X3 sends the customer's browser here after consent; answer with a page."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.errors import NotFound, X3LinkError
from x3link.pairing.browser_binding import cookies_of
from x3link.sage.callback_params import parse_callback
from x3link.web.page_routes import html_resolver, page
from x3link.web.pages import success_page

logger = Logger()
metrics = Metrics()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.pairing_service, wiring.sage_client, wiring.app_breaker)


def _refused(_: X3LinkError) -> None:
    metrics.add_metric(name="PairingsFailed", unit=MetricUnit.Count, value=1)


app = html_resolver(refused=_refused, not_found=lambda: NotFound("No such page."))


@app.get("/callback")
@app.post("/callback")
def callback() -> Response[Any]:
    event = app.current_event.raw_event
    pairing = wiring.pairing_service().complete(parse_callback(event), cookies_of(event))
    logger.append_keys(tenant=pairing.tenant)
    completed = "PairingPagesReloaded" if pairing.again else "PairingsCompleted"
    metrics.add_metric(name=completed, unit=MetricUnit.Count, value=1)
    success_url = wiring.settings().success_url
    if success_url:
        return page(303, "", Location=success_url)
    paired = pairing.paired
    body = success_page(
        paired.tenant,
        paired.folders,
        endpoint=paired.endpoint,
        x3_subject=paired.x3_subject,
        x3_issuer=paired.x3_issuer,
    )
    return page(200, body)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
