"""Fixtures of the component tests: the template's resources inside moto's `mock_aws`, a Sage X3 emulator
on loopback, and every AWS call the functions make."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from local import aws_resources
from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.aws_faults import AwsCalls
from tests.support.botocore_models import share_parsed_models
from tests.support.keeper import untune
from tests.support.sage import CLIENT_ID, CLIENT_SECRET
from x3link import wiring

LOAD_HANDLER = tpl.load_handler
# The clients that create each test's stack, made once per process: moto answers them under whichever
# `mock_aws` is active, and nothing of them outlives a test but the client objects themselves.
_STACK_CLIENTS: dict[str, Any] = {}
_MODELS = pytest.MonkeyPatch()  # botocore's parsed models, shared for the whole run; undone at its end


def pytest_configure(config: pytest.Config) -> None:
    """Test modules import handlers as they are collected (Powertools binds its log stream at import), and a
    handler's import builds its clients as Lambda's init does, which reads the function's environment. So
    every function's environment, as the template resolves it, is there before collection; the `stack`
    fixture sets it again, for its own resources, in each test.

    From here on, botocore's model files are parsed once per process (tests/support/botocore_models.py)."""
    import os

    share_parsed_models(_MODELS)
    with mock_aws():
        collected = aws_resources.create(
            {"SageX3Url": "http://127.0.0.1:9/v1"},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        for function in tpl.functions():
            for key, value in collected.function_environment(function).items():
                os.environ.setdefault(key, value)


def pytest_unconfigure(config: pytest.Config) -> None:
    _MODELS.undo()


@pytest.fixture
def calls(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    """Every AWS call through wiring's clients, with the function that made it; each function runs in an
    execution environment of its own, as on Lambda."""
    recorded = AwsCalls.install(monkeypatch)
    monkeypatch.setattr(tpl, "load_handler", recorded.handler_loader(LOAD_HANDLER, own_environments=True))
    return recorded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs moto serialised races threads against each other: under `make test` it runs alone,
    after the parallel run, so another worker's load never decides its outcome."""
    for item in items:
        if "atomic_moto_dynamodb" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.serial)


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
            clients=_STACK_CLIENTS,
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
        untune()
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
