"""``workflow_run``: a completed run of a deploying workflow is a deployment (DEPLOY_WORKFLOWS)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from observer.domain import GITHUB, Deployment, Outcome, Result
from observer.recorder import Recorder
from observer.sources.github.events.common import Model, Repository, Sha
from observer.sources.github.workflows import DeployWorkflows

# GitHub's conclusions that are deployments; cancelled, skipped, neutral and the rest are not.
STATUSES = {"success": "success", "failure": "failure", "timed_out": "failure"}


class _Run(Model):
    id: int
    run_attempt: int = Field(default=1, ge=1)
    name: str | None = Field(default=None, max_length=1000)
    path: str = Field(default="", max_length=1000)
    head_branch: str | None = Field(default=None, max_length=1000)
    head_sha: Sha
    conclusion: str | None = None
    updated_at: AwareDatetime


class _Repository(Repository):
    default_branch: str | None = None


class Payload(Model):
    action: str
    workflow_run: _Run
    repository: _Repository


async def record(event: Payload, recorder: Recorder, workflows: DeployWorkflows) -> Result:
    run = event.workflow_run
    if event.action != "completed":
        return Result(Outcome.IGNORED, f"action {event.action!r} is not counted")
    environment = workflows.environment(run.name, run.path)
    if environment is None:
        return Result(Outcome.IGNORED, "workflow is not in DEPLOY_WORKFLOWS")
    if not workflows.branch_counts(run.head_branch, event.repository.default_branch):
        return Result(Outcome.IGNORED, "branch is not in DEPLOY_BRANCHES")
    status = STATUSES.get(run.conclusion or "")
    if status is None:
        return Result(Outcome.IGNORED, f"conclusion {run.conclusion!r} is not a deployment")
    return await recorder.deployment(
        Deployment(
            repository=event.repository.full_name,
            environment=environment,
            status=status,
            time=run.updated_at,
            # Run ids are unique across GitHub; a re-run is a new attempt of the same run.
            key=f"workflow_run:{run.id}:{run.run_attempt}",
            sha=run.head_sha.lower(),
            forge=GITHUB,
        )
    )
