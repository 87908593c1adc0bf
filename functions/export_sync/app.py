"""PUT/GET /tenants/{tenant}/folders/{folder}/sync: whether a granted folder's exports are delivered to the
bucket, and how its delivery goes (last run, files delivered, last error)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.errors import BadRequest
from x3link.web.api import json_api, json_body, tenant_parameter

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in init when Lambda keeps the init (SnapStart): see wiring.prime.
wiring.prime(wiring.sync_switch)


@app.put("/tenants/<tenant>/folders/<folder>/sync")
def set_sync(tenant: str, folder: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    body = json_body(app)
    enabled = body.get("enabled") if isinstance(body, dict) else None
    if not isinstance(enabled, bool):
        raise BadRequest('The body must be {"enabled": true} or {"enabled": false}.')
    logger.append_keys(tenant=tenant, folder=folder)
    state = wiring.sync_switch().set(tenant, folder, enabled)
    logger.info("Folder sync switched", extra={"enabled": enabled})
    return state


@app.get("/tenants/<tenant>/folders/<folder>/sync")
def get_sync(tenant: str, folder: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, folder=folder)
    return wiring.sync_switch().view(tenant, folder)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
