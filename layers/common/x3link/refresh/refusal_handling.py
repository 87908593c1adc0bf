"""What a refused refresh leads to: the refusal judged on evidence across pairings, never trusted, and done.

refusal_policy.py decides; this module reads, writes and asks. Parked tokens are applied first (a
stale worker's refusal may only mean another one rotated the token); refusals about the app open its
gateway's circuit breaker (no pairing changes state); a refusal nothing explains yet is held (the pairing
stays `active`) and may be settled at once by another pairing's refresh on the same gateway; a refused
grant is `suspended` (its refresh token kept, retried with backoff) before it is ever `expired`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.budget import Budget
from x3link.counted_metrics import count
from x3link.errors import (
    AppUnavailable,
    GrantRefused,
    PairingExpired,
    PairingSuspended,
    RefusalHeld,
    UpstreamError,
    X3LinkError,
)
from x3link.refresh.admission import APP_UNAVAILABLE
from x3link.refresh.refusal_policy import (
    GatewayEvidence,
    Judgement,
    Reason,
    RefusedRefresh,
    Verdict,
    classify,
    judge,
)
from x3link.sage.oauth import ClientCredentials
from x3link.tokens.model import EXPIRED, SUSPENDED, Pairing, Refusal

if TYPE_CHECKING:
    from x3link.refresh.admission import Admission
    from x3link.refresh.breaker import AppBreaker
    from x3link.refresh.commit import TokenCommit
    from x3link.refresh.lease import KeeperTiming, Leases, RefreshLease
    from x3link.tokens.store import TokenStore

logger = Logger(child=True)

HELD_MESSAGE = (
    "Sage X3 refused this pairing's refresh, and whether it refuses the app or this grant is not known yet: "
    "nothing was changed; try again in a few minutes. If the client credentials secret was just regenerated "
    "at Sage, store the new one in the client credentials secret."
)


class Refresh(Protocol):
    """The keeper's refresh (keeper.py `TokenKeeper.refresh`): a held refusal asks it again."""

    def __call__(
        self,
        seen: Pairing,
        budget: Budget | None = None,
        *,
        operator: bool = False,
        seek_witness: bool = True,
    ) -> Pairing: ...


