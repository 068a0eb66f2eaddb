"""The /metrics body, byte for byte what prometheus-client renders, from per-series caches.

prometheus-client formats every sample of every series on every scrape: at 10,000 series that is
170-250 ms holding the GIL, during which the event loop crawls. Between two scrapes few series
move, so this renderer keeps, for each child of the service's Counter, Gauge and Histogram
wrappers, its escaped name-and-labels prefixes and the lines last rendered from its values; a
scrape reads each child's values and formats again only the lines whose values changed.

That means reading prometheus-client's internals, listed in ``INTERNALS``: they are read here
and nowhere else. Anything this module does not recognise (other collectors, subclasses, gauges
with ``set_function``, multiprocess values, name escapings that rewrite names, OpenMetrics 2) goes
through prometheus-client's own generators, collector by collector. observer.metrics.exposition
checks this renderer against prometheus-client at start and leaves it for good at the first
mismatch or error, so a prometheus-client that changed its internals costs speed, never a scrape.

``*_created`` series are never rendered: observer.metrics.exposition leaves them out of the
service's exposition (prometheus-client only offers a switch for every registry of the process).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import partial
from types import ModuleType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, validation, values
from prometheus_client import exposition as text_format
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString, parse_version

Encoder = Callable[[Collector], bytes]
# prometheus-client's own float formatting (Go's), typed.
_go: Callable[[float], str] = floatToGoString

TEXT = 0
OPENMETRICS = 1
EOF = b"# EOF\n"
# Names that every escaping scheme the fast path serves leaves as they are; others (dots,
# values, a name with a colon) are rewritten by prometheus-client, and left to it.
PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
PLAIN_ESCAPINGS = (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8)
KNOWN = (Counter, Gauge, Histogram)

# What this module reads of prometheus-client that is not its public API: an attribute of the
# instances of a class, or a name of a module (read through the module when used, so that an
# upgrade that removes one fails a scrape, which falls back, rather than the import).
INTERNALS: tuple[tuple[type | ModuleType, str], ...] = (
    (CollectorRegistry, "_lock"),
    (CollectorRegistry, "_collector_to_names"),
    (CollectorRegistry, "_target_info"),
    (MetricWrapperBase, "_type"),
    (MetricWrapperBase, "_name"),
    (MetricWrapperBase, "_labelnames"),
    (MetricWrapperBase, "_documentation"),
    (MetricWrapperBase, "_unit"),
    (MetricWrapperBase, "_lock"),
    (MetricWrapperBase, "_metrics"),
    (Counter, "_value"),
    (Gauge, "_value"),
    (Histogram, "_upper_bounds"),
    (Histogram, "_buckets"),
    (Histogram, "_sum"),
    (values.MutexValue, "_value"),
    (values.MutexValue, "_exemplar"),
    (values, "ValueClass"),
    (values, "MutexValue"),
    (validation, "_is_valid_legacy_labelname"),
)


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{name}="{_escape_value(value)}"' for name, value in sorted(pairs))
    return "{" + text + "}" if text else ""


def _exemplar(exemplar: Exemplar | None) -> str:
    """The OpenMetrics exemplar after a counter's or a bucket's value."""
    if exemplar is None:
        return ""
    labels = _labels(exemplar.labels.items())
    if exemplar.timestamp is None:
        return f" # {labels} {_go(exemplar.value)}"
    return f" # {labels} {_go(exemplar.value)} {exemplar.timestamp}"


def _unchanged(old: float, new: float) -> bool:
    # 0.0 and -0.0 are equal but render differently; only a gauge can hold -0.0.
    return old == new and (new != 0 or math.copysign(1.0, old) == math.copysign(1.0, new))


class _Series:
    """One child: its line prefixes, the values last read, and the lines rendered from them."""

    __slots__ = ("child", "lines", "prefixes", "state")

    def __init__(self, child: Any, prefixes: list[str]) -> None:
        self.child = child
        self.prefixes = prefixes
        self.state: Any = None
        self.lines: list[bytes | None] = [None, None]


class _Family:
    """One Counter, Gauge or Histogram registered as-is, with a cache entry per child."""

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self.kind: str = str(metric._type)
        name: str = metric._name
        labelnames: tuple[str, ...] = metric._labelnames
        self.labelled = bool(labelnames)
        self.plain = bool(PLAIN_NAME.fullmatch(name)) and all(
            validation._is_valid_legacy_labelname(label) for label in labelnames
        )
        self._labelnames = labelnames
        self._order = sorted(range(len(labelnames)), key=labelnames.__getitem__)
        self._le_at = sum(label < "le" for label in labelnames)
        self._series: dict[tuple[str, ...], _Series] = {}
        doc: str = metric._documentation
        text_name = name + "_total" if self.kind == "counter" else name
        text_doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        headers = [
            f"# HELP {text_name} {text_doc}\n# TYPE {text_name} {self.kind}\n",
            f"# HELP {name} {_escape_value(doc)}\n# TYPE {name} {self.kind}\n",
        ]
        if metric._unit:
            headers[OPENMETRICS] += f"# UNIT {name} {metric._unit}\n"
        self.headers = [header.encode() for header in headers]
        if self.kind == "counter":
            self._suffixes = [name + "_total"]
        elif self.kind == "gauge":
            self._suffixes = [name]
        else:
            bounds: list[float] = metric._upper_bounds  # type: ignore[union-attr]
            self._le = [_go(bound) for bound in bounds]
            self._with_sum = bounds[0] >= 0
            self._suffixes = [name + "_bucket", name + "_count", name + "_sum"]

    def _prefixes(self, labelvalues: tuple[str, ...]) -> list[str]:
        names = self._labelnames
        pairs = [f'{names[i]}="{_escape_value(labelvalues[i])}"' for i in self._order]
        series = f"{{{','.join(pairs)}}} " if pairs else " "
        if self.kind != "histogram":
            return [self._suffixes[0] + series]
        bucket, count, total = self._suffixes
        # Labels are sorted by name, ``le`` among them.
        before = "".join(pair + "," for pair in pairs[: self._le_at])
        after = "".join("," + pair for pair in pairs[self._le_at :])
        prefixes = [f'{bucket}{{{before}le="{le}"{after}}} ' for le in self._le]
        prefixes.append(count + series)
        if self._with_sum:
            prefixes.append(total + series)
        return prefixes

    def _children(self) -> dict[tuple[str, ...], Any]:
        metric: Any = self.metric
        if not self.labelled:
            return {(): metric}
        # As prometheus-client's own collect(): the event loop adds children while this runs.
        with metric._lock:
            children: dict[tuple[str, ...], Any] = metric._metrics.copy()
        return children

    def render(self, fmt: int, out: list[bytes]) -> bool:
        """Appends the family's lines; False, with nothing appended, when it must be left to
        prometheus-client (a gauge child given a function, say)."""
        children = self._children()
        kind = self.kind
        if kind == "gauge" and any("_child_samples" in vars(c) for c in children.values()):
            return False
        old = self._series
        kept: dict[tuple[str, ...], _Series] = {}
        lines = [self.headers[fmt]]
        for key, child in children.items():
            series = old.get(key)
            if series is None or series.child is not child:
                series = _Series(child, self._prefixes(key))
            kept[key] = series
            if kind == "counter":
                line = _counter(series, fmt)
            elif kind == "gauge":
                line = _gauge(series)
            else:
                line = _histogram(series, fmt, self._with_sum)
            lines.append(line)
        # Children removed or cleared since the last scrape are forgotten here.
        self._series = kept
        out.extend(lines)
        return True


def _counter(series: _Series, fmt: int) -> bytes:
    value = series.child._value
    # Plain attribute reads: atomic under the GIL, where get() would take a lock per value.
    number, exemplar = value._value, value._exemplar
    state = series.state
    if state is None or state[0] != number or state[1] is not exemplar:
        series.state = (number, exemplar)
        series.lines = [None, None]
    line = series.lines[fmt]
    if line is None:
        suffix = _exemplar(exemplar) if fmt == OPENMETRICS else ""
        line = f"{series.prefixes[0]}{_go(number)}{suffix}\n".encode()
        series.lines[fmt] = line
    return line


def _gauge(series: _Series) -> bytes:
    state = series.child._value._value
    line = series.lines[TEXT]
    if line is None or not _unchanged(series.state, state):
        series.state = state
        line = f"{series.prefixes[0]}{_go(state)}\n".encode()
        # A gauge's line is the same in both formats.
        series.lines = [line, line]
    return line


def _histogram(series: _Series, fmt: int, with_sum: bool) -> bytes:
    child = series.child
    buckets = child._buckets
    state = (
        tuple([bucket._value for bucket in buckets]),
        tuple([bucket._exemplar for bucket in buckets]),
        child._sum._value,
    )
    if state != series.state:
        series.state = state
        series.lines = [None, None]
    block = series.lines[fmt]
    if block is None:
        counts, exemplars, total = state
        prefixes = series.prefixes
        parts = []
        accumulated = 0.0
        for i, count in enumerate(counts):
            accumulated += count
            exemplar = _exemplar(exemplars[i]) if fmt == OPENMETRICS else ""
            parts.append(f"{prefixes[i]}{_go(accumulated)}{exemplar}\n")
        parts.append(f"{prefixes[len(counts)]}{_go(accumulated)}\n")
        if with_sum:
            parts.append(f"{prefixes[-1]}{_go(total)}\n")
        block = "".join(parts).encode()
        series.lines[fmt] = block
    return block


def _version_1(version: str) -> bool:
    return parse_version(version)[:1] == (1,)


def _format(encoder: Encoder) -> int | None:
    """Which format the fast path renders for prometheus-client's chosen encoder, if any."""
    if encoder is text_format.generate_latest:
        return TEXT
    if not isinstance(encoder, partial) or encoder.args:
        return None
    keywords = dict(encoder.keywords)
    if keywords.pop("escaping", openmetrics.UNDERSCORES) not in PLAIN_ESCAPINGS:
        return None
    if encoder.func is text_format.generate_latest and not keywords:
        return TEXT
    version = keywords.pop("version", "1.0.0")
    # Version 2 adds native histograms and may change more: left to prometheus-client.
    if encoder.func is openmetrics.generate_latest and not keywords and _version_1(version):
        return OPENMETRICS
    return None


