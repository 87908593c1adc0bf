"""The webhook on `make run`, delivered the way EventBridge's API destination delivers it on AWS.

moto does not call API destinations, so this reads the template's webhook rule, its API destination (URL,
method) and its connection (header name and value, from the parameters), subscribes a local queue to the
bus with the rule's own event pattern, and POSTs each event to the URL with the header. A delivery that
fails in a way EventBridge retries (a timeout, no connection, HTTP 401, 407, 409, 429 or 5xx) is retried
with exponential backoff and jitter until the target's RetryPolicy runs out; then, or at once for any other
answer, the event goes to the rule's dead-letter queue with EventBridge's attributes. Retries wait in the
local queue itself (its message's visibility is the backoff), so a restart loses nothing.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import urllib3

from local import template as tpl
from local.aws_resources import Stack
from local.background import IDLE_SECONDS, POLLING, Repeating

NAME = "local-webhook"
# An API destination's request times out after 5 seconds (EventBridge's limit for HTTP targets).
TIMEOUT_SECONDS = 5.0
# What EventBridge retries besides timeouts and connection failures; every other answer is final.
RETRIED_STATUSES = frozenset({401, 407, 409, 429})
USER_AGENT = "Amazon/EventBridge/ApiDestinations"


@dataclass(frozen=True)
class WebhookTarget:
    """The template's webhook rule, resolved for one stack: where, how, with which header, for how long."""

    rule: str
    url: str
    method: str
    header: str
    secret: str = field(repr=False)
    pattern: dict[str, Any]
    bus: str
    max_retries: int
    max_age_seconds: int
    dead_letter_queue_url: str | None
    rule_arn: str
    target_arn: str


def target(stack: Stack, template: Mapping[str, Any] | None = None) -> WebhookTarget | None:
    """The stack's webhook as the template defines it, or None when no rule of the stack (under its
    parameters' conditions) targets an API destination."""
    created = tpl.created_resources(stack.refs, template)
    for rule_id, rule in created.items():
        if rule["Type"] != "AWS::Events::Rule":
            continue
        for entry in rule["Properties"].get("Targets", []):
            destination_id = _named(entry["Arn"])
            destination = created.get(destination_id or "")
            if destination is None or destination["Type"] != "AWS::Events::ApiDestination":
                continue
            return _resolve(stack, rule_id, rule["Properties"], entry, destination_id or "", created)
    return None


def _named(value: Any) -> str | None:
    """The logical id a `!GetAtt X.Arn` or `!Ref X` names."""
    if isinstance(value, tpl.Intrinsic) and value.name == "Fn::GetAtt":
        return str(value.value[0])
    if isinstance(value, tpl.Intrinsic) and value.name == "Ref":
        return str(value.value)
    return None


