"""One deadline for the whole shutdown: work that must show in the final scrape, the final
scrape, requests in flight, queued enrichment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from observer.ops import logs

# Does the work, and says whether there was any.
Step = Callable[[], Awaitable[bool]]


class Shutdown:
    """``budget`` seconds from the stop signal, shared by everything that has to finish."""

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._since: float | None = None
        self._before_final_scrape: list[Step] = []

    def begin(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    @property
    def begun(self) -> bool:
        return self._since is not None

    def remaining(self) -> float:
        if self._since is None:
            return self._budget
        return max(self._budget - (time.monotonic() - self._since), 0.0)

    def before_final_scrape(self, step: Step) -> None:
        """Work to do at the stop signal whose counts the final scrape must carry (lead time
        waiting in process memory, which the exit would lose)."""
        self._before_final_scrape.append(step)

    async def finish_work(self, limit: float) -> bool:
        """Run the steps given to ``before_final_scrape``, for at most ``limit`` seconds; whether
        there was work, whose counts a scrape has yet to see."""
        worked = False
        try:
            async with asyncio.timeout(limit):
                for step in self._before_final_scrape:
                    worked = await step() or worked
        except TimeoutError:
            logs.warning("stopping: waiting work not finished in time", seconds=round(limit, 3))
            return True
        if worked:
            logs.event("stopping: waiting work done")
        return worked
