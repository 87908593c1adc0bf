"""The rescue queue can be trusted: tokens rest sealed for their pairing and version, anything else is set
aside in the dead-letter queue and counted, and nothing on the queue stops a drain or the trigger.

SQS and KMS are moto, with the queues, the redrive policy and the key created from template.yaml."""

from __future__ import annotations

import base64
import json
import secrets
import time
import zlib
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import invoke
from tests.support.keeper import rewire, stored, sweep
from tests.support.sage import pair
from x3link import wiring
from x3link.refresh import rescue_messages
from x3link.refresh.rescue import DrainResult, RescuedTokens, RescueTooLarge, TokenRescue
from x3link.refresh.rescue import metrics as rescue_metrics
from x3link.refresh.rescue_messages import PoisonMessage
from x3link.sage.oauth import TokenSet
from x3link.tokens.sealing import TokenSealer

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

GENERATION = "4f9c2a7e0b1d4c3e8a6f5b2d9e0c1a7b"
OTHER_GENERATION = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"


def token_set(access_length: int = 1200) -> TokenSet:
    """Tokens shaped like Sage's: a JWT-sized access token and an opaque refresh token, both random."""
    now = time.time()
    return TokenSet(
        access_token="eyJ" + secrets.token_urlsafe(access_length)[:access_length],
        refresh_token=secrets.token_urlsafe(48),
        scope="api.dataDelivery folder:SEED folder:X3",
        access_token_expires_at=now + 300,
        refresh_token_expires_at=now + 30 * 86400,
    )


@pytest.fixture
def sqs(stack: Stack) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def rescue(stack: Stack) -> TokenRescue:
    return wiring.token_rescue()


@pytest.fixture(autouse=True)
def clear_metrics() -> Iterator[None]:
    rescue_metrics.clear_metrics()
    yield
    rescue_metrics.clear_metrics()


