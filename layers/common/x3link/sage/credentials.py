"""The app's Sage App Registry credentials, read from Secrets Manager and cached per execution environment.

Each value carries the secret's `VersionId`, so the keeper can tell whether the credentials Sage refused
are still the ones in the secret: a rotated secret then takes effect at once, with no deploy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from x3link.errors import ConfigurationError, StorageUnavailable
from x3link.sage.oauth import ClientCredentials

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PLACEHOLDER_PREFIX = "REPLACE_WITH"
# What an operator must fix; anything else (throttling, 5xx, a timeout) passes by itself.
_MISCONFIGURED = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
}
CACHE_SECONDS = 300.0


def parse_credentials(secret_string: str, version: str = "") -> ClientCredentials:
    try:
        value = json.loads(secret_string)
    except ValueError:
        raise ConfigurationError("The client credentials secret is not JSON.") from None
    client_id = value.get("client_id") if isinstance(value, dict) else None
    client_secret = value.get("client_secret") if isinstance(value, dict) else None
    if (
        not isinstance(client_id, str)
        or not isinstance(client_secret, str)
        or not client_id
        or not client_secret
    ):
        raise ConfigurationError('The client credentials secret must hold {"client_id", "client_secret"}.')
    if client_id.startswith(PLACEHOLDER_PREFIX):
        raise ConfigurationError(
            "The client credentials secret still holds the placeholder: put the Sage "
            "App Registry's client id and secret into it."
        )
    return ClientCredentials(client_id=client_id, client_secret=client_secret, version=version)


class CredentialsSource:
    """`current()` is cached for CACHE_SECONDS; `reload()` bypasses the cache (before judging a refusal)."""

    def __init__(
        self,
        secret_id: str,
        secretsmanager: Callable[[], SecretsManagerClient],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = CACHE_SECONDS,
    ) -> None:
        self._secret_id = secret_id
        self._client = secretsmanager
        self._clock = clock
        self._max_age = max_age
        self._cached: ClientCredentials | None = None
        self._read_at = 0.0

    def forget(self) -> None:
        """Drop the cached credentials: the next `current()` reads the secret again (SnapStart's hooks)."""
        self._cached = None
        self._read_at = 0.0

    def current(self) -> ClientCredentials:
        if self._cached is None or self._clock() - self._read_at > self._max_age:
            return self.reload()
        return self._cached

    def reload(self) -> ClientCredentials:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client().get_secret_value(SecretId=self._secret_id)
        except ClientError as exc:  # never quoted: AWS's messages may name the request's values
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISCONFIGURED:
                raise ConfigurationError("The client credentials secret could not be read.") from None
            raise StorageUnavailable("Secrets Manager did not answer; try again shortly.") from None
        except BotoCoreError:  # a timeout, a lost connection
            raise StorageUnavailable("Secrets Manager did not answer; try again shortly.") from None
        self._cached = parse_credentials(answer.get("SecretString") or "", str(answer.get("VersionId", "")))
        self._read_at = self._clock()
        return self._cached

    __call__ = current
