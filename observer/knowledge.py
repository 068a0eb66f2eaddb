"""What webhooks have already told the service, so that the GitHub API is asked only for the rest.

Commits never change, so what is learnt stays true; only memory bounds it. Every map is keyed
by the repository's lower-cased full name, not by its label (which may have folded to 'other').
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from observer.boundedset import RecentMap
from observer.domain import PullRequest, Push

BRANCH_PREFIX = "refs/heads/"


@dataclass(frozen=True, slots=True)
class KnownPull:
    number: int
    merged_at: datetime | None
    merge_commit_sha: str | None
    # Author time of the pull request's earliest commit, when its branch's pushes were seen.
    first_commit_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ShippedAt:
    """The last successful deployment seen for a repository and environment."""

    sha: str
    time: datetime


class Knowledge:
    def __init__(self, capacity: int) -> None:
        self._commit_times: RecentMap[tuple[str, str], datetime] = RecentMap(capacity)
        # Each commit and the 'after' of the last push that carried it: a push to the base
        # branch whose 'after' is a pull request's merge commit carries that pull request's
        # commits, whether it was squashed, rebased or merged.
        self._pushed_with: RecentMap[tuple[str, str], str] = RecentMap(capacity)
        self._pulls: RecentMap[tuple[str, str], KnownPull] = RecentMap(capacity)
        self._branch_start: RecentMap[tuple[str, str], datetime] = RecentMap(capacity)
        self._shipped: dict[tuple[str, str], ShippedAt] = {}

    def learn_push(self, push: Push) -> None:
        repository = push.repository.lower()
        for commit in push.commits:
            self._commit_times[(repository, commit.sha)] = commit.time
            self._pushed_with[(repository, commit.sha)] = push.after
        if not push.ref.startswith(BRANCH_PREFIX):
            return
        branch = (repository, push.ref.removeprefix(BRANCH_PREFIX))
        if push.deleted:
            # A branch name may be used again for other work.
            self._branch_start.pop(branch)
            return
        times = [commit.time for commit in push.new]
        known = self._branch_start.get(branch)
        if known is not None:
            times.append(known)
        if times:
            self._branch_start[branch] = min(times)

    def learn_pull_request(self, pull_request: PullRequest) -> None:
        if pull_request.action != "merged" or pull_request.merge_commit_sha is None:
            return
        repository = pull_request.repository.lower()
        key = (repository, pull_request.merge_commit_sha)
        if key in self._pulls:
            return  # a repeated delivery; the first one took the branch's start
        first_commit = None
        if pull_request.head_ref is not None:
            # Taken now, and the branch forgotten, so that later work on a reused branch name
            # does not push this pull request's start back.
            first_commit = self._branch_start.pop((repository, pull_request.head_ref))
        self._pulls[key] = KnownPull(
            number=pull_request.number,
            merged_at=pull_request.merged_at,
            merge_commit_sha=pull_request.merge_commit_sha,
            first_commit_time=first_commit,
        )

    def learn_pull(self, repository: str, pull: KnownPull) -> None:
        if pull.merge_commit_sha is not None:
            self._pulls[(repository, pull.merge_commit_sha)] = pull

    def learn_first_commit(self, repository: str, pull: KnownPull, time: datetime) -> KnownPull:
        known = replace(pull, first_commit_time=time)
        self.learn_pull(repository, known)
        return known

    def learn_commit(self, repository: str, sha: str, time: datetime) -> None:
        self._commit_times[(repository, sha)] = time

    def commit_time(self, repository: str, sha: str) -> datetime | None:
        return self._commit_times.get((repository, sha))

    def was_pushed(self, repository: str, sha: str) -> bool:
        """Whether a push webhook carried ``sha``: if no pull request claims it, none did."""
        return (repository, sha) in self._pushed_with

    def pull_for(self, repository: str, sha: str) -> KnownPull | None:
        """The merged pull request that brought ``sha`` to its base branch, if known."""
        pull = self._pulls.get((repository, sha))
        if pull is not None:
            return pull
        after = self._pushed_with.get((repository, sha))
        return None if after is None else self._pulls.get((repository, after))

    def last_shipped(self, repository: str, environment: str) -> ShippedAt | None:
        return self._shipped.get((repository, environment))

    def ship(self, repository: str, environment: str, shipped: ShippedAt) -> None:
        # Keyed by labels, so bounded by the label caps.
        self._shipped[(repository, environment)] = shipped
