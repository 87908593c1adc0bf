"""Tokens that Sage issued but the table would not take wait in an encrypted queue until they are stored.

Sage rotates refresh tokens with no grace period, so a rotated token that is not stored anywhere loses the
pairing for good. SQS is a separate service from DynamoDB, so it still answers when the table does not.

A queue is only as trustworthy as what may write to it, so every message is sealed with KMS under an
encryption context naming the tenant, the pairing's generation and the version the tokens were issued
over. KMS opens it only under that same context: a message the bundle did not write, or wrote for another
tenant or another pairing, is refused and moved to the dead-letter queue, never applied. Such a message is
counted and set aside; it never stops a drain.

The body on the queue: {"v": 1, "tenant", "generation", "version", "sealed": base64 of KMS's ciphertext of
the zlib-compressed token set}. The header is readable so that the context can be rebuilt; only the
tokens are sealed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Any: SQS messages as the event carries them (JSON), read field by field.
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.errors import ConfigurationError
from x3link.sage.oauth import TokenSet

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import DecryptRequestTypeDef
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)
metrics = Metrics()

FORMAT_VERSION = 1
PURPOSE = "token-rescue"
# KMS Encrypt takes at most 4096 bytes of plaintext; a decrypted ciphertext is never larger.
KMS_PLAINTEXT_LIMIT = 4096
# KMS refuses ciphertext blobs over 6144 bytes: a longer one cannot be ours.
KMS_CIPHERTEXT_LIMIT = 6144
# KMS's own verdicts on a ciphertext: not sealed by this key under this context. Anything else it says
# (throttling, 5xx, a disabled key, a missing permission) is about KMS or the bundle, not the message.
_NOT_OURS = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "ValidationException"})
_TOKEN_FIELDS = (
    "access_token",
    "refresh_token",
    "scope",
    "access_token_expires_at",
    "refresh_token_expires_at",
)
POISONED_METRIC = "RescueMessagesPoisoned"
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


class PoisonMessage(Exception):
    """A rescue message that can never be applied. Its text names the reason, never the body."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RescueTooLarge(ValueError):
    """A token set that does not fit in one KMS Encrypt call even compressed."""


def encryption_context(tenant: str, generation: str, version: int) -> dict[str, str]:
    return {"purpose": PURPOSE, "tenant": tenant, "generation": generation, "version": str(version)}


class TokenRescue:
    def __init__(
        self, queue_url: str, dead_letter_queue_url: str, key_id: str, sqs: SQSClient, kms: KMSClient
    ) -> None:
        self._queue = queue_url
        self._dead_letters = dead_letter_queue_url
        self._key_id = key_id
        self._sqs = sqs
        self._kms = kms

    # ------------------------------------------------------------------ writing
    def save(self, tenant: str, generation: str, version: int, tokens: TokenSet) -> None:
        """Seal `tokens` for this pairing and version and park them: one KMS call and one SQS send.

        Raises whatever KMS or SQS raise (the caller decides what a lost rescue means), RescueTooLarge when
        the token set cannot be sealed, ConfigurationError without a key.
        """
        if not self._key_id:
            raise ConfigurationError("DATA_KEY_ID is not set: rescued tokens cannot be sealed.")
        plaintext = zlib.compress(_dump_tokens(tokens), 9)
        if len(plaintext) > KMS_PLAINTEXT_LIMIT:
            raise RescueTooLarge(
                f"The token set takes {len(plaintext)} bytes compressed; KMS seals at most "
                f"{KMS_PLAINTEXT_LIMIT}."
            )
        sealed = self._kms.encrypt(
            KeyId=self._key_id,
            Plaintext=plaintext,
            EncryptionContext=encryption_context(tenant, generation, version),
        )["CiphertextBlob"]
        body = {
            "v": FORMAT_VERSION,
            "tenant": tenant,
            "generation": generation,
            "version": version,
            "sealed": base64.b64encode(sealed).decode("ascii"),
        }
        self._sqs.send_message(QueueUrl=self._queue, MessageBody=json.dumps(body, separators=(",", ":")))

    # ------------------------------------------------------------------ reading
    def open(self, body: str) -> RescuedTokens:
        """The token set in `body`, as KMS vouches it was sealed for the pairing its header names.

        Raises PoisonMessage for anything that can never be applied. KMS's transient failures (throttling,
        5xx, network) propagate as they are: the message is fine and must be retried.
        """
        tenant, generation, version, sealed = _read_header(body)
        decrypt: DecryptRequestTypeDef = {
            "CiphertextBlob": sealed,
            "EncryptionContext": encryption_context(tenant, generation, version),
        }
        if self._key_id:
            decrypt["KeyId"] = self._key_id  # only our key may have sealed it
        try:
            plaintext = self._kms.decrypt(**decrypt)["Plaintext"]
        except ClientError as exc:
            if error_code(exc) in _NOT_OURS:
                raise PoisonMessage(
                    "not_sealed_for_pairing",
                    "KMS would not open the message for the pairing and version its header names.",
                ) from None
            raise
        return RescuedTokens(tenant, generation, version, _load_tokens(plaintext))

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


def _dump_tokens(tokens: TokenSet) -> bytes:
    fields = {name: getattr(tokens, name) for name in _TOKEN_FIELDS}
    return json.dumps(fields, separators=(",", ":")).encode()


def _read_header(body: str) -> tuple[str, str, int, bytes]:
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        raise PoisonMessage("not_json", "The message body is not JSON.") from None
    if not isinstance(parsed, dict) or parsed.get("v") != FORMAT_VERSION:
        raise PoisonMessage("unknown_format", "The message is not a rescue message of a known format.")
    tenant, generation, version, sealed = (
        parsed.get(k) for k in ("tenant", "generation", "version", "sealed")
    )
    if not (isinstance(tenant, str) and tenant and len(tenant) <= 256):
        raise PoisonMessage("bad_header", "The message names no valid tenant.")
    if not (isinstance(generation, str) and generation and len(generation) <= 256):
        raise PoisonMessage("bad_header", "The message names no valid pairing generation.")
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 0):
        raise PoisonMessage("bad_header", "The message names no valid version.")
    if not isinstance(sealed, str):
        raise PoisonMessage("bad_header", "The message carries no sealed token set.")
    try:
        blob = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise PoisonMessage("bad_header", "The sealed token set is not base64.") from None
    if not 0 < len(blob) <= KMS_CIPHERTEXT_LIMIT:
        raise PoisonMessage("bad_header", "The sealed token set is not a KMS ciphertext.")
    return tenant, generation, version, blob


def _load_tokens(plaintext: bytes) -> TokenSet:
    def invalid() -> PoisonMessage:
        return PoisonMessage("bad_token_set", "The sealed content is not a valid token set.")

    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(plaintext, 64 * 1024)
        if inflater.unconsumed_tail or not inflater.eof:
            raise invalid()
        fields = json.loads(raw)
    except (zlib.error, ValueError):
        raise invalid() from None
    if not isinstance(fields, dict) or set(fields) != set(_TOKEN_FIELDS):
        raise invalid()
    access, refresh, scope = fields["access_token"], fields["refresh_token"], fields["scope"]
    if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
        raise invalid()
    if not isinstance(scope, str):
        raise invalid()
    expiries = (fields["access_token_expires_at"], fields["refresh_token_expires_at"])
    if not all(isinstance(e, int | float) and not isinstance(e, bool) and math.isfinite(e) for e in expiries):
        raise invalid()
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        scope=scope,
        access_token_expires_at=float(expiries[0]),
        refresh_token_expires_at=float(expiries[1]),
    )
