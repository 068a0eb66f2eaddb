"""Lead time for changes: which changes a deployment newly ships, and when each one started.

A successful deployment of commit S ships the changes reachable from S and not from the
previous successful deployment to the same repository and environment. A change is a merged
pull request (timed from its earliest commit, so squash merges keep their history) or a commit
that reached the branch without one (timed from its own author time).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from observer import logs
from observer.boundedset import RecentKeys
from observer.domain import Deployment
from observer.github import ApiCommit, GitHubClient, NotFound
from observer.knowledge import Knowledge, KnownPull, ShippedAt
from observer.metrics import Metrics

# Deployments GitHub is asked about when looking for the previous successful one.
MAX_PREVIOUS_CANDIDATES = 5
# Commits of one deployment whose pull request may be looked up, past what webhooks told.
MAX_PULL_LOOKUPS = 10


class Previous(enum.Enum):
    """The previous deployment is not remembered: GitHub's deployments API is asked."""

    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Job:
    deployment: Deployment
    repository: str
    environment: str
    previous: ShippedAt | Previous


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    started: datetime
    sha: str
    pull: KnownPull | None


class LeadTime:
    def __init__(
        self,
        knowledge: Knowledge,
        client: GitHubClient | None,
        metrics: Metrics,
        *,
        capacity: int,
        compare_max_pages: int,
    ) -> None:
        self._knowledge = knowledge
        self.client = client
        self._metrics = metrics
        self._observed = RecentKeys(capacity)
        self._max_pages = compare_max_pages

    def can_enrich(self, deployment: Deployment) -> bool:
        """Whether there is a way to learn what ``deployment`` shipped."""
        return bool(deployment.commits) or (deployment.sha is not None and self.client is not None)

    async def enrich(self, job: Job) -> None:
        """Observe the lead times of the changes ``job`` newly ships; GitHubError on failure."""
        if self.client is None:
            await self._enrich(job)
            return
        with self.client.counting() as count:
            try:
                await self._enrich(job)
            finally:
                self._metrics.enrichment_api_calls.observe(count.calls)

    async def _enrich(self, job: Job) -> None:
        deployment = job.deployment
        repository = deployment.repository.lower()
        if deployment.commits:
            shipped = [ApiCommit(c.sha, c.time, ()) for c in deployment.commits]
        elif deployment.sha is not None and self.client is not None:
            shipped = await self._shipped(job, repository, deployment.sha)
        else:
            return
        if not shipped:
            return
        head = deployment.sha or shipped[-1].sha
        for change in await self._changes(repository, shipped, head):
            # Once per environment, however often or out of order deployments arrive.
            if not self._observed.add((job.repository, job.environment, change.key)):
                continue
            exemplar = {"sha": change.sha}
            if change.pull is not None:
                exemplar["pull_request"] = str(change.pull.number)
            lead = (deployment.time - change.started).total_seconds()
            self._metrics.lead_time.labels(job.repository, job.environment).observe(
                max(lead, 0.0), exemplar
            )
            if change.pull is not None and change.pull.merged_at is not None:
                waited = (deployment.time - change.pull.merged_at).total_seconds()
                self._metrics.merge_to_deploy.labels(job.repository, job.environment).observe(
                    max(waited, 0.0), exemplar
                )

    async def _shipped(self, job: Job, repository: str, sha: str) -> list[ApiCommit]:
        """The commits reachable from ``sha`` and not from the previous deployment."""
        assert self.client is not None
        if isinstance(job.previous, ShippedAt):
            base: str | None = job.previous.sha
        else:
            base = await self._previous_from_api(job, repository, sha)
        if base == sha:
            return []
        if base is not None:
            try:
                comparison = await self.client.compare(
                    repository, base, sha, max_pages=self._max_pages
                )
            except NotFound:
                # The previous commit is gone (history rewritten): S's own change only.
                logs.event("previous deployment not found", repository=repository, base=base)
            else:
                if comparison.truncated:
                    self._metrics.enrichment_truncated.inc()
                for commit in comparison.commits:
                    self._knowledge.learn_commit(repository, commit.sha, commit.author_time)
                return list(comparison.commits)
        return [await self._commit(repository, sha)]

    async def _previous_from_api(self, job: Job, repository: str, sha: str) -> str | None:
        assert self.client is not None
        deployments = await self.client.deployments(
            repository, job.deployment.environment, limit=10
        )
        checked = 0
        for candidate in deployments:
            if candidate.sha == sha or candidate.created_at >= job.deployment.time:
                continue
            checked += 1
            if checked > MAX_PREVIOUS_CANDIDATES:
                break
            if await self.client.deployment_succeeded(repository, candidate.id):
                return candidate.sha
        return None

    async def _commit(self, repository: str, sha: str) -> ApiCommit:
        time = self._knowledge.commit_time(repository, sha)
        if time is not None:
            return ApiCommit(sha, time, ())
        assert self.client is not None
        commit = await self.client.commit(repository, sha)
        self._knowledge.learn_commit(repository, sha, commit.author_time)
        return commit

    async def _changes(self, repository: str, commits: list[ApiCommit], head: str) -> list[Change]:
        by_sha = {commit.sha: commit for commit in commits}
        groups = _mainline_groups(by_sha, head, commits)
        changes: dict[str, tuple[KnownPull | None, list[ApiCommit]]] = {}
        lookups = 0
        for mainline, members in groups:
            pull = self._knowledge.pull_for(repository, mainline)
            if (
                pull is None
                and self.client is not None
                and lookups < MAX_PULL_LOOKUPS
                and not self._knowledge.was_pushed(repository, mainline)
            ):
                lookups += 1
                pull = await self._pull_from_api(repository, mainline)
            key = f"pull:{pull.number}" if pull is not None else f"commit:{mainline}"
            known = changes.setdefault(key, (pull, []))
            known[1].extend(by_sha[sha] for sha in members)
        return [
            await self._change(repository, key, pull, members)
            for key, (pull, members) in changes.items()
        ]

    async def _pull_from_api(self, repository: str, sha: str) -> KnownPull | None:
        assert self.client is not None
        for pull in await self.client.commit_pulls(repository, sha):
            if pull.merged_at is None:
                continue
            known = KnownPull(pull.number, pull.merged_at, pull.merge_commit_sha)
            self._knowledge.learn_pull(repository, known)
            return known
        return None

    async def _change(
        self, repository: str, key: str, pull: KnownPull | None, members: list[ApiCommit]
    ) -> Change:
        if pull is None:
            return Change(key, min(c.author_time for c in members), members[-1].sha, None)
        # A squash or merge commit is made at merge time: the pull request's own commits, or
        # the start of its branch, tell when the work began.
        times = [c.author_time for c in members if c.sha != pull.merge_commit_sha]
        if pull.first_commit_time is not None:
            times.append(pull.first_commit_time)
        if not times and self.client is not None:
            first = min(
                c.author_time for c in await self.client.pull_commits(repository, pull.number)
            )
            pull = self._knowledge.learn_first_commit(repository, pull, first)
            times.append(first)
        if not times:
            times = [c.author_time for c in members]
        return Change(key, min(times), pull.merge_commit_sha or members[-1].sha, pull)


def _mainline_groups(
    by_sha: dict[str, ApiCommit], head: str, commits: Iterable[ApiCommit]
) -> list[tuple[str, list[str]]]:
    """Each first-parent commit from ``head`` with the commits its merges brought in.

    Commits listed without parents (a pipeline's list) are each their own group.
    """
    groups: list[tuple[str, list[str]]] = []
    placed: set[str] = set()
    sha: str | None = head
    while sha is not None and sha in by_sha and sha not in placed:
        placed.add(sha)
        groups.append((sha, [sha]))
        parents = by_sha[sha].parents
        sha = parents[0] if parents else None
    for mainline, members in groups:
        pending = list(by_sha[mainline].parents[1:])
        while pending:
            side = pending.pop()
            if side in by_sha and side not in placed:
                placed.add(side)
                members.append(side)
                pending.extend(by_sha[side].parents)
    # Whatever the walk did not reach (no parents given, or a head outside the list).
    groups.extend((c.sha, [c.sha]) for c in commits if c.sha not in placed)
    return groups
