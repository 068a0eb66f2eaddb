"""A new source is one package and one table entry: the pipeline gives it everything else.

tests/example_source is such a package; here it joins observer's own table, and the answers,
the refusals, the admission of repeats, the delivery metric and the counting are the same as
every other source's, with nothing of it written in the source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from observer.app import create_app
from observer.sources.table import ADAPTERS
from tests import example_source
from tests.conftest import make_settings
from tests.exposition import Exposition

REPO = "octo-org/octo-app"
DELIVERIES = "observer_webhook_deliveries_total"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(make_settings(), sources=(*ADAPTERS, example_source.adapter))
    with TestClient(app) as client:
        yield client


def post(client: TestClient, event: str, delivery: str, body: Any, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {
        "X-Beacon-Token": example_source.TOKEN,
        "X-Beacon-Id": delivery,
        "X-Beacon-Event": event,
        "Content-Type": "application/json",
        **headers,
    }
    return client.post("/beacon", content=content, headers=sent)


def check(**extra: str) -> dict[str, str]:
    return {"check": "api", "repository": REPO, "since": "2026-12-01T10:00:00Z", **extra}


def test_a_source_from_one_package_is_served_answered_and_counted(client: TestClient) -> None:
    first = post(client, "down", "d-1", check())
    assert (first.status_code, first.json()) == (200, {"result": "accepted", "delivery": "d-1"})
    assert post(client, "down", "d-1", check()).json()["result"] == "duplicate"
    # A repeat under a new delivery id is the same incident: the recorder admits it once.
    assert post(client, "down", "d-2", check()).json()["result"] == "duplicate"
    resolved = post(client, "up", "d-3", check(until="2026-12-01T10:45:00Z"))
    assert resolved.json()["result"] == "accepted"
    unused = post(client, "flapping", "d-4", check())
    assert unused.json() == {
        "result": "ignored",
        "delivery": "d-4",
        "detail": "event 'flapping' is not used",
    }

    metrics = Exposition(client.get("/metrics").text)
    assert metrics.get("dora_incidents_opened_total", repository=REPO) == 1
    assert metrics.get("dora_incident_recovery_seconds_count", repository=REPO) == 1
    assert metrics.get("dora_incident_recovery_seconds_sum", repository=REPO) == 2700
    counted = {
        (labels["event"], labels["result"]): value
        for (name, pairs), value in metrics.samples.items()
        if name == DELIVERIES and (labels := dict(pairs))["source"] == "beacon" and value
    }
    assert counted == {
        ("down", "accepted"): 1,
        ("down", "duplicate"): 2,
        ("up", "accepted"): 1,
        ("other", "ignored"): 1,
    }


def test_its_refusals_are_the_pipelines(client: TestClient) -> None:
    wrong = post(client, "down", "r-1", check(), **{"X-Beacon-Token": "wrong"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "X-Beacon-Token is missing or wrong"}
    assert post(client, "down", "", check()).json() == {"error": "no X-Beacon-Id"}
    assert post(client, "down", "r-2", b"{not json").status_code == 400
    invalid = post(client, "down", "r-3", {"check": "api"})
    assert invalid.status_code == 400
    assert {field["field"] for field in invalid.json()["fields"]} == {"repository", "since"}
    form = post(client, "down", "r-4", check(), **{"Content-Type": "text/plain"})
    assert form.status_code == 415
    # Refused by the source's own handler, for a reason its model does not express.
    early = post(client, "up", "r-5", check())
    assert (early.status_code, early.json()) == (400, {"error": "an up event needs until"})

    metrics = Exposition(client.get("/metrics").text)
    assert metrics.get("dora_incidents_opened_total", repository=REPO) == 0
    assert metrics.get(DELIVERIES, source="beacon", event="other", result="unauthorized") == 1
    assert metrics.get(DELIVERIES, source="beacon", event="down", result="malformed") == 4
    assert metrics.get(DELIVERIES, source="beacon", event="up", result="malformed") == 1
    # The series of its table exist from the start, like every source's.
    assert metrics.value(DELIVERIES, source="beacon", event="up", result="accepted") == 0
