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


def test_each_handler_runs_beside_its_floor_and_the_order_alternates_by_round() -> None:
    calls: list[str] = []

    def run(code: str) -> bench_init.Timing:
        calls.append(code)
        return bench_init.Timing(wall_s=len(calls) * 2.0, cpu_s=len(calls) * 1.0)

    paired = bench_init.paired_runs({"A": ("a", "floor-a"), "B": ("b", "floor-b")}, 3, run)
    assert calls == [
        *("a", "floor-a", "b", "floor-b"),
        *("floor-a", "a", "floor-b", "b"),
        *("a", "floor-a", "b", "floor-b"),
    ]
    cpu, wall = paired["A"]
    assert cpu == bench_init.Paired(handler_s=(1.0, 6.0, 9.0), floor_s=(2.0, 5.0, 10.0))
    assert wall == bench_init.Paired(handler_s=(2.0, 12.0, 18.0), floor_s=(4.0, 10.0, 20.0))


def test_the_figure_is_the_median_of_per_pair_ratios_so_a_burst_on_one_side_does_not_move_it() -> None:
    """Three rounds at 1.0; in two others a burst slowed everything (both sides alike, ratio still 1.0) or
    only the handler (2.0): the median ratio stays 1.0, where the ratio of the medians would not."""
    paired = bench_init.Paired(
        handler_s=(0.30, 0.31, 0.30, 0.90, 0.60),
        floor_s=(0.30, 0.31, 0.30, 0.90, 0.30),
    )
    row = paired.summary()
    assert row["ratio"] == 1.0
    assert (row["ratio_least"], row["ratio_most"]) == (1.0, 2.0)
    assert row["ratio_p25"] == 1.0 and row["ratio_p75"] == 1.0
    assert row["ratio_of_minimums"] == 1.0
    assert (row["init_ms"], row["floor_ms"]) == (310.0, 300.0)


def test_the_spread_shows_when_the_pairs_disagree() -> None:
    row = bench_init.Paired(handler_s=(1.0, 1.1, 1.2, 1.3), floor_s=(1.0, 1.0, 1.0, 1.0)).summary()
    assert row["ratio"] == 1.15
    assert row["ratio_p25"] == pytest.approx(1.075) and row["ratio_p75"] == pytest.approx(1.225)
