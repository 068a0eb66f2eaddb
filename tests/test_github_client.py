"""The GitHub API client against respx-mocked answers: parsing, retries, rate limits, auth."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from observer import __version__
from observer.forges.github.client import (
    ApiCommit,
    ApiDeployment,
    ApiPull,
    AppInstallationToken,
    GitHubClient,
    GitHubError,
    GraphPull,
    MalformedResponse,
    NotFound,
    PullLookup,
    RateLimited,
    RepositoryNotFound,
    ServerError,
    StaticToken,
    Timeout,
    TokenSource,
    Unauthorized,
    Unreachable,
    create_http_client,
    token_source,
)
from observer.forges.github.errors import http_error
from observer.forges.github.http import graphql_url
from observer.metrics.definitions import ENRICHMENT_FAILURES, Metrics
from observer.settings import Settings
from tests.fake_github import FakeGitHub, graph_pull, serve

T = TypeVar("T")

FIXTURES = Path(__file__).parent / "fixtures" / "github_api"
API = "https://api.github.com"
GHE = "https://ghe.example.com/api/v3"
REPO = "octo-org/octo-app"
TOKEN = "ghp_n3verShowThisT0kenAnywhere0123456789"
NOW = 1_795_420_000.0

B = "96a28bbf222c68b280b77e86c2a5e9a110218b9f"
P1 = "28dfe8b75f098241ee924c88520eb428718838db"
P2 = "927030c8d3633a2158c847bfd017f58116a6f2e0"
M = "2d0349daef29bff4985cc12df2fdb925353a9344"
C1 = "e14cf2e71806278bc47abfcdec397be34d3d32ff"
C2 = "6971a98ed123e1abecea470b98f565f00cd0a1e2"
C3 = "c1658db9894c9bdcebd35035fff7410fab1e395d"

COMMIT_URL = f"{API}/repos/{REPO}/commits/{C3}"
COMPARE_URL = f"{API}/repos/{REPO}/compare/{M}...{C3}"
PRIMARY_LIMIT_BODY = {
    "message": "API rate limit exceeded for installation ID 61234567.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}


def body(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def answer(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=(FIXTURES / name).read_bytes(), headers=headers)


def remaining(count: int, reset: float | None = None) -> dict[str, str]:
    headers = {"x-ratelimit-remaining": str(count)}
    if reset is not None:
        headers["x-ratelimit-reset"] = str(int(reset))
    return headers


class FakeTime:
    """The clock and sleep the client is given: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = NOW
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Harness:
    router: respx.MockRouter
    time: FakeTime = field(default_factory=FakeTime)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    jitter: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry)

    def uniform(self, low: float, high: float) -> float:
        self.jitter.append((low, high))
        return high

    def run(
        self,
        work: Callable[[GitHubClient], Awaitable[T]],
        *,
        api_url: str = API,
        auth: Callable[[httpx.AsyncClient], TokenSource] | None = None,
        **options: Any,
    ) -> T:
        async def main() -> T:
            settings = Settings(webhook_secret="unused", github_api_url=api_url)
            async with create_http_client(settings) as http:
                source = auth(http) if auth else StaticToken(SecretStr(TOKEN))
                client = GitHubClient(
                    http,
                    self.metrics,
                    source,
                    sleep=self.time.sleep,
                    clock=self.time,
                    uniform=self.uniform,
                    **options,
                )
                return await work(client)

        return asyncio.run(main())

    def fails(self, work: Callable[[GitHubClient], Awaitable[Any]], **options: Any) -> GitHubError:
        with pytest.raises(GitHubError) as caught:
            self.run(work, **options)
        return caught.value

    def requests(self, status: str) -> float | None:
        return self.registry.get_sample_value(
            "observer_github_api_requests_total", {"status": status}
        )

    def sample(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)


@pytest.fixture
def gh() -> Iterator[Harness]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield Harness(router)


def commit_c3(client: GitHubClient) -> Awaitable[ApiCommit]:
    return client.commit(REPO, C3)


# Every method against GitHub's documented answers.


def test_compare_returns_the_commits_oldest_first(gh: Harness) -> None:
    route = gh.router.get(COMPARE_URL, params={"per_page": "100", "page": "1"}, name="compare")
    route.mock(return_value=answer("compare.json"))

    comparison = gh.run(lambda client: client.compare(REPO, M, C3, max_pages=5))

    assert route.call_count == 1
    assert comparison.status == "ahead"
    assert not comparison.truncated
    assert [commit.sha for commit in comparison.commits] == [C1, C2, C3]
    assert comparison.commits[0] == ApiCommit(
        sha=C1, author_time=datetime(2026, 11, 22, 8, 40, tzinfo=UTC), parents=(M,)
    )
    sent = route.calls.last.request.headers
    assert sent["Authorization"] == f"Bearer {TOKEN}"
    assert sent["Accept"] == "application/vnd.github+json"
    assert sent["X-GitHub-Api-Version"] == "2022-11-28"
    assert sent["User-Agent"] == f"observer/{__version__}"


def test_commit_reads_author_time_and_parents_in_lower_case(gh: Harness) -> None:
    shouting = body("commit.json")
    shouting["sha"] = C3.upper()
    shouting["parents"][0]["sha"] = C2.upper()
    route = gh.router.get(COMMIT_URL, name="commit").respond(json=shouting)

    commit = gh.run(commit_c3)

    assert route.called
    assert commit == ApiCommit(
        sha=C3, author_time=datetime(2026, 11, 22, 9, 25, tzinfo=UTC), parents=(C2,)
    )


