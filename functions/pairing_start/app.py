"""POST /pairings: start pairing a tenant with its Sage X3 customer and hand back the pairing link."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.pairing.flow import PairingRequest
from x3link.web.api import json_api, json_body

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.pairing_service)


@app.post("/pairings")
def start_pairing() -> Response[Any]:
    metrics.add_metric(name="PairingRequests", unit=MetricUnit.Count, value=1)
    request = PairingRequest.parse(json_body(app))
    logger.append_keys(tenant=request.tenant)
    context = app.current_event.request_context
    settings, domain = wiring.settings(), context.domain_name or ""
    redirect_uri = settings.redirect_uri(domain, context.stage)
    started = wiring.pairing_service().start(
        request, redirect_uri, lambda link_id: settings.public_url(f"/pair/{link_id}", domain, context.stage)
    )
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=started)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
