"""A signed notification received: whom it is for, its details read from each tenant's own gateway with
that tenant's token, and each (notification, tenant) recorded once, which the table's stream announces as
`FilesAvailable`.

- Whom: every pairing whose `customer` spells Sage's `customerUrl` (`customer_spellings`);
  an expired pairing is skipped, since it has no token to read the details with.
- Never another host: a `detailUrl` whose origin is not the pairing's gateway is refused, not fetched.
- At least once: nothing is recorded before its details are read; a failure that may pass (Sage or AWS did
  not answer) is raised after the other tenants were served, so a sender that retries gets another chance
  and the tenants served already find their record and are not fetched again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Any: Sage's JSON answer, which sage/notifications.py parses.
from typing import Any

from aws_lambda_powertools import Logger

from x3link.budget import Budget
from x3link.data.notification_store import Delivery, NotificationStore
from x3link.data.session import with_live_token
from x3link.errors import (
    NotPaired,
    PairingExpired,
    PairingSuspended,
    SealedTokensUnreadable,
    UpstreamRefused,
    X3LinkError,
)
from x3link.refresh.keeper import TokenKeeper
from x3link.sage import notifications
from x3link.sage.client import SageX3Client
from x3link.sage.notifications import Notification
from x3link.tokens.model import EXPIRED, Pairing, PairingRef
from x3link.tokens.store import TokenStore

logger = Logger(child=True)

# Why a tenant gets nothing from a notification although it may well be for it: nothing a retry would change.
_PASSED_OVER = (NotPaired, PairingExpired, PairingSuspended, SealedTokensUnreadable, UpstreamRefused)


class _NotOnGateway(Exception):
    """The notification's `detailUrl` is not on the pairing's gateway: it is not fetched."""


@dataclass
class Receipt:
    """What became of one notification, tenant by tenant (the handler turns it into metrics)."""

    recipients: int = 0
    recorded: int = 0
    duplicates: int = 0
    refused: int = 0  # its detailUrl is not on the tenant's gateway: nothing fetched
    passed_over: int = 0  # expired, suspended, gone, or Sage refused the details
    tenants: list[str] = field(default_factory=list)  # those it was recorded for (their exports are scanned)


class NotificationInbox:
    def __init__(
        self,
        pairings: TokenStore,
        keeper: TokenKeeper,
        sage: SageX3Client,
        store: NotificationStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pairings = pairings
        self._keeper = keeper
        self._sage = sage
        self._store = store
        self._clock = clock

    def receive(self, notification: Notification, budget: Budget | None = None) -> Receipt:
        receipt = Receipt()
        if not notification.is_delivery:
            logger.info("Notification of another source ignored", extra={"source": notification.source})
            return receipt
        spellings = notifications.customer_spellings(notification.customer_url)
        recipients = self._pairings.pairings_of(spellings)
        receipt.recipients = len(recipients)
        if not recipients:
            logger.info("Notification for a customer no tenant is paired with")
        failure: X3LinkError | None = None
        for recipient in recipients:
            try:
                self._deliver(notification, recipient, spellings, receipt, budget)
            except _PASSED_OVER as exc:
                receipt.passed_over += 1
                logger.info("Notification passed over", extra={"tenant": recipient.tenant, "error": exc.code})
            except _NotOnGateway:
                self._refuse(recipient, receipt)
            except X3LinkError as exc:  # may pass: Sage or AWS did not answer; the others are served first
                logger.warning(
                    "Notification not delivered yet", extra={"tenant": recipient.tenant, "error": exc.code}
                )
                failure = failure or exc
        if failure is not None:
            raise failure
        return receipt

    def _deliver(
        self,
        notification: Notification,
        recipient: PairingRef,
        spellings: list[str],
        receipt: Receipt,
        budget: Budget | None,
    ) -> None:
        tenant = recipient.tenant
        if recipient.status == EXPIRED:
            raise PairingExpired("This pairing has expired.")
        if not notifications.on_gateway(notification.detail_url, recipient.endpoint):
            raise _NotOnGateway
        if self._store.seen(notification.notification_id, tenant):
            receipt.duplicates += 1
            return

        def still_ours(pairing: Pairing) -> None:  # the index lags: vetted again as stored, before any call
            if pairing.customer not in spellings:
                raise NotPaired("The tenant is now paired with another customer.")
            if not notifications.on_gateway(notification.detail_url, pairing.endpoint):
                raise _NotOnGateway

        def read(pairing: Pairing, token: str) -> Any:
            return self._sage.get_json(notification.detail_url, token, tenant=tenant)

        document = with_live_token(tenant, self._keeper, read, budget, check=still_ours)
        delivery = Delivery(
            notification_id=notification.notification_id,
            tenant=tenant,
            customer=recipient.customer,
            sent_at=notification.sent_at,
            details=notifications.parse_details(document),
            received_at=self._clock(),
        )
        if self._store.record(delivery):
            receipt.recorded += 1
            receipt.tenants.append(tenant)
            logger.info("Notification recorded", extra={"tenant": tenant, "folder": delivery.details.folder})
        else:
            receipt.duplicates += 1

    @staticmethod
    def _refuse(recipient: PairingRef, receipt: Receipt) -> None:
        receipt.refused += 1
        # The URL itself is not logged: it is the sender's text.
        logger.warning(
            "Notification refused: its detailUrl is not on the tenant's gateway; nothing was fetched",
            extra={"tenant": recipient.tenant},
        )
