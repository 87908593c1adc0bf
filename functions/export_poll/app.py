"""Scheduled delivery poll: queues a scan of every folder whose delivery is on, so that a file whose
notification Sage never sent is delivered at the next poll (DeliveryPollMinutes) rather than never."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics

logger = Logger()
metrics = Metrics()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.export_poller)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    done = wiring.export_poller().run()
    metrics.add_metric(name="DeliveryScansQueued", unit=MetricUnit.Count, value=done["queued"])
    logger.info("Delivery poll queued", extra=done)
    return done
