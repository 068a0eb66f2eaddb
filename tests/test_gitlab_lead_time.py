"""Lead time of GitLab deployments: GitLab's API with a token, the pushes seen without, never
GitHub's; GitHub's deployments still from GitHub in the same service. Both APIs are fakes over
real HTTP; GitLab deployments are recorded through the recorder as GitLab's webhooks will."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from observer.domain import GITHUB, GITLAB, Commit, Deployment, Push
from tests.conftest import Service
from tests.exposition import Exposition
from tests.fake_github import FakeGitHub
from tests.fake_github import serve as serve_github
from tests.fake_gitlab import TOKEN, FakeGitLab, MergeRequest
from tests.fake_gitlab import serve as serve_gitlab
from tests.redis_server import running_redis
from tests.story import api_commit, at, compare, sha

HOUR = 3600.0
PROJECT = "mygroup/app"
GITHUB_REPO = "octo-org/octo-app"
# A self-managed GitLab served under a path prefix.
PREFIX = "/gitlab"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with serve_gitlab(FakeGitLab(prefix=PREFIX)) as fake:
        yield fake


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_github(FakeGitHub(repositories={GITHUB_REPO})) as fake:
        yield fake


def history(fake: FakeGitLab) -> None:
    """main: c2 (10 h) <- M, merging !1 (f1 14 h, f2 16 h) at 20 h <- S, !2's squash of g1 (18 h)
    and g2 (19 h), made at 25 h, <- N, !2's merge commit <- d3 (22 h), pushed directly."""
    project = fake.project(PROJECT)

    def commit(name: str, authored: float, parents: list[str], committed: float | None = None):
        project.commits[sha(name)] = (
            at(authored),
            at(committed if committed is not None else authored),
            [sha(p) for p in parents],
        )

    commit("c2", 10, [])
    commit("f1", 14, ["c2"])
    commit("f2", 16, ["f1"])
    commit("M", 20, ["c2", "f2"])
    commit("S", 25, ["M"])  # GitLab makes the squash commit at merge time
    commit("N", 25, ["M", "S"])
    commit("d3", 22, ["N"], committed=26)
    project.merge_requests += [
        MergeRequest(1, at(20), [(sha("f1"), at(14)), (sha("f2"), at(16))], sha("M")),
        MergeRequest(2, at(25), [(sha("g1"), at(18)), (sha("g2"), at(19))], sha("N"), sha("S")),
    ]


def record(service: Service, value: Deployment | Push) -> None:
    recorder = service.client.app_state["services"].recorder
    if isinstance(value, Deployment):
        result = service.client.portal.call(recorder.deployment, value)
    else:
        result = service.client.portal.call(recorder.push, value)
    assert result.outcome == "accepted", result


def deployed(repository: str, name: str, hours: float, forge: str | None, key: str) -> Deployment:
    return Deployment(
        repository=repository,
        environment="production",
        status="success",
        time=at(hours),
        key=key,
        sha=sha(name),
        forge=forge,
    )


def lead_times(metrics: Exposition, repository: str, name: str = "dora_lead_time_seconds"):
    labels = {"repository": repository, "environment": "production"}
    return metrics.get(f"{name}_count", **labels), metrics.get(f"{name}_sum", **labels)


def gitlab_calls(fake: FakeGitLab) -> list[str]:
    return [f"{method} {path.split('?')[0]}" for method, path in fake.requests]


