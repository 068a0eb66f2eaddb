"""Where lead time learns what a deployment shipped: a forge's API, or only what webhooks told.

Each deployment names the forge whose API may tell (``Deployment.forge``, kept with its waiting
work in the store); ``Forges`` picks the one to ask: GitHub's API for GitHub's deployments,
GitLab's for GitLab's (observer.leadtime.gitlab), the commits a pipeline sent or else GitHub's API
(a pipeline's project may be on GitHub) for /api/event's, and the pushes seen whenever the forge
has no token.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from observer.domain import GITHUB, GITLAB, Commit, at
from observer.forges.api import CallCount
from observer.forges.github.client import (
    GitHubClient,
    GraphPull,
    NotFound,
    RepositoryNotFound,
)
from observer.forges.github.models import ApiCommit
from observer.leadtime.knowledge import Knowledge, KnownPull
from observer.metrics.definitions import Metrics
from observer.ops import logs

if TYPE_CHECKING:
    from observer.leadtime.changes import Job

# Deployments GitHub is asked about when looking for the previous successful one.
MAX_PREVIOUS_CANDIDATES = 5
# Commits of one deployment whose pull request may be asked for, beyond what webhooks told.
MAX_PULL_LOOKUPS = 500
# A repository GitHub does not have (a pipeline's project on another host) is not asked about
# again for this long, so that one moved to GitHub is found within the hour; and so many of
# them are remembered.
NOT_ON_GITHUB_SECONDS = 3600.0
MAX_NOT_ON_GITHUB = 1000


@dataclass(frozen=True, slots=True)
class PullsFound:
    """The merged pull requests of some commits, and some pull requests' first commit times."""

    commits: Mapping[str, Sequence[KnownPull]] = field(default_factory=dict)
    pulls: Mapping[int, KnownPull] = field(default_factory=dict)
    # Commits and pull requests not asked about, past the limit.
    truncated: int = 0


class Forge(Protocol):
    """What one forge's API (or the pushes seen, without one) tells lead time."""

    def counting(self) -> contextlib.AbstractContextManager[CallCount | None]: ...

    async def shipped(self, job: Job) -> list[ApiCommit]:
        """The commits reachable from the deployed one and not from the previous deployment."""
        ...

    async def pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound: ...


class PushesSeen:
    """No forge's API: the pushes seen chain the previous deployment to the deployed commit."""

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


def github_name(repository: str) -> bool:
    """Whether a repository's name can be GitHub's: owner/name. A path with subgroups
    (``group/sub/app``, from GitLab and other hosts through /api/event) never is."""
    owner, _, name = repository.partition("/")
    return bool(owner) and bool(name) and "/" not in name


class GitHubForge:
    """The GitHub API, for repositories on GitHub; the webhooks' knowledge for the others.

    A repository is taken to be elsewhere when its name cannot be GitHub's, or when GitHub
    answered that it has no such repository (or none the token may see): a pipeline's project
    on another host. Its deployments then get lead times as without a token, from the commits
    the pipeline lists or the pushes seen, with no request to GitHub and no retry.
    """

    def __init__(
        self,
        client: GitHubClient,
        knowledge: Knowledge,
        metrics: Metrics,
        *,
        max_pages: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._knowledge = knowledge
        self._metrics = metrics
        self._max_pages = max_pages
        self._clock = clock
        self._webhooks = PushesSeen(knowledge, metrics)
        # Repositories GitHub said it does not have, with when to ask again; oldest first.
        self._elsewhere: OrderedDict[str, float] = OrderedDict()

    def counting(self) -> contextlib.AbstractContextManager[CallCount | None]:
        return self._client.counting()

    async def shipped(self, job: Job) -> list[ApiCommit]:
        if not self._on_github(job.repository):
            return await self._webhooks.shipped(job)
        try:
            return await self._shipped(job)
        except NotFound as error:
            if not await self._repository_missing(job.repository, error):
                raise  # a commit GitHub does not have, in a repository it has
        return await self._webhooks.shipped(job)

    async def _shipped(self, job: Job) -> list[ApiCommit]:
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
                if comparison.status == "behind":
                    # Older code than the previous deployment's: a rollback (change failures).
                    await self._knowledge.learn_contains(job.repository, base, sha)
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
        if not self._on_github(repository):
            return PullsFound()
        # One GraphQL request for up to 50 commits and pull requests, however many it ships.
        try:
            found = await self._client.pulls_of_commits(
                repository, shas, numbers, max_items=MAX_PULL_LOOKUPS
            )
        except RepositoryNotFound as error:
            self._not_on_github(repository, error)
            return PullsFound()
        return PullsFound(
            {sha: [_known(pull) for pull in pulls] for sha, pulls in found.commits.items()},
            {number: _known(pull) for number, pull in found.pulls.items()},
            truncated=found.truncated,
        )

    def _on_github(self, repository: str) -> bool:
        if not github_name(repository):
            return False
        until = self._elsewhere.get(repository)
        return until is None or until <= self._clock()

    async def _repository_missing(self, repository: str, error: NotFound) -> bool:
        """Whether a 404 meant the repository; one for a commit is asked about once more."""
        if not isinstance(error, RepositoryNotFound):
            try:
                await self._client.repository(repository)
            except RepositoryNotFound as missing:
                error = missing
            else:
                return False
        self._not_on_github(repository, error)
        return True

    def _not_on_github(self, repository: str, error: RepositoryNotFound) -> None:
        # An expected condition, said once: a repository asked about again after the pause,
        # and still missing, is remembered without a second line.
        if repository not in self._elsewhere:
            logs.warning(
                "repository not on GitHub, or not visible to the token: lead time from the "
                "commits its deployments list or the pushes seen",
                repository=repository,
                detail=str(error),
            )
        self._elsewhere[repository] = self._clock() + NOT_ON_GITHUB_SECONDS
        self._elsewhere.move_to_end(repository)
        while len(self._elsewhere) > MAX_NOT_ON_GITHUB:
            self._elsewhere.popitem(last=False)


class Forges:
    """The forge each deployment's lead time asks, by the forge it came from."""

    def __init__(self, *, github: Forge, gitlab: Forge, pushes: Forge) -> None:
        self._github = github
        self._gitlab = gitlab
        self._pushes = pushes

    def choose(self, forge: str | None) -> Forge:
        if forge == GITLAB:
            return self._gitlab
        # A pipeline's deployment (None) lists its commits, or may be of a GitHub repository:
        # GitHub's forge asks GitHub only for names it can have, and remembers those it lacks.
        if forge is None or forge == GITHUB:
            return self._github
        return self._pushes


def _known(pull: GraphPull) -> KnownPull:
    return KnownPull(
        pull.number,
        pull.merged_at.timestamp() if pull.merged_at else None,
        pull.merge_commit_sha,
        pull.first_commit_time.timestamp() if pull.first_commit_time else None,
    )


def _commit(commit: ApiCommit) -> Commit:
    return Commit(commit.sha, commit.author_time)
