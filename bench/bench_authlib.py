"""`make bench`'s "one refresh, ours against Authlib's": the keeper's refresh timed against the plainest
refresh a team could write instead (Authlib's `OAuth2Session.refresh_token`, then one DynamoDB write).

Why a ratio and not a time: both run in one process, against one emulator and one moto, with their rounds
interleaved, so whatever slows this machine slows both alike. The keeper does more per refresh (a read, a
fenced lease, sealed tokens, a fenced commit: 3 DynamoDB calls against Authlib's 1); the ratio shows what
that safety costs.

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
from typing import Any
from urllib.parse import parse_qsl

import authlib  # type: ignore[import-untyped]
import boto3
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from moto import mock_aws

from local import aws_resources
from local.sagex3_emulator import Emulator

WARM_UP_ROUNDS = 3
AUTHLIB_TENANT = "authlib"
AUTHLIB_CUSTOMER = "https://x3.authlib.example"
AUTHLIB_ITEM = "authlib-bench"
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


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def refresh_against_authlib(rounds: int = 41) -> dict[str, Any]:
    """The median milliseconds of one refresh, ours and Authlib's, and their ratio (goal: <= 1.0).

    Returns {"ours_ms", "authlib_ms", "ratio", "rounds", "authlib"} (the last is Authlib's version).
    """
    from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair
    from x3link import wiring
    from x3link.oauth import token_url

    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sage, mock_aws():
        stack = aws_resources.create(
            {"SageX3Url": sage.base_url()},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        os.environ.update(stack.function_environment("FoldersFunction"), POWERTOOLS_LOG_LEVEL="ERROR")
        wiring.reset()
        pair(sage, "bench")
        pair(sage, AUTHLIB_TENANT, AUTHLIB_CUSTOMER)
        store, keeper = wiring.token_store(), wiring.token_keeper()

        def ours() -> None:
            """What bench/bench.py counts as one refresh: read the pairing, then lease, Sage, commit."""
            pairing = store.get("bench")
            assert pairing is not None
            keeper.refresh(pairing)

        # Authlib's side takes over the second pairing's grant once; from here only Authlib spends it.
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
            """Authlib's refresh, then one plain write of the new tokens; Sage rotates the refresh token."""
            nonlocal refresh_token
            token = session.refresh_token(url, refresh_token=refresh_token)
            refresh_token = token["refresh_token"]
            dynamodb.put_item(
                TableName=table,
                Item={
                    "tenant": {"S": AUTHLIB_ITEM},
                    "access_token": {"S": token["access_token"]},
                    "refresh_token": {"S": refresh_token},
                    "access_token_expires_at": {"N": str(token.get("expires_at", 0))},
                },
            )

        for _ in range(WARM_UP_ROUNDS):
            ours()
            theirs()
        ours_ms: list[float] = []
        authlib_ms: list[float] = []
        for _ in range(rounds):  # interleaved, so noise hits both alike
            ours_ms.append(_timed(ours))
            authlib_ms.append(_timed(theirs))
        session.close()
    ours_median, authlib_median = statistics.median(ours_ms), statistics.median(authlib_ms)
    return {
        "ours_ms": round(ours_median, 2),
        "authlib_ms": round(authlib_median, 2),
        "ratio": round(ours_median / authlib_median, 2),
        "rounds": rounds,
        "authlib": str(authlib.__version__),
    }


if __name__ == "__main__":
    print(json.dumps(refresh_against_authlib(), indent=2))