def test_commit_pulls_gives_the_head_branch_of_a_same_repository_pull(gh: Harness) -> None:
    route = gh.router.get(f"{API}/repos/{REPO}/commits/{M}/pulls", name="pulls")
    route.mock(return_value=answer("commit_pulls.json"))

    pulls = gh.run(lambda client: client.commit_pulls(REPO, M))

    assert route.called
    assert pulls == [
        ApiPull(
            number=42,
            merged_at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
            merge_commit_sha=M,
            head_ref="feature/retry-budget",
        )
    ]


@pytest.mark.parametrize("fork", [{"id": 99999999, "full_name": "forker/octo-app"}, None])
def test_commit_pulls_hides_the_branch_of_a_fork(gh: Harness, fork: Any) -> None:
    pulls = body("commit_pulls.json")
    pulls[0]["head"]["repo"] = fork
    gh.router.get(f"{API}/repos/{REPO}/commits/{M}/pulls", name="pulls").respond(json=pulls)

    (pull,) = gh.run(lambda client: client.commit_pulls(REPO, M))

    assert pull.number == 42
    assert pull.head_ref is None


def test_pull_commits_lists_the_pull_requests_commits_oldest_first(gh: Harness) -> None:
    route = gh.router.get(
        f"{API}/repos/{REPO}/pulls/42/commits", params={"per_page": "100"}, name="pull_commits"
    ).mock(return_value=answer("pull_commits.json"))

    commits = gh.run(lambda client: client.pull_commits(REPO, 42))

    assert route.called
    assert commits == [
        ApiCommit(P1, datetime(2026, 11, 19, 16, 12, tzinfo=UTC), (B,)),
        ApiCommit(P2, datetime(2026, 11, 20, 15, 18, tzinfo=UTC), (P1,)),
    ]


def test_deployments_lists_an_environments_newest_deployments(gh: Harness) -> None:
    route = gh.router.get(
        f"{API}/repos/{REPO}/deployments",
        params={"environment": "Production", "per_page": "2"},
        name="deployments",
    ).mock(return_value=answer("deployments.json"))

    deployments = gh.run(lambda client: client.deployments(REPO, "Production", limit=2))

    assert route.called
    assert deployments == [
        ApiDeployment(1987671234, C3, datetime(2026, 11, 23, 10, 25, tzinfo=UTC)),
        ApiDeployment(1987660012, C3, datetime(2026, 11, 23, 10, 8, tzinfo=UTC)),
    ]


def test_deployment_succeeded_looks_for_a_success_status(gh: Harness) -> None:
    url = f"{API}/repos/{REPO}/deployments/1987654321/statuses"
    statuses = body("deployment_statuses.json")
    succeeded = [{**statuses[0], "state": "success"}, *statuses]
    route = gh.router.get(url, params={"per_page": "30"}, name="statuses")
    route.side_effect = [answer("deployment_statuses.json"), httpx.Response(200, json=succeeded)]

    async def both(client: GitHubClient) -> tuple[bool, bool]:
        first = await client.deployment_succeeded(REPO, 1987654321)
        return first, await client.deployment_succeeded(REPO, 1987654321)

    assert gh.run(both) == (False, True)
    assert route.call_count == 2


def test_a_renamed_repository_is_followed(gh: Harness) -> None:
    old = gh.router.get(f"{API}/repos/octo-org/old-name/commits/{C3}", name="old")
    old.respond(301, headers={"Location": COMMIT_URL})
    new = gh.router.get(COMMIT_URL, name="new").mock(return_value=answer("commit.json"))

    assert gh.run(lambda client: client.commit("octo-org/old-name", C3)).sha == C3
    assert old.called
    assert new.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


# Pagination.


def compare_page(number: int, count: int, total: int) -> dict[str, Any]:
    template = body("compare.json")
    commits = []
    for index in range(count):
        commit = copy.deepcopy(template["commits"][0])
        commit["sha"] = f"{number:04x}{index:036x}"
        commits.append(commit)
    return {**template, "total_commits": total, "commits": commits}


@pytest.mark.parametrize(("max_pages", "expected", "truncated"), [(2, 200, True), (3, 250, False)])
def test_compare_reads_pages_while_commits_remain(
    gh: Harness, max_pages: int, expected: int, truncated: bool
) -> None:
    routes = [
        gh.router.get(
            COMPARE_URL, params={"per_page": "100", "page": str(page)}, name=f"page{page}"
        ).respond(json=compare_page(page, count, 250))
        for page, count in ((1, 100), (2, 100), (3, 50))
    ]

    comparison = gh.run(lambda client: client.compare(REPO, M, C3, max_pages=max_pages))

    assert comparison.truncated is truncated
    assert len(comparison.commits) == expected
    assert comparison.commits[0].sha == f"{1:04x}{0:036x}"
    assert comparison.commits[100].sha == f"{2:04x}{0:036x}"
    assert [route.call_count for route in routes] == [1, 1, 1 if max_pages == 3 else 0]


def test_compare_stops_at_an_empty_page(gh: Harness) -> None:
    pages = [compare_page(1, 100, 150), compare_page(2, 0, 150)]
    route = gh.router.get(COMPARE_URL, name="compare")
    route.side_effect = [httpx.Response(200, json=page) for page in pages]

    comparison = gh.run(lambda client: client.compare(REPO, M, C3, max_pages=5))

    assert route.call_count == 2
    assert comparison.truncated
    assert len(comparison.commits) == 100


