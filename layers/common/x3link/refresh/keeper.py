"""Keeps pairings' tokens alive: one refresh per pairing at a time, no issued refresh token ever lost, and
no pairing ended unless its customer ended it.

Sage rotates the refresh token on every refresh and kills the old one at once, and it does not say how it
reports a dead grant. The keeper is the refresh's order of steps; each step has its own module:
- the lease and its time (lease.py): one worker spends the refresh token, within a lease that
  covers the worst case of the work done under it, not taken with too little time left;
- admission (admission.py): the app's circuit breaker, a suspended pairing's retry, the gateway's
  health;
- the commit (commit.py): new tokens stored before a deadline inside the lease, else parked in
  the rescue queue, and parked ones applied;
- a refusal (refusal_handling.py): judged on evidence across pairings (refusal_policy.py),
  never trusted: held, suspended, or expired only when the evidence says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.budget import Budget
from x3link.errors import (
    AppUnavailable,
    NotPaired,
    PairingExpired,
    PairingSuspended,
    UpstreamError,
    UpstreamTimeout,
)
from x3link.refresh.breaker import gateway_key
from x3link.refresh.lease import KeeperTiming, Leases, RefreshLease
from x3link.refresh.outcomes import Outcome
from x3link.tokens.model import ACTIVE, EXPIRED, SUSPENDED, Lease, Pairing

if TYPE_CHECKING:
    from x3link.refresh.admission import Admission
    from x3link.refresh.commit import TokenCommit
    from x3link.refresh.leased_refresh import LeasedRefresh
    from x3link.refresh.rescue import DrainResult, RescuedTokens
    from x3link.tokens.store import TokenStore

__all__ = ["KeeperTiming", "TokenKeeper"]

logger = Logger(child=True)


class TokenKeeper:
    def __init__(
        self,
        store: TokenStore,
        leases: Leases,
        admission: Admission,
        commit: TokenCommit,
        spender: LeasedRefresh,
        *,
        refresh_margin: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """The parts are built by x3link/wiring.py `token_keeper`, over the same store, timing and clock."""
        self.store = store
        self._leases = leases
        self._admission = admission
        self._commit = commit
        self._spender = spender
        self._margin = refresh_margin
        self._clock = clock
        self._sleep = sleep
        self._timing = leases.timing

    def default_budget(self) -> Budget:
        return Budget(finish_by=self._clock() + 300)

    # ------------------------------------------------------------------ queries' entry points
    def usable_pairing(
        self, tenant: str, budget: Budget | None = None, *, check: Callable[[Pairing], None] | None = None
    ) -> Pairing:
        """The tenant's pairing with an access token good for at least the refresh margin.

        `check` vets the pairing as stored before any refresh: a request it refuses costs Sage nothing.
        """
        breaker = self._admission.breaker
        default = breaker.default_gateway
        found, gateway_item = self.store.get_with(tenant, gateway_key(default))
        breaker.remember(default, gateway_item)
        pairing = self._admission.usable(found, tenant)  # its tokens opened: no KMS call when warm
        if check:
            check(pairing)
        expires = pairing.access_token_expires_at or 0
        if pairing.status == ACTIVE and pairing.access_token and expires - self._clock() > self._margin:
            return pairing
        return self.refresh(pairing, budget)

    def after_unauthorised(self, used: Pairing, budget: Budget | None = None) -> Pairing:
        """Sage refused `used`'s access token: take a newer one if someone refreshed, else refresh now."""
        latest = self._admission.usable(self.store.get(used.tenant), used.tenant)
        if (latest.generation, latest.version) != (used.generation, used.version):
            return latest
        return self.refresh(latest, budget)

    def retry(self, tenant: str, budget: Budget | None = None) -> Pairing:
        """An operator's retry of a pairing in any status: refresh now, whatever its backoff says."""
        pairing = self.store.get(tenant)
        if pairing is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        return self.refresh(pairing, budget, operator=True)

    # ------------------------------------------------------------------ the refresh itself
    def refresh(
        self,
        seen: Pairing,
        budget: Budget | None = None,
        *,
        operator: bool = False,
        seek_witness: bool = True,
    ) -> Pairing:
        """Refresh `seen` under a lease, or wait for the worker that holds it and use its tokens.

        `seek_witness` False: a refusal is never settled by refreshing another pairing (that refresh is
        itself the witness, or the second try after one).
        """
        budget = budget or self.default_budget()
        started = self._clock()
        give_up_at = min(started + self._timing.wait_seconds, budget.finish_by)
        if budget.answer_by is not None:
            give_up_at = min(give_up_at, budget.answer_by - 1)
        current: Pairing | None = seen
        while True:
            if current is None:
                raise NotPaired(f"Tenant {seen.tenant!r} is not paired.")
            if (current.generation, current.version) != (seen.generation, seen.version):
                return self._admission.usable(current, seen.tenant)
            if current.status == EXPIRED and not operator:
                raise PairingExpired("This pairing has expired: the customer must pair again.")
            now = self._clock()
            if current.refresh_failed_at and current.refresh_failed_at >= started and not operator:
                raise UpstreamError("Refreshing this pairing's token failed just now; try again shortly.")
            if not current.leased_at(now):
                # The refresh token is in the sealed tokens: open them before anything else is claimed.
                current = self.store.open(current)
                credentials, probe = self._admission.admit(current, operator)
                # Whatever Sage answers is then stored with no KMS call: a KMS outage met now costs a
                # retry, met after the refresh token was spent it would leave the new tokens only parked.
                leases = self._leases
                self.store.prepare_to_seal(
                    current.tenant, leases.seal_window(leases.token_timeout(now, budget))
                )
                # The lease's end is reckoned from the moment of its write, never from a clock read before
                # slow work (KMS, Secrets Manager): it must outlast everything done under it.
                owner = leases.new_owner()
                leased_at = self._clock()
                token_timeout = leases.token_timeout(leased_at, budget)
                lease_until = leases.until(leased_at, token_timeout)
                answer = leases.take(current, owner, leased_at, lease_until)
                if answer.taken:
                    lease = RefreshLease(
                        current,
                        owner,
                        lease_until,
                        token_timeout,
                        probe,
                        operator,
                        budget,
                        lapsed=answer.lapsed,
                        reply_maybe_lost=answer.lapsed
                        or current.refresh_timed_out_at is not None
                        or (answer.before is not None and answer.before.refresh_timed_out_at is not None),
                        seek_witness=seek_witness,
                    )
                    return self._spender.spend(lease, credentials, answer, started, self.refresh)
            if now >= give_up_at:
                raise UpstreamTimeout("Another refresh of this pairing did not finish in time.")
            self._sleep(self._timing.poll_seconds)
            current = self.store.get(seen.tenant)

    # ------------------------------------------------------------------ parked tokens
    def apply_rescued(self, rescued: RescuedTokens) -> bool:
        """Store a parked token set (commit.py): True when stored or superseded."""
        return self._commit.apply_rescued(rescued)

    def recover_rescued(self, deadline: float | None = None, *, confirm_empty: bool = True) -> DrainResult:
        """Store every token set parked by earlier failed writes; raises when the queue cannot be read."""
        return self._commit.recover_rescued(deadline, confirm_empty=confirm_empty)

    # ------------------------------------------------------------------ the keep-alive
    def due_for_keep_alive(self, keep_alive_seconds: float) -> Iterator[str]:
        """Tenants whose pairing may be due, through the index (never a scan): active ones whose refresh
        token expires within the window, and every suspended one (`keep_alive` skips those not yet due)."""
        seen: set[str] = set()
        for tenant in self.store.due_for_refresh(self._clock() + keep_alive_seconds):
            seen.add(tenant)
            yield tenant
        for tenant in self.store.tenants_with_status(SUSPENDED):
            if tenant not in seen:
                yield tenant

    def data_keys(self, tenants: list[str]) -> dict[str, bytes]:
        """The encrypted data keys of these due tenants' tokens (100 at most), for their refresh orders."""
        return self.store.data_keys(tenants)

    def keep_alive(
        self, tenant: str, keep_alive_seconds: float, budget: Budget, *, data_key: bytes | None = None
    ) -> Outcome:
        """Refresh one pairing if it is still due; the outcome: `refreshed`, `skipped` (no longer due, gone,
        or expired), `suspended`, `expired` or `held` (its gateway's breaker is open, or its refusal is held
        until the evidence decides: the keep-alive looks again after the run's other refreshes). Any other
        failure is raised.

        An active pairing costs two table writes (the lease, which also reads it, and the commit); a
        suspended one, whose retry rules a condition cannot express, is read first. `data_key`, the
        encrypted data key its run read, is opened by KMS while the lease is written, not after.
        """
        if data_key is not None:
            self.store.start_opening(tenant, data_key)
        try:
            leased = self._keep_alive_leased(tenant, keep_alive_seconds, budget)
            if isinstance(leased, Pairing):
                return Outcome.REFRESHED
            pairing, now = leased.before, self._clock()
            if pairing is None or pairing.status == EXPIRED:
                return Outcome.SKIPPED
            if (
                pairing.status == ACTIVE
                and (pairing.refresh_token_expires_at or 0) > now + keep_alive_seconds
            ):
                return Outcome.SKIPPED
            if pairing.status == SUSPENDED and not self._admission.retry_due(pairing, now):
                return Outcome.SKIPPED
            self.refresh(pairing, budget)  # suspended and due, or another attempt holds its lease
        except AppUnavailable:
            return Outcome.HELD
        except PairingSuspended:
            return Outcome.SUSPENDED
        except PairingExpired:
            return Outcome.EXPIRED
        except NotPaired:  # deleted while it waited: nothing left to keep alive
            return Outcome.SKIPPED
        finally:
            if data_key is not None:  # opened by then, or not needed
                self.store.stop_opening(tenant, data_key)
        return Outcome.REFRESHED

    def _keep_alive_leased(self, tenant: str, keep_alive_seconds: float, budget: Budget) -> Pairing | Lease:
        """The keep-alive's refresh in two writes: the lease, which also checks that the pairing is still
        due and answers it, and the commit. The lease's answer when it was not taken (the pairing as it is,
        to decide why)."""
        leases = self._leases
        now = self._clock()
        token_timeout = leases.token_timeout(now, budget)
        owner = leases.new_owner()
        until = leases.until(now, token_timeout)
        answer = leases.take_if_due(tenant, owner, now, until, now + keep_alive_seconds)
        if not answer.taken or answer.before is None:
            return answer
        seen = answer.before
        lease = RefreshLease(
            seen,
            owner,
            until,
            token_timeout,
            False,
            False,
            budget,
            lapsed=answer.lapsed,
            reply_maybe_lost=answer.lapsed or seen.refresh_timed_out_at is not None,
        )
        try:
            pairing = self.store.open(seen)
            credentials, probe = self._admission.admit(pairing, False)
            self.store.prepare_to_seal(tenant, leases.seal_window(token_timeout))
        except Exception:
            leases.release(lease, failed=False)  # nothing was sent: the next attempt may go at once
            raise
        lease = replace(lease, pairing=pairing, probe=probe)
        return self._spender.spend(lease, credentials, answer, now, self.refresh)

    def seconds_needed(self) -> float:
        """The least time a refresh needs, from its start to its last write: with less, do not start one."""
        return self._leases.seconds_needed()
