"""openapi.yaml: a valid OpenAPI 3.1 document whose routes are template.yaml's and docs/api.md's, signed
where the template signs them, and whose answers are the handlers' own (each answer below, of every route
that runs in process, must be one the document gives).

The routes other engineers are adding (GET /tenants, the data delivery and ingestion routes, POST
/notifications) are in the document already: until they are in template.yaml and docs/api.md too, the
tests that compare the three fail, and that is their point.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.openapi import (
    assert_documented,
)
from tests.support.sage import Browser, pair, start_pairing
from x3link.wiring import reset

ACME = "https://x3.acme.example"

for _function in (
    "PairingStartFunction",
    "PairLinkFunction",
    "CallbackFunction",
    "TenantsFunction",
    "FoldersFunction",
    "PairingRefreshFunction",
):
    tpl.load_handler(_function)


# ---------------------------------------------------------------------------------------------- the handlers
def documented(method: str, path: str, **kwargs: Any) -> Answer:
    """The in-process answer to a request, once it is shown to be one the document gives."""
    return assert_documented(method, path, call(method, path, **kwargs))


def _link_path(pairing_url: str) -> str:
    return "/pair/" + urlsplit(pairing_url).path.rsplit("/pair/", 1)[1]


def _open(pairing_url: str) -> Browser:
    opened = documented("GET", _link_path(pairing_url))
    assert opened.status == 303, opened.body
    cookies = dict(header.split(";")[0].partition("=")[::2] for header in opened.set_cookies)
    return Browser(opened.headers["location"], cookies)


def _form(params: dict[str, str], browser: Browser | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return {"body": urlencode(params), "headers": {**headers, **(browser.cookie_header if browser else {})}}


def test_pairing_answers_are_documented(sage: Emulator, stack: Stack) -> None:
    started = documented("POST", "/pairings", json_body={"tenant": "acme", "customer": ACME})
    assert started.status == 201
    for body in ({"tenant": "-acme", "customer": ACME}, {"tenant": "acme", "customer": ACME, "x": 1}, [1]):
        assert documented("POST", "/pairings", json_body=body).status == 400
    assert documented("POST", "/pairings", body="{not json").status == 400

    browser = _open(started.json["pairing_url"])
    assert documented("GET", _link_path(started.json["pairing_url"])).status == 404  # opens once
    assert documented("GET", "/pair/no-such-link").status == 404

    params = sage.approve(browser.authorise_url, folders=["SEED"])
    assert documented("POST", "/callback", **_form(params)).status == 400  # not from that browser
    assert documented("POST", "/callback", **_form(params, browser)).status == 200
    assert documented("POST", "/callback", **_form(params, browser)).status == 200  # a reload
    assert documented("GET", "/callback").status == 400
    assert documented("GET", "/callback", query={"state": "unknown", "code": "x"}).status == 400
    assert documented("POST", "/callback", json_body={"state": "unknown", "code": "x"}).status == 400


def test_a_refused_exchange_and_a_success_url_are_documented(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = _open(start_pairing("acme", ACME)["pairing_url"])
    sage.fail_next("code", status=403)
    assert (
        documented("POST", "/callback", **_form(sage.approve(browser.authorise_url), browser)).status == 502
    )

    monkeypatch.setenv("PAIRING_SUCCESS_URL", "https://app.example/paired")
    reset()
    browser = _open(start_pairing("acme", ACME)["pairing_url"])
    answer = documented("POST", "/callback", **_form(sage.approve(browser.authorise_url), browser))
    assert answer.status == 303


def test_tenant_answers_are_documented(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME, folders=["SEED", "X3"])
    pair(sage, "globex", "https://x3.globex.example")

    assert documented("GET", "/tenants/acme").json["status"] == "active"
    assert documented("GET", "/tenants/acme/folders").status == 200
    assert documented("POST", "/tenants/globex/refresh").status == 200
    for method, path in (
        ("GET", "/tenants/nobody"),
        ("DELETE", "/tenants/nobody"),
        ("GET", "/tenants/nobody/folders"),
        ("POST", "/tenants/nobody/refresh"),
    ):
        assert documented(method, path).status == 404
    for method, path in (
        ("GET", "/tenants/-x"),
        ("GET", "/tenants/~x/folders"),
        ("POST", "/tenants/-/refresh"),
    ):
        assert documented(method, path).status == 400

    sage.fail_next("folders", status=500)
    assert documented("GET", "/tenants/acme/folders").status == 502

    sage.revoke(ACME)
    # globex's refresh, asked as a witness, shows Sage accepts the app: acme's grant is what is refused.
    assert documented("GET", "/tenants/acme/folders").json["error"] == "pairing_suspended"
    assert documented("GET", "/tenants/acme").json["status"] == "suspended"  # with last_refusal
    assert documented("POST", "/tenants/acme/refresh").status == 409

    assert documented("DELETE", "/tenants/acme").status == 204
    assert documented("DELETE", "/tenants/acme").status == 404
