"""`make bench`: what one refresh and one folder query cost in requests, and what each handler's cold
import costs against `import boto3` alone, measured in the same run (ratios, not lone absolute times)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_SERVICE_NAME="bench",
    POWERTOOLS_METRICS_NAMESPACE="Bench",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
)

from moto import mock_aws

from local import aws_resources
from local import template as tpl
from local.sagex3_emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
IMPORT_RUNS = 7


@contextmanager
def counted_aws() -> Iterator[Counter[str]]:
    """Count every AWS API call made by any boto3 client while the block runs."""
    import botocore.client

    calls: Counter[str] = Counter()
    # botocore-stubs leave out the private _make_api_call that every client call goes through.
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[attr-defined]


def request_costs() -> list[tuple[str, Counter[str], int]]:
    from tests.support.api import call
    from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair
    from x3link import wiring

    rows = []
    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sage, mock_aws():
        stack = aws_resources.create(
            {"SageX3Url": sage.base_url()},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        os.environ.update(stack.function_environment("FoldersFunction"), POWERTOOLS_LOG_LEVEL="ERROR")
        wiring.reset()
        pair(sage, "bench")
        assert call("GET", "/tenants/bench/folders").status == 200  # warm: clients, secret cache, pools

        def measure(label: str, action: Callable[[], object]) -> None:
            sage.clear_requests()
            with counted_aws() as calls:
                action()
            rows.append((label, calls, len(sage.requests)))

        measure("folder query (warm, token fresh)", lambda: call("GET", "/tenants/bench/folders"))
        sage.put_delivery_file("https://x3.acme.example", "SEED", "bench.csv", b"1;2\n")
        files = "/tenants/bench/folders/SEED/files"
        measure("file list (warm, token fresh)", lambda: call("GET", files))
        measure("download link (warm)", lambda: call("GET", f"{files}/bench.csv"))
        upload = {"filename": "bench-in.csv"}
        measure(
            "upload link (warm)",
            lambda: call("POST", "/tenants/bench/folders/SEED/uploads", json_body=upload),
        )
        keeper = wiring.token_keeper()

        def refresh() -> None:
            pairing = wiring.token_store().get("bench")
            assert pairing is not None
            keeper.refresh(pairing)

        measure("refresh (read, lease, commit)", refresh)
        sage.invalidate_access_tokens()
        measure("folder query after a Sage 401", lambda: call("GET", "/tenants/bench/folders"))
        measure("keep-alive sweep, nothing due", lambda: keeper.sweep(0))
    return rows


def _import_seconds(code: str, path: list[str]) -> float:
    """Median wall time of a fresh interpreter running `code`, less an empty interpreter's."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "bench",
    }
    script = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(IMPORT_RUNS)
    ]
    return statistics.median(samples)


def import_costs() -> tuple[float, list[tuple[str, float]]]:
    layer = str(ROOT / "layers/common")
    baseline = _import_seconds("import boto3", [])
    rows = []
    for logical_id, spec in sorted(tpl.functions().items()):
        rows.append((logical_id, _import_seconds("import app", [str(spec.code_uri), layer])))
    return baseline, rows


def main() -> None:
    print("Requests per operation, warm (AWS calls by API, Sage X3 requests):")
    for label, calls, sage_requests in request_costs():
        aws = ", ".join(f"{name} x{count}" for name, count in sorted(calls.items())) or "none"
        dynamo = sum(count for name, count in calls.items() if name.startswith("dynamodb:"))
        kms = sum(count for name, count in calls.items() if name.startswith("kms:"))
        print(f"  {label:38} DynamoDB {dynamo}  KMS {kms}  Sage X3 {sage_requests}  [{aws}]")
    baseline, rows = import_costs()
    print(
        f"\nCold import, median of {IMPORT_RUNS} fresh interpreters, against `import boto3` = 1.00 "
        f"({baseline * 1000:.0f} ms on this machine):"
    )
    for logical_id, seconds in rows:
        print(f"  {logical_id:24} {seconds / baseline:5.2f} x boto3")


if __name__ == "__main__":
    main()