def _resolve(
    stack: Stack,
    rule_id: str,
    rule: Mapping[str, Any],
    entry: Mapping[str, Any],
    destination_id: str,
    created: Mapping[str, dict[str, Any]],
) -> WebhookTarget:
    refs, attrs = stack.refs, stack.attrs
    destination = created[destination_id]["Properties"]
    connection_id = _named(destination["ConnectionArn"]) or ""
    auth = created[connection_id]["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
    retry = entry.get("RetryPolicy", {})
    dead_letter = _named(entry.get("DeadLetterConfig", {}).get("Arn"))
    region, account = refs.get("AWS::Region", "us-east-1"), refs.get("AWS::AccountId", "123456789012")
    stack_name = refs.get("AWS::StackName", "local")
    bus = str(tpl.resolve(rule["EventBusName"], refs, attrs))
    return WebhookTarget(
        rule=rule_id,
        url=str(tpl.resolve(destination["InvocationEndpoint"], refs, attrs)),
        method=str(destination.get("HttpMethod", "POST")).upper(),
        header=str(tpl.resolve(auth["ApiKeyName"], refs, attrs)),
        secret=str(tpl.resolve(auth["ApiKeyValue"], refs, attrs)),
        pattern=dict(tpl.resolve(rule["EventPattern"], refs, attrs)),
        bus=bus,
        # EventBridge's defaults when a target names no RetryPolicy: 185 attempts within 24 hours.
        max_retries=int(retry.get("MaximumRetryAttempts", 185)),
        max_age_seconds=int(retry.get("MaximumEventAgeInSeconds", 86400)),
        dead_letter_queue_url=refs.get(dead_letter) if dead_letter else None,
        rule_arn=f"arn:aws:events:{region}:{account}:rule/{bus}/{stack_name}-{rule_id}",
        target_arn=f"arn:aws:events:{region}:{account}:api-destination/{stack_name}-{destination_id}",
    )


@dataclass(frozen=True)
class Outcome:
    """One attempt: `status` when the receiver answered, else `error` (timeout, no connection)."""

    status: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retried(self) -> bool:
        """Whether EventBridge tries again after this outcome."""
        if self.status is None:
            return True
        return self.status in RETRIED_STATUSES or self.status >= 500

    @property
    def code(self) -> str:
        return f"HTTP_{self.status}" if self.status is not None else str(self.error or "ERROR")

    @property
    def message(self) -> str:
        if self.status is not None:
            return f"The webhook answered HTTP {self.status}."
        return f"The webhook could not be reached ({self.error})."


def backoff(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1 for the first): exponential, capped, with full jitter over
    its upper half, so that receivers coming back are not met by every retry at once."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


class WebhookDelivery:
    """Subscribes a local queue to the webhook rule's bus and pattern; `pump()` delivers what is due,
    `start()` keeps pumping in the background."""

    def __init__(
        self,
        webhook: WebhookTarget,
        log: Callable[[str], None],
        *,
        session: boto3.Session | None = None,
        http: urllib3.PoolManager | None = None,
        name: str = NAME,
        base_seconds: float = 1.0,
        cap_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        session = session or boto3.Session()
        self.webhook, self.log = webhook, log
        self._http = http or urllib3.PoolManager()
        self._base, self._cap, self._clock = base_seconds, cap_seconds, clock
        self._sqs, events = session.client("sqs", config=POLLING), session.client("events")
        # Not purged: what an earlier run (a restored state, a reused AWS_ENDPOINT_URL) had not
        # delivered yet is still owed to the receiver, at least once.
        self._queue = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=name, EventBusName=webhook.bus, EventPattern=json.dumps(webhook.pattern))
        events.put_targets(Rule=name, EventBusName=webhook.bus, Targets=[{"Id": "webhook", "Arn": arn}])
        self._loop = Repeating(self.pump, log, name=name, failing="webhook  could not be delivered")

    def send(self, body: str) -> Outcome:
        """One attempt, as an API destination makes it: the event as the body, the connection's header."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            self.webhook.header: self.webhook.secret,
        }
        try:
            answer = self._http.request(
                self.webhook.method,
                self.webhook.url,
                body=body.encode("utf-8"),
                headers=headers,
                timeout=urllib3.Timeout(total=TIMEOUT_SECONDS),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError:  # before TimeoutError, which it subclasses
            return Outcome(error="CONNECTION_ERROR")
        except urllib3.exceptions.TimeoutError:
            return Outcome(error="TIMEOUT")
        except urllib3.exceptions.HTTPError:
            return Outcome(error="CONNECTION_ERROR")
        return Outcome(status=answer.status)

    def pump(self) -> list[tuple[str, Outcome]]:
        """Attempt every event whose turn has come; return each event's type and what happened."""
        done: list[tuple[str, Outcome]] = []
        while True:
            batch = self._sqs.receive_message(
                QueueUrl=self._queue, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
            ).get("Messages", [])
            if not batch:
                return done
            for message in batch:
                done.append(self._attempt(message))

    def _attempt(self, message: Mapping[str, Any]) -> tuple[str, Outcome]:
        body = str(message["Body"])
        event = json.loads(body)
        kind = str(event.get("detail-type", "?"))
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        outcome = self.send(body)
        handle = message["ReceiptHandle"]
        if outcome.delivered:
            self.log(f"webhook  {kind}  delivered (HTTP {outcome.status})")
            self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=handle)
            return kind, outcome
        retries_done = attempt - 1
        exhausted = ""
        if outcome.retried and retries_done >= self.webhook.max_retries:
            exhausted = "MaximumRetryAttempts"
        elif outcome.retried and self._age(event) >= self.webhook.max_age_seconds:
            exhausted = "MaximumEventAgeInSeconds"
        if outcome.retried and not exhausted:
            # SQS counts visibility in whole seconds: the backoff is rounded to one.
            delay = max(0, round(backoff(attempt, base=self._base, cap=self._cap)))
            self.log(f"webhook  {kind}  {outcome.code}: retried in {delay} s")
            self._sqs.change_message_visibility(
                QueueUrl=self._queue, ReceiptHandle=handle, VisibilityTimeout=delay
            )
            return kind, outcome
        self._set_aside(body, outcome, retries_done, exhausted)
        where = (
            "the dead-letter queue"
            if self.webhook.dead_letter_queue_url
            else "nowhere (no dead-letter queue)"
        )
        self.log(f"webhook  {kind}  {outcome.code}: set aside in {where}")
        self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=handle)
        return kind, outcome

    def _age(self, event: Mapping[str, Any]) -> float:
        """Seconds since the event was put on the bus (its `time`), as EventBridge counts an event's age."""
        with contextlib.suppress(ValueError, TypeError):
            put = calendar.timegm(time.strptime(str(event["time"]), "%Y-%m-%dT%H:%M:%SZ"))
            return self._clock() - put
        return 0.0

    def _set_aside(self, body: str, outcome: Outcome, retries: int, exhausted: str) -> None:
        """The event into the rule's dead-letter queue, with the attributes EventBridge gives it."""
        if not self.webhook.dead_letter_queue_url:
            return
        attributes = {
            "RULE_ARN": self.webhook.rule_arn,
            "TARGET_ARN": self.webhook.target_arn,
            "ERROR_CODE": outcome.code,
            "ERROR_MESSAGE": outcome.message,
            "RETRY_ATTEMPTS": str(retries),
        }
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        self._sqs.send_message(
            QueueUrl=self.webhook.dead_letter_queue_url,
            MessageBody=body,
            MessageAttributes={
                key: {"DataType": "String", "StringValue": value} for key, value in attributes.items()
            },
        )

    def start(self, interval: float = 0.25, idle_interval: float = IDLE_SECONDS) -> WebhookDelivery:
        self._loop.start(interval, idle_interval=idle_interval)
        return self

    def wake(self) -> None:
        """Look now: a function just ran, and may have sent an event."""
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()
