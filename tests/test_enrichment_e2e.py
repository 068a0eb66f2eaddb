"""Lead time end to end: a real observer process asks a fake GitHub API over real HTTP."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET
from tests.corpus import signed_headers
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub, serve
from tests.processes import ObserverProcess, start_observer
from tests.story import REPO, api_commit, compare, deployment_status, push, sha

pytestmark = pytest.mark.e2e
PRODUCTION = {"repository": REPO, "environment": "production"}
TOKEN = "ghp_e2e-token-value"


def deliver(observer: ObserverProcess, event: str, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = signed_headers(event, body)
    headers["X-GitHub-Delivery"] = str(uuid.uuid4())
    return httpx.post(f"{observer.url}/webhook", content=body, headers=headers, timeout=10)


def wait_for(observer: ObserverProcess, name: str, value: float, timeout: float = 20) -> Exposition:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
        if metrics.get(name, **PRODUCTION) >= value:
            return metrics
        time.sleep(0.05)
    raise AssertionError(f"{name} did not reach {value}")


def test_lead_times_from_a_github_enterprise_style_api() -> None:
    fake = FakeGitHub()
    fake.responses[f"/repos/{REPO}/deployments"] = []
    fake.responses[f"/repos/{REPO}/compare/{sha('c2')}...{sha('c5')}"] = compare(
        [api_commit("c3", 20, ["c2"]), api_commit("c4", 30, ["c3"]), api_commit("c5", 40, ["c4"])]
    )
    with (
        serve(fake),
        start_observer(
            {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url}, secret=SECRET
        ) as observer,
    ):
        assert deliver(observer, "push", push([("c2", 10)])).status_code == 200
        assert deliver(observer, "deployment_status", deployment_status(1, "c2", 12)).is_success
        wait_for(observer, "dora_lead_time_seconds_count", 1)
        pushed = push([("c3", 20), ("c4", 30), ("c5", 40)], before="c2")
        assert deliver(observer, "push", pushed).status_code == 200
        assert deliver(observer, "deployment_status", deployment_status(2, "c5", 50)).is_success
        metrics = wait_for(observer, "dora_lead_time_seconds_count", 4)
        assert metrics.get("dora_lead_time_seconds_sum", **PRODUCTION) == (2 + 30 + 20 + 10) * 3600
        assert metrics.get("observer_github_api_requests_total", status="200") == 4
        assert metrics.get("observer_github_api_requests_total", status="404") == 0
        assert metrics.get("observer_github_rate_limit_remaining") == 4999
        logs = observer.logs()
    # Each deployment's commits are confirmed as direct (no pull request) through GraphQL.
    assert fake.paths() == [
        f"/repos/{REPO}/deployments",
        "/api/graphql",
        f"/repos/{REPO}/compare/{sha('c2')}...{sha('c5')}",
        "/api/graphql",
    ]
    assert {auth for _, auth in fake.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in logs


def test_an_api_that_has_not_answered_delays_neither_the_webhook_nor_the_stop() -> None:
    held = threading.Event()
    fake = FakeGitHub(hold=held)
    fake.responses[f"/repos/{REPO}/deployments"] = []
    # The held request must not time out on its own, however slow the machine.
    env = {"GITHUB_TOKEN": TOKEN, "SHUTDOWN_TIMEOUT": "1", "GITHUB_TIMEOUT": "120"}
    with (
        serve(fake),
        start_observer({**env, "GITHUB_API_URL": fake.url}, secret=SECRET) as observer,
    ):
        try:
            response = deliver(observer, "deployment_status", deployment_status(1, "c2", 12))
            assert response.status_code == 200
            deadline = time.monotonic() + 15
            while not fake.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            assert fake.requests, "enrichment never asked the API"
            metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
            assert metrics.get("dora_deployments_total", status="success", **PRODUCTION) == 1
            # SIGTERM while the request is held: the worker gets SHUTDOWN_TIMEOUT to drain,
            # then the process exits without the API's answer.
            observer.process.send_signal(signal.SIGTERM)
            assert observer.process.wait(timeout=60) == 0
            assert not held.is_set()
            assert "enrichment stopped with work left" in observer.logs()
        finally:
            held.set()
