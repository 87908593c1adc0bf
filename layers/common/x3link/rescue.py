"""Tokens that Sage issued but the table would not take wait in an encrypted queue until they are stored.

Sage rotates refresh tokens with no grace period, so a rotated token that is not stored anywhere loses the
pairing for good. SQS is a separate service from DynamoDB, so it still answers when the table does not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from x3link.oauth import TokenSet

logger = Logger(child=True)


class TokenRescue:
    def __init__(self, queue_url: str, sqs: Any) -> None:
        self._queue = queue_url
        self._sqs = sqs

    def save(self, tenant: str, base_version: int, tokens: TokenSet) -> None:
        body = {
            "tenant": tenant,
            "base_version": base_version,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "scope": tokens.scope,
            "access_token_expires_at": tokens.access_token_expires_at,
            "refresh_token_expires_at": tokens.refresh_token_expires_at,
        }
        self._sqs.send_message(QueueUrl=self._queue, MessageBody=json.dumps(body))

    def drain(
        self, apply: Callable[[str, int, TokenSet], bool], *, wait_seconds: int = 0, rounds: int = 10
    ) -> int:
        """Hand every rescued token set to `apply`; delete the message once applied or superseded.

        `apply` returns False on a transient failure, and the message stays for the next drain.
        """
        stored = 0
        for _ in range(rounds):
            messages = self._sqs.receive_message(
                QueueUrl=self._queue,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                tokens = TokenSet(
                    access_token=body["access_token"],
                    refresh_token=body["refresh_token"],
                    scope=body.get("scope", ""),
                    access_token_expires_at=float(body["access_token_expires_at"]),
                    refresh_token_expires_at=float(body["refresh_token_expires_at"]),
                )
                if apply(body["tenant"], int(body["base_version"]), tokens):
                    self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
                    stored += 1
                    logger.info("Rescued tokens stored", extra={"tenant": body["tenant"]})
        return stored
