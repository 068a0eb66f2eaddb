"""Every example delivery GitHub documents (``@octokit/webhooks-examples``) gets a 2xx.

A new action GitHub adds (``issues`` ``pinned``) may lack fields the handled actions carry; an
authentic delivery must still be acknowledged, so only a handled action's payload is validated.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES, Service

EXAMPLES = FIXTURES / "octokit" / "webhooks-examples.json.gz"


def load_examples(path: Path = EXAMPLES) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(gzip.decompress(path.read_bytes()))["events"]
    return events


def test_every_example_delivery_of_every_event_type_gets_a_2xx(service: Service) -> None:
    events = load_examples()
    assert len(events) == 58
    refused = []
    delivered = 0
    for event in events:
        for example in event["examples"]:
            response = service.deliver(event["name"], example)
            delivered += 1
            if not response.is_success:
                refused.append((event["name"], example.get("action"), response.text))
    assert refused == []
    assert delivered == 329
    metrics = service.metrics()
    for result in ("malformed", "unauthorized"):
        for name in ("ping", "deployment_status", "pull_request", "push", "issues", "other"):
            assert (
                metrics.get(
                    "observer_webhook_deliveries_total", source="github", event=name, result=result
                )
                == 0
            )


def test_an_issue_pinned_is_ignored_and_an_incident_still_counts(service: Service) -> None:
    examples = {e["name"]: e["examples"] for e in load_examples()}
    pinned = next(x for x in examples["issues"] if x["action"] == "pinned")
    response = service.deliver("issues", pinned)
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert response.json()["detail"] == "action 'pinned' is not used"
    assert service.deliver_fixture("issues_opened_incident").json()["result"] == "accepted"
    assert service.metrics().get("dora_incidents_opened_total", repository="octo-org/octo-app") == 1


def test_every_example_is_answered_and_counted_alike_as_json_and_as_a_form(
    start: Callable[..., Service],
) -> None:
    # A JSON body is validated straight from its bytes; a form's payload goes through
    # json.loads first. Which parser read a delivery must not show in its answer or its count.
    as_json, as_form = start(), start()
    for event in load_examples():
        for index, example in enumerate(event["examples"]):
            delivery = f"{event['name']}-{index}"
            sent = as_json.deliver(event["name"], example, delivery=delivery)
            form = as_form.deliver(
                event["name"],
                example,
                delivery=delivery,
                content_type="application/x-www-form-urlencoded",
            )
            assert (sent.status_code, sent.json()) == (form.status_code, form.json()), delivery
    assert _counted(as_json.metrics().text) == _counted(as_form.metrics().text)


def _counted(exposition: str) -> list[str]:
    # Every series but the process's own and the request durations, which differ by nature.
    skipped = ("process_", "python_", "observer_request_duration", "observer_last_event")
    return sorted(
        line for line in exposition.splitlines() if line and not line.startswith(("#", *skipped))
    )
