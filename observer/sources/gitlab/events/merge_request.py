"""``Merge Request Hook``: opened, reopened, merged, closed; an approval is a review.

GitLab's merge request payload carries no ``merged_at`` nor ``closed_at``: the merge or the
closing is what last updated the merge request, so its ``updated_at`` in that delivery is when
it happened. Nor does it carry the author's username (only ``author_id``), so merge requests
count in the repository figures but not in any team's.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from observer.domain import Outcome, PullRequest, Result, Review
from observer.recorder import Recorder
from observer.sources.github.events.common import Model, Sha
from observer.sources.gitlab.events.common import Label, Project, Time, User

# GitLab's actions and what each counts as; others (update, unapproved, approval, ...) are
# acknowledged without reading the rest of the payload.
ACTIONS = {"open": "opened", "reopen": "opened", "merge": "merged", "close": "closed"}
APPROVED = "approved"
HANDLED_ACTIONS = frozenset({*ACTIONS, APPROVED})


class _LastCommit(Model):
    id: Sha


class _MergeRequest(Model):
    id: int
    iid: int
    action: str
    created_at: Time
    updated_at: Time
    author_id: int | None = None
    source_branch: str = Field(max_length=1000)
    source_project_id: int | None = None
    target_project_id: int | None = None
    title: str = Field(default="", max_length=10_000)
    labels: list[Label] = Field(default_factory=list, max_length=1000)
    merge_commit_sha: Sha | None = None
    last_commit: _LastCommit | None = None


class Payload(Model):
    object_attributes: _MergeRequest
    project: Project
    user: User


def action_of(payload: Any) -> object:
    attributes = payload.get("object_attributes") if isinstance(payload, dict) else None
    return attributes.get("action") if isinstance(attributes, dict) else None


async def handle(payload: Any, recorder: Recorder) -> Result:
    action = action_of(payload)
    if not isinstance(action, str) or action not in HANDLED_ACTIONS:
        return Result(Outcome.IGNORED, f"action {str(action)[:64]!r} is not counted")
    event = Payload.model_validate(payload)
    mr = event.object_attributes
    if action == APPROVED:
        return await recorder.review(_review(event))
    counted = ACTIONS[action]
    # Opened once; each reopening, merge and closing at its own time (an MR can be closed,
    # reopened and closed again).
    moment = "" if action == "open" else f":{mr.updated_at.timestamp():.0f}"
    repository = event.project.path_with_namespace
    same_project = mr.source_project_id is not None and mr.source_project_id == mr.target_project_id
    return await recorder.pull_request(
        PullRequest(
            repository=repository,
            number=mr.iid,
            action=counted,
            created_at=mr.created_at,
            key=f"gitlab:merge_request:{mr.id}:{action}{moment}",
            merged_at=mr.updated_at if counted == "merged" else None,
            merge_commit_sha=mr.merge_commit_sha.lower() if mr.merge_commit_sha else None,
            head_sha=mr.last_commit.id.lower() if mr.last_commit else None,
            head_ref=mr.source_branch if same_project else None,
            author=None,
            closed_at=mr.updated_at if counted == "closed" else None,
            title=mr.title,
            branch=mr.source_branch,
            labels=tuple(label.title for label in mr.labels),
        )
    )


def _review(event: Payload) -> Review:
    mr = event.object_attributes
    return Review(
        repository=event.project.path_with_namespace,
        pull_request_id=f"gitlab:{mr.id}",
        state="approved",
        submitted_at=mr.updated_at,
        opened_at=mr.created_at,
        reviewer=event.user.username,
        # Not a login: the payload names the author by id only, which no login equals.
        author=f"gitlab-user-id:{mr.author_id}",
        key=f"gitlab:merge_request:{mr.id}:approved:{mr.updated_at.timestamp():.0f}",
    )
