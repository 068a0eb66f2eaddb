"""End to end: a real Prometheus scrapes two real observer replicas and evaluates the shipped rules.

Prometheus (the Debian package's binary) runs on loopback with a temporary configuration and data
directory, a 1 s scrape and evaluation interval and ``rules/observer.rules.yml`` loaded as shipped.
The test sends a known history of deployments, incidents and pull requests, split over the two
replicas as a load balancer would, and reads the recorded keys back through Prometheus's HTTP API.

A Prometheus started seconds ago has no data at the start of any window, so the rules would rightly
refuse to count series born inside it (see ``generate.py``). The test gives it the history of a
Prometheus that has been scraping the job for weeks: ``up`` samples around 1, 7, 30 and 35 days
ago, written into the data directory with ``promtool tsdb create-blocks-from openmetrics``.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import load_fixture
from tests.processes import ObserverProcess, free_port, start_observer, stop
from tests.promql import RULE_FILE, dashboard_queries, interpolate, require_binary, rules, run
from tests.signing import sign

pytestmark = pytest.mark.e2e

SECRET = "prometheus-e2e-secret"
TOKEN = "prometheus-e2e-token"
TIMEOUT = 30.0
# Days back at which the rules look for a scrape of the job: their windows' starts.
WINDOW_STARTS = (1, 7, 30, 35)

Labels = frozenset[tuple[str, str]]


def labels(**values: str) -> Labels:
    return frozenset(values.items())


@dataclass
class Stack:
    prometheus: str
    replicas: list[ObserverProcess]
    log: Path

    def query(self, expr: str) -> dict[Labels, float]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        return {
            frozenset((k, v) for k, v in item["metric"].items() if k != "__name__"): float(
                item["value"][1]
            )
            for item in body["data"]["result"]
        }

    def eventually(self, expr: str, expected: dict[Labels, float]) -> None:
        """Poll until ``expr`` returns exactly the expected series and values."""
        deadline = time.monotonic() + TIMEOUT
        got: dict[Labels, float] = {}
        while time.monotonic() < deadline:
            got = self.query(expr)
            if got.keys() == expected.keys() and all(
                math.isclose(got[key], value, rel_tol=1e-9) for key, value in expected.items()
            ):
                return
            time.sleep(0.25)
        raise AssertionError(
            f"{expr}\n  expected {_show(expected)}\n  got      {_show(got)}\n"
            f"prometheus log tail:\n{self.log.read_text()[-2000:]}"
        )


def _show(result: dict[Labels, float]) -> str:
    return str({",".join(f"{k}={v}" for k, v in sorted(key)): val for key, val in result.items()})


def backfill_scrape_history(promtool: str, data: Path, now: float) -> None:
    samples = []
    for days in WINDOW_STARTS:
        start = int(now) - days * 86400 - 600
        samples += range(start, start + 1200, 15)
    lines = ["# HELP up Whether the target was scraped.", "# TYPE up gauge"]
    lines += [f'up{{job="observer",instance="history"}} 1 {t}' for t in sorted(samples)]
    source = data.parent / "history.om"
    source.write_text("\n".join([*lines, "# EOF"]) + "\n")
    result = run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)])
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.contextmanager
def prometheus_server(binary: str, tmp: Path, targets: list[str]) -> Iterator[tuple[str, Path]]:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULE_FILE)],
        "scrape_configs": [
            {
                "job_name": "observer",
                "honor_labels": True,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp / 'data'}",
                "--storage.tsdb.retention.time=60d",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"prometheus exited:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus not ready:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield url, log_path
        finally:
            stop(process)


# --- The event history ------------------------------------------------------------------------

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def sha(n: int) -> str:
    return f"{n:040x}"


def deployment(
    repository: str, environment: str, status: str, minute: int, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "deployment",
        "id": str(uuid.uuid4()),
        "repository": repository,
        "environment": environment,
        "status": status,
        "timestamp": at(minute),
        **extra,
    }


def shipping(n: int, minute: int, authored: int) -> dict[str, Any]:
    """A successful deployment's fields: it ships one commit authored at minute ``authored``."""
    return {"sha": sha(n), "commits": [{"sha": sha(n), "timestamp": at(authored)}]}


