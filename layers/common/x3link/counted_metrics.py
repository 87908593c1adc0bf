"""A handler publishes the metrics it counted, and nothing (no empty EMF blob, no warning) if none.

Powertools' `log_metrics` warns "No application metrics to publish" on every invocation that added no metric:
a refused request, a batch with nothing to do. Those are normal here, so a warning on each would be one to
learn to ignore. `flush_metrics`, which Powertools documents for flushing by hand, is called only when the
invocation counted something; the metric set is the one every `Metrics()` of the process shares, so what
the layer counts (a refused endpoint, a lost lease) is published with the handler's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

P = ParamSpec("P")
R = TypeVar("R")


def log_counted_metrics(metrics: Metrics) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`@metrics.log_metrics` without the empty flush: what was counted is published when the handler ends,
    whether it returned or raised."""

    def decorate(handler: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(handler)
        def publishing(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            finally:
                if metrics.metric_set:
                    metrics.flush_metrics()

        return publishing

    return decorate


def count(name: str) -> None:
    """Count one of something the layer saw (a lost token set, a suspended pairing): published with the
    handler's own metrics. Powertools' metrics are loaded on the first count, not on import."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name=name, unit=MetricUnit.Count, value=1)