def bodies(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message on a queue, with its message attributes, left on the queue and visible again.

    Each look is a receive, and the rescue queue redrives a message after 5: tests look sparingly."""
    found: dict[str, dict[str, Any]] = {}
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
    ).get("Messages", []):
        found.update((message["MessageId"], message) for message in messages)
    for message in found.values():
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(found.values())


def one_body(sqs: Any, queue_url: str) -> str:
    [message] = bodies(sqs, queue_url)
    return str(message["Body"])


def emf_values(stdout: str, name: str) -> list[float]:
    """The values Powertools flushed for metric `name`, read from the EMF lines on stdout."""
    values: list[float] = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line and name in line:
            value = json.loads(line)[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


def metric_values(capsys: pytest.CaptureFixture[str], name: str) -> list[float]:
    rescue_metrics.flush_metrics()
    return emf_values(capsys.readouterr().out, name)


class Recorder:
    """An `apply` that keeps what it was given and answers as told per tenant (True by default)."""

    def __init__(self, answers: dict[str, bool] | None = None) -> None:
        self.applied: list[RescuedTokens] = []
        self.answers = answers or {}

    def __call__(self, rescued: RescuedTokens) -> bool:
        self.applied.append(rescued)
        return self.answers.get(rescued.tenant, True)


def drain(rescue: TokenRescue, apply: Any, seconds: float = 10) -> DrainResult:
    return rescue.drain(apply, deadline=time.time() + seconds)


# ---------------------------------------------------------------------- sealing
def test_a_saved_token_set_opens_for_its_pairing_and_is_never_on_the_queue_in_clear(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    tokens = token_set()
    rescue.save("acme", GENERATION, 7, tokens)

    body = one_body(sqs, stack.refs["TokenRescueQueue"])
    for secret in (tokens.access_token, tokens.refresh_token, tokens.access_token[:40]):
        assert secret not in body
        assert secret.encode() not in base64.b64decode(json.loads(body)["sealed"])
    header = json.loads(body)
    assert {k: header[k] for k in ("v", "tenant", "generation", "version")} == {
        "v": 2,
        "tenant": "acme",
        "generation": GENERATION,
        "version": 7,
    }
    assert rescue.open(body) == RescuedTokens("acme", GENERATION, 7, tokens)
    assert tokens.refresh_token not in repr(rescue.open(body))


def test_a_token_set_too_large_for_a_message_is_refused_before_anything_is_sent(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    rescue.save("acme", GENERATION, 1, token_set(access_length=8000))  # far past what KMS Encrypt once took
    with pytest.raises(RescueTooLarge, match="262144"):
        rescue.save("acme", GENERATION, 2, token_set(access_length=200_000))
    assert len(bodies(sqs, stack.refs["TokenRescueQueue"])) == 1


def sealed_for(rescue: TokenRescue, sqs: Any, stack: Stack, tenant: str, version: int = 3) -> str:
    rescue.save(tenant, GENERATION, version, token_set())
    return one_body(sqs, stack.refs["TokenRescueQueue"])


def rewrite(body: str, **header: Any) -> str:
    return json.dumps({**json.loads(body), **header})


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"tenant": "globex"}, "not_sealed_for_pairing"),  # sealed for acme, relabelled for globex
        ({"generation": OTHER_GENERATION}, "not_sealed_for_pairing"),  # the pairing before a re-pair
        ({"version": 4}, "not_sealed_for_pairing"),  # issued over another version
        ({"sealed": base64.b64encode(secrets.token_bytes(300)).decode()}, "not_sealed_for_pairing"),
        ({"sealed": "not base64!"}, "bad_header"),
        ({"version": "3"}, "bad_header"),
        ({"tenant": ""}, "bad_header"),
        ({"v": 3}, "unknown_format"),
        ({"v": True}, "unknown_format"),
    ],
)
def test_a_message_not_sealed_for_the_pairing_it_names_is_poison(
    rescue: TokenRescue, sqs: Any, stack: Stack, header: dict[str, Any], reason: str
) -> None:
    forged = rewrite(sealed_for(rescue, sqs, stack, "acme"), **header)
    with pytest.raises(PoisonMessage) as refused:
        rescue.open(forged)
    assert refused.value.reason == reason
    assert forged not in str(refused.value) and "acme" not in str(refused.value)


@pytest.mark.parametrize("body", ["", "not json", "[1, 2]", "null", '{"tenant": "acme"}'])
def test_a_body_that_is_no_rescue_message_is_poison(body: str) -> None:
    # Refused before any call: this rescue has no key, no KMS and no queue.
    offline = TokenRescue(
        "queue",
        "dead-letters",
        TokenSealer(lambda: cast("KMSClient", None), "", "pairings"),
        sqs=cast("SQSClient", None),
    )
    with pytest.raises(PoisonMessage):
        offline.open(body)


def test_a_sealed_content_that_is_no_token_set_is_poison(rescue: TokenRescue, stack: Stack) -> None:
    binding = rescue_messages.binding(GENERATION, 3)
    for fields in ({"access_token": "a"}, {**fields_of(token_set()), "access_token_expires_at": "nan"}):
        sealed = wiring.token_sealer().seal("acme", fields, binding)
        with pytest.raises(PoisonMessage) as refused:
            rescue.open(message(sealed, version=3))
        assert refused.value.reason == "bad_token_set"


def fields_of(tokens: TokenSet) -> dict[str, str]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "scope": tokens.scope,
        "access_token_expires_at": repr(tokens.access_token_expires_at),
        "refresh_token_expires_at": repr(tokens.refresh_token_expires_at),
    }


def message(sealed: bytes, *, version: int, form: int = 2, tenant: str = "acme") -> str:
    header = {"v": form, "tenant": tenant, "generation": GENERATION, "version": version}
    return json.dumps({**header, "sealed": base64.b64encode(sealed).decode()})


def legacy_message(stack: Stack, plaintext: bytes, *, version: int) -> str:
    """A message as parked before format 2: KMS Encrypt of the zlib'd set, under the rescue's own context."""
    context = rescue_messages.encryption_context("acme", GENERATION, version)
    sealed = boto3.client("kms").encrypt(
        KeyId=stack.refs["DataKey"], Plaintext=plaintext, EncryptionContext=context
    )
    return message(sealed["CiphertextBlob"], version=version, form=1)


def test_a_message_parked_before_format_2_is_still_opened(rescue: TokenRescue, stack: Stack) -> None:
    """An upgrade never strands a token set parked by the version before it."""
    tokens = token_set()
    legacy = {**fields_of(tokens), "access_token_expires_at": tokens.access_token_expires_at}
    legacy["refresh_token_expires_at"] = tokens.refresh_token_expires_at
    body = legacy_message(stack, zlib.compress(json.dumps(legacy).encode()), version=5)
    assert rescue.open(body) == RescuedTokens("acme", GENERATION, 5, tokens)
    with pytest.raises(PoisonMessage) as refused:  # relabelled: KMS's context no longer matches
        rescue.open(rewrite(body, version=6))
    assert refused.value.reason == "not_sealed_for_pairing"


def test_a_legacy_sealed_content_that_is_no_token_set_is_poison(rescue: TokenRescue, stack: Stack) -> None:
    context = rescue_messages.encryption_context("acme", GENERATION, 3)
    kms = boto3.client("kms")
    for plaintext in (b"not zlib", zlib.compress(b'{"access_token": "a"}')):
        sealed = kms.encrypt(KeyId=stack.refs["DataKey"], Plaintext=plaintext, EncryptionContext=context)
        body = json.dumps(
            {
                "v": 1,
                "tenant": "acme",
                "generation": GENERATION,
                "version": 3,
                "sealed": base64.b64encode(sealed["CiphertextBlob"]).decode(),
            }
        )
        with pytest.raises(PoisonMessage) as refused:
            rescue.open(body)
        assert refused.value.reason == "bad_token_set"


class FlakyKms:
    """The real KMS client, except that Decrypt fails with `code` while `failing` is set."""

    def __init__(self, code: str = "ThrottlingException") -> None:
        self._real = boto3.client("kms")
        self.code = code
        self.failing = True

    def decrypt(self, **kwargs: Any) -> Any:
        if self.failing:
            raise ClientError({"Error": {"Code": self.code, "Message": "Rate exceeded"}}, "Decrypt")
        return self._real.decrypt(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class SpySqs:
    """The real SQS client, keeping the receipt handles of what it received, so a test can make messages
    a drain left (hidden until its deadline) visible again at once, as time passing would."""

    def __init__(self) -> None:
        self._real = boto3.client("sqs")
        self.received: list[str] = []
        self.after_receive: Any = None

    def receive_message(self, **kwargs: Any) -> Any:
        answer = self._real.receive_message(**kwargs)
        self.received += [m["ReceiptHandle"] for m in answer.get("Messages", [])]
        if self.after_receive:
            self.after_receive()
        return answer

    def reappear(self, queue_url: str) -> None:
        for handle in self.received:
            with suppress(ClientError):  # deleted meanwhile
                self._real.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0
                )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def rescue_with(*, sqs: Any = None, kms: Any = None) -> TokenRescue:
    """A rescue over these clients, with a sealer of its own: its data keys are not cached yet."""
    s = wiring.settings()
    kms = kms or boto3.client("kms")
    sealer = TokenSealer(lambda: kms, s.data_key_id, s.pairings_table)
    return TokenRescue(
        s.rescue_queue_url,
        s.rescue_dead_letter_queue_url,
        sealer,
        sqs or boto3.client("sqs"),
        kms=lambda: kms,
        key_id=s.data_key_id,
    )


def in_flight(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.parametrize("code", ["ThrottlingException", "KMSInternalException", "AccessDeniedException"])
def test_kms_trouble_is_not_the_messages_fault(
    rescue: TokenRescue, sqs: Any, stack: Stack, code: str
) -> None:
    body = sealed_for(rescue, sqs, stack, "acme")
    with pytest.raises(ClientError):
        rescue_with(kms=FlakyKms(code)).open(body)


# ---------------------------------------------------------------------- draining
def test_poison_goes_to_the_dead_letter_queue_counted_while_good_messages_behind_it_are_applied(
    rescue: TokenRescue, sqs: Any, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = stack.refs["TokenRescueQueue"]
    acme = sealed_for(rescue, sqs, stack, "acme")
    poison = [
        "{not json",
        rewrite(acme, sealed=base64.b64encode(secrets.token_bytes(200)).decode()),  # forged
        rewrite(acme, tenant="globex"),  # sealed for acme, relabelled for globex
    ]
    for body in poison:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    good = token_set()
    rescue.save("initech", GENERATION, 9, good)
    apply = Recorder()

    result = drain(rescue, apply)

    assert result == DrainResult(stored=2, poisoned=3, left=0, complete=True)
    assert sorted((r.tenant, r.version) for r in apply.applied) == [("acme", 3), ("initech", 9)]
    assert next(r for r in apply.applied if r.tenant == "initech").tokens == good
    assert bodies(sqs, queue) == []
    dead = bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"])
    assert sorted(m["Body"] for m in dead) == sorted(poison)  # kept as they came, for inspection
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead)
    assert reasons == ["not_json", "not_sealed_for_pairing", "not_sealed_for_pairing"]
    assert sum(metric_values(capsys, "RescueMessagesPoisoned")) == 3


def test_a_drain_empties_the_queue_past_a_hundred_messages(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    for index in range(130):
        rescue.save(f"tenant-{index}", GENERATION, index, token_set(access_length=200))
    apply = Recorder()

    result = drain(rescue, apply, seconds=60)

    assert (result.stored, result.poisoned, result.left, result.complete) == (130, 0, 0, True)
    assert len({r.tenant for r in apply.applied}) == 130
    assert bodies(sqs, stack.refs["TokenRescueQueue"]) == []


def test_a_transient_kms_failure_leaves_the_message_for_later(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    queue = stack.refs["TokenRescueQueue"]
    rescue.save("acme", GENERATION, 3, token_set())
    kms, spy = FlakyKms(), SpySqs()
    apply = Recorder()

    result = drain(rescue_with(sqs=spy, kms=kms), apply)

    assert result == DrainResult(stored=0, poisoned=0, left=1, complete=False)
    assert apply.applied == []
    assert bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"]) == []
    assert in_flight(sqs, queue) == 1  # still on the queue, hidden for the rest of the drain
    spy.reappear(queue)
    kms.failing = False
    assert drain(rescue_with(kms=kms), apply) == DrainResult(stored=1, poisoned=0, left=0, complete=True)
    assert [r.tenant for r in apply.applied] == ["acme"]


def test_an_apply_that_fails_or_raises_leaves_its_message_and_the_drain_carries_on(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    for tenant in ("refused", "broken", "fine"):
        rescue.save(tenant, GENERATION, 3, token_set())

    def apply(rescued: RescuedTokens) -> bool:
        if rescued.tenant == "broken":
            raise RuntimeError("a bug")
        return rescued.tenant == "fine"

    spy = SpySqs()
    result = drain(rescue_with(sqs=spy), apply)

    assert (result.stored, result.poisoned, result.left, result.complete) == (1, 0, 2, False)
    spy.reappear(stack.refs["TokenRescueQueue"])
    assert sorted(json.loads(m["Body"])["tenant"] for m in bodies(sqs, stack.refs["TokenRescueQueue"])) == [
        "broken",
        "refused",
    ]


def test_a_drain_stops_at_its_deadline_and_says_it_is_not_complete(rescue: TokenRescue, stack: Stack) -> None:
    rescue.save("acme", GENERATION, 3, token_set())
    apply = Recorder()
    assert rescue.drain(apply, deadline=time.time() - 1) == DrainResult(complete=False)

    now = [0.0]
    spy = SpySqs()
    spy.after_receive = lambda: now.__setitem__(0, 100.0)  # time runs out while the batch comes in
    late = rescue_with(sqs=spy).drain(apply, deadline=50.0, clock=lambda: now[0])

    assert (late.stored, late.left, late.complete) == (0, 1, False)
    assert apply.applied == []


def test_a_message_in_another_consumers_hands_makes_the_drain_incomplete(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    rescue.save("acme", GENERATION, 3, token_set())
    sqs.receive_message(QueueUrl=stack.refs["TokenRescueQueue"], VisibilityTimeout=30)  # the trigger has it

    result = drain(rescue, Recorder())

    assert result == DrainResult(stored=0, poisoned=0, left=0, complete=False)


def test_a_message_no_one_can_apply_is_redriven_after_its_last_receive(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    queue = stack.refs["TokenRescueQueue"]
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    rescue.save("acme", GENERATION, 3, token_set())
    for _ in range(int(redrive["maxReceiveCount"])):
        assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0).get("Messages")

    assert drain(rescue, Recorder()).stored == 0
    [dead] = bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"])
    assert "MessageAttributes" not in dead  # no `reason`: redriven, its tokens may still be good


# ---------------------------------------------------------------------- the queue's trigger
class FakeKeeper:
    """Stands for TokenKeeper.apply_rescued: True (stored or superseded) unless the tenant is flaky."""

    def __init__(self) -> None:
        self.applied: list[RescuedTokens] = []

    def apply_rescued(self, rescued: RescuedTokens) -> bool:
        self.applied.append(rescued)
        return rescued.tenant != "flaky"


def sqs_event(messages: list[dict[str, Any]], stack: Stack) -> dict[str, Any]:
    """The event Lambda's SQS poller sends for these received messages."""
    arn = stack.attrs[("TokenRescueQueue", "Arn")]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def test_the_trigger_stores_good_records_sets_poison_aside_and_reports_only_transient_failures(
    rescue: TokenRescue,
    sqs: Any,
    stack: Stack,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keeper = FakeKeeper()
    rewire(token_keeper=lambda: keeper)
    queue = stack.refs["TokenRescueQueue"]
    acme = sealed_for(rescue, sqs, stack, "acme")
    rescue.save("flaky", GENERATION, 5, token_set())
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    sqs.send_message(QueueUrl=queue, MessageBody=rewrite(acme, tenant="globex"))
    messages = bodies(sqs, queue)
    assert len(messages) == 4
    flaky = next(m["MessageId"] for m in messages if '"flaky"' in m["Body"])

    answer = invoke("TokenRescueFunction", sqs_event(messages, stack))

    assert answer == {"batchItemFailures": [{"itemIdentifier": flaky}]}
    assert sorted(r.tenant for r in keeper.applied) == ["acme", "flaky"]
    dead = bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"])
    assert sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead) == [
        "not_json",
        "not_sealed_for_pairing",
    ]
    out = capsys.readouterr()
    assert sum(emf_values(out.out, "RescueMessagesPoisoned")) == 2
    logged = out.out + out.err + "".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    for message in messages:  # never a body, nor its sealed part, in a log line
        body = message["Body"]
        assert (json.loads(body)["sealed"] if body.startswith('{"') else body) not in logged


def test_the_trigger_reports_a_transient_kms_failure_and_a_whole_failed_batch_without_raising(
    rescue: TokenRescue, sqs: Any, stack: Stack
) -> None:
    keeper = FakeKeeper()
    rewire(token_keeper=lambda: keeper, token_rescue=lambda: rescue_with(kms=FlakyKms()))
    rescue.save("acme", GENERATION, 3, token_set())
    messages = bodies(sqs, stack.refs["TokenRescueQueue"])

    answer = invoke("TokenRescueFunction", sqs_event(messages, stack))

    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert keeper.applied == []
    assert bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"]) == []


def test_the_sample_event_is_handled(stack: Stack) -> None:
    event = json.loads((Path(__file__).parents[2] / "events" / "token_rescue_sqs.json").read_text())
    rewire(token_keeper=FakeKeeper)
    answer = invoke("TokenRescueFunction", event)
    # The sample's ciphertext is no key's: set aside, or (KMS's verdict depending) left for a retry.
    failed = [item["itemIdentifier"] for item in answer["batchItemFailures"]]
    dead = bodies(boto3.client("sqs"), stack.refs["TokenRescueDeadLetterQueue"])
    assert len(failed) + len(dead) == 1


# ---------------------------------------------------------------------- with the keeper
def test_poison_on_the_queue_never_stops_a_sweep(sage: Emulator, sqs: Any, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # due within the keep-alive window
    for tenant in ("one", "two"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    versions = {tenant: stored(tenant).version for tenant in ("one", "two")}
    queue = stack.refs["TokenRescueQueue"]
    genuine = sealed_for(wiring.token_rescue(), sqs, stack, "one", version=versions["one"])
    sqs.purge_queue(QueueUrl=queue)  # its tokens are made up: only its forgeries stay
    poison = [
        "{not json",
        rewrite(genuine, sealed=base64.b64encode(secrets.token_bytes(200)).decode()),  # forged
        rewrite(genuine, tenant="two"),  # sealed for one, relabelled for two
    ]
    for body in poison:
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    summary = sweep()

    assert summary["refreshed"] == 2
    assert all(stored(tenant).version > versions[tenant] for tenant in versions)
    dead = bodies(sqs, stack.refs["TokenRescueDeadLetterQueue"])
    assert sorted(m["Body"] for m in dead) == sorted(poison)


def test_the_trigger_stores_tokens_the_table_would_not_take(sage: Emulator, sqs: Any, stack: Stack) -> None:
    pair(sage, "acme", "https://x3.acme.example")
    before = stored("acme")
    tokens = token_set()
    wiring.token_rescue().save("acme", before.generation, before.version, tokens)

    answer = invoke("TokenRescueFunction", sqs_event(bodies(sqs, stack.refs["TokenRescueQueue"]), stack))

    assert answer == {"batchItemFailures": []}
    after = stored("acme")
    assert (after.generation, after.access_token, after.refresh_token) == (
        before.generation,
        tokens.access_token,
        tokens.refresh_token,
    )
    assert after.version > before.version
    # The same message again (SQS delivers at least once): superseded, and not an error.
    wiring.token_rescue().save("acme", before.generation, before.version, token_set())
    answer = invoke("TokenRescueFunction", sqs_event(bodies(sqs, stack.refs["TokenRescueQueue"]), stack))
    assert answer == {"batchItemFailures": []}
    assert stored("acme").refresh_token == tokens.refresh_token
