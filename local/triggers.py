"""Lambda's event source mappings on one machine: the template's `DynamoDB` and `SQS` triggers, each read
by a poller that hands the function the event Lambda would send, and honours its `batchItemFailures`.

- A table's stream is read shard by shard from where the last delivered record left it; a batch with
  failures is offered again from its first failed record (in order, as Lambda does for a shard).
- A queue's messages are deleted when the function took them; failed ones become visible again after
  the queue's visibility timeout and, with a redrive policy, end in its dead-letter queue.

`pump()` delivers everything pending now (tests); `start()` runs it in a thread until `stop()` (make run).
The mappings come from template.yaml (`local.template.event_sources`), never from a copy.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from local import lambda_context
from local import template as tpl
from local.aws_resources import Stack
from local.background import IDLE_SECONDS, POLLING, Repeating

Invoke = Callable[[dict[str, Any]], Any]


@dataclass
class Delivery:
    """One invocation: the records handed over, and the ids of those the function did not process."""

    function: str
    records: list[dict[str, Any]]
    failed: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def _jsonable(value: Any) -> Any:
    """What Lambda's JSON carries where boto3 hands back Python objects: epoch seconds, base64."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def _call(
    function: str, invoke: Invoke, records: list[dict[str, Any]], ids: list[str], partial: bool
) -> Delivery:
    """Invoke once; a raised error fails every record, a partial response the records it names."""
    try:
        result = invoke({"Records": records})
    except Exception as exc:
        return Delivery(function, records, list(ids), f"{type(exc).__name__}: {exc}")
    if not partial or not isinstance(result, Mapping):
        return Delivery(function, records)
    named = [str(item.get("itemIdentifier") or "") for item in result.get("batchItemFailures") or []]
    if any(name not in ids for name in named):
        # Lambda treats an identifier it cannot match as a failure of the whole batch.
        return Delivery(function, records, list(ids), "batchItemFailures named an unknown record")
    return Delivery(function, records, [record_id for record_id in ids if record_id in named])


@dataclass
class _Shard:
    kind: str  # the next iterator's type: TRIM_HORIZON, LATEST, AT_ or AFTER_SEQUENCE_NUMBER
    sequence: str | None = None
    iterator: str | None = None


class StreamPoller:
    """A DynamoDB stream → one function, like a `DynamoDB` event source mapping."""

    def __init__(
        self, source: tpl.EventSource, stream_arn: str, invoke: Invoke, *, start_at: str, client: Any
    ) -> None:
        self.source, self.stream_arn, self._invoke, self._client = source, stream_arn, invoke, client
        self._start_at = start_at
        self._shards: dict[str, _Shard] = {}
        if start_at == "LATEST":
            # Fix the starting point now: a LATEST iterator taken later would skip what came meanwhile.
            for shard_id in self._shard_ids():
                self._shards[shard_id] = _Shard("LATEST")
                self._iterator(shard_id, self._shards[shard_id])

    def _shard_ids(self) -> list[str]:
        ids: list[str] = []
        start: dict[str, str] = {}
        while True:
            description = self._client.describe_stream(StreamArn=self.stream_arn, **start)[
                "StreamDescription"
            ]
            ids += [shard["ShardId"] for shard in description.get("Shards", [])]
            last = description.get("LastEvaluatedShardId")
            if not last:
                return ids
            start = {"ExclusiveStartShardId": last}

    def _iterator(self, shard_id: str, shard: _Shard) -> str:
        if shard.iterator is None:
            extra = {"SequenceNumber": shard.sequence} if shard.sequence else {}
            shard.iterator = self._client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=shard.kind, **extra
            )["ShardIterator"]
        return shard.iterator

    def pump(self) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for shard_id in self._shard_ids():
            shard = self._shards.setdefault(shard_id, _Shard(self._start_at))
            deliveries += self._pump_shard(shard_id, shard)
        return deliveries

    def _pump_shard(self, shard_id: str, shard: _Shard) -> list[Delivery]:
        deliveries: list[Delivery] = []
        while True:
            try:
                answer = self._client.get_records(
                    ShardIterator=self._iterator(shard_id, shard), Limit=self.source.batch_size
                )
            except self._client.exceptions.ExpiredIteratorException:
                shard.iterator = None
                continue
            records = [self._record(raw) for raw in answer.get("Records", [])]
            if not records:
                shard.iterator = answer.get("NextShardIterator")
                return deliveries
            ids = [record["dynamodb"]["SequenceNumber"] for record in records]
            delivery = _call(
                self.source.function, self._invoke, records, ids, self.source.reports_item_failures
            )
            deliveries.append(delivery)
            if delivery.failed:
                # Lambda resumes the shard at the first record the function did not process.
                first = min(ids.index(record_id) for record_id in delivery.failed)
                shard.kind, shard.sequence, shard.iterator = "AT_SEQUENCE_NUMBER", ids[first], None
                return deliveries
            shard.kind, shard.sequence = "AFTER_SEQUENCE_NUMBER", ids[-1]
            shard.iterator = answer.get("NextShardIterator")
            if shard.iterator is None:  # a closed shard, read to its end
                return deliveries

    def _record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        record = _jsonable(dict(raw))
        record["eventSourceARN"] = self.stream_arn
        return record


