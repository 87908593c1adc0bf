"""GET /keep-alive/runs and GET /keep-alive/runs/{id}: every run newest first, read from the runs' index,
and one run's report; never a pairing."""

from __future__ import annotations

from typing import Any

import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call
from tests.support.aws_faults import AwsCalls
from tests.support.keeper import sweep
from tests.support.sage import pair
from x3link import wiring
from x3link.web import cursors

ACME = "https://x3.acme.example"
DAY = 86400.0
START = 1_780_000_000.0  # 2026-05-28T20:26:40Z

for _function in ("PairingStartFunction", "CallbackFunction", "KeepAliveRunsFunction"):
    tpl.load_handler(_function)


def _run(number: int) -> str:
    return f"2026052{number}T000000Z-0000000{number}"


def _open_runs(count: int) -> list[str]:
    """`count` runs, a day apart, each with what its workers did; the oldest first."""
    ledger = wiring.run_ledger()
    runs = [_run(number) for number in range(count)]
    for number, run in enumerate(runs):
        ledger.opened(run, queued=10 + number, deferred=0, rescued=0, at=START + number * DAY)
        ledger.add(run, {"refreshed": 9 + number, "failed": 1}, [{"tenant": f"t{number}", "error": "boom"}])
    return runs


def _listed(query: dict[str, str] | None = None) -> dict[str, Any]:
    answer = call("GET", "/keep-alive/runs", query=query)
    assert answer.status == 200, answer.body
    listed: dict[str, Any] = answer.json
    return listed


def test_runs_are_listed_newest_first_a_page_at_a_time_with_their_counts(stack: Stack) -> None:
    runs = _open_runs(5)

    first = _listed({"limit": "2"})
    second = _listed({"limit": "2", "cursor": first["cursor"]})
    third = _listed({"limit": "2", "cursor": second["cursor"]})

    pages = [first["runs"], second["runs"], third["runs"]]
    assert [[run["id"] for run in page] for page in pages] == [
        [runs[4], runs[3]],
        [runs[2], runs[1]],
        [runs[0]],
    ]
    assert "cursor" not in third
    newest = first["runs"][0]
    assert newest["started_at"] == "2026-06-01T20:26:40Z"
    assert (newest["queued"], newest["refreshed"], newest["failed"], newest["pending"]) == (14, 13, 1, 0)
    assert all("failures" not in run for page in pages for run in page)  # the one run's report names them


def test_one_run_shows_its_report_with_the_failures_it_names(stack: Stack) -> None:
    runs = _open_runs(2)

    answer = call("GET", f"/keep-alive/runs/{runs[1]}")

    assert answer.status == 200, answer.body
    assert answer.json["id"] == runs[1]
    assert answer.json["started_at"] == "2026-05-29T20:26:40Z"
    assert (answer.json["queued"], answer.json["refreshed"], answer.json["failed"]) == (11, 10, 1)
    assert answer.json["failures"] == [{"tenant": "t1", "error": "boom"}]


def test_a_real_run_is_listed_and_no_pairing_ever_is(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    for tenant in ("acme", "globex"):
        pair(sage, tenant, f"https://x3.{tenant}.example")

    report = sweep()

    (listed,) = _listed()["runs"]
    assert listed["id"] == report["run"]
    assert (listed["queued"], listed["refreshed"]) == (2, 2)
    assert call("GET", f"/keep-alive/runs/{report['run']}").json["refreshed"] == 2


@pytest.mark.parametrize("run", ["20260101T000000Z-00000000", "acme", "~run:20260101T000000Z-00000000"])
def test_an_unknown_or_malformed_run_is_not_found(stack: Stack, run: str) -> None:
    pair_like = call("GET", f"/keep-alive/runs/{run}")

    assert pair_like.status == 404
    assert pair_like.json == {"error": "unknown_run", "message": "No keep-alive run has this id."}


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "not a cursor"},
        {
            "cursor": cursors.encode(
                {"tenant": {"S": "acme"}, "run_log": {"S": "keep-alive"}, "started_at": {"N": "1"}}
            )
        },
        {"cursor": cursors.encode({"tenant": {"S": "~run:x"}})},
        {"limit": "0"},
        {"limit": "many"},
    ],
)
def test_a_bad_cursor_or_limit_is_a_bad_request(stack: Stack, query: dict[str, str]) -> None:
    _open_runs(1)

    answer = call("GET", "/keep-alive/runs", query=query)

    assert answer.status == 400
    assert answer.json["error"] == "bad_request"


def test_listing_never_scans_and_reads_only_run_attributes(stack: Stack, calls: AwsCalls) -> None:
    runs = _open_runs(3)

    _listed()
    call("GET", f"/keep-alive/runs/{runs[0]}")

    made = [c for c in calls.calls if c.function == "KeepAliveRunsFunction"]
    assert {c.operation for c in made} == {"Query", "GetItem"}
    assert all("ProjectionExpression" in c.params for c in made)
