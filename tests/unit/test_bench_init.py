"""bench/bench_init.py: its table of what each handler builds matches template.yaml and the handlers, and
the code it times is what it says."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench import bench_init
from bench.bench_init import HANDLERS, HandlerInit, floor_source, handler_init_code
from local import template as tpl

WIRING_CALL = re.compile(r"\bwiring\.([a-z_]+)\(")


def test_the_table_names_every_function_of_the_template_and_no_other() -> None:
    assert set(HANDLERS) == set(tpl.functions())


@pytest.mark.parametrize("logical_id", sorted(tpl.functions()))
def test_each_row_names_the_wiring_its_handler_calls(logical_id: str) -> None:
    """The services its requests ask for (`wiring.prime(...)`, which builds them at import under SnapStart,
    is not one: init measured on demand builds them through these calls instead)."""
    source = (tpl.functions()[logical_id].code_uri / "app.py").read_text()
    assert set(HANDLERS[logical_id].factories) == set(WIRING_CALL.findall(source)) - {"prime"}


@pytest.mark.parametrize("logical_id", sorted(HANDLERS))
def test_each_row_holds_every_client_its_wiring_builds_at_once(
    logical_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clients built while the factories run (lazy ones, built on first use, the table adds by hand)."""
    from x3link import wiring

    for name, value in bench_init.INIT_ENV.items():
        monkeypatch.setenv(name, value)
    built: list[str] = []

    def recording(service: str) -> Any:
        built.append(service)
        return object()

    wiring.reset()
    try:
        with monkeypatch.context() as patched:
            patched.setattr(wiring, "aws_client", recording)
            for factory in HANDLERS[logical_id].factories:
                getattr(wiring, bench_init.NETWORK_FACTORIES.get(factory, factory))()
    finally:
        wiring.reset()
    assert set(built) <= set(HANDLERS[logical_id].clients)


def test_the_init_builds_the_clients_but_never_reads_the_secret() -> None:
    code = handler_init_code(HandlerInit(("client_credentials", "token_keeper"), ("dynamodb", "kms")))
    assert code == (
        "import app; from x3link import wiring; wiring.credentials_source(); wiring.token_keeper(); "
        "wiring.aws_client('dynamodb'); wiring.aws_client('kms')"
    )


def test_the_floor_is_one_rest_route_and_the_same_clients() -> None:
    source = floor_source(("dynamodb", "sqs"))
    compile(source, "floor.py", "exec")
    assert "APIGatewayRestResolver()" in source
    assert source.count("@app.") == 1
    assert source.count(".client(") == 2
    assert "client('dynamodb', config=CONFIG)" in source and "client('sqs', config=CONFIG)" in source
    assert "max_attempts': 2}, connect_timeout=1, read_timeout=3" in source


def test_the_floors_config_is_the_wirings() -> None:
    """The floor's clients must cost what ours do: the same botocore Config as x3link.wiring.aws_client."""
    import inspect

    from x3link import wiring

    wiring_source = inspect.getsource(wiring.aws_client)
    assert bench_init.CLIENT_CONFIG.replace("'", '"') in wiring_source
