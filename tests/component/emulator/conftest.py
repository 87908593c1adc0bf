"""Fixtures for the Sage X3 emulator tests: a movable clock, a started emulator, a tiny HTTP client.

Every test talks to the emulator over real loopback HTTP (http.client, which never follows redirects).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from local.sagex3_emulator import Customer, Emulator

ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"
REDIRECT = "http://127.0.0.1:3000/callback"
CLIENT_ID = "demo-app"
SECRET = "demo-secret"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    """A received HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def call(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, Any] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> Reply:
    """One request over a fresh connection."""
    parts = urlsplit(url)
    sent_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    if form is not None:
        body = urlencode(form, doseq=True).encode()
        sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    assert parts.hostname is not None, url
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=sent_headers)
        response = conn.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


@dataclass
class Sage:
    """Shortcuts for driving the emulator the way the app would."""

    emu: Emulator
    clock: FakeClock

    ACME = ACME
    GLOBEX = GLOBEX
    REDIRECT = REDIRECT
    CLIENT_ID = CLIENT_ID
    SECRET = SECRET
    call = staticmethod(call)

    def url(self, path: str, region: str | None = None) -> str:
        """`path` under a region's base URL."""
        return f"{self.emu.base_url(region)}{path}"

    def authorise_url(
        self,
        region: str | None = None,
        customer: str | None = ACME,
        state: str | None = "state-123",
        scope: str | None = "api.dataDelivery",
        **overrides: str | None,
    ) -> str:
        """The authorise URL the app would send a browser to; a parameter set to None is left out."""
        params = {
            "client_id": CLIENT_ID,
            "scope": scope,
            "customer": customer,
            "redirect_uri": REDIRECT,
            "state": state,
            **overrides,
        }
        params = {k: v for k, v in params.items() if v is not None}
        return f"{self.emu.base_url(region)}/token/authorise?{urlencode(params)}"

    def token_call(self, body: dict[str, Any], region: str | None = None) -> Reply:
        return call("POST", f"{self.emu.base_url(region)}/token", json_body=body)

    def exchange(self, code: str, region: str | None = None, **overrides: str) -> Reply:
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "redirect_uri": REDIRECT,
            **overrides,
        }
        return self.token_call(body, region)

    def refresh(self, refresh_token: str, region: str | None = None, **overrides: str) -> Reply:
        body = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            **overrides,
        }
        return self.token_call(body, region)

    def pair(
        self, customer: str = ACME, folders: list[str] | None = None, scope: str = "api.dataDelivery"
    ) -> dict[str, Any]:
        """Approve and exchange; returns the token response."""
        params = self.emu.approve(self.authorise_url(customer=customer, scope=scope), folders)
        base = params.get("endpoint", self.emu.base_url())
        reply = call(
            "POST",
            f"{base}/token",
            json_body={
                "grant_type": "authorization_code",
                "code": params["authorizationCode"],
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "redirect_uri": REDIRECT,
            },
        )
        assert reply.status == 200, reply.text
        return reply.json()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[Emulator]:
    customers = [
        Customer(ACME, ["SEED", "X3", "DEMO"], region="eu-prod"),
        Customer(GLOBEX, ["SEED", "X3"], region="us-prod"),
    ]
    emulator = Emulator(redirect_uris=[REDIRECT], customers=customers, clock=clock)
    with emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture
def sage(emu: Emulator, clock: FakeClock) -> Sage:
    return Sage(emu, clock)
