"""Nothing a client sends gets a 5xx, and nothing rejected moves a metric."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET, Service
from tests.corpus import (
    api_bodies,
    api_headers,
    dumps,
    raw_bodies,
    signed_headers,
    wrongly_typed_payloads,
)
from tests.signing import sign

EVENTS = ["deployment_status", "pull_request", "push", "issues", "ping", "star"]


def test_wrongly_typed_github_payloads_never_get_a_5xx(service: Service) -> None:
    cases = [(case, event, dumps(payload)) for case, event, payload in wrongly_typed_payloads()]
    requests = [(body, signed_headers(event, body)) for _, event, body in cases]
    statuses: dict[int, int] = {}
    for (case, _, _), response in zip(cases, service.post_all("/webhook", requests), strict=True):
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, case
    assert len(cases) > 2000
    # Both outcomes occur: fields the service reads are refused, the others are not read.
    assert set(statuses) <= {200, 400}
    assert statuses[400] > 100 and statuses[200] > 100


@pytest.mark.parametrize(
    ("case", "body", "content_type"), list(raw_bodies()), ids=[case for case, _, _ in raw_bodies()]
)
def test_malformed_bodies_get_4xx_and_move_nothing(
    service: Service, case: str, body: bytes, content_type: str
) -> None:
    for event in EVENTS:
        headers = signed_headers(event, body, content_type)
        # One delivery per event: an acknowledged one is remembered, and a repeat is a duplicate.
        headers["X-GitHub-Delivery"] += f"-{event}"
        response = service.client.post("/webhook", content=body, headers=headers)
        assert (
            400 <= response.status_code < 500
            or (event in ("ping", "star") and response.status_code == 200)
            # An object without an action these events handle is acknowledged and ignored,
            # like a new action GitHub adds.
            or (event in ("pull_request", "issues") and response.json()["result"] == "ignored")
        ), (case, event, response.status_code)
    assert service.metrics().domain() == {}


def test_wrongly_typed_api_events_get_4xx_or_apply_cleanly(service: Service) -> None:
    count = 0
    for case, document in api_bodies():
        response = service.client.post("/api/event", content=dumps(document), headers=api_headers())
        assert response.status_code in (200, 400, 422), case
        count += 1
    assert count > 200


def test_unsigned_corpus_is_refused_without_reading_it(service: Service) -> None:
    for _case, event, payload in itertools.islice(wrongly_typed_payloads(), 300):
        body = dumps(payload)
        headers = signed_headers(event, body)
        headers["X-Hub-Signature-256"] = sign("attacker", body)
        response = service.client.post("/webhook", content=body, headers=headers)
        assert response.status_code == 401
    metrics = service.metrics()
    assert metrics.domain() == {}
    assert (
        metrics.get(
            "observer_webhook_deliveries_total",
            source="github",
            event="other",
            result="unauthorized",
        )
        == 300
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


def _event_like() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.sampled_from(["deployment", "incident", "other"])},
        optional={
            "repository": st.sampled_from(["octo/app", "x", "", "a/b/c"]) | st.text(),
            "environment": st.text(),
            "status": st.sampled_from(["success", "failure", "error", "x"]),
            "action": st.sampled_from(["opened", "resolved", "x"]),
            "id": st.text() | st.integers(),
            "sha": st.text(alphabet="0123456789abcdef", min_size=39, max_size=41),
            "timestamp": st.datetimes().map(str) | st.text(),
            "opened_at": st.just("2026-11-23T10:00:00Z") | st.text(),
            "resolved_at": st.just("2026-11-23T11:00:00+02:00") | st.text(),
            "commits": json_values,
        },
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=json_values | _event_like() | st.lists(_event_like(), max_size=4))
def test_arbitrary_json_to_the_event_api_never_gets_a_5xx(service: Service, document: Any) -> None:
    response = service.client.post(
        "/api/event", content=json.dumps(document).encode(), headers=api_headers()
    )
    assert response.status_code in (200, 400, 422)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=st.sampled_from(EVENTS), document=json_values)
def test_arbitrary_signed_json_to_the_webhook_never_gets_a_5xx(
    service: Service, event: str, document: Any
) -> None:
    body = json.dumps(document).encode()
    response = service.client.post("/webhook", content=body, headers=signed_headers(event, body))
    assert response.status_code in (200, 400)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-GitHub-Event",
                "X-GitHub-Delivery",
                "X-Hub-Signature-256",
                "Content-Type",
                "Content-Length",
                "Authorization",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    ),
    body=st.binary(max_size=200),
)
def test_arbitrary_headers_never_get_a_5xx(
    service: Service, headers: dict[str, str], body: bytes
) -> None:
    headers.pop("Content-Length", None)
    for path in ("/webhook", "/api/event", "/gitlab"):
        response = service.client.post(path, content=body, headers=headers)
        assert 400 <= response.status_code < 500
    assert SECRET not in service.client.get("/metrics").text
