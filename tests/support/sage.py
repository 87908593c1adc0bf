"""The test app's Sage App Registry identity, and shortcuts through the emulator's consent flow."""

from __future__ import annotations

CLIENT_ID = "test-app"
CLIENT_SECRET = "test-app-secret-value-0123456789"

from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from local.sagex3_emulator import Emulator  # noqa: E402
from tests.support.api import Answer, call  # noqa: E402


def start_pairing(tenant: str, customer: str = "https://x3.acme.example", **extra: Any) -> dict[str, Any]:
    answer = call("POST", "/pairings", json_body={"tenant": tenant, "customer": customer, **extra})
    assert answer.status == 201, answer.body
    return answer.json


@dataclass(frozen=True)
class Browser:
    """What a browser holds after opening a pairing link: where it was sent, and its binding cookie."""

    authorise_url: str
    cookies: dict[str, str]

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}


def open_link(pairing_url: str) -> Browser:
    """Open a pairing link as the X3 administrator's browser does: it is sent on to Sage with a cookie."""
    answer = call("GET", "/pair/" + urlsplit(pairing_url).path.rsplit("/pair/", 1)[1])
    assert answer.status == 303, answer.body
    cookies = {}
    for header in answer.set_cookies:
        name, _, value = header.split(";")[0].partition("=")
        cookies[name] = value
    return Browser(answer.headers["location"], cookies)


def start_browser(tenant: str, customer: str = "https://x3.acme.example", **extra: Any) -> Browser:
    """POST /pairings, then open its link: the browser is at Sage's consent page."""
    return open_link(start_pairing(tenant, customer, **extra)["pairing_url"])


def callback(params: dict[str, str], browser: Browser | None = None) -> Answer:
    """Sage's callback, as a form POST from the browser (with its cookies when given)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **(browser.cookie_header if browser else {}),
    }
    return call("POST", "/callback", body=_form(params), headers=headers)


def pair(
    sage: Emulator,
    tenant: str,
    customer: str = "https://x3.acme.example",
    folders: list[str] | None = None,
    **extra: Any,
) -> Answer:
    """The whole happy path: start, open the link, accept at Sage, the callback as Sage delivers it."""
    browser = start_browser(tenant, customer, **extra)
    answer = callback(sage.approve(browser.authorise_url, folders=folders), browser)
    assert answer.status == 200, answer.body
    return answer


def _form(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
