"""GitLab's API client against the fake GitLab over real HTTP: paths under a self-managed
prefix, the token header, GitLab's rate-limit headers and 429s, retries, and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry

from observer.forges.api import NotFound, RateLimited, ServerError, Unauthorized
from observer.forges.gitlab.client import GitLabClient, create_http_client
from observer.metrics.definitions import Metrics
from observer.settings import Settings
from tests.fake_gitlab import TOKEN, FakeGitLab, serve
from tests.story import at, sha

T = TypeVar("T")
PROJECT = "mygroup/sub/app"
ENCODED = "/self/api/v4/projects/mygroup%2Fsub%2Fapp"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with serve(FakeGitLab(prefix="/self")) as fake:
        project = fake.project(PROJECT)
        project.commits[sha("a")] = (at(1), at(2), [])
        project.deployments.append((7, "production", sha("a"), "success", at(3)))
        yield fake


class Clock:
    """Time that moves only when the client sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run(
    fake: FakeGitLab,
    call: Callable[[GitLabClient], Awaitable[T]],
    *,
    token: str = TOKEN,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    max_retries: int = 2,
) -> T:
    clock = clock or Clock()
    settings = Settings(webhook_secret="unused", gitlab_url=fake.url, gitlab_token=token)

    async def main() -> T:
        async with create_http_client(settings) as http:
            metrics = Metrics(registry if registry is not None else CollectorRegistry())
            client = GitLabClient(
                http,
                metrics,
                max_retries=max_retries,
                max_rate_limit_wait=600,
                sleep=clock.sleep,
                clock=clock,
                uniform=lambda low, high: high,
            )
            return await call(client)

    return asyncio.run(main())


def test_requests_go_under_the_self_managed_prefix_with_the_project_path_encoded(
    gitlab: FakeGitLab,
) -> None:
    found = run(gitlab, lambda client: client.deployments(PROJECT, "production"))
    assert [(d.id, d.sha) for d in found] == [(7, sha("a"))]
    method, path = gitlab.requests[0]
    assert method == "GET"
    assert path.startswith(f"{ENCODED}/deployments?")
    commit = run(gitlab, lambda client: client.commit(PROJECT, sha("a")))
    # The author's time, not the committer's.
    assert (commit.sha, commit.author_time) == (sha("a"), at(1))


def test_a_429_waits_for_its_retry_after_and_the_request_is_made_again(
    gitlab: FakeGitLab,
) -> None:
    gitlab.limited, gitlab.retry_after = 1, "42"
    clock = Clock()
    registry = CollectorRegistry()
    commit = run(gitlab, lambda c: c.commit(PROJECT, sha("a")), clock=clock, registry=registry)
    assert commit.sha == sha("a")
    assert clock.sleeps == [42.0]
    assert len(gitlab.requests) == 2
    labels = {"status": "429"}
    assert registry.get_sample_value("observer_gitlab_api_requests_total", labels) == 1
    assert registry.get_sample_value("observer_gitlab_api_requests_total", {"status": "200"}) == 1


def test_a_spent_limit_holds_the_next_request_until_its_reset(gitlab: FakeGitLab) -> None:
    clock = Clock()
    gitlab.extra_headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(clock.now + 90)}
    registry = CollectorRegistry()

    async def twice(client: GitLabClient) -> None:
        await client.commit(PROJECT, sha("a"))
        await client.commit(PROJECT, sha("a"))

    run(gitlab, twice, clock=clock, registry=registry)
    # The first answer said the limit is spent until 90 s on: the second waited for it.
    assert clock.sleeps == [90.0]
    assert registry.get_sample_value("observer_gitlab_rate_limit_remaining") == 0


def test_a_wait_longer_than_allowed_fails_at_once(gitlab: FakeGitLab) -> None:
    gitlab.limited, gitlab.retry_after = 1, "3600"
    clock = Clock()
    with pytest.raises(RateLimited, match="longer than the 600 s allowed"):
        run(gitlab, lambda client: client.commit(PROJECT, sha("a")), clock=clock)
    assert clock.sleeps == []


def test_a_missing_project_or_commit_is_not_found_without_a_retry(gitlab: FakeGitLab) -> None:
    with pytest.raises(NotFound, match="HTTP 404"):
        run(gitlab, lambda client: client.commit(PROJECT, sha("nowhere")))
    with pytest.raises(NotFound, match="HTTP 404"):
        run(gitlab, lambda client: client.deployments("other/project", "production"))
    assert len(gitlab.requests) == 2


def test_a_wrong_token_is_unauthorized(gitlab: FakeGitLab) -> None:
    with pytest.raises(Unauthorized, match="HTTP 401"):
        run(gitlab, lambda client: client.commit(PROJECT, sha("a")), token="glpat-wrong")
    assert len(gitlab.requests) == 1


def test_server_errors_are_retried_with_backoff_then_given_up(gitlab: FakeGitLab) -> None:
    gitlab.failures = 3
    clock = Clock()
    with pytest.raises(ServerError, match="HTTP 500"):
        run(gitlab, lambda client: client.commit(PROJECT, sha("a")), clock=clock)
    # Three tries (two retries), waiting up to 0.5 s, then 1 s: the jitter's top here.
    assert clock.sleeps == [0.5, 1.0]
    assert len(gitlab.requests) == 3
    gitlab.failures = 1
    assert run(gitlab, lambda client: client.commit(PROJECT, sha("a"))).sha == sha("a")


def test_the_token_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "gitlab-token"
    secret.write_text(f"{TOKEN}\n")
    settings = Settings(webhook_secret="unused", gitlab_token_file=secret)
    assert settings.gitlab_token is not None
    assert settings.gitlab_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
