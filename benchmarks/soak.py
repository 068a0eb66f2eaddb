"""The soak of tests/test_soak.py paced at a rate: the rate it reached, and whether it was exact.

    python benchmarks/soak.py [--rate 100] [--deliveries 4500] [--in-flight 64]

Two observer processes on one redis-server, signed deliveries with duplicates sent to both (see
tests/soak.py), replica B restarted in the middle, both scraped all along. The test sends as fast
as its connections allow and asserts counts only; this script offers the load at ``--rate``
deliveries a second (``--rate 0``: as fast as ``--in-flight`` connections allow) and reports
how the load was carried: the rate offered and answered, and the restart's stop and start times,
next to the counts the test asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.soak import Plan, Soak, soaked


def rates(soak: Soak) -> dict[str, float]:
    """Figures of time: never asserted by a test, shown here."""
    last_sent = max(s.sent_at for s in soak.sends)
    elapsed = soak.load_ended - soak.load_started
    return {
        "load seconds": round(elapsed, 1),
        "offered rate per second": round(len(soak.sends) / (last_sent - soak.load_started), 1),
        "answered rate per second": round(len(soak.sends) / elapsed, 1),
        "stop seconds": round(soak.exited_at - soak.stopped_at, 2),
        "restart seconds": round(soak.restarted_at - soak.stopped_at, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries a second; 0: unpaced")
    parser.add_argument("--deliveries", type=int, default=4500)
    parser.add_argument("--in-flight", type=int, default=64, help="connections at most")
    options = parser.parse_args()
    share = options.deliveries / 4500
    plan = Plan(
        deliveries=options.deliveries,
        rate=options.rate or None,
        in_flight=options.in_flight,
        warm_up=round(1000 * share),
        restart_after=round(2000 * share),
        stop_after=max(1, round(25 * share)),
        after_restart=round(1500 * share),
    )
    with soaked(plan) as soak:
        figures = soak.figures()
        # Zero everywhere when every delivery was answered in time. A delivery whose answer the
        # sender gave up on (TimeoutError, 10 s as GitHub's) may still have been counted: it
        # shows here, where GitHub would redeliver it and be told "duplicate".
        excess = {
            name: figures["counted"][name] - figures["expected"][name]
            for name in ("success", "failure", "commits", "merged")
        }
        unanswered = sum(1 for send in soak.sends if send.status is None)
        summary = {"counted minus expected": excess, "answers never received": unanswered}
        print(json.dumps(rates(soak) | figures | summary, indent=1))


if __name__ == "__main__":
    main()
