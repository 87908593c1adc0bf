"""The whole stack on one machine, started and stopped as one object: embedded AWS (moto), the Sage X3
emulator, the template's resources and the local API gateway. `make run` and the end-to-end tests both
use `LocalStack`, so what the tests exercise is what a developer runs.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local import aws_resources, persistence, ports, sigv4, stack_file
from local import template as tpl
from local.event_log import EventLog
from local.gateway import Gateway
from local.moto_server import EmbeddedMoto
from local.triggers import Triggers
from local.webhooks import WebhookDelivery, target

Handlers = Callable[[str], Callable[[dict[str, Any], Any], Any]]  # a logical id → its handler

DEMO_CLIENT_ID = "demo-app"
DEMO_CLIENT_SECRET = "demo-secret"  # nosec B105  # the emulator's public demo app, which only it accepts
EMULATOR_REGIONS = ("eu-prod", "us-prod")
EMULATOR_FIRST_PORT = 8100


class StackError(Exception):
    """The stack cannot start; the message is one sentence meant for the person who ran it."""


class PortInUse(StackError):
    pass


class EnvironmentConflict(StackError):
    """Two functions want different values for one variable: one process cannot host both."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise StackError(f"{name} must be a port number (0-65535), not {raw!r}")
    return int(raw)


def _log_level(env: Mapping[str, str]) -> str | None:
    """LOG_LEVEL (or POWERTOOLS_LOG_LEVEL) from the environment, one of the template's LogLevel values;
    it becomes that parameter, which otherwise sets every function's POWERTOOLS_LOG_LEVEL to INFO and so
    outranks a LOG_LEVEL (Powertools reads POWERTOOLS_LOG_LEVEL first)."""
    name = "POWERTOOLS_LOG_LEVEL" if env.get("POWERTOOLS_LOG_LEVEL", "").strip() else "LOG_LEVEL"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    allowed = [str(value) for value in tpl.load()["Parameters"]["LogLevel"].get("AllowedValues", [])]
    level = raw.upper()
    if allowed and level not in allowed:
        raise StackError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return level


def _state_dir(env: Mapping[str, str]) -> Path:
    """LOCAL_STATE_DIR, else `state/` beside the stack file (.local/state: a test's private stack file
    brings a private state with it)."""
    explicit = env.get("LOCAL_STATE_DIR", "").strip()
    if explicit:
        return Path(explicit)
    return Path(env.get("LOCAL_STACK_FILE", "").strip() or stack_file.DEFAULT_PATH).parent / "state"


@dataclass(frozen=True)
class StackSettings:
    """The local stack's variables (docs/local-development.md), with their defaults."""

    port: int = 3000
    moto_port: int = 4566
    aws_endpoint_url: str | None = None
    sage_x3_url: str | None = None
    allowed_endpoints: tuple[str, ...] = ()
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    emulator_regions: tuple[str, ...] = EMULATOR_REGIONS
    stack_name: str = "local"
    emulator_port: int = EMULATOR_FIRST_PORT  # the first region's, or the first free one above it
    log_level: str | None = None  # the template's LogLevel parameter when set
    # Where the embedded AWS's and emulator's state is kept across restarts; None keeps nothing.
    state_dir: Path | None = None
    fresh: bool = False  # start clean: the saved state is set aside first
    # A webhook receiver every event is also delivered to, with this header value (docs/webhooks.md).
    webhook_url: str | None = None
    webhook_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackSettings:
        env = os.environ if env is None else env

        def text(name: str, default: str | None) -> str | None:
            return env.get(name, "").strip() or default

        extra = text("SAGE_X3_ALLOWED_ENDPOINTS", "") or ""
        return cls(
            port=_port(env, "PORT", 3000),
            moto_port=_port(env, "MOTO_PORT", 4566),
            aws_endpoint_url=text("AWS_ENDPOINT_URL", None),
            sage_x3_url=text("SAGE_X3_URL", None),
            allowed_endpoints=tuple(part.strip() for part in extra.split(",") if part.strip()),
            client_id=text("SAGE_X3_CLIENT_ID", DEMO_CLIENT_ID) or DEMO_CLIENT_ID,
            client_secret=text("SAGE_X3_CLIENT_SECRET", DEMO_CLIENT_SECRET) or DEMO_CLIENT_SECRET,
            access_key=text("AWS_ACCESS_KEY_ID", "testing") or "testing",
            secret_key=text("AWS_SECRET_ACCESS_KEY", "testing") or "testing",
            region=text("AWS_REGION", None) or text("AWS_DEFAULT_REGION", "us-east-1") or "us-east-1",
            emulator_port=_port(env, "SAGE_X3_EMULATOR_PORT", EMULATOR_FIRST_PORT),
            log_level=_log_level(env),
            state_dir=_state_dir(env),
            fresh=(text("FRESH", "") or "").lower() in ("1", "true", "yes"),
            webhook_url=text("WEBHOOK_URL", None),
            webhook_secret=text("WEBHOOK_SECRET", "") or "",
        )

    @property
    def credentials(self) -> sigv4.Credentials:
        return sigv4.Credentials(self.access_key, self.secret_key, self.region)


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def shared_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The one environment all functions run with in this process; EnvironmentConflict if they differ."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for logical_id, env in environments.items():
        for name, value in env.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflict(
                    f"{owner[name]} and {logical_id} set {name} differently; the local stack runs every "
                    "function in one process and cannot give each its own value"
                )
            merged[name], owner[name] = value, logical_id
    return merged


