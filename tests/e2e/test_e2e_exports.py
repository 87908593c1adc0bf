"""Exports delivered to the bucket, from outside: on a stack started as `make run` starts it, a folder's
sync switched on over HTTP, Sage X3 (an emulator of this process) exports files and notifies, and each file
appears in the embedded AWS's delivery bucket with Sage's bytes, is gone from Sage, and `make run` prints
one `FileDelivered` line for it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import ACCESS_KEY, HOST, REGION, SECRET_KEY, RunningStack, names

pytestmark = pytest.mark.e2e

WAIT = 60.0


@pytest.fixture
def notifying(stack: RunningStack, sage: Emulator) -> Iterator[Emulator]:
    """The emulator, with the stack's notification URL entered as the App Registry's."""
    sage.configure(notification_url=f"{stack.api_url}/notifications")
    yield sage


def s3(stack: RunningStack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{stack.moto_port}",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def delivery_bucket(client: Any) -> str:
    """The contract's way to find it: the only bucket of the embedded AWS whose name contains `delivery`."""
    (bucket,) = [b["Name"] for b in client.list_buckets()["Buckets"] if "delivery" in b["Name"]]
    return str(bucket)


def delivered_lines(stack: RunningStack, tenant: str) -> list[str]:
    prefix = f"event  FileDelivered  tenant={tenant}  folder=SEED  filename="
    printed = [line.rstrip("\n") for line in (stack.stdout.lines if stack.stdout else [])]
    return [line for line in printed if line.startswith(prefix)]


def delivered_entries(stack: RunningStack, tenant: str) -> list[tuple[str, str, int]]:
    answer = stack.call("GET", f"/tenants/{tenant}/activity")
    assert answer.status == 200, answer.body
    entries = answer.json()["activity"]
    return [(e["filename"], e["key"], e["size"]) for e in entries if e["type"] == "file_delivered"]


def test_a_notified_export_lands_in_the_bucket_once_and_is_deleted_at_sage(
    stack: RunningStack, notifying: Emulator
) -> None:
    tenant, customer = names("exports")
    stack.pair(tenant, customer, folders=["SEED"])
    switched = stack.call("PUT", f"/tenants/{tenant}/folders/SEED/sync", json_body={"enabled": True})
    assert switched.status == 200, switched.body
    files = {"orders.csv": b"order;amount\nSO1;10\n", "stock.csv": b"item;qty\nIT1;4\n"}

    notifying.deliver(customer, "SEED", files)

    client = s3(stack)
    bucket = delivery_bucket(client)
    deadline = time.monotonic() + WAIT
    while len(delivered_lines(stack, tenant)) < len(files) or notifying.delivery_files(customer, "SEED"):
        assert time.monotonic() < deadline, f"the exports were not delivered:\n{stack.output}"
        time.sleep(0.2)
    for name, content in files.items():
        body = client.get_object(Bucket=bucket, Key=f"{tenant}/SEED/{name}")["Body"].read()
        assert body == content
    assert sorted(delivered_lines(stack, tenant)) == sorted(
        f"event  FileDelivered  tenant={tenant}  folder=SEED  filename={name}  key={tenant}/SEED/{name}  "
        f"size={len(content)}"
        for name, content in files.items()
    )
    sync = stack.call("GET", f"/tenants/{tenant}/folders/SEED/sync").json()
    assert (sync["enabled"], sync["files_delivered"], sync["last_error"]) == (True, 2, None)
    # The tenant's activity lists each file once, written from the delivery table's stream within seconds.
    deadline = time.monotonic() + WAIT
    while len(listed := delivered_entries(stack, tenant)) < len(files):
        assert time.monotonic() < deadline, f"the activity never listed the files: {listed}"
        time.sleep(0.5)
    assert sorted(listed) == sorted((name, f"{tenant}/SEED/{name}", len(c)) for name, c in files.items())
