"""New tokens stored before the lease's commit deadline, else parked in the rescue queue; parked token sets
applied over the exact pairing version they were issued for.

Sage kills the old refresh token the moment it issues a new one, so a token set it answered must never be
lost: a commit is retried until its deadline inside the lease, then the set is parked (rescue.py),
and before a refusal is judged or a lapsed lease's refresh token is spent, whatever was parked is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.counted_metrics import count
from x3link.errors import NotPaired, UpstreamError
from x3link.sage.oauth import TokenSet
from x3link.tokens.model import ACTIVE, Pairing

if TYPE_CHECKING:
    from x3link.refresh.admission import Admission
    from x3link.refresh.lease import KeeperTiming, Leases, RefreshLease
    from x3link.refresh.rescue import DrainResult, RescuedTokens, TokenRescue
    from x3link.tokens.store import TokenStore

logger = Logger(child=True)


class TokenCommit:
    def __init__(
        self,
        store: TokenStore,
        rescue: TokenRescue,
        leases: Leases,
        admission: Admission,
        timing: KeeperTiming,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.store = store
        self._rescue = rescue
        self._leases = leases
        self._admission = admission
        self._timing = timing
        self._clock = clock
        self._sleep = sleep

    def store_refreshed(self, lease: RefreshLease, tokens: TokenSet, reason: str | None) -> Pairing:
        """Store what Sage answered under `lease`, by its commit deadline, else park it; the pairing a caller
        may use either way (raises only when the tokens could be neither stored nor parked)."""
        pairing, t = lease.pairing, self._timing
        commit_by = lease.until - t.park_seconds - t.margin_seconds
        attempt = 0
        while attempt == 0 or self._clock() + t.store_call_seconds <= commit_by:
            attempt += 1
            try:
                stored = self.store.commit_refresh(pairing, tokens, self._clock(), reason=reason)
            except STORE_ERRORS as exc:
                logger.warning(
                    "Storing refreshed tokens failed",
                    extra={"tenant": pairing.tenant, "attempt": attempt, "error": error_code(exc)},
                )
                self._sleep(
                    min(t.write_backoff_seconds * 2 ** (attempt - 1), max(0.0, commit_by - self._clock()))
                )
                continue
            if stored is None:
                # Deleted or paired anew meanwhile: the newer pairing wins; these tokens are an old grant's.
                logger.warning(
                    "Pairing changed during refresh; keeping the newer state",
                    extra={"tenant": pairing.tenant},
                )
                return self._admission.usable(self.store.get(pairing.tenant), pairing.tenant)
            logger.info("Tokens refreshed", extra={"tenant": pairing.tenant, "version": stored.version})
            return stored
        if not self._park(lease, tokens):
            logger.critical(
                "Refreshed tokens could neither be stored nor rescued: the pairing will need to be renewed",
                extra={"tenant": pairing.tenant},
            )
            count("TokensLost")
            raise UpstreamError("The refreshed tokens could not be stored.")
        logger.error("Refreshed tokens parked in the rescue queue", extra={"tenant": pairing.tenant})
        # The caller still gets a working access token; the lease stays until the rescue is applied.
        return replace(
            pairing,
            status=ACTIVE,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_token_expires_at=tokens.access_token_expires_at,
            refresh_token_expires_at=tokens.refresh_token_expires_at,
        )

    def _park(self, lease: RefreshLease, tokens: TokenSet) -> bool:
        """Park the tokens in the rescue queue, trying again while the lease still has time for a try."""
        pairing, lease_until, t = lease.pairing, lease.until, self._timing
        attempt = 0
        while attempt == 0 or self._clock() + 2 * t.store_call_seconds <= lease_until - t.margin_seconds:
            attempt += 1
            try:
                self._rescue.save(pairing.tenant, pairing.generation, pairing.version, tokens)
            except Exception as exc:
                logger.warning(
                    "Parking refreshed tokens failed",
                    extra={"tenant": pairing.tenant, "attempt": attempt, "error": error_code(exc)},
                )
                self._sleep(t.write_backoff_seconds * 2 ** (attempt - 1))
                continue
            return True
        return False

    def apply_rescued(self, rescued: RescuedTokens) -> bool:
        """Store a parked token set over the exact generation and version it was issued for.

        True when stored or superseded (the message can go), False on a transient failure.
        """
        try:
            pairing = self.store.get(rescued.tenant)
            if (
                pairing is None
                or pairing.generation != rescued.generation
                or pairing.version != rescued.version
            ):
                logger.warning("Rescued tokens superseded", extra={"tenant": rescued.tenant})
                return True
            reason = None if pairing.status == ACTIVE else "recovered"
            stored = self.store.commit_refresh(pairing, rescued.tokens, self._clock(), reason=reason)
        except STORE_ERRORS as exc:
            logger.warning(
                "Storing rescued tokens failed", extra={"tenant": rescued.tenant, "error": error_code(exc)}
            )
            return False
        logger.info(
            "Rescued tokens stored" if stored else "Rescued tokens superseded",
            extra={"tenant": rescued.tenant},
        )
        return True

    def recover_rescued(self, deadline: float | None = None, *, confirm_empty: bool = True) -> DrainResult:
        """Store every token set parked by earlier failed writes; raises when the queue cannot be read."""
        return self._rescue.drain(
            self.apply_rescued,
            deadline=deadline or self._clock() + self._timing.rescue_drain_seconds,
            clock=self._clock,
            confirm_empty=confirm_empty,
        )

    def apply_parked(self, lease: RefreshLease, unchecked: str) -> Pairing:
        """Store every token set parked by earlier failed writes, then the pairing as it now is. When the
        rescue queue cannot be seen whole, fail closed: the lease is given back, nothing is spent or judged,
        and the caller gets `unchecked` (502)."""
        tenant = lease.pairing.tenant
        try:
            drained = self.recover_rescued(
                deadline=min(self._clock() + self._timing.rescue_drain_seconds, lease.until)
            )
            latest = self.store.get(tenant)
        except Exception as exc:
            logger.warning(
                "Parked tokens could not be checked", extra={"tenant": tenant, "error": error_code(exc)}
            )
            drained, latest = None, None
        if drained is None or not drained.complete:
            self._leases.release(lease)
            raise UpstreamError(unchecked)
        if latest is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        return latest