class RefusalHandling:
    def __init__(
        self,
        store: TokenStore,
        breaker: AppBreaker,
        leases: Leases,
        commit: TokenCommit,
        admission: Admission,
        timing: KeeperTiming,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self._breaker = breaker
        self._leases = leases
        self._commit = commit
        self._admission = admission
        self._timing = timing
        self._clock = clock

    def judge(
        self, lease: RefreshLease, refused: GrantRefused, credentials: ClientCredentials, refresh: Refresh
    ) -> Pairing:
        """Decide what a refused refresh means (refusal_policy.py), then do it."""
        pairing, owner = lease.pairing, lease.owner
        # A stale worker's refusal may just mean another one rotated the token: parked tokens first. Unless
        # the whole queue was seen, fail closed: a grant is never judged while its live token may be parked.
        latest = self._commit.apply_parked(
            lease,
            "Sage X3 refused the refresh and the parked tokens could not all be checked; nothing was "
            "changed, try again shortly.",
        )
        if (latest.generation, latest.version) != (pairing.generation, pairing.version):
            return self._admission.usable(latest, pairing.tenant)
        now = self._clock()
        refusal = Refusal(at=now, status=refused.upstream_status, message=refused.sage_message)
        if lease.operator and pairing.status == EXPIRED:
            self.store.note_refusal(pairing, refusal, owner)
            raise PairingExpired("Sage X3 still refuses this pairing: the customer must pair again.")
        gateway = pairing.endpoint
        facts = RefusedRefresh(
            tenant=pairing.tenant,
            kind=classify(refused.upstream_status, refused.sage_message, from_sage=refused.from_sage),
            at=now,
            suspended=pairing.status == SUSPENDED,
            suspended_at=pairing.suspended_at,
            held_since=pairing.held_at,
            refresh_token_expires_at=pairing.refresh_token_expires_at,
            reply_maybe_lost=lease.reply_maybe_lost,
        )
        try:
            judgement = self._weigh(facts, gateway, credentials.version)
        except STORE_ERRORS as exc:
            logger.warning("The gateway's evidence could not be read", extra={"error": error_code(exc)})
            self._leases.release(lease)
            raise UpstreamError(
                "Sage X3 refused the refresh; nothing was changed, try again shortly."
            ) from None
        log = {
            "tenant": pairing.tenant,
            "gateway": gateway,
            "upstream_status": refusal.status,
            "kind": facts.kind,
            "verdict": judgement.verdict,
            "reason": judgement.reason,
        }
        if judgement.verdict == Verdict.APP_REFUSED:
            self._leases.release(lease)
            version = credentials.version
            if self._breaker.open(gateway, pairing.tenant, refusal.status, refusal.message, version):
                logger.error("Sage X3 refuses the app at this gateway: circuit breaker opened", extra=log)
            else:
                logger.warning("Sage X3 still refuses the app itself at this gateway", extra=log)
            count("AppCredentialsRejected")
            raise AppUnavailable(APP_UNAVAILABLE)
        if judgement.verdict == Verdict.HOLD:
            logger.warning("Sage X3 refused this refresh; held until the evidence decides", extra=log)
            if not self.store.hold(pairing, refusal, owner):
                self._leases.release(lease)
            if lease.seek_witness and self._witness_accepted(pairing, lease.budget, refresh):
                # Sage accepted the app for another pairing after refusing this one: ask once more, and
                # a second refusal is judged on that evidence.
                return refresh(
                    self.store.get(pairing.tenant) or pairing,
                    lease.budget,
                    operator=lease.operator,
                    seek_witness=False,
                )
            raise RefusalHeld(HELD_MESSAGE)
        if judgement.verdict == Verdict.EXPIRE:
            return self._expire(pairing, owner, refusal, judgement.reason)
        if judgement.reason == Reason.REPLY_LOST:
            logger.critical(
                "A refresh whose answer was lost left a refresh token Sage no longer accepts: the pairing is "
                "suspended and will need to be renewed unless Sage honours it again",
                extra=log,
            )
            count("TokensLost")
        else:
            logger.warning("Sage X3 refused this pairing's grant: suspended", extra=log)
        return self._suspend(pairing, owner, refusal, judgement.reason, credentials.version)

    def _witness_accepted(self, refused: Pairing, budget: Budget, refresh: Refresh) -> bool:
        """Settle a held refusal at once: refresh another active pairing on the same gateway. Sage
        accepting it means this grant is what is refused; Sage refusing it too opens the gateway's breaker
        (two pairings refused, no success between) and raises AppUnavailable. False when no other pairing
        could be asked: the refusal stays held.
        """
        try:
            witness = self.store.active_on_gateway(refused.endpoint, exclude=refused.tenant)
            pairing = self.store.get(witness) if witness else None
        except STORE_ERRORS:
            return False
        if pairing is None:
            return False
        logger.info(
            "Asking another pairing's refresh whether Sage accepts the app",
            extra={"tenant": refused.tenant, "witness": pairing.tenant},
        )
        try:
            refresh(pairing, budget, seek_witness=False)
        except AppUnavailable as refused_too:
            if isinstance(refused_too, RefusalHeld):
                return False
            raise AppUnavailable(APP_UNAVAILABLE) from None
        except X3LinkError as exc:
            logger.info(
                "The witness could not be refreshed", extra={"witness": pairing.tenant, "error": exc.code}
            )
            return False
        return True

    def _weigh(self, facts: RefusedRefresh, gateway: str, version: str) -> Judgement:
        """The policy's judgement on the gateway's evidence; a refusal it would hold is recorded there first
        and judged again on the record as it was just before, so two pairings refused at the same moment
        each see the other's refusal."""
        t = self._timing

        def weigh(evidence: GatewayEvidence) -> Judgement:
            return judge(
                facts,
                evidence,
                grace_seconds=t.grace_seconds,
                hold_seconds=t.hold_seconds,
                health_window_seconds=t.health_window_seconds,
            )

        judgement = weigh(self._breaker.view(gateway, fresh=True).evidence(version))
        if judgement.verdict != Verdict.HOLD:
            return judgement
        before = self._breaker.note_refusal(gateway, facts.at, version, facts.tenant)
        return weigh(before.evidence(version))

    def _suspend(
        self, pairing: Pairing, owner: str, refusal: Refusal, reason: str, credentials_version: str
    ) -> Pairing:
        t = self._timing
        delay = min(t.retry_base_seconds * 2 ** min(pairing.refusal_count, 20), t.retry_max_seconds)
        self.store.suspend(pairing, refusal, refusal.at + delay, reason, owner, credentials_version)
        count("PairingsSuspended")
        raise PairingSuspended(
            "Sage X3 refuses this pairing's grant for now; it is kept and retried, and expires only if the "
            "refusals last past the grace period."
        )

    def _expire(self, pairing: Pairing, owner: str, refusal: Refusal, reason: str) -> Pairing:
        if self.store.mark_expired(pairing, refusal, reason, owner):
            logger.warning("Pairing expired", extra={"tenant": pairing.tenant, "reason": reason})
            count("PairingsExpired")
        raise PairingExpired("Sage X3 no longer accepts this pairing: the customer must pair again.")
