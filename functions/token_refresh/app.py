"""Scheduled keep-alive: queues every pairing that is due (an active one whose refresh token expires within
the keep-alive window, a suspended one whose retry may be due) for RefreshWorkerFunction, spread over the
window, and answers what it queued.

Invoked with `{"report": "<run>"}` instead, it answers what that run's workers have done so far.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics

# Queuing stops this long before the invocation would be cut off: what is left is counted as deferred.
SAFETY_SECONDS = 10

logger = Logger()
metrics = Metrics()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.keep_alive_dispatcher, wiring.run_ledger)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = event.get("report") if isinstance(event, dict) else None
    if run is not None:
        report = wiring.run_ledger().report(str(run))
        if report is None:
            return {"error": "unknown_run", "message": "No keep-alive run has this id."}
        return report.as_dict()
    stop_at = time.time() + context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    report = wiring.keep_alive_dispatcher().run(stop_at)
    for name, value in (
        ("RefreshesQueued", report.queued),
        ("RefreshesDeferred", report.deferred),
        ("TokensRescued", report.rescued),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("Keep-alive run queued", extra={"run": report.run, "queued": report.queued})
    return report.as_dict()
