"""Resident size of the observer over a million deliveries with distinct ids: is it flat?

    python benchmarks/memory.py [--deliveries 1000000] [--every 50000] [--warm-up 500000]
                                [--source DIR]

The observer is started the way users start it (``python -m observer``, default logging
written to /dev/null) and sent signed deliveries over keep-alive connections, each with its own
delivery id, in a realistic mix over a bounded set of repositories and environments:

- half ``deployment_status`` (success, one in five a failure), each with its own deployment id
  and status id, over 50 repositories x 4 environments (production among them);
- a fifth ``push`` to main, each with a new ``after`` and new commits;
- a tenth ``pull_request`` opened, a tenth the same pull requests closed as merged;
- a tenth ``issues`` labelled as incidents.

Its resident size (VmRSS in /proc/PID/status, read from outside) is sampled every ``--every``
deliveries. Every cache the service keeps is bounded (DEDUP_CAPACITY for delivery ids and event
identities, CACHE_SIZE for what webhooks taught), so after a warm-up that fills them the curve
should be flat: the figure at the end against the figure after ``--warm-up`` says whether it is.
With the default sizes the last to fill are the kinds that take one delivery in ten (pull
requests, incidents, ready-for-review times: CACHE_SIZE 50,000 each), after 500,000 deliveries.
Smaller CACHE_SIZE and DEDUP_CAPACITY in this process's environment reach the observer too, and
show in a shorter run whether anything grows beyond those caches.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bodies
from benchmarks.harness import (
    OBSERVER,
    ROOT,
    Figures,
    Request,
    load,
    observer_env,
    rss_mib,
    server,
    show,
    use_uvloop,
)
from tests.processes import free_port

REPOSITORIES = [f"octo-org/service-{index}" for index in range(50)]
ENVIRONMENTS = ["production", "staging", "qa", "preview"]
# Built and sent this many at a time: enough to keep the connections busy, little memory.
CHUNK = 5_000
CONCURRENCY = 32


class Mix:
    """The deliveries in the order they are sent; one cycle is ten of them."""

    def __init__(self) -> None:
        self._sequence = bodies.Sequence()
        self._success = bodies.deployment_status("success")
        self._failure = bodies.deployment_status("failure")
        self._push = bodies.push()
        self._opened = bodies.pull_request(merged=False)
        self._merged = bodies.pull_request(merged=True)
        self._incident = bodies.incident()
        self._places = cycle(
            [
                (repository, environment)
                for repository in REPOSITORIES
                for environment in ENVIRONMENTS
            ]
        )

    def cycle(self) -> Iterator[Request]:
        take = self._sequence.take
        repository, environment = next(self._places)
        for index in range(5):
            status = self._failure if index == 4 else self._success
            yield status.request(take(), repository, environment)
        yield self._push.request(take(), repository)
        yield self._push.request(take(), repository)
        pull = take()
        yield self._opened.request(pull, repository)
        yield self._merged.request(pull, repository)
        yield self._incident.request(take(), repository)

    def build(self, count: int) -> list[Request]:
        built: list[Request] = []
        while len(built) < count:
            built.extend(self.cycle())
        return built[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50_000, help="deliveries between samples")
    parser.add_argument(
        "--warm-up", type=int, default=500_000, help="deliveries that fill the bounded caches"
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run observer from")
    args = parser.parse_args()
    use_uvloop()
    source = args.source.resolve()
    port = free_port()
    mix = Mix()
    curve: dict[str, Figures] = {}
    with server(OBSERVER, observer_env(port, args.log_level), port, False, source) as observer:
        curve["0"] = {"deliveries": 0, "rss_mib": rss_mib(observer.pid)}
        sent = failures = 0
        window = time.perf_counter()
        while sent < args.deliveries:
            count = min(CHUNK, args.deliveries - sent, args.every - sent % args.every)
            figures = asyncio.run(load(port, mix.build(count), CONCURRENCY))
            sent += count
            failures += int(figures["failures"])
            if sent % args.every == 0 or sent == args.deliveries:
                now = time.perf_counter()
                curve[f"{sent:,}"] = {
                    "deliveries": sent,
                    "rss_mib": rss_mib(observer.pid),
                    "req_s": (sent - int(list(curve.values())[-1]["deliveries"])) / (now - window),
                    "failures": failures,
                }
                window = now
                sys.stdout.write(
                    f"  {sent:>9,} deliveries: {curve[f'{sent:,}']['rss_mib']:.1f} MiB\n"
                )
                sys.stdout.flush()
    show(f"Resident size over {args.deliveries:,} deliveries with distinct ids", curve)
    samples = list(curve.values())
    warm = min(samples, key=lambda row: abs(row["deliveries"] - args.warm_up))
    end = samples[-1]
    grown = end["rss_mib"] - warm["rss_mib"]
    span = max(end["deliveries"] - warm["deliveries"], 1)
    show(
        "After the warm-up against the end",
        {
            f"after {warm['deliveries']:,.0f} (warm-up)": {"rss_mib": warm["rss_mib"]},
            f"after {end['deliveries']:,.0f}": {"rss_mib": end["rss_mib"]},
            "growth": {"rss_mib": grown, "mib_per_100k": grown / span * 100_000},
        },
    )


if __name__ == "__main__":
    main()
