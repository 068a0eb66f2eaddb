"""GitLab webhooks through the real app: exact numbers, repeats, refusals, hostile input."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from observer.ops.logs import JsonFormatter
from tests.conftest import Service
from tests.exposition import Exposition
from tests.gitlab import (
    NUMBERS,
    REPO,
    SECRET,
    SIGNING_KEY,
    SIGNING_TOKEN,
    Delivery,
    at,
    deployment,
    headers,
    iso,
    load,
    merge_request,
    push,
    ruby,
    story,
)
from tests.story import sha


def deliver(service: Service, event: str, payload: dict[str, Any] | bytes, **options: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = headers(event, body, **options)
    return service.client.post("/gitlab", content=body, headers=sent)


def send(service: Service, step: Delivery, *, delivery: str | None = None, **options: Any) -> Any:
    body = step.body()
    sent = headers(step.event, body, delivery=delivery or step.delivery, **options)
    response = service.client.post("/gitlab", content=body, headers=sent)
    assert response.status_code == 200, response.text
    return response


def figures(exposition: Exposition, repository: str = REPO) -> dict[tuple[str, ...], float]:
    """The story's numbers as the exposition has them."""
    found: dict[tuple[str, ...], float] = {}
    for key in NUMBERS:
        name, *rest = key
        labels: dict[str, str] = {"repository": repository}
        if name == "dora_deployments_total":
            labels.update(environment=rest[0], status=rest[1])
        elif name == "github_pull_requests_total":
            labels["action"] = rest[0]
        elif name == "github_pull_request_reviews_total":
            labels["state"] = rest[0]
        elif name.startswith(("dora_lead_time", "dora_deployment_recovery")):
            labels["environment"] = "production"
        found[key] = exposition.get(name, **labels) or 0.0
    return found


DOCUMENTED = {
    "push": "Push Hook",
    "merge_request": "Merge Request Hook",
    "deployment": "Deployment Hook",
    "issue": "Issue Hook",
}


@pytest.fixture
def gitlab(start: Callable[..., Service]) -> Service:
    return start(gitlab_webhook_secret=SECRET)


@pytest.fixture
def signed(start: Callable[..., Service]) -> Service:
    return start(gitlab_webhook_secret=SECRET, gitlab_signing_token=SIGNING_TOKEN)


def test_a_gitlab_history_gives_exact_numbers(gitlab: Service) -> None:
    for step in story():
        send(gitlab, step)
    assert figures(gitlab.settled()) == NUMBERS


def test_redeliveries_and_a_second_hook_count_once(gitlab: Service) -> None:
    for step in story():
        send(gitlab, step)
        # GitLab's retry of the delivery (the same Idempotency-Key) ...
        again = send(gitlab, step)
        # An event not used is not remembered: it is ignored again.
        used = step.event != "Tag Push Hook"
        assert again.json()["result"] == ("duplicate" if used else "ignored")
        # ... and the same event from a group hook and a project hook (another key).
        send(gitlab, step, delivery=step.delivery + "-group-hook")
    assert figures(gitlab.settled()) == NUMBERS


def test_with_a_signing_token_signed_deliveries_count(signed: Service) -> None:
    for step in story():
        send(signed, step, signing_key=SIGNING_KEY)
    assert figures(signed.settled()) == NUMBERS


def test_a_merged_merge_request_is_one_change_timed_from_its_first_commit(gitlab: Service) -> None:
    """Without a GitLab token: the branch's push, the merge (its merge commit) and the push of
    the merge to main tell the first deployment which change it ships and since when."""
    repo, first, merge, main = "acme/web", sha("web-f1"), sha("web-m"), sha("web-0")
    mr = {"id": 601, "iid": 3, "created_at": iso(at(1)), "source_branch": "feature"}
    branch = push(repo, before="0" * 40, after=first, commits=[(first, iso(at(0)))], total=1)
    branch["ref"] = "refs/heads/feature"
    merged = [(first, iso(at(0))), (merge, iso(at(2)))]
    for step in (
        Delivery("Push Hook", branch, "branch"),
        Delivery("Merge Request Hook", merge_request(repo, "open", updated_at=iso(at(1)), **mr),
                 "open"),
        Delivery("Merge Request Hook", merge_request(repo, "merge", updated_at=iso(at(2)),
                                                     merge_commit_sha=merge, **mr), "merge"),
        Delivery("Push Hook", push(repo, before=main, after=merge, commits=merged, total=2),
                 "main"),
        Delivery("Deployment Hook", deployment(repo, "success", id=90, at=ruby(at(3), 1),
                                               sha=merge, environment="production"), "deploy"),
    ):  # fmt: skip
        send(gitlab, step)
    metrics = gitlab.settled()
    production = {"repository": repo, "environment": "production"}
    # One change, the merge request: deployed at 3, its first commit at 0, merged at 2.
    assert metrics.get("dora_lead_time_seconds_count", **production) == 1
    assert metrics.get("dora_lead_time_seconds_sum", **production) == 3 * 3600
    assert metrics.get("dora_merge_to_deploy_seconds_sum", **production) == 3600
    # GitLab counts the branch's commit again when the merge brings it to main.
    assert metrics.get("github_commits_pushed_total", repository=repo) == 3


