"""The pairings', notifications', uploads' and export ledger's change streams → the activity table, each
record at least once.

A record whose entries could not be written is reported in `batchItemFailures`, so Lambda hands it back;
a record written twice rewrites the same items (their keys come from the record).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.events import activity

logger = Logger()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.activity_log)


def _record(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    change = raw.get("dynamodb", {})
    entries = activity.entries_for(
        raw.get("eventName", ""),
        change.get("OldImage"),
        change.get("NewImage"),
        at_epoch=change.get("ApproximateCreationDateTime"),
    )
    if entries:
        wiring.activity_log().record(entries, str(change.get("SequenceNumber", "")))


# The stream's images hold the pairing's tokens: the event is never logged, whatever the environment says.
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
