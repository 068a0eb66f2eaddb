"""Lead time for changes, with GitHub's API mocked: exact values, once each, never blocking."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import respx

from tests.conftest import Service
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub, graph_pull
from tests.story import (
    REPO,
    api_commit,
    at,
    compare,
    deployment_status,
    deployments,
    iso,
    merged_pull,
    push,
    sha,
    statuses,
)

PRODUCTION = {"repository": REPO, "environment": "production"}
HOUR = 3600.0


def settle(service: Service, timeout: float = 15.0) -> Exposition:
    """The metrics once the enrichment worker has nothing left to do."""
    worker = service.client.app.state.enrichment  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.idle:
            return service.metrics()
        time.sleep(0.01)
    raise AssertionError("enrichment did not finish")


def lead_times(
    metrics: Exposition, name: str = "dora_lead_time_seconds", **labels: str
) -> tuple[float, float]:
    labels = labels or PRODUCTION
    return metrics.get(f"{name}_count", **labels), metrics.get(f"{name}_sum", **labels)


def graphql(
    github: respx.MockRouter,
    commits: dict[str, list[dict[str, Any]]] | None = None,
    pulls: dict[int, dict[str, Any]] | None = None,
) -> respx.Route:
    """GitHub's GraphQL API answering for the pull requests of commits, as the fake does."""
    fake = FakeGitHub(graphql_commits=commits or {}, graphql_pulls=pulls or {})
    return github.post("https://api.github.com/graphql", name="graphql").mock(
        side_effect=lambda request: httpx.Response(
            200, json=fake.answer_graphql(json.loads(request.content))
        )
    )


def deliver_ok(service: Service, event: str, payload: dict[str, Any], **kw: Any) -> None:
    response = service.deliver(event, payload, **kw)
    assert response.status_code == 200, response.text
    assert response.json()["result"] in ("accepted", "duplicate"), response.text


def baseline(service: Service, github: respx.MockRouter) -> None:
    """c2 pushed at 10 h and deployed at 12 h, the first deployment the service sees.

    GraphQL is mocked from here on, telling of no pull request unless a test says otherwise
    (``graphql`` again); the baseline's own request, confirming c2 as direct, is not counted.
    """
    github.get(f"/repos/{REPO}/deployments", name="deployments").mock(
        return_value=httpx.Response(200, json=[])
    )
    lookup = graphql(github)
    deliver_ok(service, "push", push([("c2", 10)]))
    deliver_ok(service, "deployment_status", deployment_status(1, "c2", 12))
    metrics = settle(service)
    assert lead_times(metrics) == (1, 2 * HOUR)
    assert github["deployments"].call_count == 1
    assert lookup.call_count == 1
    lookup.reset()


def test_directly_pushed_commits_each_observe_their_own_lead_time(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "push", push([("c3", 20), ("c4", 30), ("c5", 40)], before="c2"))
    route = github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c5')}", name="compare").mock(
        return_value=httpx.Response(
            200,
            json=compare(
                [
                    api_commit("c3", 20, ["c2"]),
                    api_commit("c4", 30, ["c3"]),
                    api_commit("c5", 40, ["c4"]),
                ]
            ),
        )
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "c5", 50))
    metrics = settle(enriched)
    assert route.call_count == 1
    # 50 h minus 20, 30 and 40 h, after the baseline's 2 h.
    assert lead_times(metrics) == (4, (2 + 30 + 20 + 10) * HOUR)
    assert metrics.get("dora_lead_time_seconds_bucket", le="43200.0", **PRODUCTION) == 2
    assert metrics.get("dora_lead_time_seconds_bucket", le="86400.0", **PRODUCTION) == 3
    assert lead_times(metrics, "dora_merge_to_deploy_seconds") == (0, 0)
    # The common path: the compare, and one GraphQL request confirming that no pull request
    # brought c3, c4 or c5 (after the baseline's deployments call and its GraphQL request).
    assert metrics.get("observer_enrichment_api_calls_count") == 2
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 2