# Retries.


def test_a_server_error_is_retried(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [
        httpx.Response(500),
        answer("commit.json", headers=remaining(4999)),
    ]

    assert gh.run(commit_c3).sha == C3

    assert route.call_count == 2
    assert gh.time.sleeps == [0.5]
    assert gh.jitter == [(0, 0.5)]
    assert gh.requests("500") == 1
    assert gh.requests("200") == 1
    assert gh.sample("observer_github_api_request_duration_seconds_count") == 2
    assert gh.sample("observer_github_rate_limit_remaining") == 4999


def test_a_persistent_server_error_gives_up_after_the_retries(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").respond(502)

    error = gh.fails(commit_c3, max_retries=5)

    assert type(error) is ServerError
    assert str(error) == f"GET /repos/{REPO}/commits/{C3}: HTTP 502"
    assert route.call_count == 6
    # Full jitter under a doubling ceiling capped at 8 s; the fake picks the ceiling.
    assert gh.jitter == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 4.0), (0, 8.0)]
    assert gh.time.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert gh.requests("502") == 6


def test_no_retries_when_max_retries_is_zero(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").respond(503)

    assert type(gh.fails(commit_c3, max_retries=0)) is ServerError
    assert route.call_count == 1
    assert gh.time.sleeps == []


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ReadTimeout, Timeout),
        (httpx.ConnectTimeout, Timeout),
        (httpx.PoolTimeout, Timeout),
        (httpx.ConnectError, Unreachable),
        (httpx.RemoteProtocolError, Unreachable),
    ],
)
def test_transport_errors_are_retried_then_named(
    gh: Harness, raised: type[Exception], expected: type[GitHubError]
) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").mock(side_effect=raised)

    error = gh.fails(commit_c3, max_retries=3)

    assert type(error) is expected
    assert route.call_count == 4
    assert gh.time.sleeps == [0.5, 1.0, 2.0]
    assert gh.requests("error") == 4
    assert gh.sample("observer_github_api_request_duration_seconds_count") == 4


