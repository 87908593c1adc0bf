"""Fixtures shared by the unit tests that follow every AWS call of the functions."""

from __future__ import annotations

import pytest

from local import template as tpl
from local.aws_resources import Stack
from tests.support.aws_faults import AwsCalls

LOAD_HANDLER = tpl.load_handler


@pytest.fixture
def calls(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    """Every AWS call through wiring's clients, with the function that made it; each function runs in an
    execution environment of its own, as on Lambda."""
    recorded = AwsCalls.install(monkeypatch)
    monkeypatch.setattr(tpl, "load_handler", recorded.handler_loader(LOAD_HANDLER, own_environments=True))
    return recorded
