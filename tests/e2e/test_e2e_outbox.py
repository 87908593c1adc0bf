"""The outbox over the wire, on a stack started as `make run` starts it: a person drops files into the only
bucket of the embedded AWS whose name says `outbox`, and `make run` prints one line per FileIngested and
FileRejected; `GET /tenants/{tenant}/uploads` lists them, and the tenant's activity their outcomes."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import REGION, RunningStack, names

pytestmark = pytest.mark.e2e

# The worker reads Sage's tracking 10 s after the upload (OUTBOX_TRACK_SECONDS), the emulator's scan takes
# 2 s: a minute leaves a loaded machine room.
DEADLINE_SECONDS = 60.0


def _s3(stack: RunningStack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{stack.moto_port}",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _wait_for_line(stack: RunningStack, line: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while line not in stack.output:
        assert time.monotonic() < deadline, f"`{line}` never came:\n{stack.output}"
        time.sleep(0.25)


def test_files_dropped_into_the_outbox_are_sent_or_refused_and_announced(
    stack: RunningStack, sage: Emulator
) -> None:
    tenant, customer = names("outboxe2e")
    stack.pair(tenant, customer, folders=["SEED"])
    s3 = _s3(stack)
    (bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"] if "outbox" in b["Name"]]

    s3.put_object(Bucket=bucket, Key=f"{tenant}/SEED/prices.csv", Body=b"item;price\nIT001;9.90\n")
    s3.put_object(Bucket=bucket, Key=f"{tenant}/SEED/logo.png", Body=b"\x89PNG\r\n\x1a\n\x00\x00\x00\r")

    _wait_for_line(
        stack, f"event  FileRejected  tenant={tenant}  reason=not_text  folder=SEED  filename=logo.png"
    )
    _wait_for_line(stack, f"event  FileIngested  tenant={tenant}  folder=SEED  filename=prices.csv")
    assert sage.ingested(customer, "SEED") == {"prices.csv": b"item;price\nIT001;9.90\n"}
    answer = stack.call("GET", f"/tenants/{tenant}/uploads")
    assert answer.status == 200, answer.body
    outcomes = {u["filename"]: (u["source"], u["outcome"]) for u in answer.json()["uploads"]}
    assert outcomes == {"prices.csv": ("outbox", "ingested"), "logo.png": ("outbox", "rejected")}
    # The app's objects stay where it wrote them.
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{tenant}/")["Contents"]}
    assert keys == {f"{tenant}/SEED/prices.csv", f"{tenant}/SEED/logo.png"}
    # The tenant's activity lists both outcomes, written from the uploads table's stream within seconds.
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(files := _file_entries(stack, tenant)) < 2:
        assert time.monotonic() < deadline, f"the activity never listed both files: {files}"
        time.sleep(0.5)
    assert files == {"prices.csv": ("file_ingested", None), "logo.png": ("file_rejected", "not_text")}


def _file_entries(stack: RunningStack, tenant: str) -> dict[str, tuple[str, str | None]]:
    answer = stack.call("GET", f"/tenants/{tenant}/activity")
    assert answer.status == 200, answer.body
    entries = answer.json()["activity"]
    return {e["filename"]: (e["type"], e.get("reason")) for e in entries if e["type"].startswith("file_")}
