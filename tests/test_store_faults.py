"""A store that fails part-way through an event: the retry counts exactly what one delivery would.

Each event writes the store; the store here fails at each of those writes in turn, before it
applies (the call raises) or after (the write landed but the answer was lost, as when a
connection drops mid-command). The delivery gets 503 and is sent again, as GitHub's redelivery
or a pipeline would; at the end, every dora_* and github_* series equals a run without faults.
Memory, the file snapshot and a real redis-server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import observer.app
from observer.settings import Settings
from observer.state import Store, StoreUnavailable, open_store
from tests.conftest import Service, load_fixture
from tests.payloads import pull_request, review
from tests.redis_server import RedisServer, running_redis

# Tasks that write on their own, not for the request in flight.
BACKGROUND = ("Enrichment._consume", "Enrichment._scan_loop", "Ledger.run")
# The lead-time worker's own task.
WORKER = "Enrichment._consume"
WRITES = ("add", "discard", "put_many", "append_many", "update", "commit")
MAX_SENDS = 5
SETTLE_TIMEOUT = 10.0


class FaultyStore:
    """A store whose ``position``-th write of a request (or of the lead-time worker, with
    ``worker``) fails, before it applies or after."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.worker = False
        self.writes = 0
        self.position: int | None = None
        self.after = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in WRITES:
            return attribute

        async def write(*args: Any, **kwargs: Any) -> Any:
            task = _task_name()
            if (task != WORKER) if self.worker else (task in BACKGROUND):
                return await attribute(*args, **kwargs)
            position, self.writes = self.writes, self.writes + 1
            if position != self.position:
                return await attribute(*args, **kwargs)
            self.position = None  # one fault, then the store is back
            if not self.after:
                raise StoreUnavailable("injected: the store failed before the write")
            await attribute(*args, **kwargs)
            raise StoreUnavailable("injected: the write landed, its answer was lost")

        return write

    @property
    def kinds(self) -> Any:
        return self._inner.kinds

    @property
    def mode(self) -> str:
        return self._inner.mode


def _task_name() -> str:
    task = asyncio.current_task()
    return getattr(task.get_coro(), "__qualname__", "") if task is not None else ""


SHA = "c" * 40


def _deployment(key: str, status: str, minute: int, commits: int = 0) -> dict[str, Any]:
    return {
        "type": "deployment",
        "repository": "octo-org/octo-app",
        "environment": "production",
        "status": status,
        "id": key,
        "sha": SHA,
        "timestamp": f"2026-11-23T10:{minute:02d}:00Z",
        "commits": [
            {"sha": f"{n:040x}", "timestamp": f"2026-11-23T0{n}:00:00Z"} for n in range(commits)
        ],
    }


def _incident(action: str) -> dict[str, Any]:
    event = {
        "type": "incident",
        "repository": "octo-org/octo-app",
        "action": action,
        "id": "INC-1",
        "opened_at": "2026-11-23T10:00:00Z",
    }
    if action == "resolved":
        event["resolved_at"] = "2026-11-23T10:40:00Z"
    return event


@dataclass(frozen=True)
class Event:
    name: str
    send: Callable[[Service], Any]


def _webhook(event: str, payload: dict[str, Any], delivery: str) -> Callable[[Service], Any]:
    return lambda service: service.deliver(event, payload, delivery=delivery)


def _api(item: dict[str, Any]) -> Callable[[Service], Any]:
    return lambda service: service.push_events(item)


PR_ID = 4_000_000_001
# One history: a push and a merged pull request, a review, two failed production deployments and
# the success that ends them (a recovery, and lead time from the commits it lists), an incident
# pushed by a pipeline and one from a GitHub issue's label.
HISTORY = [
    Event("push", _webhook("push", load_fixture("push"), "d-push")),
    Event(
        "pull_request",
        _webhook(
            "pull_request",
            pull_request("closed", "monalisa", merged_at="2026-11-22T12:00:00Z", pr_id=PR_ID),
            "d-pull",
        ),
    ),
    Event(
        "review",
        _webhook(
            "pull_request_review",
            review("hubot", "monalisa", pr_id=PR_ID, submitted_at="2026-11-20T09:00:00Z"),
            "d-review",
        ),
    ),
    Event("failure", _api(_deployment("d1", "failure", 1))),
    Event("error", _api(_deployment("d2", "error", 2))),
    Event("success", _api(_deployment("d3", "success", 3, commits=3))),
    Event("incident_opened", _api(_incident("opened"))),
    Event("incident_resolved", _api(_incident("resolved"))),
    # An issue's incident period, decided by one change of the periods.
    Event("issue_labeled", _webhook("issues", load_fixture("issues_labeled_incident"), "d-lab")),
    Event(
        "issue_unlabeled",
        _webhook("issues", load_fixture("issues_unlabeled_incident"), "d-unlab"),
    ),
]


@dataclass
class Backend:
    name: str
    settings: Callable[[], dict[str, Any]]
    reset: Callable[[], None]


