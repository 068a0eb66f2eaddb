"""Incidents from GitHub issues: opened, relabelled, reopened, redelivered, out of order.

An issue is an incident while it is open and carries the label; each such period is one
incident, timed from when it began (opened, labelled or reopened) to when it ended (closed or
unlabelled). Every request is a signed ``issues`` delivery built from GitHub's payloads.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from observer.state.open import open_store
from tests.conftest import Service, load_fixture, make_settings
from tests.redis_server import RedisServer, running_redis

REPO = "octo-org/octo-app"
OPENED = "dora_incidents_opened_total"
RECOVERY = "dora_incident_recovery_seconds"
Start = Callable[..., Service]
_issue_ids = itertools.count(4_100_000_000)


@dataclass(frozen=True)
class Delivery:
    action: str
    payload: dict[str, Any]


def hour(h: float) -> str:
    minutes = round(h * 60)
    return f"2026-11-23T{minutes // 60:02d}:{minutes % 60:02d}:00Z"


class Issue:
    """One issue's deliveries, each built from the fixture of its action."""

    def __init__(self, *, created: float, labelled: bool) -> None:
        self.id = next(_issue_ids)
        self.created = hour(created)
        self.labels = ["bug", "incident"] if labelled else ["bug"]
        self.state = "open"

    def _payload(self, fixture: str, action: str, updated: str, **issue: Any) -> Delivery:
        payload = load_fixture(fixture)
        payload["action"] = action
        template = payload["issue"]["labels"][0]
        labels = [{**template, "name": name} for name in self.labels]
        payload["issue"].update(
            {"closed_at": None, **issue},
            id=self.id, created_at=self.created, updated_at=updated, state=self.state,
            labels=labels,
        )  # fmt: skip
        return Delivery(action, payload)

    def opened(self) -> Delivery:
        return self._payload("issues_opened_incident", "opened", self.created)

    def labeled(self, at: float, name: str = "incident") -> Delivery:
        self.labels = [*self.labels, name]
        delivery = self._payload("issues_labeled_incident", "labeled", hour(at))
        delivery.payload["label"]["name"] = name
        return delivery

    def unlabeled(self, at: float, name: str = "incident") -> Delivery:
        self.labels = [label for label in self.labels if label != name]
        delivery = self._payload("issues_unlabeled_incident", "unlabeled", hour(at))
        delivery.payload["label"]["name"] = name
        return delivery

    def closed(self, at: float) -> Delivery:
        self.state = "closed"
        return self._payload("issues_closed_incident", "closed", hour(at), closed_at=hour(at))

    def reopened(self, at: float) -> Delivery:
        self.state = "open"
        return self._payload("issues_reopened_incident", "reopened", hour(at))


def send(service: Service, delivery: Delivery) -> str:
    response = service.deliver("issues", delivery.payload)
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


def incidents(service: Service) -> tuple[float, float, float]:
    """Opened, resolved and the recovery seconds summed, as /metrics says."""
    metrics = service.metrics()
    return (
        metrics.get(OPENED, repository=REPO),
        metrics.get(f"{RECOVERY}_count", repository=REPO),
        metrics.get(f"{RECOVERY}_sum", repository=REPO),
    )


def label_then_unlabel() -> tuple[list[Delivery], tuple[float, float, float]]:
    issue = Issue(created=9, labelled=False)
    # Labelled at 10:00, the label removed at 10:30: one incident of 30 minutes.
    return [issue.opened(), issue.labeled(10), issue.unlabeled(10.5)], (1, 1, 1800)


def label_unlabel_label_close() -> tuple[list[Delivery], tuple[float, float, float]]:
    issue = Issue(created=9, labelled=False)
    deliveries = [
        issue.opened(),
        issue.labeled(10),
        issue.unlabeled(10.5),  # 30 minutes
        issue.labeled(11),
        issue.closed(12),  # 60 minutes
    ]
    return deliveries, (2, 2, 1800 + 3600)


def opened_closed_reopened_closed() -> tuple[list[Delivery], tuple[float, float, float]]:
    issue = Issue(created=10, labelled=True)
    deliveries = [
        issue.opened(),
        # GitHub also sends 'labeled' for each label an issue is created with.
        issue.labeled(10),
        issue.closed(10 + 40 / 60),  # 40 minutes
        issue.reopened(11),
        issue.closed(11 + 20 / 60),  # 20 minutes
    ]
    return deliveries, (2, 2, 2400 + 1200)


