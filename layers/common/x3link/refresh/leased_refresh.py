"""Spending a refresh token under a lease just taken: the token call, and what its answer leads to.

What happened since the pairing was read decides first (another attempt's failure, a lapsed lease whose
tokens may be parked); then Sage is asked once, once more if the client secret was rotated meanwhile, and the
answer is stored (commit.py) or, refused, judged (refusal_handling.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.errors import GrantRefused, UpstreamError, X3LinkError
from x3link.sage.oauth import ClientCredentials, parse_token_response, refresh_grant
from x3link.tokens.model import ACTIVE, Lease, Pairing

if TYPE_CHECKING:
    from x3link.refresh.admission import Admission
    from x3link.refresh.commit import TokenCommit
    from x3link.refresh.lease import Leases, RefreshLease
    from x3link.refresh.refusal_handling import Refresh, RefusalHandling
    from x3link.sage.client import SageX3Client

logger = Logger(child=True)


class LeasedRefresh:
    def __init__(
        self,
        sage: SageX3Client,
        leases: Leases,
        admission: Admission,
        commit: TokenCommit,
        refusals: RefusalHandling,
        clock: Callable[[], float],
    ) -> None:
        self._sage = sage
        self._leases = leases
        self._admission = admission
        self._commit = commit
        self._refusals = refusals
        self._clock = clock

    def spend(
        self,
        lease: RefreshLease,
        credentials: ClientCredentials,
        answer: Lease,
        started: float,
        refresh: Refresh,
    ) -> Pairing:
        """Under a lease just taken: what happened since the pairing was read decides, then the refresh."""
        failed_at = answer.before.refresh_failed_at if answer.before is not None else None
        if failed_at is not None and failed_at >= started and not lease.operator:
            self._leases.release(lease)  # another attempt failed since this one read the pairing
            raise UpstreamError("Refreshing this pairing's token failed just now; try again shortly.")
        if answer.lapsed:
            settled = self._settle_lapsed(lease)
            if settled is not None:
                return settled
        return self._refresh_leased(lease, credentials, refresh)

    def _settle_lapsed(self, lease: RefreshLease) -> Pairing | None:
        """Before spending a refresh token found under a lapsed lease: apply any token set its holder parked.

        The pairing with the parked tokens stored, when there were some for it; None when the queue was
        seen whole and none was (the refresh may go on).
        """
        latest = self._commit.apply_parked(
            lease,
            "A refresh of this pairing was interrupted and its tokens may be parked; they could not all be "
            "checked, so nothing was sent to Sage X3: try again shortly.",
        )
        if (latest.generation, latest.version) != (lease.pairing.generation, lease.pairing.version):
            logger.info("Parked tokens applied before refreshing", extra={"tenant": latest.tenant})
            return self._admission.usable(latest, latest.tenant)
        return None

    def _refresh_leased(
        self, lease: RefreshLease, credentials: ClientCredentials, refresh: Refresh, *, retried: bool = False
    ) -> Pairing:
        pairing = lease.pairing
        assert pairing.refresh_token
        read_timeout = self._leases.time_for_token_call(lease)
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
            fresh = self._admission.reload_credentials()
            if fresh is not None and fresh != credentials and not retried:
                # The secret was rotated: the refused token was not spent, so try once with the new one.
                logger.info("Client credentials changed; retrying the refresh with them")
                return self._refresh_leased(lease, fresh, refresh, retried=True)
            return self._refusals.judge(lease, refusal, fresh or credentials, refresh)
        except X3LinkError as exc:
            self._leases.release(lease, maybe_applied=exc.maybe_applied)
            raise
        self._admission.note_success(pairing.endpoint, pairing.tenant, credentials, lease.probe)
        reason = None
        if pairing.status != ACTIVE:
            reason = "operator_retry" if lease.operator else "recovered"
        return self._commit.store_refreshed(lease, tokens, reason)
