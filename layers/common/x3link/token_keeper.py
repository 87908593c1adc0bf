"""Keeps pairings' tokens alive: one refresh per pairing at a time, no issued refresh token ever lost, and
no pairing ended unless its customer ended it.

Sage rotates the refresh token on every refresh and kills the old one at once, and it does not say how it
reports a dead grant. So:
- a DynamoDB lease, fenced on the pairing's generation and version, lets one worker spend the refresh
  token; it covers the worst case of the work done under it, and is not taken when the invocation has too
  little time left for that work;
- new tokens are stored before a commit deadline inside the lease, else parked in the rescue queue;
- a refusal is judged on evidence across pairings, never trusted (x3link/refusal_policy.py decides; this
  module reads, leases, calls and writes): the secret is re-read, parked tokens are applied, refusals about
  the app open its gateway's circuit breaker (no pairing changes state), a refusal nothing explains yet is
  held (the pairing stays `active`), and a refused grant is `suspended` (its refresh token kept, retried with
  backoff) before it is ever `expired`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.aws_errors import STORE_ERRORS, error_code
from x3link.breaker import AppBreaker, gateway_key
from x3link.budget import Budget
from x3link.errors import (
    AppUnavailable,
    GrantRefused,
    NotPaired,
    PairingExpired,
    PairingSuspended,
    RefusalHeld,
    StorageUnavailable,
    UpstreamError,
    UpstreamTimeout,
    X3LinkError,
)
from x3link.oauth import ClientCredentials, TokenSet, parse_token_response, refresh_grant
from x3link.outcomes import Outcome
from x3link.pairings import ACTIVE, EXPIRED, SUSPENDED, Lease, Pairing, Refusal
from x3link.refusal_policy import (
    GatewayEvidence,
    Judgement,
    Reason,
    RefusedRefresh,
    Verdict,
    classify,
    judge,
    retry_due,
)
from x3link.token_store import TokenStore

if TYPE_CHECKING:
    from x3link.credentials import CredentialsSource
    from x3link.rescue import DrainResult, RescuedTokens, TokenRescue
    from x3link.sage_client import SageX3Client

logger = Logger(child=True)

APP_UNAVAILABLE = (
    "Sage X3 refuses this app's own credentials, so no pairing is being refreshed through this gateway: "
    "check the client id and secret in the client credentials secret, that the app is enabled in the Sage "
    "App Registry, and that no proxy in front of Sage refuses the calls."
)
HELD_MESSAGE = (
    "Sage X3 refused this pairing's refresh, and whether it refuses the app or this grant is not known yet: "
    "nothing was changed; try again in a few minutes. If the client credentials secret was just regenerated "
    "at Sage, store the new one in the client credentials secret."
)


@dataclass
class KeeperTiming:
    token_timeout: float = 60.0  # the longest a token call may wait for its answer (the keep-alive worker's)
    min_token_timeout: float = 5.0  # with less than this left, a refresh is not started at all
    connect_seconds: float = 10.0  # a token call's connection tries (3 x 3 s, with backoff)
    store_call_seconds: float = 9.0  # one DynamoDB call at worst, as its client is configured
    commit_seconds: float = 10.0  # storing new tokens; past it they are parked instead
    park_seconds: float = 27.0  # parking them: one try (KMS, then SQS) at worst, a second if it fails fast
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
class _Lease:
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


class TokenKeeper:
    def __init__(
        self,
        store: TokenStore,
        sage: SageX3Client,
        credentials: CredentialsSource,
        breaker: AppBreaker,
        rescue: TokenRescue,
        *,
        refresh_margin: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timing: KeeperTiming | None = None,
    ) -> None:
        self.store = store
        self._sage = sage
        self._credentials = credentials
        self._breaker = breaker
        self._rescue = rescue
        self._margin = refresh_margin
        self._clock = clock
        self._sleep = sleep
        self._timing = timing or KeeperTiming()
        self._owner = uuid.uuid4().hex[:16]
        self._health_written: dict[str, tuple[float, str]] = {}  # gateway -> (at, credentials version)
        self._credentials_checked_at = 0.0

    def default_budget(self) -> Budget:
        return Budget(finish_by=self._clock() + 300)

    # ------------------------------------------------------------------ queries' entry points
    def usable_pairing(
        self, tenant: str, budget: Budget | None = None, *, check: Callable[[Pairing], None] | None = None
    ) -> Pairing:
        """The tenant's pairing with an access token good for at least the refresh margin.

        `check` vets the pairing as stored before any refresh: a request it refuses costs Sage nothing.
        """
        default = self._breaker.default_gateway
        found, gateway_item = self.store.get_with(tenant, gateway_key(default))
        self._breaker.remember(default, gateway_item)
        pairing = self._require_usable(found, tenant)  # its tokens opened: no KMS call when warm
        if check:
            check(pairing)
        expires = pairing.access_token_expires_at or 0
        if pairing.status == ACTIVE and pairing.access_token and expires - self._clock() > self._margin:
            return pairing
        return self.refresh(pairing, budget)

    def after_unauthorised(self, used: Pairing, budget: Budget | None = None) -> Pairing:
        """Sage refused `used`'s access token: take a newer one if someone refreshed, else refresh now."""
        latest = self._require_usable(self.store.get(used.tenant), used.tenant)
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
                return self._require_usable(current, seen.tenant)
            if current.status == EXPIRED and not operator:
                raise PairingExpired("This pairing has expired: the customer must pair again.")
            now = self._clock()
            if current.refresh_failed_at and current.refresh_failed_at >= started and not operator:
                raise UpstreamError("Refreshing this pairing's token failed just now; try again shortly.")
            if not current.leased_at(now):
                # The refresh token is in the sealed tokens: open them before anything else is claimed.
                current = self.store.open(current)
                credentials, probe = self._admit(current, operator)
                t = self._timing
                # Whatever Sage answers is then stored with no KMS call: a KMS outage met now costs a
                # retry, met after the refresh token was spent it would leave the new tokens only parked.
                self.store.prepare_to_seal(
                    current.tenant, t.connect_seconds + self._token_timeout(now, budget) + t.commit_seconds
                )
                # The lease's end is reckoned from the moment of its write, never from a clock read before
                # slow work (KMS, Secrets Manager): it must outlast everything done under it.
                owner = f"{self._owner}-{uuid.uuid4().hex[:12]}"
                leased_at = self._clock()
                token_timeout = self._token_timeout(leased_at, budget)
                lease_until = leased_at + t.connect_seconds + token_timeout + t.after_token_seconds
                answer = self._take_lease(current, owner, leased_at, lease_until)
                if answer.taken:
                    lease = _Lease(
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
                    return self._spend(lease, credentials, answer, started)
            if now >= give_up_at:
                raise UpstreamTimeout("Another refresh of this pairing did not finish in time.")
            self._sleep(self._timing.poll_seconds)
            current = self.store.get(seen.tenant)

    def _admit(self, pairing: Pairing, operator: bool) -> tuple[ClientCredentials, bool]:
        """The credentials to refresh with, and whether this refresh is the breaker's probe.

        While the breaker is open nothing is refreshed but one probe an interval (or at once, when the
        secret changed since it opened); an operator's retry always goes through, as a probe.
        """
        credentials = self._credentials.current()
        gateway = pairing.endpoint
        view = self._breaker.view(gateway)
        if not view.is_open:
            return credentials, False
        now = self._clock()
        if now - self._credentials_checked_at >= self._timing.credentials_recheck_seconds:
            credentials = self._credentials.reload()
            self._credentials_checked_at = now
        if operator:
            return credentials, True
        # The breaker's own rule, read off the cached view first: no write while no probe can be due.
        interval, probe_at = self._breaker.probe_interval, view.next_probe_at or 0
        probe_due = probe_at <= now and (view.opened_by != pairing.tenant or probe_at <= now - interval)
        may_probe = probe_due or view.rejected_version != credentials.version
        if may_probe and self._breaker.claim_probe(gateway, pairing.tenant, credentials.version):
            logger.info("Probing the app's credentials with this refresh", extra={"tenant": pairing.tenant})
            return credentials, True
        raise AppUnavailable(APP_UNAVAILABLE)

    def _token_timeout(self, now: float, budget: Budget) -> float:
        """As long as the token call can be given: the caller's answer time and the work after it allow."""
        t = self._timing
        timeout = min(t.token_timeout, budget.finish_by - now - t.connect_seconds - t.after_token_seconds)
        if budget.answer_by is not None:
            timeout = min(timeout, budget.answer_by - now - 1)
        if timeout < t.min_token_timeout:
            raise UpstreamTimeout("Too little time is left to refresh this pairing safely; try again.")
        return timeout

    def _spend(self, lease: _Lease, credentials: ClientCredentials, answer: Lease, started: float) -> Pairing:
        """Under a lease just taken: what happened since the pairing was read decides, then the refresh."""
        failed_at = answer.before.refresh_failed_at if answer.before is not None else None
        if failed_at is not None and failed_at >= started and not lease.operator:
            self._release(lease)  # another attempt failed since this one read the pairing
            raise UpstreamError("Refreshing this pairing's token failed just now; try again shortly.")
        if answer.lapsed:
            settled = self._settle_lapsed(lease)
            if settled is not None:
                return settled
        return self._refresh_leased(lease, credentials)

    def _keep_alive_leased(self, tenant: str, keep_alive_seconds: float, budget: Budget) -> Pairing | Lease:
        """The keep-alive's refresh in two writes: the lease, which also checks that the pairing is still
        due and answers it, and the commit. The lease's answer when it was not taken (the pairing as it is,
        to decide why)."""
        t = self._timing
        now = self._clock()
        token_timeout = self._token_timeout(now, budget)
        owner = f"{self._owner}-{uuid.uuid4().hex[:12]}"
        until = now + t.connect_seconds + token_timeout + t.after_token_seconds
        answer = self.store.lease_if_due(tenant, owner, now, until, now + keep_alive_seconds)
        if not answer.taken or answer.before is None:
            return answer
        seen = answer.before
        lease = _Lease(
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
            credentials, probe = self._admit(pairing, False)
            self.store.prepare_to_seal(tenant, t.connect_seconds + token_timeout + t.commit_seconds)
        except Exception:
            self._release(lease, failed=False)  # nothing was sent: the next attempt may go at once
            raise
        lease = replace(lease, pairing=pairing, probe=probe)
        return self._spend(lease, credentials, answer, now)

    def _take_lease(self, pairing: Pairing, owner: str, now: float, until: float) -> Lease:
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

    def _settle_lapsed(self, lease: _Lease) -> Pairing | None:
        """Before spending a refresh token found under a lapsed lease: apply any token set its holder parked.

        The pairing with the parked tokens stored, when there were some for it; None when the queue was
        seen whole and none was (the refresh may go on).
        """
        latest = self._apply_parked(
            lease,
            "A refresh of this pairing was interrupted and its tokens may be parked; they could not all be "
            "checked, so nothing was sent to Sage X3: try again shortly.",
        )
        if (latest.generation, latest.version) != (lease.pairing.generation, lease.pairing.version):
            logger.info("Parked tokens applied before refreshing", extra={"tenant": latest.tenant})
            return self._require_usable(latest, latest.tenant)
        return None

    def _apply_parked(self, lease: _Lease, unchecked: str) -> Pairing:
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
            self._release(lease)
            raise UpstreamError(unchecked)
        if latest is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        return latest

    def _time_for_token_call(self, lease: _Lease) -> float:
        """The read timeout the token call may have: what is left of the lease once the connection, the
        commit and the park are set aside. With too little left, the lease is given back unspent."""
        t = self._timing
        left = lease.until - self._clock() - t.connect_seconds - t.after_token_seconds
        timeout = min(lease.token_timeout, left)
        if timeout < t.min_token_timeout:
            self._release(lease)
            raise UpstreamTimeout("Too little time is left to refresh this pairing safely; try again.")
        return timeout

    def _refresh_leased(
        self, lease: _Lease, credentials: ClientCredentials, *, retried: bool = False
    ) -> Pairing:
        pairing = lease.pairing
        assert pairing.refresh_token
        read_timeout = self._time_for_token_call(lease)
        try:
            payload = self._sage.token(
                pairing.endpoint, refresh_grant(pairing.refresh_token, credentials), read_timeout=read_timeout
            )
            tokens = parse_token_response(
                payload,
                self._clock(),
                previous_refresh_token=pairing.refresh_token,
                previous_refresh_expires_at=pairing.refresh_token_expires_at,
            )
        except GrantRefused as refusal:
            fresh = self._reload_credentials()
            if fresh is not None and fresh != credentials and not retried:
                # The secret was rotated: the refused token was not spent, so try once with the new one.
                logger.info("Client credentials changed; retrying the refresh with them")
                return self._refresh_leased(lease, fresh, retried=True)
            return self._judge(lease, refusal, fresh or credentials)
        except X3LinkError as exc:
            self._release(lease, maybe_applied=exc.maybe_applied)
            raise
        self._note_success(pairing.endpoint, pairing.tenant, credentials, lease.probe)
        reason = None
        if pairing.status != ACTIVE:
            reason = "operator_retry" if lease.operator else "recovered"
        return self._store_refreshed(lease, tokens, reason)

    def _reload_credentials(self) -> ClientCredentials | None:
        try:
            return self._credentials.reload()
        except X3LinkError:
            return None

    def _note_success(self, gateway: str, tenant: str, credentials: ClientCredentials, probe: bool) -> None:
        """Record on the gateway's record that Sage accepted these credentials there, for this pairing: the
        evidence refusals are judged by. At most one write a minute per execution environment unless it is
        news (a refusal was recorded since); a probe's success closes the breaker.
        """
        now = self._clock()
        view = self._breaker.view(gateway)
        written = self._health_written.get(gateway)
        news = view.is_open or (view.refusal_at or float("-inf")) > (view.success_at or float("-inf"))
        interval = self._breaker.success_write_interval
        recently = written is not None and written[1] == credentials.version and now - written[0] < interval
        # Another environment (or a code exchange) noted a success with these credentials this minute.
        noted = view.success_version == credentials.version and (view.success_at or 0) >= now - interval
        if not probe and not news and (recently or noted):
            return
        try:
            if probe or view.is_open:
                self._breaker.close(gateway, credentials.version, tenant)
                logger.info(
                    "Sage X3 accepts the app's credentials again: the circuit breaker is closed",
                    extra={"gateway": gateway},
                )
            else:
                self._breaker.note_success(gateway, now, credentials.version, tenant)
            self._health_written[gateway] = (now, credentials.version)
        except STORE_ERRORS as exc:
            logger.warning("Could not record the gateway's health", extra={"error": error_code(exc)})

    def _release(self, lease: _Lease, *, maybe_applied: bool = False, failed: bool = True) -> None:
        tenant = lease.pairing.tenant
        try:
            self.store.release_lease(
                tenant, lease.owner, self._clock(), maybe_applied=maybe_applied, failed=failed
            )
        except STORE_ERRORS:
            logger.warning("Could not release a refresh lease; it lapses by itself", extra={"tenant": tenant})

    def _store_refreshed(self, lease: _Lease, tokens: TokenSet, reason: str | None) -> Pairing:
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
                return self._require_usable(self.store.get(pairing.tenant), pairing.tenant)
            logger.info("Tokens refreshed", extra={"tenant": pairing.tenant, "version": stored.version})
            return stored
        if not self._park(lease, tokens):
            logger.critical(
                "Refreshed tokens could neither be stored nor rescued: the pairing will need to be renewed",
                extra={"tenant": pairing.tenant},
            )
            _count("TokensLost")
            raise UpstreamError("The refreshed tokens could not be stored.")
        logger.error("Refreshed tokens parked in the rescue queue", extra={"tenant": pairing.tenant})
        # The caller still gets a working access token; the lease stays until the rescue is applied.
        return Pairing(
            **{
                **pairing.__dict__,
                "status": ACTIVE,
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "access_token_expires_at": tokens.access_token_expires_at,
                "refresh_token_expires_at": tokens.refresh_token_expires_at,
            }
        )

    def _park(self, lease: _Lease, tokens: TokenSet) -> bool:
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

    # ------------------------------------------------------------------ judging a refusal
    def _judge(self, lease: _Lease, refused: GrantRefused, credentials: ClientCredentials) -> Pairing:
        """Decide what a refused refresh means (x3link/refusal_policy.py), then do it."""
        pairing, owner = lease.pairing, lease.owner
        # A stale worker's refusal may just mean another one rotated the token: parked tokens first. Unless
        # the whole queue was seen, fail closed: a grant is never judged while its live token may be parked.
        latest = self._apply_parked(
            lease,
            "Sage X3 refused the refresh and the parked tokens could not all be checked; nothing was "
            "changed, try again shortly.",
        )
        if (latest.generation, latest.version) != (pairing.generation, pairing.version):
            return self._require_usable(latest, pairing.tenant)
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
            self._release(lease)
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
            self._release(lease)
            version = credentials.version
            if self._breaker.open(gateway, pairing.tenant, refusal.status, refusal.message, version):
                logger.error("Sage X3 refuses the app at this gateway: circuit breaker opened", extra=log)
            else:
                logger.warning("Sage X3 still refuses the app itself at this gateway", extra=log)
            _count("AppCredentialsRejected")
            raise AppUnavailable(APP_UNAVAILABLE)
        if judgement.verdict == Verdict.HOLD:
            logger.warning("Sage X3 refused this refresh; held until the evidence decides", extra=log)
            if not self.store.hold(pairing, refusal, owner):
                self._release(lease)
            if lease.seek_witness and self._witness_accepted(pairing, lease.budget):
                # Sage accepted the app for another pairing after refusing this one: ask once more, and
                # a second refusal is judged on that evidence.
                return self.refresh(
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
            _count("TokensLost")
        else:
            logger.warning("Sage X3 refused this pairing's grant: suspended", extra=log)
        return self._suspend(pairing, owner, refusal, judgement.reason, credentials.version)

    def _witness_accepted(self, refused: Pairing, budget: Budget) -> bool:
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
            self.refresh(pairing, budget, seek_witness=False)
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
        _count("PairingsSuspended")
        raise PairingSuspended(
            "Sage X3 refuses this pairing's grant for now; it is kept and retried, and expires only if the "
            "refusals last past the grace period."
        )

    def _expire(self, pairing: Pairing, owner: str, refusal: Refusal, reason: str) -> Pairing:
        if self.store.mark_expired(pairing, refusal, reason, owner):
            logger.warning("Pairing expired", extra={"tenant": pairing.tenant, "reason": reason})
            _count("PairingsExpired")
        raise PairingExpired("Sage X3 no longer accepts this pairing: the customer must pair again.")

    # ------------------------------------------------------------------ parked tokens
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

    def keep_alive(self, tenant: str, keep_alive_seconds: float, budget: Budget) -> Outcome:
        """Refresh one pairing if it is still due; the outcome: `refreshed`, `skipped` (no longer due, gone,
        or expired), `suspended`, `expired` or `held` (its gateway's breaker is open, or its refusal is held
        until the evidence decides: the keep-alive looks again after the run's other refreshes). Any other
        failure is raised.

        An active pairing costs two table writes (the lease, which also reads it, and the commit); a
        suspended one, whose retry rules a condition cannot express, is read first.
        """
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
            if pairing.status == SUSPENDED and not self._retry_due(pairing, now):
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
        return Outcome.REFRESHED

    def seconds_needed(self) -> float:
        """The least time a refresh needs, from its start to its last write: with less, do not start one."""
        t = self._timing
        return t.connect_seconds + t.min_token_timeout + t.after_token_seconds

    # ------------------------------------------------------------------ helpers
    def _require_usable(self, pairing: Pairing | None, tenant: str) -> Pairing:
        """The pairing, if a query may use it (an expired one never, a suspended one once its retry is due),
        with its tokens opened: every pairing a caller gets to use comes through here or from a commit."""
        if pairing is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        if pairing.status == EXPIRED:
            raise PairingExpired("This pairing has expired: the customer must pair again.")
        if pairing.status == SUSPENDED and not self._retry_due(pairing, self._clock()):
            raise PairingSuspended(
                "Sage X3 refuses this pairing's grant for now; it is kept and retried, and the next attempt "
                "is not due yet."
            )
        return self.store.open(pairing)

    def _retry_due(self, pairing: Pairing, now: float) -> bool:
        """A suspended pairing may be tried now (x3link/refusal_policy.py `retry_due`)."""
        if (pairing.next_attempt_at or 0) <= now:
            return True
        refused_at = pairing.last_refusal.at if pairing.last_refusal else None
        try:
            # Read again every few seconds, not every few minutes: a secret stored anew must count at once.
            if now - self._credentials_checked_at >= self._timing.credentials_recheck_seconds:
                self._credentials.reload()
                self._credentials_checked_at = now
            version = self._credentials.current().version
            view = self._breaker.view(pairing.endpoint)
        except (X3LinkError, *STORE_ERRORS):
            return False
        return retry_due(
            now=now,
            next_attempt_at=pairing.next_attempt_at,
            suspended_version=pairing.suspended_version,
            credentials_version=version,
            breaker_closed_since_refusal=refused_at is not None
            and view.closed_after_refusal(refused_at, self._timing.health_window_seconds),
        )


def _count(name: str) -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name=name, unit=MetricUnit.Count, value=1)
