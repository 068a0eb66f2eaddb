"""``Push Hook``: the commits a push brings are counted; every listed commit's time is kept."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from observer.domain import Commit, Push, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Model, Sha
from observer.sources.gitlab.events.common import Project, Time

# GitLab's ``after`` of a deleted branch (and ``before`` of a new one).
NULL_SHA = "0" * 40


class _Commit(Model):
    id: Sha
    timestamp: Time


class Payload(Model):
    ref: str = Field(max_length=1000)
    before: Sha
    after: Sha
    # GitLab lists the newest 20 commits; total_commits_count counts them all.
    commits: list[_Commit] = Field(default_factory=list, max_length=10_000)
    total_commits_count: int | None = Field(default=None, ge=0)
    project: Project


async def handle(payload: Any, recorder: Recorder) -> Result:
    event = Payload.model_validate(payload)
    repository = event.project.path_with_namespace
    commits = tuple(Commit(c.id.lower(), c.timestamp) for c in event.commits)
    deleted = event.after == NULL_SHA
    listed = len(commits)
    count = event.total_commits_count
    return await recorder.push(
        Push(
            repository=repository,
            ref=event.ref,
            # The push's content, not the delivery: a group hook and a project hook sending the
            # same push agree, and so does a redelivery.
            key=f"gitlab:push:{repository.lower()}:{event.ref}:{event.before}:{event.after}",
            after=event.after.lower(),
            before=event.before.lower(),
            deleted=deleted,
            commits=commits,
            # GitLab marks no commit distinct: those it lists for a push are the new ones.
            new=() if deleted else commits,
            new_count=None if deleted or count is None else max(count, listed),
        )
    )
