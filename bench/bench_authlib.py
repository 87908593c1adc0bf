"""`make bench`'s "one refresh, ours against Authlib's": the keeper's refresh and its keep-alive refresh
against the plainest refresh a team could write instead (Authlib's `OAuth2Session.refresh_token`, then one
conditional DynamoDB write: the least Authlib would need to keep two refreshes of one grant from racing).

Two figures. Timed on moto: both run in one process, against one emulator and one moto, their rounds
interleaved, so whatever slows this machine slows both alike; but moto answers DynamoDB in Python, so those
timings mostly measure moto. Modelled (bench/latency_model.py): the calls each side made, counted at the moto
and emulator boundaries, priced at documented latencies, plus each side's own CPU time in process (moto's
share taken out).

Run alone: `PYTHONPATH=layers/common .venv/bin/python -m bench.bench_authlib`.
"""

from __future__ import annotations

from bench import env  # noqa: F401  # first: the environment must be set before boto3 is imported

# isort: split

import json
import os
import statistics
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import authlib  # type: ignore[import-untyped]
import boto3
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from moto import mock_aws

from bench import latency_model
from bench.counting import aws_calls, by_service, moto_cpu
from local import aws_resources
from local.sagex3_emulator import Emulator

WARM_UP_ROUNDS = 3
TIMELINE_ROUNDS = 5  # rounds whose AWS calls wait their documented latencies: what ran beside what
AUTHLIB_TENANT = "authlib"
AUTHLIB_CUSTOMER = "https://x3.authlib.example"
AUTHLIB_ITEM = "authlib-bench"
KEEP_ALIVE_TENANT = "keep-alive"
KEEP_ALIVE_CUSTOMER = "https://x3.keep-alive.example"
JSON_AUTH = "client_secret_json"


def _client_secret_json(
    client: Any, method: str, uri: str, headers: MutableMapping[str, str], body: str | bytes | None
) -> tuple[str, MutableMapping[str, str], bytes]:
    """Authlib's client authentication, re-encoding its form as the JSON body Sage's token endpoint reads.

    Why here: the emulator's token endpoint (local/sagex3_emulator/tokens.py) reads only a JSON body, the one
    x3link's SageX3Client.token sends, and Authlib posts form fields whatever a `refresh_token_request`
    compliance hook returns (it form-decodes the body into `data=`). Its client auth runs last, on the
    prepared request, so it is the one place that can send JSON.
    """
    text = body.decode() if isinstance(body, bytes) else body or ""
    fields = dict(parse_qsl(text, keep_blank_values=True))
    fields.update(client_id=client.client_id, client_secret=client.client_secret)
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields).encode()