def test_the_documented_payloads_count(gitlab: Service) -> None:
    for name, event in DOCUMENTED.items():
        response = deliver(gitlab, event, load(name))
        assert response.status_code == 200, response.text
    metrics = gitlab.metrics()
    # Two commits listed, total_commits_count 4: GitLab's count is the count.
    assert metrics.get("github_commits_pushed_total", repository="mike/diaspora") == 4
    assert metrics.get("github_pull_requests_total", repository="gitlabhq/gitlab-test",
                       action="opened") == 1  # fmt: skip
    assert metrics.get("dora_deployments_total", repository="root/test-deployment-webhooks",
                       environment="staging", status="success") == 1  # fmt: skip
    # The documented issue is neither an incident nor labelled as one.
    assert not metrics.get("dora_incidents_opened_total", repository="gitlabhq/gitlab-test")


REFUSALS = {
    "no token": ({"token": None}, "missing X-Gitlab-Token header"),
    "wrong token": (
        {"token": "guess", "signing_key": SIGNING_KEY},
        "X-Gitlab-Token does not match GITLAB_WEBHOOK_SECRET",
    ),
    "wrong signature": (
        {"signing_key": b"another key"},
        "webhook-signature does not match GITLAB_SIGNING_TOKEN",
    ),
    "stale timestamp": (
        {"signing_key": SIGNING_KEY, "timestamp": 1_000_000_000},
        "webhook-timestamp is more than 5 minutes from now",
    ),
    "no signature": ({}, "missing webhook-id, webhook-timestamp or webhook-signature header"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_unauthenticated_deliveries_get_401_and_change_nothing(signed: Service, case: str) -> None:
    service = signed
    options, reason = REFUSALS[case]
    for step in story():
        response = deliver(service, step.event, step.payload, **options)
        assert response.status_code == 401, response.text
        assert reason in response.text
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert REPO not in metrics.text
    # Counted under no event name the request claimed: unauthenticated input mints no series.
    refused = {"source": "gitlab", "result": "unauthorized"}
    assert metrics.get("observer_webhook_deliveries_total", event="other", **refused) == len(
        story()
    )
    assert not metrics.get("observer_webhook_deliveries_total", event="Push Hook", **refused)


def test_without_a_configured_secret_gitlab_is_refused(service: Service) -> None:
    response = deliver(service, "Push Hook", load("push"))
    assert response.status_code == 401
    assert "GITLAB_WEBHOOK_SECRET is not configured" in response.text
    assert service.metrics().domain() == {}


def test_an_unsigned_body_is_refused_before_it_is_parsed(gitlab: Service) -> None:
    response = deliver(gitlab, "Push Hook", b"{not json", token="guess")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "body is not valid JSON"),
        (b"[1, 2]", "application/json", 400, "payload is not a JSON object"),
        (b'{"a": 1}', "text/plain", 415, "content type must be application/json"),
        (b'{"a": ' * 100_000, "application/json", 400, "body is nested too deeply"),
    ],
)
def test_malformed_bodies_get_4xx_with_a_reason(
    gitlab: Service, body: bytes, content_type: str, status: int, reason: str
) -> None:
    sent = headers("Push Hook", body)
    sent["Content-Type"] = content_type
    response = gitlab.client.post("/gitlab", content=body, headers=sent)
    assert response.status_code == status
    assert reason in response.text
    assert gitlab.metrics().domain() == {}


def test_a_handled_event_lacking_its_fields_gets_400(gitlab: Service) -> None:
    payload = load("deployment")
    del payload["project"]
    response = deliver(gitlab, "Deployment Hook", payload)
    assert response.status_code == 400
    assert "project" in response.text
    assert gitlab.metrics().domain() == {}


