"""``push``: commits new to the repository are counted; every commit's time is remembered."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from observer.domain import Commit, Push, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Model, Repository, Sha


class _Commit(Model):
    id: Sha
    timestamp: AwareDatetime
    distinct: bool = True


class Payload(Model):
    ref: str = Field(max_length=1000)
    before: Sha
    after: Sha
    deleted: bool = False
    forced: bool = False
    commits: list[_Commit] = Field(default_factory=list, max_length=10_000)
    repository: Repository


async def record(event: Payload, recorder: Recorder) -> Result:
    commits = [(Commit(c.id.lower(), c.timestamp), c.distinct) for c in event.commits]
    return await recorder.push(
        Push(
            repository=event.repository.full_name,
            ref=event.ref,
            key=f"push:{event.repository.full_name.lower()}:{event.ref}:{event.before}:{event.after}",
            after=event.after.lower(),
            before=event.before.lower(),
            deleted=event.deleted,
            forced=event.forced,
            commits=tuple(commit for commit, _ in commits),
            new=tuple(commit for commit, distinct in commits if distinct),
        )
    )
