"""What an operator reads and steers through the running local stack (`make run`, a stack of this module
only): the keep-alive runs, listed and shown; the pairing links, listed and revoked; a pairing's activity,
written by `make run`'s stream trigger."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack, names
from tests.e2e.test_e2e_keep_alive import make_invoke

pytestmark = pytest.mark.e2e

DAY = 86400.0


def test_a_keep_alive_run_is_listed_newest_first_and_shown_with_its_report(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("runs-due")
    sage.configure(refresh_lifetime=3 * DAY)
    stack.pair(tenant, customer, folders=["SEED"])
    sage.configure(refresh_lifetime=30.4 * DAY)
    first = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
    second = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    runs = [json.loads(first.stdout)["run"], json.loads(second.stdout)["run"]]

    listed = stack.call("GET", "/keep-alive/runs?limit=1")
    assert listed.status == 200, listed.text
    page = listed.json()
    rest = stack.call("GET", f"/keep-alive/runs?cursor={page['cursor']}").json()

    assert [run["id"] for run in page["runs"] + rest["runs"]][:2] == runs[::-1]
    shown = stack.call("GET", f"/keep-alive/runs/{runs[0]}")
    assert shown.status == 200
    assert (shown.json()["queued"], shown.json()["refreshed"], shown.json()["failures"]) == (1, 1, [])
    missing = stack.call("GET", "/keep-alive/runs/20200101T000000Z-00000000")
    assert (missing.status, missing.json()["error"]) == (404, "unknown_run")


def test_a_pairing_link_is_listed_without_its_secret_revoked_and_then_never_opens(
    stack: RunningStack,
) -> None:
    waiting_tenant, customer = names("links-waiting")
    opened_tenant, opened_customer = names("links-opened")
    waiting = stack.start_pairing(waiting_tenant, customer)
    opened = stack.start_pairing(opened_tenant, opened_customer)
    stack.open_link(opened)

    listed = stack.call("GET", "/pairings")
    assert listed.status == 200, listed.text
    links = {link["tenant"]: link for link in listed.json()["pairings"]}
    assert (links[waiting_tenant]["status"], links[opened_tenant]["status"]) == ("pending", "opened")
    assert stack.link_path(waiting).rsplit("/", 1)[1] not in listed.text

    assert stack.call("DELETE", f"/pairings/{links[waiting_tenant]['id']}").status == 204
    refused = stack.call("DELETE", f"/pairings/{links[opened_tenant]['id']}")
    assert (refused.status, refused.json()["error"]) == (409, "link_used")
    assert stack.call("GET", stack.link_path(waiting), signed=False).status == 404
    revoked = stack.call("GET", "/pairings?status=revoked").json()["pairings"]
    assert [link["tenant"] for link in revoked] == [waiting_tenant]


def test_a_pairings_activity_is_written_from_the_stream_newest_first(stack: RunningStack) -> None:
    tenant, customer = names("activity")
    stack.pair(tenant, customer, folders=["SEED"])
    assert stack.call("POST", f"/tenants/{tenant}/refresh").status == 200

    deadline = time.monotonic() + 30
    activity: list[dict[str, Any]] = []
    while len(activity) < 2:
        assert time.monotonic() < deadline, f"the activity never came: {activity}\n{stack.output}"
        time.sleep(0.2)
        answer = stack.call("GET", f"/tenants/{tenant}/activity")
        assert answer.status == 200, answer.text
        activity = answer.json()["activity"]

    assert [(entry["type"], entry.get("outcome")) for entry in activity] == [
        ("refresh", "refreshed"),
        ("paired", None),
    ]
    assert "token" not in answer.text
