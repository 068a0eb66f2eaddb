"""``Deployment Hook``: a deployment that succeeded or failed is counted, once per status.

GitLab sends a deployment's statuses as it goes (``running``, ``success``, ``failed``,
``canceled``); only the two that end it are deployments here. The payload names the deployed
commit by ``short_sha`` and by ``commit_url``, which ends with the full sha: that is the sha kept.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from observer.domain import Deployment, Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Environment, Model
from observer.sources.gitlab.events.common import Project, Time

# GitLab's terminal statuses, as the domain's.
STATUSES = {"success": "success", "failed": "failure"}
_COMMIT_URL = re.compile(r"/commit/([0-9a-fA-F]{40}|[0-9a-fA-F]{64})/?$")


class Payload(Model):
    status: str = Field(max_length=100)
    status_changed_at: Time
    deployment_id: int
    environment: Environment
    commit_url: str | None = Field(default=None, max_length=2000)
    project: Project


def _sha(commit_url: str | None) -> str | None:
    match = _COMMIT_URL.search(commit_url or "")
    return match.group(1).lower() if match else None


async def handle(payload: Any, recorder: Recorder) -> Result:
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(status, str) or status not in STATUSES:
        return Result(Outcome.IGNORED, f"status {str(status)[:64]!r} is not terminal")
    event = Payload.model_validate(payload)
    counted = STATUSES[event.status]
    return await recorder.deployment(
        Deployment(
            repository=event.project.path_with_namespace,
            environment=event.environment,
            status=counted,
            time=event.status_changed_at,
            # Deployment ids are unique across a GitLab instance, so a group hook and a project
            # hook delivering one status agree.
            key=f"gitlab:deployment:{event.deployment_id}:{counted}",
            sha=_sha(event.commit_url),
            forge="gitlab",
        )
    )
