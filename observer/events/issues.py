"""``issues``: an issue carrying the incident label is an incident; closing it resolves it."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from observer.domain import IncidentOpened, IncidentResolved, Outcome, Result
from observer.events.common import Label, Model, Repository
from observer.recorder import Recorder

# Only these actions' payloads are validated; the others are acknowledged (observer.events).
HANDLED_ACTIONS = frozenset({"opened", "labeled", "closed"})


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


async def record(event: Payload, recorder: Recorder) -> Result:
    issue = event.issue
    wanted = recorder.incident_label
    is_incident = any(label.name.lower() == wanted for label in issue.labels)
    repository = event.repository.full_name
    # GitHub sends both 'opened' and 'labeled' for an issue created with the label; one key
    # per issue makes them one incident.
    opened_key = f"incident:issue:{issue.id}:opened"
    if event.action == "opened" and is_incident:
        return await recorder.incident_opened(
            IncidentOpened(repository, opened_key, opened_at=issue.created_at)
        )
    if (
        event.action == "labeled"
        and event.label is not None
        and event.label.name.lower() == wanted
        and issue.state == "open"
    ):
        # It became an incident when the label was added: the issue's last update.
        return await recorder.incident_opened(
            IncidentOpened(repository, opened_key, opened_at=issue.updated_at or issue.created_at)
        )
    if event.action == "closed" and is_incident and issue.closed_at is not None:
        return await recorder.incident_resolved(
            IncidentResolved(
                repository,
                opened_at=issue.created_at,
                resolved_at=issue.closed_at,
                key=f"incident:issue:{issue.id}:resolved",
                opened_key=opened_key,
            )
        )
    return Result(Outcome.IGNORED, f"not an incident event (label {wanted!r})")
