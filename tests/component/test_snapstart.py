"""SnapStart: each handler's init builds its clients and services and leaves nothing secret in memory for
the snapshot; after a restore the caches a request filled (data keys, client credentials, breaker views)
are empty again, and the next request still works."""

from __future__ import annotations

import gc
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from types import FunctionType, ModuleType
from typing import Any

import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call
from tests.support.sage import CLIENT_SECRET, pair
from x3link import snapshot, wiring
from x3link.refresh.breaker import BreakerView
from x3link.sage.oauth import ClientCredentials, TokenSet
from x3link.tokens.model import Pairing
from x3link.tokens.sealing import DataKeyCache, encrypted_data_key

# What wiring caches per execution environment, SDK clients aside: the services init may leave behind.
SERVICES: tuple[Callable[[], Any], ...] = (
    wiring.sage_client,
    wiring.credentials_source,
    wiring.app_breaker,
    wiring.token_sealer,
    wiring.token_store,
    wiring.pairing_records,
    wiring.pairing_states,
    wiring.pairing_service,
    wiring.token_rescue,
    wiring.event_publisher,
    wiring.notification_inbox,
    wiring.token_keeper,
    wiring.refresh_queue,
    wiring.run_ledger,
    wiring.keep_alive_dispatcher,
    wiring.keep_alive_worker,
    wiring.activity_log,
)
# The SDK's and the HTTP client's insides: they hold no secret of ours, and are large.
OPAQUE = {"botocore", "boto3", "urllib3", "s3transfer"}


def _cached(build: Callable[..., Any]) -> bool:
    return bool(build.cache_info().currsize)  # type: ignore[attr-defined]


def _built() -> list[str]:
    return [build.__name__ for build in SERVICES if _cached(build)]


def _reachable() -> Iterator[Any]:
    """Every object reachable from the services wiring built (attributes, containers, closures' cells)."""
    todo: list[Any] = [build() for build in SERVICES if _cached(build)]
    seen: set[int] = set()
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, (type, ModuleType, int, float, bool)) or item is None:
            continue
        seen.add(id(item))
        if type(item).__module__.split(".")[0] in OPAQUE:
            continue
        yield item
        if isinstance(item, FunctionType):
            todo.extend(
                cell.cell_contents for cell in item.__closure__ or () if cell.cell_contents is not None
            )
            continue
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        for name in getattr(type(item), "__slots__", ()):
            todo.append(getattr(item, name, None))
        todo.extend(getattr(item, "__dict__", {}).values())


def _secrets_in_memory() -> list[str]:
    """What must never go into a snapshot nor outlive a restore: data keys, client credentials, tokens."""
    found = []
    for item in _reachable():
        if isinstance(item, DataKeyCache) and len(item):
            found.append(f"{len(item)} data key(s)")
        elif isinstance(item, ClientCredentials) or (isinstance(item, str) and CLIENT_SECRET in item):
            found.append("the client credentials")
        elif isinstance(item, (TokenSet, Pairing)):
            found.append(f"tokens ({type(item).__name__})")
    return found


def _breaker_views() -> int:
    """The breakers' views this environment keeps: another environment may have changed them since."""
    return sum(isinstance(item, BreakerView) for item in _reachable())


def _import_as_lambda(logical_id: str, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh execution environment's init, as SnapStart runs it when a version is published: the
    function's environment from the template, its handler's module imported anew."""
    wiring.reset()
    for key, value in stack.function_environment(logical_id).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    spec = tpl.functions()[logical_id]
    module_name = spec.handler.rsplit(".", 1)[0]
    name = f"snapstart_{logical_id}"
    file_spec = importlib.util.spec_from_file_location(name, spec.code_uri / f"{module_name}.py")
    assert file_spec and file_spec.loader
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    try:
        file_spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_init_builds_what_the_handler_uses_and_the_snapshot_holds_no_secret(
    logical_id: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import_as_lambda(logical_id, stack, monkeypatch)
    built = _built()
    assert built, f"{logical_id}'s init built nothing: its first request would pay for its clients"
    assert _cached(wiring.aws_client), "no SDK client was built in init"
    snapshot.hooks.run_before_snapshot()
    assert _secrets_in_memory() == []
    assert _built() == built, "the hooks drop what is cached, not the services"


@pytest.mark.parametrize("logical_id", ["ExportSyncFunction", "FoldersFunction"])
def test_on_lambda_init_freezes_what_it_built_and_the_snapshot_still_holds_no_secret(
    logical_id: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Lambda's runtime API set, prime pauses the collector and freezes what init built: the collector
    runs again after init, and what the before-snapshot hook drops is dropped from frozen objects too."""
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    assert gc.isenabled()
    try:
        _import_as_lambda(logical_id, stack, monkeypatch)
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        snapshot.hooks.run_before_snapshot()
        assert _secrets_in_memory() == []
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_handler_imported_on_demand_builds_in_init_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On demand the first request would pay for the clients anyway: init builds them, as on SnapStart."""
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    wiring.reset()
    spec = tpl.functions()["FoldersFunction"]
    file_spec = importlib.util.spec_from_file_location("ondemand_folders", spec.code_uri / "app.py")
    assert file_spec and file_spec.loader
    file_spec.loader.exec_module(importlib.util.module_from_spec(file_spec))
    assert {"token_keeper", "sage_client"} <= set(_built())
    assert _cached(wiring.aws_client)


def test_after_a_restore_the_request_caches_are_empty_and_the_next_request_works(
    stack: Stack, sage: Emulator
) -> None:
    pair(sage, "acme", folders=["SEED"])
    assert call("GET", "/tenants/acme/folders").status == 200
    # What the requests left: the walk sees it (else the other assertions would prove nothing).
    left = _secrets_in_memory()
    assert "the client credentials" in left
    assert any("data key" in found for found in left)
    wiring.app_breaker().view()  # the default gateway's, as a refresh reads it
    assert _breaker_views() == 1

    snapshot.hooks.run_after_restore()
    assert _secrets_in_memory() == []
    assert _breaker_views() == 0

    answer = call("GET", "/tenants/acme/folders")
    assert answer.status == 200, answer.body
    assert answer.json["folders"]


def test_a_restore_drops_a_data_key_a_side_thread_was_opening(stack: Stack, sage: Emulator) -> None:
    """A keep-alive worker's Decrypt sent beside its lease (tokens/sealing.py `start_opening`) holds a
    plaintext key until its refresh claims it: a restore drops it with the cached ones."""
    pair(sage, "acme")
    store = wiring.token_store()
    pairing = store.get("acme")
    assert pairing is not None and pairing.sealed_tokens is not None
    key = encrypted_data_key(pairing.sealed_tokens)
    assert key is not None
    wiring.token_sealer().forget()
    sent: list[str] = []
    answered = threading.Event()
    kms = wiring.aws_client("kms")
    kms.meta.events.register("before-call.kms.Decrypt", lambda **_: sent.append("Decrypt"))
    kms.meta.events.register("after-call.kms.Decrypt", lambda **_: answered.set())

    store.start_opening("acme", key)
    assert answered.wait(10)
    snapshot.hooks.run_after_restore()
    store.open(pairing)

    assert sent == ["Decrypt", "Decrypt"]  # the key opened before the restore was not used after it


def test_a_restore_reseeds_the_keep_alives_jitter(stack: Stack) -> None:
    wiring._jitter.seed(7)
    from_the_snapshot = [wiring._jitter.random() for _ in range(3)]
    wiring._jitter.seed(7)
    snapshot.hooks.run_after_restore()
    assert [wiring._jitter.random() for _ in range(3)] != from_the_snapshot
