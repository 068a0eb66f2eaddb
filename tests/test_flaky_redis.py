"""Issue 16 item 0: a flaky connection to Redis loses no count.

A real observer process talks to a real redis-server through a proxy that drops the connection
on a seeded 4 % of the chunks it forwards, mid-command included. A sender replays one history of
/api/event deployments (with the commits they ship) and incidents, each with an id, sending each
again until it gets a 2xx, as a redelivery would. A reference observer in memory gets the same
history once. Once nothing is in doubt and lead-time work is done, every dora_* series agrees.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import API_TOKEN, Service
from tests.exposition import Exposition
from tests.flaky_proxy import flaky_proxy
from tests.processes import start_observer
from tests.redis_server import running_redis

SEED = 16
DROP_RATE = 0.04
MAX_SENDS = 200
SETTLE_TIMEOUT = 30.0
REPOSITORIES = ("octo/app", "octo/api")


def history(seed: int) -> list[dict[str, Any]]:
    """Deployments to production, failures among them, each listing its commits; incidents
    opened and resolved; all in the order of their times, as a deployment's change failures and
    rework are decided when it settles (SETTLE_SECONDS 0 here) from what happened before it."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    commit = 0
    for repository in REPOSITORIES:
        incidents = [
            {
                "type": "incident",
                "repository": repository,
                "id": f"INC-{n}",
                "opened_at": f"2026-11-23T1{n}:00:00Z",
            }
            for n in range(2)
        ]
        events.extend({**incident, "action": "opened"} for incident in incidents)
        for n in range(10):
            status = "failure" if rng.random() < 0.3 else "success"
            commits = []
            for _ in range(rng.randrange(1, 4)):
                commit += 1
                commits.append(
                    {"sha": f"{commit:040x}", "timestamp": f"2026-11-2{n % 3}T0{n % 9}:00:00Z"}
                )
            events.append(
                {
                    "type": "deployment",
                    "repository": repository,
                    "environment": "production",
                    "status": status,
                    "id": f"{repository}-{n}",
                    "sha": commits[-1]["sha"],
                    "timestamp": f"2026-11-23T{10 + n}:00:00Z",
                    "commits": commits,
                }
            )
        events.extend(
            {**incident, "action": "resolved", "resolved_at": "2026-11-23T20:00:00Z"}
            for incident in incidents
        )
    return events


def dora(metrics: Exposition) -> dict[Any, float]:
    return {key: value for key, value in metrics.domain().items() if key[0].startswith("dora_")}


def test_a_flaky_connection_to_redis_loses_no_count(start: Callable[..., Service]) -> None:
    events = history(SEED)
    reference = start()
    for event in events:
        assert reference.push_events(event).status_code == 200
    env = {"API_TOKEN": API_TOKEN, "STATE_TIMEOUT": "1", "SETTLE_SECONDS": "0"}
    with (
        running_redis() as server,
        flaky_proxy(server.port, rate=DROP_RATE, seed=SEED) as proxy,
        start_observer({**env, "STATE_URL": proxy.url}) as observer,
        httpx.Client(base_url=observer.url, timeout=10.0) as client,
    ):
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        refused = 0
        for event in events:
            for _ in range(MAX_SENDS):
                status = client.post("/api/event", json=event, headers=headers).status_code
                if status < 300:
                    break
                assert status == 503, event
                refused += 1
            else:
                raise AssertionError(f"no 2xx for {event} after {MAX_SENDS} sends")
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            metrics = Exposition(client.get("/metrics").text)
            expected, found = dora(reference.metrics()), dora(metrics)
            settled = not metrics.get("observer_state_units_in_doubt")
            if (settled and found == expected) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert proxy.drops > 0
        assert refused > 0
        assert metrics.get("observer_state_units_in_doubt") == 0
        assert found == expected, observer.logs()[-3000:]
