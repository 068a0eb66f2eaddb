"""GitHub API calls lead time needs (REST, one GraphQL query), by its retry and rate-limit rules."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote

import httpx

from observer.forges.api import CallCount, backoff, count_call, counting
from observer.forges.github.auth import (
    AppInstallationToken,
    StaticToken,
    TokenSource,
    token_source,
)
from observer.forges.github.errors import (
    GitHubError,
    MalformedResponse,
    NotFound,
    RateLimited,
    RepositoryNotFound,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    header_number,
    http_error,
)
from observer.forges.github.graphql import (
    ANSWER,
    GraphPull,
    PullLookup,
    pulls_query,
    read_pulls,
    says_rate_limited,
)
from observer.forges.github.http import create_http_client, graphql_url, parse, transport_errors
from observer.forges.github.models import (
    COMMIT,
    COMMITS,
    COMPARISON,
    DEPLOYMENTS,
    HOOK_DELIVERIES,
    PULLS,
    STATUSES,
    ApiCommit,
    ApiDeployment,
    ApiPull,
    Comparison,
    ComparisonBody,
    DeliveryPage,
    same_repo,
)
from observer.metrics.definitions import Metrics
from observer.ops import logs

__all__ = (
    "ApiCommit", "ApiDeployment", "ApiPull", "AppInstallationToken", "CallCount", "Comparison",
    "GitHubClient", "GitHubError", "GraphPull", "MalformedResponse", "NotFound", "PullLookup",
    "RateLimited", "RepositoryNotFound", "ServerError",
    "StaticToken", "Timeout", "TokenSource", "Unauthorized", "Unreachable",
    "create_http_client", "token_source",
)  # fmt: skip

Params = dict[str, str | int]

# GitHub's advice when a rate-limit answer says neither how long nor until when: at least a minute.
UNEXPLAINED_LIMIT_WAIT = 60.0
PER_PAGE = 100
# Commits and pull request numbers per GraphQL request, and per call in all: a request of 50
# stays far below GitHub's node limit, and 500 bounds what one deployment can cost.
GRAPHQL_BATCH = 50
GRAPHQL_MAX_ITEMS = 500
# GitHub counts REST requests and GraphQL points against separate primary quotas.
REST_QUOTA = "core"
GRAPHQL_QUOTA = "graphql"
ANY_QUOTA = "any"


def _owner_name(repository: str) -> tuple[str, str]:
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"{repository!r} is not owner/name")
    return owner, name


def _repo_path(repository: str) -> str:
    owner, name = _owner_name(repository)
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class GitHubClient:
    """Read-only calls the enrichment needs; waits go through ``sleep`` and ``clock``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        metrics: Metrics,
        auth: TokenSource,
        *,
        max_retries: int = 3,
        max_rate_limit_wait: float = 900.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._http = http
        self._metrics = metrics
        self._auth = auth
        self._graphql = graphql_url(http.base_url)
        self._max_retries = max_retries
        self._max_wait = max_rate_limit_wait
        self._sleep = sleep
        self._clock = clock
        self._uniform = uniform
        # Epoch time before which no request may go out, per quota: the rate limit belongs to
        # the token, so every task waits for it, not just the one that was told. REST and
        # GraphQL have a primary quota each; a secondary limit stops both (key ANY_QUOTA).
        self._resume_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"GitHubClient(base_url={str(self._http.base_url)!r})"

    def counting(self) -> contextlib.AbstractContextManager[CallCount]:
        """Count the requests, retries included, made by this task inside the block."""
        return counting(self)

    async def compare(self, repository: str, base: str, head: str, *, max_pages: int) -> Comparison:
        path = f"{_repo_path(repository)}/compare/{quote(base, safe='')}...{quote(head, safe='')}"
        missing = frozenset({404, 422})  # 422: an unknown sha, or no common history
        pages: list[ComparisonBody] = []
        commits: list[ApiCommit] = []
        # Commits come oldest first, PER_PAGE at a time; page 1 says how many there are in all.
        for page in range(1, max(max_pages, 1) + 1):
            params: Params = {"per_page": PER_PAGE, "page": page}
            pages.append(parse(COMPARISON, await self._get(path, params, missing), path))
            commits.extend(commit.api(path) for commit in pages[-1].commits)
            if len(commits) >= pages[0].total_commits or not pages[-1].commits:
                break
        total = pages[0].total_commits
        return Comparison(pages[0].status, tuple(commits), truncated=len(commits) < total)

    async def commit(self, repository: str, sha: str) -> ApiCommit:
        path = f"{_repo_path(repository)}/commits/{quote(sha, safe='')}"
        return parse(COMMIT, await self._get(path), path).api(path)

    async def commit_pulls(self, repository: str, sha: str) -> list[ApiPull]:
        path = f"{_repo_path(repository)}/commits/{quote(sha, safe='')}/pulls"
        pulls = parse(PULLS, await self._get(path), path)
        return [
            ApiPull(
                number=pull.number,
                merged_at=pull.merged_at,
                merge_commit_sha=pull.merge_commit_sha.lower() if pull.merge_commit_sha else None,
                # A fork's branch name means nothing in this repository.
                head_ref=pull.head.ref if same_repo(pull.head, pull.base) else None,
            )
            for pull in pulls
        ]

    async def pull_commits(self, repository: str, number: int) -> list[ApiCommit]:
        path = f"{_repo_path(repository)}/pulls/{number}/commits"
        commits = parse(COMMITS, await self._get(path, {"per_page": PER_PAGE}), path)
        return [commit.api(path) for commit in commits]

    async def repository(self, repository: str) -> None:
        """Return if GitHub has the repository; RepositoryNotFound if not, or not for this token.

        It tells what a 404 for one of its commits means: a missing commit, or no repository.
        """
        path = _repo_path(repository)
        try:
            await self._get(path)
        except NotFound as error:
            raise RepositoryNotFound(str(error)) from None

    async def deployments(
        self, repository: str, environment: str, *, limit: int = 10
    ) -> list[ApiDeployment]:
        path = f"{_repo_path(repository)}/deployments"
        params: Params = {"environment": environment, "per_page": max(1, min(limit, PER_PAGE))}
        try:
            response = await self._get(path, params)
        except NotFound as error:
            # A repository's list is never missing, even empty: the repository is.
            raise RepositoryNotFound(str(error)) from None
        found = parse(DEPLOYMENTS, response, path)
        return [ApiDeployment(id=d.id, sha=d.sha.lower(), created_at=d.created_at) for d in found]

    async def deployment_succeeded(self, repository: str, deployment_id: int) -> bool:
        path = f"{_repo_path(repository)}/deployments/{deployment_id}/statuses"
        statuses = parse(STATUSES, await self._get(path, {"per_page": 30}), path)
        return any(status.state == "success" for status in statuses)

    async def pulls_of_commits(
        self,
        repository: str,
        shas: Sequence[str],
        numbers: Sequence[int] = (),
        *,
        batch: int = GRAPHQL_BATCH,
        max_items: int = GRAPHQL_MAX_ITEMS,
    ) -> PullLookup:
        """Each commit's merged pull requests, and each numbered pull request, through GraphQL.

        Shas, then numbers, go ``batch`` to a request and ``max_items`` in all; the rest are
        not asked for and are counted in ``truncated``. A sha GitHub does not know is left out.
        """
        owner, name = _owner_name(repository)
        wanted_shas = list(dict.fromkeys(sha.lower() for sha in shas))
        wanted_numbers = list(dict.fromkeys(numbers))
        asked = max(max_items, 0)
        cut = max(len(wanted_shas) + len(wanted_numbers) - asked, 0)
        wanted_shas = wanted_shas[:asked]
        wanted_numbers = wanted_numbers[: asked - len(wanted_shas)]
        size = max(batch, 1)
        items: list[str | int] = [*wanted_shas, *wanted_numbers]
        chunks = []
        # Every query is built before the first request, so a bad sha fails before any is sent.
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            chunk_shas = [item for item in chunk if isinstance(item, str)]
            chunk_numbers = [item for item in chunk if isinstance(item, int)]
            chunks.append((pulls_query(chunk_shas, chunk_numbers), chunk_shas, chunk_numbers))
        commits: dict[str, tuple[GraphPull, ...]] = {}
        pulls: dict[int, GraphPull] = {}
        where = f"POST {self._graphql.path}"
        for query, chunk_shas, chunk_numbers in chunks:
            payload = {"query": query, "variables": {"owner": owner, "name": name}}
            response = await self._request(
                "POST", self._graphql, payload=payload, quota=GRAPHQL_QUOTA
            )
            answer = parse(ANSWER, response, where)
            found_commits, found_pulls = read_pulls(answer, chunk_shas, chunk_numbers, where)
            commits.update(found_commits)
            pulls.update(found_pulls)
        return PullLookup(commits=commits, pulls=pulls, truncated=cut)

    async def hook_deliveries(self, hook: str, cursor: str | None = None) -> DeliveryPage:
        """One page of a webhook's delivery attempts, newest first (``hook``: its REST path)."""
        path = f"{hook}/deliveries"
        params: Params = {"per_page": PER_PAGE}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._get(path, params)
        found = parse(HOOK_DELIVERIES, response, path)
        # Only the cursor is taken from the link: requests stay on the configured API URL.
        link = response.links.get("next", {}).get("url")
        following = httpx.URL(link).params.get("cursor") if link else None
        return DeliveryPage(tuple(found), following or None)

    async def redeliver(self, hook: str, delivery_id: int) -> None:
        """Ask GitHub to deliver one of the hook's deliveries again (it answers 202)."""
        await self._request("POST", f"{hook}/deliveries/{delivery_id}/attempts")

    async def _get(
        self, path: str, params: Params | None = None, missing: frozenset[int] = frozenset({404})
    ) -> httpx.Response:
        return await self._request("GET", path, params=params, missing=missing)

    async def _request(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        params: Params | None = None,
        payload: object = None,
        missing: frozenset[int] = frozenset({404}),
        quota: str = REST_QUOTA,
    ) -> httpx.Response:
        where = f"{method} {target.path if isinstance(target, httpx.URL) else target}"
        retries = 0
        limited = 0
        while True:
            await self._wait_for_quota(where, quota)
            try:
                response = await self._send(method, target, where, params, payload, quota)
            except (Timeout, Unreachable, ServerError) as error:
                failure: GitHubError = error
            else:
                # GraphQL reports a spent limit in a 200 answer, as an error of type RATE_LIMITED.
                spent = quota == GRAPHQL_QUOTA and says_rate_limited(response.content)
                if response.is_success and not spent:
                    return response
                failure = self._failure(where, response, missing, limited, quota, spent or None)
            if retries >= self._max_retries:
                raise failure
            if isinstance(failure, RateLimited):
                limited += 1  # the wait is already set, for every task
            else:
                await self._sleep(backoff(retries, self._uniform))
            retries += 1

    async def _send(
        self,
        method: str,
        target: str | httpx.URL,
        where: str,
        params: Params | None,
        payload: object,
        quota: str,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._auth.token()}"}
        count_call(self)
        started = time.perf_counter()
        status = "error"
        try:
            with transport_errors(where):
                response = await self._http.request(
                    method, target, params=params, json=payload, headers=headers
                )
            status = str(response.status_code)
        finally:
            self._metrics.github_requests.labels(status=status).inc()
            self._metrics.github_request_duration.observe(time.perf_counter() - started)
        remaining = header_number(response, "x-ratelimit-remaining")
        if remaining is not None:
            self._metrics.github_rate_limit_remaining.set(remaining)
            reset = header_number(response, "x-ratelimit-reset")
            if remaining == 0 and reset is not None:
                self._resume_at[quota] = max(self._resume_at.get(quota, 0.0), reset)
        return response

    def _failure(
        self,
        where: str,
        response: httpx.Response,
        missing: frozenset[int],
        limited: int,
        quota: str,
        rate_limited: bool | None,
    ) -> GitHubError:
        """The error an unusable answer means: returned if a retry could help, else raised."""
        error = http_error(where, response, rate_limited=rate_limited, missing=missing)
        if isinstance(error, RateLimited):
            wait, held = self._rate_limit_wait(response, limited, quota)
            self._hold(wait, held, f"{where}: HTTP {response.status_code}")
        if isinstance(error, (RateLimited, ServerError)):
            return error
        raise error

    def _rate_limit_wait(
        self, response: httpx.Response, limited: int, quota: str
    ) -> tuple[float, str]:
        """Seconds to wait after a rate limit, following GitHub's rules, and the quota held."""
        retry_after = header_number(response, "retry-after")
        if retry_after is not None:
            return max(retry_after, 0.0), ANY_QUOTA
        reset = header_number(response, "x-ratelimit-reset")
        if header_number(response, "x-ratelimit-remaining") == 0 and reset is not None:
            # A reset already past means our clock is behind GitHub's; a second covers it.
            return max(reset - self._clock(), 1.0), quota
        return UNEXPLAINED_LIMIT_WAIT * 2.0**limited, ANY_QUOTA

    def _hold(self, wait: float, quota: str, where: str) -> None:
        self._resume_at[quota] = max(self._resume_at.get(quota, 0.0), self._clock() + wait)
        self._check_wait(wait, where)

    async def _wait_for_quota(self, where: str, quota: str) -> None:
        # Another task may push the time back while this one sleeps, hence the loop.
        while (wait := self._resume_time(quota) - self._clock()) > 0:
            self._check_wait(wait, where)
            logs.event("waiting for GitHub's rate limit", seconds=round(wait, 1), request=where)
            await self._sleep(wait)

    def _resume_time(self, quota: str) -> float:
        return max(self._resume_at.get(quota, 0.0), self._resume_at.get(ANY_QUOTA, 0.0))

    def _check_wait(self, wait: float, where: str) -> None:
        if wait > self._max_wait:
            allowed = f"longer than the {self._max_wait:.0f} s allowed"
            raise RateLimited(f"{where}: rate limited for {wait:.0f} s more, {allowed}")
