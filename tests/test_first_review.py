"""The first review is the earliest submitted by someone else, whatever order reviews arrive in.

The decision waits ``SETTLE_SECONDS`` after a pull request's first review arrived (a histogram
cannot take an observation back), so these tests poll the metrics for it, never sleep.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from observer.app import create_app
from tests.conftest import SECRET, Service, make_settings
from tests.exposition import Exposition
from tests.payloads import members, review, write_teams
from tests.processes import ObserverProcess, start_observer
from tests.redis_server import running_redis
from tests.signing import sign

REPO = "octo-org/octo-app"
FIRST = "github_pull_request_first_review_seconds"
TEAM_FIRST = "github_team_pull_request_first_review_seconds"
# Long enough for a test's few deliveries to arrive inside it, short enough to wait for.
SETTLE = 2.0
TIMEOUT = 20.0
OPENED = "2026-11-20T12:00:00Z"
Start = Callable[..., Service]


def submitted(
    service: Service, reviewer: str, at: str, *, pr_id: int, author: str = "monalisa", **kw: Any
) -> str:
    payload = review(reviewer, author, pr_id=pr_id, submitted_at=at, created_at=OPENED, **kw)
    response = service.deliver("pull_request_review", payload)
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


def decided(service: Service, count: int = 1, **labels: str) -> Exposition:
    """The metrics once ``count`` first reviews are observed and no due work is left."""
    labels = labels or {"repository": REPO}
    name = f"{FIRST}_count" if "repository" in labels else f"{TEAM_FIRST}_count"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if service.metrics().get(name, **labels) >= count:
            return service.settled()
        time.sleep(0.02)
    raise AssertionError(f"{name} did not reach {count}")


def test_an_earlier_review_delivered_later_is_the_first_review(start: Start) -> None:
    """Issue 16 item 3: a comment at 14:00 delivered first, an approval at 13:00 second, on a
    pull request opened at 12:00: the first review is the 13:00 one (3,600 s), not 7,200 s."""
    service = start(settle_seconds=SETTLE)
    assert submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=301, state="commented") == (
        "accepted"
    )
    assert submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=301) == "accepted"
    metrics = decided(service)
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600
    reviews = "github_pull_request_reviews_total"
    assert metrics.get(reviews, repository=REPO, state="commented") == 1
    assert metrics.get(reviews, repository=REPO, state="approved") == 1


def test_reviews_in_order_give_the_same_first_review(start: Start) -> None:
    service = start(settle_seconds=SETTLE)
    submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=302)
    submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=302, state="commented")
    metrics = decided(service)
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600


def test_redelivered_reviews_count_once(start: Start) -> None:
    """Out of order, each review redelivered (same delivery id) and sent by a second hook, before
    and after the decision: one first review, from the earliest, and each review counted once."""
    service = start(settle_seconds=SETTLE)
    late = review("hubot", "monalisa", pr_id=303, submitted_at="2026-11-20T14:00:00Z")
    early = review("octocat", "monalisa", pr_id=303, submitted_at="2026-11-20T13:00:00Z")
    outcomes = []
    for payload in (late, early):
        payload["pull_request"]["created_at"] = OPENED
        delivery = str(uuid.uuid4())
        for sent in (delivery, delivery, None):
            response = service.deliver("pull_request_review", payload, delivery=sent)
            outcomes.append(response.json()["result"])
    assert outcomes == ["accepted", "duplicate", "duplicate"] * 2
    decided(service)
    for payload in (late, early):
        assert service.deliver("pull_request_review", payload).json()["result"] == "duplicate"
    metrics = service.settled()
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600
    assert metrics.get("github_pull_request_reviews_total", repository=REPO, state="approved") == 2


def test_the_authors_own_earlier_review_never_counts(start: Start) -> None:
    service = start(settle_seconds=SETTLE)
    submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=304)
    # The author's own note, the earliest of all, and in another letter case.
    submitted(service, "MonaLisa", "2026-11-20T12:30:00Z", pr_id=304, state="commented")
    submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=304, state="commented")
    metrics = decided(service)
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600


def test_a_review_arriving_after_the_decision_changes_nothing(start: Start) -> None:
    """Documented: the decision is taken once; an earlier review delivered after it is late."""
    service = start(settle_seconds=SETTLE)
    submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=305)
    assert decided(service).get(f"{FIRST}_sum", repository=REPO) == 7200
    submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=305)
    metrics = service.settled()
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 7200


def test_the_team_histogram_follows_the_earliest_review(start: Start, tmp_path: Path) -> None:
    teams = {"teams": {"payments": {"members": members("a", "b", "c", "d", "monalisa")}}}
    service = start(settle_seconds=SETTLE, teams_file=write_teams(tmp_path / "teams.yaml", teams))
    submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=306, state="commented")
    submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=306)
    metrics = decided(service, team="payments")
    assert metrics.get(f"{TEAM_FIRST}_count", team="payments") == 1
    assert metrics.get(f"{TEAM_FIRST}_sum", team="payments") == 3600
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600


def test_in_memory_a_first_review_waiting_at_shutdown_is_decided_then() -> None:
    """Process memory does not outlive the process: as with lead time, the waiting decision is
    taken at the stop signal rather than lost."""
    registry = CollectorRegistry()
    settings = make_settings(settle_seconds=3600)
    with TestClient(create_app(settings, registry)) as client:
        service = Service(client, settings)
        submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=308, state="commented")
        submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=308)
        assert service.metrics().get(f"{FIRST}_count", repository=REPO) == 0
    metrics = Exposition(generate_latest(registry).decode())
    assert metrics.get(f"{FIRST}_count", repository=REPO) == 1
    assert metrics.get(f"{FIRST}_sum", repository=REPO) == 3600


def test_the_candidate_in_the_store_names_teams_never_people(start: Start, tmp_path: Path) -> None:
    teams = {"teams": {"payments": {"members": members("a", "b", "c", "d", "monalisa")}}}
    snapshot = tmp_path / "state.json"
    service = start(
        settle_seconds=3600,
        state_url=f"file://{snapshot}",
        teams_file=write_teams(tmp_path / "teams.yaml", teams),
    )
    submitted(service, "hubot", "2026-11-20T14:00:00Z", pr_id=309, state="commented")
    submitted(service, "octocat", "2026-11-20T13:00:00Z", pr_id=309)
    service.client.__exit__(None, None, None)  # the snapshot is saved at shutdown
    families = json.loads(snapshot.read_text())["families"]
    assert [key for key, _, _ in families["review"]] == ["309"]
    assert "payments" in json.dumps(families["review"])
    stored = snapshot.read_text().lower()
    for login in ("hubot", "octocat", "monalisa"):
        assert login not in stored, login


def _deliver(observer: ObserverProcess, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "pull_request_review",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    response = httpx.post(f"{observer.url}/webhook", content=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "accepted"


def _total(observers: list[ObserverProcess], name: str) -> float:
    return sum(
        Exposition(httpx.get(f"{o.url}/metrics", timeout=10).text).get(name, repository=REPO)
        for o in observers
    )


def test_two_replicas_on_one_redis_observe_the_earliest_review_once() -> None:
    """The 14:00 review reaches one replica, the 13:00 one the other: one observation, 3,600 s,
    whichever replica decides it."""
    with running_redis() as redis:
        env = {"STATE_URL": redis.url, "SETTLE_SECONDS": str(SETTLE)}
        with (
            start_observer(env, secret=SECRET) as first,
            start_observer(env, secret=SECRET) as second,
        ):
            late = review("hubot", "monalisa", pr_id=307, submitted_at="2026-11-20T14:00:00Z")
            early = review("octocat", "monalisa", pr_id=307, submitted_at="2026-11-20T13:00:00Z")
            for payload in (late, early):
                payload["pull_request"]["created_at"] = OPENED
            _deliver(first, late)
            _deliver(second, early)
            replicas = [first, second]
            deadline = time.monotonic() + TIMEOUT
            while _total(replicas, f"{FIRST}_count") < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            # Nothing left waiting anywhere: no second decision can come.
            while time.monotonic() < deadline and (
                redis.client().keys("*pending*review*") or redis.client().keys("*lock:enrich*")
            ):
                time.sleep(0.05)
            assert _total(replicas, f"{FIRST}_count") == 1
            assert _total(replicas, f"{FIRST}_sum") == 3600
