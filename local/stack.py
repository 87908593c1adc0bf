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
from typing import Any
from urllib.parse import urlsplit

from local import aws_resources, ports, sigv4
from local import template as tpl
from local.event_log import EventLog
from local.gateway import Gateway
from local.moto_server import EmbeddedMoto
from local.triggers import Triggers

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
        self.aws_endpoint_url = self.settings.aws_endpoint_url or ""
        self.sage_x3_url = self.settings.sage_x3_url or ""
        self.allowed_endpoints: tuple[str, ...] = self.settings.allowed_endpoints
        self.emulator_urls: dict[str, str] = {}
        self.function_environments: dict[str, dict[str, str]] = {}
        self._env = _EnvPatch()

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
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        # Bound first: its real port (PORT=0 picks one) is part of the redirect URI everything else uses.
        self.gateway = Gateway(tpl.routes(), credentials=s.credentials, host=s.host, port=s.port)
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
            self.log(f"  AWS          {self.aws_endpoint_url}  (embedded moto, region {s.region})")
        else:
            self.log(f"  AWS          {self.aws_endpoint_url}  (AWS_ENDPOINT_URL, region {s.region})")
        self._env.set({"AWS_ENDPOINT_URL": self.aws_endpoint_url})
        if not s.sage_x3_url:
            self._start_emulator()
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
                "PublicBaseUrl": self.api_url,
                # One machine: a run's refreshes start at once, so `make invoke` of the schedule is quick.
                "RefreshSpreadSeconds": "0",
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
        self.triggers = Triggers(self.resources, log=self.log).start()
        for poller in self.triggers.pollers:
            self.log(f"  Trigger      {poller.source.function} <- {poller.source.type} {poller.source.name}")
        buses = [self.resources.refs[bus] for bus in tpl.resources(type_="AWS::Events::EventBus")]
        if self._show_events and buses:
            self.event_log = EventLog(buses[0], self.log).start()
        self.gateway.start()
        self.log(
            f"  API          {self.api_url}  (redirect URI {self.redirect_uri}, "
            f"notification URL {self.notification_url})"
        )

    def _start_emulator(self) -> None:
        from local.sagex3_emulator import Emulator  # only when it is used: SAGE_X3_URL may point elsewhere

        s = self.settings
        avoid = [s.port, s.moto_port, self.gateway.port if self.gateway else 0]
        chosen = ports.free_ports_near(EMULATOR_FIRST_PORT, len(s.emulator_regions), s.host, avoid)
        self.emulator = Emulator(
            regions=s.emulator_regions,
            host=s.host,
            ports=dict(zip(s.emulator_regions, chosen, strict=True)),
            client_id=s.client_id,
            client_secret=s.client_secret,
            redirect_uris=[self.redirect_uri],
        ).start()
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
        if self.triggers is not None:
            self.triggers.stop()
            self.triggers = None
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
