"""Who may refresh and who may use a pairing: the app's circuit breaker, a suspended pairing's retry, and
the gateway's health the refusals are judged by.

While a gateway's breaker is open nothing is refreshed there but one probe an interval (breaker.py);
a suspended pairing is used again once its retry is due (refusal_policy.py `retry_due`); every
success is noted on the gateway's record, the evidence a later refusal is weighed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.aws.error_codes import STORE_ERRORS, error_code
from x3link.errors import AppUnavailable, NotPaired, PairingExpired, PairingSuspended, X3LinkError
from x3link.refresh.refusal_policy import retry_due
from x3link.sage.oauth import ClientCredentials
from x3link.tokens.model import EXPIRED, SUSPENDED, Pairing

if TYPE_CHECKING:
    from x3link.refresh.breaker import AppBreaker
    from x3link.refresh.lease import KeeperTiming
    from x3link.sage.credentials import CredentialsSource
    from x3link.tokens.store import TokenStore

logger = Logger(child=True)

APP_UNAVAILABLE = (
    "Sage X3 refuses this app's own credentials, so no pairing is being refreshed through this gateway: "
    "check the client id and secret in the client credentials secret, that the app is enabled in the Sage "
    "App Registry, and that no proxy in front of Sage refuses the calls."
)


class Admission:
    def __init__(
        self,
        store: TokenStore,
        credentials: CredentialsSource,
        breaker: AppBreaker,
        timing: KeeperTiming,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.breaker = breaker
        self._credentials = credentials
        self._timing = timing
        self._clock = clock
        self._health_written: dict[str, tuple[float, str]] = {}  # gateway -> (at, credentials version)
        self._credentials_checked_at = 0.0

    def admit(self, pairing: Pairing, operator: bool) -> tuple[ClientCredentials, bool]:
        """The credentials to refresh with, and whether this refresh is the breaker's probe.

        While the breaker is open nothing is refreshed but one probe an interval (or at once, when the
        secret changed since it opened); an operator's retry always goes through, as a probe.
        """
        credentials = self._credentials.current()
        gateway = pairing.endpoint
        view = self.breaker.view(gateway)
        if not view.is_open:
            return credentials, False
        now = self._clock()
        credentials = self._recheck(now) or credentials
        if operator:
            return credentials, True
        # The breaker's own rule, read off the cached view first: no write while no probe can be due.
        interval, probe_at = self.breaker.probe_interval, view.next_probe_at or 0
        probe_due = probe_at <= now and (view.opened_by != pairing.tenant or probe_at <= now - interval)
        may_probe = probe_due or view.rejected_version != credentials.version
        if may_probe and self.breaker.claim_probe(gateway, pairing.tenant, credentials.version):
            logger.info("Probing the app's credentials with this refresh", extra={"tenant": pairing.tenant})
            return credentials, True
        raise AppUnavailable(APP_UNAVAILABLE)

    def _recheck(self, now: float) -> ClientCredentials | None:
        """The secret read again, every few seconds, not every few minutes: a secret stored anew must count
        at once. None when it was read this recently."""
        if now - self._credentials_checked_at < self._timing.credentials_recheck_seconds:
            return None
        fresh = self._credentials.reload()
        self._credentials_checked_at = now
        return fresh

    def reload_credentials(self) -> ClientCredentials | None:
        try:
            return self._credentials.reload()
        except X3LinkError:
            return None

    def usable(self, pairing: Pairing | None, tenant: str) -> Pairing:
        """The pairing, if a query may use it (an expired one never, a suspended one once its retry is due),
        with its tokens opened: every pairing a caller gets to use comes through here or from a commit."""
        if pairing is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        if pairing.status == EXPIRED:
            raise PairingExpired("This pairing has expired: the customer must pair again.")
        if pairing.status == SUSPENDED and not self.retry_due(pairing, self._clock()):
            raise PairingSuspended(
                "Sage X3 refuses this pairing's grant for now; it is kept and retried, and the next attempt "
                "is not due yet."
            )
        return self.store.open(pairing)

    def retry_due(self, pairing: Pairing, now: float) -> bool:
        """A suspended pairing may be tried now (refusal_policy.py `retry_due`)."""
        if (pairing.next_attempt_at or 0) <= now:
            return True
        refused_at = pairing.last_refusal.at if pairing.last_refusal else None
        try:
            self._recheck(now)
            version = self._credentials.current().version
            view = self.breaker.view(pairing.endpoint)
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

    def note_success(self, gateway: str, tenant: str, credentials: ClientCredentials, probe: bool) -> None:
        """Record on the gateway's record that Sage accepted these credentials there, for this pairing: the
        evidence refusals are judged by. At most one write a minute per execution environment unless it is
        news (a refusal was recorded since); a probe's success closes the breaker.
        """
        now = self._clock()
        view = self.breaker.view(gateway)
        written = self._health_written.get(gateway)
        news = view.is_open or (view.refusal_at or float("-inf")) > (view.success_at or float("-inf"))
        interval = self.breaker.success_write_interval
        recently = written is not None and written[1] == credentials.version and now - written[0] < interval
        # Another environment (or a code exchange) noted a success with these credentials this minute.
        noted = view.success_version == credentials.version and (view.success_at or 0) >= now - interval
        if not probe and not news and (recently or noted):
            return
        try:
            if probe or view.is_open:
                self.breaker.close(gateway, credentials.version, tenant)
                logger.info(
                    "Sage X3 accepts the app's credentials again: the circuit breaker is closed",
                    extra={"gateway": gateway},
                )
            else:
                self.breaker.note_success(gateway, now, credentials.version, tenant)
            self._health_written[gateway] = (now, credentials.version)
        except STORE_ERRORS as exc:
            logger.warning("Could not record the gateway's health", extra={"error": error_code(exc)})
