"""Scheduled keep-alive sweep: refresh every pairing whose refresh token expires within the window."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = wiring.token_keeper().sweep(wiring.settings().keep_alive_seconds)
    for name, value in (
        ("TokensRefreshed", summary.refreshed),
        ("PairingsExpired", summary.expired),
        ("RefreshesFailed", summary.failed),
        ("TokensRescued", summary.rescued),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("Keep-alive sweep done", extra=summary.as_dict())
    return summary.as_dict()