# Replica a: octo/app production succeeds, fails at +10, recovers at +40 (30 min), succeeds again;
# staging half fails; one incident resolved after 40 minutes.
REPLICA_A = [
    deployment("octo/app", "production", "success", 0, **shipping(1, 0, -60)),
    deployment("octo/app", "production", "failure", 10),
    deployment("octo/app", "production", "success", 40, **shipping(2, 40, 20)),
    deployment("octo/app", "production", "success", 60, **shipping(3, 60, 50)),
    deployment("octo/app", "staging", "success", 0),
    deployment("octo/app", "staging", "failure", 5),
    deployment("octo/app", "staging", "success", 6),
    deployment("octo/app", "staging", "failure", 7),
    {"type": "incident", "repository": "octo/app", "action": "opened", "id": "INC-1",
     "opened_at": at(-120)},
    {"type": "incident", "repository": "octo/app", "action": "resolved", "id": "INC-1",
     "opened_at": at(-120), "resolved_at": at(-80)},
]  # fmt: skip
# Replica b: octo/app production succeeds, errors at +125, recovers at +145 (20 min); octo/lib
# deploys once.
REPLICA_B = [
    deployment("octo/app", "production", "success", 120, **shipping(4, 120, -120)),
    deployment("octo/app", "production", "error", 125),
    deployment("octo/app", "production", "success", 145, **shipping(5, 145, 135)),
    deployment("octo/lib", "production", "success", 100),
]

APP = {"repository": "octo/app", "environment": "production"}
STAGING = {"repository": "octo/app", "environment": "staging"}
LIB = {"repository": "octo/lib", "environment": "production"}


def post_events(replica: ObserverProcess, events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{replica.url}/api/event",
        json=events,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    results = [item["result"] for item in response.json()["results"]]
    assert results == ["accepted"] * len(events), response.text


def deliver(replica: ObserverProcess, event: str, payload: dict[str, Any], secret: str) -> int:
    body = json.dumps(payload).encode()
    response = httpx.post(
        f"{replica.url}/webhook",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(secret, body),
        },
        timeout=10,
    )
    return response.status_code


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    promtool = require_binary("promtool")
    binary = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "data").mkdir()
    backfill_scrape_history(promtool, tmp / "data", time.time())
    env = {"API_TOKEN": TOKEN}
    with (
        start_observer(env, secret=SECRET) as replica_a,
        start_observer(env, secret=SECRET) as replica_b,
    ):
        replicas = [replica_a, replica_b]
        targets = [f"127.0.0.1:{replica.port}" for replica in replicas]
        with prometheus_server(binary, tmp, targets) as (url, log):
            running = Stack(url, replicas, log)
            running.eventually(
                'up{job="observer"}',
                {labels(job="observer", instance=target): 1.0 for target in targets},
            )
            post_events(replica_a, REPLICA_A)
            post_events(replica_b, REPLICA_B)
            assert deliver(replica_b, "pull_request", load_fixture("pull_request_closed_merged"),
                           SECRET) == 200  # fmt: skip
            assert deliver(replica_a, "push", load_fixture("push"), "not-the-secret") == 401
            yield running


# --- What Prometheus makes of it --------------------------------------------------------------


def test_every_rule_loads_and_evaluates_without_error(stack: Stack) -> None:
    expected = {rule.get("record") or rule.get("alert") for rule in rules()}
    deadline = time.monotonic() + TIMEOUT
    while True:
        body = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()
        loaded = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        evaluated = [rule for rule in loaded if rule.get("lastEvaluation", "").startswith("2")]
        if len(evaluated) == len(loaded) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert {rule["name"] for rule in loaded} == expected
    broken = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert not broken


