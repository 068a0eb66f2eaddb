"""POST /pagerduty through the real app: v3 webhooks signed as PagerDuty signs them."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from observer.ops.logs import JsonFormatter
from observer.sources.pagerduty.signature import sign
from tests.conftest import FIXTURES, Service
from tests.corpus import WRONG_VALUES, _delete, _paths, _set
from tests.exposition import Exposition
from tests.redis_server import RedisServer, running_redis

SECRET = "pagerduty-subscription-secret"
OLD_SECRET = "pagerduty-previous-secret"
REPOSITORY = "octo-org/octo-app"
# created_at 10:00:02 to the resolved event's occurred_at 10:45:12.500.
RECOVERY = 2710.5
DELIVERIES = "observer_webhook_deliveries_total"
# Names of people in the fixtures: an assignee and the agent who resolved.
PEOPLE = ("Mona Lisa Octocat", "Tenex Engineer", "PTUXL6G", "PLH1HKV")


def body(name: str) -> bytes:
    return (FIXTURES / "pagerduty" / f"{name}.json").read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body(name))
    return data


def headers(
    content: bytes, *, signature: str | None = None, webhook_id: str | None = None
) -> dict[str, str]:
    """What PagerDuty sends with a v3 webhook."""
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "PagerDuty-Webhook/V3.0",
        "X-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Webhook-Subscription": "PY1OQU0",
        "X-PagerDuty-Signature": sign(SECRET.encode(), content) if signature is None else signature,
    }
    return sent


def send(
    service: Service,
    payload: bytes | dict[str, Any],
    *,
    signature: str | None = None,
    webhook_id: str | None = None,
) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = headers(content, signature=signature, webhook_id=webhook_id)
    if signature == "":
        del sent["X-PagerDuty-Signature"]
    return service.client.post("/pagerduty", content=content, headers=sent)


@pytest.fixture
def service(start: Callable[..., Service]) -> Service:
    return start(
        pagerduty_webhook_secret=SECRET,
        pagerduty_services=f"PF9KMXH={REPOSITORY},Payments API=octo-org/pay",
    )


def deliveries(metrics: Exposition, event: str, result: str) -> float:
    return metrics.get(DELIVERIES, source="pagerduty", event=event, result=result)


def test_triggered_then_resolved_is_one_incident_and_its_recovery(service: Service) -> None:
    triggered = send(service, body("incident_triggered"), webhook_id="d1")
    assert triggered.status_code == 200, triggered.text
    assert triggered.json()["result"] == "accepted"
    # PagerDuty's retry of the same delivery, and the same event in another subscription.
    assert (
        send(service, body("incident_triggered"), webhook_id="d1").json()["result"] == "duplicate"
    )
    assert send(service, body("incident_triggered")).json()["result"] == "duplicate"
    assert send(service, body("incident_resolved")).json()["result"] == "accepted"
    assert send(service, body("incident_resolved")).json()["result"] == "duplicate"

    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY
    assert deliveries(metrics, "incident.triggered", "accepted") == 1
    assert deliveries(metrics, "incident.triggered", "duplicate") == 2
    assert deliveries(metrics, "incident.resolved", "accepted") == 1


def test_resolved_before_triggered_counts_the_incident_once(service: Service) -> None:
    assert send(service, body("incident_resolved")).json()["result"] == "accepted"
    assert send(service, body("incident_triggered")).json()["result"] == "duplicate"
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY


def test_a_service_is_found_by_its_name_too(service: Service) -> None:
    payload = fixture("incident_triggered")
    payload["event"]["data"]["service"].update(id="PPAY001", summary="payments api")
    assert send(service, payload).json()["result"] == "accepted"
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository="octo-org/pay") == 1


def test_an_unmapped_service_is_ignored_with_a_clear_detail(service: Service) -> None:
    payload = fixture("incident_triggered")
    payload["event"]["data"]["service"].update(id="PBILL01", summary="Billing")
    response = send(service, payload)
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert response.json()["detail"] == "service PBILL01 (Billing) is not in PAGERDUTY_SERVICES"
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert deliveries(metrics, "incident.triggered", "ignored") == 1


def test_other_event_types_are_acknowledged_and_ignored(service: Service) -> None:
    response = send(service, body("incident_priority_updated"))
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    metrics = service.metrics()
    assert metrics.domain() == {}
    # Not a label value: only the events observer handles are.
    assert deliveries(metrics, "other", "ignored") == 1
    assert "incident.priority_updated" not in service.client.get("/metrics").text


def test_a_signature_among_several_verifies_during_a_rotation(service: Service) -> None:
    content = body("incident_triggered")
    rotating = f"{sign(OLD_SECRET.encode(), content)},{sign(SECRET.encode(), content)}"
    assert send(service, content, signature=rotating).status_code == 200


@pytest.mark.parametrize(
    ("signature", "says"),
    [
        ("", "missing X-PagerDuty-Signature"),
        ("v1=" + "0" * 64, "does not match"),
        ("sha256=" + "0" * 64, "does not match"),
        ("garbage", "does not match"),
    ],
)
def test_bad_or_missing_signatures_get_401_and_mint_nothing(
    service: Service, signature: str, says: str
) -> None:
    before = service.metrics()
    response = send(service, body("incident_triggered"), signature=signature)
    assert response.status_code == 401
    assert says in response.text
    after = service.metrics()
    assert after.domain() == {}
    assert deliveries(after, "other", "unauthorized") == 1
    new = {name for name, _ in set(after.samples) - set(before.samples)}
    assert new <= {DELIVERIES, DELIVERIES.removesuffix("_total") + "_created"}


def test_a_signature_made_for_another_body_is_refused(service: Service) -> None:
    other = sign(SECRET.encode(), body("incident_resolved"))
    response = send(service, body("incident_triggered"), signature=other)
    assert response.status_code == 401
    assert service.metrics().domain() == {}


def test_without_a_secret_every_delivery_is_refused_saying_why(
    start: Callable[..., Service],
) -> None:
    service = start(pagerduty_services=f"PF9KMXH={REPOSITORY}")
    response = send(service, body("incident_triggered"))
    assert response.status_code == 401
    assert "PAGERDUTY_WEBHOOK_SECRET is not configured" in response.text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"messages": []}', "event.event_type"),
        (json.dumps({"event": {"event_type": "incident.triggered"}}).encode(), ""),
    ],
)
def test_malformed_bodies_get_400_with_a_reason(
    service: Service, content: bytes, says: str
) -> None:
    response = send(service, content)
    assert response.status_code == 400, response.text
    assert says in response.text
    assert service.metrics().domain() == {}


def test_no_person_reaches_metrics_or_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="observer"):
        for name in ("incident_triggered", "incident_priority_updated", "incident_resolved"):
            assert send(service, body(name)).status_code == 200
    plain = service.client.get("/metrics").text
    openmetrics = service.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(record) for record in caplog.records)
    assert '"source": "pagerduty"' in logs
    assert '"event": "incident.resolved"' in logs
    for person in PEOPLE:
        assert person not in plain
        assert person not in openmetrics
        assert person not in logs


def test_wrongly_typed_events_never_get_a_5xx(service: Service) -> None:
    cases: list[tuple[tuple[Any, ...], Any]] = []
    for name in ("incident_triggered", "incident_resolved"):
        document = fixture(name)
        for path in _paths(document, depth=4):
            cases += [(path, _set(document, path, value)) for value in WRONG_VALUES]
            cases.append((path, _delete(document, path)))
    requests = []
    for _, case in cases:
        content = json.dumps(case).encode()
        requests.append((content, headers(content)))
    statuses: set[int] = set()
    for (path, _), response in zip(cases, service.post_all("/pagerduty", requests), strict=True):
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (path, response.text)
    assert len(cases) > 1000
    assert statuses == {200, 400}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def test_two_replicas_on_one_redis_count_each_incident_once(
    redis: RedisServer, start: Callable[..., Service]
) -> None:
    settings = {
        "state_url": redis.url,
        "pagerduty_webhook_secret": SECRET,
        "pagerduty_services": f"PF9KMXH={REPOSITORY}",
    }
    first, second = start(**settings), start(**settings)
    for replica, name in [
        (first, "incident_resolved"),
        (second, "incident_triggered"),
        (second, "incident_resolved"),
        (first, "incident_triggered"),
    ]:
        assert send(replica, body(name)).status_code == 200
    both = [first.metrics(), second.metrics()]
    name = "dora_incidents_opened_total"
    assert sum(m.get(name, repository=REPOSITORY) for m in both) == 1
    count = "dora_incident_recovery_seconds_count"
    assert sum(m.get(count, repository=REPOSITORY) for m in both) == 1
    total = "dora_incident_recovery_seconds_sum"
    assert sum(m.get(total, repository=REPOSITORY) for m in both) == RECOVERY
