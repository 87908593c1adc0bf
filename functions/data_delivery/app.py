"""The files Sage X3 delivered into a granted folder: list them a page at a time, hand out one's presigned
download link, delete one (GET/DELETE /tenants/{tenant}/folders/{folder}/files[/{filename}])."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.data import delivery
from x3link.web.api import json_api, request_budget, tenant_parameter

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.token_keeper, wiring.sage_client)


def _tenant(tenant: str, folder: str, operation: str) -> str:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant, folder=folder, operation=operation)
    metrics.add_metric(name="DataDeliveryRequests", unit=MetricUnit.Count, value=1)
    return tenant


@app.get("/tenants/<tenant>/folders/<folder>/files")
def list_files(tenant: str, folder: str) -> dict[str, Any]:
    tenant = _tenant(tenant, folder, "list")
    cursor = app.current_event.get_query_string_value("cursor")
    return delivery.list_files(
        tenant, folder, cursor, wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )


@app.get("/tenants/<tenant>/folders/<folder>/files/<filename>")
def download(tenant: str, folder: str, filename: str) -> dict[str, Any]:
    tenant = _tenant(tenant, folder, "download")
    # The answer holds the presigned link: it goes to the app, never to a log line.
    return delivery.download_link(
        tenant, folder, filename, wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )


@app.delete("/tenants/<tenant>/folders/<folder>/files/<filename>")
def delete(tenant: str, folder: str, filename: str) -> Response[Any]:
    tenant = _tenant(tenant, folder, "delete")
    delivery.delete_file(
        tenant, folder, filename, wiring.token_keeper(), wiring.sage_client(), request_budget(app)
    )
    logger.info("Delivered file deleted at Sage X3")
    return Response(status_code=204, body="")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
