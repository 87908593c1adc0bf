"""Refresh queue trigger: refreshes each queued pairing that is still due, with the keeper's refresh under
lease, and adds what it did to its run's report.

A refresh that failed for now is a batch item failure: SQS hands it back after a backoff, and on its last
receive it is counted as failed (the pairing stays due for the next run). Sage's 429 and an ambiguous
refusal are not failures: the message is queued again, after Sage's Retry-After or after the run's other
refreshes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.budget import Budget
from x3link.counted_metrics import log_counted_metrics

# Left at the end of an invocation to report: a refresh that could not finish before it is not started.
SAFETY_SECONDS = 5
METRICS = {
    "refreshed": "TokensRefreshed",
    "held": "RefreshesHeld",
    "failed": "RefreshesFailed",
    "skipped": "RefreshesSkipped",
    "requeued": "RefreshesRequeued",
}

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.keep_alive_worker)


def record_handler(record: SQSRecord) -> str:
    logger.append_keys(message_id=record.message_id)
    receives = int(record.attributes.approximate_receive_count or 1)
    return wiring.keep_alive_worker().handle(record.body, record.receipt_handle, receives)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    worker = wiring.keep_alive_worker()
    worker.begin(Budget.for_invocation(context.get_remaining_time_in_millis()).finish_by - SAFETY_SECONDS)
    try:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )
    finally:
        done = worker.finish()
        for outcome, name in METRICS.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=done.get(outcome, 0))