def test_each_replica_counts_its_own_deliveries_and_the_sum_is_the_whole(stack: Stack) -> None:
    by_instance = 'sum by (instance) (dora_deployments_total{repository="octo/app"})'
    stack.eventually(
        by_instance,
        {
            labels(instance=f"127.0.0.1:{stack.replicas[0].port}"): 8.0,
            labels(instance=f"127.0.0.1:{stack.replicas[1].port}"): 3.0,
        },
    )
    stack.eventually(
        "repository_environment_status:dora_deployments:increase_1d",
        {
            labels(**APP, status="success"): 5.0,
            labels(**APP, status="failure"): 1.0,
            labels(**APP, status="error"): 1.0,
            labels(**STAGING, status="success"): 2.0,
            labels(**STAGING, status="failure"): 2.0,
            labels(**LIB, status="success"): 1.0,
        },
    )


def test_deployment_frequency(stack: Stack) -> None:
    for window, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        stack.eventually(
            f"repository_environment:dora_deployments:per_day_{window}",
            {labels(**APP): 5 / days, labels(**STAGING): 2 / days, labels(**LIB): 1 / days},
        )
        stack.eventually(
            f"environment:dora_deployments:per_day_{window}",
            {labels(environment="production"): 6 / days, labels(environment="staging"): 2 / days},
        )


def test_change_failure_rate(stack: Stack) -> None:
    for window in ("7d", "30d"):
        # Change failures are judged in production only; here each is a failed status.
        stack.eventually(
            f"repository_environment:dora_change_failure_rate:ratio_{window}",
            {labels(**APP): 2 / 7, labels(**LIB): 0.0},
        )
        stack.eventually(
            f"environment:dora_change_failure_rate:ratio_{window}",
            {labels(environment="production"): 2 / 8},
        )
        # The failed-status share, in every environment: staging half fails.
        stack.eventually(
            f"repository_environment:dora_failed_deployment_rate:ratio_{window}",
            {labels(**APP): 2 / 7, labels(**STAGING): 0.5, labels(**LIB): 0.0},
        )


def test_recovery_times(stack: Stack) -> None:
    # Two recoveries of 30 and 20 minutes, both in the (900, 1800] bucket: the median is its middle.
    stack.eventually(
        "repository_environment:dora_deployment_recovery_seconds:p50_7d",
        {labels(**APP): 1350.0},
    )
    # One incident resolved after 40 minutes, in the (1800, 3600] bucket.
    stack.eventually(
        "repository:dora_incident_recovery_seconds:p50_30d", {labels(repository="octo/app"): 2700.0}
    )


def test_tiers(stack: Stack) -> None:
    # 5 deployments in 30 days is weekly or better (high); octo/lib's one is monthly (medium).
    stack.eventually(
        "repository_environment:dora_deployment_frequency:tier_30d",
        {labels(**APP): 3.0, labels(**STAGING): 2.0, labels(**LIB): 2.0},
    )
    stack.eventually(
        "repository_environment:dora_change_failure_rate:tier_30d",
        {labels(**APP): 3.0, labels(**LIB): 4.0},
    )
    stack.eventually(
        "repository_environment:dora_deployment_recovery:tier_30d", {labels(**APP): 4.0}
    )
    stack.eventually(
        "repository:dora_incident_recovery:tier_30d", {labels(repository="octo/app"): 4.0}
    )


def test_pull_request_cycle_time_from_a_signed_webhook(stack: Stack) -> None:
    repository = {"repository": "octo-org/octo-app"}
    stack.eventually(
        'sum by (repository, action) (github_pull_requests_total{action="merged"})',
        {labels(**repository, action="merged"): 1.0},
    )
    # Opened 2026-11-20T08:00, merged 2026-11-21T09:30: 91800 s, in the (86400, 172800] bucket.
    stack.eventually(
        "repository:github_pull_request_cycle_time_seconds:p50_7d",
        {labels(**repository): 86400 + 86400 * 0.5},
    )


