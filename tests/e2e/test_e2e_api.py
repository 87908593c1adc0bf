"""The HTTP API of a stack started as `make run` starts it, with Sage X3 played by an emulator of this
process (`SAGE_X3_URL` set), so each test can see and steer what Sage X3 does."""

from __future__ import annotations

import dataclasses
import html
import http.client
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from local.sagex3_emulator import Customer, Emulator
from tests.e2e.conftest import Reply, RunningStack, names
from tests.support.contract import TENANT_FIELDS
from tests.support.sage import CLIENT_ID, CLIENT_SECRET
from x3link.web.pages import FAILURE_SENTENCES

pytestmark = pytest.mark.e2e

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def folder_names(answer_json: dict) -> list[str]:
    return [folder["name"] for folder in answer_json["folders"]]


def expected_folders(base: str, granted: list[str]) -> dict:
    """What `GET {base}/folders` answers for a token granted `granted` (docs/sage-x3.md#root-and-folders)."""
    return {
        "folders": [
            {
                "name": name,
                "$urls": {
                    "dataIngestion": f"{base}/dataingestion/{name}/",
                    "dataDelivery": f"{base}/datadelivery/{name}/",
                    "dataService": f"{base}/service/X3CLOUDV2_{name}/api",
                },
            }
            for name in granted
        ]
    }


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def page_message(answer: Reply) -> str:
    """The one sentence of a failure page."""
    assert answer.content_type == "text/html", answer.headers
    found = re.search(r'<p id="message">(.*?)</p>', answer.text, re.S)
    assert found, answer.text
    return html.unescape(found.group(1))


def success_page_shows(answer_text: str, tenant: str, folders: list[str]) -> None:
    assert "Pairing complete" in answer_text
    assert re.search(rf'id="tenant"[^>]*>{re.escape(tenant)}<', answer_text), answer_text
    shown = re.findall(r"<li>([^<]*)</li>", answer_text)
    assert shown == folders, answer_text


# --- 1. pairing through every callback form ----------------------------------------------------------


@pytest.mark.parametrize("form", ["get-authorizationCode", "get-code", "post-form", "post-json"])
def test_pairing_through_each_callback_form(stack: RunningStack, sage: Emulator, form: str) -> None:
    tenant, customer = names(f"form-{form}")
    started = stack.call("POST", "/pairings", json_body={"tenant": tenant, "customer": customer})
    assert started.status == 201, started.body
    answer = started.json()
    assert set(answer) == {"tenant", "pairing_url", "expires_at"}
    assert answer["tenant"] == tenant
    # The link is the stack's own public route, and opens for 7 days (PairingLinkLifetimeHours).
    assert answer["pairing_url"].startswith(f"{stack.api_url}/pair/")
    expires_at = parse_time(answer["expires_at"])
    now = datetime.now(UTC)
    assert now + timedelta(days=7, minutes=-1) < expires_at <= now + timedelta(days=7, minutes=1)
    assert sage.requests == []  # nothing reaches Sage X3 before the link is opened

    browser = stack.open_link(answer["pairing_url"])
    link = browser.authorise_url
    assert link.startswith(f"{sage.base_url('eu-prod')}/token/authorise?")
    query = parse_qs(urlsplit(link).query)
    assert query["redirect_uri"] == [stack.redirect_uri]
    assert query["customer"] == [customer]
    assert query["client_id"] == [CLIENT_ID]
    assert query["state"][0]

    params = sage.approve(link, folders=["SEED", "DEMO"])
    page = stack.deliver(params, form, browser=browser)

    assert page.status == 200, page.body
    assert page.content_type == "text/html"
    success_page_shows(page.text, tenant, ["SEED", "DEMO"])
    assert sage.count("code") == 1

    described = stack.call("GET", f"/tenants/{tenant}")
    assert described.status == 200, described.body
    pairing = described.json()
    assert set(pairing) == TENANT_FIELDS
    assert pairing["tenant"] == tenant
    assert pairing["customer"] == customer
    assert pairing["status"] == "active"
    assert pairing["folders"] == ["SEED", "DEMO"]
    assert pairing["endpoint"] == sage.base_url("eu-prod")
    assert parse_time(pairing["access_token_expires_at"]) > now
    assert parse_time(pairing["refresh_token_expires_at"]) > now + timedelta(days=29)
    assert abs(parse_time(pairing["paired_at"]) - now) < timedelta(minutes=1)
    # No token material: neither a JWT, nor the refresh token Sage holds, nor the code.
    assert not JWT.search(described.text), described.text
    refresh_token = sage.current_refresh_token(customer)
    assert refresh_token is not None
    assert refresh_token not in described.text
    assert params["authorizationCode"] not in described.text


