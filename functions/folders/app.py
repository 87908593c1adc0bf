"""GET /tenants/{tenant}/folders: the Sage X3 folders the customer granted, read with the tenant's tokens;
POST /tenants/{tenant}/folders/{folder}/graphql: a GraphQL request to a granted folder's data service, Sage's
answer as it is."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.data import live_api
from x3link.data.folders import list_folders
from x3link.web.api import body_bytes, json_api, request_budget, tenant_parameter

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.token_keeper, wiring.sage_client)


@app.get("/tenants/<tenant>/folders")
def folders(tenant: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant)
    metrics.add_metric(name="FolderQueries", unit=MetricUnit.Count, value=1)
    budget = request_budget(app)
    return {"folders": list_folders(tenant, wiring.token_keeper(), wiring.sage_client(), budget)}


@app.post("/tenants/<tenant>/folders/<folder>/graphql")
def graphql(tenant: str, folder: str) -> Response[str]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, folder=folder, operation="graphql")
    metrics.add_metric(name="GraphQLQueries", unit=MetricUnit.Count, value=1)
    # The query and Sage's answer are the customer's data: neither goes to a log line.
    answer = live_api.query(
        tenant, folder, body_bytes(app), wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )
    logger.info("GraphQL request answered", extra={"status": answer.status})
    return Response(status_code=answer.status, content_type=content_types.APPLICATION_JSON, body=answer.body)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
