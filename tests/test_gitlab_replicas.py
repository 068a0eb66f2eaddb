"""A GitLab history through two real observer processes sharing a real redis-server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import httpx
import pytest

from tests.exposition import Exposition
from tests.gitlab import NUMBERS, REPO, SECRET, headers, story
from tests.processes import start_observer
from tests.redis_server import running_redis

pytestmark = pytest.mark.e2e
DEADLINE = 20.0


def summed(scrapes: list[Exposition], name: str, **labels: str) -> float:
    """``sum without(instance)`` of the series of ``name`` carrying ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for scrape in scrapes
        for (sample, sample_labels), value in scrape.samples.items()
        if sample == name and wanted <= sample_labels
    )


def figures(scrapes: list[Exposition]) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for key in NUMBERS:
        name, *rest = key
        labels = {"repository": REPO}
        if name == "dora_deployments_total":
            labels.update(environment=rest[0], status=rest[1])
        elif name == "github_pull_requests_total":
            labels["action"] = rest[0]
        elif name == "github_pull_request_reviews_total":
            labels["state"] = rest[0]
        found[key] = summed(scrapes, name, **labels)
    return found


def test_two_replicas_sharing_redis_count_each_gitlab_event_once() -> None:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(running_redis())
        env = {"GITLAB_WEBHOOK_SECRET": SECRET, "STATE_URL": server.url}
        processes = [stack.enter_context(start_observer(env)) for _ in range(2)]
        clients = [stack.enter_context(httpx.Client(base_url=p.url, timeout=15)) for p in processes]
        for index, step in enumerate(story()):
            first, other = clients[index % 2], clients[(index + 1) % 2]
            body = step.body()
            # The delivery, GitLab's retry of it reaching the other replica, and the same event
            # from a second hook (a group's and a project's) with its own Idempotency-Key.
            for client, delivery in (
                (first, step.delivery),
                (other, step.delivery),
                (other, step.delivery + "-group-hook"),
            ):
                sent = headers(step.event, body, delivery=delivery)
                response = client.post("/gitlab", content=body, headers=sent)
                assert response.status_code == 200, response.text

        def scrape() -> list[Exposition]:
            return [Exposition(client.get("/metrics").text) for client in clients]

        with contextlib.suppress(TimeoutError):
            _wait(scrape)
        scrapes = scrape()
        assert figures(scrapes) == NUMBERS
        assert summed(scrapes, "observer_webhook_deliveries_total", source="gitlab") == 3 * len(
            story()
        )


def _wait(scrape: Callable[[], list[Exposition]]) -> None:
    """Until the lead time is observed and no work waits on either replica."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        scrapes = scrape()
        done = summed(scrapes, "dora_lead_time_seconds_count", repository=REPO) >= 3
        idle = summed(scrapes, "observer_enrichment_queue_depth") == 0
        if done and idle:
            return
        time.sleep(0.05)
    raise TimeoutError
