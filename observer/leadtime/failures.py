"""Change failures, rework and recovery, decided when the next successful deployment settles.

A deployment to production is a change failure, counted once with the first cause found:
``failed`` (its status; counted when that status arrives), ``rolled_back`` (the next success in
the environment deploys a commit the failing one already contained), ``incident`` (an incident
on the repository opened after it succeeded and before the repository's next successful
production deployment, any environment: the latest such deployment takes it) and
``remediated`` (the next success ships a revert of one of its changes, or a hotfix). Every cause
is known once the next success has settled, ``SETTLE_SECONDS`` after it arrived, through the
same keyed due work as its lead time: deliveries out of order within that time give the same
answer. That success then ends the run of change failures before it (recovery, observed once)
and is rework when it restores service, ships a revert or hotfix, or succeeds while an incident
is open. What is decided is marked in the environment's history (observer.leadtime.history), in
the unit that observes it, so that replicas, redeliveries and restarts decide it once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from observer.leadtime.changes import Change, Job
from observer.leadtime.history import Entry, History, Settled
from observer.leadtime.knowledge import Knowledge
from observer.metrics.definitions import Metrics
from observer.state import Unit

FAILED, ROLLED_BACK, INCIDENT, REMEDIATED = "failed", "rolled_back", "incident", "remediated"
CAUSES = (FAILED, ROLLED_BACK, INCIDENT, REMEDIATED)
FAILED_STATUSES = ("failure", "error")
# Per repository: incidents' periods and production successes kept for the decisions; a
# decision looks back over the time between two successes of one environment.
MAX_KEPT = 100
# The store's kinds: small facts (a pull request's fix, who shipped it first, which commit
# contains which), and the per-repository lists above (fewer keys, larger values).
FACTS, TIMELINES = "failure", "timeline"
# GitHub's "Revert" button names the branch 'revert-<number of the reverted pull>-<branch>'.
REVERTED = re.compile(r"^revert-(\d+)-")


def incidents_key(repository: str) -> str:
    return f"incidents {repository.lower()}"


def deployed_key(repository: str) -> str:
    return f"deployed {repository.lower()}"


def fix_key(repository: str, number: int) -> str:
    return f"fix {repository.lower()} {number}"


def shipped_key(repository: str, environment: str, number: int) -> str:
    return f"shipped {repository.lower()} {environment.lower()} {number}"


def reverted_number(branch: str | None) -> int | None:
    found = REVERTED.match(branch or "")
    return int(found.group(1)) if found else None


async def fix(unit: Unit, repository: str, number: int, kind: str, reverts: int | None) -> None:
    """A merged pull request that is a revert (of pull ``reverts``, when known) or a hotfix."""
    await unit.put_many(FACTS, {fix_key(repository, number): [kind, reverts]})


async def incident(
    unit: Unit, repository: str, opened: float | None, resolved: float | None
) -> None:
    """An incident of the repository opened, or a period of one (its opening and resolution).

    The two are tied by the opening time: a resolution whose opening is kept closes it.
    """
    await unit.append_many(TIMELINES, {incidents_key(repository): [opened, resolved]}, MAX_KEPT)


async def deployed(unit: Unit, repository: str, moment: float) -> None:
    """A successful deployment to one of the repository's production environments."""
    await unit.append_many(TIMELINES, {deployed_key(repository): moment}, MAX_KEPT)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the decisions need beyond the history, read before them."""

    periods: list[tuple[float | None, float | None]]
    deployed: list[float]
    # Of the changes the settling success ships: whether any is a revert or hotfix, and the
    # pull requests they revert (None: a revert whose pull request is not known).
    fixes: bool
    hotfix: bool
    reverts: list[int | None]


class ChangeFailures:
    def __init__(self, metrics: Metrics, knowledge: Knowledge) -> None:
        self._metrics = metrics
        # Which commit contains which: what lead time's compare told (with a token; no extra
        # request), else the pushes seen.
        self._knowledge = knowledge

    async def settle(self, unit: Unit, job: Job, changes: Sequence[Change], pair: str) -> None:
        """Decide, in ``unit``, what the settled success ``job.entry`` tells."""
        doc = await unit.update("history", pair, lambda known: (known, known))
        history = History.from_json(doc)
        end = history.find(job.entry.key)
        if end is None or job.entry.key in history.settled:
            return
        previous = history.previous_success(job.entry)
        facts = await self._facts(unit, job, changes)
        rolled_back = False
        # A deployment that ships changes the previous one lacked is not older code: the walk
        # back through the pushes is made only for one that ships nothing new.
        if previous is not None and previous.key not in history.judged and not changes:
            rolled_back = await self._rolled_back(job, previous)
        first = job.entry.key
        for number in sorted({c.pull.number for c in changes if c.pull is not None}):
            # The deployment that first shipped it here: the one its revert remediates.
            await unit.update(
                FACTS,
                shipped_key(job.repository, job.environment, number),
                lambda known: (known if known is not None else first, None),
            )
        shipped_by = await self._shipped_by(unit, job, facts.reverts)

        def judge(failing: Entry) -> str | None:
            if rolled_back and previous is not None and failing.key == previous.key:
                return ROLLED_BACK
            if _incident_after(failing, job.entry, facts):
                return INCIDENT
            if facts.hotfix or any(
                number is None or shipped_by.get(number) == failing.key for number in facts.reverts
            ):
                return REMEDIATED
            return None

        def decide(known: Any) -> tuple[Any, Any]:
            fresh = History.from_json(known)
            settled = fresh.settle(job.entry.key, judge)
            return (known if settled is None else fresh.to_json()), settled

        settled = await unit.update("history", pair, decide)
        if settled is None:
            return
        rework = facts.fixes or settled.restores or _open_at(job.entry.time, facts.periods)
        labels = (job.repository_label, job.environment_label)
        unit.effect(self._counter(labels, settled, rework, job))

    def _counter(
        self, labels: tuple[str, str], settled: Settled, rework: bool, job: Job
    ) -> Callable[[], None]:
        cause, recovery = settled.cause, settled.recovery
        exemplar = {"sha": job.entry.sha} if job.entry.sha else None
        # The failing deployment's commit, and the one that fixed it: what a dashboard shows.
        failing = settled.previous.sha if settled.previous is not None else None
        fixed = {name: sha for name, sha in (("sha", failing), ("fixed_by", job.entry.sha)) if sha}

        def count() -> None:
            if cause is not None:
                self._metrics.change_failures.labels(*labels, cause).inc(1, fixed or None)
            if recovery is not None:
                self._metrics.deployment_recovery.labels(*labels).observe(
                    max(recovery, 0.0), exemplar
                )
            if rework:
                self._metrics.rework_deployments.labels(*labels).inc()

        return count

    async def _facts(self, unit: Unit, job: Job, changes: Sequence[Change]) -> Facts:
        names = [incidents_key(job.repository), deployed_key(job.repository)]
        lists = await unit.lists(TIMELINES, names)
        periods = [
            (_seconds(item[0]), _seconds(item[1]))
            for item in lists.get(names[0], [])
            if isinstance(item, list) and len(item) == 2
        ]
        deployed = [float(t) for t in lists.get(names[1], []) if isinstance(t, (int, float))]
        numbers = sorted({c.pull.number for c in changes if c.pull is not None})
        keys = [fix_key(job.repository, n) for n in numbers]
        found = await unit.get_many(FACTS, keys) if keys else {}
        kinds = [found[key] for key in keys if isinstance(found.get(key), list)]
        reverts = [
            None if kind[1] is None else int(kind[1]) for kind in kinds if kind[0] == "revert"
        ]
        hotfix = any(kind[0] == "hotfix" for kind in kinds)
        return Facts(periods, deployed, bool(kinds), hotfix, reverts)

    async def _shipped_by(
        self, unit: Unit, job: Job, reverts: Sequence[int | None]
    ) -> dict[int, str]:
        numbers = sorted({n for n in reverts if n is not None})
        keys = {shipped_key(job.repository, job.environment, n): n for n in numbers}
        found = await unit.get_many(FACTS, keys) if keys else {}
        return {keys[key]: str(value) for key, value in found.items()}

    async def _rolled_back(self, job: Job, previous: Entry) -> bool:
        """The success deploys a commit the one before it already contained: older code."""
        head, base = previous.sha, job.entry.sha
        if head is None or base is None or head == base:
            return False
        return await self._knowledge.contains(job.repository, head, base)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _incident_after(failing: Entry, success: Entry, facts: Facts) -> bool:
    """An incident opened after ``failing`` succeeded, before any later production success."""
    later = [t for t in facts.deployed if failing.time < t]
    until = min([success.time, *later])
    return any(opened is not None and failing.time < opened < until for opened, _ in facts.periods)


def _open_at(moment: float, periods: Sequence[tuple[float | None, float | None]]) -> bool:
    """An incident of the repository was open at ``moment``."""
    resolved = {opened: end for opened, end in periods if opened is not None and end is not None}
    return any(
        opened is not None
        and opened <= moment
        and (resolved.get(opened) is None or moment < (resolved.get(opened) or 0.0))
        for opened, _ in periods
    )
