"""POST /tenants/{tenant}/refresh: an operator retries a suspended or expired pairing now."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.web.api import json_api, request_budget, tenant_parameter

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.token_keeper)


@app.post("/tenants/<tenant>/refresh")
def retry(tenant: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant)
    metrics.add_metric(name="OperatorRetries", unit=MetricUnit.Count, value=1)
    budget = request_budget(app)
    pairing = wiring.token_keeper().retry(tenant, budget)
    logger.info("Pairing retried by an operator", extra={"status": pairing.status})
    return pairing.describe(time.time())


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
