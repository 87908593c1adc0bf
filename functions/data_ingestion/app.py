"""Files the app sends into Sage X3: a presigned upload link into a granted folder, then Sage's tracking
of the file (POST /tenants/{tenant}/folders/{folder}/uploads, GET /tenants/{tenant}/uploads/{tracking_id}),
and the tenant's recent uploads, through this route or the outbox (GET /tenants/{tenant}/uploads)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.data import ingestion, uploads
from x3link.web.api import json_api, json_body, request_budget, tenant_parameter

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.token_keeper, wiring.sage_client)


@app.post("/tenants/<tenant>/folders/<folder>/uploads")
def request_upload(tenant: str, folder: str) -> Response[Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, folder=folder, operation="upload")
    metrics.add_metric(name="DataIngestionRequests", unit=MetricUnit.Count, value=1)
    # The answer holds the presigned upload link: it goes to the app, never to a log line.
    body = json_body(app)
    upload = ingestion.request_upload(
        tenant, folder, body, wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )
    logger.info("Upload link issued", extra={"tracking_id": upload["tracking_id"]})
    ingestion.record_upload(wiring.upload_log(), tenant, folder, body["filename"], upload)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=upload)


@app.get("/tenants/<tenant>/uploads/<tracking_id>")
def upload_status(tenant: str, tracking_id: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, operation="tracking")
    metrics.add_metric(name="DataIngestionRequests", unit=MetricUnit.Count, value=1)
    return ingestion.upload_status(
        tenant, tracking_id, wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )


@app.get("/tenants/<tenant>/uploads")
def list_uploads(tenant: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, operation="uploads")
    limit = uploads.page_limit(app.current_event.get_query_string_value("limit"))
    cursor = app.current_event.get_query_string_value("cursor")
    return uploads.list_uploads(wiring.upload_log(), tenant, limit=limit, cursor=cursor)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
