"""``pull_request_review``: submitted reviews, by state, and each pull request's first review."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from observer.domain import Outcome, Result, Review
from observer.metrics.definitions import REVIEW_STATES
from observer.recorder import Recorder
from observer.sources.github.events.common import Model, Repository


class _User(Model):
    login: str = Field(max_length=100)


class _Review(Model):
    id: int
    user: _User
    state: str = Field(max_length=100)
    submitted_at: AwareDatetime


class _PullRequest(Model):
    id: int
    created_at: AwareDatetime
    user: _User


class Payload(Model):
    action: str
    review: _Review
    pull_request: _PullRequest
    repository: Repository


async def record(event: Payload, recorder: Recorder) -> Result:
    if event.action != "submitted":
        return Result(Outcome.IGNORED, f"action {event.action!r} is not counted")
    state = event.review.state.lower()
    return await recorder.review(
        Review(
            repository=event.repository.full_name,
            pull_request_id=event.pull_request.id,
            # GitHub's states; anything new folds so that a label value stays from a known set.
            state=state if state in REVIEW_STATES else "other",
            submitted_at=event.review.submitted_at,
            opened_at=event.pull_request.created_at,
            reviewer=event.review.user.login,
            author=event.pull_request.user.login,
            # Review ids are unique across GitHub, so two hooks delivering one review agree.
            key=f"pull_request_review:{event.review.id}",
        )
    )
