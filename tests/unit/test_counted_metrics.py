"""Every handler publishes what it counted and says nothing when it counted nothing: no
"No application metrics to publish" warning for a user to learn to ignore."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from x3link.counted_metrics import log_counted_metrics

ROOT = Path(__file__).parents[2]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    shared = Metrics(namespace="Test", service="test")
    shared.clear_metrics()
    yield shared
    shared.clear_metrics()


def test_an_invocation_that_counts_nothing_publishes_nothing_and_warns_of_nothing(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = log_counted_metrics(metrics)(lambda event: {"seen": event})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert handler("e") == {"seen": "e"}
    assert capsys.readouterr().out == ""


def test_what_an_invocation_counts_is_published_once_even_when_it_raises(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    @log_counted_metrics(metrics)
    def handler(event: str) -> None:
        metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
        raise ValueError(event)

    with pytest.raises(ValueError, match="bad"):
        handler("bad")
    published = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [blob["Refused"] for blob in published] == [[1.0]]  # one blob, one value
    assert metrics.metric_set == {}


def test_a_metric_counted_by_another_metrics_object_of_the_process_is_published_with_the_handlers(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    @log_counted_metrics(metrics)
    def handler() -> None:
        Metrics().add_metric(name="EndpointRefused", unit=MetricUnit.Count, value=1)

    handler()
    assert json.loads(capsys.readouterr().out)["EndpointRefused"] == [1.0]


@pytest.mark.parametrize("app", sorted(ROOT.glob("functions/*/app.py")), ids=lambda path: path.parent.name)
def test_no_handler_flushes_an_empty_metric_set(app: Path) -> None:
    source = app.read_text()
    assert not re.search(r"@\w+\.log_metrics\b", source), "use x3link.counted_metrics.log_counted_metrics"
    if "Metrics()" in source:
        assert "@log_counted_metrics(metrics)" in source
