"""GET /pairings and DELETE /pairings/{id}: every link issued and what became of it, never its secret; a
revoked link never opens, an opened one cannot be revoked."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.sage import callback, open_link, start_pairing
from x3link.pairing.states import LINK_KEPT_SECONDS
from x3link.web import cursors

ACME = "https://x3.acme.example"

for _function in ("PairingStartFunction", "PairLinkFunction", "CallbackFunction", "PairingLinksFunction"):
    tpl.load_handler(_function)


def _secret(pairing_url: str) -> str:
    return urlsplit(pairing_url).path.rsplit("/pair/", 1)[1]


def _public_id(pairing_url: str) -> str:
    return hashlib.sha256(_secret(pairing_url).encode()).hexdigest()


def _listed(**query: str) -> dict[str, Any]:
    answer = call("GET", "/pairings", query=query)
    assert answer.status == 200, answer.body
    listed: dict[str, Any] = answer.json
    return listed


def _statuses() -> dict[str, str]:
    return {link["id"]: link["status"] for link in _listed()["pairings"]}


def _expire(stack: Stack, pairing_url: str) -> None:
    """The link's expiry passes (its TTL, a month later, has not)."""
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingStatesTable"],
        Key={"state_hash": {"S": "link:" + _public_id(pairing_url)}},
        UpdateExpression="SET link_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
    )


def test_every_link_is_listed_with_what_became_of_it_and_never_its_secret(
    sage: Emulator, stack: Stack
) -> None:
    urls = {
        name: start_pairing(name, ACME)["pairing_url"] for name in ("pend", "open", "used", "gone", "old")
    }
    open_link(urls["open"])
    browser = open_link(urls["used"])
    assert callback(sage.approve(browser.authorise_url), browser).status == 200
    assert call("DELETE", f"/pairings/{_public_id(urls['gone'])}").status == 204
    _expire(stack, urls["old"])

    answer = call("GET", "/pairings")

    assert answer.status == 200
    assert {link["tenant"]: link["status"] for link in answer.json["pairings"]} == {
        "pend": "pending",
        "open": "opened",
        "used": "used",
        "gone": "revoked",
        "old": "expired",
    }
    assert [link["tenant"] for link in answer.json["pairings"]] == ["old", "gone", "used", "open", "pend"]
    pending = next(link for link in answer.json["pairings"] if link["tenant"] == "pend")
    assert set(pending) == {"id", "tenant", "customer", "status", "created_at", "expires_at"}
    assert (pending["id"], pending["customer"]) == (_public_id(urls["pend"]), ACME)
    assert all(_secret(url) not in answer.body for url in urls.values())


def test_a_status_filter_and_a_cursor_page_through_the_links(stack: Stack) -> None:
    urls = [start_pairing(f"t{n}", ACME)["pairing_url"] for n in range(5)]
    for url in urls[:2]:
        assert call("DELETE", f"/pairings/{_public_id(url)}").status == 204

    pages, query = [], {"status": "pending", "limit": "2"}
    while True:
        page = _listed(**query)
        pages.append([link["tenant"] for link in page["pairings"]])
        if "cursor" not in page:
            break
        query["cursor"] = page["cursor"]

    assert [tenant for page in pages for tenant in page] == ["t4", "t3", "t2"]
    assert all(len(page) <= 2 for page in pages)
    assert [link["tenant"] for link in _listed(status="revoked")["pairings"]] == ["t1", "t0"]


def test_a_revoked_link_never_opens_and_revoking_again_is_no_error(stack: Stack) -> None:
    url = start_pairing("acme", ACME)["pairing_url"]
    revoke = f"/pairings/{_public_id(url)}"

    assert call("DELETE", revoke).status == 204
    assert call("DELETE", revoke).status == 204
    opened = call("GET", "/pair/" + _secret(url))

    assert opened.status == 404
    assert opened.headers["content-type"].startswith("text/html")
    assert _statuses() == {_public_id(url): "revoked"}


def test_an_opened_or_used_link_cannot_be_revoked(sage: Emulator, stack: Stack) -> None:
    opened_url = start_pairing("acme", ACME)["pairing_url"]
    used_url = start_pairing("globex", "https://x3.globex.example")["pairing_url"]
    open_link(opened_url)
    browser = open_link(used_url)
    assert callback(sage.approve(browser.authorise_url), browser).status == 200

    for url in (opened_url, used_url):
        answer = call("DELETE", f"/pairings/{_public_id(url)}")
        assert answer.status == 409
        assert answer.json["error"] == "link_used"
    assert call("GET", "/tenants/globex").status == 200  # the pairing it made stands


@pytest.mark.parametrize("link_id", ["0" * 64, "not-a-link", "A" * 64])
def test_an_unknown_link_is_not_found(stack: Stack, link_id: str) -> None:
    start_pairing("acme", ACME)

    answer = call("DELETE", f"/pairings/{link_id}")

    assert answer.status == 404
    assert answer.json == {"error": "unknown_link", "message": "No pairing link has this id."}


def _other_status_cursor() -> str:
    start_pairing("a", ACME)
    start_pairing("b", ACME)
    cursor: str = _listed(limit="1")["cursor"]
    return cursor


@pytest.mark.parametrize(
    "query",
    [
        {"status": "active"},
        {"status": "PENDING"},
        {"limit": "0"},
        {"cursor": "%%%"},
        {"cursor": cursors.encode({"status": None, "key": {"state_hash": {"S": "abc"}}})},
        {"cursor": cursors.encode({"status": None, "key": {"tenant": {"S": "~run:x"}}})},
    ],
)
def test_a_bad_status_limit_or_cursor_is_a_bad_request(stack: Stack, query: dict[str, str]) -> None:
    answer = call("GET", "/pairings", query=query)

    assert answer.status == 400
    assert answer.json["error"] == "bad_request"


def test_a_cursor_only_continues_the_listing_that_handed_it_out(stack: Stack) -> None:
    cursor = _other_status_cursor()

    answer: Answer = call("GET", "/pairings", query={"status": "pending", "cursor": cursor})

    assert answer.status == 400
    assert "another status filter" in answer.json["message"]


def test_a_link_is_kept_past_its_expiry_then_ttl_removes_it(stack: Stack) -> None:
    link = start_pairing("acme", ACME)
    item = boto3.client("dynamodb").get_item(
        TableName=stack.refs["PairingStatesTable"],
        Key={"state_hash": {"S": "link:" + _public_id(link["pairing_url"])}},
    )["Item"]

    assert int(item["expires_epoch"]["N"]) - float(item["link_expires_at"]["N"]) == pytest.approx(
        LINK_KEPT_SECONDS, abs=1
    )
    assert _secret(link["pairing_url"]) not in json.dumps(item)