# --- 1b. the pairing link, and the browser it binds ----------------------------------------------------


def cookie_attributes(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    """A Set-Cookie header as a browser reads it: name, value, and attributes by lower-case name."""
    name_value, *attributes = [part.strip() for part in set_cookie.split(";")]
    name, _, value = name_value.partition("=")
    flags = {attribute.partition("=")[0].lower(): attribute.partition("=")[2] for attribute in attributes}
    return name, value, flags


def test_opening_the_link_sets_a_host_only_cookie_on_the_wire(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("cookie-wire")
    pairing_url = stack.start_pairing(tenant, customer)

    opened = stack.call("GET", stack.link_path(pairing_url), signed=False)  # public: no signature

    assert opened.status == 303, opened.body
    assert opened.headers["location"].startswith(f"{sage.base_url('eu-prod')}/token/authorise?")
    assert opened.headers["cache-control"] == "no-store"
    assert opened.headers["referrer-policy"] == "no-referrer"
    # One Set-Cookie header line, as the gateway sent it; read the way a browser reads it.
    assert len(opened.set_cookies) == 1, opened.set_cookies
    name, value, flags = cookie_attributes(opened.set_cookies[0])
    assert name.startswith("__Host-"), name
    assert len(value) >= 43  # 32 random bytes
    assert "secure" in flags and flags["secure"] == ""
    assert "httponly" in flags and flags["httponly"] == ""
    assert flags["samesite"] == "None"  # Sage X3 sends the browser back with a cross-site POST
    assert flags["path"] == "/"
    assert "domain" not in flags  # `__Host-`: this host only
    assert 600 <= int(flags["max-age"]) <= 7200
    # The cookie binds this browser only: it is neither the state nor in the URL Sage X3 sees.
    state = parse_qs(urlsplit(opened.headers["location"]).query)["state"][0]
    assert value not in opened.headers["location"] and value != state
    assert value not in pairing_url


def test_a_link_opens_once(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("opened-twice")
    pairing_url = stack.start_pairing(tenant, customer)
    browser = stack.open_link(pairing_url)

    again = stack.call("GET", stack.link_path(pairing_url), signed=False)

    assert again.status == 404, again.body
    assert page_message(again) == FAILURE_SENTENCES["pairing_link_invalid"]
    assert again.set_cookies == [] and "location" not in again.headers
    assert again.headers["cache-control"] == "no-store"
    # A link that never existed gets the same page.
    unknown = stack.call("GET", "/pair/" + "B" * 43, signed=False)
    assert unknown.status == 404, unknown.body
    assert page_message(unknown) == FAILURE_SENTENCES["pairing_link_invalid"]
    # The second opening spent nothing: the browser that opened it first still pairs.
    page = stack.deliver(sage.approve(browser.authorise_url, folders=["SEED"]), browser=browser)
    assert page.status == 200, page.body
    success_page_shows(page.text, tenant, ["SEED"])


def test_a_callback_without_the_cookie_is_refused_and_the_right_browser_still_completes(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("cookieless")
    browser = stack.start_browser(tenant, customer)
    (cookie_name,) = browser.cookies
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    # Another browser: no cookie, or the right name with another value.
    impostors = [None, dataclasses.replace(browser, cookies={cookie_name: "A" * 43})]

    for impostor in impostors:
        for form in ("post-form", "get-authorizationCode"):
            refused = stack.deliver(params, form, browser=impostor)
            assert refused.status == 400, (form, refused.body)
            assert refused.content_type == "text/html"
            assert "Pairing failed" in refused.text
            assert page_message(refused) == FAILURE_SENTENCES["browser_mismatch"]

    assert sage.count("code") == 0  # nothing was exchanged, and the state was not spent
    assert stack.call("GET", f"/tenants/{tenant}").status == 404
    page = stack.deliver(params, "post-form", browser=browser)
    assert page.status == 200, page.body
    success_page_shows(page.text, tenant, ["SEED"])
    assert sage.count("code") == 1
    assert stack.call("GET", f"/tenants/{tenant}").json()["status"] == "active"


def test_reloading_the_success_page_shows_it_again_without_a_second_exchange(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("reloaded")
    browser = stack.start_browser(tenant, customer)
    params = sage.approve(browser.authorise_url, folders=["SEED", "X3"])
    first = stack.deliver(params, "post-form", browser=browser)
    assert first.status == 200, first.body
    paired = stack.call("GET", f"/tenants/{tenant}").json()

    reload = stack.deliver(params, "post-form", browser=browser)

    assert reload.status == 200, reload.body
    assert reload.content_type == "text/html"
    assert reload.body == first.body
    success_page_shows(reload.text, tenant, ["SEED", "X3"])
    assert reload.headers["cache-control"] == "no-store"
    assert sage.count("code") == 1
    assert stack.call("GET", f"/tenants/{tenant}").json() == paired  # nothing stored again


def test_another_customer_for_a_paired_tenant_needs_replace(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("replaced")
    other_customer = "https://x3.replacement.example"  # another X3: another identity in its tokens
    stack.pair(tenant, customer, folders=["SEED"])
    paired = stack.call("GET", f"/tenants/{tenant}").json()

    browser = stack.start_browser(tenant, other_customer)
    refused = stack.deliver(sage.approve(browser.authorise_url, folders=["X3"]), browser=browser)

    assert refused.status == 409, refused.body
    assert page_message(refused) == FAILURE_SENTENCES["identity_mismatch"]
    assert stack.call("GET", f"/tenants/{tenant}").json() == paired  # the first customer's pairing stays
    folders = stack.call("GET", f"/tenants/{tenant}/folders")
    assert folders.status == 200, folders.body
    assert folder_names(folders.json()) == ["SEED"]

    browser = stack.start_browser(tenant, other_customer, replace=True)
    replaced = stack.deliver(sage.approve(browser.authorise_url, folders=["X3"]), browser=browser)

    assert replaced.status == 200, replaced.body
    success_page_shows(replaced.text, tenant, ["X3"])
    described = stack.call("GET", f"/tenants/{tenant}").json()
    assert (described["customer"], described["folders"]) == (other_customer, ["X3"])
    folders = stack.call("GET", f"/tenants/{tenant}/folders")
    assert folders.status == 200, folders.body
    assert folder_names(folders.json()) == ["X3"]


# --- 2. folders ----------------------------------------------------------------------------------------


def test_folder_query_answers_exactly_the_granted_folders(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("folders")
    stack.pair(tenant, customer, folders=["X3", "DEMO"])

    answer = stack.call("GET", f"/tenants/{tenant}/folders")

    assert answer.status == 200, answer.body
    assert answer.json() == expected_folders(sage.base_url("eu-prod"), ["X3", "DEMO"])
    assert sage.count("folders") == 1
    assert sage.count("refresh") == 0


# --- 3. refresh on 401, rotation -------------------------------------------------------------------------


def test_a_401_refreshes_once_and_the_rotated_token_replaces_the_old(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("rotation")
    stack.pair(tenant, customer, folders=["SEED"])
    old_refresh_token = sage.current_refresh_token(customer)
    assert old_refresh_token
    sage.clear_requests()

    sage.invalidate_access_tokens(customer)
    answer = stack.call("GET", f"/tenants/{tenant}/folders")

    assert answer.status == 200, answer.body
    assert folder_names(answer.json()) == ["SEED"]
    assert sage.count("refresh") == 1
    assert sage.count("folders") == 2  # the 401, then the retry with the new token
    new_refresh_token = sage.current_refresh_token(customer)
    assert new_refresh_token not in (None, old_refresh_token)
    # The old refresh token is dead at Sage: spending it again is refused.
    status, body = _refresh_at_sage(sage, old_refresh_token)
    assert status in (400, 401, 403, 404), body
    assert sage.current_refresh_token(customer) == new_refresh_token
    described = stack.call("GET", f"/tenants/{tenant}").json()
    assert described["status"] == "active"
    assert described["refreshed_at"] is not None

    sage.clear_requests()
    again = stack.call("GET", f"/tenants/{tenant}/folders")
    assert again.status == 200, again.body
    assert folder_names(again.json()) == ["SEED"]
    assert sage.count("refresh") == 0
    assert sage.current_refresh_token(customer) == new_refresh_token


def _refresh_at_sage(sage: Emulator, refresh_token: str) -> tuple[int, bytes]:
    """Spend a refresh token at Sage X3 directly, as the app would."""
    base = urlsplit(sage.base_url("eu-prod"))
    assert base.hostname is not None
    body = json.dumps(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    )
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
    try:
        connection.request(
            "POST", f"{base.path}/token", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- 5. a dead grant ----------------------------------------------------------------------------------------


def test_a_revoked_grant_turns_into_pairing_suspended(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("revoked")
    stack.pair(tenant, customer, folders=["SEED"])
    witness, witness_customer = names("revoked-witness")  # another pairing on the gateway: its refresh
    stack.pair(
        witness, witness_customer, folders=["SEED"]
    )  # shows Sage accepts the app, so the grant is refused
    sage.revoke(customer)

    answer = stack.call("GET", f"/tenants/{tenant}/folders")

    assert answer.status == 409, answer.body
    assert answer.content_type == "application/json"
    body = answer.json()
    assert body["error"] == "pairing_suspended"
    assert isinstance(body["message"], str) and body["message"]
    described = stack.call("GET", f"/tenants/{tenant}")
    assert described.status == 200
    view = described.json()
    assert view["status"] == "suspended"
    assert view["last_refusal"]["status"] == 401 and view["next_attempt_at"]
    # Sage refused it: later queries do not try again before the next attempt is due...
    refreshes = sage.count("refresh")
    assert stack.call("GET", f"/tenants/{tenant}/folders").status == 409
    assert sage.count("refresh") == refreshes
    # ...but an operator may, and is told Sage still refuses it.
    retried = stack.call("POST", f"/tenants/{tenant}/refresh")
    assert (retried.status, retried.json()["error"]) == (409, "pairing_suspended")
    assert sage.count("refresh") == refreshes + 1


# --- 6. a customer homed in another region -----------------------------------------------------------------


def test_a_customer_of_another_region_is_served_by_its_own_gateway(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("regional")
    sage.add_customer(Customer(customer, ["SEED", "US1"], region="us-prod"))
    browser = stack.start_browser(tenant, customer)
    assert browser.authorise_url.startswith(sage.base_url("eu-prod"))  # opened at the configured gateway
    params = sage.approve(browser.authorise_url, folders=["US1"])
    assert params["endpoint"] == sage.base_url("us-prod")

    page = stack.deliver(params, "post-form", browser=browser)

    assert page.status == 200, page.body
    success_page_shows(page.text, tenant, ["US1"])
    assert stack.call("GET", f"/tenants/{tenant}").json()["endpoint"] == sage.base_url("us-prod")
    folders = stack.call("GET", f"/tenants/{tenant}/folders")
    assert folders.status == 200, folders.body
    assert folders.json() == expected_folders(sage.base_url("us-prod"), ["US1"])
    calls = [(entry["route"], entry["region"]) for entry in sage.requests]
    assert calls == [("code", "us-prod"), ("folders", "us-prod")]


def test_the_customers_refusal_is_a_400_page(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("refused")
    browser = stack.start_browser(tenant, customer)
    params = sage.reject(browser.authorise_url)
    assert params["error"]

    answer = stack.deliver(params, "post-form", browser=browser)

    assert answer.status == 400, answer.body
    assert answer.content_type == "text/html"
    assert "Pairing failed" in answer.text
    assert sage.requests == []
    assert stack.call("GET", f"/tenants/{tenant}").status == 404


def test_sage_refusing_the_exchange_is_a_502_page(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("exchange-refused")
    browser = stack.start_browser(tenant, customer)
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    sage.fail_next("code", status=403, body={"message": "The request has expired."})

    answer = stack.deliver(params, "post-form", browser=browser)

    assert answer.status == 502, answer.body
    assert answer.content_type == "text/html"
    assert "Pairing failed" in answer.text
    assert sage.count("code") == 1
    assert stack.call("GET", f"/tenants/{tenant}").status == 404


def test_pairing_again_keeps_the_old_tokens_until_the_new_callback(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("repair")
    stack.pair(tenant, customer, folders=["SEED"])
    browser = stack.start_browser(tenant, customer)

    still = stack.call("GET", f"/tenants/{tenant}/folders")
    assert still.status == 200, still.body
    assert folder_names(still.json()) == ["SEED"]
    assert stack.call("GET", f"/tenants/{tenant}").json()["status"] == "active"

    page = stack.deliver(sage.approve(browser.authorise_url, folders=["X3", "DEMO"]), browser=browser)
    assert page.status == 200, page.body
    assert stack.call("GET", f"/tenants/{tenant}").json()["folders"] == ["X3", "DEMO"]
    assert folder_names(stack.call("GET", f"/tenants/{tenant}/folders").json()) == ["X3", "DEMO"]


# --- 7. the gateway's own refusals ------------------------------------------------------------------


def test_unsigned_requests_to_iam_routes_are_refused(stack: RunningStack) -> None:
    for method, path in [
        ("GET", "/tenants/anyone"),
        ("DELETE", "/tenants/anyone"),
        ("GET", "/tenants/anyone/folders"),
        ("POST", "/pairings"),
    ]:
        answer = stack.call(method, path, signed=False)
        assert answer.status == 403, (method, path, answer.body)
        assert answer.content_type == "application/json"
        assert answer.json() == {"message": "Missing Authentication Token"}


def test_badly_signed_requests_are_refused_and_change_nothing(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("signed")
    stack.pair(tenant, customer, folders=["SEED"])

    wrong_secret = stack.call("DELETE", f"/tenants/{tenant}", secret_key="not-the-secret")
    assert wrong_secret.status == 403, wrong_secret.body
    assert set(wrong_secret.json()) == {"message"}
    assert "signature" in wrong_secret.json()["message"]
    assert stack.call("GET", f"/tenants/{tenant}").status == 200  # still paired

    signed_body = json.dumps({"tenant": tenant, "customer": customer}).encode()
    tampered = json.dumps({"tenant": tenant, "customer": "https://x3.evil.example"}).encode()
    answer = stack.call(
        "POST",
        "/pairings",
        body=signed_body,
        headers={"Content-Type": "application/json"},
        send_body=tampered,
    )
    assert answer.status == 403, answer.body
    assert set(answer.json()) == {"message"}
    # The same request with its body intact is accepted: the signature, not the route, refused it.
    intact = stack.call("POST", "/pairings", body=signed_body, headers={"Content-Type": "application/json"})
    assert intact.status == 201, intact.body


def test_an_unknown_route_is_a_missing_authentication_token(stack: RunningStack) -> None:
    for method, path, signed in [
        ("GET", "/nothing-here", True),
        ("GET", "/nothing-here", False),
        ("PUT", "/tenants/anyone", True),
        ("GET", "/tenants/anyone/folders/more", True),
    ]:
        answer = stack.call(method, path, signed=signed)
        assert answer.status == 403, (method, path, answer.body)
        assert answer.json() == {"message": "Missing Authentication Token"}


def test_the_callback_needs_no_signature(stack: RunningStack, sage: Emulator) -> None:
    for method in ("GET", "POST"):
        answer = stack.call(method, "/callback", signed=False)
        assert answer.status == 400, answer.body
        assert answer.content_type == "text/html"
        assert "Pairing failed" in answer.text
    assert sage.requests == []


def test_curl_sigv4_as_the_readme_shows(stack: RunningStack) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    tenant, customer = names("curl")
    stack.pair(tenant, customer, folders=["X3"])
    command = (
        f'curl -s --aws-sigv4 "aws:amz:us-east-1:execute-api" --user testing:testing '
        f"{stack.api_url}/tenants/{tenant}"
    )
    answer = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=20, check=True)  # noqa: S602
    described = json.loads(answer.stdout)
    assert described["tenant"] == tenant
    assert described["folders"] == ["X3"]
    unsigned = subprocess.run(
        ["curl", "-s", f"{stack.api_url}/tenants/{tenant}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert json.loads(unsigned.stdout) == {"message": "Missing Authentication Token"}


# --- 8. bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"tenant": "ok"}).encode(),
        json.dumps({"tenant": "bad tenant!", "customer": "https://x3.ok.example"}).encode(),
        json.dumps({"tenant": "-leading-dash", "customer": "https://x3.ok.example"}).encode(),
        json.dumps({"tenant": "t" * 65, "customer": "https://x3.ok.example"}).encode(),
        json.dumps({"tenant": "ok", "customer": "x3.ok.example"}).encode(),
        json.dumps({"tenant": "ok", "customer": "ftp://x3.ok.example"}).encode(),
        json.dumps({"tenant": 7, "customer": "https://x3.ok.example"}).encode(),
    ],
    ids=[
        "not-json",
        "array",
        "empty-object",
        "no-customer",
        "tenant-with-space",
        "tenant-leading-dash",
        "tenant-too-long",
        "relative-customer",
        "ftp-customer",
        "numeric-tenant",
    ],
)
def test_junk_pairing_requests_are_bad_requests(stack: RunningStack, body: bytes) -> None:
    answer = stack.call("POST", "/pairings", body=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400, answer.body
    assert answer.content_type == "application/json"
    error = answer.json()
    assert error["error"] == "bad_request"
    assert isinstance(error["message"], str) and error["message"]


def test_a_replayed_callback_never_exchanges_twice(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("replay")
    browser = stack.start_browser(tenant, customer)
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    first = stack.deliver(params, "post-form", browser=browser)
    assert first.status == 200, first.body

    for form in ("post-form", "get-authorizationCode", "post-json"):
        # From the browser that paired: the same success page again (a reload), whatever the form.
        replay = stack.deliver(params, form, browser=browser)
        assert replay.status == 200, (form, replay.body)
        assert replay.content_type == "text/html"
        success_page_shows(replay.text, tenant, ["SEED"])
        # From anywhere else: a failure page that shows nothing of the pairing.
        elsewhere = stack.deliver(params, form)
        assert elsewhere.status == 400, (form, elsewhere.body)
        assert page_message(elsewhere) == FAILURE_SENTENCES["browser_mismatch"]
        assert tenant not in elsewhere.text and "SEED" not in elsewhere.text
    assert sage.count("code") == 1
    assert stack.call("GET", f"/tenants/{tenant}/folders").status == 200


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://api.evil-sagex3.com/v1",
        "http://127.0.0.1:9/v1",
        "{us}/../v1",
        "{us}/v2",
        "{eu}.evil.example/v1",
    ],
)
def test_a_callback_endpoint_off_the_allow_list_is_refused(
    stack: RunningStack, sage: Emulator, endpoint: str
) -> None:
    tenant, customer = names("offlist")
    browser = stack.start_browser(tenant, customer)
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    params["endpoint"] = endpoint.format(us=sage.base_url("us-prod"), eu=sage.base_url("eu-prod"))
    sage.clear_requests()

    answer = stack.deliver(params, "post-form", browser=browser)

    assert answer.status == 400, answer.body
    assert answer.content_type == "text/html"
    assert "Pairing failed" in answer.text
    assert sage.requests == []
    assert stack.call("GET", f"/tenants/{tenant}").status == 404


# --- 9. forgetting a tenant ---------------------------------------------------------------------------------


def test_delete_forgets_the_tenant(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("deleted")
    stack.pair(tenant, customer, folders=["SEED"])

    deleted = stack.call("DELETE", f"/tenants/{tenant}")

    assert deleted.status == 204, deleted.body
    assert deleted.body == b""
    for method, path in [
        ("GET", f"/tenants/{tenant}"),
        ("GET", f"/tenants/{tenant}/folders"),
        ("DELETE", f"/tenants/{tenant}"),
    ]:
        answer = stack.call(method, path)
        assert answer.status == 404, (method, path, answer.body)
        assert answer.json()["error"] == "not_paired"
    sage.clear_requests()
    stack.call("GET", f"/tenants/{tenant}/folders")
    assert sage.requests == []
