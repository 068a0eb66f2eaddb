"""``pull_request``: opened, merged, or closed without merging."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from observer.domain import Outcome, PullRequest, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Label, Model, Repository, Sha

# Only these actions' payloads are validated; the others are acknowledged
# (observer.sources.github.events).
HANDLED_ACTIONS = frozenset({"opened", "closed", "ready_for_review"})


class _HeadRepository(Model):
    full_name: str


class _Head(Model):
    sha: Sha
    ref: str = Field(max_length=1000)
    repo: _HeadRepository | None = None


class _User(Model):
    login: str = Field(max_length=100)


class _PullRequest(Model):
    id: int
    number: int
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    user: _User | None = None
    title: str = Field(default="", max_length=10_000)
    labels: list[Label] = Field(default_factory=list, max_length=1000)
    additions: int | None = Field(default=None, ge=0)
    deletions: int | None = Field(default=None, ge=0)
    closed_at: AwareDatetime | None = None
    merged: bool | None = None
    merged_at: AwareDatetime | None = None
    merge_commit_sha: Sha | None = None
    head: _Head


class Payload(Model):
    action: str
    pull_request: _PullRequest
    repository: Repository


async def record(event: Payload, recorder: Recorder) -> Result:
    pr = event.pull_request
    if event.action == "opened":
        action, key = "opened", f"pull_request:{pr.id}:opened"
    elif event.action == "closed" and pr.merged_at is not None:
        action, key = "merged", f"pull_request:{pr.id}:merged"
    elif event.action == "closed":
        # A pull request can be closed, reopened and closed again: each closing counts.
        action, key = "closed", f"pull_request:{pr.id}:closed:{pr.closed_at}"
    elif event.action == "ready_for_review" and pr.updated_at is not None:
        # Remembered for the time to first review; nothing is counted.
        await recorder.activity.ready_for_review(pr.id, pr.updated_at)
        return Result(Outcome.IGNORED, "ready for review: remembered for the first review")
    else:
        return Result(Outcome.IGNORED, f"action {event.action!r} is not counted")
    return await recorder.pull_request(
        PullRequest(
            repository=event.repository.full_name,
            number=pr.number,
            action=action,
            created_at=pr.created_at,
            key=key,
            merged_at=pr.merged_at,
            merge_commit_sha=pr.merge_commit_sha.lower() if pr.merge_commit_sha else None,
            head_sha=pr.head.sha.lower(),
            head_ref=pr.head.ref if _same_repository(event) else None,
            author=pr.user.login if pr.user is not None else None,
            closed_at=pr.closed_at,
            title=pr.title,
            branch=pr.head.ref,
            labels=tuple(label.name for label in pr.labels),
            size=_size(pr),
        )
    )


def _same_repository(event: Payload) -> bool:
    head = event.pull_request.head.repo
    return head is not None and head.full_name.lower() == event.repository.full_name.lower()


def _size(pr: _PullRequest) -> int | None:
    if pr.additions is None or pr.deletions is None:
        return None
    return pr.additions + pr.deletions
