"""`x3link emulator ...` run as a subprocess against a stack started exactly as `make run` starts it, with
its own embedded Sage X3 emulator (no SAGE_X3_URL): the emulator is steered only from the shell, through its
control API, and what each command does is seen where the app sees it (the API, its activity, `make invoke`).
The tenant pairs over HTTP as a browser would (the emulator's consent page), then queries X3's GraphQL."""

from __future__ import annotations

import html
import http.client
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.e2e.conftest import RunningStack, names, running_stack
from tests.e2e.test_e2e_cli import fails, succeeds, x3link
from tests.e2e.test_e2e_keep_alive import make_invoke

pytestmark = pytest.mark.e2e

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')
SCOPE = "api.dataDelivery api.graphQL"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("emulator-cli")) as running:
        yield running


def _http(method: str, url: str, body: str | None = None) -> tuple[int, str]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    try:
        connection.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def _hidden(page: str) -> dict[str, str]:
    return {html.unescape(name): html.unescape(value) for name, value in _HIDDEN.findall(page)}


def pair_in_the_browser(stack: RunningStack, tenant: str, customer: str) -> None:
    """As the X3 administrator: open the link, tick SEED on the emulator's consent page, accept; the
    auto-submitted callback form then comes back to the stack from the same browser."""
    browser = stack.open_link(stack.start_pairing(tenant, customer, scope=SCOPE))
    status, consent = _http("GET", browser.authorise_url)
    assert status == 200, consent
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(browser.authorise_url))
    form = urlencode({**_hidden(consent), "decision": "accept", "folder": "SEED"})
    status, returning = _http("POST", f"{origin}/v1/token/authorise/decision?", form)
    assert status == 200, returning
    answer = stack.deliver(_hidden(returning), browser=browser)
    assert answer.status == 200, answer.body


def activity_of(stack: RunningStack, tenant: str, kind: str, deadline: float = 30.0) -> list[dict[str, Any]]:
    """The tenant's activity entries of one type, waited for (the stream writes them within seconds)."""
    until = time.monotonic() + deadline
    while True:
        answer = stack.call("GET", f"/tenants/{tenant}/activity")
        assert answer.status == 200, answer.body
        found = [entry for entry in answer.json()["activity"] if entry["type"] == kind]
        if found or time.monotonic() > until:
            return found
        time.sleep(0.5)


def test_files_exported_and_notified_from_the_shell_reach_the_app(stack: RunningStack) -> None:
    tenant, customer = names("emu-files")
    pair_in_the_browser(stack, tenant, customer)

    out = succeeds(
        x3link(stack, "emulator", "files", tenant, "SEED", "--count", "2", "--size", "10", "--json")
    )
    notified = succeeds(x3link(stack, "emulator", "notify", tenant, "SEED"))

    made = json.loads(out)
    assert [item["name"] for item in made["files"]] == ["export-0001.csv", "export-0002.csv"]
    listed = stack.call("GET", f"/tenants/{tenant}/folders/SEED/files").json()["files"]
    assert sorted(item["name"] for item in listed) == ["export-0001.csv", "export-0002.csv"]
    assert {item["size"] for item in listed} == {10}
    found = re.search(r"Notification (\S+) sent; the app answered HTTP 200", notified)
    assert found, notified
    # signed as Sage signs it, checked by POST /notifications, its details read: FilesAvailable published
    entries = activity_of(stack, tenant, "files_available")
    assert [entry["notification_id"] for entry in entries] == [found.group(1)]
    assert entries[0]["folder"] == "SEED"


def test_a_shortened_refresh_lifetime_makes_the_keep_alive_refresh(stack: RunningStack) -> None:
    tenant, customer = names("emu-keepalive")
    pair_in_the_browser(stack, tenant, customer)

    succeeds(x3link(stack, "emulator", "tokens", "--refresh-lifetime", "2d"))
    try:
        succeeds(x3link(stack, "tenants", "refresh", tenant))  # its refresh token now expires in 2 days
        before = stack.call("GET", f"/tenants/{tenant}").json()
        time.sleep(1.1)  # refreshed_at counts whole seconds: the keep-alive's refresh must show as later
        invoked = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
    finally:
        succeeds(x3link(stack, "emulator", "tokens", "--refresh-lifetime", "30d"))

    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["refreshed"] >= 1
    after = stack.call("GET", f"/tenants/{tenant}").json()
    assert after["status"] == "active"
    assert after["refreshed_at"] > before["refreshed_at"]


def test_graphql_then_sages_429_and_a_revoked_grant(stack: RunningStack) -> None:
    tenant, customer = names("emu-graphql")
    pair_in_the_browser(stack, tenant, customer)
    query = {"query": "{ x3MasterData { product { query { totalCount edges { node { code } } } } } }"}

    answered = stack.call("POST", f"/tenants/{tenant}/folders/SEED/graphql", json_body=query)
    printed = succeeds(x3link(stack, "graphql", tenant, "SEED", query["query"]))
    invalid = x3link(stack, "graphql", tenant, "SEED", "{ x3MasterData { nothing } }")
    succeeds(x3link(stack, "emulator", "fail", "graphql", "--status", "429", "--retry-after", "60"))
    limited = stack.call("POST", f"/tenants/{tenant}/folders/SEED/graphql", json_body=query)
    succeeds(x3link(stack, "emulator", "revoke", customer))
    refused = x3link(stack, "tenants", "refresh", tenant)

    assert answered.status == 200, answered.body
    products = answered.json()["data"]["x3MasterData"]["product"]["query"]
    assert products["totalCount"] == 2 and products["edges"][0]["node"]["code"] == "IT001"
    assert json.loads(printed) == answered.json()
    assert invalid.returncode == 1 and "errors" in json.loads(invalid.stdout)  # Sage's 400, printed
    assert "Sage X3 refused the query (HTTP 400)" in invalid.stderr
    assert (limited.status, limited.json()["error"]) == (429, "quota_exceeded"), limited.body
    assert limited.headers["retry-after"] == "60"
    assert refused.returncode == 1, refused.stdout


def test_a_mistake_is_one_sentence_and_exit_1(stack: RunningStack) -> None:
    line = fails(x3link(stack, "emulator", "files", "https://x3.emu-nobody.example", "NOFOLDER"))

    assert "NOFOLDER" in line


def test_the_routes_that_can_fail_are_the_emulators_own(stack: RunningStack) -> None:
    listed = json.loads(succeeds(x3link(stack, "emulator", "faults", "--json")))
    unknown = x3link(stack, "emulator", "fail", "nowhere")
    succeeds(x3link(stack, "emulator", "fail", "datadelivery", "--status", "503", "--count", "3"))
    pending = succeeds(x3link(stack, "emulator", "faults"))
    succeeds(x3link(stack, "emulator", "clear"))
    cleared = succeeds(x3link(stack, "emulator", "faults"))

    assert {"folders", "datadelivery", "graphql", "refresh"} <= set(listed["routes"])
    assert unknown.returncode == 2 and "'nowhere' is not one of 'token'" in unknown.stderr
    assert "pending   the next 3 datadelivery request(s) answer 503" in pending
    assert "No failures pending." in cleared
