"""Applies events to the metrics: labels bounded, each event counted once.

Whatever decides a number is asked of the store before any counter moves, so that a store that
cannot be reached (StoreUnavailable, answered 503) leaves nothing half counted, and GitHub's
redelivery of that delivery counts it once.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

from observer import incidents
from observer.activity import Activity
from observer.children import Children
from observer.deploy_workflows import DeployWorkflows
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
    at,
)
from observer.enrichment import Deployments
from observer.knowledge import Knowledge
from observer.labels import LabelPolicy
from observer.metrics import Metrics
from observer.state import Store, StoreUnavailable


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
        deploy_workflows: DeployWorkflows,
    ) -> None:
        self.metrics = metrics
        self._store = store
        self._labels = labels
        self._knowledge = knowledge
        self._deployments = deployments
        self._production = production
        self.incident_label = incident_label.lower()
        self._max_skew = max_clock_skew
        # Teams, reviews, rework and surveys: the figures that must never name a person.
        self.activity = activity
        self.deploy_workflows = deploy_workflows
        self._deployments_total = Children(metrics.deployments)
        self._commits_pushed = Children(metrics.commits_pushed)
        self._last_event = Children(metrics.last_event)

    def is_production(self, environment: str) -> bool:
        return self._production.search(environment.lower()) is not None

    def clock(self, moment: datetime) -> datetime:
        """An event's time, or the time of arrival when the sender's clock runs ahead."""
        now = time.time()
        if moment.timestamp() > now + self._max_skew:
            self.metrics.clock_skew.inc()
            return datetime.fromtimestamp(now, UTC)
        return moment

    async def deployment(self, deployment: Deployment) -> Result:
        repository = await self._admit(
            deployment.repository, deployment.key, "deployment status already counted"
        )
        if isinstance(repository, Result):
            return repository
        deployment = _retimed(deployment, self.clock(deployment.time))
        recoveries: list[float] = []
        if self.is_production(deployment.environment):
            # A sha is enough: the GitHub API, or else the pushes seen, tell what it shipped.
            ships = deployment.sha is not None or bool(deployment.commits)
            async with self._taken_back_on_failure(deployment.key):
                recoveries = await self._deployments.record(deployment, ships=ships)
        environment = self._labels.environment(deployment.environment)
        self._deployments_total(repository, environment, deployment.status).inc()
        for recovered in recoveries:
            self.metrics.deployment_recovery.labels(repository, environment).observe(recovered)
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def pull_request(self, pull_request: PullRequest) -> Result:
        repository = await self._admit(
            pull_request.repository, pull_request.key, "pull request event already counted"
        )
        if isinstance(repository, Result):
            return repository
        async with self._taken_back_on_failure(pull_request.key):
            await self._knowledge.learn_pull_request(pull_request)
        # Still a change for lead time, whoever wrote it; not in the activity figures.
        if not self.activity.counts(pull_request.author, pull_request.time):
            return Result(
                Outcome.IGNORED, "author is opted out, a bot, or not in a team", repository
            )
        self.metrics.pull_requests.labels(repository, pull_request.action).inc()
        if pull_request.action == "merged" and pull_request.merged_at is not None:
            merged_at = self.clock(pull_request.merged_at)
            cycle = (merged_at - pull_request.created_at).total_seconds()
            self.metrics.pull_request_cycle_time.labels(repository).observe(max(cycle, 0.0))
        self.activity.pull_request(pull_request, repository)
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def review(self, review: Review) -> Result:
        repository = await self._admit(review.repository, review.key, "review already counted")
        if isinstance(repository, Result):
            return repository
        return await self.activity.review(review, repository)

    async def push(self, push: Push) -> Result:
        repository = await self._admit(push.repository, push.key, "push already counted")
        if isinstance(repository, Result):
            return repository
        async with self._taken_back_on_failure(push.key):
            await self._knowledge.learn_push(push)
        if push.new:
            self._commits_pushed(repository).inc(len(push.new))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def incident_opened(self, incident: IncidentOpened) -> Result:
        repository = await self._admit(
            incident.repository, incident.key, "incident already counted"
        )
        if isinstance(repository, Result):
            return repository
        if incident.opened_at is not None:
            opened_at = self.clock(incident.opened_at)
            async with self._taken_back_on_failure(incident.key):
                await self._store.put_many("incident", {incident.key: opened_at.timestamp()})
        self.metrics.incidents_opened.labels(repository).inc()
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def incident_resolved(self, incident: IncidentResolved) -> Result:
        repository = await self._admit(
            incident.repository, incident.key, "incident resolution already counted"
        )
        if isinstance(repository, Result):
            return repository
        opened_at = incident.opened_at
        if incident.opened_key is not None:
            async with self._taken_back_on_failure(incident.key):
                known = await self._store.get_many("incident", [incident.opened_key])
            if incident.opened_key in known:
                # Opened when the label was added, which may be long after the issue was.
                opened_at = at(float(known[incident.opened_key]))
        resolved_at = self.clock(incident.resolved_at)
        recovery = (resolved_at - opened_at).total_seconds()
        self.metrics.incident_recovery.labels(repository).observe(max(recovery, 0.0))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def issue_incident(self, change: IssueIncident) -> Result:
        """An issue's incident period opened or ended: counted once, in the events' order."""
        repository = await self._admit(change.repository, None, "")
        if isinstance(repository, Result):
            return repository
        moment = self.clock(change.time).timestamp()
        # One atomic update decides it: nothing to take back when the store fails.
        transition = incidents.Transition(change.issue_id, change.opens, moment, change.reopened)
        outcome = await incidents.apply(self._store, transition)
        if outcome.unchanged is not None:
            duplicate = outcome == incidents.REPEAT
            return Result(
                Outcome.DUPLICATE if duplicate else Outcome.IGNORED,
                "incident already counted" if duplicate else outcome.unchanged,
                repository,
            )
        if outcome.opened:
            self.metrics.incidents_opened.labels(repository).inc()
        if outcome.recovery is not None:
            self.metrics.incident_recovery.labels(repository).observe(max(outcome.recovery, 0.0))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def _admit(self, full_name: str, key: str | None, already: str) -> str | Result:
        """The repository's label for an event to count, or the Result that turns it away.

        An event the sender gave no identity is always new.
        """
        repository = self._labels.repository(full_name)
        if repository is None:
            return Result(Outcome.IGNORED, f"repository {full_name} is not in REPOSITORIES")
        if key is not None and not await self._store.add("event", key):
            return Result(Outcome.DUPLICATE, already, repository)
        return repository

    @contextlib.asynccontextmanager
    async def _taken_back_on_failure(self, key: str | None) -> AsyncIterator[None]:
        """Forget the event's identity when the store fails after admitting it.

        GitHub's redelivery of a delivery answered 503 must not be taken for a repeat.
        """
        try:
            yield
        except StoreUnavailable:
            if key is not None:
                with contextlib.suppress(StoreUnavailable):
                    await self._store.discard("event", key)
            raise

    def _touch(self, repository: str) -> None:
        self._last_event(repository).set(time.time())
        self.activity.saw_repository(repository)


def _retimed(deployment: Deployment, moment: datetime) -> Deployment:
    return deployment if moment == deployment.time else replace(deployment, time=moment)
