"""Every handler says, in its own code, never to log its event and to clear its state between invocations
(what the handlers actually write: tests/component/test_no_secrets_leak.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from local import template as tpl


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_every_handler_says_never_to_log_its_event_and_to_clear_its_state(logical_id: str) -> None:
    """Said explicitly on each handler: the environment's POWERTOOLS_LOGGER_LOG_EVENT is never consulted."""
    spec = tpl.functions()[logical_id]
    module, name = spec.handler.rsplit(".", 1)
    tree = ast.parse(Path(spec.code_uri, f"{module}.py").read_text())
    handler = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    options = [
        {keyword.arg: keyword.value for keyword in decorator.keywords}
        for decorator in handler.decorator_list
        if isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "inject_lambda_context"
    ]
    assert len(options) == 1, "the handler injects its Lambda context into the logger once"
    for option in ("log_event", "clear_state"):
        assert option in options[0], option
    assert ast.literal_eval(options[0]["log_event"]) is False
    assert ast.literal_eval(options[0]["clear_state"]) is True
