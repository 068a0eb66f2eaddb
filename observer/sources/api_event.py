"""Events pushed to ``/api/event``: deployments GitHub never sees, incidents, and surveys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from observer.domain import (
    Commit,
    Deployment,
    IncidentOpened,
    IncidentResolved,
    Result,
)
from observer.recorder import Recorder
from observer.settings import Settings
from observer.sources.adapter import Refused
from observer.sources.bearer import Bearer
from observer.sources.github.adapter import GitHub
from observer.sources.github.events.common import Environment, RepositoryPath, Sha

SIGNATURE = "x-hub-signature-256"

EventId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S+$")
]


def _not_ahead(value: AwareDatetime, info: ValidationInfo) -> AwareDatetime:
    """Refuse a time past the arrival plus MAX_CLOCK_SKEW (given as validation context)."""
    latest = (info.context or {}).get("latest")
    if latest is not None and value.timestamp() > latest:
        raise ValueError("is in the future (later than now plus MAX_CLOCK_SKEW)")
    return value


class _Event(BaseModel):
    # Unknown fields are refused so that a misspelt field is reported, not silently dropped.
    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: RepositoryPath = Field(
        description="The repository, as owner/name, or a path with subgroups (group/sub/name)."
    )


class ShippedCommit(BaseModel):
    """A commit the deployment ships, with its author time: lead time without the GitHub API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha: Sha
    timestamp: AwareDatetime = Field(description="The commit's author time, with a time zone.")


class DeploymentEvent(_Event):
    """A deployment that reached a terminal status."""

    type: Literal["deployment"]
    environment: Environment = Field(description="Lower-cased for the environment label.")
    status: Literal["success", "failure", "error"]
    timestamp: AwareDatetime = Field(description="When the deployment reached its status.")
    sha: Sha | None = Field(default=None, description="The deployed commit.")
    id: EventId | None = Field(
        default=None, description="Makes the event idempotent: sent twice, counted once."
    )
    commits: list[ShippedCommit] = Field(
        default_factory=list,
        max_length=1000,
        description="The commits this deployment ships, when the pipeline knows them.",
    )

    _timestamp_not_ahead = field_validator("timestamp")(_not_ahead)


class IncidentEvent(_Event):
    """An incident opened, or resolved."""

    type: Literal["incident"]
    action: Literal["opened", "resolved"]
    id: EventId = Field(description="The incident's id; opened and resolved events share it.")
    opened_at: AwareDatetime
    resolved_at: AwareDatetime | None = Field(
        default=None, validate_default=True, description="Required when action is resolved."
    )

    _opened_not_ahead = field_validator("opened_at")(_not_ahead)

    @field_validator("resolved_at")
    @classmethod
    def _resolution_is_consistent(
        cls, value: AwareDatetime | None, info: ValidationInfo
    ) -> AwareDatetime | None:
        action, opened_at = info.data.get("action"), info.data.get("opened_at")
        if action == "resolved" and value is None:
            raise ValueError("required when action is resolved")
        if value is not None and opened_at is not None and value < opened_at:
            raise ValueError("is before opened_at")
        return value if value is None else _not_ahead(value, info)


class SurveyEvent(BaseModel):
    """An anonymous pulse-survey answer: no person, only the team it is about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["survey"]
    team: str = Field(
        min_length=1,
        max_length=200,
        description="A team of TEAMS_FILE, without regard to case; any other counts as other.",
    )
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="1 to 5.")
    nps: int | None = Field(
        default=None, ge=0, le=10, description="How likely to recommend the team, 0 to 10."
    )
    timestamp: AwareDatetime | None = Field(
        default=None, description="When it was answered; the team's size is judged then."
    )
    id: EventId | None = Field(
        default=None, description="Makes the answer idempotent: sent twice, counted once."
    )

    @model_validator(mode="after")
    def _answers_something(self) -> SurveyEvent:
        if self.satisfaction is None and self.nps is None:
            raise ValueError("give satisfaction, nps, or both")
        return self


AnyEvent = DeploymentEvent | IncidentEvent | SurveyEvent
Event = Annotated[AnyEvent, Field(discriminator="type")]

EVENT = TypeAdapter[AnyEvent](Event)


def event_list(max_items: int) -> TypeAdapter[list[AnyEvent]]:
    return TypeAdapter(Annotated[list[Event], Field(min_length=1, max_length=max_items)])


async def apply(event: AnyEvent, recorder: Recorder) -> Result:
    if isinstance(event, SurveyEvent):
        return await recorder.survey(
            event.team,
            event.satisfaction,
            event.nps,
            event.timestamp or datetime.now(UTC),
            f"api:survey:{event.id}" if event.id else None,
        )
    repository = event.repository.lower()
    if isinstance(event, DeploymentEvent):
        return await recorder.deployment(
            Deployment(
                repository=event.repository,
                environment=event.environment,
                status=event.status,
                time=event.timestamp,
                key=f"api:deployment:{repository}:{event.id}:{event.status}" if event.id else None,
                sha=event.sha.lower() if event.sha else None,
                commits=tuple(Commit(c.sha.lower(), c.timestamp) for c in event.commits),
            )
        )
    key = f"api:incident:{repository}:{event.id}"
    if event.action == "opened":
        return await recorder.incident_opened(
            IncidentOpened(event.repository, f"{key}:opened", opened_at=event.opened_at)
        )
    assert event.resolved_at is not None  # checked by the model
    return await recorder.incident_resolved(
        IncidentResolved(
            event.repository,
            opened_at=event.opened_at,
            resolved_at=event.resolved_at,
            key=f"{key}:resolved",
        )
    )


class Credentials:
    """A pipeline authenticates with the bearer ``API_TOKEN``, or signs as a GitHub hook does."""

    def __init__(self, settings: Settings) -> None:
        self._bearer = Bearer(settings)
        self._signed = GitHub(settings)

    def precheck(self, headers: Mapping[str, str]) -> None:
        if self._bearer.present(headers):
            self._bearer.precheck(headers)
        elif SIGNATURE not in headers:
            raise Refused(401, "missing bearer token or X-Hub-Signature-256")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self._bearer.present(headers):
            self._signed.authenticate(headers, body)