def test_a_gitlab_deployment_gets_exact_lead_times_from_gitlab_in_two_calls(
    gitlab: FakeGitLab, github: FakeGitHub, start: Callable[..., Service]
) -> None:
    history(gitlab)
    service = start(
        gitlab_url=gitlab.url, gitlab_token=TOKEN, github_token="t", github_api_url=github.url
    )
    record(service, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
    metrics = service.settled()
    encoded = f"{PREFIX}/api/v4/projects/mygroup%2Fapp"
    # The first deployment known: the Deployments API (none before), the commit, its MRs.
    assert gitlab_calls(gitlab) == [
        f"GET {encoded}/deployments",
        f"GET {encoded}/repository/commits/{sha('c2')}",
        f"GET {encoded}/repository/commits/{sha('c2')}/merge_requests",
    ]
    assert (
        "environment=production&status=success&order_by=updated_at&sort=desc"
        in (gitlab.requests[0][1])
    )
    assert lead_times(metrics, PROJECT) == (1, 2 * HOUR)
    gitlab.requests.clear()

    record(service, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:2"))
    metrics = service.settled()
    # The previous deployment is the store's: one compare, one GraphQL page of merge requests.
    assert gitlab_calls(gitlab) == [
        f"GET {encoded}/repository/compare",
        f"POST {PREFIX}/api/graphql",
    ]
    assert gitlab.graphql_queries[-1]["variables"]["path"] == PROJECT
    # !1 from its first commit, 30 - 14; !2 from the first commit it squashed, 30 - 18 (not
    # from its squash commit at 25); d3, pushed directly, 30 - 22. Plus c2's 2 h before.
    assert lead_times(metrics, PROJECT) == (4, (2 + 16 + 12 + 8) * HOUR)
    # Merged at 20 h and 25 h.
    assert lead_times(metrics, PROJECT, "dora_merge_to_deploy_seconds") == (2, (10 + 5) * HOUR)
    # Calls made per deployment: 3 for the first one known, 2 for the next.
    assert metrics.get("observer_enrichment_api_calls_count") == 2
    assert metrics.get("observer_enrichment_api_calls_sum") == 5
    assert metrics.get("observer_gitlab_api_requests_total", status="200") == 5
    assert github.requests == []


def test_a_github_repository_is_still_enriched_by_github_in_the_same_service(
    gitlab: FakeGitLab, github: FakeGitHub, start: Callable[..., Service]
) -> None:
    history(gitlab)
    github.responses[f"/repos/{GITHUB_REPO}/deployments"] = []
    github.responses[f"/repos/{GITHUB_REPO}/commits/{sha('ga')}"] = api_commit("ga", 10, [])
    github.responses[f"/repos/{GITHUB_REPO}/compare/{sha('ga')}...{sha('gb')}"] = compare(
        [api_commit("gb", 26, ["ga"])]
    )
    service = start(
        gitlab_url=gitlab.url, gitlab_token=TOKEN, github_token="t", github_api_url=github.url
    )
    record(service, deployed(GITHUB_REPO, "ga", 12, GITHUB, "github:1"))
    record(service, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
    record(service, deployed(GITHUB_REPO, "gb", 30, GITHUB, "github:2"))
    record(service, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:2"))
    metrics = service.settled()
    assert lead_times(metrics, GITHUB_REPO) == (2, (2 + 4) * HOUR)
    assert lead_times(metrics, PROJECT) == (4, 38 * HOUR)
    assert all(GITHUB_REPO not in path for _, path in gitlab.requests)
    assert all(PROJECT not in path for path in github.paths())
    assert f"/repos/{GITHUB_REPO}/compare/{sha('ga')}...{sha('gb')}" in github.paths()


def pushes(service: Service) -> None:
    record(
        service,
        Push(PROJECT, "refs/heads/main", "push:1", sha("c2"), commits=(Commit(sha("c2"), at(10)),)),
    )
    shipped = (Commit(sha("d3"), at(22)), Commit(sha("e4"), at(23)))
    record(
        service, Push(PROJECT, "refs/heads/main", "push:2", sha("e4"), sha("c2"), commits=shipped)
    )


def test_without_a_gitlab_token_the_pushes_seen_give_lead_time_and_github_is_never_asked(
    github: FakeGitHub, start: Callable[..., Service]
) -> None:
    service = start(github_token="t", github_api_url=github.url)  # no GITLAB_TOKEN
    pushes(service)
    record(service, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
    record(service, deployed(PROJECT, "e4", 30, GITLAB, "gitlab:2"))
    metrics = service.settled()
    # c2: 12 - 10; d3: 30 - 22; e4: 30 - 23.
    assert lead_times(metrics, PROJECT) == (3, (2 + 8 + 7) * HOUR)
    assert github.requests == []


def test_waiting_gitlab_work_keeps_its_forge_in_redis_for_another_replica(
    gitlab: FakeGitLab, github: FakeGitHub, start: Callable[..., Service]
) -> None:
    history(gitlab)
    with running_redis() as redis:
        # One replica, without a GitLab token, records; its work is due in an hour.
        first = start(state_url=redis.url, settle_seconds=3600)
        record(first, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
        record(first, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:2"))
        # Another, with both tokens, does the waiting work now, from the store alone: it asks
        # GitLab, as the stored forge says, never GitHub.
        second = start(
            state_url=redis.url,
            gitlab_url=gitlab.url,
            gitlab_token=TOKEN,
            github_token="t",
            github_api_url=github.url,
        )
        enrichment = second.client.app.state.enrichment  # type: ignore[attr-defined]
        second.client.portal.call(enrichment.finish_waiting)
        metrics = second.settled()
        assert lead_times(metrics, PROJECT) == (4, 38 * HOUR)
        assert github.requests == []
        assert lead_times(first.metrics(), PROJECT) == (0, 0)


def test_the_first_deployment_of_a_squash_commit_is_timed_from_the_commits_it_squashed(
    gitlab: FakeGitLab, start: Callable[..., Service]
) -> None:
    history(gitlab)
    service = start(gitlab_url=gitlab.url, gitlab_token=TOKEN)
    record(service, deployed(PROJECT, "S", 30, GITLAB, "gitlab:1"))
    metrics = service.settled()
    encoded = f"{PREFIX}/api/v4/projects/mygroup%2Fapp"
    assert gitlab_calls(gitlab) == [
        f"GET {encoded}/deployments",
        f"GET {encoded}/repository/commits/{sha('S')}",
        f"GET {encoded}/repository/commits/{sha('S')}/merge_requests",
        f"GET {encoded}/merge_requests/2/commits",
    ]
    # 30 h minus g1's 18 h, not minus the squash commit's own 25 h.
    assert lead_times(metrics, PROJECT) == (1, 12 * HOUR)
    assert lead_times(metrics, PROJECT, "dora_merge_to_deploy_seconds") == (1, 5 * HOUR)


def test_merge_request_pages_are_read_only_while_they_can_tie_a_shipped_commit(
    gitlab: FakeGitLab, start: Callable[..., Service]
) -> None:
    history(gitlab)
    project = gitlab.project(PROJECT)
    # !3 squashed h1 (32 h) and h2 (33 h) at 35 h, fast-forward: no merge commit.
    project.commits[sha("S3")] = (at(35), at(35), [sha("d3")])
    project.merge_requests.append(
        MergeRequest(3, at(35), [(sha("h1"), at(32)), (sha("h2"), at(33))], None, sha("S3"))
    )
    # 60 merge requests into other branches, merged between 36 h and 39 h.
    project.merge_requests += [
        MergeRequest(100 + n, at(36 + n / 20), [(sha(f"u{n}"), at(36))], target_branch="dev")
        for n in range(60)
    ]
    project.commits[sha("x9")] = (at(50), at(50), [sha("S3")])
    service = start(gitlab_url=gitlab.url, gitlab_token=TOKEN)
    record(service, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:1"))
    service.settled()
    gitlab.requests.clear()

    record(service, deployed(PROJECT, "S3", 40, GITLAB, "gitlab:2"))
    metrics = service.settled()
    # The first page, the 50 latest merges (36.5 h to 39 h), ties nothing; S3, made at 35 h,
    # may still be tied by an older one: the second page ties it to !3.
    assert [method for method, _ in gitlab.requests] == ["GET", "POST", "POST"]
    # d3's own 8 h, then !3: 40 h minus h1's 32 h.
    assert lead_times(metrics, PROJECT) == (2, (8 + 8) * HOUR)
    gitlab.requests.clear()

    record(service, deployed(PROJECT, "x9", 51, GITLAB, "gitlab:3"))
    metrics = service.settled()
    # x9 was made at 50 h, after every merge on the first page: no merge request older than
    # them can have brought it, and no second page is read.
    assert [method for method, _ in gitlab.requests] == ["GET", "POST"]
    assert lead_times(metrics, PROJECT) == (3, (8 + 8 + 1) * HOUR)


def test_merge_requests_graphql_does_not_show_leave_each_commit_a_change_of_its_own(
    gitlab: FakeGitLab, start: Callable[..., Service]
) -> None:
    history(gitlab)
    gitlab.hidden_from_graphql.add(PROJECT)
    service = start(gitlab_url=gitlab.url, gitlab_token=TOKEN)
    record(service, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
    record(service, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:2"))
    metrics = service.settled()
    # c2's 2 h; then f1, f2, M, S, N and d3 each from its own author time.
    assert lead_times(metrics, PROJECT) == (7, (2 + 16 + 14 + 10 + 5 + 5 + 8) * HOUR)
    assert metrics.get("observer_enrichment_failures_total", reason="not_found") == 0


def test_waiting_gitlab_work_keeps_its_forge_across_a_restart_on_redis(
    gitlab: FakeGitLab, github: FakeGitHub, start: Callable[..., Service]
) -> None:
    history(gitlab)
    with running_redis() as redis:
        # Recorded, and stopped before the work is due (an hour's settle): it stays in Redis.
        first = start(state_url=redis.url, settle_seconds=3600)
        record(first, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
        record(first, deployed(PROJECT, "d3", 30, GITLAB, "gitlab:2"))
        first.client.__exit__(None, None, None)
        # Started again, now with both tokens: the waiting work asks GitLab, never GitHub.
        again = start(
            state_url=redis.url,
            gitlab_url=gitlab.url,
            gitlab_token=TOKEN,
            github_token="t",
            github_api_url=github.url,
        )
        enrichment = again.client.app.state.enrichment  # type: ignore[attr-defined]
        again.client.portal.call(enrichment.finish_waiting)
        assert lead_times(again.settled(), PROJECT) == (4, 38 * HOUR)
        assert github.requests == []


def test_a_project_gitlab_does_not_show_gets_lead_times_from_the_pushes_seen_said_once(
    gitlab: FakeGitLab, start: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    service = start(gitlab_url=gitlab.url, gitlab_token=TOKEN)  # the fake has no such project
    pushes(service)
    record(service, deployed(PROJECT, "c2", 12, GITLAB, "gitlab:1"))
    record(service, deployed(PROJECT, "e4", 30, GITLAB, "gitlab:2"))
    metrics = service.settled()
    assert lead_times(metrics, PROJECT) == (3, (2 + 8 + 7) * HOUR)
    assert metrics.get("observer_enrichment_failures_total", reason="not_found") == 0
    said = [r for r in caplog.records if "GitLab shows GITLAB_TOKEN no such project" in r.message]
    assert len(said) == 1
