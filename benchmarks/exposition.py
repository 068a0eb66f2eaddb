"""Rendering /metrics in process: prometheus-client's generators against
observer.metrics.exposition.

    python benchmarks/exposition.py [--sizes 1000,10000,100000] [--repeat 5] [--changed 0.01]

For each size, a registry built by observer.metrics.definitions.Metrics holds about that many
series (sample lines): per repository and environment, deployments by status and a lead-time
histogram carrying exemplars; per repository, pull requests by action, commits and the last
event's time. Timed, as medians, interleaved so that a busy machine weighs on both sides:

- prometheus-client: ``generate_latest`` (text), the OpenMetrics ``generate_latest``, and the
  latter gzipped at level 9 (what /metrics did before);
- observer.metrics.exposition, first render (cold caches, a fresh renderer each time) and steady
  state: between two scrapes about ``--changed`` of the series move, as webhooks would move
  them; its gzip is at observer.metrics.exposition.GZIP_LEVEL.

Sizes are those of the bodies: text, OpenMetrics, OpenMetrics gzipped at level 9 and at the
level used.
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

import observer
from observer.metrics.definitions import Metrics
from observer.metrics.exposition import GZIP_LEVEL, Exposition

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
ENVIRONMENTS = ("production", "staging", "qa", "dev", "preview")
# Lines per repository: per environment 2 deployment counters and a 21-line histogram, plus
# 3 pull request counters, commits and the last event's gauge.
LINES_PER_REPOSITORY = len(ENVIRONMENTS) * 23 + 5


class Load:
    """A registry with about ``size`` series, and what moves between scrapes."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.random = random.Random(seed)
        self.metrics = Metrics(CollectorRegistry())
        self.moves: list[Callable[[], object]] = []
        for r in range(max(1, size // LINES_PER_REPOSITORY)):
            self._repository(f"octo-org/service-{r:05d}")

    def _repository(self, repository: str) -> None:
        metrics, rnd = self.metrics, self.random
        for environment in ENVIRONMENTS:
            success = metrics.deployments.labels(repository, environment, "success")
            failure = metrics.deployments.labels(repository, environment, "failure")
            lead_time = metrics.lead_time.labels(repository, environment)
            success.inc(rnd.randint(1, 500))
            failure.inc(rnd.randint(0, 20))
            for _ in range(rnd.randint(1, 8)):
                self._observe(lead_time)
            self.moves += [success.inc, partial(self._observe, lead_time)]
        for action in ("opened", "merged", "closed"):
            metrics.pull_requests.labels(repository, action).inc(rnd.randint(1, 300))
        commits = metrics.commits_pushed.labels(repository)
        commits.inc(rnd.randint(1, 3000))
        last_event = metrics.last_event.labels(repository)
        last_event.set(1_764_500_000 + rnd.random() * 1e5)
        self.moves += [lambda: commits.inc(3), lambda: last_event.set(time.time())]

    def _observe(self, histogram: Histogram) -> None:
        sha = f"{self.random.getrandbits(160):040x}"
        histogram.observe(self.random.expovariate(1 / 86400), {"sha": sha})

    def move(self, fraction: float) -> None:
        """About ``fraction`` of the series change, as between two scrapes."""
        for move in self.random.sample(self.moves, max(1, int(len(self.moves) * fraction))):
            move()


def timed(render: Callable[[], object]) -> float:
    started = time.perf_counter()
    render()
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class Result:
    series: int
    medians: dict[str, float]
    sizes: dict[str, int]


def measure(size: int, repeat: int, changed: float) -> Result:
    load = Load(size)
    registry = load.metrics.registry
    steady = Exposition(registry)
    steady.render("")
    steady.render(OPENMETRICS)
    runs: dict[str, list[float]] = {}

    def record(name: str, milliseconds: float) -> None:
        runs.setdefault(name, []).append(milliseconds)

    renders: dict[str, Callable[[Exposition], object]] = {
        "text": lambda exposition: exposition.render(""),
        "OM": lambda exposition: exposition.render(OPENMETRICS),
        "OM+gzip": lambda exposition: gzip.compress(exposition.render(OPENMETRICS)[0], GZIP_LEVEL),
    }
    for _ in range(repeat):
        record("client text", timed(partial(generate_latest, registry)))
        record("client OM", timed(partial(generate_openmetrics, registry)))
        record("client OM+gzip", timed(lambda: gzip.compress(generate_openmetrics(registry))))  # type: ignore[no-untyped-call]
        for fmt, render in renders.items():
            record(f"cold {fmt}", timed(partial(render, Exposition(registry))))
        for fmt, render in renders.items():
            load.move(changed)
            record(f"steady {fmt}", timed(partial(render, steady)))
    # That the bytes are prometheus-client's is for tests/test_exposition_fast.py to show.
    text = steady.render("")[0]
    om = steady.render(OPENMETRICS)[0]
    return Result(
        series=sum(1 for line in text.splitlines() if line and not line.startswith(b"#")),
        medians={name: statistics.median(values) for name, values in runs.items()},
        sizes={
            "text": len(text),
            "OM": len(om),
            "OM gzip 9": len(gzip.compress(om)),
            f"OM gzip {GZIP_LEVEL}": len(gzip.compress(om, GZIP_LEVEL)),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    print(f"observer from {Path(observer.__file__).parent}; gzip level {GZIP_LEVEL}")
    print(f"median ms over {args.repeat} runs; steady: {args.changed:.0%} of series moved")
    formats = ("text", "OM", "OM+gzip")
    header = f"{'series':>8} {'format':<8} {'client':>8} {'cold':>8} {'steady':>8} {'x faster':>8}"
    print(header)
    for size in (int(size) for size in args.sizes.split(",")):
        result = measure(size, args.repeat, args.changed)
        medians = result.medians
        for fmt in formats:
            client = medians[f"client {fmt}"]
            steady = medians[f"steady {fmt}"]
            print(
                f"{result.series:>8,} {fmt:<8} {client:>8.1f} {medians[f'cold {fmt}']:>8.1f} "
                f"{steady:>8.1f} {client / steady:>8.1f}"
            )
        print("         bytes: " + ", ".join(f"{k} {v:,}" for k, v in result.sizes.items()))


if __name__ == "__main__":
    main()
