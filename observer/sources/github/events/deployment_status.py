"""``deployment_status``: a deployment reached a state; the terminal ones are counted."""

from __future__ import annotations

from pydantic import AwareDatetime

from observer.domain import GITHUB, Deployment, Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Environment, Model, Repository, Sha

TERMINAL_STATES = frozenset({"success", "failure", "error"})


class _Status(Model):
    id: int
    state: str
    created_at: AwareDatetime
    environment: Environment | None = None


class _Deployment(Model):
    id: int
    sha: Sha
    environment: Environment


class Payload(Model):
    deployment_status: _Status
    deployment: _Deployment
    repository: Repository


async def record(event: Payload, recorder: Recorder) -> Result:
    status = event.deployment_status
    if status.state not in TERMINAL_STATES:
        return Result(Outcome.IGNORED, f"state {status.state!r} is not terminal")
    return await recorder.deployment(
        Deployment(
            repository=event.repository.full_name,
            environment=status.environment or event.deployment.environment,
            status=status.state,
            time=status.created_at,
            # Once per deployment and terminal state, however many statuses of that state it
            # gets; deployment ids are unique across GitHub, so two hooks agree.
            key=f"deployment:{event.deployment.id}:{status.state}",
            sha=event.deployment.sha.lower(),
            forge=GITHUB,
        )
    )
