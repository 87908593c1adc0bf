"""What may reach the logs. `wiring`, which every handler imports, pins the SDK's loggers at its import.

The AWS SDK and urllib3 write whole requests and answers at DEBUG: SigV4 `Authorization` headers, the
client secret as Secrets Manager returns it, tokens as DynamoDB returns them. Their loggers are pinned at
WARNING, whatever level the function, the root logger or the Lambda runtime is set to. Text that comes
from outside (Sage's messages, a callback's `error` and `error_description`) is only ever logged scrubbed.
"""

from __future__ import annotations

import logging
import re

# Powertools' resolver logs each route's parameters at DEBUG: a pairing link's id is one of them.
SDK_LOGGERS = ("boto3", "botocore", "urllib3", "aws_lambda_powertools.event_handler")

# Anything token-shaped: a JWT, or a long opaque run such as a code, a state or a secret.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*|[A-Za-z0-9_\-+/=]{24,}")


def pin_sdk_loggers() -> None:
    """The SDK's, urllib3's and the resolver's loggers at WARNING; their child loggers inherit it."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def scrub(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, with anything token-shaped replaced by `[redacted]`."""
    return _TOKEN_LIKE.sub("[redacted]", text[:limit])
