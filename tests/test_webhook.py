"""POST /webhook with GitHub's own payloads, signed as GitHub signs them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.utils import floatToGoString
from starlette.testclient import TestClient

from observer.app import create_app
from observer.sources.github import adapter as github_adapter
from tests.conftest import SECRET, Service, load_fixture, make_settings
from tests.exposition import CONTRACT_BUCKETS
from tests.signing import sign, sign_with_openssl

REPO = "octo-org/octo-app"
PRODUCTION = {"repository": REPO, "environment": "production"}


def domain_after(service: Service, *fixtures: str) -> dict[tuple[str, frozenset[Any]], float]:
    for name in fixtures:
        response = service.deliver_fixture(name)
        assert response.status_code == 200, response.text
    # Once the due work is done: recovery and change failures are decided as successes settle.
    return {
        (name, labels): value
        for (name, labels), value in service.settled().domain().items()
        if not name.startswith("observer_")
    }


def series(name: str, value: float, **labels: str) -> tuple[tuple[str, frozenset[Any]], float]:
    return (name, frozenset(labels.items())), value


def histogram(name: str, value: float, **labels: str) -> dict[tuple[str, frozenset[Any]], float]:
    """The non-zero samples of a histogram holding the one observation ``value``."""
    samples = dict([series(f"{name}_count", 1, **labels), series(f"{name}_sum", value, **labels)])
    for edge in [*CONTRACT_BUCKETS, float("inf")]:
        if value <= edge:
            samples.update([series(f"{name}_bucket", 1, le=_le(edge), **labels)])
    return samples


def _le(edge: float) -> str:
    return floatToGoString(edge)


def test_ping_answers_pong(service: Service) -> None:
    response = service.deliver_fixture("ping")
    assert response.status_code == 200
    assert "pong" in response.text
    assert (
        service.metrics().get(
            "observer_webhook_deliveries_total", source="github", event="ping", result="accepted"
        )
        == 1
    )


def test_a_successful_deployment_is_counted(service: Service) -> None:
    assert domain_after(service, "deployment_status_success") == dict(
        [series("dora_deployments_total", 1, status="success", **PRODUCTION)]
    )


def test_failed_deployments_then_success_observe_recovery(service: Service) -> None:
    # failure at 10:00, error at 10:10, success at 10:30: recovery is 30 minutes.
    observed = domain_after(
        service, "deployment_status_failure", "deployment_status_error", "deployment_status_success"
    )
    expected = dict(
        [
            series("dora_deployments_total", 1, status="failure", **PRODUCTION),
            series("dora_deployments_total", 1, status="error", **PRODUCTION),
            series("dora_deployments_total", 1, status="success", **PRODUCTION),
        ]
    )
    expected.update(histogram("dora_deployment_recovery_seconds", 1800, **PRODUCTION))
    # The failure and the error are change failures; the success restores service: rework.
    expected.update(
        [
            series("dora_change_failures_total", 2, cause="failed", **PRODUCTION),
            series("dora_rework_deployments_total", 1, **PRODUCTION),
        ]
    )
    assert observed == expected


def test_recovery_is_only_for_production_environments(service: Service) -> None:
    for name in ("deployment_status_failure", "deployment_status_success"):
        payload = load_fixture(name)
        payload["deployment"]["environment"] = "Staging"
        payload["deployment_status"]["environment"] = "Staging"
        assert service.deliver("deployment_status", payload).status_code == 200
    metrics = service.metrics()
    labels = {"repository": REPO, "environment": "staging"}
    assert metrics.get("dora_deployments_total", status="failure", **labels) == 1
    assert metrics.get("dora_deployments_total", status="success", **labels) == 1
    assert metrics.value("dora_deployment_recovery_seconds_count", **labels) is None


def test_out_of_order_statuses_still_time_recovery_from_the_first_failure(
    start: Callable[..., Service],
) -> None:
    # Issue 19: the error (10:10), the success (10:30), then the failure (10:00), all within
    # SETTLE_SECONDS of the success: recovery is decided when it settles, from the first
    # failure, 10:00 to 10:30 = 1800 s (observed at the success's arrival, it was 1200 s).
    service = start(settle_seconds=2)
    late = ("deployment_status_error", "deployment_status_success", "deployment_status_failure")
    for name in late:
        assert service.deliver_fixture(name).status_code == 200
    count = "dora_deployment_recovery_seconds_count"
    deadline = time.monotonic() + 15
    while service.metrics().get(count, **PRODUCTION) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    metrics = service.settled()
    assert metrics.get(count, **PRODUCTION) == 1
    assert metrics.get("dora_deployment_recovery_seconds_sum", **PRODUCTION) == 1800


def test_non_terminal_states_are_ignored(service: Service) -> None:
    response = service.deliver_fixture("deployment_status_in_progress")
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert "not terminal" in response.json()["detail"]
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        metrics.get(
            "observer_webhook_deliveries_total",
            source="github",
            event="deployment_status",
            result="ignored",
        )
        == 1
    )


def test_pull_requests_opened_merged_and_closed(service: Service) -> None:
    observed = domain_after(
        service,
        "pull_request_opened",
        "pull_request_closed_merged",
        "pull_request_closed_unmerged",
        "pull_request_synchronize",
    )
    expected = dict(
        [
            series("github_pull_requests_total", 1, repository=REPO, action="opened"),
            series("github_pull_requests_total", 1, repository=REPO, action="merged"),
            series("github_pull_requests_total", 1, repository=REPO, action="closed"),
        ]
    )
    # Created 2026-11-20T08:00Z, merged 2026-11-21T09:30Z.
    expected.update(
        histogram("github_pull_request_cycle_time_seconds", 25.5 * 3600, repository=REPO)
    )
    # 61 lines added and 9 deleted: 70 falls in the buckets from 100 up.
    size = "github_pull_request_size_lines"
    expected.update(
        dict(
            [
                series(f"{size}_count", 1, repository=REPO),
                series(f"{size}_sum", 70, repository=REPO),
            ]
        )
    )
    for edge in ("100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0", "10000.0", "+Inf"):
        expected.update([series(f"{size}_bucket", 1, le=edge, repository=REPO)])
    assert observed == expected


def test_push_counts_only_distinct_commits(service: Service) -> None:
    assert domain_after(service, "push", "push_branch_deleted", "push_tag") == dict(
        [series("github_commits_pushed_total", 2, repository=REPO)]
    )


def test_incident_issues_open_and_resolve(service: Service) -> None:
    observed = domain_after(
        service,
        "issues_opened_incident",
        "issues_labeled_incident",
        "issues_opened_plain",
        "issues_closed_incident",
    )
    expected = dict([series("dora_incidents_opened_total", 2, repository=REPO)])
    # Issue 57: created 10:00, closed 10:40.
    expected.update(histogram("dora_incident_recovery_seconds", 2400, repository=REPO))
    assert observed == expected


def test_the_incident_label_is_configurable(start: Callable[..., Service]) -> None:
    service = start(incident_label="sev-2")
    assert service.deliver_fixture("issues_opened_incident").json()["result"] == "accepted"
    assert service.deliver_fixture("issues_labeled_incident").json()["result"] == "ignored"


def test_opened_and_labeled_for_one_issue_are_one_incident(service: Service) -> None:
    opened = load_fixture("issues_labeled_incident")
    opened["action"] = "opened"
    opened.pop("label")
    service.deliver("issues", opened)
    service.deliver_fixture("issues_labeled_incident")
    assert service.metrics().get("dora_incidents_opened_total", repository=REPO) == 1


def test_form_encoded_deliveries_are_accepted(service: Service) -> None:
    response = service.deliver(
        "deployment_status",
        load_fixture("deployment_status_success"),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert service.metrics().get("dora_deployments_total", status="success", **PRODUCTION) == 1


def test_signatures_made_by_openssl_are_accepted(service: Service) -> None:
    body = json.dumps(load_fixture("push")).encode()
    response = service.client.post(
        "/webhook",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_with_openssl(SECRET, body),
        },
    )
    assert response.status_code == 200
    assert service.metrics().get("github_commits_pushed_total", repository=REPO) == 2


def test_a_repeated_delivery_counts_once(service: Service) -> None:
    first = service.deliver_fixture("push", delivery="d-1")
    again = service.deliver_fixture("push", delivery="d-1")
    assert first.json()["result"] == "accepted"
    assert again.status_code == 200
    assert again.json()["result"] == "duplicate"
    metrics = service.metrics()
    assert metrics.get("github_commits_pushed_total", repository=REPO) == 2
    assert (
        metrics.get(
            "observer_webhook_deliveries_total", source="github", event="push", result="duplicate"
        )
        == 1
    )


@pytest.mark.parametrize(
    "fixture",
    [
        "deployment_status_success",
        "pull_request_closed_merged",
        "push",
        "issues_opened_incident",
        "issues_closed_incident",
    ],
)
def test_one_event_through_two_hooks_counts_once(service: Service, fixture: str) -> None:
    """An organisation hook and a repository hook deliver one event under two delivery ids."""
    if fixture == "issues_closed_incident":
        # Closing resolves the incident its opening started; alone, it is no incident.
        assert service.deliver_fixture("issues_opened_incident").json()["result"] == "accepted"
    once = start_fresh_domain(service, fixture)
    again = service.deliver_fixture(fixture)
    assert again.status_code == 200
    assert again.json()["result"] == "duplicate"
    assert service.metrics().domain() == once


def start_fresh_domain(service: Service, fixture: str) -> dict[Any, float]:
    assert service.deliver_fixture(fixture).json()["result"] == "accepted"
    return service.metrics().domain()


def test_unknown_events_are_acknowledged_and_ignored(service: Service) -> None:
    response = service.deliver_fixture("star_created")
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        metrics.get(
            "observer_webhook_deliveries_total", source="github", event="other", result="ignored"
        )
        == 1
    )
    assert 'event="star"' not in service.client.get("/metrics").text


def test_repositories_off_the_allowlist_are_ignored(start: Callable[..., Service]) -> None:
    service = start(repositories="octo-org/other-app")
    response = service.deliver_fixture("deployment_status_success")
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert service.metrics().domain() == {}


def test_the_previous_secret_is_accepted_during_rotation(start: Callable[..., Service]) -> None:
    service = start(webhook_secret="new-secret", webhook_secret_previous=SECRET)
    assert service.deliver_fixture("push").status_code == 200
    assert service.deliver_fixture("push", secret="new-secret").status_code == 200


def test_one_log_line_per_delivery_without_secrets(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    service.deliver_fixture("deployment_status_success", delivery="delivery-77")
    service.deliver_fixture("push", secret="wrong-secret", delivery="delivery-78")
    records = [r for r in caplog.records if r.getMessage() == "webhook delivery"]
    assert len(records) == 2
    accepted, refused = (record.fields for record in records)
    assert accepted["delivery"] == "delivery-77"
    assert accepted["event"] == "deployment_status"
    assert accepted["repository"] == REPO
    assert accepted["result"] == "accepted"
    assert accepted["duration_ms"] >= 0
    assert refused["result"] == "unauthorized"
    logged = caplog.text + "".join(json.dumps(r.fields) for r in records)
    assert SECRET not in logged and "wrong-secret" not in logged
    assert "sha256=" not in logged


# Every way a delivery can be refused: status, exact body, the counter that moves.
def _body() -> bytes:
    return json.dumps(load_fixture("deployment_status_success")).encode()


def _headers(body: bytes, **overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "X-GitHub-Event": "deployment_status",
        "X-GitHub-Delivery": "5a8f2c30-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    headers.update(overrides)
    return {key: value for key, value in headers.items() if value is not None}


REFUSALS: list[
    tuple[str, Callable[[bytes], tuple[bytes, dict[str, str]]], int, dict[str, Any], str, str]
] = [
    (
        "missing signature",
        lambda b: (b, _headers(b, **{"X-Hub-Signature-256": None})),
        401,
        {"error": "missing X-Hub-Signature-256 header"},
        "other",
        "unauthorized",
    ),
    (
        "sha1 signature only",
        lambda b: (b, _headers(b, **{"X-Hub-Signature-256": None, "X-Hub-Signature": "sha1=00"})),
        401,
        {"error": "missing X-Hub-Signature-256 header"},
        "other",
        "unauthorized",
    ),
    (
        "wrong secret",
        lambda b: (b, _headers(b, **{"X-Hub-Signature-256": sign("not-the-secret", b)})),
        401,
        {"error": "signature does not match"},
        "other",
        "unauthorized",
    ),
    (
        "signature of another body",
        lambda b: (b + b" ", _headers(b)),
        401,
        {"error": "signature does not match"},
        "other",
        "unauthorized",
    ),
    (
        "malformed signature",
        lambda b: (b, _headers(b, **{"X-Hub-Signature-256": "sha256=zz"})),
        401,
        {"error": "signature does not match"},
        "other",
        "unauthorized",
    ),
    (
        "missing event header",
        lambda b: (b, _headers(b, **{"X-GitHub-Event": None})),
        400,
        {"error": "missing X-GitHub-Event or X-GitHub-Delivery header"},
        "other",
        "malformed",
    ),
    (
        "missing delivery header",
        lambda b: (b, _headers(b, **{"X-GitHub-Delivery": None})),
        400,
        {"error": "missing X-GitHub-Event or X-GitHub-Delivery header"},
        "deployment_status",
        "malformed",
    ),
    (
        "oversized delivery id",
        lambda b: (b, _headers(b, **{"X-GitHub-Delivery": "d" * 129})),
        400,
        {"error": "X-GitHub-Delivery is too long"},
        "deployment_status",
        "malformed",
    ),
    (
        "wrong content type",
        lambda b: (b, _headers(b, **{"Content-Type": "text/plain"})),
        415,
        {"error": "content type must be application/json or application/x-www-form-urlencoded"},
        "deployment_status",
        "malformed",
    ),
    (
        "bad JSON",
        lambda b: (b"{not json", _headers(b"{not json")),
        400,
        {
            "error": "body is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)"
        },
        "deployment_status",
        "malformed",
    ),
    (
        "JSON that is not an object",
        lambda b: (b"[1, 2]", _headers(b"[1, 2]")),
        400,
        {"error": "payload is not a JSON object"},
        "deployment_status",
        "malformed",
    ),
    (
        "deeply nested JSON",
        lambda b: (b"[" * 50_000 + b"]" * 50_000, _headers(b"[" * 50_000 + b"]" * 50_000)),
        400,
        {"error": "body is nested too deeply"},
        "deployment_status",
        "malformed",
    ),
    (
        "form without payload",
        lambda b: (
            b"data=1",
            _headers(b"data=1", **{"Content-Type": "application/x-www-form-urlencoded"}),
        ),
        400,
        {"error": "form has no payload field"},
        "deployment_status",
        "malformed",
    ),
]


@pytest.mark.parametrize(
    ("request_of", "status", "body", "event", "result"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refused_deliveries_move_nothing(
    service: Service,
    request_of: Callable[[bytes], tuple[bytes, dict[str, str]]],
    status: int,
    body: dict[str, Any],
    event: str,
    result: str,
) -> None:
    content, headers = request_of(_body())
    response = service.client.post("/webhook", content=content, headers=headers)
    assert response.status_code == status
    assert response.json() == body
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        metrics.get(
            "observer_webhook_deliveries_total", source="github", event=event, result=result
        )
        == 1
    )


def test_a_handled_event_missing_fields_is_400_naming_them(service: Service) -> None:
    payload = load_fixture("deployment_status_success")
    del payload["deployment_status"]["created_at"]
    payload["repository"]["full_name"] = "not a repository"
    response = service.deliver("deployment_status", payload)
    assert response.status_code == 400
    assert response.json()["error"] == "deployment_status payload is missing or has invalid fields"
    fields = [problem["field"] for problem in response.json()["fields"]]
    assert fields == ["deployment_status.created_at", "repository.full_name"]
    assert service.metrics().domain() == {}


def test_a_malformed_delivery_is_not_remembered_as_seen(service: Service) -> None:
    payload = load_fixture("push")
    broken = dict(payload, commits="many")
    assert service.deliver("push", broken, delivery="d-9").status_code == 400
    assert service.deliver("push", payload, delivery="d-9").json()["result"] == "accepted"


def test_bodies_over_the_limit_get_413_before_being_read(start: Callable[..., Service]) -> None:
    service = start(max_body_bytes=4096)
    body = _body()
    assert len(body) > 4096
    response = service.client.post("/webhook", content=body, headers=_headers(body))
    assert response.status_code == 413
    assert response.json() == {"error": "body is larger than 4096 bytes"}
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        metrics.get(
            "observer_webhook_deliveries_total", source="github", event="other", result="too_large"
        )
        == 1
    )


def test_bodies_over_the_limit_without_a_length_get_413(start: Callable[..., Service]) -> None:
    service = start(max_body_bytes=4096)
    body = _body()

    def chunks() -> Any:
        for start_at in range(0, len(body), 1000):
            yield body[start_at : start_at + 1000]

    response = service.client.post("/webhook", content=chunks(), headers=_headers(body))
    assert response.status_code == 413
    assert service.metrics().domain() == {}


def test_an_unexpected_error_is_answered_500_and_raised_for_the_server_to_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> bool:
        raise RuntimeError("broken")

    monkeypatch.setattr(github_adapter, "verify", broken)
    body = json.dumps(load_fixture("ping")).encode()
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-500", "X-Hub-Signature-256": "x"}
    app = create_app(make_settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/webhook", content=body, headers=headers)
    # What starlette answers any endpoint's unexpected error with.
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    with TestClient(app) as client, pytest.raises(RuntimeError, match="broken"):
        client.post("/webhook", content=body, headers=headers)
