"""Knobs and injected failures that tests and benchmarks turn.

Why: the facts page leaves many behaviours open ([gap]); the emulator must be able to behave each
plausible way, switchable at run time and safely from any thread.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

# Route names shared by `fail_next` and `count`.
FAULT_ROUTES: tuple[str, ...] = (
    "token",
    "refresh",
    "code",
    "folders",
    "datadelivery",
    "dataingestion",
    "root",
    "notification",
    "graphql",
)
# Every route name a request-log entry can carry.
ALL_ROUTES: tuple[str, ...] = (*FAULT_ROUTES, "authorise", "decision", "files", "upload", "unknown")


@dataclass(frozen=True)
class Settings:
    """Run-time knobs; replaced as a whole so readers always see a consistent snapshot."""

    access_lifetime: float = 300
    refresh_lifetime: float = 30.4 * 86400
    send_expires_in: bool = True
    send_token_type: bool = True
    code_lifetime: float = 600
    pairing_request_lifetime: float = 600
    latency: float = 0.0
    dead_refresh_status: int = 401
    timeout_sleep: float = 30.0
    upload_limit: int = 350 * 1024 * 1024
    link_lifetime: float = 3600
    # Seconds an uploaded file waits in `awaiting_scan` before its tracking shows a final status (the scan and
    # the import are not emulated; see ingestion.py for which status).
    scan_delay: float = 2.0
    # The status of a download's redirect to its presigned link: Sage does not say which [gap].
    download_redirect_status: int = 302
    # Data delivery and ingestion requests one customer may make per UTC day; past it, 429 with Retry-After
    # (Sage does not publish the number [gap]). 0 = no quota.
    daily_quota: int = 0
    # Where data delivery notifications are POSTed (the App Registry's notification URL; "" = nowhere), and
    # how their HMAC_SHA256 digest is written: "hex" or "base64" (Sage does not say [gap]).
    notification_url: str = ""
    notification_signature: str = "hex"

    def changed(self, **knobs: Any) -> Settings:
        """A copy with `knobs` applied; unknown names raise TypeError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(knobs) - names)
        if unknown:
            raise TypeError(f"unknown emulator setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **knobs)


@dataclass
class Fault:
    """One injected failure, consumed `remaining` times."""

    route: str
    status: int | None = None
    retry_after: int | None = None
    timeout: bool = False
    drop_after_apply: bool = False
    body: dict[str, Any] | None = None
    remaining: int = 1
    html: str | None = None  # a page from something in front of Sage (a proxy, a firewall), not Sage's JSON
    region: str | None = None  # only requests to this regional gateway (a proxy in front of one of them)


def token_routes(grant_type: str | None) -> tuple[str, ...]:
    """Fault/count names a token call answers to, the most specific first."""
    if grant_type == "refresh_token":
        return ("refresh", "token")
    if grant_type == "authorization_code":
        return ("code", "token")
    return ("token",)


def token_route_name(grant_type: str | None) -> str:
    """The single name a token call is logged under."""
    return token_routes(grant_type)[0]


class FaultPlan:
    """A thread-safe queue of injected failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue `fault` behind any earlier one."""
        if fault.route not in FAULT_ROUTES:
            raise ValueError(f"route must be one of {', '.join(FAULT_ROUTES)}")
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        modes = (fault.status is not None) + fault.timeout + fault.drop_after_apply
        if modes != 1:
            raise ValueError("give exactly one of status=, timeout=True or drop_after_apply=True")
        with self._lock:
            self._faults.append(fault)

    def take(self, routes: tuple[str, ...], region: str | None = None) -> Fault | None:
        """Consume one use of the first fault matching `routes` (earlier names win) and `region`."""
        with self._lock:
            for route in routes:
                for fault in self._faults:
                    if fault.route == route and fault.region in (None, region):
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                        return dataclasses.replace(fault, remaining=1)
        return None

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Copies of the queued faults."""
        with self._lock:
            return [dataclasses.replace(fault) for fault in self._faults]
