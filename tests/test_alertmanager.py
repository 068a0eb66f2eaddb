"""POST /alertmanager through the real app: Alertmanager's notifications, as it sends them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API_TOKEN, FIXTURES, Service
from tests.corpus import WRONG_VALUES, _delete, _paths, _set
from tests.exposition import Exposition
from tests.redis_server import RedisServer, running_redis

REPOSITORY = "octo-org/octo-app"
# startsAt 10:02:15.739266876 to endsAt 10:47:45.239266876, in the microseconds kept.
RECOVERY = 2729.5
DELIVERIES = "observer_webhook_deliveries_total"


def body(name: str) -> bytes:
    return (FIXTURES / "alertmanager" / f"{name}.json").read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body(name))
    return data


def notify(
    service: Service,
    payload: bytes | dict[str, Any],
    *,
    authorization: str | None = f"Bearer {API_TOKEN}",
) -> httpx.Response:
    """A POST as Alertmanager's webhook notifier makes it."""
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return service.client.post("/alertmanager", content=content, headers=headers)


def deliveries(metrics: Exposition, event: str, result: str) -> float:
    return metrics.get(DELIVERIES, source="alertmanager", event=event, result=result)


def test_a_notification_repeated_then_resolved_counts_one_incident_and_one_recovery(
    service: Service,
) -> None:
    first = notify(service, body("firing"))
    assert first.status_code == 200, first.text
    assert first.json()["result"] == "accepted"
    # Alertmanager's repeat_interval: the same alert again, grouped with two that are not incidents.
    repeat = notify(service, body("firing_grouped"))
    assert repeat.status_code == 200
    assert repeat.json()["result"] == "duplicate"
    assert "1 alert(s) does not match INCIDENT_ALERTS" in repeat.json()["detail"]
    assert "1 alert(s) has no repository label" in repeat.json()["detail"]
    assert notify(service, body("resolved")).json()["result"] == "accepted"
    assert notify(service, body("resolved")).json()["result"] == "duplicate"

    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY
    assert deliveries(metrics, "firing", "accepted") == 1
    assert deliveries(metrics, "firing", "duplicate") == 1
    assert deliveries(metrics, "resolved", "accepted") == 1
    assert deliveries(metrics, "resolved", "duplicate") == 1


def test_resolved_before_firing_counts_the_incident_once(service: Service) -> None:
    assert notify(service, body("resolved")).json()["result"] == "accepted"
    assert notify(service, body("firing")).json()["result"] == "duplicate"
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "bearer token is not valid"),
        ("Bearer wrong-token", "not valid"),
        (f"Bearer {API_TOKEN}x", "not valid"),
    ],
)
def test_bad_or_missing_credentials_get_401_and_mint_nothing(
    service: Service, authorization: str | None, says: str
) -> None:
    before = service.metrics()
    response = notify(service, body("firing"), authorization=authorization)
    assert response.status_code == 401
    assert says in response.text
    after = service.metrics()
    assert after.domain() == {}
    assert deliveries(after, "other", "unauthorized") == 1
    # No series appeared but that count: no label value came from the body.
    new = {name for name, _ in set(after.samples) - set(before.samples)}
    assert new <= {DELIVERIES, DELIVERIES.removesuffix("_total") + "_created"}
    assert REPOSITORY not in service.client.get("/metrics").text


def test_credentials_are_checked_before_the_body_is_read(service: Service) -> None:
    response = notify(service, b"{not json at all", authorization=None)
    assert response.status_code == 401


def test_without_api_token_the_endpoint_says_why(start: Callable[..., Service]) -> None:
    service = start(api_token=None)
    response = notify(service, body("firing"), authorization="Bearer anything")
    assert response.status_code == 401
    assert "API_TOKEN is not configured" in response.text


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({**fixture("firing"), "version": "3"}).encode(), "version '3'"),
        (json.dumps({**fixture("firing"), "status": "pending"}).encode(), "firing or resolved"),
        (
            json.dumps({**fixture("firing"), "alerts": [{"status": "firing"}]}).encode(),
            "",
        ),
    ],
)
def test_malformed_notifications_get_400_with_a_reason(
    service: Service, payload: bytes, says: str
) -> None:
    response = notify(service, payload)
    assert response.status_code == 400, response.text
    assert says in response.text
    assert service.metrics().domain() == {}


def test_alerts_that_are_not_incidents_are_acknowledged_and_ignored(service: Service) -> None:
    payload = fixture("firing")
    payload["alerts"][0]["labels"]["severity"] = "warning"
    response = notify(service, payload)
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert response.json()["detail"] == "1 alert(s) does not match INCIDENT_ALERTS"
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert deliveries(metrics, "firing", "ignored") == 1


def test_wrongly_typed_notifications_never_get_a_5xx(service: Service) -> None:
    cases: list[tuple[tuple[Any, ...], Any]] = []
    for name in ("firing", "resolved", "firing_grouped"):
        document = fixture(name)
        for path in _paths(document, depth=3):
            cases += [(path, _set(document, path, value)) for value in WRONG_VALUES]
            cases.append((path, _delete(document, path)))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
    requests = [(json.dumps(case).encode(), headers) for _, case in cases]
    statuses: set[int] = set()
    for (path, _), response in zip(cases, service.post_all("/alertmanager", requests), strict=True):
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
    # The server is set up before the replicas, so it outlives them.
    first, second = start(state_url=redis.url), start(state_url=redis.url)
    # Behind a load balancer, in any order: resolved reaches one replica first.
    for replica, name in [
        (first, "resolved"),
        (second, "firing"),
        (second, "resolved"),
        (first, "firing_grouped"),
    ]:
        assert notify(replica, body(name)).status_code == 200
    both = [first.metrics(), second.metrics()]
    name = "dora_incidents_opened_total"
    assert sum(m.get(name, repository=REPOSITORY) for m in both) == 1
    count = "dora_incident_recovery_seconds_count"
    assert sum(m.get(count, repository=REPOSITORY) for m in both) == 1
    total = "dora_incident_recovery_seconds_sum"
    assert sum(m.get(total, repository=REPOSITORY) for m in both) == RECOVERY
