"""Scheduled keep-alive sweep: refresh every pairing whose refresh token expires within the window, and
retry every suspended pairing whose next attempt is due."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring

SAFETY_SECONDS = 45

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Leave time to finish the refresh under way and report, rather than be cut off mid-write.
    stop_at = time.time() + context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    summary = wiring.token_keeper().sweep(wiring.settings().keep_alive_seconds, stop_at=stop_at)
    # Suspensions, expiries and refusals of the app are counted where they happen (the keeper), for the
    # queries' refreshes as for the sweep's: here only what the sweep alone knows.
    for name, value in (
        ("TokensRefreshed", summary.refreshed),
        ("RefreshesHeld", summary.held),
        ("RefreshesFailed", summary.failed),
        ("TokensRescued", summary.rescued),
        ("RefreshesDeferred", summary.deferred),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("Keep-alive sweep done", extra=summary.as_dict())
    return summary.as_dict()
