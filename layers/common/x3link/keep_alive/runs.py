"""What each keep-alive run queued and what the workers did with it, kept beside the pairings.

The scheduled run only queues; independent workers refresh. A run's item (`~run:<id>`, a key no tenant
can take) gathers both, so an operator (or `make invoke`) can read one report per run: the workers add
their counts once per batch, not once per pairing, and the item expires by itself after a few weeks.

The scheduled run's write also sets `run_log`, the one value every run shares: the pairings table's sparse
`by-run-start` index (`run_log`, `started_at`) holds the runs and nothing else, so GET /keep-alive/runs
reads them newest first with a Query, never a Scan of the pairings. Reads name only a run's attributes
(their role may read nothing else of the table), and a run's list entry leaves out its named failures.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Any: DynamoDB items, the JSON the runs listing answers, and a cursor's untrusted JSON.
from typing import TYPE_CHECKING, Any

from x3link.aws.dynamo_attrs import n_or_none, only, s, s_or_none, string_maps
from x3link.errors import BadRequest, RunNotFound
from x3link.refresh.outcomes import COUNTED
from x3link.tokens.model import iso
from x3link.web import cursors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RUN_PREFIX = "~run:"
# What a worker may report of one pairing, each counted once, when the pairing's handling is over.
OUTCOMES = tuple(outcome.value for outcome in COUNTED)
KEPT_FAILURES = 50  # a run's report names at most this many failures; the counts cover them all
KEPT_SECONDS = 30 * 86400
RUN_LOG, RUN_INDEX = "keep-alive", "by-run-start"
COUNTS = ("queued", "deferred", "rescued", *OUTCOMES)
# Every attribute a run's item may hold: what its readers name, and all their role may read.
RUN_ATTRIBUTES = ("tenant", "run_log", "started_at", *COUNTS, "failures")
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
_NUMBER = re.compile(r"\d{1,12}(\.\d{1,20})?")
_BAD_CURSOR = "cursor is not one that this listing handed out."


@dataclass
class RunReport:
    run: str
    queued: int = 0
    deferred: int = 0  # due, but not queued: the run ran out of time or SQS refused; the next run queues them
    rescued: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    started_at: float | None = None

    @property
    def pending(self) -> int:
        """Queued pairings no worker has finished (waiting, retried, or never to be: docs/keep-alive.md)."""
        return max(0, self.queued - sum(self.counts.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "queued": self.queued,
            **{outcome: self.counts.get(outcome, 0) for outcome in OUTCOMES},
            "pending": self.pending,
            "rescued": self.rescued,
            "deferred": self.deferred,
            "failures": self.failures,
        }

    def view(self, *, with_failures: bool = True) -> dict[str, Any]:
        """What GET /keep-alive/runs answers of a run: its id and start, its counts (and failures)."""
        shown = {key: value for key, value in self.as_dict().items() if key != "run"}
        if not with_failures:
            del shown["failures"]
        return {"id": self.run, "started_at": iso(self.started_at), **shown}


def _report(run: str, item: dict[str, Any]) -> RunReport:
    def number(name: str) -> int:
        return int(n_or_none(item, name) or 0)

    return RunReport(
        run=run,
        queued=number("queued"),
        deferred=number("deferred"),
        rescued=number("rescued"),
        counts={outcome: number(outcome) for outcome in OUTCOMES if outcome in item},
        failures=string_maps(item, "failures"),
        started_at=n_or_none(item, "started_at"),
    )


def _projection(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "ProjectionExpression": ", ".join(f"#{name}" for name in names),
        "ExpressionAttributeNames": {f"#{name}": name for name in names},
    }


class RunLedger:
    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._table = table_name
        self._db = dynamodb

    def _key(self, run: str) -> dict[str, Any]:
        return {"tenant": {"S": f"{RUN_PREFIX}{run}"}}

    def opened(self, run: str, *, queued: int, deferred: int, rescued: int, at: float) -> None:
        """The scheduled run's part: set, not added, so workers that finished first keep their counts."""
        values: dict[str, dict[str, str]] = {
            name: {"N": repr(value)}
            for name, value in (("queued", queued), ("deferred", deferred), ("rescued", rescued))
        }
        values["started_at"] = {"N": repr(at)}
        values["purge_at"] = {"N": str(int(at + KEPT_SECONDS))}
        values["run_log"] = {"S": RUN_LOG}  # lists the run in the by-run-start index
        self._db.update_item(
            TableName=self._table,
            Key=self._key(run),
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
            ExpressionAttributeNames={f"#{name}": name for name in values},
            ExpressionAttributeValues={f":{name}": value for name, value in values.items()},
        )

    def add(self, run: str, counts: Mapping[str, int], failures: Iterable[dict[str, str]] = ()) -> None:
        """A worker's part: its batch's counts in one write; failures named while the report has room."""
        counts = {
            outcome: count for outcome, count in Counter(counts).items() if count and outcome in OUTCOMES
        }
        if counts:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(run),
                UpdateExpression="ADD " + ", ".join(f"#{name} :{name}" for name in counts),
                ExpressionAttributeNames={f"#{name}": name for name in counts},
                ExpressionAttributeValues={f":{name}": {"N": str(count)} for name, count in counts.items()},
            )
        named = [{"M": {key: {"S": str(value)} for key, value in entry.items()}} for entry in failures]
        if not named:
            return
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(run),
                UpdateExpression="SET #failures = list_append(if_not_exists(#failures, :none), :named)",
                ConditionExpression="attribute_not_exists(#failures) OR size(#failures) < :room",
                ExpressionAttributeNames={"#failures": "failures"},
                ExpressionAttributeValues={
                    ":none": {"L": []},
                    ":named": {"L": named[:KEPT_FAILURES]},
                    ":room": {"N": str(KEPT_FAILURES)},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return  # the report names enough failures already; the counts have these

    def report(self, run: str) -> RunReport | None:
        item = self._db.get_item(
            TableName=self._table, Key=self._key(run), ConsistentRead=True, **_projection(RUN_ATTRIBUTES)
        ).get("Item")
        if item is None:
            return None
        return _report(run, item)

    def recent(
        self, limit: int, start: dict[str, Any] | None = None
    ) -> tuple[list[RunReport], dict[str, Any] | None]:
        """Up to `limit` runs, newest first, from the index, with where the next page starts."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": RUN_INDEX,
            "KeyConditionExpression": "#run_log = :log",
            "ExpressionAttributeValues": {":log": {"S": RUN_LOG}},
            "ScanIndexForward": False,
            "Limit": limit,
            **_projection(("tenant", "started_at", *COUNTS)),
        }
        params["ExpressionAttributeNames"]["#run_log"] = "run_log"
        if start is not None:
            params["ExclusiveStartKey"] = start
        answer = self._db.query(**params)
        reports = [
            _report(s(item, "tenant").removeprefix(RUN_PREFIX), item)
            for item in answer.get("Items", [])
            if (s_or_none(item, "tenant") or "").startswith(RUN_PREFIX)
        ]
        return reports, answer.get("LastEvaluatedKey")


def run_id(raw: str) -> str:
    """A `{id}` path parameter: what a run's id looks like, else no such run (never a key of another kind)."""
    if not RUN_ID.fullmatch(raw):
        raise RunNotFound("No keep-alive run has this id.")
    return raw


def page_limit(raw: str | None) -> int:
    return cursors.page_limit(raw, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def _start_key(cursor: str) -> dict[str, Any]:
    """The index key a cursor holds: a run's item key and its start, each as DynamoDB spells its type."""
    key = cursors.decode(cursor, _BAD_CURSOR)
    if not isinstance(key, dict) or set(key) != {"tenant", "run_log", "started_at"}:
        raise BadRequest(_BAD_CURSOR)
    tenant, started = only(key["tenant"], "S"), only(key["started_at"], "N")
    if not isinstance(tenant, str):
        raise BadRequest(_BAD_CURSOR)
    if not (tenant.startswith(RUN_PREFIX) and RUN_ID.fullmatch(tenant.removeprefix(RUN_PREFIX))):
        raise BadRequest(_BAD_CURSOR)
    if key["run_log"] != {"S": RUN_LOG}:
        raise BadRequest(_BAD_CURSOR)
    if not (started is not None and _NUMBER.fullmatch(str(started))):
        raise BadRequest(_BAD_CURSOR)
    return key


def list_runs(ledger: RunLedger, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of runs, newest first: `{"runs": [...], "cursor"?}` (each without its named failures)."""
    reports, last = ledger.recent(limit, _start_key(cursor) if cursor is not None else None)
    page: dict[str, Any] = {"runs": [report.view(with_failures=False) for report in reports]}
    if last is not None:
        page["cursor"] = cursors.encode(last)
    return page
