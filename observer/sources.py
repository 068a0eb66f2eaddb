"""Where lead time learns what a deployment shipped: the GitHub API, or only what webhooks told."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from observer import logs
from observer.domain import Commit, at
from observer.github import CallCount, GitHubClient, GraphPull, NotFound
from observer.github_models import ApiCommit
from observer.knowledge import Knowledge, KnownPull
from observer.metrics import Metrics

if TYPE_CHECKING:
    from observer.leadtime import Job

# Deployments GitHub is asked about when looking for the previous successful one.
MAX_PREVIOUS_CANDIDATES = 5
# Commits of one deployment whose pull request may be asked for, beyond what webhooks told.
MAX_PULL_LOOKUPS = 500


@dataclass(frozen=True, slots=True)
class PullsFound:
    """The merged pull requests of some commits, and some pull requests' first commit times."""

    commits: Mapping[str, Sequence[KnownPull]] = field(default_factory=dict)
    pulls: Mapping[int, KnownPull] = field(default_factory=dict)
    # Commits and pull requests not asked about, past the limit.
    truncated: int = 0


class Source(Protocol):
    def counting(self) -> contextlib.AbstractContextManager[CallCount | None]: ...

    async def shipped(self, job: Job) -> list[ApiCommit]:
        """The commits reachable from the deployed one and not from the previous deployment."""
        ...

    async def pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound: ...


class WebhookSource:
    """No GitHub API: the pushes seen chain the previous deployment to the deployed commit."""

    def __init__(self, knowledge: Knowledge, metrics: Metrics) -> None:
        self._knowledge = knowledge
        self._metrics = metrics

    @contextlib.contextmanager
    def counting(self) -> Iterator[CallCount | None]:
        yield None

    async def shipped(self, job: Job) -> list[ApiCommit]:
        sha = job.entry.sha
        if sha is None:
            return []
        if job.previous is not None and job.previous.sha is not None:
            if job.previous.sha == sha:
                return []
            chain = await self._knowledge.push_chain(job.repository, sha, job.previous.sha)
            if chain is None:
                logs.event("no push chain to the previous deployment", repository=job.repository)
                return []
            if chain.cut:
                self._metrics.enrichment_truncated.inc()
            return [ApiCommit(c.sha, c.time, ()) for c in reversed(chain.commits)]
        # The first deployment known: only the deployed commit's own change.
        times = await self._knowledge.commit_times(job.repository, [sha])
        return [ApiCommit(sha, at(times[sha]), ())] if sha in times else []

    async def pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound:
        return PullsFound()


class GitHubSource:
    def __init__(
        self, client: GitHubClient, knowledge: Knowledge, metrics: Metrics, *, max_pages: int
    ) -> None:
        self._client = client
        self._knowledge = knowledge
        self._metrics = metrics
        self._max_pages = max_pages

    def counting(self) -> contextlib.AbstractContextManager[CallCount | None]:
        return self._client.counting()

    async def shipped(self, job: Job) -> list[ApiCommit]:
        sha = job.entry.sha
        if sha is None:
            return []
        if job.previous is not None and job.previous.sha is not None:
            base: str | None = job.previous.sha
        else:
            base = await self._previous_from_api(job, sha)
        if base == sha:
            return []
        if base is not None:
            try:
                comparison = await self._client.compare(
                    job.repository, base, sha, max_pages=self._max_pages
                )
            except NotFound:
                # The previous commit is gone (history rewritten): the deployed change only.
                logs.event("previous deployment not found", repository=job.repository, base=base)
            else:
                if comparison.truncated:
                    self._metrics.enrichment_truncated.inc()
                await self._knowledge.learn_commits(
                    job.repository, [_commit(c) for c in comparison.commits]
                )
                return list(comparison.commits)
        return [await self._commit(job.repository, sha)]

    async def _previous_from_api(self, job: Job, sha: str) -> str | None:
        deployments = await self._client.deployments(job.repository, job.environment, limit=10)
        checked = 0
        for candidate in deployments:
            if candidate.sha == sha or candidate.created_at.timestamp() >= job.entry.time:
                continue
            checked += 1
            if checked > MAX_PREVIOUS_CANDIDATES:
                break
            if await self._client.deployment_succeeded(job.repository, candidate.id):
                return candidate.sha
        return None

    async def _commit(self, repository: str, sha: str) -> ApiCommit:
        times = await self._knowledge.commit_times(repository, [sha])
        if sha in times:
            return ApiCommit(sha, at(times[sha]), ())
        commit = await self._client.commit(repository, sha)
        await self._knowledge.learn_commits(repository, [_commit(commit)])
        return commit

    async def pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound:
        # One GraphQL request for up to 50 commits and pull requests, however many it ships.
        found = await self._client.pulls_of_commits(
            repository, shas, numbers, max_items=MAX_PULL_LOOKUPS
        )
        return PullsFound(
            {sha: [_known(pull) for pull in pulls] for sha, pulls in found.commits.items()},
            {number: _known(pull) for number, pull in found.pulls.items()},
            truncated=found.truncated,
        )


def _known(pull: GraphPull) -> KnownPull:
    return KnownPull(
        pull.number,
        pull.merged_at.timestamp() if pull.merged_at else None,
        pull.merge_commit_sha,
        pull.first_commit_time.timestamp() if pull.first_commit_time else None,
    )


def _commit(commit: ApiCommit) -> Commit:
    return Commit(commit.sha, commit.author_time)
