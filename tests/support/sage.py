"""The test app's Sage App Registry identity, and shortcuts through the emulator's consent flow."""

from __future__ import annotations

CLIENT_ID = "test-app"
CLIENT_SECRET = "test-app-secret-value-0123456789"

from typing import Any  # noqa: E402

from local.sagex3_emulator import Emulator  # noqa: E402
from tests.support.api import Answer, call  # noqa: E402


def start_pairing(tenant: str, customer: str = "https://x3.acme.example", **extra: Any) -> dict[str, Any]:
    answer = call("POST", "/pairings", json_body={"tenant": tenant, "customer": customer, **extra})
    assert answer.status == 201, answer.body
    return answer.json


def pair(
    sage: Emulator, tenant: str, customer: str = "https://x3.acme.example", folders: list[str] | None = None
) -> Answer:
    """The whole happy path: start, the customer accepts at Sage, the callback is delivered as Sage does."""
    link = start_pairing(tenant, customer)["authorization_url"]
    params = sage.approve(link, folders=folders)
    answer = call(
        "POST", "/callback", body=_form(params), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status == 200, answer.body
    return answer


def _form(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
