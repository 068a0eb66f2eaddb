"""A soak (tests/soak.py): two real replicas on one real redis-server, 4,500 signed deliveries
with duplicates, both scraped all along, and one replica restarted in the middle of the load.

Counts and states only: every delivery answered, each event accepted once at most, the counters
summed over the processes equal to the events accepted, memory flat after the warm-up. How fast
the deliveries went is benchmarks/soak.py's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.soak import Plan, Soak, soaked

pytestmark = pytest.mark.e2e

PLAN = Plan()
MEMORY_GROWTH_LIMIT = 30 * 1024 * 1024


@pytest.fixture(scope="module")
def soak() -> Iterator[Soak]:
    with soaked(PLAN) as result:
        # Seen with -s, and in the captured output of a failure.
        sys.stdout.write("\nsoak figures: " + json.dumps(result.figures(), indent=1) + "\n")
        yield result


def test_every_delivery_is_answered_and_each_event_accepted_at_most_once(soak: Soak) -> None:
    figures = soak.figures()
    assert figures["deliveries"] == PLAN.deliveries
    # Each process was scraped: the one that kept running, and the restarted one before its stop
    # and after.
    assert {"A", "B1", "B2"} <= set(soak.last), figures
    # The replica that is down refuses with a connection error or a 503; elsewhere the only
    # refusal is the 503 of a state store call that timed out (nothing counted), and few.
    during_restart = [s for s in soak.sends if soak.during_restart(s)]
    assert all(s.status in (None, 503) for s in during_restart if s.status != 200), figures
    restarting = {id(s) for s in during_restart}
    others = [s for s in soak.sends if s.status != 200 and id(s) not in restarting]
    assert all(s.status == 503 and "state store" in str(s.error) for s in others), figures
    assert len(others) < len(soak.sends) * 0.05, figures
    # Each event is answered "accepted" once at most, whichever replica and hook it came through.
    accepted_events = [s.event for s in soak.accepted()]
    assert len(accepted_events) == len(set(accepted_events)), figures
    answered = {s.result for s in soak.sends if s.status == 200}
    assert answered <= {"accepted", "duplicate"}, figures
    # Every repeat that reached a replica after its event was accepted is a duplicate.
    accepted_at = {s.event: s.answered_at for s in soak.accepted()}
    for send in soak.sends:
        if (
            send.status == 200
            and send.event in accepted_at
            and send.sent_at > accepted_at[send.event]
        ):
            assert send.result == "duplicate", send


def test_the_summed_counters_hold_each_accepted_event_once_outside_the_stop_window(
    soak: Soak,
) -> None:
    """Never more than the distinct accepted events (nothing twice), and no fewer than those
    minus the ones the restarted replica accepted after its last scrape began."""
    counted = soak.counted()
    expected = soak.expected(soak.accepted())
    window = soak.expected(soak.in_stop_window())
    for name in ("success", "failure", "commits", "merged"):
        assert expected[name] - window[name] <= counted[name] <= expected[name], (
            name,
            soak.figures(),
        )
    assert counted["recoveries"] > 0, soak.figures()


def test_memory_of_the_replica_that_kept_running_is_flat_after_warm_up(soak: Soak) -> None:
    """Between its scrape after the first 1,000 answered deliveries and the end."""
    assert soak.memory_after_warm_up > 0
    growth = soak.last["A"].memory - soak.memory_after_warm_up
    assert growth < MEMORY_GROWTH_LIMIT, soak.figures()


def test_every_accepted_event_is_in_the_summed_counters_exactly_once(soak: Soak) -> None:
    counted = soak.counted()
    expected = soak.expected(soak.accepted())
    for name in ("success", "failure", "commits", "merged"):
        assert counted[name] == expected[name], (name, soak.figures())
