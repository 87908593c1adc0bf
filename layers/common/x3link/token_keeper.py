"""Keeps pairings' tokens alive: one refresh per pairing at a time, no issued refresh token ever lost, and
no pairing ended unless its customer ended it.

Sage rotates the refresh token on every refresh and kills the old one at once, and it does not say how it
reports a dead grant. So:
- a DynamoDB lease, fenced on the pairing's generation and version, lets one worker spend the refresh
  token; it covers the worst case of the work done under it, and is not taken when the invocation has too
  little time left for that work;
- new tokens are stored before a commit deadline inside the lease, else parked in the rescue queue;
- a refusal is judged, never trusted: the secret is re-read, parked tokens are applied, refusals about the
  app open the app's circuit breaker (no pairing changes state), and a refused grant is `suspended` (its
  refresh token kept, retried with backoff) before it is ever `expired`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from x3link.breaker import APP_KEY, AppBreaker
from x3link.budget import Budget
from x3link.errors import (
    AppUnavailable,
    GrantRefused,
    NotPaired,
    PairingExpired,
    PairingSuspended,
    StorageUnavailable,
    UpstreamError,
    UpstreamTimeout,
    X3LinkError,
)
from x3link.oauth import (
    AMBIGUOUS,
    APP,
    GRANT_DEAD,
    ClientCredentials,
    TokenSet,
    judge_refusal,
    parse_token_response,
    refresh_grant,
)
from x3link.token_store import ACTIVE, EXPIRED, SUSPENDED, Pairing, Refusal, TokenStore

if TYPE_CHECKING:
    from x3link.credentials import CredentialsSource
    from x3link.rescue import DrainResult, RescuedTokens, TokenRescue
    from x3link.sage_client import SageX3Client

logger = Logger(child=True)

STORE_ERRORS = (ClientError, BotoCoreError)
APP_UNAVAILABLE = (
    "Sage X3 refuses this app's own credentials, so no pairing is being refreshed: check the client id and "
    "secret in the client credentials secret, and that the app is enabled in the Sage App Registry."
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
    health_window_seconds: float = 900.0
    credentials_recheck_seconds: float = 10.0

    @property
    def after_token_seconds(self) -> float:
        return self.commit_seconds + self.park_seconds + self.margin_seconds


# What `keep_alive` did with one pairing (besides SUSPENDED and EXPIRED, the statuses it may leave).
REFRESHED, SKIPPED, HELD = "refreshed", "skipped", "held"


@dataclass(frozen=True)
class _Lease:
    """One attempt's right to spend `pairing`'s refresh token, and what the attempt was asked to do."""

    pairing: Pairing
    owner: str
    until: float
    token_timeout: float
    probe: bool  # the breaker's probe: its success closes the breaker
    operator: bool  # an operator's retry: any status, no backoff
    defer_ambiguous: bool  # the keep-alive's first try: an ambiguous refusal is judged later


class Undecided(Exception):
    """An ambiguous refusal with no evidence yet about the app's health: to be judged a little later."""