def fast_format(encoder: Encoder, registry: CollectorRegistry) -> int | None:
    """The format this module renders for ``encoder`` and ``registry``; None when it cannot."""
    fmt = _format(encoder)
    any_registry: Any = registry
    if fmt is None or values.ValueClass is not values.MutexValue or any_registry._target_info:
        return None
    return fmt


def collectors_of(registry: CollectorRegistry) -> list[Collector]:
    any_registry: Any = registry
    with any_registry._lock:
        return list(any_registry._collector_to_names)


def known(collectors: list[Collector]) -> list[Collector]:
    """The collectors this module renders itself, rather than prometheus-client."""
    return [collector for collector in collectors if type(collector) in KNOWN]


class Cache:
    """Renders collectors as prometheus-client would, reusing what did not change.

    Not safe for two threads at once: its caller renders one scrape at a time.
    """

    def __init__(self) -> None:
        self._families: dict[Collector, _Family] = {}

    def render(
        self,
        collectors: list[Collector],
        encoder: Encoder,
        fmt: int,
        slow: Callable[[Collector], Collector],
    ) -> bytes:
        """``encoder``'s body for ``collectors`` in ``fmt``; what is left to prometheus-client
        is rendered from ``slow(collector)``."""
        families: dict[Collector, _Family] = {}
        out: list[bytes] = []
        for collector in collectors:
            family = self._families.get(collector)
            if family is None and type(collector) in KNOWN:
                family = _Family(collector)  # type: ignore[arg-type]
            if family is not None:
                families[collector] = family
                if family.plain and family.render(fmt, out):
                    continue
            body = encoder(slow(collector))
            out.append(body[: -len(EOF)] if fmt == OPENMETRICS else body)
        self._families = families
        if fmt == OPENMETRICS:
            out.append(EOF)
        return b"".join(out)
