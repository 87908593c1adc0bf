"""The outbox's pure decisions (x3link/outbox/rules.py): which objects an S3 event names, where a key points,
the rules a file must meet before Sage hears of it, what Sage's tracking status means, and the backoff; and
the uploads table's change that announces an outcome (x3link/events/lifecycle.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from x3link.events import lifecycle
from x3link.outbox.rules import (
    MAX_BYTES,
    Reason,
    Verdict,
    backoff,
    is_text,
    judge,
    objects_of,
    placed,
    tags_with,
    vet_name,
    vet_size,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import TagTypeDef


def _event(key: str, name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventName": name,
                "eventTime": "2026-01-01T13:05:00.000Z",
                "s3": {"bucket": {"name": "outbox-x"}, "object": {"key": key, **obj}},
            }
        ]
    }


def test_an_s3_event_names_its_created_objects_with_their_keys_decoded() -> None:
    (found,) = objects_of(_event("acme%2FSEED%2Fmy+orders%C3%A9.csv", size=12, versionId="v1"))
    assert (found.key, found.size, found.version, found.identity) == (
        "acme/SEED/my ordersé.csv",
        12,
        "v1",
        "v1",
    )
    (unversioned,) = objects_of(_event("acme/SEED/a.csv", sequencer="0055AED6"))
    assert (unversioned.version, unversioned.identity) == ("null", "seq:0055AED6")
    assert objects_of({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []
    assert objects_of(_event("acme/SEED/a.csv", name="ObjectRemoved:Delete")) == []
    assert objects_of("not an event") == []


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("acme/SEED/items.csv", ("acme", "SEED", "items.csv")),
        ("acme/items.csv", None),
        ("acme/SEED/sub/items.csv", None),
        ("-bad/SEED/items.csv", None),
    ],
)
def test_a_key_points_at_a_tenant_a_folder_and_a_file(key: str, where: tuple[str, str, str] | None) -> None:
    assert placed(key) == where


def test_names_sizes_and_text_are_checked_before_sage_hears_of_a_file() -> None:
    assert vet_name("SEED", "items.csv") is None
    assert vet_name("SE ED", "items.csv") is Reason.BAD_NAME
    assert vet_name("SEED", "..") is Reason.BAD_NAME
    assert vet_size(MAX_BYTES) is None and vet_size(None) is None
    assert vet_size(351_000_000) is Reason.TOO_LARGE
    assert is_text(b"code;name\nC001;Acme\r\n") and is_text("prénom;ville\n".encode("latin-1"))
    assert is_text("ü".encode()[:1])  # a prefix cut inside a character is still text
    assert is_text("a;b\n".encode("utf-16"))  # with its byte order mark
    assert is_text(b"")
    assert not is_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert not is_text(bytes(range(1, 32)) * 10)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("awaiting_upload", Verdict.PENDING),
        ("awaiting_scan", Verdict.PENDING),
        ("integrated", Verdict.INGESTED),
        ("Completed", Verdict.INGESTED),
        ("virus_detected", Verdict.REJECTED),
        ("integration_failed", Verdict.REJECTED),
        ("rejected", Verdict.REJECTED),
        ("in_progress", Verdict.PENDING),  # a status Sage never listed is followed, not guessed final
    ],
)
def test_sages_tracking_status_is_judged(status: str, verdict: Verdict) -> None:
    assert judge(status) is verdict


def test_the_backoff_doubles_up_to_sqs_longest_delay() -> None:
    assert [backoff(n, 10) for n in range(8)] == [10, 20, 40, 80, 160, 320, 640, 900]
    assert backoff(50, 10) == 900 and backoff(3, 0) == 0


def test_the_outcome_tags_replace_earlier_ones_and_keep_the_apps() -> None:
    app: list[TagTypeDef] = [{"Key": f"app{n}", "Value": "x"} for n in range(9)]
    earlier: list[TagTypeDef] = [{"Key": "x3link-outcome", "Value": "rejected"}]
    tags = tags_with(app + earlier, {"outcome": "ingested", "status": "integrated"})
    assert len(tags) == 10
    assert tags[-2:] == [
        {"Key": "x3link-outcome", "Value": "ingested"},
        {"Key": "x3link-status", "Value": "integrated"},
    ]


def _image(**fields: str) -> dict[str, dict[str, str]]:
    base = {"tenant": "acme", "upload_id": "2026-01-01T13:05:00.000Z#outbox#ab", "source": "outbox"}
    return {name: {"S": value} for name, value in {**base, **fields}.items()}


def test_an_outbox_outcome_is_announced_once_and_an_api_upload_never() -> None:
    sent = _image(status="uploaded", folder="SEED", filename="a.csv", bucket="b", key="acme/SEED/a.csv")
    done = {**sent, **_image(status="integrated", outcome="ingested")}
    (event,) = lifecycle.events_for("MODIFY", sent, done)
    assert event.detail_type == "FileIngested" and event.detail["status"] == "integrated"
    assert event.id == "upload:acme:2026-01-01T13:05:00.000Z#outbox#ab"
    assert lifecycle.events_for("MODIFY", done, done) == []  # a later change of a concluded upload
    refused = {**sent, **_image(status="rejected", outcome="rejected", reason="not_text")}
    (rejected,) = lifecycle.events_for("MODIFY", sent, refused)
    assert rejected.detail["reason"] == "not_text" and "status" not in rejected.detail
    api = {**done, **_image(source="api")}
    assert lifecycle.events_for("INSERT", None, api) == []
    assert "token" not in json.dumps(event.detail).lower()
