"""Lead time for changes: which changes a deployment newly ships, and when each one started.

A successful deployment of commit S ships the changes reachable from S and not from the
previous successful deployment (in time) to the same repository and environment. A change is a
merged pull request, into any branch, timed from its earliest commit (so squash merges keep
their history), or a commit that reached the branch without one, timed from its own author
time. A pull request merged into another's branch (git-flow's features into develop, then a
release into main) is a change of its own; the outer one is a change only for the commits no
inner one brought.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from observer.domain import Commit
from observer.forges.github.models import ApiCommit
from observer.leadtime.forges import Forge, Forges, PullsFound
from observer.leadtime.history import Entry
from observer.leadtime.knowledge import Knowledge, KnownPull, innermost
from observer.metrics.definitions import Metrics
from observer.state import Store, Unit


@dataclass(frozen=True, slots=True)
class Job:
    """One successful deployment to compute, with its predecessor in time."""

    repository: str  # lower-cased full name
    environment: str  # lower-cased own name
    repository_label: str
    environment_label: str
    entry: Entry
    previous: Entry | None
    # The commits the sender listed, when it did (a pipeline without a GitHub token).
    commits: Sequence[Commit] = field(default=())


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    started: float
    sha: str
    pull: KnownPull | None


class LeadTime:
    def __init__(
        self, knowledge: Knowledge, forges: Forges, store: Store, metrics: Metrics
    ) -> None:
        self._knowledge = knowledge
        self._forges = forges
        self._store = store
        self._metrics = metrics

    async def changes(self, job: Job) -> list[Change]:
        """The changes ``job`` ships, from what webhooks told and its forge; ApiError."""
        forge = self._forges.choose(job.entry.forge)
        with forge.counting() as count:
            try:
                return await self._shipped_changes(forge, job)
            finally:
                if count is not None:
                    self._metrics.enrichment_api_calls.observe(count.calls)

    async def _shipped_changes(self, forge: Forge, job: Job) -> list[Change]:
        if job.commits:
            shipped = [ApiCommit(c.sha, c.time, ()) for c in job.commits]
        else:
            shipped = await forge.shipped(job)
        if not shipped:
            return []
        return await self._changes(forge, job.repository, shipped)

    async def record(self, unit: Unit, job: Job, changes: Sequence[Change]) -> None:
        """Observe each change not observed yet in the environment, once ``unit`` lands.

        Once per environment, however often, out of order or by whichever replica: the
        change's key is claimed in the unit, and the commit refuses a claim kept meanwhile.
        """
        deployed_at = job.entry.time
        labels = (job.repository_label, job.environment_label)
        for change in changes:
            if not await unit.add("observed", f"{job.repository} {job.environment} {change.key}"):
                continue
            exemplar = {"sha": change.sha}
            if change.pull is not None:
                exemplar["pull_request"] = str(change.pull.number)
            lead = max(deployed_at - change.started, 0.0)
            merged = None
            if change.pull is not None and change.pull.merged_at is not None:
                merged = max(deployed_at - change.pull.merged_at, 0.0)
            unit.effect(self._observer(labels, lead, merged, exemplar))

    def _observer(
        self, labels: tuple[str, str], lead: float, merged: float | None, exemplar: dict[str, str]
    ) -> Callable[[], None]:
        def observe() -> None:
            self._metrics.lead_time.labels(*labels).observe(lead, exemplar)
            if merged is not None:
                self._metrics.merge_to_deploy.labels(*labels).observe(merged, exemplar)

        return observe

    async def _changes(
        self, forge: Forge, repository: str, commits: list[ApiCommit]
    ) -> list[Change]:
        shas = [commit.sha for commit in commits]
        carriers = await self._knowledge.carriers(repository, shas)
        pulls = await self._knowledge.pulls_for(repository, shas, carriers)
        pulls.update(_brought_by_merges(commits, pulls))
        told = dict(pulls)
        # Commits no webhook tied to a pull request look direct, but its event may come late
        # or never (a redelivery, a hook outage): where there is an API, it confirms them in
        # the one request that also asks when the pull requests webhooks told of began.
        direct = [sha for sha in shas if sha not in pulls]
        asked = _undated(_groups(commits, pulls))
        if direct or asked:
            found = await self._lookup(forge, repository, direct, asked)
            for sha in direct:
                pull = innermost(found.commits.get(sha, ()))
                if pull is not None:
                    pulls[sha] = pull
            pulls.update(_brought_by_merges(commits, pulls))
            pulls = _dated(pulls, found.pulls)
        # A pull request that came without its start, and was not asked about yet.
        undated = [n for n in _undated(_groups(commits, pulls)) if n not in asked]
        if undated:
            pulls = _dated(pulls, (await self._lookup(forge, repository, (), undated)).pulls)
        learnt = {pull for sha, pull in pulls.items() if told.get(sha) != pull}
        if learnt:
            await self._knowledge.learn_pulls(repository, learnt)
        groups = _groups(commits, pulls)
        changes = [_change(key, pull, members) for key, (pull, members) in groups.items()]
        return [change for change in changes if change is not None]

    async def _lookup(
        self, forge: Forge, repository: str, shas: Sequence[str], numbers: Sequence[int]
    ) -> PullsFound:
        found = await forge.pulls(repository, shas, numbers)
        if found.truncated:
            self._metrics.enrichment_lookups_truncated.inc(found.truncated)
        return found


Group = tuple[KnownPull | None, list[ApiCommit]]


def _groups(commits: Sequence[ApiCommit], pulls: Mapping[str, KnownPull]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for commit in commits:
        pull = pulls.get(commit.sha)
        key = f"pull:{pull.number}" if pull is not None else f"commit:{commit.sha}"
        groups.setdefault(key, (pull, []))[1].append(commit)
    return groups


def _undated(groups: Mapping[str, Group]) -> list[int]:
    """Pull requests whose start only their first commit can tell: a squash commit alone says
    nothing of when the work began."""
    return sorted(
        {
            pull.number
            for pull, members in groups.values()
            if pull is not None and _needs_start(pull, members)
        }
    )


def _dated(pulls: Mapping[str, KnownPull], found: Mapping[int, KnownPull]) -> dict[str, KnownPull]:
    """``pulls`` with the first commit times ``found`` tells, where one was missing."""
    return {
        sha: dataclasses.replace(pull, first_commit_time=found[pull.number].first_commit_time)
        if pull.first_commit_time is None and pull.number in found
        else pull
        for sha, pull in pulls.items()
    }


def _needs_start(pull: KnownPull, members: Sequence[ApiCommit]) -> bool:
    if pull.first_commit_time is not None:
        return False
    own = [c for c in members if c.sha != pull.merge_commit_sha]
    return not own and len(members[-1].parents) <= 1


def _brought_by_merges(
    commits: Sequence[ApiCommit], pulls: Mapping[str, KnownPull]
) -> dict[str, KnownPull]:
    """Commits a known pull request's merge commit brought in, by the compare's parents.

    The merges are taken innermost first (merged first), so a feature pull request merged into
    a release branch keeps its commits when the release's merge brings them again.
    """
    by_sha = {commit.sha: commit for commit in commits}
    merges = sorted(
        (
            (pull, by_sha[sha])
            for sha, pull in pulls.items()
            if sha == pull.merge_commit_sha and sha in by_sha and len(by_sha[sha].parents) > 1
        ),
        key=lambda item: item[0].merged_at or 0.0,
    )
    brought: dict[str, KnownPull] = {}
    for pull, merge in merges:
        # Commits on the side of the merge, not reachable along its first parent.
        mainline = set()
        sha: str | None = merge.parents[0]
        while sha is not None and sha in by_sha and sha not in mainline:
            mainline.add(sha)
            parents = by_sha[sha].parents
            sha = parents[0] if parents else None
        pending = list(merge.parents[1:])
        walked: set[str] = set()
        while pending:
            side = pending.pop()
            if side not in by_sha or side in mainline or side in walked:
                continue
            walked.add(side)
            # Another pull request's commits stay its own, but what lies behind them (a
            # commit on develop before a feature's merge) came with this one.
            if side not in pulls and side not in brought:
                brought[side] = pull
            pending.extend(by_sha[side].parents)
    return brought


def _change(key: str, pull: KnownPull | None, members: list[ApiCommit]) -> Change | None:
    if pull is None:
        return Change(key, _seconds(min(c.author_time for c in members)), members[-1].sha, None)
    own = [c for c in members if c.sha != pull.merge_commit_sha]
    if own:
        # The commits it brought that no inner pull request did.
        return Change(key, _seconds(min(c.author_time for c in own)), own[-1].sha, pull)
    merge = members[-1]
    if len(merge.parents) > 1:
        # A merge commit alone: every commit it brought belongs to inner pull requests.
        return None
    # A squash commit is made at merge time: the pull request's first commit tells the start.
    started = pull.first_commit_time
    if started is None:
        started = _seconds(merge.author_time)
    return Change(key, started, merge.sha, pull)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()
