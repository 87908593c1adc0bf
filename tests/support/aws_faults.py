"""The AWS calls the functions make, seen and failed on the clients wiring builds.

`AwsCalls.install(monkeypatch)` wraps `wiring.aws_client`, so every client the layer builds (now, or after a
`wiring.reset()`, as on a cold start) gets two botocore hooks:

- `before-parameter-build`: records the call (service, operation, the caller's parameters, and which
  function's handler is running, see `running`), and raises an injected fault before anything is sent;
- `after-call`: for a fault of mode `applied_lost`, raises a read timeout after the real call was applied,
  as when AWS did the work and its answer never arrived.

An injected fault stands for what the caller sees once botocore's own retries are spent: it is raised
outside botocore's retry loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from x3link import wiring
from x3link.aws.clients import Service

ERROR, THROTTLE, TIMEOUT, APPLIED_LOST = "error", "throttle", "timeout", "applied_lost"
MODES = (ERROR, THROTTLE, TIMEOUT, APPLIED_LOST)

# What each service answers when it fails on its side, and when it throttles.
_ERROR_CODES = {
    "dynamodb": "InternalServerError",
    "kms": "KMSInternalException",
    "secretsmanager": "InternalServiceError",
    "sqs": "InternalFailure",
    "events": "InternalException",
}
_THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException"}


@dataclass
class Call:
    function: str | None  # the template function whose handler was running, None outside any
    service: str  # botocore's service name: dynamodb, sqs, kms, secretsmanager, events...
    operation: str  # UpdateItem, SendMessage...
    params: dict[str, Any]


@dataclass
class Fault:
    """The `nth` call that `matches` fails in `mode`, and the `times - 1` matching calls after it (None:
    every matching call from the nth on)."""

    service: str
    operation: str
    mode: str
    matches: Callable[[dict[str, Any]], bool] = lambda _params: True
    nth: int = 1
    times: int | None = 1
    seen: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")

    def takes(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if (service, operation) != (self.service, self.operation) or not self.matches(params):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times is not None and self.injected >= self.times):
            return False
        self.injected += 1
        return True


def client_error(client: Any, code: str, operation: str, status: int = 500) -> Exception:
    """The exception botocore raises for `code` (the modelled class when the service has one)."""
    response = {
        "Error": {"Code": code, "Message": "injected fault"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error_class = client.exceptions.from_code(code)
    exc: Exception = error_class(response, operation)
    return exc


class AwsCalls:
    """Every call made through wiring's clients, and the faults to inject into them."""

    _CONTEXT_KEY = "x3link-test-fault"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        # A context variable, not a thread's: work a function hands to its own threads with the context
        # (the sealer's side-thread Decrypt) is still that function's.
        self._running: contextvars.ContextVar[str | None] = contextvars.ContextVar("function", default=None)
        self._last_function: str | None = None
        self.cold_start_hooks: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ installing
    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
        """Hook every client `wiring.aws_client` builds from now on (clients already built are dropped)."""
        calls = cls()
        original = wiring.aws_client
        build = getattr(original, "__wrapped__", original)

        @cache
        def aws_client(service: Service) -> Any:
            return calls.attach(build(service))

        wiring.reset()
        monkeypatch.setattr(wiring, "aws_client", aws_client)
        return calls

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            operation = model.name
            with self._lock:
                self.calls.append(Call(self.running, service, operation, dict(params)))
                fault = next((f for f in self.faults if f.takes(service, operation, params)), None)
            if fault is None:
                return
            if fault.mode == APPLIED_LOST:
                context[self._CONTEXT_KEY] = fault
                return
            raise self._exception(client, fault)

        def after(context: dict[str, Any], **_: Any) -> None:
            fault = context.pop(self._CONTEXT_KEY, None)
            if fault is not None:
                raise ReadTimeoutError(endpoint_url=client.meta.endpoint_url)

        client.meta.events.register("before-parameter-build", before)
        client.meta.events.register("after-call", after)
        return client

    @staticmethod
    def _exception(client: Any, fault: Fault) -> Exception:
        if fault.mode == TIMEOUT:
            return ReadTimeoutError(endpoint_url=client.meta.endpoint_url)
        if fault.mode == THROTTLE:
            code = _THROTTLE_CODES.get(fault.service, "ThrottlingException")
            return client_error(client, code, fault.operation, status=400)
        return client_error(client, _ERROR_CODES.get(fault.service, "InternalFailure"), fault.operation)

    # ------------------------------------------------------------------ faults
    def fail(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        """No more faults: every later call goes through."""
        with self._lock:
            self.faults.clear()

    # ------------------------------------------------------------------ which function runs
    @property
    def running(self) -> str | None:
        return self._running.get()

    @contextlib.contextmanager
    def running_function(self, logical_id: str) -> Iterator[None]:
        token = self._running.set(logical_id)
        try:
            yield
        finally:
            self._running.reset(token)

    def handler_loader(
        self, load: Callable[[str], Callable[[dict[str, Any], Any], Any]], *, own_environments: bool = False
    ) -> Callable[[str], Callable[[dict[str, Any], Any], Any]]:
        """A `load_handler` whose handlers record which function made each call.

        `own_environments`: as on Lambda, each function runs in its own execution environment, so one
        function never finds what another cached (credentials, clients): whenever the function run is not
        the one run last, wiring starts cold, and then runs each of `cold_start_hooks` (a test's timing).
        """

        def load_handler(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
            handler = load(logical_id)

            def run(event: dict[str, Any], context: Any) -> Any:
                if own_environments and self._last_function != logical_id:
                    wiring.reset()
                    for hook in self.cold_start_hooks:
                        hook()
                self._last_function = logical_id
                with self.running_function(logical_id):
                    return handler(event, context)

            return run

        return load_handler

    def by_function(self) -> dict[str, list[Call]]:
        found: dict[str, list[Call]] = {}
        for call in self.calls:
            if call.function is not None:
                found.setdefault(call.function, []).append(call)
        return found


@dataclass
class Received:
    """The refresh tokens Sage's answers brought to the bundle (what it had in hand to keep)."""

    refresh_tokens: list[str] = field(default_factory=list)


def watch_token_answers(monkeypatch: pytest.MonkeyPatch) -> Received:
    """Record every refresh token the functions' Sage client receives from a token call."""
    from x3link.sage.client import SageX3Client

    received = Received()
    original = SageX3Client.token

    def token(self: SageX3Client, *args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = original(self, *args, **kwargs)
        if isinstance(answer, dict) and isinstance(answer.get("refresh_token"), str):
            received.refresh_tokens.append(answer["refresh_token"])
        return answer

    monkeypatch.setattr(SageX3Client, "token", token)
    return received
