"""PagerDuty's pieces: the v1 signature (with rotation), the adapter's refusals, and the events
turned into incidents through the app's own recorder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from observer.domain import Outcome, Result
from observer.sources.adapter import Named, Refused
from observer.sources.pagerduty import adapter
from observer.sources.pagerduty.signature import sign, verify
from tests.conftest import FIXTURES, Service, make_settings

SECRET = b"pagerduty-subscription-secret"
OLD = b"pagerduty-previous-secret"
REPOSITORY = "octo-org/octo-app"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "pagerduty" / f"{name}.json").read_text())
    return data


def test_the_signature_is_pagerdutys_own_example_algorithm() -> None:
    body = (FIXTURES / "pagerduty" / "incident_triggered.json").read_bytes()
    # PagerDuty's documented verifier, written again here as an independent check.
    import hashlib
    import hmac

    expected = "v1=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == expected
    assert verify(SECRET, body, expected)


def test_any_of_several_signatures_verifies_during_a_rotation() -> None:
    body = b'{"event": {}}'
    header = f"{sign(OLD, body)},{sign(SECRET, body)}"
    assert verify(SECRET, body, header)
    assert verify(SECRET, body, f"{sign(SECRET, body)}, {sign(OLD, body)}")
    assert not verify(SECRET, body, sign(OLD, body))


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1=",
        "v1=zz" + "0" * 62,
        "v2=" + "0" * 64,
        "sha256=" + "0" * 64,
        "v1=" + "0" * 63,
    ],
)
def test_malformed_signatures_do_not_verify(header: str) -> None:
    assert not verify(SECRET, b"{}", header)


def test_a_tampered_body_does_not_verify() -> None:
    assert not verify(SECRET, b'{"event": 2}', sign(SECRET, b'{"event": 1}'))


def test_without_a_secret_every_request_is_refused_before_its_body() -> None:
    source = adapter(make_settings())
    with pytest.raises(Refused) as refused:
        source.precheck({"x-pagerduty-signature": sign(SECRET, b"{}")})
    assert refused.value.status == 401
    assert "PAGERDUTY_WEBHOOK_SECRET is not configured" in refused.value.reason


def test_the_event_type_names_the_event_and_x_webhook_id_the_delivery() -> None:
    source = adapter(make_settings(pagerduty_webhook_secret=SECRET.decode()))
    delivery = source.identify({"x-webhook-id": "c9ffd0e6-d5b3-4c6a-9e4d-7a5b2f6c1e11"})
    assert delivery.id == "c9ffd0e6-d5b3-4c6a-9e4d-7a5b2f6c1e11"
    assert delivery.event not in source.events
    body = (FIXTURES / "pagerduty" / "incident_triggered.json").read_bytes()
    parsed = source.parse(delivery, {}, body)
    assert isinstance(parsed, Named)
    assert parsed.event == "incident.triggered"
    assert source.identify({}).id is None


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"{", "not valid JSON"), (b"[]", "not a JSON object"), (b'{"event": {}}', "event_type")],
)
def test_a_body_that_is_not_a_v3_webhook_is_malformed(body: bytes, says: str) -> None:
    source = adapter(make_settings(pagerduty_webhook_secret=SECRET.decode()))
    with pytest.raises(Refused, match=says) as refused:
        source.parse(source.identify({}), {}, body)
    assert refused.value.status == 400


def test_services_map_by_id_or_by_name_and_settings_refuse_a_bad_pair() -> None:
    settings = make_settings(pagerduty_services="PF9KMXH=Octo-Org/Octo-App, Payments API=octo/pay")
    assert settings.pagerduty_services == (
        ("PF9KMXH", "octo-org/octo-app"),
        ("Payments API", "octo/pay"),
    )
    with pytest.raises(ValidationError, match="SERVICE=owner/name"):
        make_settings(pagerduty_services="PF9KMXH")
    with pytest.raises(ValidationError, match="not owner/name"):
        make_settings(pagerduty_services="PF9KMXH=octo app")


Apply = Callable[[str, dict[str, Any]], Result]


@pytest.fixture
def apply(start: Callable[..., Service]) -> tuple[Service, Apply]:
    service = start(
        pagerduty_webhook_secret=SECRET.decode(), pagerduty_services="API Service=" + REPOSITORY
    )
    source = adapter(service.settings)
    recorder = service.client.app_state["services"].recorder

    def run(event: str, payload: dict[str, Any]) -> Result:
        result: Result = service.client.portal.call(source.events[event], payload, recorder)
        return result

    return service, run


def test_triggered_then_resolved_is_one_incident_and_its_recovery(
    apply: tuple[Service, Apply],
) -> None:
    service, run = apply
    assert run("incident.triggered", fixture("incident_triggered")).outcome is Outcome.ACCEPTED
    assert run("incident.triggered", fixture("incident_triggered")).outcome is Outcome.DUPLICATE
    assert run("incident.resolved", fixture("incident_resolved")).outcome is Outcome.ACCEPTED
    assert run("incident.resolved", fixture("incident_resolved")).outcome is Outcome.DUPLICATE
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    # created_at 10:00:02 to the resolved event's occurred_at 10:45:12.500.
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == 2710.5


def test_a_resolution_delivered_first_counts_the_incident_once(
    apply: tuple[Service, Apply],
) -> None:
    service, run = apply
    assert run("incident.resolved", fixture("incident_resolved")).outcome is Outcome.ACCEPTED
    assert run("incident.triggered", fixture("incident_triggered")).outcome is Outcome.DUPLICATE
    metrics = service.metrics()
    assert metrics.get("dora_incidents_opened_total", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPOSITORY) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPOSITORY) == 2710.5


def test_an_unmapped_service_is_ignored_saying_which(apply: tuple[Service, Apply]) -> None:
    service, run = apply
    payload = fixture("incident_triggered")
    payload["event"]["data"]["service"].update(id="PXXXXXX", summary="Billing")
    result = run("incident.triggered", payload)
    assert result.outcome is Outcome.IGNORED
    assert result.detail == "service PXXXXXX (Billing) is not in PAGERDUTY_SERVICES"
    assert service.metrics().domain() == {}


def test_an_incident_without_its_id_fails_validation(apply: tuple[Service, Apply]) -> None:
    _, run = apply
    payload = fixture("incident_triggered")
    del payload["event"]["data"]["id"]
    with pytest.raises(ValidationError):
        run("incident.triggered", payload)
