"""PagerDuty's ``incident.triggered`` and ``incident.resolved``, as incidents of repositories.

``incident.triggered`` opens the incident at the event's ``occurred_at``. ``incident.resolved``
resolves it at its ``occurred_at``, and its recovery is timed from the incident's own
``created_at``, which every incident event carries: the time PagerDuty's analytics count time
to resolve from, right even when the triggered event was never delivered. The incident's id
(``event.data.id``) is its identity, so a triggered event arriving after the resolved one, or
either one delivered twice, is counted once. Only the service is read from the incident:
never its assignees, agent or title, which name people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from observer.domain import Outcome, Result, SourceIncident
from observer.recorder import Recorder

PagerDutyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Service(_Model):
    id: PagerDutyId
    summary: str = ""


class Incident(_Model):
    id: PagerDutyId
    created_at: AwareDatetime | None = None
    service: Service


class Event(_Model):
    id: str
    event_type: str
    occurred_at: AwareDatetime
    data: Incident


class Webhook(_Model):
    event: Event


@dataclass(frozen=True, slots=True)
class Services:
    """``PAGERDUTY_SERVICES``: a service's id, or its name without regard to case, to a
    repository."""

    by_id: Mapping[str, str]
    by_name: Mapping[str, str]

    @classmethod
    def of(cls, pairs: tuple[tuple[str, str], ...]) -> Services:
        return cls(
            {service: repository for service, repository in pairs},
            {service.lower(): repository for service, repository in pairs},
        )

    def repository(self, service: Service) -> str | None:
        found = self.by_id.get(service.id)
        return found if found is not None else self.by_name.get(service.summary.lower())


@dataclass(frozen=True, slots=True)
class Handlers:
    services: Services

    async def triggered(self, payload: object, recorder: Recorder) -> Result:
        event = Webhook.model_validate(payload).event
        return await self._record(event, recorder, resolved=False)

    async def resolved(self, payload: object, recorder: Recorder) -> Result:
        event = Webhook.model_validate(payload).event
        return await self._record(event, recorder, resolved=True)

    async def _record(self, event: Event, recorder: Recorder, *, resolved: bool) -> Result:
        incident = event.data
        repository = self.services.repository(incident.service)
        if repository is None:
            return Result(
                Outcome.IGNORED,
                f"service {incident.service.id} ({incident.service.summary[:100]}) is not in "
                "PAGERDUTY_SERVICES",
            )
        opened_at = event.occurred_at
        if resolved and incident.created_at is not None:
            opened_at = incident.created_at
        return await recorder.source_incident(
            SourceIncident(
                repository=repository,
                key=f"pagerduty:{incident.id}",
                opened_at=opened_at,
                resolved_at=event.occurred_at if resolved else None,
            )
        )
