"""What the keep-alive did with one queued pairing: the worker's answer for each message, and what a run's
report counts."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    REFRESHED = "refreshed"
    SUSPENDED = "suspended"  # Sage refused the grant: kept, retried with backoff
    EXPIRED = "expired"
    HELD = "held"  # the gateway's breaker is open, or the refusal is held until the evidence decides
    FAILED = "failed"  # its last try this run failed: still due, the next run queues it again
    SKIPPED = "skipped"  # no longer due, gone, or expired already
    REQUEUED = "requeued"  # sent again, to be handled later: not counted
    POISON = "poison"  # a message no run wrote: dropped, not counted


# What a run's report counts, each pairing once, when its handling is over.
COUNTED = (
    Outcome.REFRESHED,
    Outcome.SUSPENDED,
    Outcome.EXPIRED,
    Outcome.HELD,
    Outcome.FAILED,
    Outcome.SKIPPED,
)