def test_each_pull_request_is_one_change_timed_from_its_first_commit(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    # PR 1, squash merged: its branch's pushes were seen, first commit at 14 h.
    deliver_ok(enriched, "push", push([("a1", 14), ("a2", 16)], ref="refs/heads/feature-a"))
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(1, merge="s1", merged_hours=20, created_hours=15, head_ref="feature-a"),
    )
    deliver_ok(enriched, "push", push([("s1", 20)], before="c2"))
    # PR 2, merged with a merge commit: its branch commits arrive with the merge.
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(2, merge="m2", merged_hours=30, created_hours=25, head_ref="feature-b"),
    )
    # PR 3, rebase merged: three commits rebased onto main keep their author times; its
    # branch was pushed from a fork, so nothing of it was seen before the merge.
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(3, merge="r3", merged_hours=40, created_hours=33, head_ref="fork"),
    )
    deliver_ok(enriched, "push", push([("r1", 32), ("r2", 34), ("r3", 36)], before="m2"))
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('r3')}", name="compare").mock(
        return_value=httpx.Response(
            200,
            json=compare(
                [
                    api_commit("s1", 20, ["c2"]),
                    api_commit("b1", 22, ["c2"]),
                    api_commit("b2", 24, ["b1"]),
                    api_commit("m2", 30, ["s1", "b2"]),
                    api_commit("r1", 32, ["m2"]),
                    api_commit("r2", 34, ["r1"]),
                    api_commit("r3", 36, ["r2"]),
                ]
            ),
        )
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "r3", 50))
    metrics = settle(enriched)
    # Lead times: PR 1 from 14 h, PR 2 from b1 at 22 h, PR 3 from r1 at 32 h.
    assert lead_times(metrics) == (1 + 3, (2 + 36 + 28 + 18) * HOUR)
    # Merge to deploy: merged at 20, 30 and 40 h.
    assert lead_times(metrics, "dora_merge_to_deploy_seconds") == (3, (30 + 20 + 10) * HOUR)
    assert github["compare"].call_count == 1
    # The baseline's deployments call and GraphQL request, then the compare alone: webhooks
    # told every pull request and its start.
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 1


def test_a_squash_merge_of_an_unseen_branch_asks_for_the_pull_requests_commits(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(7, merge="s7", merged_hours=30, created_hours=20, head_ref="gone"),
    )
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('s7')}").mock(
        return_value=httpx.Response(200, json=compare([api_commit("s7", 30, ["c2"])]))
    )
    commits = graphql(
        github, pulls={7: graph_pull(7, merge_commit=sha("s7"), first_commit_at=iso(at(18)))}
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "s7", 40))
    metrics = settle(enriched)
    assert commits.call_count == 1
    # From p1 at 18 h, not from the squash commit at 30 h.
    assert lead_times(metrics) == (2, (2 + 22) * HOUR)


def test_commits_no_webhook_told_of_are_looked_up_once(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('x2')}").mock(
        return_value=httpx.Response(
            200, json=compare([api_commit("x1", 20, ["c2"]), api_commit("x2", 30, ["x1"])])
        )
    )
    nine = graph_pull(9, merged_at=iso(at(31)), merge_commit=sha("x2"), first_commit_at=iso(at(25)))
    lookup = graphql(github, commits={sha("x1"): [], sha("x2"): [nine]})
    deliver_ok(enriched, "deployment_status", deployment_status(2, "x2", 40))
    metrics = settle(enriched)
    assert lookup.call_count == 1
    # x1 pushed without a pull request (from 20 h); pull request 9 from its commit at 25 h.
    assert lead_times(metrics) == (3, (2 + 20 + 15) * HOUR)
    assert lead_times(metrics, "dora_merge_to_deploy_seconds") == (1, 9 * HOUR)


def test_repeated_and_out_of_order_deliveries_do_not_count_twice(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "push", push([("c3", 20), ("c4", 30)], before="c2"))
    route = github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c4')}").mock(
        return_value=httpx.Response(
            200, json=compare([api_commit("c3", 20, ["c2"]), api_commit("c4", 30, ["c3"])])
        )
    )
    latest = deployment_status(2, "c4", 40)
    deliver_ok(enriched, "deployment_status", latest, delivery="first")
    deliver_ok(enriched, "deployment_status", latest, delivery="first")  # redelivered
    deliver_ok(enriched, "deployment_status", latest)  # through a second hook
    settle(enriched)
    # An older deployment of c3, arriving past the settle time: what it shipped went out
    # with c4 already.
    late = github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c3')}").mock(
        return_value=httpx.Response(200, json=compare([api_commit("c3", 20, ["c2"])]))
    )
    deliver_ok(enriched, "deployment_status", deployment_status(3, "c3", 35))
    metrics = settle(enriched)
    assert route.call_count == 1
    assert late.call_count == 1
    assert lead_times(metrics) == (3, (2 + 20 + 10) * HOUR)
    assert metrics.get("dora_deployments_total", status="success", **PRODUCTION) == 3


def test_each_environment_observes_a_change_once(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "deployment_status", deployment_status(5, "c2", 14, environment="prod"))
    deliver_ok(enriched, "deployment_status", deployment_status(6, "c2", 16, environment="qa"))
    metrics = settle(enriched)
    assert lead_times(metrics, repository=REPO, environment="prod") == (1, 4 * HOUR)
    # Not a production environment: counted as a deployment, no lead time.
    assert lead_times(metrics, repository=REPO, environment="qa") == (0, 0)
    assert (
        metrics.get("dora_deployments_total", repository=REPO, environment="qa", status="success")
        == 1
    )


