"""A rollback told by GitHub's compare: with a token, no pushes needed and no extra request.

The compare that lead time makes between the previous deployment's commit and the deployed one
says ``behind`` when the deployed commit is older code; that answer is what makes the previous
deployment ``rolled_back``. GitHub's API is mocked (respx); the deliveries are real and signed.
"""

from __future__ import annotations

import httpx
import respx

from tests.conftest import Service
from tests.story import REPO, api_commit, compare, deployment_status, push, sha
from tests.test_lead_time import HOUR, PRODUCTION, baseline, deliver_ok, graphql, settle


def test_a_rollback_is_known_from_the_compare_lead_time_makes(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # c2 pushed at 10 h, deployed at 12 h
    # c3 is deployed at 20 h; no push of it is delivered, so only GitHub can tell the order.
    ahead = github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c3')}", name="ahead").mock(
        return_value=httpx.Response(200, json=compare([api_commit("c3", 18, ["c2"])]))
    )
    graphql(github)
    deliver_ok(enriched, "deployment_status", deployment_status(2, "c3", 20))
    settle(enriched)
    # Rolled back to c2 at 22 h: GitHub says c2 is behind c3.
    behind = github.get(f"/repos/{REPO}/compare/{sha('c3')}...{sha('c2')}", name="behind").mock(
        return_value=httpx.Response(200, json=compare([], status="behind"))
    )
    deliver_ok(enriched, "deployment_status", deployment_status(3, "c2", 22))
    metrics = settle(enriched)
    assert ahead.call_count == 1 and behind.call_count == 1
    failures = "dora_change_failures_total"
    assert metrics.get(failures, cause="rolled_back", **PRODUCTION) == 1
    assert (
        sum(
            metrics.get(failures, cause=cause, **PRODUCTION)
            for cause in ("failed", "incident", "remediated")
        )
        == 0
    )
    # The run is the c3 deployment alone: recovered 22 h - 20 h after it succeeded.
    assert metrics.get("dora_deployment_recovery_seconds_count", **PRODUCTION) == 1
    assert metrics.get("dora_deployment_recovery_seconds_sum", **PRODUCTION) == 2 * HOUR
    assert metrics.get("dora_rework_deployments_total", **PRODUCTION) == 1
    # The exemplar names the failing deployment's commit and the one that fixed it.
    openmetrics = enriched.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    [line] = [
        line
        for line in openmetrics.splitlines()
        if line.startswith("dora_change_failures_total{") and 'cause="rolled_back"' in line
    ]
    assert f' 1.0 # {{fixed_by="{sha("c2")}",sha="{sha("c3")}"}} 1.0 ' in line, line


def test_a_newer_deployment_is_no_rollback(enriched: Service, github: respx.MockRouter) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "push", push([("c3", 18)], before="c2"))
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c3')}").mock(
        return_value=httpx.Response(200, json=compare([api_commit("c3", 18, ["c2"])]))
    )
    graphql(github)
    deliver_ok(enriched, "deployment_status", deployment_status(2, "c3", 20))
    metrics = settle(enriched)
    assert metrics.get("dora_change_failures_total", cause="rolled_back", **PRODUCTION) == 0
    assert metrics.get("dora_deployment_recovery_seconds_count", **PRODUCTION) == 0
    assert metrics.get("dora_rework_deployments_total", **PRODUCTION) == 0
