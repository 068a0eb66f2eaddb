"""``observer demo URL`` fills every domain metric of a running observer with a past history."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from observer.cli.demo import History
from tests.exposition import Exposition
from tests.processes import observer_command, start_observer

pytestmark = pytest.mark.e2e

SECRET = "demo-test-secret-long-enough"
# Every domain family of the contract that webhooks and /api/event fill (teams and surveys need
# a TEAMS_FILE, which the demo does not assume).
FAMILIES = (
    "dora_deployments_total",
    "dora_lead_time_seconds_count",
    "dora_merge_to_deploy_seconds_count",
    "dora_deployment_recovery_seconds_count",
    "dora_incidents_opened_total",
    "dora_incident_recovery_seconds_count",
    "github_pull_requests_total",
    "github_pull_request_cycle_time_seconds_count",
    "github_commits_pushed_total",
)


def demo(url: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}
    if secret is not None:
        env["WEBHOOK_SECRET"] = secret
    return subprocess.run(
        [*observer_command(), "demo", url, "--pause", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def totals(url: str) -> dict[str, float]:
    metrics = Exposition(httpx.get(f"{url}/metrics").text)
    found = dict.fromkeys(FAMILIES, 0.0)
    for (name, _), value in metrics.samples.items():
        if name in found:
            found[name] += value
    return found


def test_the_demo_gives_every_domain_metric_data_and_counts_once() -> None:
    with start_observer(secret=SECRET) as observer:
        result = demo(observer.url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("sent ")
        # Lead times are computed after the answer, by the enrichment worker.
        deadline = time.monotonic() + 30
        found = totals(observer.url)
        while not all(found.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
            found = totals(observer.url)
        assert {name for name, value in found.items() if not value} == set()
        metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
        repositories = {
            dict(labels)["repository"]
            for name, labels in metrics.samples
            if name == "dora_deployments_total"
        }
        assert len(repositories) >= 3
        statuses = {
            dict(labels)["status"]
            for (name, labels), value in metrics.samples.items()
            if name == "dora_deployments_total" and value
        }
        assert {"success", "failure"} <= statuses
        # Sent again, the same history is recognised and counts nothing new.
        again = demo(observer.url)
        assert again.returncode == 0, again.stderr
        assert totals(observer.url) == found


def test_the_demo_history_lies_in_the_past_and_spans_weeks() -> None:
    now = datetime.now(UTC)
    history = History(now, days=28, seed=3).build()
    times = [item.time for item in history]
    assert max(times) <= now
    assert min(times) >= now - timedelta(days=28, seconds=1)
    assert max(times) - min(times) > timedelta(days=21)


def test_the_demo_needs_the_secret() -> None:
    result = demo("http://127.0.0.1:9", secret=None)
    assert result.returncode == 2
    assert result.stderr == "observer demo: WEBHOOK_SECRET is required (the running observer's)\n"


def test_a_wrong_secret_stops_at_the_first_refusal_with_one_line_saying_what_to_check() -> None:
    with start_observer(secret=SECRET) as observer:
        result = demo(observer.url, secret="not-the-observer-secret")
        metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
        warnings = observer.log_lines(
            lambda lines: any(line.get("status") == 401 for line in lines)
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "WEBHOOK_SECRET must equal the running observer's WEBHOOK_SECRET" in result.stderr
    refused = [
        value
        for (name, labels), value in metrics.samples.items()
        if name in ("observer_webhook_deliveries_total", "observer_api_events_total")
        and ("result", "unauthorized") in labels
    ]
    # One request refused, one warning in the observer's log; nothing else was sent.
    assert sum(refused) == 1
    assert (
        metrics.get(
            "observer_webhook_deliveries_total", source="github", event="other", result="accepted"
        )
        == 0
    )
    assert len([line for line in warnings if line["level"] == "warning"]) == 1
