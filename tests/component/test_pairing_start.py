"""POST /pairings through the template's route: the pairing link, what it stores, and every bad input.

Opening the link (GET /pair/{id}) and the browser binding: tests/component/test_pairing_links.py."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import STAGE, call
from tests.support.sage import CLIENT_ID, open_link
from x3link import wiring
from x3link.pairing.states import LINK_KEPT_SECONDS

CUSTOMER = "https://x3.acme.example"

# Imported outside any subtest's output capture (Powertools binds its log stream at import).
for _function in ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "FoldersFunction"):
    tpl.load_handler(_function)


def _states(stack: Stack) -> list[dict[str, Any]]:
    table = stack.refs["PairingStatesTable"]
    return boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]


def _authorise_query(answer_json: dict[str, Any]) -> dict[str, list[str]]:
    """The query of Sage's authorise URL that opening the answer's pairing link redirects to."""
    return parse_qs(
        urlsplit(open_link(answer_json["pairing_url"]).authorise_url).query, keep_blank_values=True
    )


def _link_id(answer_json: dict[str, Any]) -> str:
    return urlsplit(answer_json["pairing_url"]).path.rsplit("/pair/", 1)[1]


def _epoch(iso_text: str) -> float:
    assert iso_text.endswith("Z"), iso_text
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def test_created_answer_is_a_pairing_link_on_the_bundles_own_route(sage: Emulator, stack: Stack) -> None:
    before = time.time()
    answer = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER})

    assert answer.status == 201, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json
    assert set(body) == {"tenant", "pairing_url", "expires_at"}
    assert body["tenant"] == "acme"
    link = urlsplit(body["pairing_url"])
    assert (link.scheme, link.netloc) == ("https", STAGE.domain_name)
    assert link.path.startswith("/prod/pair/") and not link.query
    link_id = _link_id(body)
    raw = base64.urlsafe_b64decode(link_id + "=" * (-len(link_id) % 4))
    assert len(raw) * 8 >= 128
    # Nothing of Sage's URL, nor a state, is in the answer: the app sends the link, the browser opens it.
    assert sage.base_url("eu-prod") not in answer.body and "state" not in answer.body

    # The link opens for 7 days by default (PairingLinkLifetimeHours), in ISO 8601 UTC.
    expires = _epoch(body["expires_at"])
    assert before + 7 * 86400 - 2 <= expires <= time.time() + 7 * 86400 + 1
    offset = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).utcoffset()
    assert offset is not None and offset.total_seconds() == 0


def test_opening_the_link_sends_the_browser_to_the_configured_gateway(sage: Emulator, stack: Stack) -> None:
    body = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER}).json
    browser = open_link(body["pairing_url"])

    link = urlsplit(browser.authorise_url)
    gateway = urlsplit(sage.base_url("eu-prod"))
    assert (link.scheme, link.netloc, link.path) == (gateway.scheme, gateway.netloc, "/v1/token/authorise")
    query = parse_qs(link.query, keep_blank_values=True)
    assert set(query) == {"client_id", "scope", "customer", "redirect_uri", "state"}
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == ["api.dataDelivery"]
    assert query["customer"] == [CUSTOMER]
    assert query["redirect_uri"] == [f"https://{STAGE.domain_name}/prod/callback"]
    params = sage.approve(browser.authorise_url, folders=["SEED"])
    assert params["state"] == query["state"][0]
    assert params["authorizationCode"]


def test_lifetime_of_the_link_is_a_template_parameter(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tpl.load()["Parameters"]["PairingLinkLifetimeHours"]["Default"] == 168
    monkeypatch.setenv("PAIRING_LINK_LIFETIME_HOURS", "2")
    wiring.reset()
    before = time.time()
    body = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER}).json
    assert before + 7200 - 2 <= _epoch(body["expires_at"]) <= time.time() + 7200 + 1


def test_requested_scope_is_passed_on_normalised(sage: Emulator, stack: Stack) -> None:
    answer = call(
        "POST",
        "/pairings",
        json_body={
            "tenant": "acme",
            "customer": CUSTOMER,
            "scope": "  api.dataDelivery   api.dataIngestion ",
        },
    )
    assert answer.status == 201, answer.body
    assert _authorise_query(answer.json)["scope"] == ["api.dataDelivery api.dataIngestion"]


def test_link_and_state_have_at_least_128_random_bits_and_differ_every_time(
    sage: Emulator, stack: Stack
) -> None:
    bodies = [
        call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER}).json for _ in range(5)
    ]
    assert len({_link_id(body) for body in bodies}) == 5
    states = {_authorise_query(body)["state"][0] for body in bodies}
    assert len(states) == 5
    for state in states:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        assert len(raw) * 8 >= 128, state


def test_link_is_stored_hashed_with_a_ttl(sage: Emulator, stack: Stack) -> None:
    body = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER}).json
    link_id = _link_id(body)

    items = _states(stack)
    assert len(items) == 1
    item = items[0]
    assert item["state_hash"]["S"] == "link:" + hashlib.sha256(link_id.encode()).hexdigest()
    assert link_id not in repr(item)
    assert item["tenant"]["S"] == "acme"
    assert item["customer"]["S"] == CUSTOMER
    assert item["replace"] == {"BOOL": False}

    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=stack.refs["PairingStatesTable"])
    ttl_attribute = ttl["TimeToLiveDescription"]["AttributeName"]
    assert ttl_attribute in item
    assert abs(float(item["link_expires_at"]["N"]) - _epoch(body["expires_at"])) <= 1
    # Kept a while past its expiry, so that GET /pairings still lists it as expired.
    assert abs(float(item[ttl_attribute]["N"]) - _epoch(body["expires_at"]) - LINK_KEPT_SECONDS) <= 1


LONG_TENANT = "a" * 65

BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no body", {}),
    ("empty string body", {"body": ""}),
    ("not JSON", {"body": "tenant=acme&customer=https://x3.acme.example"}),
    ("broken JSON", {"body": '{"tenant": "acme",', "headers": {"Content-Type": "application/json"}}),
    ("JSON array", {"json_body": [{"tenant": "acme", "customer": CUSTOMER}]}),
    ("JSON string", {"json_body": "acme"}),
    ("JSON null", {"body": "null", "headers": {"Content-Type": "application/json"}}),
    ("missing tenant", {"json_body": {"customer": CUSTOMER}}),
    ("empty tenant", {"json_body": {"tenant": "", "customer": CUSTOMER}}),
    ("tenant not a string", {"json_body": {"tenant": 42, "customer": CUSTOMER}}),
    ("tenant with a slash", {"json_body": {"tenant": "acme/x", "customer": CUSTOMER}}),
    ("tenant with a space", {"json_body": {"tenant": "ac me", "customer": CUSTOMER}}),
    ("tenant starting with a dot", {"json_body": {"tenant": ".acme", "customer": CUSTOMER}}),
    ("tenant starting with a dash", {"json_body": {"tenant": "-acme", "customer": CUSTOMER}}),
    ("tenant with a trailing newline", {"json_body": {"tenant": "acme\n", "customer": CUSTOMER}}),
    ("tenant with unicode", {"json_body": {"tenant": "acmé", "customer": CUSTOMER}}),
    ("65-char tenant", {"json_body": {"tenant": LONG_TENANT, "customer": CUSTOMER}}),
    ("missing customer", {"json_body": {"tenant": "acme"}}),
    ("empty customer", {"json_body": {"tenant": "acme", "customer": ""}}),
    ("customer not a string", {"json_body": {"tenant": "acme", "customer": ["https://x3.acme.example"]}}),
    ("relative customer", {"json_body": {"tenant": "acme", "customer": "/x3/acme"}}),
    ("customer without scheme", {"json_body": {"tenant": "acme", "customer": "x3.acme.example"}}),
    ("ftp customer", {"json_body": {"tenant": "acme", "customer": "ftp://x3.acme.example"}}),
    ("javascript customer", {"json_body": {"tenant": "acme", "customer": "javascript:alert(1)"}}),
    ("customer with userinfo", {"json_body": {"tenant": "acme", "customer": "https://bob@x3.acme.example"}}),
    ("customer with password", {"json_body": {"tenant": "acme", "customer": "https://b:pw@x3.acme.example"}}),
    ("customer without host", {"json_body": {"tenant": "acme", "customer": "https:///x3"}}),
    ("customer with a space", {"json_body": {"tenant": "acme", "customer": "https://x3.acme.example/a b"}}),
    ("customer with a broken IPv6 host", {"json_body": {"tenant": "acme", "customer": "https://[::1/x3"}}),
    (
        "customer with a port out of range",
        {"json_body": {"tenant": "acme", "customer": "https://x3.a.b:99999"}},
    ),
    (
        "scope naming a folder",
        {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": "folder.SEED"}},
    ),
    (
        "scope with a folder among others",
        {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": "api.dataDelivery folder.X3"}},
    ),
    ("empty scope", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": ""}}),
    ("blank scope", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": "   "}}),
    ("junk scope", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": "<script>"}}),
    (
        "scope smuggling a parameter",
        {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": "api.dataDelivery&state=x"}},
    ),
    ("scope not a string", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "scope": ["api.graphQL"]}}),
    ("unknown field", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "redirect_uri": "https://e.x"}}),
    ("replace not a boolean", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "replace": "yes"}}),
    ("replace as a number", {"json_body": {"tenant": "acme", "customer": CUSTOMER, "replace": 1}}),
]


def test_bad_input_is_a_json_400_and_stores_nothing(sage: Emulator, stack: Stack, subtests: Any) -> None:
    for label, request_args in BAD_BODIES:
        with subtests.test(msg=label):
            answer = call("POST", "/pairings", **request_args)

            assert answer.status == 400, (label, answer.body)
            assert answer.headers["content-type"].startswith("application/json")
            body = answer.json
            assert set(body) == {"error", "message"}
            assert body["error"] == "bad_request"
            assert isinstance(body["message"], str) and body["message"].strip()
            assert _states(stack) == []


def test_longest_allowed_tenant_is_accepted(sage: Emulator, stack: Stack) -> None:
    tenant = "A" + "b.c_d-9" * 9  # 64 characters
    assert len(tenant) == 64
    answer = call("POST", "/pairings", json_body={"tenant": tenant, "customer": CUSTOMER})
    assert answer.status == 201, answer.body
    assert answer.json["tenant"] == tenant
    assert len(_states(stack)) == 1


def test_http_customer_is_accepted(sage: Emulator, stack: Stack) -> None:
    answer = call(
        "POST", "/pairings", json_body={"tenant": "acme", "customer": "http://x3.acme.example:8124"}
    )
    assert answer.status == 201, answer.body
    assert _authorise_query(answer.json)["customer"] == ["http://x3.acme.example:8124"]


def test_public_base_url_sets_the_pairing_link_and_the_redirect_uri(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://link.example.com/")
    wiring.reset()
    answer = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER})
    assert answer.status == 201, answer.body
    assert answer.json["pairing_url"] == f"https://link.example.com/pair/{_link_id(answer.json)}"
    item = _states(stack)[0]
    assert item["redirect_uri"]["S"] == "https://link.example.com/callback"
    assert _authorise_query(answer.json)["redirect_uri"] == ["https://link.example.com/callback"]


def test_an_unconfigured_secret_says_what_to_do_and_stores_nothing(stack: Stack) -> None:
    """Right after `sam deploy` the secret holds the template's placeholder, not the App Registry's values."""
    secret = stack.refs["ClientCredentialsSecret"]
    placeholder = '{"client_id": "REPLACE_WITH_SAGE_CLIENT_ID", "client_secret": "generated"}'
    boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=placeholder)

    answer = call("POST", "/pairings", json_body={"tenant": "acme", "customer": CUSTOMER})

    assert answer.status == 500
    assert answer.json["error"] == "configuration_error"
    assert "client id and secret" in answer.json["message"]
    assert "generated" not in answer.body
    assert _states(stack) == []
