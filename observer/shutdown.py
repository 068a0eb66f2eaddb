"""One deadline for the whole shutdown: the final scrape, requests in flight, queued enrichment."""

from __future__ import annotations

import time


class Shutdown:
    """``budget`` seconds from the stop signal, shared by everything that has to finish."""

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._since: float | None = None

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
