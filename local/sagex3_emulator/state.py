"""The in-memory world every region server shares: apps, customers, codes, grants, tokens and files.

Why: the real gateways share one registry across regions; one object behind one lock makes every
check-then-change (single-use codes, refresh rotation) atomic across all server threads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from .faults import FaultPlan, Settings
from .jwt import Signer
from .models import (
    DEFAULT_FOLDERS,
    AccessRecord,
    AuthCode,
    Client,
    Customer,
    DownloadLink,
    Grant,
    NotificationRecord,
    PendingRequest,
    StoredFile,
    Tracking,
    UploadSlot,
    customer_key,
)

FolderKey = tuple[str, str]

# What a saved state holds (`make run` keeps it across restarts): who paired, with which tokens, and the
# files. Not the request log, the knobs or the faults: those belong to one run.
PERSISTED: tuple[str, ...] = (
    "customers",
    "pending",
    "codes",
    "grants",
    "grant_seq",
    "refresh_index",
    "access_tokens",
    "delivery",
    "ingested",
    "links",
    "uploads",
    "tracking",
    "quota_used",
    "notifications",
)


class State:
    """Shared state; take `lock` around any read-modify-write."""

    def __init__(self, regions: tuple[str, ...], clock: Callable[[], float], auto_customers: bool) -> None:
        self.lock = threading.RLock()
        self.regions = regions
        self.clock = clock
        self.auto_customers = auto_customers
        self.settings = Settings()
        self.faults = FaultPlan()
        self.signer = Signer()
        self.stop_event = threading.Event()
        self.base_urls: dict[str, str] = {}
        self.clients: dict[str, Client] = {}
        self.customers: dict[str, Customer] = {}
        self.pending: dict[str, PendingRequest] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.grant_seq = 0
        self.refresh_index: dict[str, str] = {}
        self.access_tokens: dict[str, AccessRecord] = {}
        self.delivery: dict[FolderKey, dict[str, StoredFile]] = {}
        self.ingested: dict[FolderKey, dict[str, StoredFile]] = {}
        self.links: dict[str, DownloadLink] = {}
        self.uploads: dict[str, UploadSlot] = {}
        self.tracking: dict[str, Tracking] = {}
        self.quota_used: dict[tuple[str, int], int] = {}  # (customer, UTC day) -> data requests made
        self.notifications: dict[str, NotificationRecord] = {}
        self.log: list[dict[str, Any]] = []
        self.errors: list[str] = []

    # --- customers -------------------------------------------------------------------------------

    def add_customer(self, customer: Customer) -> Customer:
        """Register (or replace) a customer; its region defaults to the first one."""
        region = customer.region or self.regions[0]
        if region not in self.regions:
            raise ValueError(f"region {region!r} is not served by this emulator {self.regions}")
        stored = dataclasses.replace(customer, region=region, folders=list(customer.folders))
        with self.lock:
            self.customers[customer_key(customer.url)] = stored
        return stored

    def find_customer(self, url: str, *, create: bool) -> Customer | None:
        """The customer with `url`; in auto mode, created on first sight when `create`."""
        key = customer_key(url)
        with self.lock:
            found = self.customers.get(key)
            if found is None and create and self.auto_customers and key:
                found = self.add_customer(Customer(url=key, folders=list(DEFAULT_FOLDERS)))
            return found

    def home_region(self, customer: Customer) -> str:
        """Where the customer's codes and tokens are redeemable."""
        return customer.region or self.regions[0]

    # --- time and logging ----------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock (a seam tests move)."""
        return self.clock()

    def sleep(self, seconds: float) -> bool:
        """Sleep without blocking other threads; False when `stop()` cut it short."""
        if seconds <= 0:
            return not self.stop_event.is_set()
        return not self.stop_event.wait(seconds)

    def record(self, entry: dict[str, Any]) -> None:
        """Append to the request log."""
        with self.lock:
            self.log.append(entry)

    # --- files -------------------------------------------------------------------------------------

    def delivery_folder(self, customer_url: str, folder: str) -> dict[str, StoredFile]:
        """The mutable delivery store of one customer folder (call under `lock`)."""
        return self.delivery.setdefault((customer_key(customer_url), folder), {})

    def ingestion_folder(self, customer_url: str, folder: str) -> dict[str, StoredFile]:
        """The mutable ingestion store of one customer folder (call under `lock`)."""
        return self.ingested.setdefault((customer_key(customer_url), folder), {})
