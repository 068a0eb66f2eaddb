"""Applies events to the metrics: labels bounded, each event counted once."""

from __future__ import annotations

import re
import time
from typing import Protocol

from observer.boundedset import RecentKeys
from observer.domain import (
    Deployment,
    IncidentOpened,
    IncidentResolved,
    Outcome,
    PullRequest,
    Push,
    Result,
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


def _not_on_allowlist(repository: str) -> Result:
    return Result(Outcome.IGNORED, f"repository {repository} is not in REPOSITORIES")


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

    def is_production(self, environment: str) -> bool:
        return self._production.search(environment.lower()) is not None

    def deployment(self, deployment: Deployment) -> Result:
        repository = self._labels.repository(deployment.repository)
        if repository is None:
            return _not_on_allowlist(deployment.repository)
        if deployment.key is not None and not self._seen.add(deployment.key):
            return Result(Outcome.DUPLICATE, "deployment status already counted", repository)
        environment = self._labels.environment(deployment.environment)
        self.metrics.deployments.labels(repository, environment, deployment.status).inc()
        self._touch(repository)
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

    def pull_request(self, pull_request: PullRequest) -> Result:
        repository = self._labels.repository(pull_request.repository)
        if repository is None:
            return _not_on_allowlist(pull_request.repository)
        # Enrichment learns merge commits from every delivery, even repeated ones.
        self.listener.saw_pull_request(pull_request)
        if not self._seen.add(pull_request.key):
            return Result(Outcome.DUPLICATE, "pull request event already counted", repository)
        self.metrics.pull_requests.labels(repository, pull_request.action).inc()
        if pull_request.action == "merged" and pull_request.merged_at is not None:
            cycle = (pull_request.merged_at - pull_request.created_at).total_seconds()
            self.metrics.pull_request_cycle_time.labels(repository).observe(max(cycle, 0.0))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    def push(self, push: Push) -> Result:
        repository = self._labels.repository(push.repository)
        if repository is None:
            return _not_on_allowlist(push.repository)
        self.listener.saw_push(push)
        if not self._seen.add(push.key):
            return Result(Outcome.DUPLICATE, "push already counted", repository)
        if push.new:
            self.metrics.commits_pushed.labels(repository).inc(len(push.new))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    def incident_opened(self, incident: IncidentOpened) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_on_allowlist(incident.repository)
        if not self._seen.add(incident.key):
            return Result(Outcome.DUPLICATE, "incident already counted", repository)
        self.metrics.incidents_opened.labels(repository).inc()
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    def incident_resolved(self, incident: IncidentResolved) -> Result:
        repository = self._labels.repository(incident.repository)
        if repository is None:
            return _not_on_allowlist(incident.repository)
        if not self._seen.add(incident.key):
            return Result(Outcome.DUPLICATE, "incident resolution already counted", repository)
        recovery = (incident.resolved_at - incident.opened_at).total_seconds()
        self.metrics.incident_recovery.labels(repository).observe(max(recovery, 0.0))
        self._touch(repository)
        return Result(Outcome.ACCEPTED, repository=repository)

    def _touch(self, repository: str) -> None:
        self.metrics.last_event.labels(repository).set(time.time())
