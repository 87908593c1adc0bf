"""What each keep-alive run queued and what the workers did with it, kept beside the pairings.

The scheduled run only queues; independent workers refresh. A run's item (`~run:<id>`, a key no tenant
can take) gathers both, so an operator (or `make invoke`) can read one report per run: the workers add
their counts once per batch, not once per pairing, and the item expires by itself after a few weeks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_PREFIX = "~run:"
# What a worker may report of one pairing, each counted once, when the pairing's handling is over.
OUTCOMES = ("refreshed", "suspended", "expired", "held", "failed", "skipped")
KEPT_FAILURES = 50  # a run's report names at most this many failures; the counts cover them all
KEPT_SECONDS = 30 * 86400


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


class RunLedger:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._db = dynamodb

    def _key(self, run: str) -> dict[str, Any]:
        return {"tenant": {"S": f"{RUN_PREFIX}{run}"}}

    def opened(self, run: str, *, queued: int, deferred: int, rescued: int, at: float) -> None:
        """The scheduled run's part: set, not added, so workers that finished first keep their counts."""
        values = {"queued": queued, "deferred": deferred, "rescued": rescued, "started_at": at}
        values["purge_at"] = int(at + KEPT_SECONDS)
        self._db.update_item(
            TableName=self._table,
            Key=self._key(run),
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
            ExpressionAttributeNames={f"#{name}": name for name in values},
            ExpressionAttributeValues={f":{name}": {"N": repr(value)} for name, value in values.items()},
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
        item = self._db.get_item(TableName=self._table, Key=self._key(run), ConsistentRead=True).get("Item")
        if item is None:
            return None

        def number(name: str) -> int:
            return int(float(item.get(name, {}).get("N", "0")))

        return RunReport(
            run=run,
            queued=number("queued"),
            deferred=number("deferred"),
            rescued=number("rescued"),
            counts={outcome: number(outcome) for outcome in OUTCOMES if outcome in item},
            failures=[
                {key: value["S"] for key, value in entry["M"].items()}
                for entry in item.get("failures", {}).get("L", [])
            ],
            started_at=float(item["started_at"]["N"]) if "started_at" in item else None,
        )
