"""Fixtures of the in-process local-stack tests: a gateway serving fake functions on an ephemeral port, so
gateway behaviour is tested apart from the real handlers."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from local import sigv4
from local.gateway import Gateway
from local.template import Route
from tests.support.gateway import CREDENTIALS

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