def test_a_forged_delivery_is_counted_as_rejected(stack: Stack) -> None:
    stack.eventually(
        'sum(observer_webhook_deliveries_total{result="unauthorized"})', {labels(): 1.0}
    )


def test_lead_time_from_commits_pushed_with_the_deployments(stack: Stack) -> None:
    # Five changes: 60, 20 and 10 minutes (replica a), 240 and 10 minutes (replica b).
    # Cumulative buckets: le=900: 2, le=1800: 3, le=3600: 4, le=14400: 5.
    stack.eventually(
        "repository_environment:dora_lead_time_seconds:p50_7d",
        {labels(**APP): 900 + 900 * (2.5 - 2) / (3 - 2)},
    )
    stack.eventually(
        "repository_environment:dora_lead_time_seconds:p90_7d",
        {labels(**APP): 7200 + 7200 * (4.5 - 4) / (5 - 4)},
    )
    stack.eventually("repository_environment:dora_lead_time:tier_30d", {labels(**APP): 4.0})


# --- The dashboard's queries on the same history ----------------------------------------------


def _panel_query(title: str, ref: str = "A") -> str:
    return interpolate(dashboard_queries()[f"panel {title!r} {ref}"])


def test_the_dashboard_shows_the_expected_keys_and_tiers(stack: Stack) -> None:
    everything = labels()
    production = labels(environment="production")
    expected = {
        # Production, all repositories: octo/app 5 and octo/lib 1 successes in 30 days.
        "Deployment frequency": {everything: 5 / 30 + 1 / 30},
        "Lead time for changes (median)": {everything: 1350.0},
        "Change failure rate": {everything: 2 / 8},
        "Failed deployment recovery time (median)": {everything: 1350.0},
        "Incident recovery time (median)": {everything: 2700.0},
        "Pull request cycle time (median)": {everything: 129600.0},
        # The median repository deploys 3 times in 30 days: weekly to monthly, medium.
        "Deployment frequency tier": {production: 2.0},
        "Lead time tier": {production: 4.0},
        "Change failure rate tier": {production: 3.0},
        "Recovery time tier": {production: 4.0},
    }
    for title, values in expected.items():
        stack.eventually(_panel_query(title), values)
        # Nothing happened in the 30 days before.
        assert stack.query(_panel_query(title, "B")) in ({}, {everything: 0.0}), title


def test_the_repository_table(stack: Stack) -> None:
    app = labels(repository="octo/app", environment="production")
    lib = labels(repository="octo/lib", environment="production")
    columns = {
        "A": {app: 5 / 30, lib: 1 / 30},  # deployments a day
        "B": {app: 1350.0},  # lead time p50: octo/lib's deployment shipped no known commit
        "C": {app: 10800.0},  # lead time p90
        "D": {app: 2 / 7, lib: 0.0},  # change failure rate
        "E": {app: 1350.0},  # recovery p50: octo/lib never failed, so it has none
        "F": {app: 3.0, lib: 2.0},  # frequency tier
        "G": {app: 4.0},  # lead time tier
        "H": {app: 3.0, lib: 4.0},  # failure rate tier
        "I": {app: 4.0},  # recovery tier
    }
    for ref, values in columns.items():
        stack.eventually(_panel_query("Repositories", ref), values)


def test_the_data_quality_panels(stack: Stack) -> None:
    # octo/lib's deployment carried no commit, so it got no lead time; octo/app's all did.
    stack.eventually(
        _panel_query("Deployments that got no lead time"),
        {labels(repository="octo/lib", environment="production"): 1.0},
    )

    silence = stack.query(_panel_query("Repositories by time since their last event"))
    assert {dict(key)["repository"] for key in silence} == {
        "octo/app", "octo/lib", "octo-org/octo-app"
    }  # fmt: skip
    assert all(0 <= seconds < 600 for seconds in silence.values()), silence
