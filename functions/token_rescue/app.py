"""Rescue queue trigger: stores parked tokens within seconds, and sets aside what can never be applied.

Each record is opened (KMS checks it was sealed for the pairing it names) and handed to the keeper, which
stores it under the pairing's generation and version or finds it superseded. A poison record goes to the
dead-letter queue at once and counts as handled; a record the table would not take now is reported as a
batch item failure, so SQS hands it back later (and redrives it after a few tries).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.counted_metrics import log_counted_metrics
from x3link.refresh.rescue_messages import PoisonMessage

logger = Logger()
metrics = Metrics()
# A batch whose every record failed is still answered with its failures, not raised as one error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.token_rescue, wiring.token_keeper)


class NotStoredYet(Exception):
    """The rescued tokens could not be stored now; the message stays on the queue for a retry."""


def record_handler(record: SQSRecord) -> str:
    logger.append_keys(message_id=record.message_id)  # never the body: it carries sealed tokens
    rescue = wiring.token_rescue()
    try:
        rescued = rescue.open(record.body)
    except PoisonMessage as poison:
        rescue.quarantine(record.body, poison.reason)
        return "poisoned"  # handled: the trigger deletes it from the rescue queue
    if not wiring.token_keeper().apply_rescued(rescued):
        raise NotStoredYet("The rescued tokens could not be stored yet; the message stays for a retry.")
    metrics.add_metric(name="TokensRescued", unit=MetricUnit.Count, value=1)
    logger.info("Rescued tokens applied", extra={"tenant": rescued.tenant})
    return "stored"


# The records carry sealed tokens: the event is never logged, whatever the environment says.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@log_counted_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
