"""Lead-time stories told through the real webhook interface, each with numbers worked by hand.

GitHub's REST and GraphQL APIs are mocked with respx; every commit, merge and deployment time
is an offset in hours from the stories' epoch (tests/story.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import respx

from tests.conftest import Service
from tests.exposition import Exposition
from tests.fake_github import graph_pull
from tests.story import (
    REPO,
    api_commit,
    at,
    compare,
    deployment_status,
    iso,
    merged_pull,
    push,
    sha,
)
from tests.test_lead_time import (
    HOUR,
    PRODUCTION,
    baseline,
    deliver_ok,
    graphql,
    lead_times,
    settle,
)

MERGE_TO_DEPLOY = "dora_merge_to_deploy_seconds"


def mock_compare(
    github: respx.MockRouter, base: str, head: str, commits: list[dict[str, Any]]
) -> respx.Route:
    return github.get(f"/repos/{REPO}/compare/{sha(base)}...{sha(head)}").mock(
        return_value=httpx.Response(200, json=compare(commits))
    )


def successes(metrics: Exposition) -> float:
    return metrics.get("dora_deployments_total", status="success", **PRODUCTION)


def test_git_flow_features_into_develop_then_a_release_into_main(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # c2, committed at 10 h, deployed at 12 h: 2 h
    # develop, from c2:
    #   feature-a: a1 (14 h), a2 (16 h); PR #1 merged at 18 h, merge commit f1 = (c2, a2)
    #   d1 (19 h), committed on develop directly, after f1
    #   feature-b: b1 (17 h); PR #2 merged at 20 h, merge commit f2 = (d1, b1)
    # main: release PR #3 merges develop at 22 h, merge commit r3 = (c2, f2).
    for number, merge, merged, created, head in (
        (1, "f1", 18, 15, "feature-a"),
        (2, "f2", 20, 17.5, "feature-b"),
        (3, "r3", 22, 21, "develop"),
    ):
        deliver_ok(
            enriched,
            "pull_request",
            merged_pull(
                number, merge=merge, merged_hours=merged, created_hours=created, head_ref=head
            ),
        )
    compared = mock_compare(
        github,
        "c2",
        "r3",
        [
            api_commit("a1", 14, ["c2"]),
            api_commit("a2", 16, ["a1"]),
            api_commit("b1", 17, ["c2"]),
            api_commit("f1", 18, ["c2", "a2"]),
            api_commit("d1", 19, ["f1"]),
            api_commit("f2", 20, ["d1", "b1"]),
            api_commit("r3", 22, ["c2", "f2"]),
        ],
    )
    # Were it asked, GitHub would name the release as d1's pull request.
    release = graph_pull(3, merged_at=iso(at(22)), merge_commit=sha("r3"), first_commit_at=None)
    lookup = graphql(github, commits={sha("d1"): [release]})
    deliver_ok(enriched, "deployment_status", deployment_status(2, "r3", 30))
    metrics = settle(enriched)
    assert compared.call_count == 1
    # Deployed at 30 h: #1 from a1 (30 - 14 = 16 h), #2 from b1 (30 - 17 = 13 h), #3 for the
    # one commit no feature brought, d1 (30 - 19 = 11 h); with the baseline's 2 h:
    # 4 observations, 2 + 16 + 13 + 11 = 42 h.
    assert lead_times(metrics) == (4, 42 * HOUR)
    # Merge to deploy, each pull request's own merged_at: 30 - 18, 30 - 20, 30 - 22
    # = 12 + 10 + 8 = 30 h.
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (3, 30 * HOUR)
    # Every pull request was a webhook, and the merges' parents say what each brought:
    # the common path's one call, the compare (after the baseline's deployments call and its
    # GraphQL request).
    assert lookup.call_count == 0
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 1


def test_twelve_squash_merged_pull_requests_shipped_at_once_take_one_graphql_request(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # 1 observation, 2 h
    # Pull request 100 + i (i = 1..12): first commit at 12 + i h, squash merged as s<i> at
    # 24 + i h; no webhook told of any of them.
    squashes = [
        api_commit(f"s{i}", 24 + i, ["c2" if i == 1 else f"s{i - 1}"]) for i in range(1, 13)
    ]
    mock_compare(github, "c2", "s12", squashes)
    lookup = graphql(
        github,
        commits={
            sha(f"s{i}"): [
                graph_pull(
                    100 + i,
                    merged_at=iso(at(24 + i)),
                    merge_commit=sha(f"s{i}"),
                    first_commit_at=iso(at(12 + i)),
                )
            ]
            for i in range(1, 13)
        },
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "s12", 40))
    metrics = settle(enriched)
    assert lookup.call_count == 1
    # Lead times: 40 - (12 + i) = 28 - i h, summed over i = 1..12: 12 * 28 - 78 = 258 h;
    # with the baseline's 2 h: 13 observations, 260 h.
    assert lead_times(metrics) == (13, 260 * HOUR)
    # Merge to deploy: 40 - (24 + i) = 16 - i h, summed: 12 * 16 - 78 = 114 h.
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (12, 114 * HOUR)
    # deployments and GraphQL (baseline), then the compare and the one GraphQL request.
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 2


def test_a_branch_name_reused_after_a_force_push_starts_from_the_new_work(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # 1 observation, 2 h
    deliver_ok(enriched, "push", push([("x1", 10)], ref="refs/heads/feature", before="c2"))
    forced = push([("y1", 20)], ref="refs/heads/feature", before="x1")
    forced["forced"] = True
    deliver_ok(enriched, "push", forced)
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(5, merge="s5", merged_hours=24, created_hours=21, head_ref="feature"),
    )
    deliver_ok(enriched, "push", push([("s5", 24)], before="c2"))
    mock_compare(github, "c2", "s5", [api_commit("s5", 24, ["c2"])])
    lookup = graphql(github)
    deliver_ok(enriched, "deployment_status", deployment_status(2, "s5", 30))
    metrics = settle(enriched)
    # From y1: 30 - 20 = 10 h (from x1 it would be 20 h); with the baseline: 2 + 10 = 12 h.
    assert lead_times(metrics) == (2, 12 * HOUR)
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (1, 6 * HOUR)  # 30 - 24
    assert lookup.call_count == 0  # the branch's pushes told its start


def wait_for(service: Service, count: int, timeout: float = 15.0) -> Exposition:
    """The metrics once ``count`` lead times are observed and the worker is idle."""
    worker = service.client.app.state.enrichment  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = service.metrics()
        if worker.idle and lead_times(metrics)[0] >= count:
            return metrics
        time.sleep(0.02)
    raise AssertionError(f"not {count} lead times within {timeout} s: {lead_times(metrics)}")


def test_a_merge_event_arriving_after_the_deployment_within_the_settle_time_counts(
    github: respx.MockRouter, start: Callable[..., Service]
) -> None:
    service = start(github_token="ghp_test-token", github_max_retries=0, settle_seconds=1)
    github.get(f"/repos/{REPO}/deployments").mock(return_value=httpx.Response(200, json=[]))
    lookup = graphql(github, commits={sha("c2"): [], sha("s6"): []})
    deliver_ok(service, "push", push([("c2", 10)]))
    deliver_ok(service, "deployment_status", deployment_status(1, "c2", 12))
    assert lead_times(wait_for(service, 1)) == (1, 2 * HOUR)
    assert lookup.call_count == 1  # c2 confirmed as a direct commit
    lookup.reset()
    # The branch of pull request 6, first commit p1 at 20 h; squash merged as s6 at 30 h.
    deliver_ok(service, "push", push([("p1", 20), ("p2", 22)], ref="refs/heads/feature-6"))
    deliver_ok(service, "push", push([("s6", 30)], before="c2"))
    mock_compare(github, "c2", "s6", [api_commit("s6", 30, ["c2"])])
    arrived = time.monotonic()
    deliver_ok(service, "deployment_status", deployment_status(2, "s6", 40))
    deliver_ok(
        service,
        "pull_request",
        merged_pull(6, merge="s6", merged_hours=30, created_hours=21, head_ref="feature-6"),
    )
    assert time.monotonic() - arrived < 1.0  # both within the settle time
    assert lead_times(service.metrics()) == (1, 2 * HOUR)  # not yet: settling
    metrics = wait_for(service, 2)
    # From p1: 40 - 20 = 20 h, not from the squash commit (10 h); with the baseline 22 h.
    assert lead_times(metrics) == (2, 22 * HOUR)
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (1, 10 * HOUR)  # 40 - 30
    assert lookup.call_count == 0


def test_without_a_token_the_push_chain_tells_what_shipped_and_a_gap_ships_nothing(
    start: Callable[..., Service],
) -> None:
    service = start()  # no GITHUB_TOKEN
    deliver_ok(service, "push", push([("c2", 10)]))
    deliver_ok(service, "deployment_status", deployment_status(1, "c2", 12))
    # The first deployment known: c2's own change, 12 - 10 = 2 h.
    assert lead_times(settle(service)) == (1, 2 * HOUR)
    deliver_ok(service, "push", push([("c3", 20), ("c4", 30)], before="c2"))
    deliver_ok(service, "deployment_status", deployment_status(2, "c4", 40))
    # c3: 40 - 20 = 20 h, c4: 40 - 30 = 10 h; 2 + 20 + 10 = 32 h.
    assert lead_times(settle(service)) == (3, 32 * HOUR)
    # c5..c8 were pushed while the hook was down: the chain from c4 to c9 has a gap.
    deliver_ok(service, "push", push([("c9", 50)], before="c8"))
    deliver_ok(service, "deployment_status", deployment_status(3, "c9", 60))
    metrics = settle(service)
    assert lead_times(metrics) == (3, 32 * HOUR)
    assert successes(metrics) == 3


def test_a_deployment_older_than_one_already_computed_ships_nothing_new(
    start: Callable[..., Service],
) -> None:
    service = start()  # no GITHUB_TOKEN: the push chain tells what shipped
    deliver_ok(service, "push", push([("c2", 10)]))
    deliver_ok(service, "push", push([("c3", 20), ("c4", 30)], before="c2"))
    deliver_ok(service, "push", push([("c5", 40)], before="c4"))
    deliver_ok(service, "deployment_status", deployment_status(1, "c2", 12))
    assert lead_times(settle(service)) == (1, 2 * HOUR)
    deliver_ok(service, "deployment_status", deployment_status(2, "c5", 60))
    # c3, c4, c5: 60 - 20, 60 - 30, 60 - 40 = 40 + 30 + 20 = 90 h; with c2's 2 h: 92 h.
    assert lead_times(settle(service)) == (4, 92 * HOUR)
    # Past the settle time, a deployment of c4 at 50 h arrives: its predecessor in time is
    # c2, so it ships c3 and c4, both observed already.
    deliver_ok(service, "deployment_status", deployment_status(3, "c4", 50))
    assert lead_times(settle(service)) == (4, 92 * HOUR)
    # The next one, c6 at 70 h, follows c5 (at 60 h, the latest in time): c6 alone, 10 h.
    deliver_ok(service, "push", push([("c6", 60)], before="c5"))
    deliver_ok(service, "deployment_status", deployment_status(4, "c6", 70))
    metrics = settle(service)
    assert lead_times(metrics) == (5, 102 * HOUR)
    assert successes(metrics) == 4
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (0, 0)


def test_a_squash_merge_whose_pull_request_event_is_late_is_timed_from_its_first_commit(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # 1 observation, 2 h
    # Pull request 8: first commit at 28 h, squash merged as s8 at 30 h. The push of s8 is
    # seen; its pull_request event is not (a hook outage), until after the deployment.
    deliver_ok(enriched, "push", push([("s8", 30)], before="c2"))
    mock_compare(github, "c2", "s8", [api_commit("s8", 30, ["c2"])])
    lookup = graphql(
        github,
        commits={
            sha("s8"): [
                graph_pull(
                    8, merged_at=iso(at(30)), merge_commit=sha("s8"), first_commit_at=iso(at(28))
                )
            ]
        },
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "s8", 32))
    metrics = settle(enriched)
    # From the first commit: 32 - 28 = 4 h (from the squash commit it would be 2 h).
    assert lead_times(metrics) == (2, (2 + 4) * HOUR)
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (1, 2 * HOUR)  # 32 - 30
    # The one GraphQL request that asked about s8 told its pull request and its start.
    assert lookup.call_count == 1
    (sent,) = [json.loads(call.request.content) for call in lookup.calls]
    assert sent["query"].count("object(oid:") == 1
    assert sent["query"].count("pullRequest(number:") == 0
    # The late event counts the pull request itself, and changes no lead time.
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(8, merge="s8", merged_hours=30, created_hours=28.5, head_ref="feature-8"),
    )
    metrics = settle(enriched)
    assert metrics.get("github_pull_requests_total", repository=REPO, action="merged") == 1
    assert lead_times(metrics) == (2, (2 + 4) * HOUR)
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (1, 2 * HOUR)
    assert lookup.call_count == 1
    # The baseline's deployments call and GraphQL request; then the compare and one request.
    assert metrics.get("observer_enrichment_api_calls_count") == 2
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 2


def test_commits_that_look_direct_are_confirmed_in_the_request_that_dates_the_pull_requests(
    enriched: Service, github: respx.MockRouter
) -> None:
    baseline(enriched, github)  # 1 observation, 2 h
    # Pull request 9, told by its event, squash merged as s9 at 30 h from a branch never
    # pushed here: its start must be asked for. Pull request 10, squash merged as s10 at 34 h,
    # whose event never came: s10 looks like a direct commit.
    deliver_ok(
        enriched,
        "pull_request",
        merged_pull(9, merge="s9", merged_hours=30, created_hours=26, head_ref="fork"),
    )
    deliver_ok(enriched, "push", push([("s9", 30), ("s10", 34)], before="c2"))
    mock_compare(github, "c2", "s10", [api_commit("s9", 30, ["c2"]), api_commit("s10", 34, ["s9"])])
    lookup = graphql(
        github,
        commits={
            sha("s10"): [
                graph_pull(
                    10, merged_at=iso(at(34)), merge_commit=sha("s10"), first_commit_at=iso(at(31))
                )
            ]
        },
        pulls={
            9: graph_pull(
                9, merged_at=iso(at(30)), merge_commit=sha("s9"), first_commit_at=iso(at(25))
            )
        },
    )
    deliver_ok(enriched, "deployment_status", deployment_status(2, "s10", 40))
    metrics = settle(enriched)
    # #9 from 25 h: 15 h; #10 from 31 h: 9 h; with the baseline's 2 h: 26 h.
    assert lead_times(metrics) == (3, (2 + 15 + 9) * HOUR)
    assert lead_times(metrics, MERGE_TO_DEPLOY) == (2, (10 + 6) * HOUR)  # 40 - 30, 40 - 34
    # One GraphQL request, as when only #9's start was asked for: s10 went along with it.
    assert lookup.call_count == 1
    (sent,) = [json.loads(call.request.content) for call in lookup.calls]
    assert sha("s10") in sent["query"]
    assert "pullRequest(number: 9)" in sent["query"]
    assert metrics.get("observer_enrichment_api_calls_sum") == 2 + 2
