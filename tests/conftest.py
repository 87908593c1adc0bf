"""Fixtures every suite shares: fake AWS credentials set before any client exists, the template's
resources inside moto's `mock_aws`, and a Sage X3 emulator on loopback."""

from __future__ import annotations

import os

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Read when a Powertools Logger is created: layer modules may be imported before any fixture runs.
    "POWERTOOLS_SERVICE_NAME": "sage-x3-link",
    "POWERTOOLS_METRICS_NAMESPACE": "SageX3Link",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from aws_lambda_powertools.utilities import parameters  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.dynamodb.responses import DynamoHandler  # noqa: E402

from local import aws_resources  # noqa: E402
from local.aws_resources import Stack  # noqa: E402
from local.sagex3_emulator import Emulator  # noqa: E402
from tests.support.sage import CLIENT_ID, CLIENT_SECRET  # noqa: E402
from x3link import wiring  # noqa: E402


@pytest.fixture
def sage() -> Iterator[Emulator]:
    """A fresh Sage X3 with two regions: eu-prod is the configured gateway, us-prod an allowed other one."""
    with Emulator(
        regions=("eu-prod", "us-prod"), client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as emulator:
        yield emulator


@pytest.fixture
def stack(sage: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The template's tables, secret, queues and bus in moto, with the functions' environment applied."""
    with mock_aws():
        created = aws_resources.create(
            {
                "SageX3Url": sage.base_url("eu-prod"),
                "SageX3AllowedEndpoints": sage.base_url("us-prod"),
                "RefreshSpreadSeconds": "0",
            },
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        for function in (
            "PairingStartFunction",
            "CallbackFunction",
            "FoldersFunction",
            "TokenRefreshFunction",
            "RefreshWorkerFunction",
        ):
            for key, value in created.function_environment(function).items():
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("SAGE_X3_TIMEOUT_SECONDS", "2")
        monkeypatch.setenv("REFRESH_RETRY_SECONDS", "0")  # a failed refresh's retry comes at once
        wiring.reset()
        parameters.clear_caches()
        yield created
        wiring.reset()
        parameters.clear_caches()


@pytest.fixture
def atomic_moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DynamoDB applies a conditional write atomically and reads an item whole; moto checks then writes
    with no lock, and copies an item into its answer while another thread may be changing it. Serialise
    moto's DynamoDB requests, answer included, so concurrency tests exercise the app, not moto's races."""
    lock = threading.RLock()
    for name in (
        "get_item",
        "batch_get_item",
        "query",
        "scan",
        "put_item",
        "update_item",
        "delete_item",
        "transact_get_items",
        "transact_write_items",
    ):
        original = getattr(DynamoHandler, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoHandler, name, locked)
    yield
