"""The keep-alive through `make invoke`, against a running `make run` (a stack of this module only, so the
run sees exactly the pairings set up here): the schedule queues, `make run`'s queue trigger runs the worker,
and `make invoke` prints the run's report once the queue is drained."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from local.sagex3_emulator import Emulator
from local.template import ROOT
from tests.e2e.conftest import RunningStack, names, subprocess_env

pytestmark = pytest.mark.e2e

DAY = 86400.0


def make_invoke(stack: RunningStack, function: str, event: str) -> subprocess.CompletedProcess[str]:
    """`make invoke FUNCTION=... EVENT=...` from a shell whose LOCAL_STACK_FILE names the running stack."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.fail(
            "`make invoke` runs .venv/bin/python, and .venv does not exist: run `make test` (or `make venv`)"
        )
    return subprocess.run(
        ["make", "invoke", f"FUNCTION={function}", f"EVENT={event}"],
        cwd=ROOT,
        env=subprocess_env(LOCAL_STACK_FILE=str(stack.stack_file)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_sweep_refreshes_the_due_suspends_the_refused_and_leaves_the_fresh(
    stack: RunningStack, sage: Emulator
) -> None:
    due, due_customer = names("sweep-due")
    dead, dead_customer = names("sweep-dead")
    fresh, fresh_customer = names("sweep-fresh")
    sage.configure(refresh_lifetime=3 * DAY)  # inside the 7-day keep-alive window
    stack.pair(due, due_customer, folders=["SEED"])
    stack.pair(dead, dead_customer, folders=["SEED"])
    sage.revoke(dead_customer)
    sage.configure(refresh_lifetime=30.4 * DAY)
    stack.pair(fresh, fresh_customer, folders=["X3"])
    before = {tenant: stack.call("GET", f"/tenants/{tenant}").json() for tenant in (due, dead, fresh)}
    assert all(pairing["status"] == "active" for pairing in before.values())
    due_token, fresh_token = (
        sage.current_refresh_token(due_customer),
        sage.current_refresh_token(fresh_customer),
    )
    sage.clear_requests()

    invoked = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")

    assert invoked.returncode == 0, invoked.stderr
    summary = json.loads(invoked.stdout)  # stdout is the result and nothing else
    assert isinstance(summary, dict)
    # The refused one is suspended once another pairing's refresh proved the app healthy: the due one
    # refreshed by the run before it, or a pairing the refused one's judgement asked as its witness (then
    # the due one may be found fresh by its own turn, and the fresh one refreshed once).
    assert (summary["suspended"], summary["expired"], summary["failed"]) == (1, 0, 0), summary
    assert summary["refreshed"] in (0, 1), summary
    # The schedule queued both due ones, and `make invoke` printed the report once the worker was done.
    assert (summary["queued"], summary["pending"]) == (2, 0), summary
    assert 3 <= sage.count("refresh") <= 4

    after = {tenant: stack.call("GET", f"/tenants/{tenant}").json() for tenant in (due, dead, fresh)}
    assert after[due]["status"] == "active"
    assert after[due]["refreshed_at"] is not None
    assert at(after[due]["refresh_token_expires_at"]) > datetime.now(UTC) + timedelta(days=29)
    assert sage.current_refresh_token(due_customer) not in (None, due_token)
    assert after[dead]["status"] == "suspended"
    assert after[fresh]["status"] == "active"
    fresh_now = sage.current_refresh_token(fresh_customer)
    assert fresh_now == fresh_token or after[fresh]["refreshed_at"] is not None  # kept, or a witness's

    # What the keep-alive did is what the API then serves.
    assert stack.call("GET", f"/tenants/{due}/folders").status == 200
    assert stack.call("GET", f"/tenants/{dead}/folders").json()["error"] == "pairing_suspended"

    # A second run right away refreshes nothing: the suspended one's next attempt is later.
    again = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["refreshed"], summary["expired"], summary["failed"]) == (0, 0, 0), summary


def test_sages_429_slows_the_keep_alive_down_and_fails_nothing(stack: RunningStack, sage: Emulator) -> None:
    tenants = [names(f"throttled-{n}") for n in range(3)]
    sage.configure(refresh_lifetime=3 * DAY)
    for tenant, customer in tenants:
        stack.pair(tenant, customer, folders=["SEED"])
    sage.configure(refresh_lifetime=30.4 * DAY)
    sage.fail_next("refresh", status=429, retry_after=1)
    sage.clear_requests()

    invoked = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")

    assert invoked.returncode == 0, invoked.stderr
    summary = json.loads(invoked.stdout)
    assert (summary["refreshed"], summary["failed"], summary["pending"]) == (3, 0, 0), summary
    refreshes = [entry["time"] for entry in sage.requests if entry["route"] == "refresh"]
    assert len(refreshes) == 4  # the 429, then each pairing once, all after Sage's Retry-After
    assert min(refreshes[1:]) - refreshes[0] >= 1.0
    for tenant, _customer in tenants:
        view = stack.call("GET", f"/tenants/{tenant}").json()
        assert view["status"] == "active"
        assert at(view["refresh_token_expires_at"]) > datetime.now(UTC) + timedelta(days=29)
