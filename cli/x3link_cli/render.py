"""What each command shows: rich tables built from the API's JSON, and the JSON itself for `--json`.
Pure: each function returns what to print, so tests render it into a string."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.table import Table

# A pairing's fields in the order a person reads them (GET /tenants/{tenant}).
PAIRING_FIELDS = (
    "tenant",
    "customer",
    "status",
    "scope",
    "folders",
    "endpoint",
    "paired_at",
    "refreshed_at",
    "access_token_expires_at",
    "refresh_token_expires_at",
    "next_attempt_at",
    "last_refusal",
)
# A keep-alive run's report (GET /keep-alive/runs/{id}), its counts in the order the run made them.
RUN_FIELDS = (
    "id",
    "started_at",
    "queued",
    "refreshed",
    "suspended",
    "expired",
    "held",
    "failed",
    "skipped",
    "pending",
    "rescued",
    "deferred",
)
UPLOAD_FIELDS = (
    "tracking_id",
    "filename",
    "folder",
    "status",
    "status_message",
    "created_at",
    "last_status_update",
)


def as_json(value: Any) -> str:
    """The API's JSON as it is, indented for a reader and still one document for `jq`."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def text(value: Any) -> str:
    """One cell: lists joined, a refusal as a sentence, nothing as `-`."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(text(item) for item in value)
    if isinstance(value, dict):
        if {"at", "status", "message"} <= value.keys():
            return f"{value['at']}: Sage answered {value['status']}, {value['message']}"
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def size(count: Any) -> str:
    """A byte count for people: 1023 B, 1.5 KiB, 12.0 MiB."""
    if not isinstance(count, int):
        return text(count)
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def tenants_table(tenants: Sequence[Mapping[str, Any]]) -> Table:
    """`x3link tenants`: one row a pairing; when it was last refreshed, and when a suspended one is next
    tried."""
    table = _table("TENANT", "CUSTOMER", "STATUS", "FOLDERS", "REFRESHED", "NEXT ATTEMPT")
    for pairing in tenants:
        table.add_row(
            text(pairing.get("tenant")),
            text(pairing.get("customer")),
            text(pairing.get("status")),
            text(pairing.get("folders")),
            text(pairing.get("refreshed_at") or pairing.get("paired_at")),
            text(pairing.get("next_attempt_at")),
        )
    return table


def no_tenants(status: str | None) -> str:
    return f"No {status} pairings." if status else "No pairings."


def fields_table(document: Mapping[str, Any], order: Sequence[str]) -> Table:
    """One document as FIELD / VALUE rows: the known fields in `order`, then any others the API added."""
    table = _table("FIELD", "VALUE")
    names = [name for name in order if name in document]
    names += [name for name in document if name not in order]
    for name in names:
        table.add_row(name, text(document[name]))
    return table


def folders_table(answer: Mapping[str, Any]) -> Table:
    """`x3link folders`: Sage X3's `{"folders": [{"name", "$urls"}]}`, one row a folder."""
    table = _table("FOLDER")
    for folder in answer.get("folders") or []:
        table.add_row(text(folder.get("name") if isinstance(folder, dict) else folder))
    return table


def files_table(files: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("NAME", "SIZE", "LAST MODIFIED")
    for item in files:
        table.add_row(text(item.get("name")), size(item.get("size")), text(item.get("last_modified")))
    return table


def runs_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    """`x3link runs`: one row a keep-alive run, newest first, with what its workers did."""
    table = _table("RUN", "STARTED", "QUEUED", "REFRESHED", "SUSPENDED", "EXPIRED", "FAILED", "PENDING")
    for run in runs:
        table.add_row(
            *(
                text(run.get(name))
                for name in ("id", "started_at", "queued", "refreshed", "suspended", "expired", "failed")
            ),
            text(run.get("pending")),
        )
    return table


def failures_table(failures: Sequence[Mapping[str, Any]]) -> Table:
    """The failures a run's report names: which pairing, and why."""
    table = _table("TENANT", "ERROR")
    for failure in failures:
        table.add_row(text(failure.get("tenant")), text(failure.get("error")))
    return table


def links_table(links: Sequence[Mapping[str, Any]]) -> Table:
    """`x3link links`: one row a pairing link, newest first; its id is what `links revoke` takes."""
    table = _table("ID", "TENANT", "CUSTOMER", "STATUS", "CREATED", "EXPIRES")
    for link in links:
        table.add_row(
            *(
                text(link.get(name))
                for name in ("id", "tenant", "customer", "status", "created_at", "expires_at")
            )
        )
    return table


def activity_table(entries: Sequence[Mapping[str, Any]]) -> Table:
    """`x3link activity`: one row an entry, newest first; what else an entry says goes in DETAIL."""
    table = _table("AT", "TYPE", "REASON", "DETAIL")
    for entry in entries:
        rest = {name: value for name, value in entry.items() if name not in ("at", "type", "reason")}
        detail = "; ".join(f"{name}: {text(value)}" for name, value in rest.items())
        table.add_row(
            text(entry.get("at")), text(entry.get("type")), text(entry.get("reason")), detail or "-"
        )
    return table
