"""GitLab's documented payloads, each parsed into the domain's events."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from observer.domain import (
    Commit,
    Deployment,
    IssueIncident,
    Outcome,
    PullRequest,
    Push,
    Result,
    Review,
)
from observer.sources.gitlab.events import EVENTS
from tests.gitlab import load


class Recording:
    """What a handler asked the recorder to record: the domain's events, nothing counted."""

    incident_label = "incident"

    def __init__(self) -> None:
        self.recorded: list[object] = []

    async def _keep(self, event: object) -> Result:
        self.recorded.append(event)
        return Result(Outcome.ACCEPTED)

    push = pull_request = review = deployment = issue_incident = _keep


def handle(event: str, payload: Any) -> tuple[Result, list[object]]:
    recorder = Recording()
    result = asyncio.run(EVENTS[event](payload, recorder))  # type: ignore[arg-type]
    return result, recorder.recorded


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_the_documented_push() -> None:
    _, recorded = handle("Push Hook", load("push"))
    first = Commit("b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327", utc("2011-12-12T14:27:31+02:00"))
    second = Commit("da1560886d4f094c3e6c9ef40349f7d38b5d27d7", utc("2012-01-03T23:36:29+02:00"))
    assert recorded == [
        Push(
            repository="mike/diaspora",
            ref="refs/heads/master",
            key="gitlab:push:mike/diaspora:refs/heads/master:"
            "95790bf891e76fee5e1747ab589903a6a1f80f22:da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            after="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            before="95790bf891e76fee5e1747ab589903a6a1f80f22",
            commits=(first, second),
            new=(first, second),
            # Two listed, four pushed: GitLab's count is the count.
            new_count=4,
        )
    ]


def test_a_deleted_branch_counts_no_commit() -> None:
    payload = load("push")
    payload.update(after="0" * 40, commits=[], total_commits_count=0)
    _, [push] = handle("Push Hook", payload)
    assert isinstance(push, Push) and push.deleted and push.new == () and not push.new_count


def test_the_documented_merge_request_opening() -> None:
    _, recorded = handle("Merge Request Hook", load("merge_request"))
    assert recorded == [
        PullRequest(
            repository="gitlabhq/gitlab-test",
            number=1,
            action="opened",
            created_at=utc("2013-12-03T17:23:34+00:00"),
            key="gitlab:merge_request:99:open",
            head_sha="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            head_ref="ms-viewport",
            title="MS-Viewport",
            branch="ms-viewport",
            labels=("API",),
        )
    ]


@pytest.mark.parametrize(
    ("action", "counted"), [("merge", "merged"), ("close", "closed"), ("reopen", "opened")]
)
def test_merge_close_and_reopen_are_timed_at_updated_at(action: str, counted: str) -> None:
    payload = load("merge_request")
    # GitLab writes this one in Ruby's way; the merge is what last updated the merge request.
    payload["object_attributes"].update(action=action, updated_at="2013-12-04 09:00:00 UTC")
    _, [pr] = handle("Merge Request Hook", payload)
    assert isinstance(pr, PullRequest)
    assert pr.action == counted
    moment = datetime(2013, 12, 4, 9, tzinfo=UTC)
    assert pr.time == (moment if counted != "opened" else pr.created_at)
    assert pr.merged_at == (moment if counted == "merged" else None)
    assert pr.key == f"gitlab:merge_request:99:{action}:{moment.timestamp():.0f}"
    assert pr.author is None


def test_an_approval_is_a_review_without_a_login_in_its_key() -> None:
    payload = load("merge_request")
    payload["object_attributes"].update(action="approved", updated_at="2013-12-03T18:23:34Z")
    _, [review] = handle("Merge Request Hook", payload)
    assert review == Review(
        repository="gitlabhq/gitlab-test",
        pull_request_id="gitlab:99",
        state="approved",
        submitted_at=utc("2013-12-03T18:23:34+00:00"),
        opened_at=utc("2013-12-03T17:23:34+00:00"),
        reviewer="root",
        author="gitlab-user-id:51",
        key=f"gitlab:merge_request:99:approved:{utc('2013-12-03T18:23:34+00:00').timestamp():.0f}",
    )


@pytest.mark.parametrize("action", ["update", "unapproved", "approval", "unapproval", None])
def test_other_merge_request_actions_are_ignored_unread(action: str | None) -> None:
    payload: dict[str, Any] = {"object_attributes": {"action": action}}
    result, recorded = handle("Merge Request Hook", payload)
    assert result.outcome is Outcome.IGNORED and recorded == []


