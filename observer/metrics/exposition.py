"""The /metrics body: prometheus-client's exposition of the service's registry, kept fast.

The fast renderer (observer.metrics.exposition_cache) reads prometheus-client's internals, which a
release may rename or remove. It is an optimisation of prometheus-client's own generators, never
a replacement: at start it renders the live registry, and a small one holding every case it
must get right, both ways, and any difference or error, then or at any later scrape, hands every
scrape to prometheus-client for the rest of the process. That is logged once and counted in
``observer_exposition_fallbacks_total``.

``*_created`` series are left out of this exposition only. Each doubles a counter or histogram
for a value no shipped rule or dashboard reads, but prometheus-client's switch
(``disable_created_metrics``, or ``PROMETHEUS_DISABLE_CREATED_SERIES`` read at its import) holds
for every registry of the process, including ones that are not the service's.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from observer.ops import logs

_cache: ModuleType | None
try:
    # The fast renderer reads prometheus-client's internals, some at import: a release without
    # one of them must cost the fast path, never the start.
    from observer.metrics import exposition_cache

    _cache, _CACHE_UNAVAILABLE = exposition_cache, ""
except Exception as error:  # anything at all: this is the guard
    _cache, _CACHE_UNAVAILABLE = None, f"{type(error).__name__}: {error}"

Encoder = Callable[[Collector], bytes]

# gzip level for /metrics. Measured on an exposition of 10,000 and 100,000 series: level 1 is
# 12% larger than level 6 and 25% larger than level 9 (prometheus-client's), and 4x and 7x
# faster (100,000 series: 47 ms, against 231 and 323). zlib lets go of the GIL while it
# compresses, so the level does not stall the event loop, but it is scrape time and a core's
# time on a small machine, for bytes that only cross to Prometheus.
GZIP_LEVEL = 1
OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0"
# The families whose prometheus-client samples include a ``*_created`` one.
WITH_CREATED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


class WithoutCreated(Collector):
    """A registry's (or collector's) metrics without their ``*_created`` samples."""

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            if metric.type in WITH_CREATED:
                created = metric.name + "_created"
                if any(sample.name == created for sample in metric.samples):
                    # A collector may hand out the same Metric each time: it is left as it is.
                    metric = copy.copy(metric)
                    metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


class Collectors(Collector):
    """Some collectors seen as a registry, to render them with prometheus-client."""

    def __init__(self, collectors: list[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def _slow(collector: Collector) -> Collector:
    return WithoutCreated(collector)


def _nothing() -> None:
    return None


class Exposition:
    """Renders a registry as prometheus-client would (without ``*_created``), fast while the
    fast renderer is known to agree with it."""

    def __init__(
        self, registry: CollectorRegistry, fallen_back: Callable[[], object] = _nothing
    ) -> None:
        self._registry = registry
        self._cache: Any = _cache.Cache() if _cache is not None else None
        self._fallen_back = fallen_back
        # Scrapes are already one at a time in the endpoint; this keeps the cache safe for any
        # other caller.
        self._lock = threading.Lock()
        self._fast = True
        self._check()

    @property
    def fast(self) -> bool:
        return self._fast

    def render(self, accept: str, names: list[str] | None = None) -> tuple[bytes, str]:
        """The body for an Accept header (and ``name[]``), and its content type, as
        prometheus-client chooses them."""
        encoder, content_type = choose_encoder(accept)
        if names:
            # A restricted scrape is rare and small: prometheus-client renders it.
            restricted = self._registry.restricted_registry(names)
            return encoder(WithoutCreated(restricted)), content_type
        if self._fast:
            with self._lock:
                body = self._render_fast(encoder)
            if body is not None:
                return body, content_type
        return encoder(WithoutCreated(self._registry)), content_type

    def _render_fast(self, encoder: Encoder) -> bytes | None:
        assert _cache is not None  # checked at start
        try:
            fmt = _cache.fast_format(encoder, self._registry)
            if fmt is None:
                return None
            collectors = _cache.collectors_of(self._registry)
            body: bytes = self._cache.render(collectors, encoder, fmt, _slow)
            return body
        except Exception as error:
            # Anything at all: the renderer's guesses about prometheus-client no longer hold.
            self._fall_back(f"{type(error).__name__}: {error}")
            return None

    def _check(self) -> None:
        """Compare both renderings of the live registry and of the probe, in both formats."""
        if _cache is None:
            self._fall_back(_CACHE_UNAVAILABLE)
            return
        try:
            for registry in (_probe(), self._registry):
                for accept in ("", OPENMETRICS_ACCEPT):
                    encoder, _ = choose_encoder(accept)
                    fmt = _cache.fast_format(encoder, registry)
                    if fmt is None:
                        continue
                    # Only what the fast path renders itself: the other collectors (process
                    # figures) are prometheus-client's both ways, and move between two calls.
                    mine = _cache.known(_cache.collectors_of(registry))
                    fast = _cache.Cache().render(mine, encoder, fmt, _slow)
                    if fast != encoder(WithoutCreated(Collectors(mine))):
                        self._fall_back("its rendering differs from prometheus-client's")
                        return
        except Exception as error:
            self._fall_back(f"{type(error).__name__}: {error}")

    def _fall_back(self, reason: str) -> None:
        if not self._fast:
            return
        self._fast = False
        self._cache = None
        self._fallen_back()
        logs.warning(
            "/metrics is rendered by prometheus-client from now on: the fast renderer does "
            "not fit this prometheus-client",
            reason=reason,
        )


def _probe() -> CollectorRegistry:
    """A registry holding what the live one may hold later: escapes, exemplars, odd floats, a
    gauge given a function, histograms labelled on either side of ``le``."""
    registry = CollectorRegistry()
    counter = Counter(
        "probe_events", 'A counter\\ with "quotes"\nand lines.', ["a"], registry=registry
    )
    counter.labels('quote " back\\slash new\nline ünï').inc(3)
    counter.labels("exemplar").inc(1.5, {"sha": 'a"b\\c\nd'})
    Counter("probe_plain", "An unlabelled counter.", registry=registry).inc(1e300)
    gauge = Gauge("probe_gauge", "A gauge.", ["a"], unit="seconds", registry=registry)
    for i, value in enumerate((math.inf, -math.inf, math.nan, -0.0, 1234567.0, 1.5e-300)):
        gauge.labels(str(i)).set(value)
    Gauge("probe_computed", "A gauge given a function.", registry=registry).set_function(
        lambda: 7.0
    )
    histogram = Histogram(
        "probe_seconds", "A histogram.", ["a", "z"], buckets=(0.5, 60), registry=registry
    )
    histogram.labels("x", "y").observe(30, {"trace": "1"})
    histogram.labels("x", "y").observe(90)
    Histogram(
        "probe_below_zero", "Negative buckets: no sum.", buckets=(-1, 0), registry=registry
    ).observe(-5)
    return registry
