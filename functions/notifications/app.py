"""POST /notifications: Sage X3's data delivery notification. Public: its `HMAC_SHA256` header is checked.

A missing or bad signature gets 401 and nothing else: no table is read, nothing is fetched. A good one gets
200 `{"status": "accepted"}` whatever became of it (a duplicate, a customer no tenant is paired with, a
`detailUrl` refused), so the answer tells a prober nothing; what became of it is logged and counted. Only a
failure that may pass (Sage or AWS did not answer) is answered as one, so that a sender that retries does.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.errors import BadSignature
from x3link.sage import notifications
from x3link.web.api import body_bytes, json_api, request_budget

logger = Logger()
metrics = Metrics()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.credentials_source, wiring.notification_inbox)


@app.post("/notifications")
def notification() -> dict[str, Any]:
    event = app.current_event
    body = body_bytes(app)
    signature = notifications.signature_header(event.raw_event.get("headers"), event.multi_value_headers)
    if not notifications.is_signed(body, signature, wiring.client_credentials().client_id):
        metrics.add_metric(name="NotificationsUnsigned", unit=MetricUnit.Count, value=1)
        raise BadSignature(f"The {notifications.SIGNATURE_HEADER} header is missing or is not the body's.")
    metrics.add_metric(name="NotificationsReceived", unit=MetricUnit.Count, value=1)
    received = notifications.parse(body)
    logger.append_keys(notification_id=received.notification_id)
    receipt = wiring.notification_inbox().receive(received, request_budget(app))
    for name, value in (
        ("NotificationsRecorded", receipt.recorded),
        ("NotificationDetailsRefused", receipt.refused),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if receipt.tenants:
        _scan_exports(receipt.tenants)
    return {"status": "accepted"}


def _scan_exports(tenants: list[str]) -> None:
    """Their enabled folders are scanned at once (the schedule's poll is the backstop: a scan not queued
    here costs a delay, never a file, so its failure fails nothing)."""
    try:
        wiring.export_poller().notified(tenants)
    except Exception as exc:
        logger.warning("Could not queue an export scan", extra={"error": type(exc).__name__})


# The event carries the signature and Sage's text: it is never logged, whatever the environment says.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