def test_the_previous_deployment_is_asked_of_the_api_when_not_remembered(
    enriched: Service, github: respx.MockRouter
) -> None:
    github.get(f"/repos/{REPO}/deployments", name="deployments").mock(
        return_value=httpx.Response(
            200, json=deployments([(20, "c5", 49.9), (19, "c4", 45), (18, "c3", 44)])
        )
    )
    github.get(f"/repos/{REPO}/deployments/19/statuses").mock(
        return_value=httpx.Response(200, json=statuses(["failure", "in_progress"]))
    )
    github.get(f"/repos/{REPO}/deployments/18/statuses").mock(
        return_value=httpx.Response(200, json=statuses(["success"]))
    )
    github.get(f"/repos/{REPO}/compare/{sha('c3')}...{sha('c5')}").mock(
        return_value=httpx.Response(
            200, json=compare([api_commit("c4", 30, ["c3"]), api_commit("c5", 40, ["c4"])])
        )
    )
    graphql(github, commits={sha("c4"): [], sha("c5"): []})
    deliver_ok(enriched, "deployment_status", deployment_status(2, "c5", 50))
    metrics = settle(enriched)
    assert lead_times(metrics) == (2, (20 + 10) * HOUR)


def test_history_rewritten_since_the_previous_deployment_observes_the_head_only(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "push", push([("y1", 30)], before="elsewhere"))
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('y1')}").mock(
        return_value=httpx.Response(404, json={"message": "Not Found"})
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "y1", 40))
    metrics = settle(enriched)
    assert lead_times(metrics) == (2, (2 + 10) * HOUR)


def test_a_failing_api_is_counted_and_the_counters_still_move(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('z1')}").mock(
        return_value=httpx.Response(502, text="<html>Bad gateway</html>")
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "z1", 40))
    metrics = settle(enriched)
    assert metrics.get("dora_deployments_total", status="success", **PRODUCTION) == 2
    assert metrics.get("observer_enrichment_failures_total", reason="server_error") == 1
    assert lead_times(metrics) == (1, 2 * HOUR)


def test_a_slow_api_does_not_delay_the_answer(
    start: Callable[..., Service], github: respx.MockRouter
) -> None:
    service = start(github_token="ghp_test-token", shutdown_timeout=0.2)

    async def unanswered(request: httpx.Request) -> httpx.Response:
        # Never answers: the stop cancels it once shutdown_timeout is over.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    github.get(f"/repos/{REPO}/deployments").mock(side_effect=unanswered)
    # The delivery is answered while the API has not answered, nor ever will.
    deliver_ok(service, "deployment_status", deployment_status(1, "c2", 12))
    assert not service.client.app.state.enrichment.idle  # type: ignore[attr-defined]


def test_pipelines_can_list_their_commits_without_any_api(start: Callable[..., Service]) -> None:
    service = start()  # no GITHUB_TOKEN
    response = service.push_events(
        {
            "type": "deployment",
            "repository": REPO,
            "environment": "production",
            "status": "success",
            "sha": sha("k2"),
            "timestamp": iso(at(50)),
            "commits": [
                {"sha": sha("k1"), "timestamp": iso(at(20))},
                {"sha": sha("k2"), "timestamp": "2026-11-02T18:00:00+02:00"},
            ],
        }
    )
    assert response.status_code == 200
    metrics = settle(service)
    # 50 h minus 20 h, and minus 40 h (18:00+02:00 on the 2nd is 16:00 UTC: 40 h).
    assert lead_times(metrics) == (2, (30 + 10) * HOUR)


def test_lead_times_carry_the_commit_as_an_exemplar(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    text = enriched.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    assert f'# {{sha="{sha("c2")}"}} 7200.0' in text
    assert sha("c2") not in enriched.client.get("/metrics").text.split("# HELP")[0]
    for line in text.splitlines():
        if not line.startswith("#") and "sha=" in line.split(" # ")[0]:
            raise AssertionError(f"a sha in a label: {line}")


def test_a_rollback_and_roll_forward_does_not_observe_a_change_twice(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)
    deliver_ok(enriched, "push", push([("c3", 20)], before="c2"))
    github.get(f"/repos/{REPO}/compare/{sha('c2')}...{sha('c3')}").mock(
        return_value=httpx.Response(200, json=compare([api_commit("c3", 20, ["c2"])]))
    )
    github.get(f"/repos/{REPO}/compare/{sha('c3')}...{sha('c2')}").mock(
        return_value=httpx.Response(200, json=compare([], status="behind"))
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "c3", 30))
    deliver_ok(enriched, "deployment_status", deployment_status(3, "c2", 31))  # rollback
    settle(enriched)
    deliver_ok(enriched, "deployment_status", deployment_status(4, "c3", 32))  # forward again
    metrics = settle(enriched)
    assert lead_times(metrics) == (2, (2 + 10) * HOUR)
