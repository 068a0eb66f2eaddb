"""``Issue Hook``: an incident, or an issue carrying ``INCIDENT_LABEL``, is an incident while open.

An issue of type incident (GitLab's incident management) is one from its opening to its
closing; any other issue is one while it is open and carries the label. GitLab sends label
changes as an ``update`` with ``changes.labels``; its payloads carry no time of the change
itself, so the issue's ``updated_at`` in that delivery is when it happened (as on GitHub).
observer.incidents keeps each issue's periods, so repeats and group plus project hooks count
once.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import Field

from observer.domain import IssueIncident, Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Model
from observer.sources.gitlab.events.common import Label, Project, Time, carries

HANDLED_ACTIONS = frozenset({"open", "close", "reopen", "update"})
INCIDENT = "incident"


class _Issue(Model):
    id: int
    action: str
    state: str = Field(max_length=100)
    created_at: Time
    updated_at: Time | None = None
    closed_at: Time | None = None
    # The work item's type ("Issue", "Incident"); older versions sent issue_type ("incident").
    type: str | None = Field(default=None, max_length=100)
    issue_type: str | None = Field(default=None, max_length=100)
    labels: list[Label] = Field(default_factory=list, max_length=1000)


class _LabelChange(Model):
    previous: list[Label] = Field(default_factory=list, max_length=1000)
    current: list[Label] = Field(default_factory=list, max_length=1000)


class _Changes(Model):
    labels: _LabelChange | None = None


class Payload(Model):
    object_attributes: _Issue
    project: Project
    labels: list[Label] = Field(default_factory=list, max_length=1000)
    changes: _Changes = Field(default_factory=_Changes)


def _is_incident_type(issue: _Issue) -> bool:
    return INCIDENT in ((issue.type or "").lower(), (issue.issue_type or "").lower())


def _transition(event: Payload, wanted: str) -> IssueIncident | None:
    """The incident the event opens or ends, and when; None when it does neither."""
    issue = event.object_attributes
    changed = issue.updated_at or issue.created_at
    is_open = issue.state == "opened"
    incident = partial(IssueIncident, event.project.path_with_namespace, f"gitlab:{issue.id}")
    typed = _is_incident_type(issue)
    labelled = carries(issue.labels or event.labels, wanted)
    change = event.changes.labels
    if issue.action == "update":
        if typed or change is None or not is_open:
            return None
        had, has = carries(change.previous, wanted), carries(change.current, wanted)
        return incident(has, changed) if had != has else None
    if not (typed or labelled):
        return None
    if issue.action == "open" and is_open:
        return incident(True, issue.created_at)
    if issue.action == "reopen" and is_open:
        return incident(True, changed, reopened=True)
    if issue.action == "close":
        return incident(False, issue.closed_at or changed)
    return None


def action_of(payload: Any) -> object:
    attributes = payload.get("object_attributes") if isinstance(payload, dict) else None
    return attributes.get("action") if isinstance(attributes, dict) else None


async def handle(payload: Any, recorder: Recorder) -> Result:
    action = action_of(payload)
    if not isinstance(action, str) or action not in HANDLED_ACTIONS:
        return Result(Outcome.IGNORED, f"action {str(action)[:64]!r} is not used")
    wanted = recorder.incident_label
    incident = _transition(Payload.model_validate(payload), wanted)
    if incident is None:
        return Result(Outcome.IGNORED, f"not an incident event (type incident or label {wanted!r})")
    return await recorder.issue_incident(incident)
