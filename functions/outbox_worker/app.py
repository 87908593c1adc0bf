"""Outbox queue trigger: each S3 event of a new outbox object, and each of the worker's own follow-ups,
moves one file a step towards Sage X3 (checked, sent, followed: x3link/outbox/worker.py).

A message whose handling raised is a batch item failure: SQS hands it back, and after three receives sets
it aside in OutboxDeadLetterQueue (OutboxDeadLetterAlarm). A file Sage would not take for now is not a
failure: the worker queues its retry itself, delayed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# What it uses, built in init when Lambda keeps the init (SnapStart): see wiring.prime.
wiring.prime(wiring.outbox_worker)


def record_handler(record: SQSRecord) -> None:
    logger.append_keys(message_id=record.message_id)
    wiring.outbox_worker().handle(record.body)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