def test_the_documented_deployment() -> None:
    _, recorded = handle("Deployment Hook", load("deployment"))
    assert recorded == [
        Deployment(
            repository="root/test-deployment-webhooks",
            environment="staging",
            status="success",
            time=datetime(2021, 4, 28, 21, 50, tzinfo=timezone(timedelta(hours=2))),
            key="gitlab:deployment:15:success",
            # commit_url ends with the full sha; short_sha is its first 8 characters.
            sha="279484c09fbe69ededfced8c1bb6e6d24616b468",
            forge="gitlab",
        )
    ]


def test_a_failed_deployment_is_a_failure() -> None:
    payload = load("deployment")
    payload["status"] = "failed"
    _, [deployment] = handle("Deployment Hook", payload)
    assert isinstance(deployment, Deployment)
    assert (deployment.status, deployment.key) == ("failure", "gitlab:deployment:15:failure")


@pytest.mark.parametrize("status", ["running", "created", "canceled", "blocked"])
def test_other_deployment_statuses_are_ignored(status: str) -> None:
    payload = load("deployment")
    payload["status"] = status
    result, recorded = handle("Deployment Hook", payload)
    assert result.outcome is Outcome.IGNORED and recorded == []


def test_a_deployment_without_a_full_sha_keeps_none() -> None:
    payload = load("deployment")
    del payload["commit_url"]
    _, [deployment] = handle("Deployment Hook", payload)
    assert isinstance(deployment, Deployment) and deployment.sha is None


def test_the_documented_issue_is_no_incident() -> None:
    result, recorded = handle("Issue Hook", load("issue"))
    assert result.outcome is Outcome.IGNORED and recorded == []


def incident(**attributes: Any) -> dict[str, Any]:
    payload = load("issue")
    payload["object_attributes"].update(attributes)
    del payload["changes"]["labels"]
    return payload


def test_an_incident_opened_is_an_incident() -> None:
    _, recorded = handle("Issue Hook", incident(type="Incident"))
    assert recorded == [
        IssueIncident("gitlabhq/gitlab-test", "gitlab:301", True, utc("2013-12-03T17:15:43+00:00"))
    ]


def test_the_older_issue_type_field_names_an_incident_too() -> None:
    _, recorded = handle("Confidential Issue Hook", incident(type=None, issue_type="incident"))
    assert len(recorded) == 1


def test_an_incident_closed_resolves_at_closed_at() -> None:
    payload = incident(
        type="Incident",
        action="close",
        state="closed",
        closed_at="2013-12-03 18:15:43 UTC",
        updated_at="2013-12-03 18:15:44 UTC",
    )
    _, recorded = handle("Issue Hook", payload)
    assert recorded == [
        IssueIncident("gitlabhq/gitlab-test", "gitlab:301", False, utc("2013-12-03T18:15:43+00:00"))
    ]


def test_an_issue_opened_with_the_label_is_an_incident() -> None:
    payload = incident()
    payload["object_attributes"]["labels"][0]["title"] = "Incident"
    _, recorded = handle("Issue Hook", payload)
    assert [event.opens for event in recorded] == [True]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("previous", "current", "opens"), [("API", "incident", True), ("incident", "API", False)]
)
def test_the_label_added_or_removed_opens_or_resolves(
    previous: str, current: str, opens: bool
) -> None:
    payload = copy.deepcopy(load("issue"))
    payload["object_attributes"].update(action="update", updated_at="2017-09-15T16:52:00Z")
    payload["changes"]["labels"]["previous"][0]["title"] = previous
    payload["changes"]["labels"]["current"][0]["title"] = current
    _, recorded = handle("Issue Hook", payload)
    assert recorded == [
        IssueIncident("gitlabhq/gitlab-test", "gitlab:301", opens, utc("2017-09-15T16:52:00+00:00"))
    ]


def test_an_incident_reopened_opens_a_new_period() -> None:
    _, [event] = handle(
        "Issue Hook", incident(type="Incident", action="reopen", updated_at="2013-12-05T10:00:00Z")
    )
    assert isinstance(event, IssueIncident) and event.reopened and event.opens


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("Push Hook", {"ref": "refs/heads/main"}),
        ("Deployment Hook", {"status": "success", "project": {"path_with_namespace": "a/b"}}),
        ("Merge Request Hook", {"object_attributes": {"action": "merge"}}),
        ("Issue Hook", {"object_attributes": {"action": "open", "id": "x"}}),
    ],
)
def test_a_handled_payload_that_lacks_what_it_needs_fails_validation(
    event: str, payload: Any
) -> None:
    with pytest.raises(ValidationError):
        handle(event, payload)


def test_a_project_path_that_is_not_a_path_fails_validation() -> None:
    payload = load("deployment")
    payload["project"]["path_with_namespace"] = "no-namespace"
    with pytest.raises(ValidationError):
        handle("Deployment Hook", payload)
