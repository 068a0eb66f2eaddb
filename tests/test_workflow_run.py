"""Deployments from GitHub Actions runs: DEPLOY_WORKFLOWS and DEPLOY_BRANCHES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import respx

from tests.conftest import API, Service, load_fixture
from tests.story import REPO, iso, push, sha
from tests.story import at as hours
from tests.test_lead_time import graphql, lead_times, settle

Start = Callable[..., Service]
DEPLOY = "Deploy=production"


def run(
    conclusion: str = "success",
    *,
    run_id: int = 7432101234,
    attempt: int = 1,
    branch: str = "main",
    name: str = "Deploy",
    path: str = ".github/workflows/deploy.yml",
    head_sha: str | None = None,
    updated_at: str = "2026-11-23T10:30:00Z",
    action: str = "completed",
) -> dict[str, Any]:
    payload = load_fixture("workflow_run_completed_success")
    payload["action"] = action
    payload["workflow_run"].update(
        id=run_id,
        run_attempt=attempt,
        head_branch=branch,
        name=name,
        path=path,
        conclusion=conclusion,
        updated_at=updated_at,
    )
    if head_sha is not None:
        payload["workflow_run"]["head_sha"] = head_sha
    return payload


def deployments(service: Service, status: str, environment: str = "production") -> float:
    return service.metrics().get(
        "dora_deployments_total", repository=REPO, environment=environment, status=status
    )


def result(service: Service, payload: dict[str, Any]) -> str:
    response = service.deliver("workflow_run", payload)
    assert response.status_code == 200, response.text
    outcome: str = response.json()["result"]
    return outcome


def test_the_fixtures_are_deployments_of_their_conclusion(start: Start) -> None:
    service = start(deploy_workflows=DEPLOY)
    assert service.deliver_fixture("workflow_run_completed_failure").status_code == 200
    assert service.deliver_fixture("workflow_run_completed_success").status_code == 200
    assert deployments(service, "failure") == deployments(service, "success") == 1
    # Failed at 10:00, succeeded at 10:30, as the runs' updated_at say.
    recovery = service.metrics().get(
        "dora_deployment_recovery_seconds_sum", repository=REPO, environment="production"
    )
    assert recovery == 1800


def test_conclusions_success_failure_timed_out_count_and_others_do_not(start: Start) -> None:
    service = start(deploy_workflows=DEPLOY)
    outcomes = {
        conclusion: result(service, run(conclusion, run_id=index))
        for index, conclusion in enumerate(
            [
                "success",
                "failure",
                "timed_out",
                "cancelled",
                "skipped",
                "neutral",
                "action_required",
            ]
        )
    }
    assert outcomes == {
        "success": "accepted",
        "failure": "accepted",
        "timed_out": "accepted",
        "cancelled": "ignored",
        "skipped": "ignored",
        "neutral": "ignored",
        "action_required": "ignored",
    }
    assert deployments(service, "success") == 1
    assert deployments(service, "failure") == 2
    assert result(service, run(action="requested", run_id=99)) == "ignored"


def test_each_attempt_counts_once_however_often_it_is_delivered(start: Start) -> None:
    service = start(deploy_workflows=DEPLOY)
    assert result(service, run("failure", attempt=1)) == "accepted"
    # The same attempt again, as an organisation hook and a repository hook both send it.
    assert result(service, run("failure", attempt=1)) == "duplicate"
    assert result(service, run("success", attempt=2, updated_at="2026-11-23T11:00:00Z")) == (
        "accepted"
    )
    assert deployments(service, "failure") == 1
    assert deployments(service, "success") == 1


def test_workflows_by_name_or_path_each_to_its_environment(start: Start) -> None:
    service = start(
        deploy_workflows="deploy to staging=staging, .github/workflows/release.yml=Production"
    )
    assert result(service, run(run_id=1, name="Deploy to Staging", path="x.yml")) == "accepted"
    release = ".github/workflows/release.yml@refs/heads/main"
    assert result(service, run(run_id=2, name="Release", path=release)) == "accepted"
    assert result(service, run(run_id=3, name="CI", path=".github/workflows/ci.yml")) == "ignored"
    assert deployments(service, "success", "staging") == 1
    assert deployments(service, "success", "production") == 1


def test_only_the_default_branch_counts_unless_branches_are_named(start: Start) -> None:
    default = start(deploy_workflows=DEPLOY)
    assert result(default, run(run_id=1, branch="main")) == "accepted"
    assert result(default, run(run_id=2, branch="feature/x")) == "ignored"
    named = start(deploy_workflows=DEPLOY, deploy_branches="release, hotfix")
    assert result(named, run(run_id=1, branch="main")) == "ignored"
    assert result(named, run(run_id=2, branch="release")) == "accepted"
    assert result(named, run(run_id=3, branch="hotfix")) == "accepted"
    assert deployments(default, "success") == 1
    assert deployments(named, "success") == 2


def test_without_deploy_workflows_runs_are_acknowledged_and_ignored(service: Service) -> None:
    assert result(service, run()) == "ignored"
    assert service.metrics().domain() == {}


def test_a_run_gets_lead_time_like_any_deployment(start: Start) -> None:
    with respx.mock(base_url=API, assert_all_called=False) as github:
        github.get(f"/repos/{REPO}/deployments").mock(return_value=httpx.Response(200, json=[]))
        graphql(github)  # c2 belongs to no pull request
        service = start(
            deploy_workflows=DEPLOY, github_token="ghp_test-token", github_max_retries=0
        )
        assert service.deliver("push", push([("c2", 10)])).status_code == 200
        deployed = run(head_sha=sha("c2"), updated_at=iso(hours(12)))
        assert result(service, deployed) == "accepted"
        # Pushed at 10 h, deployed by the run that ended at 12 h.
        assert lead_times(settle(service)) == (1, 2 * 3600)
