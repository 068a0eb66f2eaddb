"""An Alertmanager notification (webhook payload version 4), turned into incidents.

Each alert that matches ``INCIDENT_ALERTS`` and carries the repository label is one incident,
named by its fingerprint and ``startsAt``: the same alert firing again after it resolved starts
anew, with a new ``startsAt``. A firing alert opens it at ``startsAt``; a resolved one resolves
it at ``endsAt``. Alertmanager repeats a group's notification every ``repeat_interval`` and
groups alerts as its route says, so an alert is seen many times, alone or beside others: each
opening and each resolution is counted once (observer.recorder.Recorder.source_incident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from observer.domain import Outcome, Result, SourceIncident
from observer.recorder import Recorder
from observer.settings import REPOSITORY_PATH
from observer.sources.alertmanager.matchers import Matchers

# Alertmanager's fingerprints are 16 hex digits; other senders of this format use other ids.
Fingerprint = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime  # Alertmanager's spelling
    endsAt: AwareDatetime | None = None
    fingerprint: Fingerprint

    @model_validator(mode="after")
    def _resolved_after_start(self) -> Alert:
        if self.status == "resolved" and (self.endsAt is None or self.endsAt < self.startsAt):
            raise ValueError("a resolved alert needs endsAt, not before startsAt")
        return self


class Notification(_Model):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(max_length=10_000)


@dataclass(frozen=True, slots=True)
class Incidents:
    """Which alerts are incidents, and of which repository."""

    matchers: Matchers
    repository_label: str

    def of(self, alert: Alert) -> SourceIncident | str:
        """The incident ``alert`` tells, or why it is none."""
        if not self.matchers.matches(alert.labels):
            return "does not match INCIDENT_ALERTS"
        repository = alert.labels.get(self.repository_label)
        if repository is None:
            return f"has no {self.repository_label} label"
        if not REPOSITORY_PATH.match(repository):
            return f"has a {self.repository_label} label that is not owner/name"
        start = alert.startsAt
        return SourceIncident(
            repository=repository,
            key=f"alertmanager:{alert.fingerprint}:{start.timestamp():.6f}",
            opened_at=start,
            resolved_at=alert.endsAt if alert.status == "resolved" else None,
        )

    async def record(self, notification: Notification, recorder: Recorder) -> Result:
        results: list[Result] = []
        reasons: dict[str, int] = {}
        for alert in notification.alerts:
            incident = self.of(alert)
            if isinstance(incident, str):
                reasons[incident] = reasons.get(incident, 0) + 1
                continue
            results.append(await recorder.source_incident(incident))
        return _combined(results, reasons)


def _combined(results: list[Result], reasons: Mapping[str, int]) -> Result:
    """One answer for the notification: accepted if any alert counted, else duplicate if any
    was counted before, else ignored, saying why the alerts were not incidents."""
    repositories = {result.repository for result in results if result.repository is not None}
    repository = repositories.pop() if len(repositories) == 1 else None
    parts = [f"{count} alert(s) {reason}" for reason, count in sorted(reasons.items())]
    parts += sorted({result.detail for result in results if result.detail})
    detail = "; ".join(parts) or None
    for outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
        if any(result.outcome is outcome for result in results):
            return Result(outcome, detail, repository)
    return Result(Outcome.IGNORED, detail or "no alerts", repository)