def test_missing_delivery_id_gets_400(gitlab: Service) -> None:
    body = json.dumps(load("push")).encode()
    sent = headers("Push Hook", body)
    del sent["Idempotency-Key"], sent["X-Gitlab-Event-UUID"]
    response = gitlab.client.post("/gitlab", content=body, headers=sent)
    assert response.status_code == 400
    assert "missing Idempotency-Key or X-Gitlab-Event-UUID header" in response.text


@pytest.mark.parametrize("event", ["System Hook", "Note Hook", "Pipeline Hook", "Tag Push Hook"])
def test_events_not_used_are_acknowledged_and_ignored(gitlab: Service, event: str) -> None:
    response = deliver(gitlab, event, load("push"))
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert gitlab.metrics().domain() == {}


def test_allowlisted_subgroup_paths_are_kept_and_others_ignored(
    start: Callable[..., Service],
) -> None:
    service = start(gitlab_webhook_secret=SECRET, repositories="Acme/Platform/API")
    for step in story():
        send(service, step)
    other = load("deployment")
    assert deliver(service, "Deployment Hook", other).json()["result"] == "ignored"
    metrics = service.settled()
    assert figures(metrics) == NUMBERS
    assert "root/test-deployment-webhooks" not in metrics.text


# Everyone the payloads name, by username, name or e-mail. ("root" is also the namespace of the
# documented deployment's project, and a namespace is part of a repository's name, as on GitHub.)
PEOPLE = (
    "Administrator",
    "admin@example.com",
    "jsmith",
    "John Smith",
    "john@example.com",
    "Jordi Mallach",
    "jordi@softcatala.org",
    "user1",
    "User1",
    "GitLab dev user",
)


def test_no_person_reaches_metrics_or_info_logs(
    gitlab: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="observer"):
        for step in story():
            send(gitlab, step)
        for name, event in DOCUMENTED.items():
            assert deliver(gitlab, event, load(name)).status_code == 200
        metrics = gitlab.settled()
    openmetrics = gitlab.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    logs = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "acme/platform/api" in logs.lower()
    for person in PEOPLE:
        assert person not in metrics.text, person
        assert person not in openmetrics, person
        assert person not in logs, person


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


def _gitlab_like() -> st.SearchStrategy[dict[str, Any]]:
    time = st.sampled_from(["2026-11-23 10:00:00 UTC", "2026-11-23T10:00:00Z", "x", ""])
    return st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["success", "failed", "running", "x"]),
            "status_changed_at": time,
            "deployment_id": st.integers() | st.text(),
            "environment": st.text(),
            "commit_url": st.text(),
            "project": st.fixed_dictionaries(
                {"path_with_namespace": st.sampled_from(["a/b", "a/b/c", "x", ""]) | st.text()}
            ),
            "object_attributes": st.fixed_dictionaries(
                {"action": st.sampled_from(["open", "merge", "close", "approved", "update"])},
                optional={
                    "id": st.integers(),
                    "created_at": time,
                    "updated_at": time,
                    "type": st.sampled_from(["Incident", "Issue"]),
                    "state": st.text(),
                },
            ),
            "before": st.text(alphabet="0123456789abcdef", min_size=39, max_size=41),
            "commits": json_values,
            "total_commits_count": st.integers(),
        },
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    event=st.sampled_from(
        [
            "Push Hook",
            "Merge Request Hook",
            "Deployment Hook",
            "Issue Hook",
            "Confidential Issue Hook",
            "System Hook",
            "x",
        ]
    ),
    document=json_values | _gitlab_like(),
)
def test_arbitrary_authentic_json_never_gets_a_5xx(
    gitlab: Service, event: str, document: Any
) -> None:
    response = deliver(gitlab, event, json.dumps(document).encode())
    assert response.status_code in (200, 400), response.text


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sent=st.dictionaries(
        st.sampled_from(
            [
                "X-Gitlab-Event",
                "Idempotency-Key",
                "X-Gitlab-Event-UUID",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "Content-Type",
            ]
        ),
        header_text,
    ),
    token=st.sampled_from([SECRET, ""]) | header_text,
    body=st.binary(max_size=200) | st.sampled_from([json.dumps(load("deployment")).encode()]),
)
def test_arbitrary_headers_never_get_a_5xx(
    signed: Service, sent: dict[str, str], token: str, body: bytes
) -> None:
    response = signed.client.post(
        "/gitlab", content=body, headers={**sent, "X-Gitlab-Token": token}
    )
    # Nothing signed with the signing key: refused, whatever the token.
    assert response.status_code == 401, response.text
    assert SECRET not in signed.client.get("/metrics").text