SCENARIOS = {
    "label, unlabel": label_then_unlabel,
    "label, unlabel, label, close": label_unlabel_label_close,
    "opened with the label, close, reopen, close": opened_closed_reopened_closed,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_period_an_issue_is_an_incident_is_one_incident(
    service: Service, scenario: str
) -> None:
    deliveries, expected = SCENARIOS[scenario]()
    for delivery in deliveries:
        send(service, delivery)
    assert incidents(service) == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_delivery_sent_again_counts_once(service: Service, scenario: str) -> None:
    deliveries, expected = SCENARIOS[scenario]()
    for delivery in deliveries:
        first = send(service, delivery)
        # A second hook (organisation and repository) delivers it under another id at once ...
        assert send(service, delivery) in ("duplicate", "ignored")
        assert first in ("accepted", "duplicate", "ignored")
    # ... and a redelivery of each, from GitHub's Recent Deliveries, comes after all of them.
    for delivery in deliveries:
        assert send(service, delivery) in ("duplicate", "ignored")
    assert incidents(service) == expected


def test_a_closing_delivered_after_the_reopening_does_not_end_the_new_incident(
    service: Service,
) -> None:
    issue = Issue(created=10, labelled=True)
    opened, closed, reopened = issue.opened(), issue.closed(10.5), issue.reopened(11)
    for delivery in (opened, closed, reopened, closed):
        send(service, delivery)
    assert incidents(service) == (2, 1, 1800)
    send(service, issue.closed(13))
    assert incidents(service) == (2, 2, 1800 + 7200)


def test_a_removal_delivered_before_its_labelling_gives_the_same_numbers(
    service: Service,
) -> None:
    issue = Issue(created=9, labelled=False)
    labelled, unlabelled = issue.labeled(10), issue.unlabeled(10.5)
    assert send(service, unlabelled) == "ignored"
    assert send(service, labelled) == "accepted"
    assert incidents(service) == (1, 1, 1800)
    # The creation's 'opened' after its 'labeled': one incident, from the creation.
    created = Issue(created=12, labelled=True)
    labelled, opened = created.labeled(12.25), created.opened()
    for delivery in (labelled, opened, created.closed(13)):
        send(service, delivery)
    assert incidents(service) == (2, 2, 1800 + 3600)


def test_a_reopening_delivered_before_its_closing_gives_the_same_numbers(
    service: Service,
) -> None:
    issue = Issue(created=10, labelled=True)
    opened, closed, reopened = issue.opened(), issue.closed(10.5), issue.reopened(11)
    send(service, opened)
    assert send(service, reopened) == "accepted"
    assert incidents(service) == (2, 0, 0)
    # The closing it follows still ends the first incident, and the new one stays open.
    assert send(service, closed) == "accepted"
    assert incidents(service) == (2, 1, 1800)
    send(service, issue.closed(12))
    assert incidents(service) == (2, 2, 1800 + 3600)


def test_removing_the_label_from_what_is_no_incident_counts_nothing(service: Service) -> None:
    # Never seen as an incident: its label removed, then it is closed ...
    never = Issue(created=9, labelled=True)
    assert send(service, never.unlabeled(10)) == "ignored"
    assert send(service, never.closed(11)) == "ignored"
    # ... or closed with the label, its opening never seen: no incident is open to resolve.
    unseen = Issue(created=9, labelled=True)
    assert send(service, unseen.closed(10)) == "ignored"
    # Another label removed from an incident, and the label removed from a closed issue.
    issue = Issue(created=12, labelled=True)
    for delivery in (issue.opened(), issue.unlabeled(12.5, name="bug"), issue.closed(13)):
        send(service, delivery)
    assert send(service, issue.unlabeled(14)) == "ignored"
    # Labelling a closed issue opens nothing either.
    assert send(service, issue.labeled(15)) == "ignored"
    assert incidents(service) == (1, 1, 3600)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def test_two_replicas_on_one_redis_count_each_incident_once(
    redis: RedisServer, start: Start
) -> None:
    # The server is set up before the replicas, so it outlives them.
    first, second = start(state_url=redis.url), start(state_url=redis.url)
    totals = [0.0, 0.0, 0.0]
    for scenario in SCENARIOS.values():
        deliveries, expected = scenario()
        for delivery in deliveries:
            # Each delivery to both, as an organisation hook and a repository hook would.
            send(first, delivery)
            send(second, delivery)
        totals = [total + part for total, part in zip(totals, expected, strict=True)]
    counted = [a + b for a, b in zip(incidents(first), incidents(second), strict=True)]
    assert counted == totals


def test_an_incident_the_previous_version_left_open_still_resolves(
    redis: RedisServer, start: Start
) -> None:
    left_open, resolved = Issue(created=9, labelled=True), Issue(created=9, labelled=True)

    async def as_the_previous_version_left_them() -> None:
        # Its keys: the opening time under the issue's opened key, the resolution as an event.
        store = open_store(make_settings(state_url=redis.url))
        for issue in (left_open, resolved):
            opened = f"incident:issue:{issue.id}:opened"
            await store.add("event", opened)
            await store.put_many("incident", {opened: datetime.fromisoformat(hour(10)).timestamp()})
        await store.add("event", f"incident:issue:{resolved.id}:resolved")
        await store.close()

    asyncio.run(as_the_previous_version_left_them())
    service = start(state_url=redis.url)
    assert send(service, left_open.closed(11.5)) == "accepted"
    assert send(service, resolved.closed(11)) == "ignored"
    assert incidents(service) == (0, 1, 5400)
