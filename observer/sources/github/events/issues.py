"""``issues``: an issue is an incident while it is open and carries the incident label.

Opening it with the label, reopening it with the label, or adding the label while it is open
starts an incident; closing it while it carries the label, or removing the label while it is
open, ends it (observer.incidents keeps each issue's periods).
"""

from __future__ import annotations

from functools import partial

from pydantic import AwareDatetime, Field

from observer.domain import IssueIncident, Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Label, Model, Repository

# Only these actions' payloads are validated; the others are acknowledged
# (observer.sources.github.events).
HANDLED_ACTIONS = frozenset({"opened", "labeled", "unlabeled", "closed", "reopened"})


class _Issue(Model):
    id: int
    state: str
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    labels: list[Label] = Field(default_factory=list, max_length=1000)


class Payload(Model):
    action: str
    issue: _Issue
    repository: Repository
    label: Label | None = None


def _transition(event: Payload, wanted: str) -> IssueIncident | None:
    """The incident the event opens or ends, and when; None when it does neither.

    GitHub's payloads carry no time of their own for labelling or reopening: the issue's
    ``updated_at`` in that delivery is when it happened.
    """
    issue = event.issue
    changed = issue.updated_at or issue.created_at
    carries = any(label.name.lower() == wanted for label in issue.labels)
    is_open = issue.state == "open"
    action = event.action
    incident = partial(IssueIncident, event.repository.full_name, issue.id)
    if action in ("labeled", "unlabeled"):
        if event.label is None or event.label.name.lower() != wanted or not is_open:
            return None
        return incident(action == "labeled", changed)
    if not carries:
        return None
    if action == "opened" and is_open:
        return incident(True, issue.created_at)
    if action == "reopened" and is_open:
        return incident(True, changed, reopened=True)
    if action == "closed":
        return incident(False, issue.closed_at or changed)
    return None


async def record(event: Payload, recorder: Recorder) -> Result:
    wanted = recorder.incident_label
    incident = _transition(event, wanted)
    if incident is None:
        return Result(Outcome.IGNORED, f"not an incident event (label {wanted!r})")
    return await recorder.issue_incident(incident)
