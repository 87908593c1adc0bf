"""Tokens that Sage issued but the table would not take wait in an encrypted queue until they are stored.

Sage rotates refresh tokens with no grace period, so a rotated token that is not stored anywhere loses the
pairing for good. SQS is a separate service from DynamoDB, so it still answers when the table does not.

A queue is only as trustworthy as what may write to it, so every token set is sealed by the same sealer as
the table's tokens (tokens/sealing.py), with the data key prepared before the refresh token was spent: parking
needs no KMS call, which matters because it happens just when AWS is failing. The sealer binds the blob to
the tenant (KMS's context) and, in AES-GCM's associated data, to the pairing's generation and the version the
tokens were issued over. A message the bundle did not write, or wrote for another tenant, pairing or version,
does not open: it is counted, moved to the dead-letter queue and never applied; it never stops a drain.

The body on the queue: {"v": 2, "tenant", "generation", "version", "sealed": base64 of the sealer's blob}.
The header is readable so that the binding can be rebuilt; only the tokens are sealed. A message of format 1
(parked by an earlier version: KMS Encrypt of the zlib-compressed set under the rescue's own context) is
still opened, so an upgrade never strands a parked token set; none is written any more.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Any: SQS messages as the event carries them (JSON), read field by field.
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.errors import ConfigurationError, SealedTokensUnreadable
from x3link.refresh.rescue_messages import (
    FORMAT_VERSION,
    LEGACY_FORMAT,
    SQS_BODY_LIMIT,
    PoisonMessage,
    binding,
    encryption_context,
    legacy_fields,
    load_tokens,
    not_sealed_for_pairing,
    read_header,
    token_fields,
)
from x3link.sage.oauth import TokenSet

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import DecryptRequestTypeDef
    from mypy_boto3_sqs import SQSClient

    from x3link.tokens.sealing import TokenSealer

logger = Logger(child=True)
metrics = Metrics()

POISONED_METRIC = "RescueMessagesPoisoned"
# KMS's own verdicts on a ciphertext: not sealed by this key under this context. Anything else it says
# (throttling, 5xx, a disabled key, a missing permission) is about KMS or the bundle, not the message.
_NOT_OURS = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "ValidationException"})
# One receive takes at most this many messages (SQS's maximum).
_BATCH = 10


@dataclass(frozen=True)
class RescuedTokens:
    """A token set opened from the queue, with the pairing and version KMS vouched it was issued for."""

    tenant: str
    generation: str
    version: int
    tokens: TokenSet  # its repr hides the tokens


@dataclass(frozen=True)
class DrainResult:
    stored: int = 0  # applied (stored, or found superseded) and deleted
    poisoned: int = 0  # moved to the dead-letter queue
    left: int = 0  # still on the queue: a transient failure, or the deadline came first
    # The queue was seen empty before the deadline, nothing was left and no message was in another
    # consumer's hands: no rescued token set can be waiting anywhere. Only then may a grant be judged dead.
    complete: bool = False


class RescueTooLarge(ValueError):
    """A token set too large for one SQS message once sealed."""


class TokenRescue:
    """The rescue queue: `sealer` seals what is parked (the table's own sealer, whose data key the keeper
    prepared); `kms` (built on first use) and `key_id` only open format-1 messages."""

    def __init__(
        self,
        queue_url: str,
        dead_letter_queue_url: str,
        sealer: TokenSealer,
        sqs: SQSClient,
        *,
        kms: Callable[[], KMSClient] | None = None,
        key_id: str = "",
    ) -> None:
        self._queue = queue_url
        self._dead_letters = dead_letter_queue_url
        self._sealer = sealer
        self._sqs = sqs
        self._kms = kms
        self._key_id = key_id

    # ------------------------------------------------------------------ writing
    def save(self, tenant: str, generation: str, version: int, tokens: TokenSet) -> None:
        """Seal `tokens` for this pairing and version and park them: one SQS send, and no KMS call when the
        tenant's data key was prepared (the keeper prepares it before spending a refresh token).

        Raises whatever the sealer or SQS raise (the caller decides what a lost rescue means), RescueTooLarge
        when the sealed set does not fit a message, ConfigurationError without a key.
        """
        sealed = self._sealer.seal(tenant, token_fields(tokens), binding(generation, version))
        body = json.dumps(
            {
                "v": FORMAT_VERSION,
                "tenant": tenant,
                "generation": generation,
                "version": version,
                "sealed": base64.b64encode(sealed).decode("ascii"),
            },
            separators=(",", ":"),
        )
        if len(body) > SQS_BODY_LIMIT:
            raise RescueTooLarge(
                f"The sealed token set takes {len(body)} bytes; SQS takes {SQS_BODY_LIMIT} at most."
            )
        self._sqs.send_message(QueueUrl=self._queue, MessageBody=body)

    # ------------------------------------------------------------------ reading
    def open(self, body: str) -> RescuedTokens:
        """The token set in `body`, if it was sealed for the tenant, pairing and version its header names.

        Raises PoisonMessage for anything that can never be applied. KMS's transient failures (throttling,
        5xx, network) propagate as they are: the message is fine and must be retried.
        """
        form, tenant, generation, version, sealed = read_header(body)
        if form == LEGACY_FORMAT:
            fields = legacy_fields(self._open_legacy(tenant, generation, version, sealed))
        else:
            try:
                fields = self._sealer.open(tenant, sealed, binding(generation, version))
            except SealedTokensUnreadable:
                raise not_sealed_for_pairing() from None
        return RescuedTokens(tenant, generation, version, load_tokens(fields))

    def _open_legacy(self, tenant: str, generation: str, version: int, sealed: bytes) -> bytes:
        """A format-1 message's plaintext: KMS Decrypt under the context its header names."""
        if self._kms is None:
            raise ConfigurationError("No KMS client: a rescue message of format 1 cannot be opened.")
        decrypt: DecryptRequestTypeDef = {
            "CiphertextBlob": sealed,
            "EncryptionContext": encryption_context(tenant, generation, version),
        }
        if self._key_id:
            decrypt["KeyId"] = self._key_id  # only our key may have sealed it
        try:
            return bytes(self._kms().decrypt(**decrypt)["Plaintext"])
        except ClientError as exc:
            if error_code(exc) in _NOT_OURS:
                raise not_sealed_for_pairing() from None
            raise

    def quarantine(self, body: str, reason: str) -> None:
        """Copy a poison message to the dead-letter queue, with the reason as a message attribute, and
        count it. The caller deletes it from the rescue queue (a queue trigger does so by succeeding)."""
        if not self._dead_letters:
            raise ConfigurationError("TOKEN_RESCUE_DLQ_URL is not set: a poison message cannot be set aside.")
        self._sqs.send_message(
            QueueUrl=self._dead_letters,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason}},
        )
        metrics.add_metric(name=POISONED_METRIC, unit=MetricUnit.Count, value=1)
        logger.warning("A rescue message was moved to the dead-letter queue", extra={"reason": reason})

    def drain(
        self,
        apply: Callable[[RescuedTokens], bool],
        *,
        deadline: float,
        clock: Callable[[], float] = time.time,
        confirm_empty: bool = True,
    ) -> DrainResult:
        """Hand every rescued token set to `apply` until the queue is empty or `deadline` (epoch) passes.

        `apply` returns True once the tokens are stored or superseded (the message is deleted) and False on
        a transient failure (the message stays for a later drain or the queue's trigger). Poison messages
        go to the dead-letter queue at once. Errors receiving from SQS propagate. The result says whether
        the drain was `complete`: only then is no rescued token set waiting anywhere on the queue. Without
        `confirm_empty` (a sweep, which judges nothing by it) an empty receive ends the drain, never complete.
        """
        stored = poisoned = 0
        left: set[str] = set()
        emptied = False
        long_poll = False
        while clock() < deadline:
            remaining = deadline - clock()
            wait = 1 if long_poll and remaining > 1 else 0
            messages = self._sqs.receive_message(
                QueueUrl=self._queue,
                MaxNumberOfMessages=_BATCH,
                WaitTimeSeconds=wait,
                # Hidden past the deadline (a minute at most): a message this drain left is not met again.
                VisibilityTimeout=min(60, max(10, math.ceil(remaining) + 5)),
            ).get("Messages", [])
            if not messages:
                if not confirm_empty:
                    break
                backlog = self._backlog()
                if backlog is None:
                    break
                visible, in_flight = backlog
                if visible and not long_poll:
                    long_poll = True  # a short poll samples some servers only: ask them all once
                    continue
                emptied = not visible and not in_flight
                break
            long_poll = False
            for message in messages:
                message_id = str(message.get("MessageId", ""))
                if clock() >= deadline:
                    left.add(message_id)
                    continue
                outcome = self._handle(message, apply)
                if outcome == "stored":
                    stored += 1
                    left.discard(message_id)
                elif outcome == "poisoned":
                    poisoned += 1
                    left.discard(message_id)
                else:
                    left.add(message_id)
        result = DrainResult(stored=stored, poisoned=poisoned, left=len(left), complete=emptied and not left)
        if stored or poisoned or left:
            logger.info(
                "Rescue queue drained", extra={"stored": stored, "poisoned": poisoned, "left": len(left)}
            )
        return result

    # ------------------------------------------------------------------ helpers
    def _handle(self, message: Mapping[str, Any], apply: Callable[[RescuedTokens], bool]) -> str:
        """One received message: "stored", "poisoned" or "left"."""
        body = str(message.get("Body", ""))
        try:
            rescued = self.open(body)
        except PoisonMessage as poison:
            try:
                self.quarantine(body, poison.reason)
            except (*STORE_ERRORS, ConfigurationError) as exc:
                logger.error(
                    "A poison rescue message could not be set aside", extra={"error": error_code(exc)}
                )
                return "left"  # the queue's redrive policy moves it after a few receives
            self._delete(message)
            return "poisoned"
        except STORE_ERRORS as exc:
            logger.warning("A rescue message could not be opened now", extra={"error": error_code(exc)})
            return "left"
        try:
            applied = apply(rescued)
        except Exception as exc:  # an apply that raises must not stop the drain: the message waits
            logger.error(
                "Rescued tokens could not be applied",
                extra={"tenant": rescued.tenant, "error": error_code(exc)},
            )
            return "left"
        if not applied:
            return "left"
        self._delete(message)
        return "stored"

    def _delete(self, message: Mapping[str, Any]) -> None:
        try:
            self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
        except STORE_ERRORS as exc:
            # Already handled: when it comes back it is found superseded (or poisoned again) and deleted.
            logger.warning("A handled rescue message could not be deleted", extra={"error": error_code(exc)})

    def _backlog(self) -> tuple[int, int] | None:
        """(messages waiting, messages in some consumer's hands), or None when SQS will not say."""
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self._queue,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return (
                int(attributes.get("ApproximateNumberOfMessages", 0)),
                int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            )
        except (*STORE_ERRORS, KeyError, ValueError) as exc:
            logger.warning("The rescue queue's backlog could not be read", extra={"error": error_code(exc)})
            return None
