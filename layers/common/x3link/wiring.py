"""Builds each service once per execution environment from the environment's settings. Handlers ask for
what they use (in init, `prime`), so a cold start pays only for its own clients; tests call `reset()`."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Callable, Iterator
from functools import cache

# Any: a replacement factory may take and build anything (a fake client, another timing).
from typing import TYPE_CHECKING, Any

from x3link import snapshot
from x3link.aws.clients import aws_client as aws_client
from x3link.aws.clients import s3_client as s3_client
from x3link.config import Settings, required_env
from x3link.logs import pin_sdk_loggers
from x3link.long_lived import long_lived, pause_for_init

if TYPE_CHECKING:  # imported where they are built: a cold start loads only what its handler uses
    from x3link.data.notification_inbox import NotificationInbox
    from x3link.data.uploads import UploadLog
    from x3link.events.activity import ActivityLog
    from x3link.events.bus import EventPublisher
    from x3link.exports.ledger import DeliveryLedger
    from x3link.exports.sync import ExportPoller, SyncSwitch
    from x3link.exports.worker import DeliveryTiming, ExportWorker
    from x3link.keep_alive.fan_out import KeepAliveDispatcher, KeepAliveWorker, RefreshQueue
    from x3link.keep_alive.runs import RunLedger
    from x3link.outbox.worker import OutboxWorker
    from x3link.pairing.flow import PairingService
    from x3link.pairing.states import PairingStates
    from x3link.refresh.breaker import AppBreaker
    from x3link.refresh.keeper import TokenKeeper
    from x3link.refresh.lease import KeeperTiming
    from x3link.refresh.rescue import TokenRescue
    from x3link.sage.client import SageX3Client
    from x3link.sage.credentials import CredentialsSource
    from x3link.sage.oauth import ClientCredentials
    from x3link.tokens.sealing import TokenSealer
    from x3link.tokens.store import TokenStore

pause_for_init()  # on Lambda, until the handler's prime: its modules are frozen with what it builds

# Before any client exists: the SDK never logs a request or an answer, whatever the level is set to.
pin_sdk_loggers()

# The keep-alive's spread, retry jitter and run ids: reseeded after a SnapStart restore, so that the
# environments restored from one snapshot never draw the same sequence.
_jitter = random.Random()  # noqa: S311  # nosec B311  # jitter and run ids, not a secret


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def sage_client() -> SageX3Client:
    from x3link.endpoints import EndpointPolicy
    from x3link.sage.client import SageX3Client

    # Every call it sends is held to the configured gateways, whatever endpoint a pairing's row holds.
    s = settings()
    policy = EndpointPolicy(s.sage_x3_url, s.allowed_endpoints)
    return SageX3Client(policy=policy, read_timeout=s.sage_timeout_seconds)


@cache
def credentials_source() -> CredentialsSource:
    from x3link.sage.credentials import CredentialsSource

    client = aws_client  # the factory in force now, not when the secret is first read
    return CredentialsSource(settings().credentials_secret, lambda: client("secretsmanager"))


def client_credentials() -> ClientCredentials:
    return credentials_source().current()


@cache
def app_breaker() -> AppBreaker:
    from x3link.endpoints import normalise
    from x3link.refresh.breaker import AppBreaker

    s = settings()
    # The default gateway's record comes with a query's batch read; the others are read when needed.
    return AppBreaker(s.pairings_table, aws_client("dynamodb"), default_gateway=normalise(s.sage_x3_url))


@cache
def token_sealer() -> TokenSealer:
    """Seals and opens pairing tokens; its KMS client is built on the first seal or open, not before, by the
    client factory in force now (an override's, for a keeper a test builds)."""
    from x3link.tokens.sealing import TokenSealer

    s = settings()
    client = aws_client  # the factory in force now, not when the first seal comes
    return TokenSealer(lambda: client("kms"), s.data_key_id, s.pairings_table)


@cache
def token_store() -> TokenStore:
    """The pairings and their tokens: for the functions that store or use tokens."""
    from x3link.tokens.store import TokenStore

    return TokenStore(settings().pairings_table, aws_client("dynamodb"), token_sealer())


@cache
def pairing_records() -> TokenStore:
    """The pairings without their tokens: reads and deletes only, never a KMS call (TenantsFunction)."""
    from x3link.tokens.store import TokenStore

    return TokenStore(settings().pairings_table, aws_client("dynamodb"))


@cache
def activity_log() -> ActivityLog:
    """The pairings' recent history (ActivityRecorderFunction writes it, ActivityFunction reads it)."""
    from x3link.events.activity import ActivityLog

    days = int(os.environ.get("ACTIVITY_RETENTION_DAYS", "30"))
    return ActivityLog(os.environ["ACTIVITY_TABLE"], aws_client("dynamodb"), kept_seconds=days * 86400)


@cache
def pairing_states() -> PairingStates:
    """The pairing links and states (PairingLinksFunction lists and revokes links with it)."""
    from x3link.pairing.states import PairingStates

    return PairingStates(settings().states_table, aws_client("dynamodb"))


@cache
def pairing_service() -> PairingService:
    from x3link.pairing.flow import PairingService
    from x3link.pairing.states import PairingStates

    states = PairingStates(settings().states_table, aws_client("dynamodb"))
    # Sage's HTTP client is only needed by the callback: starting a pairing never loads urllib3.
    return PairingService(
        settings(), states, token_store(), sage_client, client_credentials, accepted=_note_app_healthy
    )


def _note_app_healthy(at: float, credentials: ClientCredentials, gateway: str, tenant: str) -> None:
    """A code exchange succeeded: Sage accepts the app's credentials at that gateway (best effort, never
    fails a pairing)."""
    with contextlib.suppress(Exception):
        app_breaker().note_success(gateway, at, credentials.version, tenant)


@cache
def token_rescue() -> TokenRescue:
    from x3link.refresh.rescue import TokenRescue

    s = settings()
    # Parked with the table's own sealer: the data key the keeper prepared serves the park too.
    queues, client = (s.rescue_queue_url, s.rescue_dead_letter_queue_url), aws_client
    return TokenRescue(
        *queues, token_sealer(), client("sqs"), kms=lambda: client("kms"), key_id=s.data_key_id
    )


@cache
def event_publisher() -> EventPublisher:
    from x3link.events.bus import EventPublisher

    return EventPublisher(settings().events_bus, aws_client("events"))


@cache
def notification_inbox() -> NotificationInbox:
    """Sage's data delivery notifications: the tenants they are for, their details, each recorded once."""
    from x3link.data.notification_inbox import NotificationInbox
    from x3link.data.notification_store import NotificationStore

    store = NotificationStore(settings().notifications_table, aws_client("dynamodb"))
    return NotificationInbox(token_store(), token_keeper(), sage_client(), store)


@cache
def keeper_timing() -> KeeperTiming:
    from x3link.refresh.lease import KeeperTiming

    return KeeperTiming(grace_seconds=settings().grace_period_seconds)


@cache
def token_keeper() -> TokenKeeper:
    """The keeper and its parts (x3link/refresh/keeper.py), over one store, one timing and one clock: the
    lease and its time, admission, the commit, the refusals, the leased refresh."""
    import time

    from x3link.refresh.admission import Admission
    from x3link.refresh.commit import TokenCommit
    from x3link.refresh.keeper import TokenKeeper
    from x3link.refresh.lease import Leases
    from x3link.refresh.leased_refresh import LeasedRefresh
    from x3link.refresh.refusal_handling import RefusalHandling

    store, timing, breaker, clock = token_store(), keeper_timing(), app_breaker(), time.time
    leases = Leases(store, timing, clock)
    admission = Admission(store, credentials_source(), breaker, timing, clock)
    commit = TokenCommit(store, token_rescue(), leases, admission, timing, clock, time.sleep)
    refusals = RefusalHandling(store, breaker, leases, commit, admission, timing, clock)
    spender = LeasedRefresh(sage_client(), leases, admission, commit, refusals, clock)
    margin = settings().refresh_margin_seconds
    return TokenKeeper(store, leases, admission, commit, spender, refresh_margin=margin, clock=clock)


@cache
def refresh_queue() -> RefreshQueue:
    from x3link.keep_alive.fan_out import RefreshQueue

    url = settings().refresh_queue_url
    if not url:
        from x3link.errors import ConfigurationError

        raise ConfigurationError("REFRESH_QUEUE_URL is not set")
    return RefreshQueue(url, aws_client("sqs"))


@cache
def run_ledger() -> RunLedger:
    from x3link.keep_alive.runs import RunLedger

    return RunLedger(settings().pairings_table, aws_client("dynamodb"))


@cache
def keep_alive_dispatcher() -> KeepAliveDispatcher:
    from x3link.keep_alive.fan_out import KeepAliveDispatcher

    s = settings()
    return KeepAliveDispatcher(
        token_keeper(),
        refresh_queue(),
        run_ledger(),
        keep_alive_seconds=s.keep_alive_seconds,
        spread_seconds=s.refresh_spread_seconds,
        rng=_jitter,
    )


@cache
def keep_alive_worker() -> KeepAliveWorker:
    from x3link.keep_alive.fan_out import KeepAliveWorker, WorkerTiming

    s = settings()
    # An ambiguous refusal waits until the run's other refreshes, spread over the window, have been tried.
    timing = WorkerTiming(
        judge_delay_seconds=max(1, s.refresh_spread_seconds),
        retry_base_seconds=s.refresh_retry_seconds,
        max_receives=s.refresh_max_receives,
    )
    return KeepAliveWorker(
        token_keeper(),
        refresh_queue(),
        run_ledger(),
        keep_alive_seconds=s.keep_alive_seconds,
        timing=timing,
        rng=_jitter,
    )


@cache
def upload_log() -> UploadLog:
    """Every upload, through POST .../uploads or the outbox (GET /tenants/{tenant}/uploads lists them)."""
    from x3link.data.uploads import UploadLog

    return UploadLog(required_env("UPLOADS_TABLE"), aws_client("dynamodb"))


@cache
def outbox_worker() -> OutboxWorker:
    """Sends the outbox's files to Sage X3 and follows them (OutboxWorkerFunction)."""
    from x3link.outbox.worker import FollowUps, OutboxTiming, OutboxWorker

    follow_ups = FollowUps(required_env("OUTBOX_QUEUE_URL"), aws_client("sqs"))
    timing = OutboxTiming.from_env(os.environ)
    return OutboxWorker(aws_client("s3"), upload_log(), token_keeper(), sage_client(), follow_ups, timing)


# ------------------------------------------------------------------ exports delivered to the app's bucket
@cache
def delivery_ledger() -> DeliveryLedger:
    from x3link.exports.ledger import DeliveryLedger

    return DeliveryLedger(required_env("DELIVERY_TABLE"), aws_client("dynamodb"))


@cache
def sync_switch() -> SyncSwitch:
    from x3link.exports.sync import SyncSettings, SyncSwitch

    return SyncSwitch(delivery_ledger(), pairing_records(), SyncSettings.from_env(os.environ))


@cache
def export_poller() -> ExportPoller:
    from x3link.exports.queue import DeliveryQueue
    from x3link.exports.sync import ExportPoller, SyncSettings

    queue = DeliveryQueue(required_env("DELIVERY_QUEUE_URL"), aws_client("sqs"))
    return ExportPoller(delivery_ledger(), queue, pairing_records(), SyncSettings.from_env(os.environ))


@cache
def delivery_timing() -> DeliveryTiming:
    from x3link.exports.worker import DeliveryTiming

    return DeliveryTiming.from_env(os.environ)


@cache
def export_worker() -> ExportWorker:
    from x3link.exports.bucket import DeliveryBucket
    from x3link.exports.queue import DeliveryQueue
    from x3link.exports.worker import ExportWorker

    timing = delivery_timing()
    queue = DeliveryQueue(required_env("DELIVERY_QUEUE_URL"), aws_client("sqs"))
    bucket = DeliveryBucket(required_env("DELIVERY_BUCKET"), s3_client(), part_size=timing.part_size)
    ledger, keeper, records = delivery_ledger(), token_keeper(), pairing_records()
    return ExportWorker(ledger, queue, bucket, keeper, sage_client(), records, timing=timing)


def prime(*builders: Callable[[], object]) -> None:
    """A handler's import builds what it uses: Lambda's init does it once, never after a SnapStart restore,
    and calls nothing (no secret read, no token opened); on Lambda it is frozen out of GC (long_lived)."""
    with long_lived():
        for build in builders:
            build()


def forget_warm_state() -> None:
    """Drop what this environment cached that is secret or may be stale in another one: the data keys KMS
    opened, the client credentials, the breakers' views. Services not built yet are left unbuilt."""
    if token_sealer.cache_info().currsize:
        token_sealer().forget()  # the keys it holds, and those a side thread is opening
    if credentials_source.cache_info().currsize:
        credentials_source().forget()
    if app_breaker.cache_info().currsize:
        app_breaker().forget()


def _after_restore() -> None:
    forget_warm_state()
    _jitter.seed()  # from os.urandom: each restored environment draws its own sequence


snapshot.hooks.register(before_snapshot=forget_warm_state, after_restore=_after_restore)


def reset() -> None:
    """Drop every service built in this environment (each factory here is cached, and only those are)."""
    for value in list(vars(sys.modules[__name__]).values()):
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


@contextlib.contextmanager
def override(**factories: Callable[..., Any]) -> Iterator[None]:
    """Build services with some of this module's factories replaced (a fake client, another timing), as
    Powertools' `dependency_overrides` does for a resolver: a test swaps a dependency here, never inside a
    built object. A replacement is cached as the factory it replaces is (one service per environment), and
    every cached service is dropped on entry and on exit, so nothing built with a replacement outlives the
    block but what the caller kept."""
    module = sys.modules[__name__]
    unknown = sorted(name for name in factories if not callable(getattr(module, name, None)))
    if unknown:
        raise AttributeError(f"x3link.wiring has no factory named {', '.join(unknown)}")
    saved = {name: getattr(module, name) for name in factories}
    reset()
    vars(module).update({name: cache(factory) for name, factory in factories.items()})
    try:
        yield
    finally:
        vars(module).update(saved)
        reset()