class QueuePoller:
    """An SQS queue → one function, like an `SQS` event source mapping."""

    def __init__(self, source: tpl.EventSource, queue_arn: str, invoke: Invoke, *, client: Any) -> None:
        self.source, self.queue_arn, self._invoke, self._client = source, queue_arn, invoke, client
        self.queue_url = client.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]

    def pump(self) -> list[Delivery]:
        deliveries: list[Delivery] = []
        seen: set[str] = set()
        while True:
            messages = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                return deliveries
            # A message that failed this pump and is visible again already is delivered (its receive has
            # counted, as Lambda's would), and the pump ends there rather than loop on it.
            again = any(message["MessageId"] in seen for message in messages)
            seen.update(message["MessageId"] for message in messages)
            records = [self._record(message) for message in messages]
            ids = [message["MessageId"] for message in messages]
            delivery = _call(
                self.source.function, self._invoke, records, ids, self.source.reports_item_failures
            )
            deliveries.append(delivery)
            done = [message for message in messages if message["MessageId"] not in delivery.failed]
            for start in range(0, len(done), 10):
                self._client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(done[start : start + 10])
                    ],
                )
            if again:
                return deliveries

    def _record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": _jsonable(value.get("BinaryValue")),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": _jsonable(value.get("BinaryListValues", [])),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.queue_arn.split(":")[3],
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


class Triggers:
    """Every stream and queue trigger of the template, against the resources of `stack`.

    `types` and `functions` narrow it down (a test may want only the table's stream delivered).
    Streams of tables this run created are read from their start (nothing written before the pollers
    started is missed); streams of tables found from an earlier run, from now on (their history was
    announced by that run).
    """

    def __init__(
        self,
        stack: Stack,
        *,
        types: Iterable[str] = tpl.PULL_EVENT_TYPES,
        functions: Iterable[str] | None = None,
        log: Callable[[str], None] | None = None,
        session: boto3.Session | None = None,
        load_handler: Callable[[str], Callable[[dict[str, Any], Any], Any]] = tpl.load_handler,
    ) -> None:
        session = session or boto3.Session()
        self.log = log or (lambda _line: None)
        self._load_handler = load_handler
        self._region = stack.refs.get("AWS::Region", session.region_name or "us-east-1")
        self._account = stack.refs.get("AWS::AccountId", "123456789012")
        self._stack_name = stack.refs.get("AWS::StackName", "local")
        wanted_types, wanted = set(types), set(functions) if functions is not None else None
        self.pollers: list[StreamPoller | QueuePoller] = []
        for source in tpl.event_sources():
            if source.type not in wanted_types or (wanted is not None and source.function not in wanted):
                continue
            arn = tpl.resolve(source.source, stack.refs, stack.attrs)
            invoke = self._invoker(source.function)
            if source.type == "DynamoDB":
                table = source.source.value[0] if isinstance(source.source, tpl.Intrinsic) else ""
                start_at = "TRIM_HORIZON" if table in stack.created else "LATEST"
                client = session.client("dynamodbstreams", config=POLLING)
                self.pollers.append(StreamPoller(source, arn, invoke, start_at=start_at, client=client))
            else:
                self.pollers.append(
                    QueuePoller(source, arn, invoke, client=session.client("sqs", config=POLLING))
                )
        self._lock = threading.Lock()
        self._loop = Repeating(self.pump, self.log, name="local-triggers", failing="trigger  polling failed")
        self._failing: set[str] = set()

    def _invoker(self, function: str) -> Invoke:
        def invoke(event: dict[str, Any]) -> Any:
            context = lambda_context.for_function(
                function, region=self._region, account_id=self._account, stack_name=self._stack_name
            )
            return self._load_handler(function)(event, context)

        return invoke

    def pump(self, max_rounds: int = 20) -> list[Delivery]:
        """Deliver everything pending now, repeating while a delivery causes more (a function that writes
        the table feeds the stream); return every invocation made."""
        deliveries: list[Delivery] = []
        with self._lock:
            for _ in range(max_rounds):
                round_ = [delivery for poller in self.pollers for delivery in poller.pump()]
                self._report(round_)
                deliveries += round_
                if not any(delivery.ok for delivery in round_):
                    break
        return deliveries

    def _report(self, deliveries: list[Delivery]) -> None:
        """One line when a function starts failing its records, one when it takes them again."""
        for delivery in deliveries:
            if delivery.failed and delivery.function not in self._failing:
                self._failing.add(delivery.function)
                reason = delivery.error or "batchItemFailures"
                self.log(
                    f"trigger  {delivery.function} did not process {len(delivery.failed)} of "
                    f"{len(delivery.records)} records ({reason}); they will be retried"
                )
            elif delivery.ok and delivery.function in self._failing:
                self._failing.discard(delivery.function)
                self.log(f"trigger  {delivery.function} processes its records again")

    def start(self, interval: float = 0.25, idle_interval: float = IDLE_SECONDS) -> Triggers:
        """Poll in a background thread (daemon) until stop(); slower while nothing arrives."""
        if self.pollers:
            self._loop.start(interval, idle_interval=idle_interval)
        return self

    def wake(self) -> None:
        """Poll now: a function just ran, and may have sent something."""
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()

    def __enter__(self) -> Triggers:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
