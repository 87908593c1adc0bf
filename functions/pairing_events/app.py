"""The pairings table's change stream → lifecycle events on the bus, each record at least once.

A record whose events EventBridge does not take is reported in `batchItemFailures`, so Lambda hands it
(and, in order, every later record of its shard) back until the bus accepts it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.events import lifecycle

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.event_publisher)


class NotPublished(Exception):
    """EventBridge did not take this record's events (or an earlier record's): retry the record."""


def _events(raw: dict[str, Any]) -> list[lifecycle.LifecycleEvent]:
    change = raw.get("dynamodb", {})
    return lifecycle.events_for(
        raw.get("eventName", ""),
        change.get("OldImage"),
        change.get("NewImage"),
        at_epoch=change.get("ApproximateCreationDateTime"),
    )


class _InOrder:
    """Publishes a batch's records in stream order and stops at the first one that fails.

    Lambda resumes a shard from its first failed record anyway; stopping there keeps subscribers from
    seeing a tenant's later event before an earlier one, and spares publishing it twice.
    """

    def __init__(self) -> None:
        self.blocked_by: str | None = None
        self.published = 0

    def __call__(self, record: DynamoDBRecord) -> None:
        sequence = record.raw_event.get("dynamodb", {}).get("SequenceNumber", "")
        if self.blocked_by is not None:
            raise NotPublished(f"waits for record {self.blocked_by}")
        events = _events(record.raw_event)
        try:
            failed = wiring.event_publisher().publish(events) if events else []
        except Exception:
            self.blocked_by = sequence
            logger.warning("Could not publish lifecycle events", exc_info=True)
            raise
        if failed:
            self.blocked_by = sequence
            logger.warning("EventBridge refused lifecycle events", extra={"event_ids": failed})
            raise NotPublished(f"EventBridge refused {', '.join(failed)}")
        for event in events:
            logger.info(
                "Lifecycle event published",
                extra={
                    "detail_type": event.detail_type,
                    "tenant": event.detail.get("tenant"),
                    "id": event.id,
                },
            )
        self.published += len(events)


# The stream's images hold the pairing's tokens: the event is never logged, whatever the environment says.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    in_order = _InOrder()
    try:
        return process_partial_response(
            event=event, record_handler=in_order, processor=processor, context=context
        )
    finally:
        # Zero too: most changes (token rotation, leases) announce nothing, and that is worth seeing.
        metrics.add_metric(name="LifecycleEventsPublished", unit=MetricUnit.Count, value=in_order.published)
