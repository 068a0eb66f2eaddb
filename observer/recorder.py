"""Applies events to the metrics: labels bounded, each event counted once."""

from __future__ import annotations

import re
import time
from typing import Protocol

from observer.activity import Activity
from observer.boundedset import RecentKeys
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
)
from observer.labels import LabelPolicy
from observer.metrics import Metrics
from observer.recovery import RecoveryClock
from observer.settings import Settings


class Listener(Protocol):
    """What lead-time enrichment needs to hear about, after the counters have moved."""

    def saw_push(self, push: Push) -> None: ...

    def saw_pull_request(self, pull_request: PullRequest) -> None: ...

    def shipped(self, deployment: Deployment, repository: str, environment: str) -> None: ...


class _Nobody:
    def saw_push(self, push: Push) -> None:
        pass

    def saw_pull_request(self, pull_request: PullRequest) -> None:
        pass

    def shipped(self, deployment: Deployment, repository: str, environment: str) -> None:
        pass


class Recorder:
    """The one place where events become metric changes, whichever endpoint they came through."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.listener: Listener = _Nobody()
        self._labels = LabelPolicy(
            settings.repositories,
            settings.max_repositories,
            settings.max_environments,
            metrics,
        )
        self._production: re.Pattern[str] = settings.production_environments
        self.incident_label = settings.incident_label.lower()
        # Keys of events already counted: a deployment status id, a pull request's merge, a
        # push's before..after. An organisation hook and a repository hook deliver the same
        # event under two delivery ids, so de-duplicating deliveries alone would count it twice.
        self._seen = RecentKeys(settings.dedup_capacity)
        self._recovery = RecoveryClock()
        # Teams, reviews, rework and surveys: the figures that must never name a person.
        self.activity = Activity(settings, metrics)
        self.deploy_workflows = DeployWorkflows(settings)

    def is_production(self, environment: str) -> bool:
        return self._production.search(environment.lower()) is not None

    async def deployment(self, deployment: Deployment) -> Result:
        admitted = self._admit(
            deployment.repository, deployment.key, "deployment status already counted"
        )
        if isinstance(admitted, Result):
            return admitted
        repository = admitted
        environment = self._labels.environment(deployment.environment)
        self.metrics.deployments.labels(repository, environment, deployment.status).inc()
        if self.is_production(deployment.environment):
            clock_key = (repository, environment)
            if deployment.status == "success":
                recovered = self._recovery.succeeded(clock_key, deployment.time)
                if recovered is not None:
                    self.metrics.deployment_recovery.labels(repository, environment).observe(
                        recovered
                    )
                self.listener.shipped(deployment, repository, environment)
            else:
                self._recovery.failed(clock_key, deployment.time)
        return Result(Outcome.ACCEPTED, repository=repository)

    async def pull_request(self, pull_request: PullRequest) -> Result:
        admitted = self._admit(
            pull_request.repository, pull_request.key, "pull request event already counted"
        )
        if isinstance(admitted, Result):
            return admitted
        self.listener.saw_pull_request(pull_request)
        if not self.activity.counts(pull_request.author, pull_request.time):
            return Result(Outcome.IGNORED, "author is opted out, a bot, or not in a team", admitted)
        self.metrics.pull_requests.labels(admitted, pull_request.action).inc()
        if pull_request.action == "merged" and pull_request.merged_at is not None:
            cycle = (pull_request.merged_at - pull_request.created_at).total_seconds()
            self.metrics.pull_request_cycle_time.labels(admitted).observe(max(cycle, 0.0))
        self.activity.pull_request(pull_request, admitted)
        return Result(Outcome.ACCEPTED, repository=admitted)

    async def review(self, review: Review) -> Result:
        admitted = self._admit(review.repository, review.key, "review already counted")
        if isinstance(admitted, Result):
            return admitted
        return self.activity.review(review, admitted)

    async def push(self, push: Push) -> Result:
        admitted = self._admit(push.repository, push.key, "push already counted")
        if isinstance(admitted, Result):
            return admitted
        self.listener.saw_push(push)
        if push.new:
            self.metrics.commits_pushed.labels(admitted).inc(len(push.new))
        return Result(Outcome.ACCEPTED, repository=admitted)

    async def incident_opened(self, incident: IncidentOpened) -> Result:
        admitted = self._admit(incident.repository, incident.key, "incident already counted")
        if isinstance(admitted, Result):
            return admitted
        self.metrics.incidents_opened.labels(admitted).inc()
        return Result(Outcome.ACCEPTED, repository=admitted)

    async def incident_resolved(self, incident: IncidentResolved) -> Result:
        admitted = self._admit(
            incident.repository, incident.key, "incident resolution already counted"
        )
        if isinstance(admitted, Result):
            return admitted
        recovery = (incident.resolved_at - incident.opened_at).total_seconds()
        self.metrics.incident_recovery.labels(admitted).observe(max(recovery, 0.0))
        return Result(Outcome.ACCEPTED, repository=admitted)

    def _admit(self, full_name: str, key: str | None, already: str) -> str | Result:
        """The repository's label for an event to count, or the Result that turns it away.

        Only counted events reach enrichment: a repeat was learnt from the first time.
        """
        repository = self._labels.repository(full_name)
        if repository is None:
            return Result(Outcome.IGNORED, f"repository {full_name} is not in REPOSITORIES")
        if key is not None and not self._seen.add(key):
            return Result(Outcome.DUPLICATE, already, repository)
        self._touch(repository)
        return repository

    def _touch(self, repository: str) -> None:
        self.metrics.last_event.labels(repository).set(time.time())
        self.activity.saw_repository(repository)
