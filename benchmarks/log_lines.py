"""The CPU one request's log line costs the whole process: the event loop's part and the
listener thread's, in process, steadier than requests a second on a shared machine.

    python benchmarks/log_lines.py [--lines 20000] [--burst 200] [--rounds 3]

Lines go to /dev/null in bursts, with a pause between, so that the listener keeps up and none
is dropped (a dropped line costs less than a written one and would flatter the figure).
``PYTHONPATH=DIR`` measures the observer of another checkout (``git archive``), as long as it
has ``logs.writing``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from observer.ops import logs

# The fields of a webhook delivery's line.
FIELDS = {
    "delivery": "d" * 36,
    "event": "deployment_status",
    "claimed_event": "deployment_status",
    "repository": "octo/app",
    "result": "accepted",
    "status": 200,
    "detail": None,
    "duration_ms": 1.234,
}


def one_round(lines: int, burst: int) -> tuple[float, int]:
    """Process CPU per line in µs, and lines dropped."""
    with open(os.devnull, "w") as sink:
        started = time.process_time()
        with logs.writing("info", stream=sink) as handoff:
            for _ in range(lines // burst):
                for _ in range(burst):
                    logs.request(200, "webhook delivery", **FIELDS)
                time.sleep(0.04)
        spent = time.process_time() - started
    return spent / lines * 1e6, handoff.dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for index in range(args.rounds):
        cost, dropped = one_round(args.lines, args.burst)
        print(f"round {index + 1}: {cost:.1f} µs of process CPU a line, {dropped} dropped")


if __name__ == "__main__":
    main()
