"""A labelled metric's children, each bound once for its label values."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """``metric.labels(*values)``, looked up in a dict after the first time.

    prometheus-client converts and checks the values and takes a lock on every ``labels()``
    call, about a microsecond each, several times a delivery. Every label value the service
    exports is bounded (an allowlist, a cap that folds the rest into 'other', or a fixed set),
    so this dict is too. A child removed from its metric must not be looked up here.
    """

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._bound: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._bound.get(values)
        if child is None:
            child = self._bound[values] = self._metric.labels(*values)
        return child