def test_a_timeout_then_success(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [httpx.ReadTimeout("slow"), answer("commit.json")]

    assert gh.run(commit_c3).sha == C3
    assert route.call_count == 2
    assert gh.requests("error") == 1
    assert gh.requests("200") == 1


# Rate limits.


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_waits_retry_after(gh: Harness, status: int) -> None:
    limited = answer(
        "rate_limited_403.json",
        status,
        {"retry-after": "7", **remaining(4873, reset=1795429800)},
    )
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [limited, answer("commit.json")]

    assert gh.run(commit_c3).sha == C3

    assert route.call_count == 2
    assert gh.time.sleeps == [7.0]
    assert gh.requests(str(status)) == 1
    assert gh.sample("observer_github_rate_limit_remaining") == 4873


def test_retry_after_beyond_the_longest_wait_is_not_waited(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.mock(return_value=answer("rate_limited_403.json", 403, {"retry-after": "3600"}))

    error = gh.fails(commit_c3, max_rate_limit_wait=900.0)

    assert type(error) is RateLimited
    assert route.call_count == 1
    assert gh.time.sleeps == []


@pytest.mark.parametrize("status", [403, 429])
def test_a_spent_primary_limit_waits_until_reset(gh: Harness, status: int) -> None:
    limited = httpx.Response(status, json=PRIMARY_LIMIT_BODY, headers=remaining(0, NOW + 30))
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [limited, answer("commit.json", headers=remaining(5000))]

    assert gh.run(commit_c3).sha == C3

    assert route.call_count == 2
    assert gh.time.sleeps == [pytest.approx(30.0)]
    assert gh.sample("observer_github_rate_limit_remaining") == 5000


def test_a_reset_beyond_the_longest_wait_fails_without_waiting(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.respond(403, json=PRIMARY_LIMIT_BODY, headers=remaining(0, NOW + 3600))

    async def twice(client: GitHubClient) -> list[GitHubError]:
        errors: list[GitHubError] = []
        for _ in range(2):
            with pytest.raises(RateLimited) as caught:
                await client.commit(REPO, C3)
            errors.append(caught.value)
        return errors

    first, second = gh.run(twice, max_rate_limit_wait=900.0)

    # The second call knows the limit is spent and does not ask GitHub again.
    assert route.call_count == 1
    assert gh.time.sleeps == []
    where = f"GET /repos/{REPO}/commits/{C3}"
    allowed = "rate limited for 3600 s more, longer than the 900 s allowed"
    assert str(first) == f"{where}: HTTP 403: {allowed}"
    assert str(second) == f"{where}: {allowed}"
    assert gh.sample("observer_github_rate_limit_remaining") == 0


def test_the_last_request_of_the_quota_makes_the_next_one_wait(gh: Harness) -> None:
    spent = answer("commit.json", headers=remaining(0, reset=NOW + 30))
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [spent, answer("commit.json", headers=remaining(4999))]

    async def two_tasks(client: GitHubClient) -> list[float]:
        await asyncio.create_task(client.commit(REPO, C3))
        waited_before = list(gh.time.sleeps)
        await asyncio.create_task(client.commit(REPO, C3))
        return waited_before

    assert gh.run(two_tasks) == []
    assert gh.time.sleeps == [pytest.approx(30.0)]
    assert route.call_count == 2


def test_an_unexplained_rate_limit_waits_a_minute_then_longer(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.mock(return_value=answer("rate_limited_403.json", 403))

    error = gh.fails(commit_c3, max_retries=2)

    assert type(error) is RateLimited
    assert route.call_count == 3
    assert gh.time.sleeps == [60.0, 120.0]


def test_an_unexplained_429_waits_a_minute(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [httpx.Response(429), answer("commit.json")]

    assert gh.run(commit_c3).sha == C3
    assert gh.time.sleeps == [60.0]


def test_an_unexplained_rate_limit_longer_than_allowed_is_not_waited(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").respond(429)

    assert type(gh.fails(commit_c3, max_rate_limit_wait=30.0)) is RateLimited
    assert route.call_count == 1
    assert gh.time.sleeps == []


# Answers that are not retried.


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (403, {"message": "Resource not accessible by integration"}, Unauthorized),
        (401, {"message": "Bad credentials"}, Unauthorized),
        (404, {"message": "Not Found"}, NotFound),
        (422, {"message": "No commit found for SHA: c1658db"}, GitHubError),
        (400, {"message": "Problems parsing JSON"}, GitHubError),
    ],
)
def test_client_errors_are_not_retried(
    gh: Harness, status: int, payload: dict[str, str], expected: type[GitHubError]
) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").respond(
        status, json=payload, headers={"x-ratelimit-remaining": "4000"}
    )

    error = gh.fails(commit_c3)

    assert type(error) is expected
    assert str(error) == f"GET /repos/{REPO}/commits/{C3}: HTTP {status}"
    assert route.call_count == 1
    assert gh.time.sleeps == []
    assert gh.requests(str(status)) == 1


@pytest.mark.parametrize("status", [404, 422])
def test_compare_of_unknown_or_unrelated_commits_is_not_found(gh: Harness, status: int) -> None:
    route = gh.router.get(COMPARE_URL, name="compare").respond(
        status, json={"message": f"No common ancestor between {M} and {C3}."}
    )

    error = gh.fails(lambda client: client.compare(REPO, M, C3, max_pages=5))

    assert type(error) is NotFound
    assert route.call_count == 1


@pytest.mark.parametrize(
    "content",
    [
        b"<html>Unicorn!</html>",
        b"",
        b'{"sha": "c1658db9894c9bdcebd35035fff7410fab1e395d"',
        b"[]",
        b'{"sha": "not-a-sha", "commit": {"author": {"date": "2026-11-22T09:25:00Z"}}, '
        b'"parents": []}',
        b'{"sha": "c1658db9894c9bdcebd35035fff7410fab1e395d", "commit": {"author": '
        b'{"date": "yesterday"}}, "parents": []}',
        b'{"sha": "c1658db9894c9bdcebd35035fff7410fab1e395d", "commit": {}, "parents": []}',
        b'{"sha": "c1658db9894c9bdcebd35035fff7410fab1e395d", "commit": null, "parents": {}}',
    ],
)
def test_a_malformed_answer_is_malformed(gh: Harness, content: bytes) -> None:
    route = gh.router.get(COMMIT_URL, name="commit").respond(200, content=content)

    error = gh.fails(commit_c3)

    assert type(error) is MalformedResponse
    assert error.reason == "malformed"
    assert route.call_count == 1


def test_a_compare_without_total_commits_is_malformed(gh: Harness) -> None:
    broken = body("compare.json")
    del broken["total_commits"]
    gh.router.get(COMPARE_URL, name="compare").respond(json=broken)

    error = gh.fails(lambda client: client.compare(REPO, M, C3, max_pages=5))

    assert type(error) is MalformedResponse
    assert "total_commits" in str(error)


def test_every_reason_is_a_failure_label() -> None:
    errors = [GitHubError, RateLimited, Timeout, Unreachable, ServerError, NotFound]
    errors += [Unauthorized, MalformedResponse]
    assert sorted(error.reason for error in errors) == sorted(ENRICHMENT_FAILURES)


# GitHub Enterprise Server.


def test_requests_go_under_the_enterprise_api_path(gh: Harness) -> None:
    route = gh.router.get(f"{GHE}/repos/{REPO}/commits/{C3}", name="ghe_commit")
    route.mock(return_value=answer("commit.json"))

    assert gh.run(commit_c3, api_url=GHE).sha == C3
    assert route.calls.last.request.url.path == f"/api/v3/repos/{REPO}/commits/{C3}"


# Counting calls per task.


def test_counting_sees_only_its_own_tasks_requests(gh: Harness) -> None:
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [httpx.Response(500), *[answer("commit.json")] * 4]

    async def both(client: GitHubClient) -> tuple[int, int, int]:
        first_inside = asyncio.Event()
        second_done = asyncio.Event()

        async def first() -> int:
            with client.counting() as count:
                await client.commit(REPO, C3)  # a 500, then the retry
                first_inside.set()
                await second_done.wait()
                await client.commit(REPO, C3)
            return count.calls

        async def second() -> int:
            await first_inside.wait()
            with client.counting() as count:
                await client.commit(REPO, C3)
            second_done.set()
            return count.calls

        with client.counting() as outside:
            calls = await asyncio.gather(first(), second())
        return calls[0], calls[1], outside.calls

    # Tasks made inside the block count toward it, since they inherit its context.
    assert gh.run(both) == (3, 1, 4)
    assert route.call_count == 4


# Tokens.


@functools.cache
def make_key() -> tuple[str, rsa.RSAPublicKey]:
    """A throwaway RSA key, made once: generating one takes a noticeable moment."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode(), key.public_key()


def test_an_app_installation_token_is_made_cached_and_renewed(gh: Harness) -> None:
    pem, public_key = make_key()
    seen_jwts: list[str] = []
    issued = iter(["ghs_installationTokenOne", "ghs_installationTokenTwo"])

    async def issue(request: httpx.Request) -> httpx.Response:
        seen_jwts.append(request.headers["Authorization"].removeprefix("Bearer "))
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        expires = datetime.fromtimestamp(gh.time.now + 3600, UTC).isoformat()
        return httpx.Response(201, json={"token": next(issued), "expires_at": expires})

    tokens = gh.router.post(f"{API}/app/installations/99/access_tokens", name="token")
    tokens.side_effect = issue
    commits = gh.router.get(COMMIT_URL, name="commit").mock(return_value=answer("commit.json"))

    def app(http: httpx.AsyncClient) -> TokenSource:
        return AppInstallationToken(http, 12345, 99, SecretStr(pem), clock=gh.time)

    async def work(client: GitHubClient) -> None:
        await asyncio.gather(*(client.commit(REPO, C3) for _ in range(3)))
        gh.time.now += 3600 - 300 - 1  # just before the renewal margin
        await client.commit(REPO, C3)
        gh.time.now += 1
        await client.commit(REPO, C3)

    gh.run(work, auth=app)

    assert tokens.call_count == 2
    assert commits.call_count == 5
    carried = [call.request.headers["Authorization"] for call in commits.calls]
    assert carried == ["Bearer ghs_installationTokenOne"] * 4 + ["Bearer ghs_installationTokenTwo"]
    claims = jwt.decode(
        seen_jwts[0],
        public_key,
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iat": int(NOW) - 60, "exp": int(NOW) + 540, "iss": "12345"}
    assert jwt.get_unverified_header(seen_jwts[0])["alg"] == "RS256"


def test_an_app_token_is_asked_for_under_the_enterprise_path(gh: Harness) -> None:
    pem, _ = make_key()
    tokens = gh.router.post(f"{GHE}/app/installations/7/access_tokens", name="token").respond(
        201, json={"token": "ghs_enterprise", "expires_at": "2030-01-01T00:00:00Z"}
    )
    gh.router.get(f"{GHE}/repos/{REPO}/commits/{C3}", name="commit").mock(
        return_value=answer("commit.json")
    )

    def app(http: httpx.AsyncClient) -> TokenSource:
        return AppInstallationToken(http, 1, 7, SecretStr(pem), clock=gh.time)

    assert gh.run(commit_c3, api_url=GHE, auth=app).sha == C3
    assert tokens.calls.last.request.url.path == "/api/v3/app/installations/7/access_tokens"


@pytest.mark.parametrize(
    ("status", "expected"), [(401, Unauthorized), (404, Unauthorized), (502, ServerError)]
)
def test_a_refused_app_token_is_an_error(
    gh: Harness, status: int, expected: type[GitHubError]
) -> None:
    pem, _ = make_key()
    tokens = gh.router.post(f"{API}/app/installations/99/access_tokens", name="token")
    tokens.respond(status, json={"message": "A JSON web token could not be decoded"})
    commits = gh.router.get(COMMIT_URL, name="commit")

    def app(http: httpx.AsyncClient) -> TokenSource:
        return AppInstallationToken(http, 12345, 99, SecretStr(pem), clock=gh.time)

    error = gh.fails(commit_c3, auth=app, max_retries=1)

    assert type(error) is expected
    assert not commits.called
    # Server errors are retried like any other; a refusal is final.
    assert tokens.call_count == (2 if status == 502 else 1)


def test_a_private_key_on_one_line_is_accepted() -> None:
    pem, _ = make_key()
    http = httpx.AsyncClient()
    AppInstallationToken(http, 1, 2, SecretStr(pem.replace("\n", "\\n")))


def test_a_bad_private_key_fails_at_start_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM RSA private key") as caught:
        AppInstallationToken(httpx.AsyncClient(), 1, 2, SecretStr("-----BEGIN nonsense-----"))
    assert "nonsense" not in str(caught.value)


def test_token_source_follows_the_settings() -> None:
    http = httpx.AsyncClient()
    pem, _ = make_key()
    assert token_source(Settings(webhook_secret="s"), http) is None
    static = token_source(Settings(webhook_secret="s", github_token=TOKEN), http)
    assert isinstance(static, StaticToken)
    assert asyncio.run(static.token()) == TOKEN
    app = token_source(
        Settings(
            webhook_secret="s",
            github_app_id=12345,
            github_app_installation_id=99,
            github_app_private_key=pem,
        ),
        http,
    )
    assert isinstance(app, AppInstallationToken)


def test_the_token_is_never_shown(gh: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    route = gh.router.get(COMMIT_URL, name="commit")
    route.side_effect = [
        httpx.ReadTimeout("slow"),
        httpx.Response(401, json={"message": "Bad credentials"}),
    ]

    error = gh.fails(commit_c3, max_retries=1)

    assert type(error) is Unauthorized
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    shown = [str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text]
    shown += [repr(StaticToken(SecretStr(TOKEN)))]
    shown += [repr(AppInstallationToken(httpx.AsyncClient(), 1, 2, SecretStr(make_key()[0])))]

    async def describe(client: GitHubClient) -> str:
        return repr(client)

    shown.append(gh.run(describe))
    for text in shown:
        assert TOKEN not in text
        assert "PRIVATE KEY" not in text


# The status-to-error mapping the client and the token code share.


@pytest.mark.parametrize(
    ("status", "headers", "content", "expected"),
    [
        (502, {}, b"", ServerError),
        (429, {}, b"", RateLimited),
        (403, {"retry-after": "5"}, b"", RateLimited),
        (403, remaining(0, NOW), b"", RateLimited),
        (403, {}, b'{"message": "You have exceeded a secondary rate limit."}', RateLimited),
        (403, remaining(0), b'{"message": "Resource not accessible"}', Unauthorized),
        (401, {}, b"", Unauthorized),
        (404, {}, b"", NotFound),
        (422, {}, b"", GitHubError),
    ],
)
def test_one_mapping_from_an_answer_to_an_error(
    status: int, headers: dict[str, str], content: bytes, expected: type[GitHubError]
) -> None:
    error = http_error("GET /x", httpx.Response(status, headers=headers, content=content))
    assert type(error) is expected
    assert str(error).startswith(f"GET /x: HTTP {status}")


def test_the_token_code_maps_a_rate_limit_like_the_client(gh: Harness) -> None:
    pem, _ = make_key()
    limited = httpx.Response(403, json=PRIMARY_LIMIT_BODY, headers=remaining(0, NOW + 30))
    gh.router.post(f"{API}/app/installations/99/access_tokens", name="token").mock(
        return_value=limited
    )

    def app(http: httpx.AsyncClient) -> TokenSource:
        return AppInstallationToken(http, 12345, 99, SecretStr(pem), clock=gh.time)

    assert type(gh.fails(commit_c3, auth=app)) is RateLimited


# GraphQL: the pull requests of many commits in one request.

GRAPHQL_URL = f"{API}/graphql"
SHAS = [f"{index:040x}" for index in range(1, 13)]


def graphql_table(request: httpx.Request, fake: FakeGitHub) -> httpx.Response:
    return httpx.Response(200, json=fake.answer_graphql(json.loads(request.content)))


def aliases(request: httpx.Request) -> list[str]:
    query = json.loads(request.content)["query"]
    return [f"c:{sha}" for sha in re.findall(r'object\(oid: "(\w+)"\)', query)] + [
        f"p:{number}" for number in re.findall(r"pullRequest\(number: (\d+)\)", query)
    ]


def pull_42() -> GraphPull:
    return GraphPull(
        number=42,
        merged_at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
        merge_commit_sha=M,
        base_ref="main",
        first_commit_time=datetime(2026, 11, 19, 16, 12, tzinfo=UTC),
    )


def test_pulls_of_many_commits_come_in_one_request(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL, name="graphql")
    route.mock(return_value=answer("graphql_pulls_of_commits.json", headers=remaining(4990)))

    async def lookup(client: GitHubClient) -> tuple[PullLookup, int]:
        with client.counting() as count:
            found = await client.pulls_of_commits(REPO, [C3.upper(), C1, C2], [41, 9999])
        return found, count.calls

    found, calls = gh.run(lookup)

    assert route.call_count == 1 and calls == 1
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(request.content)
    assert sent["variables"] == {"owner": "octo-org", "name": "octo-app"}
    assert aliases(request) == [f"c:{C3}", f"c:{C1}", f"c:{C2}", "p:41", "p:9999"]
    assert "c0: object(" in sent["query"] and "p1: pullRequest(" in sent["query"]
    # Only merged pull requests; C1 did not resolve, C2 is in none.
    assert found.commits == {C3: (pull_42(),), C2: ()}
    assert found.pulls == {
        41: GraphPull(
            number=41,
            merged_at=datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
            merge_commit_sha=B,
            base_ref="develop",
            first_commit_time=datetime(2026, 11, 18, 9, 5, tzinfo=UTC),
        )
    }
    assert found.truncated == 0
    assert gh.requests("200") == 1
    assert gh.sample("observer_github_rate_limit_remaining") == 4990


def test_a_pull_without_commits_or_merge_has_no_times(gh: Harness) -> None:
    fake = FakeGitHub(graphql_pulls={7: graph_pull(7, merged_at=None, first_commit_at=None)})
    gh.router.post(GRAPHQL_URL).mock(side_effect=lambda request: graphql_table(request, fake))

    found = gh.run(lambda client: client.pulls_of_commits(REPO, [], [7]))

    assert found == PullLookup(commits={}, pulls={7: GraphPull(7, None, None, "main", None)})


def test_nothing_asked_sends_nothing(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL)

    found = gh.run(lambda client: client.pulls_of_commits(REPO, [], []))

    assert found == PullLookup(commits={}, pulls={}, truncated=0)
    assert not route.called


def test_pulls_of_commits_are_asked_in_batches(gh: Harness) -> None:
    fake = FakeGitHub(
        graphql_commits={sha: [graph_pull(index)] for index, sha in enumerate(SHAS)},
        graphql_pulls={100: graph_pull(100), 101: graph_pull(101)},
    )
    route = gh.router.post(GRAPHQL_URL, name="graphql")
    route.side_effect = lambda request: graphql_table(request, fake)

    async def lookup(client: GitHubClient) -> tuple[PullLookup, int]:
        with client.counting() as count:
            found = await client.pulls_of_commits(REPO, SHAS + SHAS[:2], [100, 101], batch=5)
        return found, count.calls

    found, calls = gh.run(lookup)

    # 12 distinct shas and 2 numbers, 5 to a request.
    assert route.call_count == calls == 3
    batches = [aliases(call.request) for call in route.calls]
    assert [len(batch) for batch in batches] == [5, 5, 4]
    assert batches[2] == [f"c:{SHAS[10]}", f"c:{SHAS[11]}", "p:100", "p:101"]
    assert list(found.commits) == SHAS
    assert [pull.number for pull in found.commits[SHAS[11]]] == [11]
    assert set(found.pulls) == {100, 101}
    assert found.truncated == 0


def test_what_is_beyond_the_limit_is_not_asked_and_is_counted(gh: Harness) -> None:
    fake = FakeGitHub(graphql_commits={sha: [] for sha in SHAS}, graphql_pulls={5: graph_pull(5)})
    route = gh.router.post(GRAPHQL_URL, name="graphql")
    route.side_effect = lambda request: graphql_table(request, fake)

    found = gh.run(
        lambda client: client.pulls_of_commits(REPO, SHAS, [5, 6], batch=4, max_items=10)
    )

    assert route.call_count == 3
    asked = [alias for call in route.calls for alias in aliases(call.request)]
    assert asked == [f"c:{sha}" for sha in SHAS[:10]]
    assert list(found.commits) == SHAS[:10]
    assert found.pulls == {}
    assert found.truncated == 4  # two shas and both numbers


@pytest.mark.parametrize("bad", ['x") { oid } }', f"{C1}\n", C1[:7]])
def test_a_bad_sha_is_refused_before_any_request(gh: Harness, bad: str) -> None:
    route = gh.router.post(GRAPHQL_URL)

    with pytest.raises(ValueError, match="not a lower-case commit sha"):
        gh.run(lambda client: client.pulls_of_commits(REPO, [*SHAS, bad], batch=2))
    assert not route.called


def test_an_object_that_is_not_a_commit_is_left_out(gh: Harness) -> None:
    data = {"data": {"repository": {"c0": {}, "c1": {"associatedPullRequests": {"nodes": []}}}}}
    gh.router.post(GRAPHQL_URL).respond(json=data)

    found = gh.run(lambda client: client.pulls_of_commits(REPO, [C1, C2]))

    assert found.commits == {C2: ()}


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository"}],
            RepositoryNotFound,
        ),
        (
            [{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}],
            Unauthorized,
        ),
        ([{"message": 'Parse error on "}" (RCURLY) at [3, 5]'}], GitHubError),
        ([], MalformedResponse),
    ],
)
def test_an_answer_without_data_is_an_error(
    gh: Harness, errors: list[dict[str, str]], expected: type[GitHubError]
) -> None:
    route = gh.router.post(GRAPHQL_URL).respond(json={"data": None, "errors": errors})

    error = gh.fails(lambda client: client.pulls_of_commits(REPO, [C1]))

    assert type(error) is expected
    assert str(error).startswith("POST /graphql: ")
    assert route.call_count == 1


def test_a_repository_that_is_not_there_is_not_found(gh: Harness) -> None:
    not_found = {"type": "NOT_FOUND", "path": ["repository"], "message": "Could not resolve"}
    gh.router.post(GRAPHQL_URL).respond(json={"data": {"repository": None}, "errors": [not_found]})

    assert type(gh.fails(lambda client: client.pulls_of_commits(REPO, [C1]))) is RepositoryNotFound


def test_a_404_for_a_repositorys_deployments_or_itself_means_no_repository(gh: Harness) -> None:
    gh.router.get(f"{API}/repos/{REPO}/deployments").respond(404, json={"message": "Not Found"})
    gh.router.get(f"{API}/repos/{REPO}").respond(404, json={"message": "Not Found"})

    missing = gh.fails(lambda client: client.deployments(REPO, "production"))
    assert type(missing) is RepositoryNotFound
    assert type(gh.fails(lambda client: client.repository(REPO))) is RepositoryNotFound


@pytest.mark.parametrize(
    "repository",
    [
        {"c0": {"associatedPullRequests": {"nodes": [{"number": "forty-two"}]}}},
        {"c0": {"associatedPullRequests": {"nodes": [{**graph_pull(1), "mergedAt": "today"}]}}},
        {"c0": {"associatedPullRequests": {"nodes": [graph_pull(1, merge_commit="not-a-sha")]}}},
        {"c0": {"associatedPullRequests": None}, "p0": {"number": 1}},
        {"c0": "a string"},
        {"p0": None},
    ],
)
def test_a_malformed_graphql_answer_is_malformed(gh: Harness, repository: Any) -> None:
    gh.router.post(GRAPHQL_URL).respond(json={"data": {"repository": repository}})

    error = gh.fails(lambda client: client.pulls_of_commits(REPO, [C1], [1]))

    assert type(error) is MalformedResponse


def test_a_graphql_rate_limit_in_a_200_waits_until_reset(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL, name="graphql")
    route.side_effect = [
        answer("graphql_rate_limited.json", headers=remaining(0, NOW + 30)),
        answer("graphql_pulls_of_commits.json", headers=remaining(5000)),
    ]

    async def lookup(client: GitHubClient) -> tuple[PullLookup, int]:
        with client.counting() as count:
            found = await client.pulls_of_commits(REPO, [C3, C1, C2], [41, 9999])
        return found, count.calls

    found, calls = gh.run(lookup)

    assert found.commits[C3] == (pull_42(),)
    assert route.call_count == calls == 2
    assert gh.time.sleeps == [pytest.approx(30.0)]
    assert gh.requests("200") == 2


def test_an_unexplained_graphql_rate_limit_waits_a_minute_then_fails(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL).mock(return_value=answer("graphql_rate_limited.json"))

    error = gh.fails(lambda client: client.pulls_of_commits(REPO, [C1]), max_retries=1)

    assert type(error) is RateLimited
    assert str(error) == "POST /graphql: HTTP 200: rate limited"
    assert route.call_count == 2
    assert gh.time.sleeps == [60.0]


def test_a_secondary_rate_limit_on_graphql_waits_retry_after(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL)
    route.side_effect = [
        answer("rate_limited_403.json", 403, {"retry-after": "7"}),
        answer("graphql_pulls_of_commits.json"),
    ]

    found = gh.run(lambda client: client.pulls_of_commits(REPO, [C3, C1, C2], [41, 9999]))

    assert set(found.pulls) == {41}
    assert gh.time.sleeps == [7.0]


def test_a_graphql_server_error_is_retried(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL)
    route.side_effect = [httpx.Response(502), answer("graphql_pulls_of_commits.json")]

    found = gh.run(lambda client: client.pulls_of_commits(REPO, [C3, C1, C2], [41, 9999]))

    assert found.commits[C3] == (pull_42(),)
    assert route.call_count == 2
    assert gh.time.sleeps == [0.5]
    assert gh.requests("502") == 1


def test_a_persistent_graphql_server_error_gives_up(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL).respond(502)

    error = gh.fails(lambda client: client.pulls_of_commits(REPO, [C1]), max_retries=2)

    assert type(error) is ServerError
    assert str(error) == "POST /graphql: HTTP 502"
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/graphql"),
        ("http://proxy.internal/github", "http://proxy.internal/github/graphql"),
    ],
)
def test_the_graphql_endpoint_sits_beside_the_rest_api(api_url: str, expected: str) -> None:
    assert str(graphql_url(httpx.URL(api_url))) == expected
    assert str(graphql_url(httpx.AsyncClient(base_url=api_url).base_url)) == expected


def test_graphql_on_github_enterprise_goes_to_api_graphql(gh: Harness) -> None:
    route = gh.router.post("https://ghe.example.com/api/graphql", name="ghe_graphql")
    route.mock(return_value=answer("graphql_pulls_of_commits.json"))

    found = gh.run(
        lambda client: client.pulls_of_commits(REPO, [C3, C1, C2], [41, 9999]), api_url=GHE
    )

    assert found.commits[C3] == (pull_42(),)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_token_is_never_shown_by_graphql_failures(gh: Harness) -> None:
    route = gh.router.post(GRAPHQL_URL)
    route.side_effect = [
        httpx.Response(502),
        httpx.Response(401, json={"message": "Bad credentials"}),
    ]

    error = gh.fails(lambda client: client.pulls_of_commits(REPO, [C1]), max_retries=1)

    assert type(error) is Unauthorized
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    found = PullLookup(commits={C1: (pull_42(),)}, pulls={42: pull_42()}, truncated=1)
    shown += [repr(found), repr(pull_42())]
    for text in shown:
        assert TOKEN not in text


def test_the_fake_github_answers_graphql_over_real_http() -> None:
    fake = FakeGitHub(
        graphql_commits={C3: [graph_pull(42, merge_commit=M)], C2: []},
        graphql_pulls={41: graph_pull(41, base="develop")},
    )

    async def main() -> PullLookup:
        settings = Settings(webhook_secret="unused", github_api_url=fake.url)
        async with create_http_client(settings) as http:
            client = GitHubClient(http, Metrics(CollectorRegistry()), StaticToken(SecretStr(TOKEN)))
            return await client.pulls_of_commits(REPO, [C3, C1, C2], [41, 9999])

    with serve(fake):
        found = asyncio.run(main())

    assert found.commits == {C3: (pull_42(),), C2: ()}
    assert found.pulls[41].base_ref == "develop"
    assert set(found.pulls) == {41}
    assert fake.requests == [("/api/graphql", f"Bearer {TOKEN}")]
    (sent,) = fake.graphql_queries
    assert sent["variables"] == {"owner": "octo-org", "name": "octo-app"}


def test_graphql_and_rest_quotas_are_waited_for_apart(gh: Harness) -> None:
    graphql = gh.router.post(GRAPHQL_URL, name="graphql")
    graphql.mock(
        return_value=answer("graphql_pulls_of_commits.json", headers=remaining(0, NOW + 30))
    )
    rest = gh.router.get(COMMIT_URL, name="commit").mock(return_value=answer("commit.json"))

    async def work(client: GitHubClient) -> list[float]:
        await client.pulls_of_commits(REPO, [C1])
        await client.commit(REPO, C3)  # the REST quota is not spent
        waited = list(gh.time.sleeps)
        await client.pulls_of_commits(REPO, [C1])
        return waited

    assert gh.run(work) == []
    assert gh.time.sleeps == [pytest.approx(30.0)]
    assert (graphql.call_count, rest.call_count) == (2, 1)


def test_a_secondary_rate_limit_holds_graphql_too(gh: Harness) -> None:
    rest = gh.router.get(COMMIT_URL, name="commit")
    rest.side_effect = [answer("rate_limited_403.json", 403, {"retry-after": "7"})]
    graphql = gh.router.post(GRAPHQL_URL, name="graphql")
    graphql.mock(return_value=answer("graphql_pulls_of_commits.json"))

    async def work(client: GitHubClient) -> None:
        with pytest.raises(RateLimited):
            await client.commit(REPO, C3)
        await client.pulls_of_commits(REPO, [C1])

    gh.run(work, max_retries=0)

    assert gh.time.sleeps == [7.0]
    assert graphql.call_count == 1
