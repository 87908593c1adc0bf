"""How long a queue worker puts a message off: SQS takes whole seconds up to 15 minutes, and Sage's
`Retry-After` says how long it wants to be left alone. The keep-alive and the export delivery both queue
work again on a 429, so both read it here."""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime

SQS_MAX_DELAY = 900  # SQS delays a message, or hides a received one, for at most this long


def sqs_delay(seconds: float) -> int:
    """A delay or a visibility timeout as SQS takes it: whole seconds, 0 to 900."""
    return max(0, min(SQS_MAX_DELAY, math.ceil(seconds)))


def retry_after_seconds(retry_after: str | None, now: float) -> float | None:
    """Sage's Retry-After (delta-seconds or an HTTP date) as seconds from now, within SQS's delay limit."""
    if not retry_after:
        return None
    if retry_after.isdigit():
        seconds = float(retry_after)
    else:
        try:
            seconds = parsedate_to_datetime(retry_after).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    return float(min(SQS_MAX_DELAY, max(1.0, seconds)))
