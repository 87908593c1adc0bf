"""Fixtures of the local-stack tests: the local credentials, a gateway serving fake functions on an
ephemeral port, so gateway behaviour is tested apart from the real handlers, and a browser's opening of a
pairing link."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest

from local import sigv4
from local.gateway import Gateway
from local.template import ROOT, Route

if TYPE_CHECKING:
    from local.stack import LocalStack

CREDENTIALS = sigv4.Credentials("testing", "testing", "us-east-1")
FAKE_ROUTES = [
    Route("GET", "/things/{thing}", "ThingFunction", "AWS_IAM"),
    Route("POST", "/things", "ThingFunction", "AWS_IAM"),
    Route("GET", "/things/special", "SpecialFunction", "AWS_IAM"),
    Route("GET", "/open", "OpenFunction", "NONE"),
    Route("POST", "/open", "OpenFunction", "NONE"),
]


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeApi:
    """A started gateway whose functions are the callables in `handlers`; `events` records each call."""

    gateway: Gateway
    handlers: dict[str, Callable[[dict[str, Any], Any], Any]]
    events: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        sign_with: sigv4.Credentials | None = None,
    ) -> Reply:
        send = dict(headers or {})
        if sign_with is not None:
            send = sigv4.sign(method, f"{self.url}{path}", sign_with, body=body, headers=send)
        connection = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=send)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()


def echo_handler(name: str, api: FakeApi) -> Callable[[dict[str, Any], Any], Any]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        api.events.append((name, event, context))
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}

    return handler


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
    log: list[str] = []
    gateway = Gateway(
        FAKE_ROUTES,
        credentials=CREDENTIALS,
        port=0,
        stage_name="prod",
        load_handler=lambda logical_id: handlers[logical_id],
        log=log.append,
    )
    api = FakeApi(gateway, handlers, log=log)
    for name in ("ThingFunction", "SpecialFunction", "OpenFunction"):
        handlers[name] = echo_handler(name, api)
    with gateway:
        yield api


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` from the repository root, as make runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def open_pairing_link(stack: LocalStack, pairing_url: str) -> tuple[str, dict[str, str]]:
    """Open a pairing link as a browser does (GET, unsigned): where the 303 sends it (Sage X3's authorise
    URL), and the `Cookie` header that browser then sends back with the callback."""
    assert pairing_url.startswith(f"{stack.api_url}/pair/"), pairing_url
    opened = stack.call("GET", urlsplit(pairing_url).path, signed=False)
    assert opened.status == 303, opened.body
    headers = {name.lower(): value for name, value in opened.headers.items()}
    return headers["location"], {"Cookie": headers["set-cookie"].split(";")[0]}


def deliver_callback(stack: LocalStack, params: dict[str, str], cookie: dict[str, str]) -> Any:
    """Sage X3's callback as the browser posts it (a form, unsigned, with the binding cookie)."""
    return stack.call(
        "POST",
        "/callback",
        body=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **cookie},
        signed=False,
    )


@pytest.fixture
def stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private .local/stack.json location, so tests never see (or clobber) a developer's `make run`."""
    target = tmp_path / "stack.json"
    monkeypatch.setenv("LOCAL_STACK_FILE", str(target))
    return target
