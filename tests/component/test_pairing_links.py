"""GET /pair/{id} and what it binds: a link that opens once, in one browser, and an X3 identity that sticks.

The attacks of issue 7 ("Sealed", part 2) are replayed here: a leaked state used from another browser, a
stranger's X3 paired as the victim tenant, a link opened twice, a success page reloaded elsewhere.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Customer, Emulator
from tests.support.api import Answer, call
from tests.support.sage import Browser, callback, open_link, start_browser, start_pairing
from x3link import wiring
from x3link.web.pages import FAILURE_SENTENCES

ACME = "https://x3.acme.example"
STRANGER = "https://x3.stranger.example"  # another X3 cloud configuration: another JWT `sub`

for _function in ("PairingStartFunction", "PairLinkFunction", "CallbackFunction", "TenantsFunction"):
    tpl.load_handler(_function)


def _states_table(stack: Stack) -> str:
    return stack.refs["PairingStatesTable"]


def _items(stack: Stack) -> list[dict[str, Any]]:
    """The states (a link is kept, marked, for GET /pairings: it is not one)."""
    items = boto3.client("dynamodb").scan(TableName=_states_table(stack), ConsistentRead=True)["Items"]
    return [item for item in items if not item["state_hash"]["S"].startswith("link:")]


def _pairing_item(stack: Stack, tenant: str) -> dict[str, Any] | None:
    return (
        boto3.client("dynamodb")
        .get_item(TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        .get("Item")
    )


def _link_path(pairing_url: str) -> str:
    return "/pair/" + urlsplit(pairing_url).path.rsplit("/pair/", 1)[1]


def _link_key(pairing_url: str) -> dict[str, Any]:
    link_id = _link_path(pairing_url).removeprefix("/pair/")
    return {"state_hash": {"S": "link:" + hashlib.sha256(link_id.encode()).hexdigest()}}


def _page_message(answer: Answer) -> str:
    assert answer.headers.get("content-type", "").startswith("text/html"), answer.headers
    found = re.search(r'<p id="message">(.*?)</p>', answer.body, re.S)
    assert found, answer.body
    return found.group(1)


def _exchanges(sage: Emulator) -> int:
    return sage.count("code")


# ---------------------------------------------------------------------------------------------- opening
def test_opening_sends_the_browser_to_sage_with_a_host_only_binding_cookie(
    sage: Emulator, stack: Stack
) -> None:
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    opened_at = time.time()
    answer = call("GET", _link_path(pairing_url))

    assert answer.status == 303, answer.body
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    location = urlsplit(answer.headers["location"])
    assert location.path == "/v1/token/authorise"
    state = parse_qs(location.query)["state"][0]

    assert len(answer.set_cookies) == 1
    name_value, *attributes = [part.strip() for part in answer.set_cookies[0].split(";")]
    name, _, value = name_value.partition("=")
    assert name.startswith("__Host-")
    assert len(value) >= 43
    flags = {attribute.split("=")[0].lower(): attribute.partition("=")[2] for attribute in attributes}
    assert "secure" in flags and "httponly" in flags
    assert flags["samesite"] == "None"  # Sage's callback is a cross-site POST
    assert flags["path"] == "/"
    assert "domain" not in flags  # __Host-: this host only
    assert 600 <= int(flags["max-age"]) <= 7200

    # The link is spent (kept, marked opened); the state is stored hashed, with the cookie's digest (never
    # the cookie), and its 10 minutes run from the opening.
    items = _items(stack)
    assert len(items) == 1
    item = items[0]
    assert item["state_hash"]["S"] == hashlib.sha256(state.encode()).hexdigest()
    assert item["binding"]["S"] == hashlib.sha256(value.encode()).hexdigest()
    assert value not in repr(item) and state not in repr(item)
    assert opened_at + 600 - 2 <= float(item["expires_epoch"]["N"]) <= time.time() + 600 + 1


def test_the_states_clock_starts_when_the_link_is_opened_not_when_it_was_made(
    sage: Emulator, stack: Stack
) -> None:
    """A link sent by e-mail three days ago still opens, and the customer then has the full 10 minutes."""
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    three_days_ago = time.time() - 3 * 86400
    boto3.client("dynamodb").update_item(
        TableName=_states_table(stack),
        Key=_link_key(pairing_url),
        UpdateExpression="SET created_at = :then",
        ExpressionAttributeValues={":then": {"N": repr(three_days_ago)}},
    )

    browser = open_link(pairing_url)
    answer = callback(sage.approve(browser.authorise_url, folders=["SEED"]), browser)

    assert answer.status == 200, answer.body
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_a_link_opens_once(sage: Emulator, stack: Stack) -> None:
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    assert call("GET", _link_path(pairing_url)).status == 303

    again = call("GET", _link_path(pairing_url))

    assert again.status == 404
    assert _page_message(again) == FAILURE_SENTENCES["pairing_link_invalid"]
    assert not again.set_cookies and "location" not in again.headers
    assert len(_items(stack)) == 1  # the one state of the first opening, no second


def test_concurrent_openings_open_the_link_once(
    sage: Emulator, stack: Stack, atomic_moto_dynamodb: None
) -> None:
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    openings = 8
    barrier = threading.Barrier(openings)
    statuses: list[int] = []
    lock = threading.Lock()

    def open_it() -> None:
        barrier.wait(timeout=10)
        status = call("GET", _link_path(pairing_url)).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=open_it) for _ in range(openings)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [303] + [404] * (openings - 1)
    assert len(_items(stack)) == 1


def test_an_expired_link_does_not_open(sage: Emulator, stack: Stack) -> None:
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    boto3.client("dynamodb").update_item(
        TableName=_states_table(stack),
        Key=_link_key(pairing_url),
        UpdateExpression="SET link_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )

    answer = call("GET", _link_path(pairing_url))

    assert answer.status == 404
    assert _page_message(answer) == FAILURE_SENTENCES["pairing_link_invalid"]
    assert not answer.set_cookies
    assert _items(stack) == []


@pytest.mark.parametrize(
    "link_id",
    ["x", "A" * 42, "A" * 44, "A" * 42 + ".", "..%2F..%2Ftenants", "%00" + "A" * 40, "A" * 2000],
)
def test_malformed_or_unknown_links_get_the_same_page_and_touch_nothing(
    sage: Emulator, stack: Stack, link_id: str
) -> None:
    start_pairing("acme", ACME)
    before = _items(stack)

    answer = call("GET", f"/pair/{link_id}")

    assert answer.status == 404
    assert _page_message(answer) == FAILURE_SENTENCES["pairing_link_invalid"]
    assert _items(stack) == before


def test_an_unknown_well_formed_link_gets_the_same_page(sage: Emulator, stack: Stack) -> None:
    answer = call("GET", "/pair/" + "B" * 43)
    assert answer.status == 404
    assert _page_message(answer) == FAILURE_SENTENCES["pairing_link_invalid"]


# ---------------------------------------------------------------------------------------------- binding
def test_a_callback_from_another_browser_is_refused_and_spends_nothing(sage: Emulator, stack: Stack) -> None:
    """The issue's attack: a stranger approves their own X3 and posts their code with the victim's state."""
    victim = start_browser("victim", ACME)
    victim_state = parse_qs(urlsplit(victim.authorise_url).query)["state"][0]
    stranger = sage.approve(open_link(start_pairing("stranger", STRANGER)["pairing_url"]).authorise_url)
    forged = {**stranger, "state": victim_state}

    for cookies in (None, Browser(victim.authorise_url, {next(iter(victim.cookies)): "A" * 43})):
        answer = callback(forged, cookies)
        assert answer.status == 400
        assert _page_message(answer) == FAILURE_SENTENCES["browser_mismatch"]

    assert _exchanges(sage) == 0
    assert _pairing_item(stack, "victim") is None
    # The victim's own browser still completes: the forged callbacks did not spend the state.
    answer = callback(sage.approve(victim.authorise_url, folders=["SEED"]), victim)
    assert answer.status == 200, answer.body
    assert call("GET", "/tenants/victim").json["customer"] == ACME


def test_one_browser_pairs_two_tenants_in_two_tabs(sage: Emulator, stack: Stack) -> None:
    first, second = start_browser("acme", ACME), start_browser("globex", STRANGER)
    both = Browser("", {**first.cookies, **second.cookies})
    assert len(both.cookies) == 2

    assert callback(sage.approve(second.authorise_url), both).status == 200
    assert callback(sage.approve(first.authorise_url), both).status == 200
    # Each state takes only its own cookie: the other tab's does not open it.
    third = start_browser("initech", ACME)
    assert callback(sage.approve(third.authorise_url), both).status == 400


def test_reloading_the_success_page_shows_it_again_without_a_second_exchange(
    sage: Emulator, stack: Stack
) -> None:
    browser = start_browser("acme", ACME)
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    first = callback(params, browser)
    assert first.status == 200
    stored = _pairing_item(stack, "acme")

    reload = callback(params, browser)
    as_get = call("GET", "/callback", query=params, headers=browser.cookie_header)

    assert (reload.status, reload.body) == (200, first.body)
    assert (as_get.status, as_get.body) == (200, first.body)
    assert _exchanges(sage) == 1
    assert _pairing_item(stack, "acme") == stored
    # Elsewhere the same URL shows nothing of the pairing.
    elsewhere = callback(params)
    assert elsewhere.status == 400
    assert "acme" not in elsewhere.body and "SEED" not in elsewhere.body


def test_the_success_page_names_the_x3_paired_and_a_reload_names_it_again(
    sage: Emulator, stack: Stack
) -> None:
    """An admin whose consent landed on another X3 than the one meant (a leaked state) sees it at once."""
    browser = start_browser("acme", ACME)
    params = sage.approve(browser.authorise_url, folders=["SEED"])

    first = callback(params, browser)

    item = _pairing_item(stack, "acme")
    assert item is not None
    sub = Customer(ACME, []).config_id  # the emulator's configuration id: the token's `sub`
    assert item["x3_subject"]["S"] == sub
    assert f'<strong id="x3-subject">{sub}</strong>' in first.body
    assert f'<span id="x3-issuer">{item["x3_issuer"]["S"]}</span>' in first.body
    assert f'<span id="endpoint">{item["endpoint"]["S"]}</span>' in first.body
    reload = callback(params, browser)  # from the state's record, not from the pairing
    assert f'<strong id="x3-subject">{sub}</strong>' in reload.body


def test_a_failed_pairing_reloaded_is_still_a_failure(sage: Emulator, stack: Stack) -> None:
    browser = start_browser("acme", ACME)
    refusal = sage.reject(browser.authorise_url)
    assert callback(refusal, browser).status == 400
    again = callback(refusal, browser)
    assert again.status == 400
    assert "Pairing complete" not in again.body


def test_binding_can_be_turned_off_for_a_server_to_server_callback(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    parameter = tpl.load()["Parameters"]["PairingBrowserBinding"]
    assert parameter["Default"] == "enabled"
    assert set(parameter["AllowedValues"]) == {"enabled", "disabled"}
    monkeypatch.setenv("PAIRING_BROWSER_BINDING", "disabled")
    wiring.reset()

    browser = start_browser("acme", ACME)
    assert browser.cookies == {}
    assert callback(sage.approve(browser.authorise_url), None).status == 200


def test_a_binding_setting_that_is_neither_value_is_a_configuration_error(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairing_url = start_pairing("acme", ACME)["pairing_url"]
    monkeypatch.setenv("PAIRING_BROWSER_BINDING", "off")
    wiring.reset()
    answer = call("GET", _link_path(pairing_url))
    assert answer.status == 500
    assert _page_message(answer) == FAILURE_SENTENCES["configuration_error"]


# ---------------------------------------------------------------------------------------------- identity
def _x3_identity(tenant: str) -> dict[str, str] | None:
    """The identity stored with the pairing (the tenant view keeps to the contract's fields)."""
    item = boto3.client("dynamodb").get_item(
        TableName=wiring.settings().pairings_table, Key={"tenant": {"S": tenant}}, ConsistentRead=True
    )["Item"]
    if "x3_subject" not in item:
        return None
    return {"issuer": item["x3_issuer"]["S"], "subject": item["x3_subject"]["S"]}


def _pair(sage: Emulator, tenant: str, customer: str, **extra: Any) -> Answer:
    browser = start_browser(tenant, customer, **extra)
    return callback(sage.approve(browser.authorise_url), browser)


def test_the_x3_identity_the_tokens_carry_is_recorded(sage: Emulator, stack: Stack) -> None:
    assert _pair(sage, "acme", ACME).status == 200
    customer = sage.get_customer(ACME)
    assert customer is not None
    identity = _x3_identity("acme")
    assert identity is not None
    assert identity["subject"] == customer.config_id
    assert identity["issuer"] == "api.eu-prod-sagex3.com"  # the emulator signs as the real gateway


def test_re_pairing_the_same_x3_needs_no_replace(sage: Emulator, stack: Stack) -> None:
    assert _pair(sage, "acme", ACME).status == 200
    version = _pairing_item(stack, "acme")["version"]  # type: ignore[index]
    assert _pair(sage, "acme", ACME).status == 200
    assert _pairing_item(stack, "acme")["version"] != version  # type: ignore[index]


def test_another_x3_is_refused_for_a_paired_tenant_unless_replace_was_asked(
    sage: Emulator, stack: Stack
) -> None:
    assert _pair(sage, "acme", ACME).status == 200
    stored = _pairing_item(stack, "acme")
    before = _x3_identity("acme")

    refused = _pair(sage, "acme", STRANGER)

    assert refused.status == 409
    assert _page_message(refused) == FAILURE_SENTENCES["identity_mismatch"]
    assert _pairing_item(stack, "acme") == stored  # the customer's pairing and tokens are untouched
    assert _x3_identity("acme") == before

    replaced = _pair(sage, "acme", STRANGER, replace=True)

    assert replaced.status == 200, replaced.body
    after = _x3_identity("acme")
    assert after is not None and after != before
    assert call("GET", "/tenants/acme").json["customer"] == STRANGER


def test_a_pairing_from_before_identities_were_recorded_is_re_paired_freely(
    sage: Emulator, stack: Stack
) -> None:
    assert _pair(sage, "acme", ACME).status == 200
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="REMOVE x3_issuer, x3_subject",
    )
    assert _x3_identity("acme") is None
    assert _pair(sage, "acme", STRANGER).status == 200
    assert _x3_identity("acme") is not None
