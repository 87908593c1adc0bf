"""`Emulator`: the Python face of the Sage X3 gateway emulator (servers, knobs, inspection helpers).

Why: tests, benchmarks and `make run` drive the same object; every method is thread-safe so a test
can turn knobs while the app under test is mid-request.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import BaseWSGIServer

from .faults import ALL_ROUTES, Fault
from .jwt import Signer
from .models import Client, Customer, StoredFile, customer_key
from .notifications import SentNotification, build, post, sign
from .pairing import CallbackInstead, decide, open_request
from .server import origin, serve
from .state import PERSISTED, State
from .web import ApiError

DEFAULT_REGIONS: tuple[str, ...] = ("eu-prod", "us-prod")


class Emulator:
    """A faithful local stand-in for Sage X3's regional API gateways."""

    callback_method = "POST"

    def __init__(
        self,
        regions: Sequence[str] = DEFAULT_REGIONS,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        client_id: str = "demo-app",
        client_secret: str = "demo-secret",  # noqa: S107  # nosec B107  # the emulator's public demo app
        redirect_uris: Iterable[str] | None = None,
        customers: Iterable[Customer] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        regions = tuple(regions)
        if not regions or len(set(regions)) != len(regions):
            raise ValueError("regions must be a non-empty list of distinct names")
        self._host = host
        self._ports = {region: int((ports or {}).get(region, 0)) for region in regions}
        self._state = State(regions, clock, auto_customers=customers is None)
        self._servers: dict[str, BaseWSGIServer] = {}
        self._threads: list[threading.Thread] = []
        self._lifecycle = threading.Lock()
        self.add_client(client_id, client_secret, redirect_uris)
        for customer in customers or ():
            self.add_customer(customer)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start one server per region in daemon threads; a restart reuses the first start's ports."""
        with self._lifecycle:
            if self._servers:
                return self
            self._state.stop_event.clear()
            try:
                for region in self._state.regions:
                    server = serve(self._state, region, self._host, self._ports[region])
                    self._servers[region] = server
                    self._ports[region] = server.server_address[1]
                    self._state.base_urls[region] = f"{origin(server)}/v1"
                    thread = threading.Thread(
                        target=server.serve_forever,
                        kwargs={"poll_interval": 0.05},
                        name=f"sagex3-emulator-{region}",
                        daemon=True,
                    )
                    thread.start()
                    self._threads.append(thread)
            except BaseException:
                self._stop_servers()
                raise
        return self

    def stop(self) -> None:
        """Stop every server; requests sleeping in a timeout fault or latency wake up and drop."""
        with self._lifecycle:
            self._stop_servers()

    def _stop_servers(self) -> None:
        self._state.stop_event.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------------

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions served, the first being the default."""
        return self._state.regions

    def base_url(self, region: str | None = None) -> str:
        """`http://127.0.0.1:PORT/v1` of a region (default: the first)."""
        region = region or self._state.regions[0]
        if region not in self._ports:
            raise KeyError(f"unknown region {region!r}")
        if region in self._state.base_urls:
            return self._state.base_urls[region]
        if not self._ports[region]:
            raise RuntimeError("the emulator is not started and its port is ephemeral")
        return f"http://{self._host}:{self._ports[region]}/v1"

    # --- a saved state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A copy of what outlives a restart (customers, grants, tokens, files) and the signing key, taken
        under the lock so that it is one moment's state."""
        with self._state.lock:
            saved = copy.deepcopy({name: getattr(self._state, name) for name in PERSISTED})
            saved["signing_key"] = self._state.signer.key
        return saved

    def restore(self, saved: dict[str, Any]) -> None:
        """Put back what `snapshot()` took: tokens issued before it verify and refresh again."""
        with self._state.lock:
            for name in PERSISTED:
                if name in saved:
                    setattr(self._state, name, copy.deepcopy(saved[name]))
            if "signing_key" in saved:
                self._state.signer = Signer(saved["signing_key"])

    # --- registry --------------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str] | None = None
    ) -> None:
        """Register an app (`redirect_uris=None` accepts any redirect URI)."""
        uris = list(redirect_uris) if redirect_uris is not None else None
        with self._state.lock:
            self._state.clients[client_id] = Client(client_id, client_secret, uris)

    def apps(self) -> list[str]:
        """The client ids of the registered apps."""
        with self._state.lock:
            return sorted(self._state.clients)

    @property
    def knows_customers_on_sight(self) -> bool:
        """Whether a customer URL never registered is created when first named (no `customers=` given)."""
        return self._state.auto_customers

    def set_client_enabled(self, client_id: str, enabled: bool) -> None:
        """Disable or re-enable an app (403 "...is disabled" on authorise and token calls)."""
        with self._state.lock:
            self._state.clients[client_id].enabled = enabled

    def add_customer(self, customer: Customer) -> Customer:
        """Register a customer (region None = the first region); returns the stored copy."""
        return self._state.add_customer(customer)

    def get_customer(self, customer_url: str) -> Customer | None:
        """The registered customer with that URL, if any (never auto-creates)."""
        return self._state.find_customer(customer_url, create=False)

    def grant(
        self, client_id: str, customer_url: str, scopes: Sequence[str] = ("api.dataDelivery",)
    ) -> dict[str, Any]:
        """A grant made as if its customer had consented and its code were exchanged: the token response.

        For benchmarks that need thousands of pairings; every test of pairing itself goes through
        `approve` and the token endpoint.
        """
        from .models import Grant
        from .tokens import issue_tokens

        customer = self._state.find_customer(customer_url, create=True)
        if customer is None:
            raise ValueError(f"no customer {customer_url!r} (and customers are not created on sight)")
        with self._state.lock:
            self._state.grant_seq += 1
            grant = Grant(
                grant_id=f"seeded-{self._state.grant_seq}",
                client_id=client_id,
                customer_url=customer.url,
                config_id=customer.config_id or "",
                home_region=self._state.home_region(customer),
                scopes=list(scopes),
                folders=list(customer.folders),
                created_seq=self._state.grant_seq,
            )
            self._state.grants[grant.grant_id] = grant
            return issue_tokens(self._state, grant)

    # --- the X3 user's browser, without a browser -----------------------------------------------------

    def _region_of(self, authorise_url: str) -> tuple[str, dict[str, list[str]]]:
        split = urlsplit(authorise_url)
        for region, base in self._state.base_urls.items():
            base_split = urlsplit(base)
            if (
                split.netloc == base_split.netloc
                and split.path.rstrip("/") == f"{base_split.path}/token/authorise"
            ):
                return region, parse_qs(split.query, keep_blank_values=True)
        raise ValueError("not an authorise URL of this (started) emulator")

    def approve(self, authorise_url: str, folders: list[str] | None = None) -> dict[str, str]:
        """Accept as the X3 user would; returns the callback parameters the browser would POST.

        Raises ApiError when the authorise request itself is refused (the browser would show JSON),
        and ValueError (DecisionError) for folders the customer does not have.
        """
        region, query = self._region_of(authorise_url)
        try:
            pending = open_request(self._state, region, query)
        except CallbackInstead as redirect:
            return dict(redirect.callback.params)
        return dict(decide(self._state, pending.request_id, accept=True, folders=folders).params)

    def reject(self, authorise_url: str) -> dict[str, str]:
        """Reject as the X3 user would; returns the error callback parameters."""
        region, query = self._region_of(authorise_url)
        try:
            pending = open_request(self._state, region, query)
        except CallbackInstead as redirect:
            return dict(redirect.callback.params)
        return dict(decide(self._state, pending.request_id, accept=False, folders=None).params)

    # --- knobs and faults ------------------------------------------------------------------------

    def configure(
        self,
        *,
        access_lifetime: float | None = None,
        refresh_lifetime: float | None = None,
        send_expires_in: bool | None = None,
        send_token_type: bool | None = None,
        code_lifetime: float | None = None,
        pairing_request_lifetime: float | None = None,
        latency: float | None = None,
        dead_refresh_status: int | None = None,
        timeout_sleep: float | None = None,
        upload_limit: int | None = None,
        link_lifetime: float | None = None,
        scan_delay: float | None = None,
        download_redirect_status: int | None = None,
        daily_quota: int | None = None,
        notification_url: str | None = None,
        notification_signature: str | None = None,
    ) -> None:
        """Change any subset of knobs; later requests see the new values."""
        knobs = {name: value for name, value in locals().items() if name != "self" and value is not None}
        with self._state.lock:
            self._state.settings = self._state.settings.changed(**knobs)

    @property
    def settings(self) -> dict[str, Any]:
        """The current knob values."""
        return dict(vars(self._state.settings))

    def fail_next(
        self,
        route: str,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: int | None = None,
        timeout: bool = False,
        drop_after_apply: bool = False,
        body: dict[str, Any] | None = None,
        html: str | None = None,
        region: str | None = None,
    ) -> None:
        """Make the next `count` requests of `route` fail one way (see the faults module), at every gateway
        or only at `region`'s."""
        self._state.faults.add(
            Fault(
                route,
                status,
                retry_after,
                timeout,
                drop_after_apply,
                dict(body) if body else None,
                count,
                html=html,
                region=region,
            )
        )

    def pending_faults(self) -> list[dict[str, Any]]:
        """The faults not yet consumed, oldest first: `count` is how many requests each still fails."""
        return [
            {
                "route": fault.route,
                "status": fault.status,
                "count": fault.remaining,
                "retry_after": fault.retry_after,
                "timeout": fault.timeout,
                "drop_after_apply": fault.drop_after_apply,
                "region": fault.region,
            }
            for fault in self._state.faults.pending()
        ]

    def clear_faults(self) -> None:
        """Forget faults not yet consumed."""
        self._state.faults.clear()

    # --- revocation ------------------------------------------------------------------------------

    def revoke(self, customer_url: str) -> None:
        """The customer deletes the app: every refresh and access token of its grants dies."""
        key = customer_key(customer_url)
        with self._state.lock:
            for grant in self._state.grants.values():
                if grant.customer_url == key:
                    grant.alive = False
                    if grant.refresh_jti is not None:
                        self._state.refresh_index.pop(grant.refresh_jti, None)

    def invalidate_access_tokens(self, customer_url: str | None = None) -> None:
        """Every access token issued so far (for one customer, or all) gets 401; refresh still works."""
        key = customer_key(customer_url) if customer_url is not None else None
        with self._state.lock:
            for record in self._state.access_tokens.values():
                grant = self._state.grants.get(record.grant_id)
                if key is None or (grant is not None and grant.customer_url == key):
                    record.valid = False

    def current_refresh_token(self, customer_url: str) -> str | None:
        """The refresh token currently valid for the customer's newest live grant."""
        key = customer_key(customer_url)
        with self._state.lock:
            live = [g for g in self._state.grants.values() if g.customer_url == key and g.alive]
            if not live:
                return None
            return max(live, key=lambda grant: grant.created_seq).refresh_token

    # --- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the request log (oldest first)."""
        with self._state.lock:
            return [dict(entry) for entry in self._state.log]

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._state.lock:
            self._state.log.clear()

    def count(self, route: str) -> int:
        """Requests received on `route`; "token" counts every token call, "refresh"/"code" one grant."""
        if route not in ALL_ROUTES:
            raise ValueError(f"route must be one of {', '.join(ALL_ROUTES)}")
        names = {"token", "refresh", "code"} if route == "token" else {route}
        with self._state.lock:
            return sum(1 for entry in self._state.log if entry["route"] in names)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside route functions (should stay empty)."""
        with self._state.lock:
            return list(self._state.errors)

    # --- files -----------------------------------------------------------------------------------

    def _customer_folder(self, customer_url: str, folder: str) -> Customer:
        customer = self._state.find_customer(customer_url, create=True)
        if customer is None:
            raise KeyError(f"unknown customer {customer_url!r}")
        if folder not in customer.folders:
            raise KeyError(f"customer {customer_url!r} has no folder {folder!r}")
        return customer

    def put_delivery_file(self, customer_url: str, folder: str, name: str, content: bytes) -> None:
        """X3 exports a file: it appears in the customer's data delivery folder."""
        self._customer_folder(customer_url, folder)
        with self._state.lock:
            stored = StoredFile(bytes(content), self._state.now())
            self._state.delivery_folder(customer_url, folder)[name] = stored

    def delivery_files(self, customer_url: str, folder: str) -> dict[str, bytes]:
        """What is still in a data delivery folder."""
        with self._state.lock:
            return {name: f.content for name, f in self._state.delivery_folder(customer_url, folder).items()}

    def ingested(self, customer_url: str, folder: str) -> dict[str, bytes]:
        """Files uploaded through data ingestion into a folder."""
        with self._state.lock:
            return {name: f.content for name, f in self._state.ingestion_folder(customer_url, folder).items()}

    def set_tracking_status(self, tracking_id: str, status: str, message: str = "") -> None:
        """Move an ingestion tracking document on (the scan and import are not emulated)."""
        with self._state.lock:
            record = self._state.tracking[tracking_id]
            record.status = status
            record.status_message = message
            record.last_status_update = self._state.now()

    # --- data delivery notifications ---------------------------------------------------------------

    def notify(
        self,
        customer_url: str,
        folder: str,
        files: Iterable[str] | None = None,
        *,
        client_id: str | None = None,
        notification_id: str | None = None,
        detail_url: str | None = None,
        signature: str | None = None,
        signed_with: str | None = None,
        url: str | None = None,
        send: bool = True,
        timeout: float = 30.0,
    ) -> SentNotification:
        """Notify the app that files were delivered in a customer's folder, as the gateway does.

        The payload is signed with the app's client id (`client_id`, default: the only app registered)
        and POSTed to `url` (default: the `notification_url` knob; neither, or `send=False`: built, not
        sent). To send it wrong: `signed_with` another key, `signature` the header's value as given ("" leaves
        the header out), `detail_url` a URL on another host. `files` None names what the folder holds now.
        """
        app = client_id or self._only_client()
        record, payload = build(
            self._state,
            customer_url,
            folder,
            files,
            client_id=app,
            notification_id=notification_id,
            detail_url=detail_url,
        )
        body = json.dumps(payload).encode("utf-8")
        if signature is None:
            encoding = self._state.settings.notification_signature
            value: str | None = sign(body, signed_with or app, encoding)
        else:
            value = signature or None
        sent = SentNotification(record.notification_id, payload, body, value)
        target = url or self._state.settings.notification_url
        return self.resend(sent, url=target, timeout=timeout) if send and target else sent

    def resend(
        self, sent: SentNotification, *, url: str | None = None, timeout: float = 30.0
    ) -> SentNotification:
        """POST the same notification again (same body, same signature), as a gateway that retries does."""
        target = url or self._state.settings.notification_url
        if not target:
            raise ValueError("no notification URL: configure(notification_url=...) or pass url=")
        status, headers, answer = post(target, sent.body, sent.signature, timeout)
        return dataclasses.replace(sent, status=status, headers=headers, answer=answer)

    def deliver(
        self, customer_url: str, folder: str, files: dict[str, bytes], *, notify: bool = True
    ) -> SentNotification | None:
        """X3 exports files into a folder; with a notification URL set, the gateway then notifies the app."""
        for name, content in files.items():
            self.put_delivery_file(customer_url, folder, name, content)
        if not notify or not self._state.settings.notification_url:
            return None
        return self.notify(customer_url, folder, list(files))

    def _only_client(self) -> str:
        with self._state.lock:
            clients = list(self._state.clients)
        if len(clients) != 1:
            raise ValueError("several apps are registered: name the one to notify with client_id=")
        return clients[0]


__all__ = ["ApiError", "Customer", "Emulator"]
