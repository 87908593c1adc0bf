"""The delivery queue (SQS) as the poller and the worker use it: orders sent in batches, an order sent again
for later, a failed message's retry backed off. Its own module so the poller loads no S3 or worker code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from x3link.aws.sqs_delays import sqs_delay
from x3link.exports.orders import Order

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH = 10


class DeliveryQueue:
    def __init__(self, url: str, sqs: SQSClient) -> None:
        self._url = url
        self._sqs = sqs

    def send(self, orders: list[Order]) -> int:
        """Send orders ten at a time, entries SQS refuses tried once more; how many were sent."""
        sent = 0
        for start in range(0, len(orders), SQS_BATCH):
            chunk = orders[start : start + SQS_BATCH]
            pending = {str(i): order for i, order in enumerate(chunk)}
            for _ in range(2):
                if not pending:
                    break
                answer = self._sqs.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": key, "MessageBody": order.body()} for key, order in pending.items()],
                )
                pending = {entry["Id"]: pending[entry["Id"]] for entry in answer.get("Failed", [])}
            sent += len(chunk) - len(pending)
        return sent

    def later(self, order: Order, delay: float) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=order.body(), DelaySeconds=sqs_delay(delay))

    def hide(self, receipt_handle: str, seconds: float) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=sqs_delay(seconds)
        )
