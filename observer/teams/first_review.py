"""Each pull request's first review: the earliest submitted, decided once the reviews settle.

GitHub does not promise that reviews arrive in the order they were submitted, and with replicas
the order also depends on which one answers. A histogram cannot take an observation back, so
the first review is decided ``SETTLE_SECONDS`` after the first review of the pull request
arrived, from the earliest ``submitted_at`` received by then. The candidate is kept in the store
(its time, when review could start, and its team label values: never a login), written in the
review's unit; the decision is its own unit, run by the enrichment loop as keyed due work. A
review arriving after the decision, even one submitted earlier, changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from observer.metrics.definitions import Metrics
from observer.state import Store, StoreUnavailable, Unit, Verdict
from observer.state.doubt import Ledger

# The prefix of a first review's key in the store's ``pending`` kind; a history's key is
# "owner/name environment", and an owner never holds a colon.
PREFIX = "review:"
# The places in a candidate: [submitted, start, repository label, team labels, decided].
SUBMITTED, START, REPOSITORY, TEAMS, DECIDED = range(5)
MAX_COMMIT_ATTEMPTS = 20


def key(pull_request_id: int | str) -> str:
    return f"{PREFIX}{pull_request_id}"


class FirstReviews:
    """Keeps each pull request's earliest review by someone else; observes it when due."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        settle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settle = settle
        self._clock = clock
        # Set once the enrichment loop exists: a new candidate tells it that work is waiting.
        self.wake: Callable[[], None] = lambda: None

    async def candidate(
        self,
        unit: Unit,
        pull_request_id: int | str,
        *,
        submitted: float,
        start: float,
        repository: str,
        teams: Mapping[str, float],
    ) -> None:
        """Keep this review as the candidate when it is the earliest so far, in ``unit``."""
        name = str(pull_request_id)
        # Decided by an earlier version, which kept only this mark: observed already.
        if await unit.contains("event", f"first_review:{pull_request_id}"):
            return
        # A list, not an object: one is kept per pull request reviewed (CACHE_SIZE of them).
        proposed = [
            submitted,
            start,
            repository,
            sorted(team for team, weight in teams.items() if weight > 0),
            False,
        ]

        def keep(known: Any) -> tuple[Any, bool]:
            """The candidate kept, and whether a decision is still to come."""
            if not isinstance(known, list):
                return proposed, True
            if known[DECIDED]:
                return known, False
            return (proposed if submitted < float(known[SUBMITTED]) else known), True

        if await unit.update("review", name, keep):
            due = self._clock() + self._settle
            # Written by the pull request's first review; kept as it is by the later ones (the
            # decision is due from the first arrival), or written again if it was lost.
            await unit.update("pending", key(pull_request_id), _due_once(due))
            unit.effect(self.wake)

    async def decide(self, pending_key: str, ledger: Ledger, finishing: bool) -> None:
        """Observe the candidate once due (at once when ``finishing``), and mark it decided."""
        name = pending_key.removeprefix(PREFIX)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            unit = Unit(self._store)
            pending = (await unit.get_many("pending", [pending_key])).get(pending_key)
            if isinstance(pending, list) and float(pending[0]) > self._clock() and not finishing:
                return  # not due yet: the scan comes back for it
            decided = await unit.update("review", name, _decide)
            await unit.update("pending", pending_key, lambda _: (None, None))
            if decided is not None:
                unit.effect(self._observer(decided))
            if await ledger.commit(unit) is Verdict.COMMITTED:
                return
            # CONFLICT: a review arrived meanwhile (an earlier one, perhaps): decide again.
        raise StoreUnavailable(f"state store: first review {name} kept changing")

    def _observer(self, decided: list[Any]) -> Callable[[], None]:
        waited = max(float(decided[SUBMITTED]) - float(decided[START]), 0.0)

        def observe() -> None:
            self._metrics.pull_request_first_review.labels(decided[REPOSITORY]).observe(waited)
            for team in decided[TEAMS]:
                self._metrics.team_pull_request_first_review.labels(team).observe(waited)

        return observe


def _due_once(due: float) -> Callable[[Any], tuple[Any, None]]:
    return lambda known: (known or [due, 1], None)


def _decide(known: Any) -> tuple[Any, list[Any] | None]:
    """Mark the candidate decided; the candidate to observe, or None (decided, or expired)."""
    if not isinstance(known, list) or known[DECIDED]:
        return known, None
    return [*known[:DECIDED], True], known
