"""A folder's export delivery switched on and off, and the schedule that scans the folders switched on
(docs/exports.md). What the sync API and the poller need, and nothing of the worker: the worker that
delivers the files is x3link.exports.worker, the messages it reads x3link.exports.orders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

# Any: the JSON GET and PUT .../sync answer.
from typing import TYPE_CHECKING, Any

from x3link.data.integration import folder_name
from x3link.errors import FolderNotGranted, NotPaired
from x3link.exports.ledger import DeliveryLedger, SyncState
from x3link.tokens.model import iso

if TYPE_CHECKING:
    from x3link.exports.queue import DeliveryQueue
    from x3link.tokens.store import TokenStore


@dataclass(frozen=True)
class SyncSettings:
    default_on: bool = (
        False  # DeliverySyncDefault: every granted folder of a pairing with no state of its own
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SyncSettings:
        return cls(default_on=env.get("DELIVERY_SYNC_DEFAULT", "disabled").strip().lower() == "enabled")


class SyncSwitch:
    """PUT/GET /tenants/{tenant}/folders/{folder}/sync."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        pairings: TokenStore,
        settings: SyncSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger, self._pairings, self._settings, self._clock = ledger, pairings, settings, clock

    def _granted(self, tenant: str, folder: str) -> bool:
        pairing = self._pairings.get(tenant)
        if pairing is None:
            raise NotPaired("No pairing for this tenant.")
        return folder in pairing.folders

    def set(self, tenant: str, folder: str, enabled: bool) -> dict[str, Any]:
        folder = folder_name(folder)
        if not self._granted(tenant, folder):
            raise FolderNotGranted(f"The customer did not grant this pairing the folder {folder!r}.")
        self._ledger.set_enabled(tenant, folder, enabled, self._clock())
        return self.view(tenant, folder)

    def view(self, tenant: str, folder: str) -> dict[str, Any]:
        folder = folder_name(folder)
        state = self._ledger.sync_state(tenant, folder)
        if state is None:
            state = SyncState(enabled=self._settings.default_on and self._granted(tenant, folder))
        return {
            "enabled": state.enabled,
            "last_run_at": iso(state.last_run_at),
            "files_delivered": state.files_delivered,
            "last_error": state.last_error,
        }


class ExportPoller:
    """The schedule (and a notification): one scan message per enabled folder."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        queue: DeliveryQueue,
        pairings: TokenStore,
        settings: SyncSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger, self._queue, self._pairings, self._settings = ledger, queue, pairings, settings
        self._clock = clock

    def run(self) -> dict[str, int]:
        folders = dict.fromkeys(self._ledger.enabled_folders())
        if self._settings.default_on:
            for tenant, folder in self._defaulted():
                folders[(tenant, folder)] = None
        # Loaded with the queue already: imported here so that the switch's handler never loads it.
        from x3link.exports.orders import ScanOrder

        sent = self._queue.send([ScanOrder(tenant, folder) for tenant, folder in folders])
        return {"folders": len(folders), "queued": sent}

    def _defaulted(self) -> Iterator[tuple[str, str]]:
        """DeliverySyncDefault on: every granted folder of an active pairing that has no sync state yet is
        switched on (a folder switched off stays off)."""
        tenants = list(self._pairings.tenants_with_status("active"))
        for start in range(0, len(tenants), 100):
            for pairing in self._pairings.get_pairings(tenants[start : start + 100]):
                for folder in pairing.folders:
                    if self._ledger.sync_state(pairing.tenant, folder) is None:
                        self._ledger.set_enabled(pairing.tenant, folder, True, self._clock())
                        yield pairing.tenant, folder

    def notified(self, tenants: list[str]) -> int:
        """A signed notification was recorded for these tenants: scan their enabled folders now."""
        from x3link.exports.orders import ScanOrder

        return self._queue.send([ScanOrder(tenant) for tenant in dict.fromkeys(tenants)])
