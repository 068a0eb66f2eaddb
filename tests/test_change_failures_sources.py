"""Incidents from every source make change failures: an alert that fires after a deployment.

Alertmanager's incidents (and PagerDuty's, through the same recorder call) are incidents of their
repository like a GitHub issue's: one that opens after a production deployment succeeded and
before the next one makes that deployment a change failure of cause ``incident``.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Service
from tests.test_alertmanager import body, notify
from tests.test_api_event import deployment
from tests.test_lead_time import settle

REPO = "octo-org/octo-app"
PRODUCTION = {"repository": REPO, "environment": "production"}
FAILURES = "dora_change_failures_total"


def deploy(service: Service, number: int, timestamp: str) -> None:
    event: dict[str, Any] = deployment(
        repository=REPO, id=f"deploy-{number}", sha=f"{number:040x}", timestamp=timestamp
    )
    response = service.client.post(
        "/api/event",
        json=event,
        headers={"Authorization": f"Bearer {service.settings.api_token.get_secret_value()}"},  # type: ignore[union-attr]
    )
    assert response.status_code == 200, response.text


def test_an_alert_after_a_deployment_makes_it_a_change_failure(service: Service) -> None:
    deploy(service, 1, "2026-11-23T09:00:00Z")
    settle(service)
    # The alert of the fixture starts at 10:02:15; it is still firing at the next deployment.
    assert notify(service, body("firing")).json()["result"] == "accepted"
    deploy(service, 2, "2026-11-23T11:00:00Z")
    metrics = settle(service)

    assert metrics.get(FAILURES, cause="incident", **PRODUCTION) == 1
    for cause in ("failed", "rolled_back", "remediated"):
        assert metrics.get(FAILURES, cause=cause, **PRODUCTION) == 0
    # Recovered when the next deployment succeeded, two hours after the failing one did.
    assert metrics.get("dora_deployment_recovery_seconds_count", **PRODUCTION) == 1
    assert metrics.get("dora_deployment_recovery_seconds_sum", **PRODUCTION) == 7200
    assert metrics.get("dora_rework_deployments_total", **PRODUCTION) == 1


def test_a_resolved_alert_alone_is_enough(service: Service) -> None:
    deploy(service, 1, "2026-11-23T09:00:00Z")
    settle(service)
    # Its firing never delivered: the resolution tells the whole incident (10:02:15-10:47:45).
    assert notify(service, body("resolved")).json()["result"] == "accepted"
    deploy(service, 2, "2026-11-23T11:00:00Z")
    metrics = settle(service)
    assert metrics.get(FAILURES, cause="incident", **PRODUCTION) == 1


def test_an_alert_before_the_deployment_changes_nothing(service: Service) -> None:
    assert notify(service, body("firing")).json()["result"] == "accepted"
    assert notify(service, body("resolved")).json()["result"] == "accepted"
    deploy(service, 1, "2026-11-23T11:00:00Z")
    deploy(service, 2, "2026-11-23T12:00:00Z")
    metrics = settle(service)
    for cause in ("failed", "rolled_back", "incident", "remediated"):
        assert metrics.get(FAILURES, cause=cause, **PRODUCTION) == 0
    assert metrics.get("dora_rework_deployments_total", **PRODUCTION) == 0
