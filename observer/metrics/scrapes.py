"""Whether Prometheus has seen every count yet: what a stopping replica waits for.

Counters live in the process; what was counted after the last scrape leaves with it. At the
stop signal the server goes on answering until a scrape starts after the last count, for at
most a share of the shutdown budget.
"""

from __future__ import annotations

import asyncio
import time

from observer.ops import logs

# How often the wait looks: a scrape takes longer than this to render at any size worth waiting
# for, and a stop is not delayed by more.
POLL_SECONDS = 0.05


class Scrapes:
    """Monotonic times of the last scrape's start and of the last delivery or event counted."""

    def __init__(self) -> None:
        self.last_started: float | None = None
        self.last_counted: float | None = None

    def started(self) -> None:
        self.last_started = time.monotonic()

    def counted(self) -> None:
        self.last_counted = time.monotonic()

    def unscraped(self) -> bool:
        """Whether something was counted after the start of the last scrape (or with none)."""
        if self.last_counted is None:
            return False
        return self.last_started is None or self.last_started <= self.last_counted


async def final_scrape(scrapes: Scrapes, limit: float) -> None:
    """Return once a scrape has started after the last count, or after ``limit`` seconds."""
    if not scrapes.unscraped():
        logs.event("stopping: every count has been scraped")
        return
    logs.event("stopping: waiting for a final scrape", seconds=round(limit, 3))
    deadline = time.monotonic() + limit
    while scrapes.unscraped():
        if time.monotonic() >= deadline:
            logs.warning(
                "the final scrape did not come; counts since the last scrape are lost",
                seconds=round(limit, 3),
            )
            return
        await asyncio.sleep(POLL_SECONDS)
    logs.event("the final scrape came")
