"""Delivery queue trigger: a scan lists a folder at Sage and queues its files; a file is streamed into the
bucket, verified, recorded and only then deleted at Sage, exactly once per file version.

A delivery that failed for now is a batch item failure: SQS hands it back after a backoff, and after five
receives sets it aside (DeliveryDeadLetterAlarm); the file is still at Sage, and the next poll finds it.
Sage's 429 and a version another worker holds are not failures: the message is queued again for later.
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

# Left at the end of an invocation: a Sage call is not started that could not finish before it.
SAFETY_SECONDS = 10
METRICS = {
    "delivered": "FilesDelivered",
    "duplicate": "DeliveriesDuplicate",
    "requeued": "DeliveriesRequeued",
    "scanned": "FoldersScanned",
}

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.export_worker)


def record_handler(record: SQSRecord) -> str:
    logger.append_keys(message_id=record.message_id)
    receives = int(record.attributes.approximate_receive_count or 1)
    outcome = wiring.export_worker().handle(record.body, record.receipt_handle, receives)
    if outcome in METRICS:
        metrics.add_metric(name=METRICS[outcome], unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context(log_event=False, clear_state=True)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    worker = wiring.export_worker()
    worker.begin(Budget.for_invocation(context.get_remaining_time_in_millis()).finish_by - SAFETY_SECONDS)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
