"""Applies events to the metrics: labels bounded, each event counted once.

Whatever decides a number is asked of the store before any counter moves, so that a store that
cannot be reached (StoreUnavailable, answered 503) leaves nothing half counted, and GitHub's
redelivery of that delivery counts it once.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import replace
from datetime import UTC, datetime

from observer.activity import Activity
from observer.deploy_workflows import DeployWorkflows
from observer.domain import (
    Deployment,
    IncidentOpened,
    IncidentResolved,
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
        repository = self._labels.repository(deployment.repository)
        if repository is None:
            return _not_allowed(deployment.repository)
        if not await self._first_time(deployment.key):
            return Result(Outcome.DUPLICATE, "deployment status already counted", repository)
        deployment = _retimed(deployment, self.clock(deployment.time))
        recoveries: list[float] = []
        if self.is_production(deployment.environment):
            # A sha is enough: the GitHub API, or else the pushes seen, tell what it shipped.
            ships = deployment.sha is not None or bool(deployment.commits)
            try:
                recoveries = await self._deployments.record(deployment, ships=ships)
            except StoreUnavailable:
                await self._forget(deployment.key)
                raise
        environment = self._labels.environment(deployment.environment)
        self.metrics.deployments.labels(repository, environment, deployment.status).inc()
        for recovered in recoveries:
            self.metrics.deployment_recovery.labels(repository, environment).observe(recovered)
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def pull_request(self, pull_request: PullRequest) -> Result:
        repository = self._labels.repository(pull_request.repository)
        if repository is None:
            return _not_allowed(pull_request.repository)
        if not await self._first_time(pull_request.key):
            return Result(Outcome.DUPLICATE, "pull request event already counted", repository)
        try:
            await self._knowledge.learn_pull_request(pull_request)
        except StoreUnavailable:
            await self._forget(pull_request.key)
            raise
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
        repository = self._labels.repository(review.repository)
        if repository is None:
            return _not_allowed(review.repository)
        if not await self._first_time(review.key):
            return Result(Outcome.DUPLICATE, "review already counted", repository)
        return await self.activity.review(review, repository)

    async def push(self, push: Push) -> Result:
        repository = self._labels.repository(push.repository)
        if repository is None:
            return _not_allowed(push.repository)
        if not await self._first_time(push.key):
            return Result(Outcome.DUPLICATE, "push already counted", repository)
        try:
            await self._knowledge.learn_push(push)
        except StoreUnavailable:
            await self._forget(push.key)
            raise
        if push.new:
            self.metrics.commits_pushed.labels(repository).inc(len(push.new))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def incident_opened(self, incident: IncidentOpened) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_allowed(incident.repository)
        if not await self._first_time(incident.key):
            return Result(Outcome.DUPLICATE, "incident already counted", repository)
        if incident.opened_at is not None:
            opened_at = self.clock(incident.opened_at)
            try:
                await self._store.put_many("incident", {incident.key: opened_at.timestamp()})
            except StoreUnavailable:
                await self._forget(incident.key)
                raise
        self.metrics.incidents_opened.labels(repository).inc()
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def incident_resolved(self, incident: IncidentResolved) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_allowed(incident.repository)
        if not await self._first_time(incident.key):
            return Result(Outcome.DUPLICATE, "incident resolution already counted", repository)
        opened_at = incident.opened_at
        if incident.opened_key is not None:
            try:
                known = await self._store.get_many("incident", [incident.opened_key])
            except StoreUnavailable:
                await self._forget(incident.key)
                raise
            if incident.opened_key in known:
                # Opened when the label was added, which may be long after the issue was.
                opened_at = at(float(known[incident.opened_key]))
        resolved_at = self.clock(incident.resolved_at)
        recovery = (resolved_at - opened_at).total_seconds()
        self.metrics.incident_recovery.labels(repository).observe(max(recovery, 0.0))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def _first_time(self, key: str | None) -> bool:
        """Whether the event is new; one the sender gave no identity is always new."""
        return key is None or await self._store.add("event", key)

    async def _forget(self, key: str | None) -> None:
        # So that GitHub's redelivery of a delivery answered 503 is not taken for a repeat.
        if key is not None:
            with contextlib.suppress(StoreUnavailable):
                await self._store.discard("event", key)

    def _touch(self, repository: str) -> None:
        self.metrics.last_event.labels(repository).set(time.time())
        self.activity.saw_repository(repository)


def _not_allowed(full_name: str) -> Result:
    return Result(Outcome.IGNORED, f"repository {full_name} is not in REPOSITORIES")


def _retimed(deployment: Deployment, moment: datetime) -> Deployment:
    return deployment if moment == deployment.time else replace(deployment, time=moment)
