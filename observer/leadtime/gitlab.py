"""Lead time of GitLab projects from GitLab's API, in two requests for a typical deployment.

The previous deployment is the store's (else the Deployments API's latest success); one compare
gives the commits shipped, with their parents and times; one GraphQL query gives the merge
requests merged in the window those commits can have been merged in, latest first, each with
its commits, so every commit is tied to the merge request that brought it. A squash commit stands
for the commits it squashed: it carries their first author time, so that squash merges keep their
history. What the window did not cover (the first deployment known, a merge request webhooks told
of) is asked through REST, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from observer.domain import Commit, at
from observer.forges.api import CallCount, NotFound
from observer.forges.github.models import ApiCommit
from observer.forges.gitlab.client import GitLabClient
from observer.forges.gitlab.models import MergeRequest, RestCommit, RestMergeRequest
from observer.leadtime.changes import Job
from observer.leadtime.forges import PullsFound, PushesSeen
from observer.leadtime.knowledge import Knowledge, KnownPull
from observer.metrics.definitions import Metrics
from observer.ops import logs

# Commit dates come from developers' clocks: a merge request is looked for this long before the
# earliest commit time of what shipped, and a little after the deployment; and older pages are
# read only for commits made before a page's oldest merge, give or take the clocks' skew.
EARLY_SLACK = timedelta(days=1)
LATE_SLACK = timedelta(hours=1)
CLOCK_SKEW = timedelta(hours=1)
# Pages of merge requests read for one deployment, and REST lookups beyond them.
MAX_PAGES = 5
MAX_REST_LOOKUPS = 20
# Projects whose merge requests are remembered between a deployment's two steps.
MAX_PROJECTS = 256
MAX_COMMITS_KEPT = 5000
# A project GitLab did not show is asked about again after this long.
NOT_VISIBLE_SECONDS = 3600.0


@dataclass(slots=True)
class _Learnt:
    """What the window query told of one project: each commit's merge requests, and the
    commits it covered (a covered commit with none is a direct push)."""

    commits: dict[str, list[KnownPull]] = field(default_factory=dict)
    pulls: dict[int, KnownPull] = field(default_factory=dict)
    covered: set[str] = field(default_factory=set)
    # Squash commits, by the author time of the first commit each squashed.
    squashed: dict[str, float] = field(default_factory=dict)


class GitLabForge:
    def __init__(self, client: GitLabClient, knowledge: Knowledge, metrics: Metrics) -> None:
        self._client = client
        self._knowledge = knowledge
        self._metrics = metrics
        self._pushes = PushesSeen(knowledge, metrics)
        self._learnt: OrderedDict[str, _Learnt] = OrderedDict()
        # Projects GitLab did not show, with when to ask again: their deployments get lead
        # times from the pushes seen meanwhile, without a request.
        self._missing: OrderedDict[str, float] = OrderedDict()

    def counting(self) -> contextlib.AbstractContextManager[CallCount | None]:
        return self._client.counting()

    async def shipped(self, job: Job) -> list[ApiCommit]:
        sha = job.entry.sha
        if sha is None:
            return []
        if not self._visible(job.repository):
            return await self._pushes.shipped(job)
        if job.previous is not None and job.previous.sha is not None:
            base: str | None = job.previous.sha
        else:
            try:
                base = await self._previous_from_api(job, sha)
            except NotFound as error:
                self._not_visible(job.repository, error)
                return await self._pushes.shipped(job)
        if base == sha:
            return []
        if base is not None:
            try:
                compared = await self._client.compare(job.repository, base, sha)
            except NotFound:
                # The previous commit is gone (history rewritten): the deployed change only.
                logs.event("previous deployment not found", repository=job.repository, base=base)
            else:
                if compared.compare_timeout:
                    self._metrics.enrichment_truncated.inc()
                commits = [commit.api() for commit in compared.commits]
                await self._knowledge.learn_commits(
                    job.repository, [Commit(c.sha, c.author_time) for c in commits]
                )
                if not commits:
                    return []
                learnt = await self._merged_in_window(job, compared.commits)
                return _restamped(commits, learnt)
        try:
            return [await self._commit(job.repository, sha)]
        except NotFound as error:
            self._not_visible(job.repository, error)
            return await self._pushes.shipped(job)

    def _not_visible(self, project: str, error: NotFound) -> None:
        # Said once per project (within a bound), not at each of its deployments.
        if project not in self._missing:
            logs.warning(
                "GitLab shows GITLAB_TOKEN no such project, or not the deployed commit: lead time "
                "from the pushes seen",
                repository=project,
                detail=str(error),
            )
        self._missing[project] = time.monotonic() + NOT_VISIBLE_SECONDS
        self._missing.move_to_end(project)
        while len(self._missing) > MAX_PROJECTS:
            self._missing.popitem(last=False)

    def _visible(self, project: str) -> bool:
        until = self._missing.get(project)
        return until is None or until <= time.monotonic()

    async def _previous_from_api(self, job: Job, sha: str) -> str | None:
        for deployment in await self._client.deployments(job.repository, job.environment):
            finished = deployment.updated_at or deployment.created_at
            if deployment.sha.lower() != sha and finished.timestamp() < job.entry.time:
                return deployment.sha.lower()
        return None

    async def _commit(self, project: str, sha: str) -> ApiCommit:
        times = await self._knowledge.commit_times(project, [sha])
        if sha in times:
            return ApiCommit(sha, at(times[sha]), ())
        commit = await self._client.commit(project, sha)
        await self._knowledge.learn_commits(project, [Commit(commit.sha, commit.author_time)])
        return commit

    async def _merged_in_window(self, job: Job, commits: Sequence[RestCommit]) -> _Learnt:
        """The merge requests that brought ``commits``, read latest first from the window.

        A commit's merge request was merged after the commit was made: once the pages reach
        past every commit not yet tied to one, older pages cannot tie them.
        """
        learnt = _Learnt(covered={commit.id.lower() for commit in commits})
        committed = {commit.id.lower(): commit.committed for commit in commits}
        after = min(committed.values()) - EARLY_SLACK
        before = at(job.entry.time) + LATE_SLACK
        cursor: str | None = None
        for page_number in range(1, MAX_PAGES + 1):
            try:
                page = await self._client.merged_between(job.repository, after, before, cursor)
            except NotFound as error:
                # The token may read the repository but not its merge requests: every commit
                # then counts as its own change, rather than failing the deployment.
                logs.warning(
                    "merge requests not visible to GITLAB_TOKEN",
                    repository=job.repository,
                    detail=str(error),
                )
                break
            oldest: datetime | None = None
            for merge_request in page.merge_requests:
                _learn(learnt, merge_request)
                oldest = merge_request.merged_at or oldest
            untied = [sha for sha in committed if sha not in learnt.commits]
            if page.cursor is None or oldest is None:
                break
            waiting = [sha for sha in untied if committed[sha] <= oldest + CLOCK_SKEW]
            if not waiting:
                break
            if page_number == MAX_PAGES:
                # Not known either way: asked again one by one, within the lookup bound.
                learnt.covered.difference_update(waiting)
            cursor = page.cursor
        self._remember(job.repository, learnt)
        return learnt

    def _remember(self, project: str, learnt: _Learnt) -> None:
        known = self._learnt.pop(project, None)
        if known is None or len(known.covered) + len(learnt.covered) > MAX_COMMITS_KEPT:
            known = _Learnt()
        known.commits.update(learnt.commits)
        known.pulls.update(learnt.pulls)
        known.covered.update(learnt.covered)
        self._learnt[project] = known
        while len(self._learnt) > MAX_PROJECTS:
            self._learnt.popitem(last=False)

    async def pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound:
        if not self._visible(repository):
            return PullsFound()
        try:
            return await self._pulls(repository, shas, numbers)
        except NotFound as error:
            self._not_visible(repository, error)
            return PullsFound()

    async def _pulls(
        self, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound:
        learnt = self._learnt.get(repository) or _Learnt()
        commits = {sha: learnt.commits[sha] for sha in shas if sha in learnt.commits}
        pulls = {number: learnt.pulls[number] for number in numbers if number in learnt.pulls}
        ask_shas = [sha for sha in shas if sha not in learnt.covered]
        ask_numbers = [number for number in numbers if number not in learnt.pulls]
        budget = MAX_REST_LOOKUPS
        for sha in ask_shas[:budget]:
            found = await self._client.commit_merge_requests(repository, sha)
            merged = [
                KnownPull(mr.iid, _seconds(mr.merged_at), _made(mr, sha))
                for mr in found
                if mr.state == "merged"
            ]
            if merged:
                commits[sha] = merged
        budget -= min(len(ask_shas), budget)
        for number in ask_numbers[:budget]:
            own = await self._client.merge_request_commits(repository, number)
            first = min((c.author_time.timestamp() for c in own), default=None)
            pulls[number] = KnownPull(number, None, None, first)
        truncated = max(len(ask_shas) + len(ask_numbers) - MAX_REST_LOOKUPS, 0)
        return PullsFound(commits, pulls, truncated=truncated)


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _made(merge_request: RestMergeRequest, sha: str) -> str | None:
    """The commit merging made, as lead time groups it: the squash commit when ``sha`` is one
    (its start is then its merge request's first commit), else the merge commit."""
    squash = (merge_request.squash_commit_sha or "").lower() or None
    if squash == sha:
        return squash
    return (merge_request.merge_commit_sha or "").lower() or squash


def _learn(learnt: _Learnt, merge_request: MergeRequest) -> None:
    known = KnownPull(
        merge_request.iid,
        _seconds(merge_request.merged_at),
        # The commit merging made on the target branch: a merge commit, else a squash commit.
        merge_request.merge_commit_sha or merge_request.squash_commit_sha,
        _seconds(merge_request.first_commit_time),
    )
    learnt.pulls[merge_request.iid] = known
    squash = merge_request.squash_commit_sha
    if squash in learnt.covered and known.first_commit_time is not None:
        learnt.squashed[squash] = known.first_commit_time
    made = (merge_request.merge_commit_sha, squash)
    for sha in {*made, *(sha for sha, _ in merge_request.commits)}:
        if sha is not None and sha in learnt.covered:
            learnt.commits.setdefault(sha, []).append(known)


def _restamped(commits: list[ApiCommit], learnt: _Learnt) -> list[ApiCommit]:
    """``commits`` with each squash commit timed from the first commit it squashed."""
    return [
        replace(commit, author_time=min(commit.author_time, at(learnt.squashed[commit.sha])))
        if commit.sha in learnt.squashed
        else commit
        for commit in commits
    ]