@pytest.fixture(params=["memory", "file", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", dict, lambda: None)
    elif request.param == "file":
        runs = iter(range(10_000))
        yield Backend(
            "file",
            lambda: {"state_url": (tmp_path / f"state-{next(runs)}.json").as_uri()},
            lambda: None,
        )
    else:
        with running_redis() as server:
            yield Backend("redis", lambda: {"state_url": server.url}, _flush(server))


def _flush(server: RedisServer) -> Callable[[], None]:
    def flush() -> None:
        with server.client() as client:
            client.flushall()

    return flush


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> list[FaultyStore]:
    """Every service started from here on opens its store through a FaultyStore."""
    opened: list[FaultyStore] = []

    def open_faulty(settings: Settings) -> Any:
        store = FaultyStore(open_store(settings))
        opened.append(store)
        return store

    monkeypatch.setattr(observer.app, "open_store", open_faulty)
    return opened


def _send(service: Service, event: Event) -> list[int]:
    """Send until a 2xx, as a redelivery would; the statuses answered."""
    statuses = []
    for _ in range(MAX_SENDS):
        status = event.send(service).status_code
        statuses.append(status)
        if status < 300:
            return statuses
    raise AssertionError(f"{event.name}: no 2xx after {statuses}")


def _settled(service: Service, expected: dict[Any, float] | None) -> dict[Any, float]:
    """The domain series once nothing is in doubt and lead-time work is done (bounded wait)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        metrics = service.metrics()
        domain = metrics.domain()
        quiet = not metrics.get("observer_state_units_in_doubt") and not metrics.get(
            "observer_enrichment_queue_depth"
        )
        lead = metrics.get("dora_lead_time_seconds_count", **_labels())
        if (quiet and lead and (expected is None or domain == expected)) or (
            time.monotonic() > deadline
        ):
            return domain
        time.sleep(0.02)


def _labels() -> dict[str, str]:
    return {"repository": "octo-org/octo-app", "environment": "production"}


def _run(
    start: Callable[..., Service],
    faulty: list[FaultyStore],
    backend: Backend,
    fault: tuple[int, int, bool] | None,
    expected: dict[Any, float] | None,
) -> tuple[dict[Any, float], list[int], list[list[int]]]:
    """The history once, with at most one fault: (event index, write position, after)."""
    backend.reset()
    service = start(**backend.settings())
    store = faulty[-1]
    writes, answers = [], []
    for index, event in enumerate(HISTORY):
        before = store.writes
        if fault is not None and fault[0] == index:
            store.position, store.after = before + fault[1], fault[2]
        answers.append(_send(service, event))
        writes.append(store.writes - before)
    domain = _settled(service, expected)
    service.client.__exit__(None, None, None)
    return domain, writes, answers


def test_a_store_failing_at_any_write_then_the_retry_counts_as_one_delivery(
    start: Callable[..., Service], faulty: list[FaultyStore], backend: Backend
) -> None:
    expected, writes, _ = _run(start, faulty, backend, None, None)
    recovery = ("dora_deployment_recovery_seconds_count", frozenset(_labels().items()))
    assert expected[recovery] == 1
    assert expected[("dora_lead_time_seconds_count", frozenset(_labels().items()))] == 3
    assert all(writes), writes  # every event writes the store
    failed = 0
    for index, event in enumerate(HISTORY):
        # Each write the first send makes, and one past the end: the redelivery's own.
        for position in range(writes[index]):
            for after in (False, True):
                domain, _, answers = _run(
                    start, faulty, backend, (index, position, after), expected
                )
                failed += answers[index][0] == 503
                assert domain == expected, (event.name, position, after, answers[index])
    assert failed  # the faults were answered 503, and the retries then counted once


def _run_worker(
    start: Callable[..., Service],
    faulty: list[FaultyStore],
    backend: Backend,
    fault: tuple[int, bool] | None,
    expected: dict[Any, float] | None,
) -> tuple[dict[Any, float], int]:
    """The history once, the lead-time worker's write at ``fault[0]`` failing."""
    backend.reset()
    service = start(**backend.settings())
    store = faulty[-1]
    store.worker = True
    if fault is not None:
        store.position, store.after = fault
    for event in HISTORY:
        _send(service, event)
    domain = _settled(service, expected)
    service.client.__exit__(None, None, None)
    return domain, store.writes


def test_the_lead_time_worker_failing_at_any_write_observes_each_change_once(
    start: Callable[..., Service], faulty: list[FaultyStore], backend: Backend
) -> None:
    """The worker's observations and its history marks land together: a failure, or an answer
    lost, between them neither loses a lead time nor observes one twice."""
    expected, writes = _run_worker(start, faulty, backend, None, None)
    assert writes
    for position in range(writes):
        for after in (False, True):
            domain, _ = _run_worker(start, faulty, backend, (position, after), expected)
            assert domain == expected, (position, after)


def test_a_review_whose_store_fails_counts_once_after_its_redelivery(
    start: Callable[..., Service], faulty: list[FaultyStore]
) -> None:
    """Issue 16 item 2: the review counter moved before the store failed, and the redelivery
    was then taken for a repeat, so that the first review was never observed."""
    payload = review("hubot", "monalisa", pr_id=PR_ID, submitted_at="2026-11-20T09:00:00Z")
    labels = {"repository": "octo-org/octo-app"}
    refused = 0
    for position in range(3):
        service = start()
        store = faulty[-1]
        store.position = store.writes + position
        answers = _send(service, Event("review", _webhook("pull_request_review", payload, "r")))
        refused += answers[0] == 503
        metrics = service.settled()
        assert metrics.get("github_pull_request_reviews_total", **labels, state="approved") == 1
        assert metrics.get("github_pull_request_first_review_seconds_count", **labels) == 1
    assert refused


def test_the_ledger_resolves_a_unit_in_doubt_before_its_retry_is_answered(
    start: Callable[..., Service], faulty: list[FaultyStore]
) -> None:
    """A lost reply: the deployment landed, its retry is a duplicate, and this replica's
    numbers already include it when that duplicate is answered."""
    service = start()
    store = faulty[-1]
    store.position, store.after = store.writes, True
    first = service.push_events(_deployment("x1", "success", 5))
    assert first.status_code == 503
    again = service.push_events(_deployment("x1", "success", 5))
    assert again.json()["results"][0]["result"] == "duplicate"
    metrics = service.metrics()
    deployments = metrics.get("dora_deployments_total", **_labels(), status="success")
    assert deployments == 1
    assert metrics.get("observer_state_units_in_doubt") == 0
