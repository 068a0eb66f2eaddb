"""Applies events to the metrics: labels bounded, each event counted once.

Each event is recorded as one unit of work (observer.state.unit): what it writes to the store
is buffered and committed in one call, and its metric changes are made only once that commit
has landed. A store that cannot be reached (StoreUnavailable, answered 503) therefore leaves
nothing half recorded and nothing counted, and GitHub's redelivery of that delivery counts it
once. Every event to be counted needs the store, even one that writes nothing: the rule is the
same for all of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from observer import incidents
from observer.domain import (
    Deployment,
    IncidentOpened,
    IncidentResolved,
    IssueIncident,
    Outcome,
    PullRequest,
    Push,
    Result,
    Review,
    SourceIncident,
)
from observer.leadtime import failures
from observer.leadtime.enrichment import Deployments
from observer.leadtime.knowledge import Knowledge
from observer.metrics.children import Children
from observer.metrics.definitions import Metrics
from observer.metrics.labels import LabelPolicy
from observer.state import Store, StoreUnavailable, Unit, Verdict
from observer.state.doubt import Ledger
from observer.teams.activity import Activity

# A unit built again when another replica changed what it read: past this, the store is taken
# as failing (503) rather than looping.
MAX_COMMIT_ATTEMPTS = 20


class Recorder:
    """The one place where events become metric changes, whichever endpoint they came through."""

    def __init__(
        self,
        metrics: Metrics,
        store: Store,
        labels: LabelPolicy,
        knowledge: Knowledge,
        deployments: Deployments,
        *,
        production: re.Pattern[str],
        incident_label: str,
        max_clock_skew: float,
        activity: Activity,
        ledger: Ledger,
    ) -> None:
        self.metrics = metrics
        self._store = store
        self.ledger = ledger
        self._labels = labels
        self._knowledge = knowledge
        self._deployments = deployments
        self._production = production
        self.incident_label = incident_label.lower()
        self._max_skew = max_clock_skew
        # Teams, reviews, rework and surveys: the figures that must never name a person.
        self.activity = activity
        self._deployments_total = Children(metrics.deployments)
        self._change_failures = Children(metrics.change_failures)
        self._commits_pushed = Children(metrics.commits_pushed)
        self._last_event = Children(metrics.last_event)

    def is_production(self, environment: str) -> bool:
        return self._production.search(environment.lower()) is not None

    def clock(self, moment: datetime, unit: Unit) -> datetime:
        """An event's time, or the time of arrival when the sender's clock runs ahead."""
        now = time.time()
        if moment.timestamp() > now + self._max_skew:
            unit.effect(self.metrics.clock_skew.inc)
            return datetime.fromtimestamp(now, UTC)
        return moment

    async def deployment(self, deployment: Deployment) -> Result:
        repository = self._labels.repository(deployment.repository)
        if repository is None:
            return _not_listed(deployment.repository)

        async def build(unit: Unit) -> Result:
            event = _retimed(deployment, self.clock(deployment.time, unit))
            failed = False
            if self.is_production(event.environment):
                new = await self._deployments.record(unit, event)
                # The first cause, known from the status itself; the others when the next
                # success settles (observer.leadtime.failures).
                failed = new and event.status in failures.FAILED_STATUSES
            environment = self._labels.environment(event.environment)

            def count() -> None:
                self._deployments_total(repository, environment, event.status).inc()
                if failed:
                    exemplar = {"sha": event.sha} if event.sha else None
                    self._change_failures(repository, environment, failures.FAILED).inc(1, exemplar)

            unit.effect(count)
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        return await self.record(
            deployment.key, "deployment status already counted", repository, build
        )

    async def pull_request(self, pull_request: PullRequest) -> Result:
        repository = self._labels.repository(pull_request.repository)
        if repository is None:
            return _not_listed(pull_request.repository)

        async def build(unit: Unit) -> Result:
            await self._knowledge.learn_pull_request(unit, pull_request)
            await self._fix(unit, pull_request)
            # Still a change for lead time, whoever wrote it; not in the activity figures.
            if not self.activity.counts(pull_request.author, pull_request.time):
                return Result(
                    Outcome.IGNORED, "author is opted out, a bot, or not in a team", repository
                )
            cycle: float | None = None
            if pull_request.action == "merged" and pull_request.merged_at is not None:
                merged_at = self.clock(pull_request.merged_at, unit)
                cycle = max((merged_at - pull_request.created_at).total_seconds(), 0.0)

            def count() -> None:
                self.metrics.pull_requests.labels(repository, pull_request.action).inc()
                if cycle is not None:
                    self.metrics.pull_request_cycle_time.labels(repository).observe(cycle)
                self.activity.pull_request(pull_request, repository)

            unit.effect(count)
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        return await self.record(
            pull_request.key, "pull request event already counted", repository, build
        )

    async def review(self, review: Review) -> Result:
        repository = self._labels.repository(review.repository)
        if repository is None:
            return _not_listed(review.repository)

        async def build(unit: Unit) -> Result:
            return await self.activity.review(unit, review, repository)

        return await self.record(review.key, "review already counted", repository, build)

    async def push(self, push: Push) -> Result:
        repository = self._labels.repository(push.repository)
        if repository is None:
            return _not_listed(push.repository)

        async def build(unit: Unit) -> Result:
            await self._knowledge.learn_push(unit, push)
            new = len(push.new) if push.new_count is None else push.new_count
            if new:
                unit.effect(lambda: self._commits_pushed(repository).inc(new))
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        return await self.record(push.key, "push already counted", repository, build)

    async def incident_opened(self, incident: IncidentOpened) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_listed(incident.repository)

        async def build(unit: Unit) -> Result:
            if incident.opened_at is not None:
                opened_at = self.clock(incident.opened_at, unit)
                await unit.put_many("incident", {incident.key: opened_at.timestamp()})
                await failures.incident(unit, incident.repository, opened_at.timestamp(), None)
            unit.effect(self.metrics.incidents_opened.labels(repository).inc)
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        return await self.record(incident.key, "incident already counted", repository, build)

    async def incident_resolved(self, incident: IncidentResolved) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_listed(incident.repository)

        async def build(unit: Unit) -> Result:
            resolved_at = self.clock(incident.resolved_at, unit)
            recovery = max((resolved_at - incident.opened_at).total_seconds(), 0.0)
            await failures.incident(
                unit,
                incident.repository,
                incident.opened_at.timestamp(),
                resolved_at.timestamp(),
            )
            unit.effect(lambda: self.metrics.incident_recovery.labels(repository).observe(recovery))
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        return await self.record(
            incident.key, "incident resolution already counted", repository, build
        )

    async def source_incident(self, incident: SourceIncident) -> Result:
        """An incident seen opened, or resolved (which implies it opened): each counted once.

        The source's notification tells the whole incident so far, so nothing but which of its
        two counts were made is kept: a resolution whose opening was never delivered (observer
        was down, or it came later) still counts the incident opened, once.
        """
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_listed(incident.repository)

        async def build(unit: Unit) -> Result:
            opens = await unit.add("event", f"{incident.key}:opened")
            resolves = incident.resolved_at is not None and await unit.add(
                "event", f"{incident.key}:resolved"
            )
            if not opens and not resolves:
                return Result(Outcome.DUPLICATE, "incident already counted", repository)
            opened_at = self.clock(incident.opened_at, unit)
            if opens:
                # The repository's incidents, for the change failures they make.
                await failures.incident(unit, incident.repository, opened_at.timestamp(), None)
            recovery: float | None = None
            if resolves and incident.resolved_at is not None:
                resolved_at = self.clock(incident.resolved_at, unit)
                recovery = max((resolved_at - opened_at).total_seconds(), 0.0)
                await failures.incident(
                    unit, incident.repository, opened_at.timestamp(), resolved_at.timestamp()
                )

            def count() -> None:
                if opens:
                    self.metrics.incidents_opened.labels(repository).inc()
                if recovery is not None:
                    self.metrics.incident_recovery.labels(repository).observe(recovery)

            unit.effect(count)
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        # Its two counts are its identity, each claimed in the unit and checked at commit.
        return await self.record(None, "incident already counted", repository, build)

    async def issue_incident(self, change: IssueIncident) -> Result:
        """An issue's incident period opened or ended: counted once, in the events' order."""
        repository = self._labels.repository(change.repository)
        if repository is None:
            return _not_listed(change.repository)

        async def build(unit: Unit) -> Result:
            moment = self.clock(change.time, unit).timestamp()
            transition = incidents.Transition(
                change.issue_id, change.opens, moment, change.reopened
            )
            outcome = await incidents.apply(unit, transition)
            if outcome.unchanged is not None:
                duplicate = outcome == incidents.REPEAT
                return Result(
                    Outcome.DUPLICATE if duplicate else Outcome.IGNORED,
                    "incident already counted" if duplicate else outcome.unchanged,
                    repository,
                )
            await _incident_period(unit, change.repository, moment, outcome)

            def count() -> None:
                if outcome.opened:
                    self.metrics.incidents_opened.labels(repository).inc()
                if outcome.recovery is not None:
                    self.metrics.incident_recovery.labels(repository).observe(
                        max(outcome.recovery, 0.0)
                    )

            unit.effect(count)
            self._touch(unit, repository)
            return Result(Outcome.ACCEPTED, repository=repository)

        # The issue's periods are its identity: one atomic change in the unit decides a repeat.
        return await self.record(None, "incident already counted", repository, build)

    async def survey(
        self, team: str, satisfaction: int | None, nps: int | None, when: datetime, key: str | None
    ) -> Result:
        async def build(unit: Unit) -> Result:
            return self.activity.survey(unit, team, satisfaction, nps, when)

        return await self.record(key, "survey answer already counted", None, build)

    async def record(
        self,
        key: str | None,
        already: str,
        repository: str | None,
        build: Callable[[Unit], Awaitable[Result]],
    ) -> Result:
        """Build the event's unit and commit it; its effects are made once it has landed.

        An event the sender gave no identity is always new, but it is committed all the same:
        while the store cannot be reached nothing is counted, whatever the event.
        """
        if key is not None and await self._store.contains("event", key):
            await self.ledger.settle("event", key)
            return Result(Outcome.DUPLICATE, already, repository)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            unit = Unit(self._store)
            if key is not None:
                unit.claim("event", key)
            result = await build(unit)
            verdict = await self.ledger.commit(unit)
            if verdict is Verdict.COMMITTED:
                return result
            if verdict is Verdict.DUPLICATE:
                assert key is not None  # only an identity makes a duplicate
                await self.ledger.settle("event", key)
                return Result(Outcome.DUPLICATE, already, repository)
            # CONFLICT: another replica changed what this unit read; build it again.
        raise StoreUnavailable(f"state store: kept changing under {MAX_COMMIT_ATTEMPTS} tries")

    async def _fix(self, unit: Unit, pull_request: PullRequest) -> None:
        """A merged revert or hotfix, for the deployment that ships it (a change failure's
        remediation, and rework)."""
        if pull_request.action != "merged":
            return
        kind = self.activity.rework_kind(pull_request)
        if kind is not None:
            reverts = failures.reverted_number(pull_request.branch) if kind == "revert" else None
            await failures.fix(unit, pull_request.repository, pull_request.number, kind, reverts)

    def _touch(self, unit: Unit, repository: str) -> None:
        def touch() -> None:
            self._last_event(repository).set(time.time())
            self.activity.saw_repository(repository)

        unit.effect(touch)


def _not_listed(full_name: str) -> Result:
    return Result(Outcome.IGNORED, f"repository {full_name} is not in REPOSITORIES")


async def _incident_period(
    unit: Unit, repository: str, moment: float, outcome: incidents.Outcome
) -> None:
    """What an issue's transition tells of the repository's incidents, for change failures."""
    recovery = outcome.recovery
    if outcome.opened:
        resolved = None if recovery is None else moment + recovery
        await failures.incident(unit, repository, moment, resolved)
    elif recovery is not None:
        await failures.incident(unit, repository, moment - recovery, moment)


def _retimed(deployment: Deployment, moment: datetime) -> Deployment:
    return deployment if moment == deployment.time else replace(deployment, time=moment)