@dataclass
class _EnvPatch:
    """os.environ changes that stop() takes back, so a test process is left as it was."""

    saved: dict[str, str | None] = field(default_factory=dict)

    def set(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self.saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def restore(self) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved.clear()


class LocalStack:
    """Start with `start()` (or `with LocalStack() as stack:`), stop with `stop()`.

    Everything the process needs is put into os.environ while it runs (AWS endpoint, credentials, the
    functions' variables) and taken back on stop. Handler modules stay imported after a stop, with the
    configuration they read at import, so use one stack per process (a session fixture) or a subprocess.
    """

    def __init__(
        self, settings: StackSettings | None = None, *, log: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings or StackSettings.from_env()
        self.log = log or (lambda _line: None)
        self._show_events = log is not None
        self.gateway: Gateway | None = None
        self.moto: EmbeddedMoto | None = None
        self.emulator: Any = None
        # The emulator's control API (`x3link emulator ...`), on a loopback port of its own.
        self.emulator_control: Any = None
        self.resources: aws_resources.Stack | None = None
        # The template's stream and queue triggers, polled in the background; `pump()` delivers now.
        self.triggers: Triggers | None = None
        self.event_log: EventLog | None = None
        self.webhook: WebhookDelivery | None = None
        self.aws_endpoint_url = self.settings.aws_endpoint_url or ""
        self.sage_x3_url = self.settings.sage_x3_url or ""
        self.allowed_endpoints: tuple[str, ...] = self.settings.allowed_endpoints
        self.emulator_urls: dict[str, str] = {}
        self.function_environments: dict[str, dict[str, str]] = {}
        self._env = _EnvPatch()
        # Every function runs inside the gate, so a snapshot of the state is taken between two of them.
        self.gate = persistence.ActivityGate()
        self.state: persistence.StateFolder | None = None
        self.saver: persistence.Saver | None = None
        self.restored = False  # True when this start put back a saved state

    # --- lifecycle ---------------------------------------------------------------------------------

    def check_ports(self) -> None:
        """PortInUse, before anything starts, when the gateway's or the embedded moto's port is taken."""
        s = self.settings
        if not ports.is_free(s.port, s.host):
            raise PortInUse(
                f"port {s.port} is already in use — is another `make run` running? "
                "set PORT=... to use another"
            )
        if not s.aws_endpoint_url and not ports.is_free(s.moto_port, s.host):
            raise PortInUse(
                f"port {s.moto_port} (embedded AWS) is already in use — is another `make run` running? "
                "set MOTO_PORT=... to use another, or AWS_ENDPOINT_URL=... to use a running one"
            )

    def start(self) -> LocalStack:
        self.check_ports()
        if self.settings.webhook_url and not self.settings.webhook_secret:
            raise StackError(
                "WEBHOOK_URL needs WEBHOOK_SECRET, the header value the receiver checks: set both, or neither"
            )
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        # Bound first: its real port (PORT=0 picks one) is part of the redirect URI everything else uses.
        self.gateway = Gateway(
            tpl.routes(),
            credentials=s.credentials,
            host=s.host,
            port=s.port,
            load_handler=self._waking(persistence.gated(tpl.load_handler, self.gate)),
            # `make run`: each request's line among the stack's others (tests keep the gateway's stderr).
            log=self.log if self._show_events else None,
        )
        saved = self._saved_state()
        self._env.set(
            {
                "AWS_ACCESS_KEY_ID": s.access_key,
                "AWS_SECRET_ACCESS_KEY": s.secret_key,
                "AWS_REGION": s.region,
                "AWS_DEFAULT_REGION": s.region,
            }
        )
        if not s.aws_endpoint_url:
            self.moto = EmbeddedMoto(s.host, s.moto_port).start()
            self.aws_endpoint_url = self.moto.url
            if saved is not None and saved.moto is not None:
                persistence.restore_moto(saved.moto)
            self.log(f"  AWS          {self.aws_endpoint_url}  (embedded moto, region {s.region})")
        else:
            self.log(f"  AWS          {self.aws_endpoint_url}  (AWS_ENDPOINT_URL, region {s.region})")
        self._env.set({"AWS_ENDPOINT_URL": self.aws_endpoint_url})
        if not s.sage_x3_url:
            self._start_emulator(saved)
            for region, url in self.emulator_urls.items():
                role = "SAGE_X3_URL" if url == self.sage_x3_url else "allowed endpoint"
                self.log(f"  Sage X3      {url}  (emulator, {region}: {role})")
            self.log(
                f"  Control      {self.emulator_control.url}  (the emulator's knobs: x3link emulator --help)"
            )
        else:
            self.log(f"  Sage X3      {self.sage_x3_url}  (SAGE_X3_URL)")
        self.resources = aws_resources.create(
            parameters={
                "SageX3Url": self.sage_x3_url,
                "SageX3AllowedEndpoints": ",".join(self.allowed_endpoints),
                **({"LogLevel": s.log_level} if s.log_level else {}),
                "PublicBaseUrl": self.api_url,
                # One machine: a run's refreshes start at once, so `make invoke` of the schedule is quick.
                "RefreshSpreadSeconds": "0",
                **({"WebhookUrl": s.webhook_url, "WebhookSecret": s.webhook_secret} if s.webhook_url else {}),
            },
            stack_name=s.stack_name,
            client_credentials={"client_id": s.client_id, "client_secret": s.client_secret},
        )
        self.function_environments = {
            logical_id: self.resources.function_environment(logical_id) for logical_id in tpl.functions()
        }
        created = [logical_id for logical_id in tpl.resources() if logical_id in self.resources.refs]
        self.log(f"  Resources    {', '.join(created)}  (from template.yaml)")
        self._env.set(shared_environment(self.function_environments))
        self.triggers = Triggers(
            self.resources,
            log=self.log,
            load_handler=self._waking(persistence.gated(tpl.load_handler, self.gate)),
        ).start()
        for poller in self.triggers.pollers:
            self.log(f"  Trigger      {poller.source.function} <- {poller.source.type} {poller.source.name}")
        buses = [self.resources.refs[bus] for bus in tpl.resources(type_="AWS::Events::EventBus")]
        if self._show_events and buses:
            self.event_log = EventLog(buses[0], self.log).start()
        webhook = target(self.resources)
        if webhook is not None:
            self.webhook = WebhookDelivery(webhook, self.log).start()
            self.log(f"  Webhook      {webhook.url}  (WEBHOOK_URL, header {webhook.header})")
        self.gateway.start()
        self.log(
            f"  API          {self.api_url}  (redirect URI {self.redirect_uri}, "
            f"notification URL {self.notification_url})"
        )
        if self.state is not None and (self.moto is not None or self.emulator is not None):
            self.saver = persistence.Saver(self.state, self.gate, self._snapshot, self.log).start()
            how = "restored, " if self.restored else ""
            self.log(f"  State        {self.state.path}  ({how}saved as it changes; FRESH=1 starts clean)")

    def _waking(self, load_handler: Handlers) -> Handlers:
        """`load_handler`, whose handlers wake the pollers once they ran: what a request's function sent (a
        queue message, an event, a stream record) is picked up at once, however long the stack was idle."""

        def load(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
            handler = load_handler(logical_id)

            def run(event: dict[str, Any], context: Any) -> Any:
                try:
                    return handler(event, context)
                finally:
                    for poller in (self.triggers, self.event_log, self.webhook):
                        if poller is not None:
                            poller.wake()

            return run

        return load

    def _saved_state(self) -> persistence.Snapshot | None:
        """The snapshot an earlier run left (None: none, FRESH=1, or one that could not be read)."""
        s = self.settings
        if s.state_dir is None:
            return None
        state = persistence.StateFolder(s.state_dir)
        if not state.claim():
            # Another `make run` (other ports, same checkout) keeps this folder: this one keeps nothing.
            self.log(
                f"  State        {s.state_dir} is another make run's: this one starts clean, keeps nothing"
            )
            return None
        self.state = state
        if s.fresh and (previous := self.state.clear()) is not None:
            self.log(f"  State        starting clean (FRESH=1); the last state is kept as {previous}")
        try:
            saved = self.state.load()
        except persistence.SnapshotUnreadable as exc:
            aside = self.state.set_aside()
            self.log(f"  State        {self.state.path} unreadable ({exc}): starting clean, kept as {aside}")
            return None
        if saved is not None and saved.emulator is not None and not s.sage_x3_url:
            # The saved pairings name the emulator's URLs: it can come back only on the same ports. When one
            # is taken (another stack on this machine), a stack that starts beats one that refuses to.
            chosen = [saved.emulator_ports.get(region, 0) for region in s.emulator_regions]
            taken = [port for port in chosen if not port or not ports.is_free(port, s.host)]
            if taken:
                aside = self.state.set_aside("ports-taken")
                self.log(
                    f"  State        the saved Sage X3 emulator's port {taken[0]} is taken: starting clean, "
                    f"the saved state is kept as {aside}"
                )
                return None
        if saved is not None:
            self.restored = True
        return saved

    def _snapshot(self) -> persistence.Snapshot:
        return persistence.Snapshot(
            moto=persistence.moto_state() if self.moto is not None else None,
            emulator=self.emulator.snapshot() if self.emulator is not None else None,
            emulator_ports={region: urlsplit(url).port or 0 for region, url in self.emulator_urls.items()},
        )

    def _start_emulator(self, saved: persistence.Snapshot | None) -> None:
        from local.sagex3_emulator import Emulator  # only when it is used: SAGE_X3_URL may point elsewhere

        s = self.settings
        avoid = [s.port, s.moto_port, self.gateway.port if self.gateway else 0]
        if saved is not None and saved.emulator is not None:
            # The saved pairings name the emulator's URLs: it comes back on the same ports (checked free).
            chosen = [saved.emulator_ports.get(region, 0) for region in s.emulator_regions]
        else:
            chosen = ports.free_ports_near(s.emulator_port, len(s.emulator_regions), s.host, avoid)
        self.emulator = Emulator(
            regions=s.emulator_regions,
            host=s.host,
            ports=dict(zip(s.emulator_regions, chosen, strict=True)),
            client_id=s.client_id,
            client_secret=s.client_secret,
            redirect_uris=[self.redirect_uri],
        ).start()
        if saved is not None and saved.emulator is not None:
            self.emulator.restore(saved.emulator)
        # The App Registry's notification URL: data delivery notifications come to this stack's gateway.
        self.emulator.configure(notification_url=self.notification_url)
        self.emulator_urls = {region: self.emulator.base_url(region) for region in s.emulator_regions}
        from local.sagex3_emulator.control import ControlServer

        self.emulator_control = ControlServer(self.emulator, "127.0.0.1")  # loopback, whatever the host
        self.emulator_control.start()
        first, *others = self.emulator_urls.values()
        self.sage_x3_url = first
        self.allowed_endpoints = tuple(dict.fromkeys([*s.allowed_endpoints, *others]))

    def stop(self) -> None:
        """Stop what start() started, newest first; safe to call twice or after a failed start."""
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.event_log is not None:
            self.event_log.stop()
            self.event_log = None
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        if self.triggers is not None:
            self.triggers.stop()
            self.triggers = None
        if self.saver is not None:
            # Nothing runs any more: the last moment's state is saved whole.
            self.saver.stop()
            try:
                self.saver.save(idle_wait=persistence.IDLE_WAIT_SECONDS)
            except Exception as exc:  # the earlier periodic save stands
                self.log(f"  State        could not be saved at stop ({type(exc).__name__}: {exc})")
            self.saver = None
        if self.state is not None:
            self.state.release()
            self.state = None
        if self.emulator_control is not None:
            self.emulator_control.stop()
            self.emulator_control = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        self._env.restore()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.gateway.port if self.gateway else self.settings.port

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.api_url}/callback"

    @property
    def notification_url(self) -> str:
        """Where Sage X3 sends data delivery notifications (the App Registry's notification URL)."""
        return f"{self.api_url}/notifications"

    @property
    def credentials(self) -> sigv4.Credentials:
        return self.settings.credentials

    def curl_example(self, path: str = "/tenants/demo", *, method: str = "GET", json_body: Any = None) -> str:
        """A signed curl of one route (curl signs the body too)."""
        c = self.credentials
        options = "" if method == "GET" else f"-X {method} "
        if json_body is not None:
            options += f"-H 'Content-Type: application/json' -d '{json.dumps(json_body)}' "
        return (
            f'curl {options}--aws-sigv4 "aws:amz:{c.region}:execute-api" '
            f"--user {c.access_key}:{c.secret_key} {self.api_url}{path}"
        )

    def describe(self) -> dict[str, Any]:
        """What `make invoke` needs to reach the same AWS and Sage X3 (written to .local/stack.json)."""
        return {
            "api_url": self.api_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "aws_embedded": self.moto is not None,
            "region": self.settings.region,
            "stack_name": self.settings.stack_name,
            "sage_x3_url": self.sage_x3_url,
            "allowed_endpoints": list(self.allowed_endpoints),
            "emulator_urls": dict(self.emulator_urls),
            "emulator_control_url": self.emulator_control.url if self.emulator_control else None,
            "ports": {
                "api": self.port,
                "moto": self.moto.port if self.moto else None,
                "emulator": {region: urlsplit(url).port for region, url in self.emulator_urls.items()},
            },
            "functions": self.function_environments,
            # Each resource's type and id by logical id, as CloudFormation lists them (`x3link doctor`).
            "resources": self.resources.resource_ids() if self.resources else {},
            # Queue URLs by logical id: `make invoke` waits for the queues a function fills to drain.
            "queues": {
                logical_id: url
                for logical_id in tpl.resources(type_="AWS::SQS::Queue")
                if (url := self.resources.refs.get(logical_id) if self.resources else None)
            },
        }

    # --- calling the API ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        timeout: float = 30,
    ) -> ApiResponse:
        """One request to the local API, SigV4-signed with the local credentials unless `signed=False`.

        Redirects are returned, not followed (a callback's 303 is something to assert on).
        """
        send_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        if signed:
            send_headers = sigv4.sign(
                method, f"{self.api_url}{path}", self.credentials, body=body, headers=send_headers
            )
        connection = http.client.HTTPConnection(self.settings.host, self.port, timeout=timeout)
        try:
            connection.request(method.upper(), path, body=body or None, headers=send_headers)
            response = connection.getresponse()
            return ApiResponse(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()
