"""POST /api/event: what pipelines push, authenticated, validated whole, counted once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi

from tests.conftest import API_TOKEN, SECRET, Service
from tests.signing import sign

SHA = "a" * 40


def deployment(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "deployment",
        "repository": "octo/app",
        "environment": "production",
        "status": "success",
        "sha": SHA,
        "timestamp": "2026-11-23T10:00:00Z",
    }
    event.update(overrides)
    return event


def incident(action: str = "opened", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "incident",
        "repository": "octo/app",
        "action": action,
        "id": "INC-7",
        "opened_at": "2026-11-23T10:00:00Z",
    }
    if action == "resolved":
        event["resolved_at"] = "2026-11-23T10:40:00Z"
    event.update(overrides)
    return event


def test_a_deployment_moves_the_same_counter_as_githubs(service: Service) -> None:
    response = service.push_events(deployment(environment="Production"))
    assert response.status_code == 200
    assert response.json() == {
        "results": [{"type": "deployment", "result": "accepted", "detail": None}]
    }
    metrics = service.metrics()
    assert (
        metrics.get(
            "dora_deployments_total",
            repository="octo/app",
            environment="production",
            status="success",
        )
        == 1
    )
    assert metrics.get("observer_api_events_total", type="deployment", result="accepted") == 1


def test_a_list_is_applied_in_order(service: Service) -> None:
    response = service.push_events(
        [
            deployment(status="failure", timestamp="2026-11-23T10:00:00Z"),
            deployment(status="error", timestamp="2026-11-23T10:05:00Z"),
            deployment(status="success", timestamp="2026-11-23T10:30:00+00:00"),
            incident(),
            incident("resolved"),
        ]
    )
    assert response.status_code == 200
    metrics = service.metrics()
    labels = {"repository": "octo/app", "environment": "production"}
    for status in ("success", "failure", "error"):
        assert metrics.get("dora_deployments_total", status=status, **labels) == 1
    assert metrics.get("dora_deployment_recovery_seconds_sum", **labels) == 1800
    assert metrics.get("dora_incidents_opened_total", repository="octo/app") == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository="octo/app") == 2400
    assert metrics.get("dora_incident_recovery_seconds_count", repository="octo/app") == 1


def test_an_id_makes_an_event_idempotent(service: Service) -> None:
    first = service.push_events(deployment(id="deploy-41"))
    again = service.push_events(deployment(id="deploy-41"))
    assert first.json()["results"][0]["result"] == "accepted"
    assert again.status_code == 200
    assert again.json()["results"][0]["result"] == "duplicate"
    metrics = service.metrics()
    assert (
        metrics.get(
            "dora_deployments_total",
            repository="octo/app",
            environment="production",
            status="success",
        )
        == 1
    )
    assert metrics.get("observer_api_events_total", type="deployment", result="duplicate") == 1


def test_deployments_without_an_id_are_each_counted(service: Service) -> None:
    service.push_events(deployment())
    service.push_events(deployment())
    assert (
        service.metrics().get(
            "dora_deployments_total",
            repository="octo/app",
            environment="production",
            status="success",
        )
        == 2
    )


def test_incidents_count_once_per_id(service: Service) -> None:
    service.push_events([incident(), incident()])
    service.push_events([incident("resolved"), incident("resolved")])
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository="octo/app") == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository="octo/app") == 1


def test_an_hmac_signature_authenticates_too(service: Service) -> None:
    body = json.dumps(deployment()).encode()
    response = service.client.post(
        "/api/event",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token or X-Hub-Signature-256"),
        ({"Authorization": "Bearer wrong"}, "bearer token is not valid"),
        ({"Authorization": f"Basic {API_TOKEN}"}, "bearer token is not valid"),
        ({"Authorization": "Bearer"}, "bearer token is not valid"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "signature does not match"),
    ],
)
def test_unauthenticated_requests_are_refused(
    service: Service, headers: dict[str, str], message: str
) -> None:
    response = service.client.post("/api/event", json=deployment(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": message}
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert metrics.get("observer_api_events_total", type="other", result="unauthorized") == 1


def test_without_api_token_only_signatures_are_accepted(start: Callable[..., Service]) -> None:
    service = start(api_token=None)
    response = service.push_events(deployment(), token="")
    assert response.status_code == 401
    body = json.dumps(deployment()).encode()
    signed = service.client.post(
        "/api/event", content=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}
    )
    assert signed.status_code == 200


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (deployment(repository="octo"), "repository"),
        (deployment(repository="octo/app/"), "repository"),
        (deployment(repository="octo//app"), "repository"),
        (deployment(status="done"), "status"),
        (deployment(timestamp="2026-11-23T10:00:00"), "timestamp"),
        (deployment(timestamp="yesterday"), "timestamp"),
        (deployment(sha="abc"), "sha"),
        (deployment(environment=""), "environment"),
        (deployment(environment=["production"]), "environment"),
        (deployment(enviroment="production"), "enviroment"),
        (deployment(commits=[{"sha": SHA}]), "commits[0].timestamp"),
        ({k: v for k, v in deployment().items() if k != "environment"}, "environment"),
        (deployment(type="release"), "type"),
        ({"repository": "octo/app"}, "type"),
        (incident(id=None), "id"),
        (incident(action="closed"), "action"),
        (incident("resolved", resolved_at=None), "resolved_at"),
        (incident("resolved", resolved_at="2026-11-23T09:00:00Z"), "resolved_at"),
    ],
)
def test_invalid_events_get_422_naming_the_field(
    service: Service, event: dict[str, Any], field: str
) -> None:
    response = service.push_events(event)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "event failed validation"
    assert field in [problem["field"] for problem in body["fields"]]
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        sum(
            metrics.get("observer_api_events_total", type=kind, result="invalid")
            for kind in ("deployment", "incident", "other")
        )
        == 1
    )


def test_one_invalid_item_rejects_the_whole_list(service: Service) -> None:
    response = service.push_events([deployment(), incident(), deployment(status="bogus")])
    assert response.status_code == 422
    assert [problem["field"] for problem in response.json()["fields"]] == ["[2].status"]
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert metrics.get("observer_api_events_total", type="deployment", result="invalid") == 2
    assert metrics.get("observer_api_events_total", type="incident", result="invalid") == 1


@pytest.mark.parametrize("body", [[], "deployment", 42, [1, 2], [[deployment()]], {}])
def test_bodies_that_are_not_events_get_422(service: Service, body: Any) -> None:
    response = service.push_events(body)
    assert response.status_code == 422
    assert service.metrics().domain() == {}


def test_lists_are_capped(start: Callable[..., Service]) -> None:
    service = start(max_events_per_request=3)
    response = service.push_events([deployment()] * 4)
    assert response.status_code == 422
    assert service.metrics().domain() == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{", "application/json", 400, "body is not valid JSON"),
        (b"", "application/json", 400, "body is not valid JSON"),
        (b"\xff\xfe{}", "application/json", 400, "body is not valid JSON"),
        (b"[" * 100_000, "application/json", 400, "body is nested too deeply"),
        (b"type=deployment", "application/x-www-form-urlencoded", 415, "content type must be"),
    ],
)
def test_bodies_that_cannot_be_read_get_4xx(
    service: Service, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = service.client.post(
        "/api/event",
        content=body,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": content_type},
    )
    assert response.status_code == status
    assert response.json()["error"].startswith(message)
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert metrics.get("observer_api_events_total", type="other", result="invalid") == 1


def test_bodies_over_the_limit_get_413(start: Callable[..., Service]) -> None:
    service = start(max_body_bytes=2048)
    response = service.push_events([deployment()] * 20)
    assert response.status_code == 413
    assert response.json() == {"error": "body is larger than 2048 bytes"}
    assert service.metrics().domain() == {}


def test_repositories_off_the_allowlist_are_acknowledged_and_ignored(
    start: Callable[..., Service],
) -> None:
    service = start(repositories="octo-org/*")
    response = service.push_events([deployment(), deployment(repository="Octo-Org/App")])
    assert [item["result"] for item in response.json()["results"]] == ["ignored", "accepted"]
    metrics = service.metrics()
    assert (
        metrics.value(
            "dora_deployments_total",
            repository="octo/app",
            environment="production",
            status="success",
        )
        is None
    )
    assert (
        metrics.get(
            "dora_deployments_total",
            repository="octo-org/app",
            environment="production",
            status="success",
        )
        == 1
    )


def test_openapi_describes_the_event_models(service: Service) -> None:
    response = service.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    post = document["paths"]["/api/event"]["post"]
    assert set(post["responses"]) >= {"200", "401", "413", "422"}
    schemas = document["components"]["schemas"]
    assert set(schemas["DeploymentEvent"]["required"]) == {
        "type",
        "repository",
        "environment",
        "status",
        "timestamp",
    }
    assert schemas["IncidentEvent"]["properties"]["action"]["enum"] == ["opened", "resolved"]


def test_the_openapi_document_is_valid_openapi(service: Service) -> None:
    validate_openapi(service.client.get("/openapi.json").json())


def test_the_readme_example_block_is_one_body_that_is_accepted(service: Service) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Pushing events from pipelines", 1)[1].split("```json", 1)[1]
    body = section.split("```", 1)[0]
    # Pasted whole, as a newcomer would: one JSON document.
    response = service.client.post(
        "/api/event",
        content=body.encode(),
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [item["type"] for item in response.json()["results"]] == [
        "deployment",
        "incident",
        "incident",
    ]
    assert [item["result"] for item in response.json()["results"]] == ["accepted"] * 3
