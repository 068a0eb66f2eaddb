"""GitLab API calls lead time needs (REST, one GraphQL query), by GitLab's rate-limit rules.

``GITLAB_URL`` is GitLab's address, gitlab.com or a self-managed instance, with any path prefix
it is served under: REST is at ``/api/v4`` below it and GraphQL at ``/api/graphql``. A project is
named by its URL-encoded ``path_with_namespace``. Errors, retries, reading answers and counting
calls are shared with GitHub's client (observer.forges.api).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import quote

import httpx

from observer import __version__
from observer.forges.api import (
    ApiError,
    CallCount,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    backoff,
    count_call,
    counting,
    header_number,
    parse,
    transport_errors,
)
from observer.forges.github.models import ApiCommit
from observer.forges.gitlab.models import (
    COMMIT,
    COMMITS,
    COMPARE,
    DEPLOYMENTS,
    GRAPH_ANSWER,
    MERGE_REQUESTS,
    CompareBody,
    MergeRequestPage,
    RestDeployment,
    RestMergeRequest,
    read_page,
)
from observer.metrics.definitions import Metrics
from observer.ops import logs
from observer.settings import Settings

Params = dict[str, str | int]

PER_PAGE = 100
# A 429 that says neither how long nor until when: wait a minute, doubling.
UNEXPLAINED_LIMIT_WAIT = 60.0

# 50 merge requests a page, 100 commits each: GitLab weighs a nested connection by a hundredth
# of its size, so this stays far below its complexity limit.
MERGE_REQUESTS_QUERY = """
query($path: ID!, $after: Time!, $before: Time!, $cursor: String) {
  project(fullPath: $path) {
    mergeRequests(state: merged, mergedAfter: $after, mergedBefore: $before,
                  sort: MERGED_AT_DESC, first: 50, after: $cursor) {
      pageInfo { hasNextPage endCursor }
      nodes {
        iid mergedAt mergeCommitSha squashCommitSha
        commitsWithoutMergeCommits(first: 100) { nodes { sha authoredDate } }
      }
    }
  }
}
"""


def create_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    assert settings.gitlab_token is not None  # built only with a token
    return httpx.AsyncClient(
        # httpx joins relative paths under the base path: a self-managed GitLab's prefix stays.
        base_url=str(settings.gitlab_url),
        headers={
            "PRIVATE-TOKEN": settings.gitlab_token.get_secret_value(),
            "User-Agent": f"observer/{__version__}",
        },
        timeout=httpx.Timeout(settings.github_timeout, connect=5.0),
        follow_redirects=True,
        transport=transport,
    )


def project_path(project: str) -> str:
    """The REST path of a project, by its URL-encoded path with namespace."""
    return f"api/v4/projects/{quote(project, safe='')}"


class GitLabClient:
    """Read-only calls the enrichment needs; waits go through ``sleep`` and ``clock``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        metrics: Metrics,
        *,
        max_retries: int = 3,
        max_rate_limit_wait: float = 900.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._http = http
        self._metrics = metrics
        self._max_retries = max_retries
        self._max_wait = max_rate_limit_wait
        self._sleep = sleep
        self._clock = clock
        self._uniform = uniform
        # Epoch time before which no request may go out: the limit belongs to the token (or
        # the address), so every task waits for it, not just the one that was told.
        self._resume_at = 0.0

    def __repr__(self) -> str:
        return f"GitLabClient(base_url={str(self._http.base_url)!r})"

    def counting(self) -> contextlib.AbstractContextManager[CallCount]:
        """Count the requests, retries included, made by this task inside the block."""
        return counting(self)

    async def deployments(
        self, project: str, environment: str, *, limit: int = 10
    ) -> tuple[RestDeployment, ...]:
        """The project's latest successful deployments to ``environment``, newest first."""
        path = f"{project_path(project)}/deployments"
        params: Params = {
            "environment": environment,
            "status": "success",
            "order_by": "updated_at",
            "sort": "desc",
            "per_page": max(1, min(limit, PER_PAGE)),
        }
        return parse(DEPLOYMENTS, await self._request("GET", path, params=params), path)

    async def compare(self, project: str, base: str, head: str) -> CompareBody:
        """Commits reachable from ``head`` and not from ``base``, oldest first, in one answer."""
        path = f"{project_path(project)}/repository/compare"
        params: Params = {"from": base, "to": head}
        return parse(COMPARE, await self._request("GET", path, params=params), path)

    async def commit(self, project: str, sha: str) -> ApiCommit:
        path = f"{project_path(project)}/repository/commits/{quote(sha, safe='')}"
        return parse(COMMIT, await self._request("GET", path), path).api()

    async def commit_merge_requests(self, project: str, sha: str) -> tuple[RestMergeRequest, ...]:
        path = f"{project_path(project)}/repository/commits/{quote(sha, safe='')}/merge_requests"
        return parse(MERGE_REQUESTS, await self._request("GET", path), path)

    async def merge_request_commits(self, project: str, iid: int) -> tuple[ApiCommit, ...]:
        path = f"{project_path(project)}/merge_requests/{iid}/commits"
        response = await self._request("GET", path, params={"per_page": PER_PAGE})
        return tuple(commit.api() for commit in parse(COMMITS, response, path))

    async def merged_between(
        self, project: str, after: datetime, before: datetime, cursor: str | None = None
    ) -> MergeRequestPage:
        """One page of the merge requests merged in a window, latest first, with their commits."""
        variables = {
            "path": project,
            "after": after.isoformat(),
            "before": before.isoformat(),
            "cursor": cursor,
        }
        payload = {"query": MERGE_REQUESTS_QUERY, "variables": variables}
        response = await self._request("POST", "api/graphql", payload=payload)
        page = read_page(parse(GRAPH_ANSWER, response, "POST /api/graphql"))
        if page is None:
            raise NotFound(f"POST /api/graphql: no project {project!r} visible to the token")
        return page

    async def _request(
        self, method: str, path: str, *, params: Params | None = None, payload: object = None
    ) -> httpx.Response:
        where = f"{method} /{path}"
        retries = 0
        limited = 0
        while True:
            await self._wait_for_limit(where)
            try:
                response = await self._send(method, path, where, params, payload)
            except (Timeout, Unreachable, ServerError) as error:
                failure: ApiError = error
            else:
                if response.is_success:
                    return response
                failure = self._failure(where, response, limited)
            if retries >= self._max_retries:
                raise failure
            if isinstance(failure, RateLimited):
                limited += 1  # the wait is already set, for every task
            else:
                await self._sleep(backoff(retries, self._uniform))
            retries += 1

    async def _send(
        self, method: str, path: str, where: str, params: Params | None, payload: object
    ) -> httpx.Response:
        count_call(self)
        status = "error"
        try:
            with transport_errors(where):
                response = await self._http.request(method, path, params=params, json=payload)
            status = str(response.status_code)
        finally:
            self._metrics.gitlab_requests.labels(status=status).inc()
        remaining = header_number(response, "ratelimit-remaining")
        if remaining is not None:
            self._metrics.gitlab_rate_limit_remaining.set(remaining)
            reset = header_number(response, "ratelimit-reset")
            if remaining == 0 and reset is not None:
                self._resume_at = max(self._resume_at, reset)
        return response

    def _failure(self, where: str, response: httpx.Response, limited: int) -> ApiError:
        """The error an unusable answer means: returned if a retry could help, else raised."""
        status = response.status_code
        message = f"{where}: HTTP {status}"
        if status >= 500:
            return ServerError(message)
        if status == 429:
            wait = self._rate_limit_wait(response, limited)
            self._resume_at = max(self._resume_at, self._clock() + wait)
            self._check_wait(wait, message)
            return RateLimited(f"{message}: rate limited")
        if status in (401, 403):
            raise Unauthorized(message)
        if status == 404:
            raise NotFound(message)
        raise ApiError(message)

    def _rate_limit_wait(self, response: httpx.Response, limited: int) -> float:
        """Seconds to wait after a 429: Retry-After, else until RateLimit-Reset."""
        retry_after = header_number(response, "retry-after")
        if retry_after is not None:
            return max(retry_after, 0.0)
        reset = header_number(response, "ratelimit-reset")
        if reset is not None:
            # A reset already past means our clock is behind GitLab's; a second covers it.
            return max(reset - self._clock(), 1.0)
        return UNEXPLAINED_LIMIT_WAIT * 2.0**limited

    async def _wait_for_limit(self, where: str) -> None:
        # Another task may push the time back while this one sleeps, hence the loop.
        while (wait := self._resume_at - self._clock()) > 0:
            self._check_wait(wait, where)
            logs.event("waiting for GitLab's rate limit", seconds=round(wait, 1), request=where)
            await self._sleep(wait)

    def _check_wait(self, wait: float, where: str) -> None:
        if wait > self._max_wait:
            allowed = f"longer than the {self._max_wait:.0f} s allowed"
            raise RateLimited(f"{where}: rate limited for {wait:.0f} s more, {allowed}")
