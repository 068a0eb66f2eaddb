"""Alertmanager's pieces: the bearer token, payload version 4, and notifications turned into
incidents through the app's own recorder, with Alertmanager's documented payload shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from observer.domain import Outcome, Result
from observer.sources.adapter import Named, Refused
from observer.sources.alertmanager import adapter
from tests.conftest import API_TOKEN, FIXTURES, Service, make_settings

REPOSITORY = "octo-org/octo-app"
# startsAt 10:02:15.739266876 to endsAt 10:47:45.239266876, in the microseconds kept.
RECOVERY = 2729.5


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "alertmanager" / f"{name}.json").read_text())
    return data


def body(name: str) -> bytes:
    return (FIXTURES / "alertmanager" / f"{name}.json").read_bytes()


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "bearer token is not valid"),
        (f"Token {API_TOKEN}", "bearer token is not valid"),
    ],
)
def test_the_precheck_refuses_without_a_bearer_token(authorization: str | None, says: str) -> None:
    source = adapter(make_settings())
    headers = {} if authorization is None else {"authorization": authorization}
    with pytest.raises(Refused, match=says) as refused:
        source.precheck(headers)
    assert refused.value.status == 401


def test_a_wrong_token_is_refused_and_the_right_one_passes() -> None:
    source = adapter(make_settings())
    with pytest.raises(Refused, match="not valid"):
        source.authenticate({"authorization": "Bearer wrong"}, b"{}")
    source.authenticate({"authorization": f"Bearer {API_TOKEN}"}, b"{}")
    source.authenticate({"authorization": f"bearer {API_TOKEN}"}, b"{}")


def test_without_api_token_it_says_so() -> None:
    source = adapter(make_settings(api_token=None))
    with pytest.raises(Refused, match="API_TOKEN is not configured") as refused:
        source.precheck({"authorization": "Bearer anything"})
    assert refused.value.status == 401


def test_the_status_names_the_event_and_there_is_no_delivery_id() -> None:
    source = adapter(make_settings())
    delivery = source.identify({})
    assert delivery.id is None
    assert delivery.event not in source.events
    parsed = source.parse(delivery, {}, body("resolved"))
    assert isinstance(parsed, Named)
    assert parsed.event == "resolved"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (
            json.dumps({**fixture("firing"), "version": "3"}).encode(),
            "version '3' is not supported",
        ),
        (json.dumps({**fixture("firing"), "version": None}).encode(), "version None"),
        (json.dumps({**fixture("firing"), "status": "pending"}).encode(), "firing or resolved"),
    ],
)
def test_what_is_not_a_version_4_notification_is_malformed(payload: bytes, says: str) -> None:
    source = adapter(make_settings())
    with pytest.raises(Refused, match=says) as refused:
        source.parse(source.identify({}), {}, payload)
    assert refused.value.status == 400


Apply = Callable[[dict[str, Any]], Result]


def applier(service: Service) -> Apply:
    source = adapter(service.settings)
    recorder = service.client.app_state["services"].recorder

    def run(payload: dict[str, Any]) -> Result:
        handler = source.events[payload["status"]]
        result: Result = service.client.portal.call(handler, payload, recorder)
        return result

    return run


def test_firing_repeated_then_resolved_is_one_incident_and_one_recovery(
    start: Callable[..., Service],
) -> None:
    service = start()
    run = applier(service)
    assert run(fixture("firing")).outcome is Outcome.ACCEPTED
    # The repeat, grouped with a warning and with an alert that names no repository.
    repeated = run(fixture("firing_grouped"))
    assert repeated.outcome is Outcome.DUPLICATE
    assert repeated.detail == (
        "1 alert(s) does not match INCIDENT_ALERTS; 1 alert(s) has no repository label; "
        "incident already counted"
    )
    assert run(fixture("resolved")).outcome is Outcome.ACCEPTED
    assert run(fixture("resolved")).outcome is Outcome.DUPLICATE
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY
    bucket = "dora_incident_recovery_seconds_bucket"
    assert metrics.get(bucket, repository=REPOSITORY, le="1800.0") == 0
    assert metrics.get(bucket, repository=REPOSITORY, le="3600.0") == 1
    # Nothing else of the domain moved: no deployment, no pull request.
    assert {name for name, _ in metrics.domain()} == {
        "dora_incidents_opened_total",
        "dora_incident_recovery_seconds_count",
        "dora_incident_recovery_seconds_sum",
        bucket,
    }


def test_a_resolution_first_opens_and_resolves_once_and_the_late_firing_is_a_repeat(
    start: Callable[..., Service],
) -> None:
    service = start()
    run = applier(service)
    assert run(fixture("resolved")).outcome is Outcome.ACCEPTED
    assert run(fixture("firing")).outcome is Outcome.DUPLICATE
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == RECOVERY


def test_the_same_alert_firing_again_later_is_a_new_incident(
    start: Callable[..., Service],
) -> None:
    service = start()
    run = applier(service)
    run(fixture("firing"))
    run(fixture("resolved"))
    again = fixture("firing")
    again["alerts"][0]["startsAt"] = "2026-11-23T13:00:00Z"
    assert run(again).outcome is Outcome.ACCEPTED
    assert service.metrics().get("dora_incidents_opened_total", repository=REPOSITORY) == 2


def test_incident_alerts_and_the_repository_label_are_settings(
    start: Callable[..., Service],
) -> None:
    service = start(incident_alerts='alertname=~"Checkout.*"', alert_repository_label="service")
    run = applier(service)
    payload = fixture("firing_grouped")
    for alert in payload["alerts"]:
        alert["labels"]["service"] = alert["labels"].pop("repository", "octo-org/other")
    assert run(payload).outcome is Outcome.ACCEPTED
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 2
    assert metrics.get("dora_incidents_opened_total", repository="octo-org/other") == 1


def test_no_incident_alert_is_ignored_saying_why(start: Callable[..., Service]) -> None:
    service = start()
    run = applier(service)
    payload = fixture("firing")
    payload["alerts"][0]["labels"]["severity"] = "warning"
    result = run(payload)
    assert result.outcome is Outcome.IGNORED
    assert result.detail == "1 alert(s) does not match INCIDENT_ALERTS"
    payload["alerts"][0]["labels"].update(severity="critical", repository="not a repository")
    result = run(payload)
    assert result.detail == "1 alert(s) has a repository label that is not owner/name"
    assert service.metrics().domain() == {}


def test_an_unlisted_repository_is_ignored_as_for_every_source(
    start: Callable[..., Service],
) -> None:
    service = start(repositories="octo-org/other")
    result = applier(service)(fixture("firing"))
    assert result.outcome is Outcome.IGNORED
    assert result.detail == f"repository {REPOSITORY} is not in REPOSITORIES"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda alert: alert.pop("fingerprint"), "fingerprint"),
        (lambda alert: alert.update(startsAt="yesterday"), "startsAt"),
        (lambda alert: alert.update(status="resolved", endsAt="2026-11-23T09:00:00Z"), "endsAt"),
    ],
)
def test_an_alert_without_what_it_needs_fails_validation(
    start: Callable[..., Service], change: Callable[[dict[str, Any]], object], field: str
) -> None:
    run = applier(start())
    payload = fixture("firing")
    change(payload["alerts"][0])
    with pytest.raises(ValidationError, match=field):
        run(payload)