def _error_code(exc: Exception) -> str:
    """AWS's error code, never its message (which may quote request values)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


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
        self._last_success: tuple[float, str] | None = None
        self._health_written: tuple[float, str] | None = None
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
        found, app_item = self.store.get_with(tenant, APP_KEY)
        self._breaker.remember(app_item)
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
        defer_ambiguous: bool = False,
    ) -> Pairing:
        """Refresh `seen` under a lease, or wait for the worker that holds it and use its tokens."""
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
                token_timeout = self._token_timeout(now, budget)
                # Whatever Sage answers is then stored with no KMS call: a KMS outage met now costs a
                # retry, met after the refresh token was spent it would leave the new tokens only parked.
                t = self._timing
                self.store.prepare_to_seal(
                    current.tenant, t.connect_seconds + token_timeout + t.commit_seconds
                )
                owner = f"{self._owner}-{uuid.uuid4().hex[:12]}"
                lease_until = (
                    now + self._timing.connect_seconds + token_timeout + self._timing.after_token_seconds
                )
                if self._take_lease(current, owner, now, lease_until):
                    lease = _Lease(
                        current, owner, lease_until, token_timeout, probe, operator, defer_ambiguous
                    )
                    return self._refresh_leased(lease, credentials)
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
        view = self._breaker.view()
        if not view.is_open:
            return credentials, False
        now = self._clock()
        if now - self._credentials_checked_at >= self._timing.credentials_recheck_seconds:
            credentials = self._credentials.reload()
            self._credentials_checked_at = now
        if operator:
            return credentials, True
        probe_due = (view.next_probe_at or 0) <= now and view.opened_by != pairing.tenant
        if (probe_due or view.rejected_version != credentials.version) and self._breaker.claim_probe(
            pairing.tenant, credentials.version
        ):
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

    def _take_lease(self, pairing: Pairing, owner: str, now: float, until: float) -> bool:
        try:
            return self.store.try_lease(pairing, owner, now, until)
        except STORE_ERRORS as exc:
            # The write may have been applied with its answer lost: then the lease is ours.
            logger.warning(
                "Taking a refresh lease failed", extra={"tenant": pairing.tenant, "error": _error_code(exc)}
            )
            try:
                latest = self.store.get(pairing.tenant)
            except STORE_ERRORS:
                raise StorageUnavailable("The pairings table did not answer; try again shortly.") from None
            return latest is not None and latest.lease_owner == owner

    def _refresh_leased(
        self, lease: _Lease, credentials: ClientCredentials, *, retried: bool = False
    ) -> Pairing:
        pairing = lease.pairing
        assert pairing.refresh_token
        try:
            payload = self._sage.token(
                pairing.endpoint,
                refresh_grant(pairing.refresh_token, credentials),
                read_timeout=lease.token_timeout,
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
        self._note_success(credentials, lease.probe)
        reason = None
        if pairing.status != ACTIVE:
            reason = "operator_retry" if lease.operator else "recovered"
        return self._store_refreshed(lease, tokens, reason)

    def _reload_credentials(self) -> ClientCredentials | None:
        try:
            return self._credentials.reload()
        except X3LinkError:
            return None

    def _note_success(self, credentials: ClientCredentials, probe: bool) -> None:
        """Remember that Sage accepts these credentials: the evidence an ambiguous refusal is judged by.

        Written to the breaker's item at most once a minute per execution environment, so other functions
        can judge by it too; a probe's success closes the breaker.
        """
        now = self._clock()
        self._last_success = (now, credentials.version)
        written, view = self._health_written, self._breaker.view()
        if not probe and written and written[1] == credentials.version and now - written[0] < 60:
            return
        noted_elsewhere = view.healthy_version == credentials.version and (view.healthy_at or 0) >= now - 60
        if not probe and not view.is_open and noted_elsewhere:
            return
        try:
            if probe or view.is_open:
                self._breaker.close(credentials.version)
                logger.info("Sage X3 accepts the app's credentials again: the circuit breaker is closed")
            else:
                self._breaker.note_healthy(now, credentials.version)
            self._health_written = (now, credentials.version)
        except STORE_ERRORS as exc:
            logger.warning("Could not record the app's health", extra={"error": _error_code(exc)})

    def _release(self, lease: _Lease, *, maybe_applied: bool = False) -> None:
        tenant = lease.pairing.tenant
        try:
            self.store.release_lease(tenant, lease.owner, self._clock(), maybe_applied=maybe_applied)
        except STORE_ERRORS:
            logger.warning("Could not release a refresh lease; it lapses by itself", extra={"tenant": tenant})

    def _store_refreshed(self, lease: _Lease, tokens: TokenSet, reason: str | None) -> Pairing:
        pairing, t = lease.pairing, self._timing
        commit_by = lease.until - t.park_seconds - t.margin_seconds
        attempt = 0
        while attempt == 0 or self._clock() + t.store_call_seconds <= commit_by:
            attempt += 1
            try:
                stored = self.store.commit_refresh(
                    pairing.tenant, pairing.generation, pairing.version, tokens, self._clock(), reason=reason
                )
            except STORE_ERRORS as exc:
                logger.warning(
                    "Storing refreshed tokens failed",
                    extra={"tenant": pairing.tenant, "attempt": attempt, "error": _error_code(exc)},
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
                    extra={"tenant": pairing.tenant, "attempt": attempt, "error": _error_code(exc)},
                )
                self._sleep(t.write_backoff_seconds * 2 ** (attempt - 1))
                continue
            return True
        return False

    # ------------------------------------------------------------------ judging a refusal
    def _judge(self, lease: _Lease, refused: GrantRefused, credentials: ClientCredentials) -> Pairing:
        """Decide what a refused refresh means. Only a healthy app's refused grant changes the pairing."""
        pairing, owner = lease.pairing, lease.owner
        # A stale worker's refusal may just mean another one rotated the token: parked tokens first. Unless
        # the whole queue was seen, fail closed: a grant is never judged while its live token may be parked.
        try:
            drained = self.recover_rescued(
                deadline=min(self._clock() + self._timing.rescue_drain_seconds, lease.until)
            )
            latest = self.store.get(pairing.tenant)
        except Exception as exc:
            logger.warning(
                "Parked tokens could not be checked",
                extra={"tenant": pairing.tenant, "error": _error_code(exc)},
            )
            drained, latest = None, None
        if drained is None or not drained.complete:
            self._release(lease)
            raise UpstreamError(
                "Sage X3 refused the refresh and the parked tokens could not all be checked; nothing was "
                "changed, try again shortly."
            )
        if latest is None:
            raise NotPaired(f"Tenant {pairing.tenant!r} is not paired.")
        if (latest.generation, latest.version) != (pairing.generation, pairing.version):
            return self._require_usable(latest, pairing.tenant)
        now = self._clock()
        refusal = Refusal(at=now, status=refused.upstream_status, message=refused.sage_message)
        verdict = judge_refusal(refused.upstream_status, refused.sage_message, from_sage=refused.from_sage)
        log = {"tenant": pairing.tenant, "upstream_status": refusal.status, "verdict": verdict}
        if pairing.refresh_timed_out_at and verdict != APP:
            # The last refresh was sent and its answer lost: Sage probably rotated the token then.
            return self._suspend(pairing, owner, refusal, "reply_lost")
        healthy = verdict != APP and self._app_is_healthy(credentials)
        if verdict == APP or (verdict == AMBIGUOUS and not healthy):
            # A probe's refusal is the answer it was sent for: the app is still refused, no need to wait.
            if lease.defer_ambiguous and verdict == AMBIGUOUS and not lease.probe:
                self._release(lease)
                raise Undecided()
            self._release(lease)
            if self._breaker.open(pairing.tenant, refusal.status, refusal.message, credentials.version):
                logger.error("Sage X3 refuses the app itself: circuit breaker opened", extra=log)
            else:
                logger.warning("Sage X3 still refuses the app itself", extra=log)
            _count("AppCredentialsRejected")
            raise AppUnavailable(APP_UNAVAILABLE)
        if lease.operator and pairing.status == EXPIRED:
            self.store.note_refusal(pairing, refusal, owner)
            raise PairingExpired("Sage X3 still refuses this pairing: the customer must pair again.")
        if verdict == GRANT_DEAD and healthy:
            return self._expire(pairing, owner, refusal, "grant_dead")
        if pairing.suspended_at is not None and now - pairing.suspended_at >= self._timing.grace_seconds:
            return self._expire(pairing, owner, refusal, "grace_period_over")
        if (pairing.refresh_token_expires_at or now + 1) <= now:
            return self._expire(pairing, owner, refusal, "refresh_token_expired")
        logger.warning("Sage X3 refused this pairing's grant: suspended", extra=log)
        return self._suspend(pairing, owner, refusal, "grant_refused")

    def _app_is_healthy(self, credentials: ClientCredentials) -> bool:
        """Another pairing's token call succeeded a short while ago with these very credentials."""
        if self._last_success is not None and not self._breaker.view().is_open:
            at, version = self._last_success
            if version == credentials.version and at >= self._clock() - self._timing.health_window_seconds:
                return True
        try:
            return self._breaker.app_is_healthy(credentials.version)
        except STORE_ERRORS:
            return False

    def _suspend(self, pairing: Pairing, owner: str, refusal: Refusal, reason: str) -> Pairing:
        t = self._timing
        delay = min(t.retry_base_seconds * 2 ** min(pairing.refusal_count, 20), t.retry_max_seconds)
        self.store.suspend(pairing, refusal, refusal.at + delay, reason, owner)
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
            stored = self.store.commit_refresh(
                rescued.tenant,
                rescued.generation,
                rescued.version,
                rescued.tokens,
                self._clock(),
                reason=reason,
            )
        except STORE_ERRORS as exc:
            logger.warning(
                "Storing rescued tokens failed", extra={"tenant": rescued.tenant, "error": _error_code(exc)}
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

    def keep_alive(
        self, tenant: str, keep_alive_seconds: float, budget: Budget, *, defer_ambiguous: bool = False
    ) -> str:
        """Refresh one pairing if it is still due; the outcome: `refreshed`, `skipped` (no longer due, gone,
        or expired), `suspended`, `expired` or `held` (the app's breaker is open).

        Raises `Undecided` (only with `defer_ambiguous`) for an ambiguous refusal that should be judged
        later, when other refreshes have shown whether Sage accepts the app; any other failure is raised.
        """
        pairing = self.store.get(tenant)
        now = self._clock()
        if pairing is None or pairing.status == EXPIRED:
            return SKIPPED
        if pairing.status == ACTIVE and (pairing.refresh_token_expires_at or 0) > now + keep_alive_seconds:
            return SKIPPED
        if pairing.status == SUSPENDED and (pairing.next_attempt_at or 0) > now:
            return SKIPPED
        try:
            self.refresh(pairing, budget, defer_ambiguous=defer_ambiguous)
        except AppUnavailable:
            return HELD
        except PairingSuspended:
            return SUSPENDED
        except PairingExpired:
            return EXPIRED
        except NotPaired:  # deleted while it waited: nothing left to keep alive
            return SKIPPED
        return REFRESHED

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
        if pairing.status == SUSPENDED and (pairing.next_attempt_at or 0) > self._clock():
            raise PairingSuspended(
                "Sage X3 refuses this pairing's grant for now; it is kept and retried, and the next attempt "
                "is not due yet."
            )
        return self.store.open(pairing)


def _count(name: str) -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name=name, unit=MetricUnit.Count, value=1)
