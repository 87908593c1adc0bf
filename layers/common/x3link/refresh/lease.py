"""A refresh lease and its time: how long a refresh may take, the lease that covers it, and giving it back.

A DynamoDB lease, fenced on the pairing's generation and version, lets one worker at a time spend a pairing's
refresh token. It covers the worst case of everything done under it (the connection, the token call, the
commit, then parking the tokens), and is not taken when the invocation has too little time left for that.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.budget import Budget
from x3link.errors import StorageUnavailable, UpstreamTimeout
from x3link.tokens.model import Lease, Pairing

if TYPE_CHECKING:
    from x3link.tokens.store import TokenStore

logger = Logger(child=True)

TOO_LITTLE_TIME = "Too little time is left to refresh this pairing safely; try again."


@dataclass
class KeeperTiming:
    token_timeout: float = 60.0  # the longest a token call may wait for its answer (the keep-alive worker's)
    min_token_timeout: float = 5.0  # with less than this left, a refresh is not started at all
    connect_seconds: float = 10.0  # a token call's connection tries (3 x 3 s, with backoff)
    store_call_seconds: float = 9.0  # one DynamoDB call at worst, as its client is configured
    commit_seconds: float = 10.0  # storing new tokens; past it they are parked instead
    park_seconds: float = (
        27.0  # parking them: one SQS send at worst (the key is prepared), a second if it fails fast
    )
    margin_seconds: float = 2.0
    wait_seconds: float = 15.0  # a waiter gives up on another worker's refresh after this
    poll_seconds: float = 0.05
    write_backoff_seconds: float = 0.1
    rescue_drain_seconds: float = 3.0
    grace_seconds: float = 3 * 86400  # a suspended pairing expires when refusals last longer than this
    retry_base_seconds: float = 900.0  # a suspended pairing's retries: 15 min, 30 min, ... up to 6 h
    retry_max_seconds: float = 6 * 3600.0
    health_window_seconds: float = 900.0  # a success this recent lets Sage's "expired" grant end at once
    # A refusal nothing explains is held at most this long; then (alone on its gateway, say) it is
    # suspended, which keeps the grant and is undone by a success, a new secret or a breaker closing.
    hold_seconds: float = 3600.0
    credentials_recheck_seconds: float = 10.0

    @property
    def after_token_seconds(self) -> float:
        return self.commit_seconds + self.park_seconds + self.margin_seconds


@dataclass(frozen=True)
class RefreshLease:
    """One attempt's right to spend `pairing`'s refresh token, and what the attempt was asked to do."""

    pairing: Pairing
    owner: str
    until: float
    token_timeout: float
    probe: bool  # the breaker's probe: its success closes the breaker
    operator: bool  # an operator's retry: any status, no backoff
    budget: Budget
    lapsed: bool = False  # it replaced a lease that lapsed uncommitted: a refresh may have been spent
    reply_maybe_lost: bool = False  # an earlier token call may have rotated the token unseen
    seek_witness: bool = True  # a held refusal may ask another pairing's refresh for evidence


class Leases:
    """Takes, times and gives back refresh leases for one execution environment (its own owner prefix)."""

    def __init__(self, store: TokenStore, timing: KeeperTiming, clock: Callable[[], float]) -> None:
        self.store = store
        self.timing = timing
        self._clock = clock
        self._owner = uuid.uuid4().hex[:16]

    def new_owner(self) -> str:
        """A name for one attempt, so a retried write whose first answer was lost finds its own lease."""
        return f"{self._owner}-{uuid.uuid4().hex[:12]}"

    def token_timeout(self, now: float, budget: Budget) -> float:
        """As long as the token call can be given: the caller's answer time and the work after it allow."""
        t = self.timing
        timeout = min(t.token_timeout, budget.finish_by - now - t.connect_seconds - t.after_token_seconds)
        if budget.answer_by is not None:
            timeout = min(timeout, budget.answer_by - now - 1)
        if timeout < t.min_token_timeout:
            raise UpstreamTimeout(TOO_LITTLE_TIME)
        return timeout

    def until(self, leased_at: float, token_timeout: float) -> float:
        """Where a lease written at `leased_at` ends: past the connection, the token call, commit and park."""
        t = self.timing
        return leased_at + t.connect_seconds + token_timeout + t.after_token_seconds

    def seal_window(self, token_timeout: float) -> float:
        """How long sealing must need no KMS call: through the commit and the park of a refresh begun now."""
        t = self.timing
        return t.connect_seconds + token_timeout + t.after_token_seconds

    def seconds_needed(self) -> float:
        """The least time a refresh needs, from its start to its last write: with less, do not start one."""
        t = self.timing
        return t.connect_seconds + t.min_token_timeout + t.after_token_seconds

    def time_for_token_call(self, lease: RefreshLease) -> float:
        """The read timeout the token call may have: what is left of the lease once the connection, the
        commit and the park are set aside. With too little left, the lease is given back unspent."""
        t = self.timing
        left = lease.until - self._clock() - t.connect_seconds - t.after_token_seconds
        timeout = min(lease.token_timeout, left)
        if timeout < t.min_token_timeout:
            self.release(lease)
            raise UpstreamTimeout(TOO_LITTLE_TIME)
        return timeout

    def take(self, pairing: Pairing, owner: str, now: float, until: float) -> Lease:
        try:
            return self.store.try_lease(pairing, owner, now, until)
        except STORE_ERRORS as exc:
            # The write may have been applied with its answer lost: then the lease is ours.
            logger.warning(
                "Taking a refresh lease failed", extra={"tenant": pairing.tenant, "error": error_code(exc)}
            )
            try:
                latest = self.store.get(pairing.tenant)
            except STORE_ERRORS:
                raise StorageUnavailable("The pairings table did not answer; try again shortly.") from None
            # What it replaced is unknown: assume the worst, a lapsed lease whose tokens may be parked.
            return Lease(taken=latest is not None and latest.lease_owner == owner, lapsed=True)

    def take_if_due(self, tenant: str, owner: str, now: float, until: float, due_before: float) -> Lease:
        """The keep-alive's lease, also its read (x3link/tokens/store.py `lease_if_due`)."""
        return self.store.lease_if_due(tenant, owner, now, until, due_before)

    def release(self, lease: RefreshLease, *, maybe_applied: bool = False, failed: bool = True) -> None:
        tenant = lease.pairing.tenant
        try:
            self.store.release_lease(
                tenant, lease.owner, self._clock(), maybe_applied=maybe_applied, failed=failed
            )
        except STORE_ERRORS:
            logger.warning("Could not release a refresh lease; it lapses by itself", extra={"tenant": tenant})