@dataclass
class Side:
    """One side's rounds: wall milliseconds, own CPU milliseconds (moto's taken out), calls per service."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    calls: list[dict[str, int]] = field(default_factory=list)
    overlapped_ms: list[float] = field(default_factory=list)

    def run(self, action: Callable[[], object], sage: Emulator, before: Callable[[], object] = list) -> None:
        """One round: `before` (untimed, uncounted) sets the caches up, then the action is measured. Its CPU:
        this thread's, and what its calls on other threads spent, less moto's answers on any thread."""
        before()
        sage.clear_requests()
        with aws_calls() as aws, moto_cpu() as moto:
            started, cpu = time.perf_counter(), time.thread_time()
            action()
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
        self.wall_ms.append(wall * 1000)
        self.cpu_ms.append((cpu + aws.other_threads_cpu_s - moto.cpu_s) * 1000)
        self.calls.append({**by_service(aws.counts), "sage": len(sage.requests)})

    def timeline(self, action: Callable[[], object], before: Callable[[], object] = list) -> None:
        """One round whose AWS calls each wait their documented latency first: how much of that latency
        ran beside another call (latency_model.overlapped_ms). Neither timed nor counted otherwise."""
        before()
        latencies = {name: latency.ms for name, latency in latency_model.LATENCIES.items()}
        with aws_calls(latencies) as aws:
            action()
        self.overlapped_ms.append(latency_model.overlapped_ms(aws.timeline))

    def summary(self) -> dict[str, Any]:
        """Medians, and the most calls any round made (rounds differ only when a cache lapses)."""
        services = sorted({name for calls in self.calls for name in calls})
        return {
            "moto_wall_ms": round(statistics.median(self.wall_ms), 2),
            "cpu_ms": round(statistics.median(self.cpu_ms), 2),
            "calls": {name: max(calls.get(name, 0) for calls in self.calls) for name in services},
            # The least any timeline round ran beside: what the refresh can count on.
            "overlapped_ms": round(min(self.overlapped_ms, default=0.0), 2),
        }


def refresh_against_authlib(rounds: int = 41) -> dict[str, Any]:
    """Ours (refresh, keep-alive refresh) and Authlib's, timed on moto and modelled.

    Returns {"ours", "keep_alive", "authlib"} (each: moto_wall_ms, cpu_ms, calls), the moto ratio of our
    refresh to Authlib's ("ratio", as before), and "modelled": the keep-alive refresh against Authlib's with
    the documented latencies, its ratio and goal; "authlib_version".
    """
    from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair
    from x3link import wiring
    from x3link.budget import Budget
    from x3link.keep_alive.fan_out import KEY_BATCH
    from x3link.sage.oauth import token_url

    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sage, mock_aws():
        stack = aws_resources.create(
            {"SageX3Url": sage.base_url(), "RefreshSpreadSeconds": "0"},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        os.environ.update(stack.function_environment("RefreshWorkerFunction"), POWERTOOLS_LOG_LEVEL="ERROR")
        wiring.reset()
        pair(sage, "bench")
        # Tokens that stay due (3 days left, the keep-alive's window is 7): every round refreshes again.
        sage.configure(refresh_lifetime=3 * 86400)
        pair(sage, KEEP_ALIVE_TENANT, KEEP_ALIVE_CUSTOMER)
        pair(sage, AUTHLIB_TENANT, AUTHLIB_CUSTOMER)
        store, keeper = wiring.token_store(), wiring.token_keeper()
        window = wiring.settings().keep_alive_seconds

        def ours() -> None:
            """What bench/bench.py counts as one refresh: read the pairing, then lease, Sage, commit."""
            pairing = store.get("bench")
            assert pairing is not None
            keeper.refresh(pairing)

        def cold_data_keys() -> None:
            """A keep-alive meets a tenant every ~23 days, long after its data key left the cache (5 min)."""
            wiring.token_sealer().forget()

        order_key: dict[str, bytes] = {}

        def run_reads_the_data_key() -> None:
            """What the scheduled run tells the order (its one BatchGetItem per hundred due pairings, priced
            as the run's share), with the worker's data keys cold."""
            cold_data_keys()
            order_key.update(keeper.data_keys([KEEP_ALIVE_TENANT]))

        def warm_data_key() -> None:
            """Our plain refresh as measured before: the pairing's data key already open here."""
            pairing = store.get("bench")
            assert pairing is not None
            store.open(pairing)

        def keep_alive() -> None:
            """The worker's refresh of a due pairing, told its data key by the run: the lease (which reads
            it) with KMS's Decrypt beside it, Sage, the commit."""
            budget = Budget(finish_by=time.time() + 300)
            data_key = order_key.pop(KEEP_ALIVE_TENANT)
            outcome = keeper.keep_alive(KEEP_ALIVE_TENANT, window, budget, data_key=data_key)
            assert outcome == "refreshed", outcome

        # Authlib's side takes over the third pairing's grant once; from here only Authlib spends it.
        seed = store.get(AUTHLIB_TENANT)
        assert seed is not None
        opened = store.open(seed)
        assert opened.refresh_token is not None
        refresh_token = opened.refresh_token
        url = token_url(opened.endpoint)
        # Built once and reused between rounds, as a real app would keep it.
        session = OAuth2Session(
            CLIENT_ID,
            CLIENT_SECRET,
            token_endpoint=url,
            token_endpoint_auth_method=JSON_AUTH,
            default_timeout=10.0,
        )
        session.register_client_auth_method((JSON_AUTH, _client_secret_json))
        dynamodb: Any = boto3.client("dynamodb")
        table = stack.refs["PairingsTable"]

        def theirs() -> None:
            """Authlib's refresh, then one write of the new tokens, on condition that the row still holds the
            refresh token just spent (or is new): two refreshes of one grant cannot both land."""
            nonlocal refresh_token
            spent = refresh_token
            token = session.refresh_token(url, refresh_token=spent)
            refresh_token = token["refresh_token"]
            dynamodb.put_item(
                TableName=table,
                Item={
                    "tenant": {"S": AUTHLIB_ITEM},
                    "access_token": {"S": token["access_token"]},
                    "refresh_token": {"S": refresh_token},
                    "access_token_expires_at": {"N": str(token.get("expires_at", 0))},
                },
                ConditionExpression="attribute_not_exists(tenant) OR refresh_token = :spent",
                ExpressionAttributeValues={":spent": {"S": spent}},
            )

        for _ in range(WARM_UP_ROUNDS):
            ours()
            run_reads_the_data_key()
            keep_alive()
            theirs()
        sides = {"ours": Side(), "keep_alive": Side(), "authlib": Side()}
        for _ in range(rounds):  # interleaved, so noise hits all alike
            sides["ours"].run(ours, sage, before=warm_data_key)
            sides["keep_alive"].run(keep_alive, sage, before=run_reads_the_data_key)
            sides["authlib"].run(theirs, sage)
        for _ in range(TIMELINE_ROUNDS):
            sides["keep_alive"].timeline(keep_alive, before=run_reads_the_data_key)
            sides["authlib"].timeline(theirs)
        session.close()
    report: dict[str, Any] = {name: side.summary() for name, side in sides.items()}
    ours_ms, authlib_ms = report["ours"]["moto_wall_ms"], report["authlib"]["moto_wall_ms"]
    report.update(
        ours_ms=ours_ms,
        authlib_ms=authlib_ms,
        ratio=round(ours_ms / authlib_ms, 2),
        rounds=rounds,
        authlib_version=str(authlib.__version__),
        modelled=latency_model.keep_alive_against_authlib(
            report["keep_alive"]["calls"],
            report["keep_alive"]["cpu_ms"],
            report["authlib"]["calls"],
            report["authlib"]["cpu_ms"],
            overlapped=report["keep_alive"]["overlapped_ms"],  # Authlib's side makes one call: none
            run_share={"dynamodb": 1 / KEY_BATCH},
        ),
    )
    return report


if __name__ == "__main__":
    print(json.dumps(refresh_against_authlib(), indent=2))
